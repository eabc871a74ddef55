/*  loadgen: paces synth records into intake_client.

    Pacing is by schedule, not by sleep per record: record k is due at
    start + k / rate, and the loop sleeps only while it is ahead, so the
    average rate holds whatever the cost of a record or a blocked send.

    intake_client sends a batch when it is full; at low rates that could
    hold records for a long time, so when the loop is about to sleep with
    records waiting in a partial batch older than LINGER_NS, it flushes
    (which also waits for their ACK: the loop was going to wait anyway).
    To know whether a partial batch is waiting, the loop mirrors the
    client's batching rule (records or bytes, whichever first).

    With preencode every record is built into one buffer before the clock
    starts (up to PREENCODE_MAX bytes; beyond, records are built as they are
    sent): building a record costs more CPU than sending it, and a benchmark
    of ingestd should not share its cores with that.                         */
#include "tools/omni-loadgen/loadgen.h"
#include "common/buf.h"
#include "client/intake_client.h"
#include "common/daemon.h"
#include "common/log.h"
#include "testsupport/selftest.h"
#include "testsupport/testpeer.h"
#include "common/util.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LINGER_NS     (100 * 1000000LL)
#define BATCH_BYTES   (1024 * 1024)
#define MAX_SLEEP_NS  (50 * 1000000LL)
#define PREENCODE_MAX (4ULL << 30)

struct _loadgen_t {
    loadgen_config_t config;
    synth_t *synth;
    omni_intake_client_t *client;
    FILE *ids, *dump;
    uint64_t sent, dumped_bytes;
    int64_t started_ns, finished_ns;
    //  Pre-encoded records: record k is arena[ends[k - 1] .. ends[k]),
    //  its id ids[k] (for valid records).
    uint8_t *arena;
    size_t *ends;
    uint8_t (*ids_pre)[RECORD_ID_SIZE];
    int64_t encode_ns;
};

static int64_t
s_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

loadgen_t *
loadgen_new (const loadgen_config_t *config, synth_t *synth, char *error, size_t error_size)
{
    loadgen_t *self = calloc (1, sizeof *self);
    assert (self);
    self->config = *config;
    self->synth = synth;
    if (config->ids_out && !(self->ids = fopen (config->ids_out, "w"))) {
        snprintf (error, error_size, "ids_out: cannot write %s: %s", config->ids_out,
                  strerror (errno));
        loadgen_destroy (&self);
        return NULL;
    }
    if (self->ids)
        setvbuf (self->ids, NULL, _IOFBF, 1 << 20);
    if (config->dump) {
        if (!(self->dump = fopen (config->dump, "wb"))) {
            snprintf (error, error_size, "dump: cannot write %s: %s", config->dump,
                      strerror (errno));
            loadgen_destroy (&self);
            return NULL;
        }
        setvbuf (self->dump, NULL, _IOFBF, 1 << 20);
        return self;
    }

    omni_intake_config_t intake = {config->intake, config->batch,          BATCH_BYTES,
                                   config->window, config->ack_timeout_ms, config->give_up_ms,
                                   config->curve};
    for (size_t i = 0; i < config->nbad; i++)
        if (config->bad[i] == SYNTH_BAD_HUGE && intake.window != 1) {
            //  Every huge input is held until acknowledged, and copied
            //  once more on its way out: one in flight at a time.
            intake.window = 1;
            log_info ("loadgen.window", "window=1 reason=\"huge inputs\"");
        }
    self->client = omni_intake_client_new (&intake);
    if (!self->client) {
        snprintf (error, error_size, "intake: cannot connect to \"%s\"", config->intake);
        loadgen_destroy (&self);
        return NULL;
    }
    return self;
}

void
loadgen_destroy (loadgen_t **self_p)
{
    loadgen_t *self = *self_p;
    if (!self)
        return;
    omni_intake_client_destroy (&self->client);
    if (self->ids)
        fclose (self->ids);
    if (self->dump)
        fclose (self->dump);
    free (self->arena);
    free (self->ends);
    free (self->ids_pre);
    free (self);
    *self_p = NULL;
}

