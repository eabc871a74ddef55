/*  jsrejects: ingestd's rejects in a JetStream stream (see jsrejects.h).

    Why a stream of its own and not a subject of the records' stream. The
    records' stream has interest retention: a message stays until every
    writer's consumer acknowledged it, and no writer wants rejects. Limits
    retention (age, bytes) is what a dead-letter area is; a second stream
    gives it, and keeps its size apart from the journal's.

    Why its own JetStream context on the journal's connection. Each context
    has its own list of publishes waiting for an ack, so a round waits for
    its rejects and its records separately and says which of the two the
    cluster did not store; one connection follows the cluster for both.

    Why the whole input and not the dead-letter area's first 4 KiB. The
    stream is where an operator looks for what a collector sent wrong;
    the input is kept up to the record size limit, which the servers'
    max_payload already fits (ingestd checks it at start).                 */
#include "ingestd/jsrejects.h"
#include "proto/jetstream.h"
#include "common/log.h"
#include "common/util.h"
#include "testsupport/natstest.h"

#include <arpa/inet.h>
#include <assert.h>
#include <czmq.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define API_WAIT_MS  5000 //  JetStream API calls at start
#define INFO_WAIT_MS 1000 //  stream info for /health, /metrics and the probe
#define RETRY_MS     2000 //  acks not come by then: publish again
#define WATCH_MS     2000 //  the /metrics gauges are refreshed this often
#define MAX_PENDING  100000
#define FIELD_MAX    128 //  bytes of an envelope field in a header
#define DETAIL_MAX   300 //  bytes of the detail in a header

struct _jsrejects_t {
    jsrejects_config_t config;
    char name[OMNI_JS_STREAM_MAX + 16];
    char prefix_stream[OMNI_JS_STREAM_MAX + 1]; //  the records' stream (the subject prefix)
    char instance[400];                         //  host (255) " journal=" id (64)
    jsCtx *js;
    omni_js_pubstate_t pub; //  error acks since begin, the last failure
    uint64_t published;     //  since begin
    omni_js_watch_t *watch;
    omni_js_gauges_t gauges;
};

//  Makes the stream, or checks the one there. Returns 0, else fills error.
static int
s_stream (jsrejects_t *self, jsjournal_failure_t *failure, char *error, size_t error_size)
{
    char subject[OMNI_JS_SUBJECT_MAX];
    omni_js_rejects_subject (self->prefix_stream, NULL, subject, sizeof subject);
    jsStorageType storage = self->config.memory ? js_MemoryStorage : js_FileStorage;
    int64_t max_age_ns = self->config.max_age_ms * 1000000;
    //  The duplicate window may not be longer than what the stream keeps
    int64_t window_ms = self->config.duplicate_window_ms;
    if (self->config.max_age_ms && window_ms > self->config.max_age_ms)
        window_ms = self->config.max_age_ms;
    jsStreamConfig cfg;
    jsStreamConfig_Init (&cfg);
    const char *subjects[] = {subject};
    cfg.Name = self->name;
    cfg.Description = "OmniAudit: input ingestd rejected, with the reason (journal: jetstream)";
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Retention = js_LimitsPolicy;
    cfg.Discard = js_DiscardOld;
    cfg.MaxAge = max_age_ns;
    cfg.MaxBytes = self->config.max_bytes;
    cfg.Storage = storage;
    cfg.Replicas = self->config.replicas;
    cfg.Duplicates = window_ms * 1000000;
    bool created;
    jsErrCode code;
    char why[400];
    jsStreamInfo *si =
        omni_js_stream_make (self->js, &cfg, API_WAIT_MS, &created, &code, why, sizeof why);
    if (created)
        log_info ("jetstream.rejects_stream_created",
                  "stream=%s subjects=%s replicas=%d max_age_ms=%" PRId64 " max_bytes=%" PRId64,
                  self->name, subject, self->config.replicas, self->config.max_age_ms,
                  self->config.max_bytes);
    if (!si) {
        snprintf (error, error_size, "rejects stream %s: %s", self->name, why);
        //  Its subjects taken by another stream is a configuration error
        *failure = code == JSStreamSubjectOverlapErr ? JSJOURNAL_MISMATCH : JSJOURNAL_UNREACHABLE;
        return -1;
    }
    const jsStreamConfig *have = si->Config;
    int rc = 0;
    if (!omni_js_stream_has_subject (have, subject) || have->Retention != js_LimitsPolicy ||
        have->Storage != storage || have->Replicas != self->config.replicas ||
        have->MaxAge != max_age_ns || have->MaxBytes != self->config.max_bytes) {
        snprintf (error, error_size,
                  "rejects stream %s exists with subjects %s%s retention=%s replicas=%d "
                  "storage=%s max_age=%" PRId64 "ms max_bytes=%" PRId64
                  "; ingestd wants subjects %s retention=limits replicas=%d storage=%s "
                  "max_age=%" PRId64 "ms max_bytes=%" PRId64
                  ": set ingestd.rejects_max_age / rejects_max_bytes (replicas, storage: as "
                  "the records' stream) to the stream's, or change it (nats stream edit %s) "
                  "or delete it (nats stream rm %s: only rejects kept for inspection)",
                  self->name, have->SubjectsLen ? have->Subjects[0] : "(none)",
                  have->SubjectsLen > 1 ? ",..." : "",
                  have->Retention == js_LimitsPolicy ? "limits" : "other", (int) have->Replicas,
                  have->Storage == js_MemoryStorage ? "memory" : "file", have->MaxAge / 1000000,
                  have->MaxBytes, subject, self->config.replicas,
                  self->config.memory ? "memory" : "file", self->config.max_age_ms,
                  self->config.max_bytes, self->name, self->name);
        *failure = JSJOURNAL_MISMATCH;
        rc = -1;
    }
    jsStreamInfo_Destroy (si);
    return rc;
}

