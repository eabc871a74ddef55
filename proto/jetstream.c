/*  jetstream: the subjects of OmniAudit's stream and the connection to a
    NATS cluster (see jetstream.h).

    Why the connection options are fixed here. ingestd and every writer
    must behave alike when a node goes: reconnect for ever, to any server
    of the cluster (the servers a connection learns of included), quickly
    (250 ms between rounds), and notice a dead server in seconds (a ping
    every 2 s, two unanswered close it) rather than TCP's minutes. What
    was published while disconnected waits in the client's buffer; ingestd
    does not acknowledge it before the stream's ack, so a lost buffer is
    only a batch the collector sends again.

    Why a write deadline. A server cut off the network (no reset, packets
    just lost) stops reading: once the socket's send buffer is full, a
    blocking send() waits for TCP's retransmissions to give up, a quarter
    of an hour, holding the connection's lock, so the pings that would
    notice the dead server cannot be sent either and nothing reconnects
    (seen with a host cut off in tests/test_multihost.py). With a deadline
    the write fails, the lock is let go, and the pings close the
    connection and move it to another server within seconds.                */
#include "proto/jetstream.h"
#include "common/log.h"
#include "common/util.h"
#include "proto/kinds.h"

#include <assert.h>
#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define S_MAKE_ATTEMPTS 3 //  omni_js_stream_make: tries of a request that timed out

#define RECONNECT_WAIT_MS 250
#define PING_INTERVAL_MS  2000
#define PINGS_OUT         2
#define WRITE_DEADLINE_MS 2000
#define RECONNECT_BUF     (64 << 20) //  publishes held while reconnecting

static const char s_role_tokens[WRITER_MAX] = {'a', 'r', 'd', 'm'};

bool
omni_js_stream_name_ok (const char *name)
{
    size_t len = name ? strlen (name) : 0;
    if (len == 0 || len > OMNI_JS_STREAM_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum ((unsigned char) name[i]) && name[i] != '_' && name[i] != '-')
            return false;
    return true;
}

//  "<prefix>" of a stream: its name in lower case.
static size_t
s_prefix (const char *stream, char *out, size_t size)
{
    size_t n = 0;
    for (; stream[n] && n + 1 < size; n++)
        out[n] = (char) tolower ((unsigned char) stream[n]);
    out[n] = 0;
    return n;
}

void
omni_js_stream_subject (const char *stream, char *out, size_t size)
{
    char prefix[OMNI_JS_STREAM_MAX + 1];
    s_prefix (stream, prefix, sizeof prefix);
    snprintf (out, size, "%s.rec.>", prefix);
}

void
omni_js_record_subject (const char *stream, unsigned writers, const char *kind, size_t kind_len,
                        char *out, size_t size)
{
    char prefix[OMNI_JS_STREAM_MAX + 1];
    s_prefix (stream, prefix, sizeof prefix);
    int n = snprintf (out, size, "%s.rec", prefix);
    assert (n > 0 && (size_t) n < size);
    size_t at = (size_t) n;
    for (unsigned i = 0; i < WRITER_MAX && at + 3 < size; i++) {
        out[at++] = '.';
        out[at++] = (writers & (1u << i)) ? s_role_tokens[i] : '_';
    }
    if (at + 1 < size)
        out[at++] = '.';
    //  The kind: its dots separate tokens, as in the kinds table; a byte a
    //  token cannot hold (blank, wildcard, control, non-ASCII), an empty
    //  token or a trailing dot becomes '_'.
    size_t start = at;
    for (size_t i = 0; i < kind_len && at + 1 < size; i++) {
        char c = kind[i];
        bool dot_ok = c == '.' && at > start && out[at - 1] != '.' && i + 1 < kind_len;
        out[at++] = isalnum ((unsigned char) c) || c == '_' || c == '-' || dot_ok ? c : '_';
    }
    if (at == start && at + 1 < size)
        out[at++] = '_';
    out[at] = 0;
}