static void
s_sleep_ns (int64_t ns)
{
    struct timespec ts = {(time_t) (ns / 1000000000LL), (long) (ns % 1000000000LL)};
    nanosleep (&ts, NULL); //  a signal cuts it short, the loop checks it
}

//  Builds the `count` records into one buffer; false (nothing kept) when
//  they would take more than PREENCODE_MAX bytes.
static bool
s_preencode (loadgen_t *self)
{
    const loadgen_config_t *c = &self->config;
    if (c->count > PREENCODE_MAX / 16)
        return false;
    int64_t start = s_now_ns ();
    size_t cap = 0, used = 0;
    self->ends = malloc (c->count * sizeof *self->ends);
    self->ids_pre = c->nbad ? NULL : malloc (c->count * sizeof *self->ids_pre);
    assert (self->ends && (c->nbad || self->ids_pre));
    for (uint64_t k = 0; k < c->count; k++) {
        uint64_t index = c->start_index + k;
        const void *data;
        size_t size;
        if (c->nbad == 0) {
            synth_record (self->synth, index, &data, &size);
            memcpy (self->ids_pre[k], synth_id (self->synth), RECORD_ID_SIZE);
        } else
            synth_bad (self->synth, c->bad[k % c->nbad], index, &data, &size);
        if (used + size > PREENCODE_MAX) {
            log_info ("loadgen.preencode", "skipped=1 reason=\"over %llu bytes\"",
                      (unsigned long long) PREENCODE_MAX);
            free (self->arena);
            free (self->ends);
            free (self->ids_pre);
            self->arena = NULL;
            self->ends = NULL;
            self->ids_pre = NULL;
            return false;
        }
        //  At the first record, room for all of its size; then doubling
        omni_array_reserve (self->arena, cap,
                            k ? used + size : (size_t) (c->count < 4096 ? 4096 : c->count) * size);
        memcpy (self->arena + used, data, size);
        used += size;
        self->ends[k] = used;
    }
    self->encode_ns = s_now_ns () - start;
    log_info ("loadgen.preencoded", "records=%" PRIu64 " bytes=%zu seconds=%.3f", c->count, used,
              (double) self->encode_ns / 1e9);
    return true;
}