jsrejects_t *
jsrejects_new (natsConnection *nc, const jsrejects_config_t *config, jsjournal_failure_t *failure,
               char *error, size_t error_size)
{
    *failure = JSJOURNAL_MISMATCH;
    jsrejects_t *self = calloc (1, sizeof *self);
    assert (self);
    self->config = *config;
    if (!self->config.ack_timeout_ms)
        self->config.ack_timeout_ms = 10000;
    if (!self->config.duplicate_window_ms)
        self->config.duplicate_window_ms = 120000;
    omni_js_pubstate_init (&self->pub, "rejects stream", self->name);
    snprintf (self->prefix_stream, sizeof self->prefix_stream, "%s", config->journal_stream);
    if (config->name && *config->name)
        snprintf (self->name, sizeof self->name, "%s", config->name);
    else
        omni_js_rejects_name (config->journal_stream, self->name, sizeof self->name);
    self->config.name = self->name;
    self->config.journal_stream = self->prefix_stream;
    char host[256] = "?";
    gethostname (host, sizeof host - 1);
    snprintf (self->instance, sizeof self->instance, "%s", host);
    if (!omni_js_stream_name_ok (self->name) || strcmp (self->name, config->journal_stream) == 0) {
        snprintf (error, error_size,
                  "ingestd.rejects_stream: \"%s\" is not a stream name of its own (1..%d of "
                  "A-Z a-z 0-9 _ -, not the records' stream)",
                  self->name, OMNI_JS_STREAM_MAX);
        jsrejects_destroy (&self);
        return NULL;
    }
    if (config->max_bytes <= 0 || config->max_age_ms < 0) {
        snprintf (error, error_size,
                  "ingestd.rejects_max_bytes must be above 0 and rejects_max_age not negative");
        jsrejects_destroy (&self);
        return NULL;
    }
    natsStatus s = omni_js_publish_context (nc, &self->js, API_WAIT_MS, MAX_PENDING,
                                            self->config.ack_timeout_ms, &self->pub);
    if (s != NATS_OK) {
        *failure = JSJOURNAL_UNREACHABLE;
        omni_js_error (s, 0, error, error_size);
        jsrejects_destroy (&self);
        return NULL;
    }
    if (s_stream (self, failure, error, error_size)) {
        jsrejects_destroy (&self);
        return NULL;
    }
    return self;
}

