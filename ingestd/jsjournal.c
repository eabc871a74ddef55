/*  jsjournal: the JetStream journal (see jsjournal.h).

    Why records are published in batches. NATS spends its CPU per message
    (its publish ack, its entry in the stream, its round through the
    stream's Raft group): one message per record cost 54 us of NATS CPU
    per record with three replicas, some 37,000 records/s on two cores at
    best (docs/performance.md). So the records a collector's batch brings
    are grouped by subject (the writers they go to and their kind) and
    each group is one message (proto/jsbatch.h: its layout, and its id, a
    hash of the records' ids, so that the batch sent again is still
    dropped by the stream's duplicate window). Grouped per collector batch
    and not per round: a round's mix of batches depends on timing, so a
    batch sent again would fall into other groups and not be dropped. A
    group is cut in several messages past BATCH_RECORDS_MAX records or
    BATCH_BYTES_MAX bytes (or the servers' max_payload less HEADER_ROOM),
    in order, so the same batch is cut the same way again.

    Why asynchronous publishes and one wait per round. A synchronous
    publish costs a round trip to the stream leader and its replication to
    a quorum, per record. ingestd already acknowledges collectors a round
    at a time, so a round's records are all published without waiting and
    the round waits once, for the last ack: the cluster's replication then
    overlaps the publishing, as LMDB's one fsync per round does.

    Why acks that do not come are published again. A publish ack can be
    lost with the server the connection was on (kill -9): the client
    reconnects to another server, but the reply went to the dead one. The
    round waits in steps of RETRY_MS and publishes what is still pending
    again until ack_timeout; the stream drops what it already holds by the
    message id. An error ack (no stream leader during an election, quorum
    lost) fails the round: nothing of it is acknowledged, intake pauses,
    and the collectors send it again.

    Why the consumers are made here and not by the writers. The stream
    keeps a message while a consumer that wants it has not acknowledged it
    (interest retention): a writer whose consumer did not exist when a
    record came would never see it. ingestd makes every configured writer's
    consumer before it takes the first record.                             */
#include "ingestd/jsjournal.h"
#include "proto/jetstream.h"
#include "proto/jsbatch.h"
#include "common/log.h"
#include "common/util.h"
#include "proto/kinds.h"
#include "testsupport/natstest.h"

#include <assert.h>
#include <czmq.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RETRY_MS          2000      //  acks not come by then: publish again
#define MAX_PENDING       100000    //  asynchronous publishes in flight at most
#define ACK_PENDING_MAX   100000    //  messages a consumer has out unacknowledged at most
#define API_WAIT_MS       5000      //  JetStream API calls (stream and consumer info)
#define HEADER_ROOM       1024      //  max_payload beyond max_record_size: subject and headers
#define WATCH_MS          2000      //  the /metrics gauges are refreshed this often
#define BATCH_RECORDS_MAX 1000      //  records in one message at most
#define BATCH_BYTES_MAX   (1 << 20) //  body bytes of one message at most (unless one record is more)

//  The records of one subject waiting to be published as one message.
typedef struct {
    char subject[OMNI_JS_SUBJECT_MAX];
    omni_js_batch_t batch;
} s_group_t;

struct _jsjournal_t {
    jsjournal_config_t config;
    char *stream;
    char **writers;
    natsConnection *nc;
    jsCtx *js;
    omni_js_pubstate_t pub; //  error acks since begin, the last failure
    uint64_t published;     //  records since begin
    uint64_t messages;      //  messages since begin
    bool publishing;        //  published at least once (nats.c has a pending list)
    size_t max_body;        //  a message's body is cut past this
    s_group_t *groups;      //  of the collector batch being read, by subject
    size_t ngroups, groups_cap;
    //  /metrics: the stream's and consumers' state, refreshed by a thread
    omni_js_watch_t *watch;
    omni_js_gauges_t gauges;
    omni_metric_t **m_pending, **m_ack_pending, **m_redelivered;
    omni_metric_t *m_stored_messages, *m_stored_records;
};

static const char *
s_retention_name (jsRetentionPolicy r)
{
    return r == js_InterestPolicy ? "interest" : r == js_WorkQueuePolicy ? "workqueue" : "limits";
}