void
omni_js_writer_filter (const char *stream, unsigned role, char *out, size_t size)
{
    char prefix[OMNI_JS_STREAM_MAX + 1];
    s_prefix (stream, prefix, sizeof prefix);
    char tokens[2 * WRITER_MAX + 1];
    size_t at = 0;
    for (unsigned i = 0; i < WRITER_MAX; i++) {
        tokens[at++] = '.';
        tokens[at++] = role == (1u << i) ? s_role_tokens[i] : '*';
    }
    tokens[at] = 0;
    snprintf (out, size, "%s.rec%s.>", prefix, tokens);
}

void
omni_js_rejects_name (const char *stream, char *out, size_t size)
{
    snprintf (out, size, "%s_REJECTS", stream);
}

void
omni_js_rejects_subject (const char *stream, const char *reason, char *out, size_t size)
{
    char prefix[OMNI_JS_STREAM_MAX + 1];
    s_prefix (stream, prefix, sizeof prefix);
    snprintf (out, size, "%s.rejects.%s", prefix, reason ? reason : ">");
}

int
omni_js_stream_text (const jsStreamInfo *si, const char *label, char *out, size_t size)
{
    int current = 1, replicas = 1;
    const jsClusterInfo *cluster = si->Cluster;
    if (cluster) {
        replicas = 1 + cluster->ReplicasLen;
        for (int i = 0; i < cluster->ReplicasLen; i++)
            current += cluster->Replicas[i]->Current && !cluster->Replicas[i]->Offline;
    }
    int at = snprintf (
        out, size, "%s %s: messages=%" PRIu64 " bytes=%" PRIu64 " replicas=%d current=%d leader=%s",
        label, si->Config && si->Config->Name ? si->Config->Name : "?", si->State.Msgs,
        si->State.Bytes, replicas, current,
        cluster && cluster->Leader && *cluster->Leader ? cluster->Leader : "-");
    //  Which replica is behind, and how far (operations it has not applied)
    for (int i = 0, n = 0; cluster && i < cluster->ReplicasLen; i++) {
        const jsPeerInfo *peer = cluster->Replicas[i];
        if (at < 0 || (size_t) at >= size || (peer->Current && !peer->Offline))
            continue;
        char lag[32];
        snprintf (lag, sizeof lag, "%" PRIu64, peer->Lag);
        at += snprintf (out + at, size - (size_t) at, "%s%s:%s",
                        n++ ? "," : " lagging=", peer->Name ? peer->Name : "?",
                        peer->Offline ? "offline" : lag);
    }
    return current;
}

jsStreamInfo *
omni_js_stream_info (jsCtx *js, const char *stream, int64_t wait_ms, jsErrCode *code, char *why,
                     size_t why_size)
{
    jsOptions o;
    jsOptions_Init (&o);
    o.Wait = wait_ms;
    jsStreamInfo *si = NULL;
    jsErrCode error_code = 0;
    natsStatus s = js_GetStreamInfo (&si, js, stream, &o, &error_code);
    if (code)
        *code = error_code;
    if (s == NATS_OK)
        return si;
    omni_js_error (s, error_code, why, why_size);
    return NULL;
}

int
omni_js_stream_refresh (jsCtx *js, const char *stream, const char *label, int64_t wait_ms,
                        const omni_js_gauges_t *gauges, char *text, size_t size)
{
    char why[300];
    jsStreamInfo *si = omni_js_stream_info (js, stream, wait_ms, NULL, why, sizeof why);
    if (!si) {
        if (text)
            snprintf (text, size, "%s %s: unreachable (%s)", label, stream, why);
        return -1;
    }
    char line[512];
    int current = omni_js_stream_text (si, label, line, sizeof line);
    if (text)
        snprintf (text, size, "%s", line);
    if (gauges->messages) {
        omni_metric_set (gauges->messages, (double) si->State.Msgs);
        omni_metric_set (gauges->bytes, (double) si->State.Bytes);
        omni_metric_set (gauges->current, current);
    }
    jsStreamInfo_Destroy (si);
    return 0;
}