void
jsrejects_destroy (jsrejects_t **self_p)
{
    jsrejects_t *self = *self_p;
    if (!self)
        return;
    omni_js_watch_destroy (&self->watch);
    if (self->js)
        jsrejects_abort (self);
    jsCtx_Destroy (self->js);
    omni_js_pubstate_destroy (&self->pub);
    free (self);
    *self_p = NULL;
}

void
jsrejects_set_instance (jsrejects_t *self, const uint8_t *journal_id, size_t id_size)
{
    char host[256] = "?", hex[65];
    gethostname (host, sizeof host - 1);
    omni_util_hex (journal_id, id_size < 32 ? id_size : 32, hex);
    snprintf (self->instance, sizeof self->instance, "%s journal=%s", host, hex);
}

void
jsrejects_begin (jsrejects_t *self)
{
    omni_js_pubstate_reset (&self->pub, true);
    self->published = 0;
}

//  A header value: control bytes (CR, LF: the header's framing) as '?',
//  cut at `max` bytes on a character boundary.
static natsStatus
s_header (natsMsg *msg, const char *key, const char *value, size_t len, size_t max)
{
    char text[DETAIL_MAX + 1];
    if (max > DETAIL_MAX)
        max = DETAIL_MAX;
    len = omni_util_utf8_cut (value, len, max);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) value[i];
        text[i] = c < 0x20 || c == 0x7f ? '?' : (char) c;
    }
    text[len] = 0;
    return natsMsgHeader_Set (msg, key, text);
}

static natsStatus
s_header_u64 (natsMsg *msg, const char *key, uint64_t value)
{
    char text[24];
    snprintf (text, sizeof text, "%" PRIu64, value);
    return natsMsgHeader_Set (msg, key, text);
}

//  The connection's peer: "host:port" into `text`, the host alone into
//  `host`; both empty when not a TCP connection.
static void
s_peer (int fd, char *text, size_t size, char *host, size_t host_size)
{
    *text = *host = 0;
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    if (fd < 0 || getpeername (fd, (struct sockaddr *) &sa, &len))
        return;
    int port;
    if (sa.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *) &sa;
        inet_ntop (AF_INET, &in->sin_addr, host, (socklen_t) host_size);
        port = ntohs (in->sin_port);
        snprintf (text, size, "%s:%d", host, port);
    } else if (sa.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) &sa;
        inet_ntop (AF_INET6, &in6->sin6_addr, host, (socklen_t) host_size);
        port = ntohs (in6->sin6_port);
        snprintf (text, size, "[%s]:%d", host, port);
    }
}

//  The message id: the same reject of the same batch from the same host
//  (a batch sent again) is the same message.
static void
s_msg_id (const jsrejects_input_t *input, const char *host, size_t kept, char *out)
{
    uint8_t where[16], digest[EVP_MAX_MD_SIZE];
    omni_util_put_be (where, input->seq, 8);
    omni_util_put_be (where + 8, input->frame, 8);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new ();
    assert (ctx);
    unsigned int len = 0;
    EVP_DigestInit_ex (ctx, EVP_sha256 (), NULL);
    EVP_DigestUpdate (ctx, input->reason, strlen (input->reason) + 1);
    EVP_DigestUpdate (ctx, host, strlen (host) + 1);
    EVP_DigestUpdate (ctx, where, sizeof where);
    EVP_DigestUpdate (ctx, input->raw, kept);
    EVP_DigestFinal_ex (ctx, digest, &len);
    EVP_MD_CTX_free (ctx);
    omni_util_hex (digest, 16, out);
}

