/*  jetstream: how OmniAudit lays its records out in a NATS JetStream
    stream, shared by ingestd (which publishes, and creates the stream and
    one durable consumer per writer) and the writers (which pull from their
    consumer), so that both sides spell the subjects the same way.

    A record's subject names the writers it is routed to, one token per
    writer role, then its kind:
        <prefix>.rec.<a|_>.<r|_>.<d|_>.<m|_>.<kind>
    (archive, relational, document, metrics; `_` where not routed), and a
    writer's consumer filters on its own token: relational takes
    <prefix>.rec.*.r.*.*.>. One filter subject per consumer is all
    nats-server 2.9 has, and a kind's routes are no single wildcard of
    kinds; tokens per writer are, REPLAY's narrower routes included.
    <prefix> is the stream name in lower case (OMNI: omni.rec.>).

    What ingestd rejects goes to a stream of its own (limits retention: a
    reject is kept for inspection, not delivered), <stream>_REJECTS by
    default, a reject's subject <prefix>.rejects.<reason>, the input's
    bytes as the message and the OMNI_JS_HDR_* headers saying why, when and
    from whom. ingestd writes them (ingestd/jsrejects.c), omnictl rejects
    reads them.                                                            */
#ifndef OMNI_JETSTREAM_H
#define OMNI_JETSTREAM_H

#include "common/metrics.h"
#include <nats/nats.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OMNI_JS_SUBJECT_MAX 256
#define OMNI_JS_STREAM_MAX  64

//  Whether `name` can be a stream name here: 1..64 of [A-Za-z0-9_-].
bool omni_js_stream_name_ok (const char *name);

//  The stream's subjects: "<prefix>.rec.>".
void omni_js_stream_subject (const char *stream, char *out, size_t size);

//  The subject of a record of `kind` (`kind_len` bytes) routed to the
//  writer roles in `writers` (omni_writer_role_t bits). Characters of the
//  kind that a subject cannot hold become `_` (the subject only routes;
//  the record's bytes are what is stored).
void omni_js_record_subject (const char *stream, unsigned writers, const char *kind,
                             size_t kind_len, char *out, size_t size);

//  The filter subject of the consumer of writer `role` (one bit).
void omni_js_writer_filter (const char *stream, unsigned role, char *out, size_t size);

//  The rejects stream's default name: "<stream>_REJECTS".
void omni_js_rejects_name (const char *stream, char *out, size_t size);

//  The subject of a reject of `reason` ([a-z_]), or with `reason` NULL
//  the rejects stream's subjects: "<prefix>.rejects.>".
void omni_js_rejects_subject (const char *stream, const char *reason, char *out, size_t size);

//  The headers of a reject (the message is the input's bytes, cut at the
//  record size limit: OMNI_JS_HDR_SIZE says how large it was).
#define OMNI_JS_HDR_REASON   "Omni-Reason"   //  too_large, bad_body, ..., bad_frame
#define OMNI_JS_HDR_DETAIL   "Omni-Detail"   //  what the check found, as the tap says it
#define OMNI_JS_HDR_RECEIVED "Omni-Received" //  when ingestd received it, ns since the epoch
#define OMNI_JS_HDR_SIZE     "Omni-Size"     //  bytes of the input
#define OMNI_JS_HDR_PEER     "Omni-Peer"     //  the collector's address (host:port), when TCP
#define OMNI_JS_HDR_KEY      "Omni-Key"      //  the collector's CURVE certificate name
#define OMNI_JS_HDR_SEQ      "Omni-Seq"      //  the batch's seq, when the message had one
#define OMNI_JS_HDR_FRAME    "Omni-Frame"    //  the record's place in its batch, from 1
#define OMNI_JS_HDR_KIND     "Omni-Kind"     //  envelope fields read before the check
#define OMNI_JS_HDR_SRC      "Omni-Src"      //  failed, when it got that far
#define OMNI_JS_HDR_COL      "Omni-Col"
#define OMNI_JS_HDR_INGESTD  "Omni-Ingestd" //  the ingestd instance (host, journal id)

//  One line of a stream's state for /health and omnictl status:
//  "<label> NAME: messages=N bytes=N replicas=R current=C leader=L", then
//  " lagging=PEER:LAG,PEER:offline" when a replica is not current. Returns
//  the replicas that are current (the leader is one).
int omni_js_stream_text (const jsStreamInfo *si, const char *label, char *out, size_t size);

//  The /metrics gauges of a stream's state (each registered by its owner,
//  under names of its own; all NULL until then).
typedef struct {
    omni_metric_t *messages, *bytes, *current;
} omni_js_gauges_t;

