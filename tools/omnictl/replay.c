/*  replay: archive -> ingestd intake (see replay.h).

    Where to resume. The intake client acknowledges batches, not lines, and
    may have several in flight: what is safe to record is the longest prefix
    of the records sent that is acknowledged (omni_intake_client_acked_prefix).
    Every thousand records and at the start of each file, the position
    (file, line) of the next record is kept with its index; the state file
    names the last position whose index that prefix has reached.            */
#include "tools/omnictl/replay.h"
#include "common/buf.h"
#include "client/intake_client.h"
#include "tools/omnictl/jsonrec.h"
#include "proto/kinds.h"
#include "common/daemon.h"
#include "common/log.h"
#include "common/util.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MARK_EVERY    1000
#define SAVE_EVERY_MS 1000
#define SHOW_EVERY_MS 250   //  progress on a terminal
#define LOG_EVERY_MS  10000 //  progress in a log

typedef struct {
    uint64_t index; //  records sent before this position
    char *path;
    uint64_t line;
} s_mark_t;

typedef struct {
    const replay_config_t *config;
    char options[4096]; //  what a resumed run must share with the one it resumes
    s_mark_t *marks;
    size_t nmarks, cap;
    s_mark_t saved; //  the position in the state file
    int64_t last_save_ms;
} s_replay_t;

static void
s_list_text (char *out, size_t size, const char *const *list)
{
    size_t used = 0;
    out[0] = 0;
    for (; list && *list && used < size; list++)
        used += (size_t) snprintf (out + used, size - used, "%s%s", used ? "," : "", *list);
}

static void
s_options (s_replay_t *self)
{
    const replay_config_t *c = self->config;
    char kinds[1024], sources[2048];
    s_list_text (kinds, sizeof kinds, c->filter.kinds);
    s_list_text (sources, sizeof sources, c->filter.sources);
    snprintf (self->options, sizeof self->options,
              "writers=%s kinds=%s sources=%s since=%" PRId64 " until=%" PRId64, c->writers, kinds,
              sources, c->filter.since_ns, c->filter.until_ns);
}

//  Reads the state file: 0 (a position, or none when there is no file), or
//  -1 when it is another replay's (other options) or unreadable.
static int
s_load (s_replay_t *self, char *error, size_t error_size)
{
    FILE *f = fopen (self->config->state_path, "r");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        snprintf (error, error_size, "cannot read %s: %s", self->config->state_path,
                  strerror (errno));
        return -1;
    }
    char line[4096], options[4096] = "", path[PATH_MAX] = "";
    uint64_t number = 0, sent = 0;
    while (fgets (line, sizeof line, f)) {
        line[strcspn (line, "\n")] = 0;
        if (strncmp (line, "options ", 8) == 0)
            snprintf (options, sizeof options, "%.4000s", line + 8);
        else if (strncmp (line, "file ", 5) == 0)
            snprintf (path, sizeof path, "%.4000s", line + 5);
        else if (strncmp (line, "line ", 5) == 0)
            number = strtoull (line + 5, NULL, 10);
        else if (strncmp (line, "sent ", 5) == 0)
            sent = strtoull (line + 5, NULL, 10);
    }
    fclose (f);
    if (strcmp (options, self->options) != 0) {
        snprintf (
            error, error_size,
            "%.300s is the state of a replay with other options (%.500s); run that one again to "
            "finish it, or remove the file to start this one",
            self->config->state_path, options);
        return -1;
    }
    if (*path) {
        self->saved.path = strdup (path);
        self->saved.line = number;
        self->saved.index = sent;
    }
    return 0;
}

static int
s_save (s_replay_t *self, const s_mark_t *mark, uint64_t base)
{
    char tmp[PATH_MAX];
    snprintf (tmp, sizeof tmp, "%s.tmp", self->config->state_path);
    FILE *f = fopen (tmp, "w");
    if (!f)
        return -1;
    fprintf (f,
             "# omnictl replay: every record before this position is acknowledged\n"
             "options %s\nfile %s\nline %" PRIu64 "\nsent %" PRIu64 "\n",
             self->options, mark->path, mark->line, base + mark->index);
    int rc = fflush (f) || fsync (fileno (f)) ? -1 : 0;
    rc = fclose (f) || rc ? -1 : 0;
    if (rc == 0)
        rc = rename (tmp, self->config->state_path);
    if (rc)
        log_warn ("replay.state_not_saved", "path=%s error=\"%s\"", self->config->state_path,
                  strerror (errno));
    return rc;
}

static void
s_mark (s_replay_t *self, uint64_t index, const char *path, uint64_t line)
{
    *omni_array_push (self->marks, self->nmarks, self->cap) =
        (s_mark_t){index, strdup (path), line};
}