int
jsrejects_publish (jsrejects_t *self, const jsrejects_input_t *input)
{
    char subject[OMNI_JS_SUBJECT_MAX], peer[96], host[64], id[33];
    omni_js_rejects_subject (self->prefix_stream, input->reason, subject, sizeof subject);
    s_peer (input->fd, peer, sizeof peer, host, sizeof host);
    size_t kept = input->size < self->config.keep_max ? input->size : self->config.keep_max;
    s_msg_id (input, host, kept, id);
    natsMsg *msg = NULL;
    natsStatus s = natsMsg_Create (&msg, subject, NULL, input->raw, (int) kept);
    if (s == NATS_OK)
        s = natsMsgHeader_Set (msg, OMNI_JS_HDR_REASON, input->reason);
    if (s == NATS_OK)
        s = s_header (msg, OMNI_JS_HDR_DETAIL, input->detail, strlen (input->detail), DETAIL_MAX);
    if (s == NATS_OK)
        s = s_header_u64 (msg, OMNI_JS_HDR_RECEIVED, (uint64_t) input->received_ns);
    if (s == NATS_OK)
        s = s_header_u64 (msg, OMNI_JS_HDR_SIZE, input->size);
    if (s == NATS_OK && *peer)
        s = natsMsgHeader_Set (msg, OMNI_JS_HDR_PEER, peer);
    if (s == NATS_OK && input->key)
        s = s_header (msg, OMNI_JS_HDR_KEY, input->key, strlen (input->key), FIELD_MAX);
    if (s == NATS_OK && input->seq)
        s = s_header_u64 (msg, OMNI_JS_HDR_SEQ, input->seq);
    if (s == NATS_OK && input->frame)
        s = s_header_u64 (msg, OMNI_JS_HDR_FRAME, input->frame);
    const omni_record_t *r = input->record;
    if (s == NATS_OK && r && r->kind.ptr)
        s = s_header (msg, OMNI_JS_HDR_KIND, r->kind.ptr, r->kind.len, FIELD_MAX);
    if (s == NATS_OK && r && r->src.ptr)
        s = s_header (msg, OMNI_JS_HDR_SRC, r->src.ptr, r->src.len, FIELD_MAX);
    if (s == NATS_OK && r && r->col.ptr)
        s = s_header (msg, OMNI_JS_HDR_COL, r->col.ptr, r->col.len, FIELD_MAX);
    if (s == NATS_OK)
        s = natsMsgHeader_Set (msg, OMNI_JS_HDR_INGESTD, self->instance);
    jsPubOptions po;
    jsPubOptions_Init (&po);
    po.MsgId = id;
    po.MaxWait = self->config.ack_timeout_ms;
    if (s == NATS_OK)
        s = js_PublishMsgAsync (self->js, &msg, &po);
    natsMsg_Destroy (msg); //  NULL once the library took it
    if (s != NATS_OK) {
        char why[400];
        omni_js_error (s, 0, why, sizeof why);
        omni_js_pubstate_set (&self->pub, "publish to rejects stream %s: %s", self->name, why);
        return -1;
    }
    self->published++;
    return 0;
}

int
jsrejects_complete (jsrejects_t *self)
{
    if (!self->published)
        return 0;
    natsStatus s = omni_js_publish_wait (self->js, self->config.ack_timeout_ms, RETRY_MS);
    pthread_mutex_lock (&self->pub.lock);
    uint64_t errors = self->pub.errors;
    if (s != NATS_OK && !errors)
        snprintf (self->pub.error, sizeof self->pub.error,
                  "rejects stream %s: the publish acks of %" PRIu64
                  " rejects did not all come within %" PRId64 " ms (%s)",
                  self->name, self->published, self->config.ack_timeout_ms, natsStatus_GetText (s));
    pthread_mutex_unlock (&self->pub.lock);
    return s == NATS_OK && !errors ? 0 : -1;
}

void
jsrejects_abort (jsrejects_t *self)
{
    //  What comes later is dropped with the pending list (jsjournal_abort)
    if (self->published)
        omni_js_publish_drop (self->js);
    self->published = 0;
}

uint64_t
jsrejects_published (jsrejects_t *self)
{
    return self->published;
}

const char *
jsrejects_error (jsrejects_t *self)
{
    return self->pub.error;
}

const char *
jsrejects_name (jsrejects_t *self)
{
    return self->name;
}

int
jsrejects_probe (jsrejects_t *self)
{
    return omni_js_pubstate_probe (&self->pub, self->js);
}

void
jsrejects_status (jsrejects_t *self, char *text, size_t size)
{
    omni_js_stream_refresh (self->js, self->name, "rejects", INFO_WAIT_MS, &self->gauges, text,
                            size);
}

//  The watcher's thread: the gauges alone
static void
s_watch (void *arg)
{
    jsrejects_status (arg, NULL, 0);
}