jsStreamInfo *
omni_js_stream_make (jsCtx *js, jsStreamConfig *cfg, int64_t wait_ms, bool *created,
                     jsErrCode *code, char *why, size_t why_size)
{
    *created = false;
    jsOptions o;
    jsOptions_Init (&o);
    o.Wait = wait_ms;
    jsStreamInfo *si = NULL;
    natsStatus s = NATS_TIMEOUT;
    //  A cluster that has just elected its meta leader can leave the first
    //  API requests unanswered while its peers catch up (seen: a new
    //  three-replica stream not made within 5 s on a busy machine). Making
    //  the stream is idempotent (an existing one is read back), so a timeout
    //  is asked again, a few times, before it counts as no answer; a cluster
    //  that is down fails earlier, at the connection.
    for (int attempt = 0; attempt < S_MAKE_ATTEMPTS && s == NATS_TIMEOUT; attempt++) {
        *code = 0;
        s = js_GetStreamInfo (&si, js, cfg->Name, &o, code);
        if (s != NATS_OK && *code == JSStreamNotFoundErr) {
            *code = 0;
            s = js_AddStream (&si, js, cfg, &o, code);
            if (s == NATS_OK)
                *created = true;
            else if (*code == JSStreamNameExistErr) //  another ingestd made it first
                s = js_GetStreamInfo (&si, js, cfg->Name, &o, code);
        }
    }
    if (s == NATS_OK)
        return si;
    omni_js_error (s, *code, why, why_size);
    return NULL;
}

bool
omni_js_stream_has_subject (const jsStreamConfig *config, const char *subject)
{
    for (int i = 0; i < config->SubjectsLen; i++)
        if (strcmp (config->Subjects[i], subject) == 0)
            return true;
    return false;
}

int
omni_js_stream_probe (jsCtx *js, const char *stream, const char *label, char *error,
                      size_t error_size)
{
    char why[400];
    jsStreamInfo *si = omni_js_stream_info (js, stream, 1000, NULL, why, sizeof why);
    bool led = si && (!si->Cluster || (si->Cluster->Leader && *si->Cluster->Leader));
    if (!si)
        snprintf (error, error_size, "%s %s does not answer: %s", label, stream, why);
    else if (!led)
        snprintf (error, error_size, "%s %s has no leader", label, stream);
    jsStreamInfo_Destroy (si);
    return led ? 0 : -1;
}

struct _omni_js_watch_t {
    void (*refresh) (void *arg);
    void *arg;
    int64_t interval_ms;
    pthread_t thread;
    atomic_bool stopping;
};

static void *
s_watch (void *arg)
{
    omni_js_watch_t *self = arg;
    while (!atomic_load (&self->stopping)) {
        self->refresh (self->arg);
        for (int64_t i = 0; i < self->interval_ms / 100 && !atomic_load (&self->stopping); i++)
            usleep (100 * 1000);
    }
    return NULL;
}

omni_js_watch_t *
omni_js_watch_new (void (*refresh) (void *arg), void *arg, int64_t interval_ms)
{
    omni_js_watch_t *self = calloc (1, sizeof *self);
    assert (self);
    self->refresh = refresh;
    self->arg = arg;
    self->interval_ms = interval_ms;
    atomic_init (&self->stopping, false);
    if (pthread_create (&self->thread, NULL, s_watch, self)) {
        log_error ("jetstream.watch", "error=\"no thread: the stream gauges stay 0\"");
        free (self);
        return NULL;
    }
    return self;
}

void
omni_js_watch_destroy (omni_js_watch_t **self_p)
{
    omni_js_watch_t *self = *self_p;
    if (!self)
        return;
    atomic_store (&self->stopping, true);
    pthread_join (self->thread, NULL);
    free (self);
    *self_p = NULL;
}

void
omni_js_pubstate_init (omni_js_pubstate_t *self, const char *label, const char *name)
{
    memset (self, 0, sizeof *self);
    pthread_mutex_init (&self->lock, NULL);
    self->label = label;
    self->name = name;
}

void
omni_js_pubstate_destroy (omni_js_pubstate_t *self)
{
    pthread_mutex_destroy (&self->lock);
}

void
omni_js_pubstate_set (omni_js_pubstate_t *self, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    pthread_mutex_lock (&self->lock);
    vsnprintf (self->error, sizeof self->error, format, args);
    pthread_mutex_unlock (&self->lock);
    va_end (args);
}