//  Saves the last mark the acknowledged prefix has reached.
static void
s_checkpoint (s_replay_t *self, omni_intake_client_t *client, uint64_t base)
{
    uint64_t prefix = omni_intake_client_acked_prefix (client);
    size_t done = 0;
    while (done < self->nmarks && self->marks[done].index <= prefix)
        done++;
    if (done == 0)
        return;
    if (self->marks[done - 1].index > 0) //  nothing acknowledged yet: nothing to say
        s_save (self, &self->marks[done - 1], base);
    for (size_t i = 0; i < done; i++)
        free (self->marks[i].path);
    memmove (self->marks, self->marks + done, (self->nmarks - done) * sizeof *self->marks);
    self->nmarks -= done;
    self->last_save_ms = omni_util_mono_ms ();
}

static void
s_progress (archread_t *reader, uint64_t sent, uint64_t acked, int64_t started_ms, bool tty,
            bool last)
{
    double seconds = (double) (omni_util_mono_ms () - started_ms) / 1000.0;
    double rate = seconds > 0 ? (double) sent / seconds : 0;
    double total = (double) archread_total_bytes (reader);
    double read = (double) archread_read_bytes (reader);
    double fraction = total > 0 ? read / total : 1;
    double eta = fraction > 0.001 ? seconds * (1 - fraction) / fraction : 0;
    if (tty) {
        fprintf (stderr,
                 "\rreplay: %5.1f%% %" PRIu64 " records sent, %" PRIu64
                 " acknowledged, %.0f/s, ETA %.0fs\033[K%s",
                 100 * fraction, sent, acked, rate, last ? 0 : eta, last ? "\n" : "");
        fflush (stderr);
    } else
        log_info ("replay.progress",
                  "done=%.1f%% sent=%" PRIu64 " acked=%" PRIu64 " rate=%.0f eta_s=%.0f",
                  100 * fraction, sent, acked, rate, last ? 0 : eta);
}

//  The writer roles a record of `kind` reaches under this replay.
static unsigned
s_routes (const char *kind, unsigned writers)
{
    const omni_kind_spec_t *spec = omni_kinds_lookup (kind, strlen (kind));
    return spec ? (spec->writers & writers) : writers;
}