void
jsrejects_metrics (jsrejects_t *self, omni_metrics_t *metrics)
{
    if (!metrics || self->watch)
        return;
    self->gauges.messages =
        omni_metrics_gauge (metrics, "rejects_stream_messages",
                            "journal: jetstream: rejected inputs kept in the rejects stream", NULL);
    self->gauges.bytes = omni_metrics_gauge (
        metrics, "rejects_stream_bytes", "journal: jetstream: bytes of the rejects stream", NULL);
    self->gauges.current = omni_metrics_gauge (
        metrics, "rejects_stream_replicas_current",
        "journal: jetstream: the rejects stream's replicas that are current", NULL);
    self->watch = omni_js_watch_new (s_watch, self, WATCH_MS);
}

//  ---------------------------------------------------------------------------
//  Self-test: a nats-server of its own, on a free port, JetStream in memory

//  The rejects stream's message `seq`, with its headers.
static natsMsg *
s_test_get (jsrejects_t *self, uint64_t seq)
{
    natsMsg *msg = NULL;
    jsOptions o;
    jsOptions_Init (&o);
    o.Wait = 2000;
    natsStatus s = js_GetMsg (&msg, self->js, self->name, seq, &o, NULL);
    assert (s == NATS_OK && msg);
    return msg;
}

static const char *
s_test_header (natsMsg *msg, const char *key)
{
    const char *value = NULL;
    return natsMsgHeader_Get (msg, key, &value) == NATS_OK ? value : NULL;
}

static uint64_t
s_test_messages (jsrejects_t *self)
{
    char status[1024];
    jsrejects_status (self, status, sizeof status);
    const char *at = strstr (status, "messages=");
    assert (at);
    return strtoull (at + 9, NULL, 10);
}