void
omni_js_pubstate_reset (omni_js_pubstate_t *self, bool clear)
{
    pthread_mutex_lock (&self->lock);
    self->errors = 0;
    if (clear)
        self->error[0] = 0;
    pthread_mutex_unlock (&self->lock);
}

int
omni_js_pubstate_probe (omni_js_pubstate_t *self, jsCtx *js)
{
    char error[sizeof self->error];
    if (omni_js_stream_probe (js, self->name, self->label, error, sizeof error) == 0)
        return 0;
    omni_js_pubstate_set (self, "%s", error);
    return -1;
}

//  A nats.c thread: the stream refused a message, or its ack timed out.
static void
s_publish_error (jsCtx *js, jsPubAckErr *pae, void *closure)
{
    (void) js;
    omni_js_pubstate_t *self = closure;
    pthread_mutex_lock (&self->lock);
    self->errors++;
    snprintf (self->error, sizeof self->error, "publish to %s %s failed: %s%s%s (error %d)",
              self->label, self->name, natsStatus_GetText (pae->Err), pae->ErrText ? ": " : "",
              pae->ErrText ? pae->ErrText : "", (int) pae->ErrCode);
    pthread_mutex_unlock (&self->lock);
}

natsStatus
omni_js_publish_context (natsConnection *nc, jsCtx **js, int64_t wait_ms, int64_t max_pending,
                         int64_t stall_wait_ms, omni_js_pubstate_t *state)
{
    jsOptions o;
    jsOptions_Init (&o);
    o.Wait = wait_ms;
    o.PublishAsync.MaxPending = max_pending;
    o.PublishAsync.ErrHandler = s_publish_error;
    o.PublishAsync.ErrHandlerClosure = state;
    o.PublishAsync.StallWait = stall_wait_ms;
    return natsConnection_JetStream (js, nc, &o);
}

void
omni_js_publish_drop (jsCtx *js)
{
    natsMsgList pending = {0};
    if (js_PublishAsyncGetPendingList (&pending, js) == NATS_OK)
        natsMsgList_Destroy (&pending);
}

natsStatus
omni_js_publish_wait (jsCtx *js, int64_t timeout_ms, int64_t retry_ms)
{
    int64_t deadline = omni_util_mono_ms () + timeout_ms;
    for (;;) {
        int64_t left = deadline - omni_util_mono_ms ();
        jsPubOptions po;
        jsPubOptions_Init (&po);
        po.MaxWait = left < 1 ? 1 : left < retry_ms ? left : retry_ms;
        natsStatus s = js_PublishAsyncComplete (js, &po);
        if (s != NATS_TIMEOUT || left <= retry_ms)
            return s;
        natsMsgList pending = {0};
        if (js_PublishAsyncGetPendingList (&pending, js) != NATS_OK)
            continue; //  nothing pending any more
        jsPubOptions_Init (&po);
        po.MaxWait = timeout_ms;
        for (int i = 0; i < pending.Count; i++)
            js_PublishMsgAsync (js, &pending.Msgs[i], &po);
        natsMsgList_Destroy (&pending);
    }
}

void
omni_js_error (natsStatus status, jsErrCode code, char *out, size_t size)
{
    natsStatus last = NATS_OK;
    const char *text = nats_GetLastError (&last);
    int n = snprintf (out, size, "%s", natsStatus_GetText (status));
    if (code && n >= 0 && (size_t) n < size)
        n += snprintf (out + n, size - (size_t) n, " (JetStream error %d)", (int) code);
    if (text && *text && n >= 0 && (size_t) n < size)
        snprintf (out + n, size - (size_t) n, ": %s", text);
}

static void
s_disconnected (natsConnection *nc, void *closure)
{
    if (natsConnection_IsClosed (nc))
        return; //  closed by this process: nothing to say
    log_warn ("nats.disconnected", "name=%s (reconnecting)", (const char *) closure);
}

static void
s_reconnected (natsConnection *nc, void *closure)
{
    char url[256] = "";
    natsConnection_GetConnectedUrl (nc, url, sizeof url);
    log_info ("nats.reconnected", "name=%s url=%s", (const char *) closure, url);
}