int
replay_run (const replay_config_t *config)
{
    //  The writers named, as ingestd will route them (it refuses what it
    //  does not deliver to; here, a record no named writer takes is not sent)
    unsigned writers = 0;
    if (!*config->writers)
        writers = WRITER_ALL & ~(unsigned) WRITER_ARCHIVE;
    char names[256];
    snprintf (names, sizeof names, "%s", config->writers);
    for (char *save = NULL, *name = strtok_r (names, ",", &save); name;
         name = strtok_r (NULL, ",", &save)) {
        unsigned role = omni_kinds_writer_role (name);
        if (!role || role == WRITER_ARCHIVE) {
            fprintf (
                stderr, "error: omnictl replay: --writer %s: %s (relational, document, metrics)\n",
                name,
                role ? "replay reads the archive, it never writes back to it" : "no such writer");
            return 2;
        }
        writers |= role;
    }
    s_replay_t self;
    memset (&self, 0, sizeof self);
    self.config = config;
    s_options (&self);
    char error[1024];
    if (s_load (&self, error, sizeof error)) {
        fprintf (stderr, "error: omnictl replay: %s\n", error);
        return 2;
    }
    archread_t *reader = archread_new (config->archive_dir, &config->filter, error, sizeof error);
    if (!reader) {
        fprintf (stderr, "error: omnictl replay: %s\n", error);
        free (self.saved.path);
        return 2;
    }
    uint64_t base = 0; //  records acknowledged by the runs this one resumes
    if (self.saved.path) {
        archread_seek (reader, self.saved.path, self.saved.line);
        base = self.saved.index;
        log_info ("replay.resume", "state=%s file=%s line=%" PRIu64 " acknowledged_before=%" PRIu64,
                  config->state_path, self.saved.path, self.saved.line, base);
    }
    omni_intake_config_t ic = {config->intake, 0, 0, 0, 0, config->give_up_ms, config->curve};
    omni_intake_client_t *client = omni_intake_client_new (&ic);
    if (!client) {
        fprintf (stderr, "error: omnictl replay: cannot connect to %s\n", config->intake);
        archread_destroy (&reader);
        free (self.saved.path);
        return 2;
    }
    omni_intake_client_set_replay (client, config->writers);
    jsonrec_t *parser = jsonrec_new ();
    bool tty = isatty (STDERR_FILENO);
    int64_t started = omni_util_mono_ms (), shown = started;
    uint64_t sent = 0, filtered = 0, unrouted = 0;
    const char *line;
    size_t len;
    const char *last_path = NULL;
    int rc = 0;
    log_info ("replay.start",
              "archive=%s intake=%s writers=%s files=%zu bytes=%" PRIu64 " state=%s",
              config->archive_dir, config->intake, *config->writers ? config->writers : "(all)",
              archread_files (reader), archread_total_bytes (reader), config->state_path);
    while (archread_next (reader, &line, &len) == 1) {
        const void *data;
        size_t size;
        if (jsonrec_pack (parser, line, len, &data, &size, error, sizeof error)) {
            archread_bad (reader, error);
            continue;
        }
        const char *kind = jsonrec_kind (parser);
        if (!archread_match (&config->filter, kind, jsonrec_src (parser), jsonrec_ts (parser))) {
            filtered++;
            continue;
        }
        if (!s_routes (kind, writers)) {
            unrouted++;
            continue;
        }
        const char *path = archread_path (reader);
        if (sent % MARK_EVERY == 0 || path != last_path) {
            s_mark (&self, sent, path, archread_line (reader));
            last_path = path;
        }
        if (omni_intake_client_send (client, data, size)) {
            rc = 1;
            break;
        }
        sent++;
        if (config->rate > 0) {
            int64_t due = started + (int64_t) (sent * 1000 / (uint64_t) config->rate);
            if (due - omni_util_mono_ms () >= 10)
                zclock_sleep ((int) (due - omni_util_mono_ms ()));
        }
        if (omni_intake_client_error (client)) {
            rc = 1;
            break;
        }
        int64_t now = omni_util_mono_ms ();
        if (now - self.last_save_ms >= SAVE_EVERY_MS)
            s_checkpoint (&self, client, base);
        if (now - shown >= (tty ? SHOW_EVERY_MS : LOG_EVERY_MS)) {
            s_progress (reader, sent, omni_intake_client_acked_prefix (client), started, tty,
                        false);
            shown = now;
        }
    }
    //  The end of the archive is a position too: the file is removed then
    if (rc == 0 && omni_intake_client_flush (client))
        rc = 1;
    else if (rc)
        omni_intake_client_drain (client, 5000); //  interrupted: hand over what is in flight
    s_checkpoint (&self, client, base);
    s_progress (reader, sent, omni_intake_client_acked_prefix (client), started, tty, true);
    uint64_t accepted = omni_intake_client_accepted (client),
             rejected = omni_intake_client_rejected (client);
    uint64_t bad = archread_bad_count (reader);
    if (omni_intake_client_error (client)) {
        fprintf (stderr, "error: omnictl replay: ingestd refused: %s\n",
                 omni_intake_client_error (client));
        rc = 1;
    } else if (rc)
        fprintf (stderr,
                 "error: omnictl replay: stopped with %" PRIu64
                 " records not acknowledged; run the same command again to go on from %s\n",
                 sent - omni_intake_client_acked_prefix (client), config->state_path);
    else if (rejected) {
        fprintf (stderr,
                 "error: omnictl replay: ingestd rejected %" PRIu64
                 " records (see its dead letters and omni-tap --rejects)\n",
                 rejected);
        rc = 1;
    }
    if (rc == 0) {
        unlink (config->state_path);
        rc = bad ? OMNI_EXIT_DAMAGED : OMNI_EXIT_OK;
    }
    log_info ("replay.done",
              "sent=%" PRIu64 " accepted=%" PRIu64 " rejected=%" PRIu64 " filtered=%" PRIu64
              " not_for_these_writers=%" PRIu64 " bad_lines=%" PRIu64 " resumed_after=%" PRIu64
              " seconds=%.1f status=%d",
              sent, accepted, rejected, filtered, unrouted, bad, base,
              (double) (omni_util_mono_ms () - started) / 1000.0, rc);
    printf ("replayed %" PRIu64 " records (%" PRIu64 " accepted, %" PRIu64 " rejected), %" PRIu64
            " damaged lines skipped%s\n",
            sent, accepted, rejected, bad, base ? " (resumed)" : "");
    for (size_t i = 0; i < self.nmarks; i++)
        free (self.marks[i].path);
    free (self.marks);
    free (self.saved.path);
    jsonrec_destroy (&parser);
    omni_intake_client_destroy (&client);
    archread_destroy (&reader);
    return rc;
}

void
replay_test (bool verbose)
{
    (void) verbose;
    //  Replay is a conversation with a real ingestd: tests/test_archive.py.
    //  Here, the refusals before any connection.
    replay_config_t config = {"/nonexistent",
                              "tcp://127.0.0.1:1",
                              "archive",
                              {NULL, NULL, INT64_MIN, INT64_MAX},
                              "/nonexistent/state",
                              NULL,
                              1000,
                              0};
    assert (replay_run (&config) == 2);
    config.writers = "nonsense";
    assert (replay_run (&config) == 2);
    config.writers = "";
    assert (replay_run (&config) == 2); //  no archive there
}