//  Makes the stream, or checks the one there. Returns 0, else fills error.
static int
s_stream (jsjournal_t *self, jsjournal_failure_t *failure, char *error, size_t error_size)
{
    char subject[OMNI_JS_SUBJECT_MAX];
    omni_js_stream_subject (self->stream, subject, sizeof subject);
    jsStreamConfig cfg;
    jsStreamConfig_Init (&cfg);
    const char *subjects[] = {subject};
    cfg.Name = self->stream;
    cfg.Description = "OmniAudit records accepted by ingestd (journal: jetstream)";
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Retention = js_InterestPolicy;
    cfg.Storage = self->config.memory ? js_MemoryStorage : js_FileStorage;
    cfg.Replicas = self->config.replicas;
    cfg.Duplicates = self->config.duplicate_window_ms * 1000000;
    bool created;
    jsErrCode code;
    char why[400];
    jsStreamInfo *si =
        omni_js_stream_make (self->js, &cfg, API_WAIT_MS, &created, &code, why, sizeof why);
    if (created)
        log_info ("jetstream.stream_created", "stream=%s subjects=%s replicas=%d storage=%s",
                  self->stream, subject, self->config.replicas,
                  self->config.memory ? "memory" : "file");
    if (!si) {
        snprintf (error, error_size,
                  "JetStream did not answer for stream %s: %s (is JetStream enabled on the "
                  "servers, and do they form a cluster with a leader?)",
                  self->stream, why);
        *failure = JSJOURNAL_UNREACHABLE;
        return -1;
    }
    const jsStreamConfig *have = si->Config;
    int rc = 0;
    if (!omni_js_stream_has_subject (have, subject) || have->Retention != js_InterestPolicy ||
        have->Storage != cfg.Storage || have->Replicas != self->config.replicas) {
        snprintf (error, error_size,
                  "stream %s exists with subjects %s%s retention=%s replicas=%d storage=%s; "
                  "ingestd wants subjects %s retention=interest replicas=%d storage=%s: set "
                  "ingestd.replicas / storage to the stream's, or change or delete the stream "
                  "(nats stream edit / rm) when nothing in it is needed",
                  self->stream, have->SubjectsLen ? have->Subjects[0] : "(none)",
                  have->SubjectsLen > 1 ? ",..." : "", s_retention_name (have->Retention),
                  (int) have->Replicas, have->Storage == js_MemoryStorage ? "memory" : "file",
                  subject, self->config.replicas, self->config.memory ? "memory" : "file");
        *failure = JSJOURNAL_MISMATCH;
        rc = -1;
    }
    jsStreamInfo_Destroy (si);
    return rc;
}

//  Makes the writer's durable consumer, or checks the one there.
static int
s_consumer (jsjournal_t *self, const char *name, jsjournal_failure_t *failure, char *error,
            size_t error_size)
{
    unsigned role = omni_kinds_writer_role (name);
    if (!role) {
        snprintf (error, error_size, "ingestd.writers: \"%s\" is no writer", name);
        *failure = JSJOURNAL_MISMATCH;
        return -1;
    }
    char filter[OMNI_JS_SUBJECT_MAX];
    omni_js_writer_filter (self->stream, role, filter, sizeof filter);
    jsOptions o;
    jsOptions_Init (&o);
    o.Wait = API_WAIT_MS;
    jsConsumerInfo *ci = NULL;
    jsErrCode code = 0;
    natsStatus s = js_GetConsumerInfo (&ci, self->js, self->stream, name, &o, &code);
    if (s != NATS_OK && code == JSConsumerNotFoundErr) {
        jsConsumerConfig cc;
        jsConsumerConfig_Init (&cc);
        cc.Durable = name;
        cc.Description = "OmniAudit writer";
        cc.FilterSubject = filter;
        cc.AckPolicy = js_AckExplicit;
        cc.AckWait = self->config.ack_wait_ms * 1000000;
        cc.DeliverPolicy = js_DeliverAll;
        cc.MaxDeliver = -1;
        cc.MaxAckPending = ACK_PENDING_MAX;
        code = 0;
        s = js_AddConsumer (&ci, self->js, self->stream, &cc, &o, &code);
        if (s == NATS_OK)
            log_info ("jetstream.consumer_created", "stream=%s consumer=%s filter=%s", self->stream,
                      name, filter);
    }
    if (s != NATS_OK) {
        char why[400];
        omni_js_error (s, code, why, sizeof why);
        snprintf (error, error_size, "consumer %s of stream %s: %s", name, self->stream, why);
        *failure = JSJOURNAL_UNREACHABLE;
        return -1;
    }
    int rc = 0;
    const char *have = ci->Config->FilterSubject ? ci->Config->FilterSubject : "";
    if (strcmp (have, filter) || ci->Config->AckPolicy != js_AckExplicit) {
        snprintf (error, error_size,
                  "consumer %s of stream %s exists with filter \"%s\"%s; writer %s's is \"%s\" "
                  "with explicit acks: delete that consumer (nats consumer rm %s %s) once its "
                  "messages are stored",
                  name, self->stream, have,
                  ci->Config->AckPolicy != js_AckExplicit ? " and no explicit acks" : "", name,
                  filter, self->stream, name);
        *failure = JSJOURNAL_MISMATCH;
        rc = -1;
    }
    jsConsumerInfo_Destroy (ci);
    return rc;
}