natsConnection *
omni_js_connect (const char *const *urls, const char *name, int64_t timeout_ms, char *error,
                 size_t error_size)
{
    int count = 0;
    while (urls && urls[count])
        count++;
    if (!count) {
        snprintf (error, error_size, "no NATS server URL given");
        return NULL;
    }
    natsOptions *opts = NULL;
    natsConnection *nc = NULL;
    natsStatus s = natsOptions_Create (&opts);
    if (s == NATS_OK)
        s = natsOptions_SetServers (opts, (const char **) urls, count);
    if (s == NATS_OK)
        s = natsOptions_SetName (opts, name);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout (opts, timeout_ms);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect (opts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait (opts, RECONNECT_WAIT_MS);
    if (s == NATS_OK)
        s = natsOptions_SetPingInterval (opts, PING_INTERVAL_MS);
    if (s == NATS_OK)
        s = natsOptions_SetMaxPingsOut (opts, PINGS_OUT);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectBufSize (opts, RECONNECT_BUF);
    if (s == NATS_OK)
        s = natsOptions_SetWriteDeadline (opts, WRITE_DEADLINE_MS);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB (opts, s_disconnected, (void *) name);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB (opts, s_reconnected, (void *) name);
    if (s == NATS_OK)
        s = natsConnection_Connect (&nc, opts);
    if (s != NATS_OK) {
        char why[256];
        omni_js_error (s, 0, why, sizeof why);
        char list[512] = "";
        for (int i = 0, at = 0; i < count && at < (int) sizeof list; i++)
            at += snprintf (list + at, sizeof list - (size_t) at, "%s%s", i ? "," : "", urls[i]);
        snprintf (error, error_size, "no NATS server of %s answered within %lld ms: %s", list,
                  (long long) timeout_ms, why);
        nc = NULL;
    }
    natsOptions_Destroy (opts);
    return nc;
}

static void
s_test_count (void *arg)
{
    atomic_fetch_add ((atomic_int *) arg, 1);
}

void
omni_js_test (bool verbose)
{
    (void) verbose;
    char out[OMNI_JS_SUBJECT_MAX];
    assert (omni_js_stream_name_ok ("OMNI"));
    assert (omni_js_stream_name_ok ("omni_test-2"));
    assert (!omni_js_stream_name_ok (""));
    assert (!omni_js_stream_name_ok ("a.b"));
    assert (!omni_js_stream_name_ok ("a*"));
    omni_js_stream_subject ("OMNI", out, sizeof out);
    assert (strcmp (out, "omni.rec.>") == 0);
    omni_js_record_subject ("OMNI", WRITER_ALL, "git.commit", 10, out, sizeof out);
    assert (strcmp (out, "omni.rec.a.r.d.m.git.commit") == 0);
    omni_js_record_subject ("Omni", WRITER_ARCHIVE | WRITER_DOCUMENT, "host.cpu", 8, out,
                            sizeof out);
    assert (strcmp (out, "omni.rec.a._.d._.host.cpu") == 0);
    //  What a token cannot hold
    omni_js_record_subject ("OMNI", WRITER_ARCHIVE, "x.a b*>..\xc3\xa9.", 12, out, sizeof out);
    assert (strcmp (out, "omni.rec.a._._._.x.a_b__.____") == 0);
    omni_js_record_subject ("OMNI", 0, "", 0, out, sizeof out);
    assert (strcmp (out, "omni.rec._._._._._") == 0);
    //  Never past the buffer
    char small[20];
    omni_js_record_subject ("OMNI", WRITER_ALL, "git.commit", 10, small, sizeof small);
    assert (strlen (small) < sizeof small);
    //  A stream's subjects against the one wanted
    jsStreamConfig have;
    jsStreamConfig_Init (&have);
    const char *have_subjects[] = {"other.>", "omni.rec.>"};
    have.Subjects = have_subjects;
    assert (!omni_js_stream_has_subject (&have, "omni.rec.>"));
    have.SubjectsLen = 2;
    assert (omni_js_stream_has_subject (&have, "omni.rec.>"));
    assert (!omni_js_stream_has_subject (&have, "omni.rec.*"));

    //  The publish errors of a round, as nats.c's thread reports them
    omni_js_pubstate_t state;
    omni_js_pubstate_init (&state, "rejects stream", "OMNI_REJECTS");
    jsPubAckErr pae = {.Err = NATS_TIMEOUT};
    s_publish_error (NULL, &pae, &state);
    pae = (jsPubAckErr){.Err = NATS_ERR, .ErrCode = 10077, .ErrText = "maximum messages"};
    s_publish_error (NULL, &pae, &state);
    assert (state.errors == 2);
    assert (strcmp (state.error, "publish to rejects stream OMNI_REJECTS failed: Error: maximum "
                                 "messages (error 10077)") == 0);
    omni_js_pubstate_reset (&state, false);
    assert (state.errors == 0 && *state.error);
    omni_js_pubstate_set (&state, "stream %s: %d", "OMNI", 7);
    assert (strcmp (state.error, "stream OMNI: 7") == 0);
    omni_js_pubstate_reset (&state, true);
    assert (state.errors == 0 && !*state.error);
    omni_js_pubstate_destroy (&state);
    omni_js_writer_filter ("OMNI", WRITER_RELATIONAL, out, sizeof out);
    assert (strcmp (out, "omni.rec.*.r.*.*.>") == 0);
    omni_js_writer_filter ("OMNI", WRITER_METRICS, out, sizeof out);
    assert (strcmp (out, "omni.rec.*.*.*.m.>") == 0);
    //  The rejects stream: its own subjects, beside the records'
    omni_js_rejects_name ("OMNI", out, sizeof out);
    assert (strcmp (out, "OMNI_REJECTS") == 0);
    omni_js_rejects_subject ("OMNI", NULL, out, sizeof out);
    assert (strcmp (out, "omni.rejects.>") == 0);
    omni_js_rejects_subject ("Omni", "bad_body", out, sizeof out);
    assert (strcmp (out, "omni.rejects.bad_body") == 0);
    //  A stream's line: the replicas behind named
    jsStreamConfig sc = {.Name = "OMNI"};
    jsPeerInfo current = {.Name = "n1", .Current = true}, behind = {.Name = "n2", .Lag = 42};
    jsPeerInfo *peers[] = {&current, &behind};
    jsClusterInfo cluster = {.Leader = "n0", .Replicas = peers, .ReplicasLen = 2};
    jsStreamInfo si = {.Config = &sc, .Cluster = &cluster};
    si.State.Msgs = 5;
    assert (omni_js_stream_text (&si, "stream", out, sizeof out) == 2);
    assert (strcmp (out, "stream OMNI: messages=5 bytes=0 replicas=3 current=2 leader=n0 "
                         "lagging=n2:42") == 0);
    behind.Offline = true;
    current.Current = false;
    assert (omni_js_stream_text (&si, "rejects", out, sizeof out) == 1);
    assert (strstr (out, "rejects OMNI: ") && strstr (out, " lagging=n1:0,n2:offline"));
    si.Cluster = NULL;
    assert (omni_js_stream_text (&si, "stream", out, sizeof out) == 1);
    assert (strstr (out, "replicas=1 current=1 leader=-") && !strstr (out, "lagging"));
    //  The watcher: at once, then every interval, until destroyed
    atomic_int count;
    atomic_init (&count, 0);
    omni_js_watch_t *watch = omni_js_watch_new (s_test_count, &count, 100);
    assert (watch);
    while (atomic_load (&count) < 3)
        usleep (10 * 1000);
    omni_js_watch_destroy (&watch);
    int seen = atomic_load (&count);
    usleep (250 * 1000);
    assert (!watch && atomic_load (&count) == seen);
    //  No server at all: a clear error, quickly
    const char *urls[] = {"nats://127.0.0.1:1", NULL};
    char error[512];
    natsConnection *nc = omni_js_connect (urls, "test", 500, error, sizeof error);
    assert (!nc);
    assert (strstr (error, "nats://127.0.0.1:1"));
    const char *none[] = {NULL};
    assert (!omni_js_connect (none, "test", 500, error, sizeof error));
}