int
loadgen_run (loadgen_t *self)
{
    const loadgen_config_t *c = &self->config;
    size_t batch = c->batch ? c->batch : 500;
    size_t pending = 0, pending_bytes = 0;
    int64_t pending_since = 0;
    int rc = 0;
    bool pre = c->preencode && c->count && !self->dump && s_preencode (self);
    self->started_ns = s_now_ns ();
    int64_t now = self->started_ns;
    int64_t deadline = c->duration_ms ? self->started_ns + c->duration_ms * 1000000LL : 0;
    log_info ("loadgen.start",
              "intake=%s count=%" PRIu64 " rate=%.0f start_index=%" PRIu64 " bad=%zu dump=%s",
              c->dump ? "-" : c->intake, c->count, c->rate, c->start_index, c->nbad,
              c->dump ? c->dump : "-");
    for (uint64_t k = 0; !c->count || k < c->count;) {
        if (omni_daemon_stopping ())
            break;
        if (deadline || c->rate > 0 || (k & 63) == 0)
            now = s_now_ns ();
        if (deadline && now >= deadline)
            break;
        if (c->rate > 0) {
            int64_t due = self->started_ns + (int64_t) ((double) k * 1e9 / c->rate);
            if (now < due) {
                if (pending && now - pending_since >= LINGER_NS) {
                    if (omni_intake_client_flush (self->client)) {
                        rc = -1;
                        break;
                    }
                    pending = pending_bytes = 0;
                    continue;
                }
                s_sleep_ns (due - now < MAX_SLEEP_NS ? due - now : MAX_SLEEP_NS);
                continue;
            }
        }
        uint64_t index = c->start_index + k;
        const void *data;
        size_t size;
        const uint8_t *id = NULL;
        bool valid = c->nbad == 0;
        if (pre) {
            size_t from = k ? self->ends[k - 1] : 0;
            data = self->arena + from;
            size = self->ends[k] - from;
            if (valid)
                id = self->ids_pre[k];
        } else if (valid) {
            synth_record (self->synth, index, &data, &size);
            id = synth_id (self->synth);
        } else
            synth_bad (self->synth, c->bad[k % c->nbad], index, &data, &size);
        if (self->dump) {
            if (fwrite (data, 1, size, self->dump) != size) {
                log_error ("loadgen.dump", "file=%s error=\"%s\"", c->dump, strerror (errno));
                rc = -1;
                break;
            }
            self->dumped_bytes += size;
        } else {
            if (omni_intake_client_send (self->client, data, size)) {
                rc = -1;
                break;
            }
            if (pending++ == 0)
                pending_since = now;
            pending_bytes += size;
            if (pending >= batch || pending_bytes >= BATCH_BYTES)
                pending = pending_bytes = 0; //  the client sent the batch
        }
        if (self->ids && valid) {
            char hex[2 * RECORD_ID_SIZE + 2];
            omni_util_hex (id, RECORD_ID_SIZE, hex);
            hex[2 * RECORD_ID_SIZE] = '\n';
            fwrite (hex, 1, 2 * RECORD_ID_SIZE + 1, self->ids);
        }
        self->sent++;
        k++;
    }
    if (rc == 0 && omni_daemon_stopping ())
        log_info ("loadgen.stopping", "sent=%" PRIu64 " reason=signal", self->sent);
    if (rc == 0 && self->client && omni_intake_client_flush (self->client))
        rc = -1;
    if (self->ids && fflush (self->ids)) {
        log_error ("loadgen.ids_out", "file=%s error=\"%s\"", c->ids_out, strerror (errno));
        rc = -1;
    }
    if (self->dump && fflush (self->dump)) {
        log_error ("loadgen.dump", "file=%s error=\"%s\"", c->dump, strerror (errno));
        rc = -1;
    }
    self->finished_ns = s_now_ns ();
    if (rc && omni_daemon_stopping ())
        log_error ("loadgen.interrupted", "sent=%" PRIu64 " unacked_batches=%zu", self->sent,
                   self->client ? omni_intake_client_unacked (self->client) : 0);
    return rc;
}

uint64_t
loadgen_sent (loadgen_t *self)
{
    return self->dump ? 0 : self->sent;
}

uint64_t
loadgen_accepted (loadgen_t *self)
{
    return self->client ? omni_intake_client_accepted (self->client) : 0;
}

uint64_t
loadgen_rejected (loadgen_t *self)
{
    return self->client ? omni_intake_client_rejected (self->client) : 0;
}

double
loadgen_seconds (loadgen_t *self)
{
    int64_t end = self->finished_ns ? self->finished_ns : s_now_ns ();
    return (double) (end - self->started_ns) / 1e9;
}

void
loadgen_summary (loadgen_t *self, char *text, size_t size)
{
    double seconds = loadgen_seconds (self);
    double rate = seconds > 0 ? (double) self->sent / seconds : 0;
    if (self->dump)
        snprintf (text, size, "sent=0 dumped=%" PRIu64 " bytes=%" PRIu64 " seconds=%.3f rate=%.0f",
                  self->sent, self->dumped_bytes, seconds, rate);
    else {
        int n = snprintf (text, size,
                          "sent=%" PRIu64 " accepted=%" PRIu64 " rejected=%" PRIu64
                          " seconds=%.3f rate=%.0f resent=%" PRIu64 " failovers=%" PRIu64,
                          self->sent, loadgen_accepted (self), loadgen_rejected (self), seconds,
                          rate, omni_intake_client_resent (self->client),
                          omni_intake_client_failovers (self->client));
        if (self->encode_ns && n > 0 && (size_t) n < size)
            snprintf (text + n, size - (size_t) n, " encode_seconds=%.3f started=%.6f",
                      (double) self->encode_ns / 1e9, (double) self->started_ns / 1e9);
    }
}