jsjournal_t *
jsjournal_new (const jsjournal_config_t *config, jsjournal_failure_t *failure, char *error,
               size_t error_size)
{
    *failure = JSJOURNAL_MISMATCH;
    if (!omni_js_stream_name_ok (config->stream)) {
        snprintf (error, error_size,
                  "ingestd.stream: \"%s\" is not a stream name (1..%d of A-Z a-z 0-9 _ -)",
                  config->stream, OMNI_JS_STREAM_MAX);
        return NULL;
    }
    if (config->replicas < 1 || config->replicas > 5) {
        snprintf (error, error_size, "ingestd.replicas: %d is outside 1..5", config->replicas);
        return NULL;
    }
    jsjournal_t *self = calloc (1, sizeof *self);
    assert (self);
    self->config = *config;
    if (!self->config.ack_timeout_ms)
        self->config.ack_timeout_ms = 10000;
    if (!self->config.duplicate_window_ms)
        self->config.duplicate_window_ms = 120000;
    if (!self->config.ack_wait_ms)
        self->config.ack_wait_ms = 30000;
    self->stream = strdup (config->stream);
    omni_js_pubstate_init (&self->pub, "stream", self->stream);
    size_t n = 0;
    while (config->writers && config->writers[n])
        n++;
    self->writers = calloc (n + 1, sizeof *self->writers);
    assert (self->writers);
    for (size_t i = 0; i < n; i++)
        self->writers[i] = strdup (config->writers[i]);
    self->config.writers = (const char *const *) self->writers;
    self->config.stream = self->stream;
    self->config.urls = NULL; //  only needed to connect
    *failure = JSJOURNAL_UNREACHABLE;
    self->nc = omni_js_connect (config->urls, "ingestd", 2000, error, error_size);
    if (!self->nc) {
        jsjournal_destroy (&self);
        return NULL;
    }
    int64_t max_payload = natsConnection_GetMaxPayload (self->nc);
    if ((uint64_t) max_payload < config->max_record_size + HEADER_ROOM + OMNI_JS_BATCH_OVERHEAD) {
        snprintf (error, error_size,
                  "the NATS servers take messages of %" PRId64
                  " bytes at most (max_payload), less than ingestd.max_record_size (%" PRIu64
                  ") and 1 KiB of headers: set max_payload in the servers' config (up to 64MB) or "
                  "lower max_record_size",
                  max_payload, config->max_record_size);
        *failure = JSJOURNAL_MISMATCH;
        jsjournal_destroy (&self);
        return NULL;
    }
    self->max_body = (size_t) max_payload - HEADER_ROOM;
    if (self->max_body > BATCH_BYTES_MAX)
        self->max_body = BATCH_BYTES_MAX;
    natsStatus s = omni_js_publish_context (self->nc, &self->js, API_WAIT_MS, MAX_PENDING,
                                            self->config.ack_timeout_ms, &self->pub);
    if (s != NATS_OK) {
        omni_js_error (s, 0, error, error_size);
        jsjournal_destroy (&self);
        return NULL;
    }
    if (s_stream (self, failure, error, error_size)) {
        jsjournal_destroy (&self);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (s_consumer (self, self->writers[i], failure, error, error_size)) {
            jsjournal_destroy (&self);
            return NULL;
        }
    char url[256] = "";
    natsConnection_GetConnectedUrl (self->nc, url, sizeof url);
    log_info ("jetstream.ready", "stream=%s replicas=%d server=%s writers=%zu", self->stream,
              self->config.replicas, url, n);
    return self;
}

void
jsjournal_destroy (jsjournal_t **self_p)
{
    jsjournal_t *self = *self_p;
    if (!self)
        return;
    omni_js_watch_destroy (&self->watch);
    for (size_t i = 0; i < self->groups_cap; i++)
        omni_js_batch_release (&self->groups[i].batch);
    free (self->groups);
    free (self->m_pending);
    free (self->m_ack_pending);
    free (self->m_redelivered);
    if (self->js)
        jsjournal_abort (self);
    jsCtx_Destroy (self->js);
    if (self->nc) {
        natsConnection_Close (self->nc);
        natsConnection_Destroy (self->nc);
    }
    for (size_t i = 0; self->writers && self->writers[i]; i++)
        free (self->writers[i]);
    free (self->writers);
    free (self->stream);
    omni_js_pubstate_destroy (&self->pub);
    free (self);
    *self_p = NULL;
}

void
jsjournal_begin (jsjournal_t *self)
{
    omni_js_pubstate_reset (&self->pub, false);
    self->published = 0;
    self->messages = 0;
    for (size_t i = 0; i < self->ngroups; i++)
        omni_js_batch_reset (&self->groups[i].batch);
    self->ngroups = 0;
}

//  One group's records as one message, published without waiting.
static int
s_publish_group (jsjournal_t *self, s_group_t *group)
{
    omni_js_batch_t *batch = &group->batch;
    if (!batch->count)
        return 0;
    char id[OMNI_JS_BATCH_ID_SIZE], count[16];
    omni_js_batch_finish (batch, group->subject, id);
    snprintf (count, sizeof count, "%" PRIu32, batch->count);
    natsMsg *msg = NULL;
    natsStatus s =
        natsMsg_Create (&msg, group->subject, NULL, batch->body.data, (int) batch->body.size);
    if (s == NATS_OK)
        s = natsMsgHeader_Set (msg, OMNI_JS_BATCH_HEADER, OMNI_JS_BATCH_VERSION);
    if (s == NATS_OK)
        s = natsMsgHeader_Set (msg, OMNI_JS_RECORDS_HEADER, count);
    jsPubOptions po;
    jsPubOptions_Init (&po);
    po.MsgId = id;
    po.MaxWait = self->config.ack_timeout_ms;
    if (s == NATS_OK)
        s = js_PublishMsgAsync (self->js, &msg, &po); //  takes msg when it succeeds
    natsMsg_Destroy (msg);
    uint32_t records = batch->count;
    omni_js_batch_reset (batch);
    if (s != NATS_OK) {
        char why[400];
        omni_js_error (s, 0, why, sizeof why);
        omni_js_pubstate_set (&self->pub, "publish to stream %s: %s", self->stream, why);
        return -1;
    }
    self->published += records;
    self->messages++;
    self->publishing = true;
    return 0;
}

int
jsjournal_publish (jsjournal_t *self, const omni_record_t *record, const void *data, size_t size,
                   unsigned writers)
{
    char subject[OMNI_JS_SUBJECT_MAX];
    omni_js_record_subject (self->stream, writers, record->kind.ptr, record->kind.len, subject,
                            sizeof subject);
    s_group_t *group = NULL;
    for (size_t i = 0; i < self->ngroups && !group; i++)
        if (strcmp (self->groups[i].subject, subject) == 0)
            group = &self->groups[i];
    if (!group) {
        //  Kept zeroed past ngroups: a group's buffers are used again
        size_t old_cap = self->groups_cap;
        omni_array_reserve (self->groups, self->groups_cap, self->ngroups + 1);
        memset (self->groups + old_cap, 0, (self->groups_cap - old_cap) * sizeof *self->groups);
        group = &self->groups[self->ngroups++];
        memcpy (group->subject, subject, sizeof subject);
    }
    omni_js_batch_t *batch = &group->batch;
    if (batch->count && (batch->count >= BATCH_RECORDS_MAX ||
                         omni_js_batch_size_with (batch, size) > self->max_body))
        if (s_publish_group (self, group))
            return -1;
    omni_js_batch_add (batch, record->id, data, size);
    return 0;
}

int
jsjournal_flush (jsjournal_t *self)
{
    int rc = 0;
    for (size_t i = 0; i < self->ngroups; i++)
        if (rc == 0 && s_publish_group (self, &self->groups[i]))
            rc = -1;
    for (size_t i = 0; i < self->ngroups; i++)
        omni_js_batch_reset (&self->groups[i].batch);
    self->ngroups = 0;
    return rc;
}

//  Publishes again what has no ack yet; returns how many.
static int
s_republish (jsjournal_t *self)
{
    natsMsgList pending = {0};
    if (!self->publishing || js_PublishAsyncGetPendingList (&pending, self->js) != NATS_OK)
        return 0;
    jsPubOptions po;
    jsPubOptions_Init (&po);
    po.MaxWait = self->config.ack_timeout_ms;
    int count = 0;
    for (int i = 0; i < pending.Count; i++)
        if (js_PublishMsgAsync (self->js, &pending.Msgs[i], &po) == NATS_OK)
            count++;
    natsMsgList_Destroy (&pending);
    return count;
}

int
jsjournal_complete (jsjournal_t *self)
{
    if (jsjournal_flush (self))
        return -1;
    int64_t deadline = omni_util_mono_ms () + self->config.ack_timeout_ms;
    natsStatus s;
    for (;;) {
        int64_t left = deadline - omni_util_mono_ms ();
        jsPubOptions po;
        jsPubOptions_Init (&po);
        po.MaxWait = left < 1 ? 1 : left < RETRY_MS ? left : RETRY_MS;
        s = js_PublishAsyncComplete (self->js, &po);
        if (s != NATS_TIMEOUT || left <= RETRY_MS)
            break;
        int again = s_republish (self);
        log_debug ("jetstream.republish", "stream=%s pending=%d", self->stream, again);
    }
    pthread_mutex_lock (&self->pub.lock);
    uint64_t errors = self->pub.errors;
    if (s != NATS_OK && !errors)
        snprintf (self->pub.error, sizeof self->pub.error,
                  "stream %s: the publish acks of %" PRIu64 " messages (%" PRIu64
                  " records) did not all come within %" PRId64 " ms (%s)",
                  self->stream, self->messages, self->published, self->config.ack_timeout_ms,
                  natsStatus_GetText (s));
    pthread_mutex_unlock (&self->pub.lock);
    if (s != NATS_OK || errors)
        return -1;
    if (self->m_stored_messages) {
        omni_metric_add (self->m_stored_messages, self->messages);
        omni_metric_add (self->m_stored_records, self->published);
    }
    return 0;
}

void
jsjournal_abort (jsjournal_t *self)
{
    //  The acks that come later are dropped with the pending list: the
    //  round is not acknowledged, whatever the stream stored of it.
    if (self->publishing)
        omni_js_publish_drop (self->js);
    for (size_t i = 0; i < self->ngroups; i++)
        omni_js_batch_reset (&self->groups[i].batch);
    self->ngroups = 0;
    self->published = 0;
    self->messages = 0;
}

uint64_t
jsjournal_published (jsjournal_t *self)
{
    return self->published;
}

uint64_t
jsjournal_messages (jsjournal_t *self)
{
    return self->messages;
}

const char *
jsjournal_error (jsjournal_t *self)
{
    return self->pub.error;
}

int
jsjournal_probe (jsjournal_t *self)
{
    return omni_js_pubstate_probe (&self->pub, self->js);
}

//  The stream's and consumers' state: into `text` when given, and into the
//  gauges when registered.
void
jsjournal_status (jsjournal_t *self, char *text, size_t size)
{
    if (omni_js_stream_refresh (self->js, self->stream, "stream", 1000, &self->gauges, text, size))
        return;
    int at = text ? (int) strlen (text) : 0;
    jsOptions o;
    jsOptions_Init (&o);
    o.Wait = 1000;
    for (size_t i = 0; self->writers[i]; i++) {
        jsConsumerInfo *ci = NULL;
        bool known =
            js_GetConsumerInfo (&ci, self->js, self->stream, self->writers[i], &o, NULL) == NATS_OK;
        if (text && at > 0 && (size_t) at < size) {
            if (known)
                at += snprintf (text + at, size - (size_t) at,
                                "\nconsumer %s: pending=%" PRIu64 " ack_pending=%" PRId64
                                " redelivered=%" PRId64 " waiting=%" PRId64,
                                self->writers[i], ci->NumPending, ci->NumAckPending,
                                ci->NumRedelivered, ci->NumWaiting);
            else
                at += snprintf (text + at, size - (size_t) at, "\nconsumer %s: unknown",
                                self->writers[i]);
        }
        if (known && self->m_pending) {
            omni_metric_set (self->m_pending[i], (double) ci->NumPending);
            omni_metric_set (self->m_ack_pending[i], (double) ci->NumAckPending);
            omni_metric_set (self->m_redelivered[i], (double) ci->NumRedelivered);
        }
        jsConsumerInfo_Destroy (ci);
    }
}

//  The watcher's thread: the gauges alone
static void
s_watch (void *arg)
{
    jsjournal_status (arg, NULL, 0);
}

void
jsjournal_metrics (jsjournal_t *self, omni_metrics_t *metrics)
{
    if (!metrics || self->watch)
        return;
    self->gauges.messages = omni_metrics_gauge (metrics, "stream_messages",
                                                "journal: jetstream: messages in the stream", NULL);
    self->gauges.bytes = omni_metrics_gauge (metrics, "stream_bytes",
                                             "journal: jetstream: bytes in the stream", NULL);
    self->gauges.current =
        omni_metrics_gauge (metrics, "stream_replicas_current",
                            "journal: jetstream: the stream's replicas that are current", NULL);
    self->m_stored_messages = omni_metrics_counter (
        metrics, "stream_published_messages_total",
        "journal: jetstream: messages the stream acknowledged (each holds many records)", NULL);
    self->m_stored_records =
        omni_metrics_counter (metrics, "stream_published_records_total",
                              "journal: jetstream: records in the messages the stream "
                              "acknowledged",
                              NULL);
    size_t n = 0;
    while (self->writers[n])
        n++;
    self->m_pending = calloc (n + 1, sizeof *self->m_pending);
    self->m_ack_pending = calloc (n + 1, sizeof *self->m_ack_pending);
    self->m_redelivered = calloc (n + 1, sizeof *self->m_redelivered);
    assert (self->m_pending && self->m_ack_pending && self->m_redelivered);
    for (size_t i = 0; i < n; i++) {
        char labels[64];
        snprintf (labels, sizeof labels, "writer=\"%s\"", self->writers[i]);
        self->m_pending[i] = omni_metrics_gauge (
            metrics, "consumer_pending",
            "journal: jetstream: messages (of many records each) a writer has not taken yet",
            labels);
        self->m_ack_pending[i] =
            omni_metrics_gauge (metrics, "consumer_ack_pending",
                                "journal: jetstream: messages a writer took and did not "
                                "acknowledge yet",
                                labels);
        self->m_redelivered[i] = omni_metrics_gauge (
            metrics, "consumer_redelivered",
            "journal: jetstream: messages delivered to a writer more than once (now pending)",
            labels);
    }
    self->watch = omni_js_watch_new (s_watch, self, WATCH_MS);
}

const char *
jsjournal_stream (jsjournal_t *self)
{
    return self->stream;
}

natsConnection *
jsjournal_connection (jsjournal_t *self)
{
    return self->nc;
}

//  ---------------------------------------------------------------------------
//  Self-test: a nats-server of its own, on a free port, JetStream in memory

static void
s_test_record (omni_record_encoder_t *enc, const char *sha, const void **data, size_t *size,
               omni_record_t *record)
{
    omni_record_encoder_begin (enc, "x.test", "repo", "test", "run", 1700000000000000000LL);
    msgpack_packer *pk = omni_record_encoder_body (enc);
    msgpack_pack_map (pk, 1);
    msgpack_pack_str_with_body (pk, "sha", 3);
    msgpack_pack_str_with_body (pk, sha, strlen (sha));
    char detail[256];
    int rc = omni_record_encoder_end (enc, data, size, detail, sizeof detail);
    assert (rc == 0);
    rc = omni_record_check (record, *data, *size, &omni_record_default_limits, detail,
                            sizeof detail);
    assert (rc == REJECT_NONE);
}

void
jsjournal_test (bool verbose)
{
    (void) verbose;
    natstest_t *server = natstest_new ();
    const char *url = natstest_url (server);
    const char *urls[] = {url, NULL};
    const char *writers[] = {"archive", "relational", NULL};
    jsjournal_config_t config = {.urls = urls,
                                 .stream = "OMNITEST",
                                 .replicas = 1,
                                 .memory = true,
                                 .ack_timeout_ms = 3000,
                                 .max_record_size = 64 << 10,
                                 .writers = writers};
    char error[1024];
    jsjournal_failure_t failure;
    //  No server: unreachable, said so
    jsjournal_t *js = jsjournal_new (&config, &failure, error, sizeof error);
    assert (!js && failure == JSJOURNAL_UNREACHABLE && strstr (error, url));
    natstest_start (server);
    for (int i = 0; i < 200 && !js; i++) {
        js = jsjournal_new (&config, &failure, error, sizeof error);
        if (!js)
            zclock_sleep (50);
    }
    assert (js);
    //  Collector batches of one record each, the first sent again: each
    //  batch once however often published
    omni_record_encoder_t *enc = omni_record_encoder_new ();
    jsjournal_begin (js);
    for (int i = 0; i < 3; i++) {
        const void *data;
        size_t size;
        omni_record_t record;
        char sha[41];
        snprintf (sha, sizeof sha, "%040d", i % 2);
        s_test_record (enc, sha, &data, &size, &record);
        assert (jsjournal_publish (js, &record, data, size, WRITER_ARCHIVE | WRITER_RELATIONAL) ==
                0);
        assert (jsjournal_flush (js) == 0);
    }
    assert (jsjournal_published (js) == 3 && jsjournal_messages (js) == 3);
    assert (jsjournal_complete (js) == 0);
    assert (jsjournal_probe (js) == 0);
    char status[1024];
    jsjournal_status (js, status, sizeof status);
    assert (strstr (status, "messages=2"));
    assert (strstr (status, "consumer relational: pending=2"));
    //  A batch of 2,500 records on two routes: a message per route and
    //  BATCH_RECORDS_MAX records (1,000 + 1,000 to both writers, 500 to the
    //  archive alone), the same messages when it comes again
    for (int again = 0; again < 2; again++) {
        jsjournal_begin (js);
        for (int i = 0; i < 2500; i++) {
            const void *data;
            size_t size;
            omni_record_t record;
            char sha[41];
            snprintf (sha, sizeof sha, "%040d", 100 + i);
            s_test_record (enc, sha, &data, &size, &record);
            unsigned to = i % 5 ? WRITER_ARCHIVE | WRITER_RELATIONAL : WRITER_ARCHIVE;
            assert (jsjournal_publish (js, &record, data, size, to) == 0);
        }
        //  complete sends what the last flush did not
        assert (jsjournal_complete (js) == 0);
        assert (jsjournal_published (js) == 2500 && jsjournal_messages (js) == 3);
    }
    jsjournal_status (js, status, sizeof status);
    assert (strstr (status, "messages=5"));
    assert (strstr (status, "consumer relational: pending=4"));
    jsjournal_destroy (&js);
    //  The same again: the stream and consumers are found and accepted
    js = jsjournal_new (&config, &failure, error, sizeof error);
    assert (js);
    jsjournal_destroy (&js);
    //  Other settings than the stream's: a mismatch, named
    config.replicas = 3;
    js = jsjournal_new (&config, &failure, error, sizeof error);
    assert (!js && failure == JSJOURNAL_MISMATCH && strstr (error, "replicas=1"));
    config.replicas = 1;
    config.memory = false;
    js = jsjournal_new (&config, &failure, error, sizeof error);
    assert (!js && failure == JSJOURNAL_MISMATCH && strstr (error, "storage=memory"));
    config.memory = true;
    //  Records larger than the servers take
    config.max_record_size = 4 << 20;
    js = jsjournal_new (&config, &failure, error, sizeof error);
    assert (!js && failure == JSJOURNAL_MISMATCH && strstr (error, "max_payload"));
    config.max_record_size = 64 << 10;
    //  The server gone: the round fails within its timeout, said why
    js = jsjournal_new (&config, &failure, error, sizeof error);
    assert (js);
    natstest_kill (server);
    jsjournal_begin (js);
    const void *data;
    size_t size;
    omni_record_t record;
    s_test_record (enc, "0000000000000000000000000000000000000009", &data, &size, &record);
    jsjournal_publish (js, &record, data, size, WRITER_ARCHIVE);
    assert (jsjournal_complete (js) == -1);
    assert (*jsjournal_error (js));
    jsjournal_abort (js);
    assert (jsjournal_probe (js) == -1);
    jsjournal_destroy (&js);
    omni_record_encoder_destroy (&enc);
    natstest_destroy (&server);
    natstest_close_library ();
}