void
jsrejects_test (bool verbose)
{
    (void) verbose;
    natstest_t *server = natstest_new ();
    const char *urls[] = {natstest_url (server), NULL};
    natstest_start (server);
    char error[1024];
    natsConnection *nc = NULL;
    for (int i = 0; i < 200 && !nc; i++)
        if (!(nc = omni_js_connect (urls, "jsrejects-test", 500, error, sizeof error)))
            zclock_sleep (50);
    assert (nc);
    jsrejects_config_t config = {.journal_stream = "OMNITEST",
                                 .replicas = 1,
                                 .memory = true,
                                 .max_age_ms = 3600 * 1000,
                                 .max_bytes = 1 << 20,
                                 .ack_timeout_ms = 3000,
                                 .keep_max = 64};
    jsjournal_failure_t failure;
    jsrejects_t *self = NULL;
    //  JetStream comes up a moment after the server listens
    for (int i = 0; i < 100 && !self; i++)
        if (!(self = jsrejects_new (nc, &config, &failure, error, sizeof error)))
            zclock_sleep (50);
    assert (self && strcmp (jsrejects_name (self), "OMNITEST_REJECTS") == 0);
    uint8_t id[16] = {0xab};
    jsrejects_set_instance (self, id, sizeof id);

    //  Two rejects of a round: bytes, reason and detail kept, the detail's
    //  line breaks made harmless; an input over keep_max cut there
    omni_record_t record = {.kind = {"git.commit", 10}, .src = {"repo\n", 5}};
    uint8_t big[100];
    memset (big, 'x', sizeof big);
    jsrejects_input_t bad = {.reason = "bad_body",
                             .detail = "body.sha: expected str\r\nX-Evil: 1",
                             .raw = "\x81\xa1v\x01",
                             .size = 4,
                             .received_ns = 1700000000000000000LL,
                             .fd = -1,
                             .seq = 7,
                             .frame = 2,
                             .record = &record};
    jsrejects_input_t large = {.reason = "too_large",
                               .detail = "100 bytes",
                               .raw = big,
                               .size = sizeof big,
                               .received_ns = 1,
                               .fd = -1,
                               .seq = 7,
                               .frame = 3};
    jsrejects_begin (self);
    assert (jsrejects_complete (self) == 0); //  none: nothing to wait for
    assert (jsrejects_publish (self, &bad) == 0 && jsrejects_publish (self, &large) == 0);
    assert (jsrejects_published (self) == 2);
    assert (jsrejects_complete (self) == 0 && !*jsrejects_error (self));
    assert (s_test_messages (self) == 2);
    natsMsg *msg = s_test_get (self, 1);
    assert (strcmp (natsMsg_GetSubject (msg), "omnitest.rejects.bad_body") == 0);
    assert (natsMsg_GetDataLength (msg) == 4 && memcmp (natsMsg_GetData (msg), bad.raw, 4) == 0);
    assert (strcmp (s_test_header (msg, OMNI_JS_HDR_REASON), "bad_body") == 0);
    assert (strcmp (s_test_header (msg, OMNI_JS_HDR_DETAIL), "body.sha: expected str??X-Evil: 1") ==
            0);
    assert (!s_test_header (msg, "X-Evil"));
    assert (strcmp (s_test_header (msg, OMNI_JS_HDR_RECEIVED), "1700000000000000000") == 0);
    assert (strcmp (s_test_header (msg, OMNI_JS_HDR_SEQ), "7") == 0);
    assert (strcmp (s_test_header (msg, OMNI_JS_HDR_FRAME), "2") == 0);
    assert (strcmp (s_test_header (msg, OMNI_JS_HDR_KIND), "git.commit") == 0);
    assert (strcmp (s_test_header (msg, OMNI_JS_HDR_SRC), "repo?") == 0);
    assert (!s_test_header (msg, OMNI_JS_HDR_COL) && !s_test_header (msg, OMNI_JS_HDR_PEER));
    assert (strstr (s_test_header (msg, OMNI_JS_HDR_INGESTD), " journal=ab00"));
    natsMsg_Destroy (msg);
    msg = s_test_get (self, 2);
    assert (natsMsg_GetDataLength (msg) == 64);
    assert (strcmp (s_test_header (msg, OMNI_JS_HDR_SIZE), "100") == 0);
    natsMsg_Destroy (msg);

    //  The same batch sent again (its round was not acknowledged): the
    //  stream drops its rejects; another batch's are new
    jsrejects_begin (self);
    assert (jsrejects_publish (self, &bad) == 0);
    bad.seq = 8;
    assert (jsrejects_publish (self, &bad) == 0);
    assert (jsrejects_complete (self) == 0);
    assert (s_test_messages (self) == 3);
    assert (jsrejects_probe (self) == 0);
    jsrejects_destroy (&self);

    //  The stream found and accepted again; other limits are a mismatch,
    //  named; a stream name that is the records' is refused
    assert ((self = jsrejects_new (nc, &config, &failure, error, sizeof error)));
    jsrejects_destroy (&self);
    config.max_bytes = 2 << 20;
    assert (!jsrejects_new (nc, &config, &failure, error, sizeof error));
    assert (failure == JSJOURNAL_MISMATCH && strstr (error, "max_bytes=1048576"));
    config.max_bytes = 1 << 20;
    config.name = "OMNITEST";
    assert (!jsrejects_new (nc, &config, &failure, error, sizeof error));
    assert (failure == JSJOURNAL_MISMATCH && strstr (error, "rejects_stream"));
    //  Another name on the same subjects: the cluster refuses the overlap
    config.name = "OTHER_REJECTS";
    assert (!jsrejects_new (nc, &config, &failure, error, sizeof error));
    assert (failure == JSJOURNAL_MISMATCH && strstr (error, "OTHER_REJECTS"));
    config.name = NULL;

    //  The server gone: the round fails within its timeout, said why
    assert ((self = jsrejects_new (nc, &config, &failure, error, sizeof error)));
    natstest_kill (server);
    jsrejects_begin (self);
    bad.seq = 9;
    jsrejects_publish (self, &bad);
    assert (jsrejects_complete (self) == -1 && *jsrejects_error (self));
    jsrejects_abort (self);
    assert (jsrejects_probe (self) == -1 && strstr (jsrejects_error (self), "OMNITEST_REJECTS"));
    jsrejects_destroy (&self);
    natsConnection_Close (nc);
    natsConnection_Destroy (nc);
    natstest_destroy (&server);
    natstest_close_library ();
}