//  ---------------------------------------------------------------------------

static size_t
s_read_lines (const char *path, char ***lines)
{
    FILE *f = fopen (path, "r");
    assert (f);
    size_t n = 0, cap = 0;
    *lines = NULL;
    char line[128];
    while (fgets (line, sizeof line, f)) {
        line[strcspn (line, "\n")] = 0;
        *omni_array_push (*lines, n, cap) = strdup (line);
    }
    fclose (f);
    return n;
}

static void
s_free_lines (char **lines, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free (lines[i]);
    free (lines);
}

void
loadgen_test (bool verbose)
{
    testpeer_t *peer = testpeer_new ();
    char endpoint[64], error[256], summary[256];
    snprintf (endpoint, sizeof endpoint, "%s", testpeer_endpoint (peer));
    char *dir = selftest_tmpdir ("loadgen");
    char ids_path[512], dump_path[512];
    snprintf (ids_path, sizeof ids_path, "%s/ids", dir);
    snprintf (dump_path, sizeof dump_path, "%s/dump", dir);

    synth_config_t sc = {"mix", 9, 200, "test", NULL, NULL, 0};
    synth_t *synth = synth_new (&sc, error, sizeof error);
    synth_t *check = synth_new (&sc, error, sizeof error);

    //  As fast as possible: every record acknowledged, one id per record,
    //  the ids those of the records of that seed from start_index on; the
    //  same built before the clock starts (preencode).
    for (int pre = 0; pre < 2; pre++) {
        loadgen_config_t config = {.intake = endpoint,
                                   .count = 1000,
                                   .start_index = 50,
                                   .batch = 64,
                                   .window = 4,
                                   .give_up_ms = 5000,
                                   .ids_out = ids_path,
                                   .preencode = pre};
        loadgen_t *gen = loadgen_new (&config, synth, error, sizeof error);
        assert (gen);
        assert (loadgen_run (gen) == 0);
        assert (loadgen_sent (gen) == 1000 && loadgen_accepted (gen) == 1000);
        assert (loadgen_rejected (gen) == 0);
        loadgen_summary (gen, summary, sizeof summary);
        if (verbose)
            printf ("loadgen: %s\n", summary);
        const char *head = "sent=1000 accepted=1000 rejected=0 seconds=";
        assert (strncmp (summary, head, strlen (head)) == 0);
        assert (strstr (summary, " rate="));
        assert (!strstr (summary, " encode_seconds=") == !pre);
        loadgen_destroy (&gen);
        assert (gen == NULL);
        char **lines;
        size_t n = s_read_lines (ids_path, &lines);
        assert (n == 1000);
        for (size_t i = 0; i < n; i++) {
            const void *data;
            size_t size;
            char hex[2 * RECORD_ID_SIZE + 1];
            synth_record (check, 50 + i, &data, &size);
            omni_util_hex (synth_id (check), RECORD_ID_SIZE, hex);
            assert (strcmp (lines[i], hex) == 0);
        }
        s_free_lines (lines, n);
    }
    loadgen_config_t config;
    loadgen_t *gen;
    char **lines;
    size_t n;
    const char *head;

    //  At a rate: 200 records at 1000/s take about 0.2 s; at 20/s, records
    //  do not wait for a full batch (5 records, batch 500).
    config = (loadgen_config_t){.intake = endpoint, .count = 200, .rate = 1000, .give_up_ms = 5000};
    gen = loadgen_new (&config, synth, error, sizeof error);
    assert (loadgen_run (gen) == 0 && loadgen_accepted (gen) == 200);
    if (verbose)
        printf ("loadgen: 200 at 1000/s in %.3f s\n", loadgen_seconds (gen));
    assert (loadgen_seconds (gen) >= 0.19 && loadgen_seconds (gen) < 5.0);
    loadgen_destroy (&gen);
    config = (loadgen_config_t){.intake = endpoint, .count = 5, .rate = 20, .give_up_ms = 5000};
    gen = loadgen_new (&config, synth, error, sizeof error);
    int64_t start = omni_util_mono_ms ();
    assert (loadgen_run (gen) == 0 && loadgen_accepted (gen) == 5);
    assert (omni_util_mono_ms () - start <
            5000); //  ~0.25 s, not the minutes a full batch would take
    loadgen_destroy (&gen);

    //  For a duration: about rate × duration records.
    config = (loadgen_config_t){
        .intake = endpoint, .duration_ms = 300, .rate = 1000, .give_up_ms = 5000};
    gen = loadgen_new (&config, synth, error, sizeof error);
    assert (loadgen_run (gen) == 0);
    if (verbose)
        printf ("loadgen: %" PRIu64 " records in 300 ms at 1000/s\n", loadgen_sent (gen));
    //  Never ahead of the schedule; behind it only on a starved machine.
    assert (loadgen_sent (gen) >= 30 && loadgen_sent (gen) <= 301);
    assert (loadgen_accepted (gen) == loadgen_sent (gen));
    loadgen_destroy (&gen);

    //  Bad inputs, modes in turn: all rejected, no ids written.
    synth_bad_t modes[] = {SYNTH_BAD_GARBAGE, SYNTH_BAD_TRUNCATED, SYNTH_BAD_WRONG_TYPES,
                           SYNTH_BAD_VERSION, SYNTH_BAD_DEEP};
    for (int pre = 0; pre < 2; pre++) {
        config = (loadgen_config_t){.intake = endpoint,
                                    .count = 50,
                                    .give_up_ms = 5000,
                                    .ids_out = ids_path,
                                    .bad = modes,
                                    .nbad = 5,
                                    .preencode = pre};
        gen = loadgen_new (&config, synth, error, sizeof error);
        assert (loadgen_run (gen) == 0);
        assert (loadgen_sent (gen) == 50 && loadgen_rejected (gen) == 50);
        assert (loadgen_accepted (gen) == 0);
        loadgen_destroy (&gen);
        n = s_read_lines (ids_path, &lines);
        assert (n == 0);
        s_free_lines (lines, n);
    }

    //  Dump: the records themselves, nothing sent.
    config = (loadgen_config_t){.intake = "tcp://127.0.0.1:1", .count = 20, .dump = dump_path};
    gen = loadgen_new (&config, synth, error, sizeof error);
    assert (loadgen_run (gen) == 0);
    loadgen_summary (gen, summary, sizeof summary);
    head = "sent=0 dumped=20 bytes=";
    assert (strncmp (summary, head, strlen (head)) == 0);
    loadgen_destroy (&gen);
    FILE *f = fopen (dump_path, "rb");
    assert (f);
    for (uint64_t i = 0; i < 20; i++) {
        const void *data;
        size_t size;
        synth_record (check, i, &data, &size);
        uint8_t buffer[4096];
        assert (size <= sizeof buffer && fread (buffer, 1, size, f) == size);
        assert (memcmp (buffer, data, size) == 0);
    }
    assert (fgetc (f) == EOF);
    fclose (f);

    //  Nobody listening: fails after give_up_ms.
    testpeer_destroy (&peer);
    config = (loadgen_config_t){
        .intake = endpoint, .count = 10, .give_up_ms = 300, .ack_timeout_ms = 100};
    gen = loadgen_new (&config, synth, error, sizeof error);
    start = omni_util_mono_ms ();
    assert (loadgen_run (gen) == -1);
    assert (omni_util_mono_ms () - start >= 250);
    loadgen_destroy (&gen);

    //  A file that cannot be written is refused up front.
    config = (loadgen_config_t){.intake = endpoint, .count = 1, .ids_out = "/nonexistent/x"};
    assert (loadgen_new (&config, synth, error, sizeof error) == NULL);
    assert (strstr (error, "/nonexistent/x"));

    synth_destroy (&synth);
    synth_destroy (&check);
    selftest_rmtree (dir);
    free (dir);
}