//  The state of `stream`, asked with a wait of `wait_ms`: its line
//  (omni_js_stream_text) into `text` when given, or "<label> NAME:
//  unreachable (WHY)" when it does not answer; and into `gauges` when
//  registered. Returns 0, or -1 when it does not answer.
int omni_js_stream_refresh (jsCtx *js, const char *stream, const char *label, int64_t wait_ms,
                            const omni_js_gauges_t *gauges, char *text, size_t size);

//  A stream's info, asked with a wait of `wait_ms`: NULL with `why` (and
//  the JetStream error in `*code`, if given) when it does not answer.
jsStreamInfo *omni_js_stream_info (jsCtx *js, const char *stream, int64_t wait_ms, jsErrCode *code,
                                   char *why, size_t why_size);

//  The info of stream `cfg->Name`, made with `cfg` when there is none
//  (`*created` then set; one that another process made in the meantime is
//  read back): NULL with `why` and the JetStream error in `*code` when
//  neither works. The caller checks what it finds against what it wants.
jsStreamInfo *omni_js_stream_make (jsCtx *js, jsStreamConfig *cfg, int64_t wait_ms, bool *created,
                                   jsErrCode *code, char *why, size_t why_size);

//  Whether the stream of `config` takes `subject` (one of its subjects).
bool omni_js_stream_has_subject (const jsStreamConfig *config, const char *subject);

//  Whether `stream` answers now, with a leader: 0, or -1 with `error`
//  ("<label> NAME does not answer: ..." or "... has no leader").
int omni_js_stream_probe (jsCtx *js, const char *stream, const char *label, char *error,
                          size_t error_size);

//  Calls `refresh (arg)` at once and then every `interval_ms` in a thread
//  of its own until destroyed (the /metrics gauges of the streams).
typedef struct _omni_js_watch_t omni_js_watch_t;
omni_js_watch_t *omni_js_watch_new (void (*refresh) (void *arg), void *arg, int64_t interval_ms);
void omni_js_watch_destroy (omni_js_watch_t **self_p);

//  What the asynchronous publishes of a JetStream context report from
//  nats.c's thread (its publish error handler) to the round that reads
//  them: the messages refused or not acknowledged, and the last error,
//  under a lock. ingestd's records stream and its rejects stream each
//  hold one (ingestd/jsjournal.c, ingestd/jsrejects.c).
typedef struct {
    pthread_mutex_t lock;
    uint64_t errors; //  publish errors since the last reset
    char error[512];
    const char *label; //  "stream", "rejects stream": the error's words
    const char *name;  //  the stream's name, not owned
} omni_js_pubstate_t;

void omni_js_pubstate_init (omni_js_pubstate_t *self, const char *label, const char *name);
void omni_js_pubstate_destroy (omni_js_pubstate_t *self);
//  Sets the error text, under the lock.
void omni_js_pubstate_set (omni_js_pubstate_t *self, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));
//  A new round: no errors counted (and, with `clear`, no error text).
void omni_js_pubstate_reset (omni_js_pubstate_t *self, bool clear);

//  Whether the stream answers now, with a leader (omni_js_stream_probe):
//  0, or -1 with the error set.
int omni_js_pubstate_probe (omni_js_pubstate_t *self, jsCtx *js);

//  The JetStream context of `nc` for asynchronous publishing: API calls
//  wait `wait_ms`, at most `max_pending` messages without an ack (then
//  a publish waits up to `stall_wait_ms`), and what the stream refuses
//  or does not acknowledge is counted in `state` ("publish to <label>
//  <name> failed: ..."). NATS_OK, or the error.
natsStatus omni_js_publish_context (natsConnection *nc, jsCtx **js, int64_t wait_ms,
                                    int64_t max_pending, int64_t stall_wait_ms,
                                    omni_js_pubstate_t *state);

//  Forgets the messages of `js` without an ack yet: the acks that come
//  later are dropped with them (a round given up).
void omni_js_publish_drop (jsCtx *js);

//  Waits for every asynchronous publish of `js` to be acknowledged, up to
//  `timeout_ms`; every `retry_ms` without them publishes again what has no
//  ack yet (an ack lost with a killed server; the message id makes the
//  stream drop a second copy). NATS_OK, NATS_TIMEOUT, or the error.
natsStatus omni_js_publish_wait (jsCtx *js, int64_t timeout_ms, int64_t retry_ms);

//  Connects to the first of `urls` (NULL-terminated, nats://host:port)
//  that answers within `timeout_ms`, and keeps reconnecting to any of them
//  (or servers the cluster tells of) for ever after. `name` is shown by
//  the server's monitoring. Returns NULL with `error` filled.
natsConnection *omni_js_connect (const char *const *urls, const char *name, int64_t timeout_ms,
                                 char *error, size_t error_size);

//  A nats.c failure as text: the status, the JetStream error code if any,
//  and the library's last error.
void omni_js_error (natsStatus status, jsErrCode code, char *out, size_t size);

void omni_js_test (bool verbose);

#endif
