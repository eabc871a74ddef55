/*  intake: ingestd's intake rounds (see intake.h).

    Frames are received straight into zmq_msg_t (no czmq frame or list node
    per record) and each record frame is validated and appended as soon as it
    is received, so a round holds no record in memory beyond the LMDB write
    transaction, except copies for the tap while someone subscribes.

    Intake is group-committed: every intake message already waiting is
    validated into one LMDB transaction, one fsync, then all their ACKs go
    out. Under load that turns one fsync per batch into one per round.

    A BATCHP's records come packed, many to a frame (PROTOCOL.md): each is
    taken exactly as a BATCH's record frame is (s_take), so the two differ
    only in how the records are cut out of the frames.                   */
#include "ingestd/intake.h"
#include "common/log.h"
#include "common/util.h"
#include "ingestd/route.h"
#include "proto/kinds.h"
#include "proto/wire.h"
#include "testsupport/selftest.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <string.h>

#define ROUND_MESSAGES 256        //  intake messages per journal round
#define ROUND_BYTES    (64 << 20) //  or bytes per round

//  The answer owed to one intake message of a round.
typedef struct {
    uint8_t peer[256]; //  ROUTER routing ids are at most 255 bytes
    size_t peer_size;
    int fd; //  its connection (ZMQ_SRCFD), -1 when unknown
    uint8_t seq[8];
    bool has_seq;
    uint32_t accepted, rejected;
    bool malformed;
    char reason[200]; //  of an ERROR, when more can be said than bad_frame
} s_reply_t;

struct _intake_t {
    intake_config_t config;
    zsock_t *sock;
    journal_t *journal;
    peers_t *peers;
    tap_t *tap;
    pthread_mutex_t *state_lock;
    unsigned configured_roles;
    char writers_text[256];               //  the configured writer names, for messages
    _Atomic unsigned replayed;            //  roles REPLAY routed to (for /health)
    bool publish_failed;                  //  journal: jetstream; the stream refused a publish
    bool rejects_failed;                  //  ... the rejects stream (intake_stream_error)
    uint64_t wire;                        //  bytes of the intake message in hand, as on the wire
    zmq_msg_t frame, head[WIRE_HEAD_MAX]; //  intake parts being received
    s_reply_t *replies;                   //  one per intake message of a round
    omni_metric_t *m_received, *m_accepted, *m_batches, *m_bytes, *m_rounds, *m_commit_latency,
        *m_replayed, *m_rejected[REJECT_REASON_COUNT + 1], *m_replies_dropped;
};

static const char *
s_reject_label (int reason)
{
    return reason == REJECT_REASON_COUNT ? "bad_frame" : omni_record_reject_name (reason);
}

static void
s_register_metrics (intake_t *self, omni_metrics_t *m)
{
    self->m_received = omni_metrics_counter (
        m, "records_received_total",
        "Inputs received on intake (record frames and malformed messages)", NULL);
    self->m_accepted =
        omni_metrics_counter (m, "records_accepted_total", "Records validated and journaled", NULL);
    for (int r = 1; r <= REJECT_REASON_COUNT; r++) {
        char labels[64];
        snprintf (labels, sizeof labels, "reason=\"%s\"", s_reject_label (r));
        self->m_rejected[r] = omni_metrics_counter (m, "records_rejected_total",
                                                    "Inputs rejected, by reason", labels);
    }
    self->m_batches =
        omni_metrics_counter (m, "batches_total", "Intake batches acknowledged", NULL);
    self->m_replayed = omni_metrics_counter (
        m, "records_replayed_total",
        "Records accepted from REPLAY messages (omnictl replay), routed to the writers named",
        NULL);
    self->m_bytes = omni_metrics_counter (m, "bytes_received_total", "Record bytes received", NULL);
    self->m_rounds = omni_metrics_counter (m, "journal_commits_total",
                                           "Journal transactions committed (fsync)", NULL);
    self->m_commit_latency =
        omni_metrics_histogram (m, "journal_commit_seconds", "Time of one journal round commit",
                                NULL, omni_metrics_latency_bounds, omni_metrics_latency_nbounds);
    self->m_replies_dropped = omni_metrics_counter (
        m, "replies_dropped_total",
        "Messages not sent because the peer does not read them (it is disconnected)",
        "socket=\"intake\"");
}

intake_t *
intake_new (zsock_t *sock, journal_t *journal, peers_t *peers, tap_t *tap,
            const intake_config_t *config, pthread_mutex_t *state_lock, omni_metrics_t *metrics)
{
    intake_t *self = calloc (1, sizeof *self);
    assert (self);
    //  The server's: shared with the other classes, owned by none of them
    self->sock = sock, self->journal = journal, self->peers = peers, self->tap = tap;
    self->state_lock = state_lock;
    self->config = *config;
    atomic_init (&self->replayed, 0);
    for (const char *const *w = config->writers; w && *w; w++) {
        self->configured_roles |= omni_kinds_writer_role (*w);
        size_t used = strlen (self->writers_text);
        snprintf (self->writers_text + used, sizeof self->writers_text - used, "%s%s",
                  used ? "," : "", *w);
    }
    zmq_msg_init (&self->frame);
    for (int i = 0; i < WIRE_HEAD_MAX; i++)
        zmq_msg_init (&self->head[i]);
    self->replies = calloc (ROUND_MESSAGES, sizeof *self->replies);
    assert (self->replies);
    if (metrics)
        s_register_metrics (self, metrics);
    if (config->rejects)
        jsrejects_set_instance (config->rejects, journal_id (journal), JOURNAL_ID_SIZE);
    return self;
}

void
intake_destroy (intake_t **self_p)
{
    intake_t *self = *self_p;
    if (!self)
        return;
    zmq_msg_close (&self->frame);
    for (int i = 0; i < WIRE_HEAD_MAX; i++)
        zmq_msg_close (&self->head[i]);
    free (self->replies);
    free (self);
    *self_p = NULL;
}

bool
intake_waiting (intake_t *self)
{
    return (zsock_events (self->sock) & ZMQ_POLLIN) != 0;
}

const char *
intake_stream_error (intake_t *self)
{
    return self->rejects_failed ? jsrejects_error (self->config.rejects)
                                : jsjournal_error (self->config.stream);
}

unsigned
intake_replayed (intake_t *self)
{
    return atomic_load (&self->replayed);
}

static int
s_recv_part (intake_t *self, zmq_msg_t *msg)
{
    if (omni_wire_recv_part (zsock_resolve (self->sock), msg, 0))
        return -1;
    self->wire += peers_wire_size (zmq_msg_size (msg), self->config.curve);
    return 0;
}

//  Receives and discards the rest of a message; returns the parts dropped.
static size_t
s_drain_parts (intake_t *self, bool more)
{
    size_t parts = 0;
    while (more && s_recv_part (self, &self->frame) == 0) {
        parts++;
        more = zmq_msg_more (&self->frame);
    }
    return parts;
}

//  journal: jetstream: a reject goes to the rejects stream too, in the
//  round (acknowledged once the stream stored it, as a dead letter once
//  LMDB committed it). `part` is a frame of the message (its CURVE
//  metadata), `frame` the record's place in the batch (0: the message).
static int
s_reject_stream (intake_t *self, const s_reply_t *reply, zmq_msg_t *part, const char *reason,
                 const char *detail, const void *raw, size_t size, int64_t now, size_t frame,
                 const omni_record_t *record)
{
    if (!self->config.rejects)
        return 0;
    jsrejects_input_t input = {reason,
                               detail,
                               raw,
                               size,
                               now,
                               reply->fd,
                               self->config.curve && part ? zmq_msg_gets (part, "User-Id") : NULL,
                               reply->has_seq ? omni_util_get_be (reply->seq, 8) : 0,
                               frame,
                               record};
    if (jsrejects_publish (self->config.rejects, &input) == 0)
        return 0;
    self->publish_failed = self->rejects_failed = true;
    return -1;
}

//  One input dead-lettered: the journal's dead letters (and the stream's),
//  the counter of `reason` (REJECT_REASON_COUNT: bad_frame) and the tap.
//  -1 when the journal or the stream failed.
static int
s_dead_letter (intake_t *self, const s_reply_t *reply, zmq_msg_t *part, omni_record_reject_t reason,
               const char *detail, const void *data, size_t size, int64_t now, size_t index,
               const omni_record_t *record)
{
    const char *name =
        reason == REJECT_REASON_COUNT ? "bad_frame" : omni_record_reject_name (reason);
    if (journal_reject (self->journal, name, detail, data, size, now) ||
        s_reject_stream (self, reply, part, name, detail, data, size, now, index, record))
        return -1;
    omni_metric_add (self->m_rejected[reason], 1);
    tap_reject (self->tap, name, detail, data, size);
    return 0;
}

//  Dead-letters a message that is not a well-formed BATCH: `why` is the
//  reason the peer is told, or NULL for the usual one; `codec` what the
//  codec found wrong with the head.
static int
s_intake_malformed (intake_t *self, zmq_msg_t *head, size_t nhead, bool more, s_reply_t *reply,
                    int64_t now, const char *why, const char *codec)
{
    size_t frames = nhead + s_drain_parts (self, more);
    char detail[256];
    if (why)
        snprintf (detail, sizeof detail, "%s", why);
    else
        snprintf (detail, sizeof detail,
                  "expected \"" WIRE_INTAKE_SIGNATURE
                  "\" \"BATCH\" seq:u64 record..., got %zu frames: %s",
                  frames, codec ? codec : "no head");
    const void *raw = nhead >= 1 ? zmq_msg_data (&head[0]) : (const void *) "";
    size_t size = nhead >= 1 ? zmq_msg_size (&head[0]) : 0;
    if (nhead >= 3 && zmq_msg_size (&head[2]) == 8) {
        memcpy (reply->seq, zmq_msg_data (&head[2]), 8);
        reply->has_seq = true;
    }
    journal_count_received (self->journal, 1);
    if (s_dead_letter (self, reply, nhead >= 1 ? &head[0] : NULL, REJECT_REASON_COUNT, detail, raw,
                       size, now, 0, NULL))
        return -1;
    omni_metric_add (self->m_received, 1);
    //  A peer can send these as fast as it likes: the first, then one a
    //  minute (the counter and the dead letters have them all)
    uint64_t held;
    if (omni_log_allow ("intake.bad_frame", "", 60000, &held))
        log_warn ("intake.bad_frame", "detail=\"%s\" repeated=%" PRIu64, detail, held);
    reply->malformed = true;
    reply->rejected = 1;
    snprintf (reply->reason, sizeof reply->reason, "%s", why ? why : "");
    return 0;
}

//  The writers a REPLAY message is routed to, from its writers frame: names
//  separated by commas, each a configured writer; empty = every configured
//  writer. Never the archive: replay reads the archive, and a record sent
//  back into it would only be skipped there, at the cost of a lookup.
//  Returns 0, or -1 with `why` filled.
static int
s_replay_route (intake_t *self, const char *data, size_t size, uint8_t *route, char *why,
                size_t why_size)
{
    unsigned mask = 0;
    for (size_t at = 0; at < size;) {
        const char *comma = memchr (data + at, ',', size - at);
        size_t len = comma ? (size_t) (comma - (data + at)) : size - at;
        char name[32];
        snprintf (name, sizeof name, "%.*s", (int) (len < 31 ? len : 31), data + at);
        unsigned role = len < 31 ? omni_kinds_writer_role (name) : 0;
        if (role == WRITER_ARCHIVE) {
            snprintf (why, why_size,
                      "REPLAY never routes to the archive (it is what replay reads)");
            return -1;
        }
        if (!role || !(self->configured_roles & role)) {
            snprintf (why, why_size, "REPLAY to writer \"%.31s\", not in ingestd.writers (%.80s)",
                      name, self->writers_text);
            return -1;
        }
        mask |= role;
        at += len + 1;
    }
    if (size == 0)
        mask = self->configured_roles;
    mask &= ~(unsigned) WRITER_ARCHIVE;
    if (!mask) {
        snprintf (why, why_size, "REPLAY with no writer to route to but the archive (%.80s)",
                  self->writers_text);
        return -1;
    }
    *route = (uint8_t) mask;
    return 0;
}

//  One record of an intake message, the `index`th: checked, then journaled
//  (or published to the stream) for the writers of its kind within `route`,
//  or dead-lettered with its reason. -1 when the journal failed.
static int
s_take (intake_t *self, s_reply_t *reply, const void *data, size_t size, uint8_t route, bool tap,
        int64_t now, size_t index)
{
    omni_record_t record;
    char detail[256];
    omni_record_reject_t reason =
        omni_record_check (&record, data, size, &self->config.limits, detail, sizeof detail);
    if (reason == REJECT_NONE)
        reason = omni_record_check_id (&record, detail, sizeof detail);
    if (reason == REJECT_NONE) {
        uint8_t writers = (uint8_t) (record.spec->writers & route);
        if (self->config.stream
                ? jsjournal_publish (self->config.stream, &record, data, size, writers) != 0
                : !journal_append (self->journal, data, size, writers, now)) {
            //  said as the stream's fault, not the local journal's
            self->publish_failed = self->config.stream != NULL;
            return -1;
        }
        reply->accepted++;
        if (tap) //  published after the commit
            tap_keep (self->tap, &record, data, size);
        return 1;
    }
    if (s_dead_letter (self, reply, &self->frame, reason, detail, data, size, now, index, &record))
        return -1;
    reply->rejected++;
    log_debug ("intake.reject", "reason=%s detail=\"%s\" bytes=%zu",
               omni_record_reject_name (reason), detail, size);
    return 1;
}

//  A BATCHP frame that does not unpack: one bad input, dead-lettered whole
//  (its records cannot be told apart), the batch's other frames taken.
static int
s_take_bad_frame (intake_t *self, s_reply_t *reply, const void *data, size_t size, const char *why,
                  int64_t now, size_t index)
{
    char detail[200];
    snprintf (detail, sizeof detail, "BATCHP frame: %s", why);
    if (s_dead_letter (self, reply, &self->frame, REJECT_REASON_COUNT, detail, data, size, now,
                       index, NULL))
        return -1;
    reply->rejected++;
    return 1;
}

//  Receives and journals one intake message, if one is waiting; fills the
//  reply. Returns 1 when a message was handled, 0 when none was waiting, -1
//  when the journal failed (the round must abort, nothing is acknowledged).
static int
s_intake_message_read (intake_t *self, s_reply_t *reply, size_t *bytes)
{
    void *sock = zsock_resolve (self->sock);
    if (zmq_msg_recv (&self->frame, sock, ZMQ_DONTWAIT) < 0)
        return 0;
    int64_t now = omni_util_now_ns ();
    reply->peer_size = zmq_msg_size (&self->frame);
    if (reply->peer_size > sizeof reply->peer)
        reply->peer_size = sizeof reply->peer;
    memcpy (reply->peer, zmq_msg_data (&self->frame), reply->peer_size);
    reply->has_seq = false;
    reply->accepted = reply->rejected = 0;
    reply->malformed = false;
    reply->reason[0] = 0;
    reply->fd = -1;
    bool more = zmq_msg_more (&self->frame);
    size_t nhead = 0;
    omni_wire_head_t head = {0};
    char why[160] = "an incomplete head";
    int fed = 0;
    //  The head, frame by frame through the codec; three frames even when
    //  it is refused sooner, so that the ERROR echoes a seq where one was
    while (more && nhead < WIRE_HEAD_MAX && (fed == 0 || (fed < 0 && nhead < 3))) {
        zmq_msg_t *part = &self->head[nhead];
        if (s_recv_part (self, part))
            break;
        more = zmq_msg_more (part);
        *bytes += zmq_msg_size (part);
        if (nhead == 0) {
            //  The routing id frame is the ROUTER's own: the first frame
            //  of the body carries the connection
            reply->fd = zmq_msg_get (part, ZMQ_SRCFD);
            peers_touch (self->peers, reply->fd, omni_util_mono_ms ());
        }
        if (fed == 0)
            fed = omni_wire_head_feed (WIRE_INTAKE, &head, nhead, zmq_msg_data (part),
                                       zmq_msg_size (part), more, why, sizeof why);
        nhead++;
    }
    if (fed > 0 && !omni_wire_carries_records (head.command))
        snprintf (why, sizeof why, "%s is not sent to ingestd",
                  omni_wire_command_name (head.command));
    if (fed <= 0 || !omni_wire_carries_records (head.command))
        return s_intake_malformed (self, self->head, nhead, more, reply, now,
                                   head.command == WIRE_REPLAY ? why : NULL, why)
                   ? -1
                   : 1;
    omni_util_put_be (reply->seq, head.seq, 8);
    reply->has_seq = true;
    uint8_t route = 0xff; //  a BATCH goes wherever its kind goes
    bool replay = head.command == WIRE_REPLAY;
    if (replay) {
        if (s_replay_route (self, head.text, head.text_size, &route, why, sizeof why))
            return s_intake_malformed (self, self->head, nhead, more, reply, now, why, NULL) ? -1
                                                                                             : 1;
        atomic_fetch_or (&self->replayed, route);
    }
    size_t frames = 0, record_bytes = 0; //  records (inputs) and their bytes
    bool tap = tap_open (self->tap), over = false, packed = head.command == WIRE_BATCHP;
    int rc = 1;
    while (more && rc > 0 && !over) {
        if (s_recv_part (self, &self->frame)) {
            rc = -1;
            break;
        }
        more = zmq_msg_more (&self->frame);
        const uint8_t *data = zmq_msg_data (&self->frame);
        size_t size = zmq_msg_size (&self->frame), count = 1;
        const uint8_t *record = data;
        char why_packed[128];
        //  A frame that does not unpack stays one input (count 1, the frame)
        bool unpacked = !packed || omni_wire_unpack (data, size, &count, &record, why_packed,
                                                     sizeof why_packed) == 0;
        for (size_t i = 0; i < count && rc > 0; i++) {
            size_t one = unpacked && packed ? omni_wire_packed_size (data, i) : size;
            if (frames >= self->config.max_batch_records ||
                record_bytes + one > self->config.max_batch_bytes) {
                //  libzmq held the whole message already; what ingestd does
                //  with it stays bounded: the rest is one bad input.
                over = true;
                break;
            }
            frames++;
            record_bytes += one;
            rc = unpacked ? s_take (self, reply, record, one, route, tap, now, frames)
                          : s_take_bad_frame (self, reply, record, one, why_packed, now, frames);
            record += one;
        }
    }
    if (over) {
        s_drain_parts (self, more);
        more = false;
    }
    //  journal: jetstream: this batch's records go out, a message per
    //  route, before the next batch's (jsjournal.c says why per batch)
    if (rc >= 0 && self->config.stream && jsjournal_flush (self->config.stream)) {
        self->publish_failed = true; //  the stream's fault, as above
        rc = -1;
    }
    if (rc < 0) {
        s_drain_parts (self, more);
        return -1;
    }
    journal_count_received (self->journal, frames);
    if (over) {
        snprintf (why, sizeof why,
                  "batch over max_batch_records (%zu) or max_batch_bytes (%" PRIu64
                  "): the rest of it is refused",
                  self->config.max_batch_records, self->config.max_batch_bytes);
        uint32_t accepted = reply->accepted, rejected = reply->rejected;
        if (s_intake_malformed (self, self->head, 0, false, reply, now, why, NULL))
            return -1;
        reply->accepted = accepted;
        reply->rejected += rejected;
    }
    if (replay)
        omni_metric_add (self->m_replayed, reply->accepted);
    omni_metric_add (self->m_received, frames);
    omni_metric_add (self->m_bytes, record_bytes);
    *bytes += record_bytes;
    return 1;
}

//  The same, counting what was read from the connection (its routing id
//  frame is the ROUTER's, not on the wire): what libzmq still holds for it
//  is what it received less that (peers_held).
static int
s_intake_message (intake_t *self, s_reply_t *reply, size_t *bytes)
{
    self->wire = 0;
    int rc = s_intake_message_read (self, reply, bytes);
    if (rc != 0 && reply->fd >= 0)
        peers_consumed (self->peers, reply->fd, self->wire);
    return rc;
}

static void
s_send_intake_reply (intake_t *self, s_reply_t *reply)
{
    //  Every ACK says BATCHP is taken: a collector packs its batches from
    //  then on (a reconnect or another endpoint starts it over)
    omni_wire_head_t head = {.command = WIRE_INTAKE_ACK,
                             .seq = reply->has_seq ? omni_util_get_be (reply->seq, 8) : 0,
                             .accepted = reply->accepted,
                             .rejected = reply->rejected,
                             .features = WIRE_FEATURE_PACKED,
                             .features_size = sizeof WIRE_FEATURE_PACKED - 1};
    char text[320] =
        "bad_frame: malformed intake message, see " WIRE_INTAKE_SIGNATURE " in PROTOCOL.md";
    if (reply->malformed) {
        if (*reply->reason)
            snprintf (text, sizeof text, "bad_frame: %s", reply->reason);
        head.command = WIRE_INTAKE_ERROR;
        head.text = text;
        head.text_size = strlen (text);
    }
    route_send (self->peers, PEERS_INTAKE, zsock_resolve (self->sock), reply->peer,
                reply->peer_size, reply->fd, &head, NULL, self->m_replies_dropped);
}

//  journal: jetstream: the round is not acknowledged; the acks of what it
//  published to either stream are no longer waited for.
static void
s_streams_abort (intake_t *self)
{
    jsjournal_abort (self->config.stream);
    if (self->config.rejects)
        jsrejects_abort (self->config.rejects);
}

//  journal: jetstream. The round's records were published; it is durable
//  once every publish ack came. Waited for without state_lock (called with
//  it held): nothing /health compares changes before the commit, and the
//  wait may last the publish timeout. Returns 0, or -1 when the round must
//  abort.
static int
s_stream_round (intake_t *self)
{
    jsjournal_t *stream = self->config.stream;
    pthread_mutex_unlock (self->state_lock);
    int rc = jsjournal_complete (stream);
    jsrejects_t *rejects = self->config.rejects;
    if (rc == 0 && rejects && jsrejects_complete (rejects))
        rc = -1, self->rejects_failed = true;
    pthread_mutex_lock (self->state_lock);
    if (rc) {
        s_streams_abort (self);
        return -1;
    }
    journal_count_forwarded (self->journal, jsjournal_published (stream));
    return 0;
}

//  Every message waiting, journaled in one transaction, then acknowledged.
int
intake_round (intake_t *self, const char **op, size_t *bytes_read)
{
    s_reply_t *replies = self->replies;
    size_t count = 0, bytes = 0;
    *op = "intake_begin";
    *bytes_read = 0;
    pthread_mutex_lock (self->state_lock);
    if (journal_begin (self->journal)) {
        pthread_mutex_unlock (self->state_lock);
        return -1;
    }
    int64_t start = omni_util_mono_ms ();
    bool failed = false, stream_failed = false;
    self->publish_failed = self->rejects_failed = false;
    if (self->config.stream)
        jsjournal_begin (self->config.stream);
    if (self->config.rejects)
        jsrejects_begin (self->config.rejects);
    tap_round_begin (self->tap);
    while (count < ROUND_MESSAGES && bytes < ROUND_BYTES) {
        int rc = s_intake_message (self, &replies[count], &bytes);
        if (rc == 0)
            break;
        count++;
        if (rc < 0) {
            failed = true;
            stream_failed = self->publish_failed;
            if (stream_failed) //  what it did publish is not waited for
                s_streams_abort (self);
            break;
        }
    }
    if (!failed && count && self->config.stream)
        failed = stream_failed = s_stream_round (self);
    int rc = failed ? -1 : count ? journal_commit (self->journal) : 0;
    if (failed || !count)
        journal_abort (self->journal);
    pthread_mutex_unlock (self->state_lock);
    if (rc == 0 && count) {
        omni_metric_add (self->m_rounds, 1);
        omni_metric_observe (self->m_commit_latency,
                             (double) (omni_util_mono_ms () - start) / 1000.0);
        uint64_t accepted = 0, batches = 0;
        for (size_t i = 0; i < count; i++) {
            accepted += replies[i].accepted;
            batches += !replies[i].malformed;
            s_send_intake_reply (self, &replies[i]);
        }
        omni_metric_add (self->m_accepted, accepted);
        omni_metric_add (self->m_batches, batches);
    }
    //  Published once committed; nothing of a failed round (the collectors
    //  resend it: nothing is lost)
    tap_round_end (self->tap, rc == 0 && count);
    *op = stream_failed ? "stream" : "intake";
    *bytes_read = bytes;
    return rc != 0 ? -1 : count ? 1 : 0;
}

//  ---------------------------------------------------------------------------
//  Self-test: a real journal in a temporary directory, the ROUTER bound on
//  loopback TCP, a collector played by a DEALER through proto/wire.c.

//  Sends `head` and `records` frames of (data, size) pairs.
static void
s_t_send (zsock_t *collector, const omni_wire_head_t *head, const void **data, const size_t *size,
          size_t records)
{
    zmsg_t *msg = omni_wire_encode (WIRE_INTAKE, head);
    assert (msg);
    for (size_t i = 0; i < records; i++)
        zmsg_addmem (msg, data[i], size[i]);
    assert (zmsg_send (&msg, collector) == 0);
}

//  One round once the ROUTER has a message; the reply, decoded.
static void
s_t_round (intake_t *self, zsock_t *collector, omni_wire_head_t *reply, zmsg_t **msg)
{
    zmq_pollitem_t item = {zsock_resolve (self->sock), 0, ZMQ_POLLIN, 0};
    assert (zmq_poll (&item, 1, 5000) == 1);
    const char *op;
    size_t bytes;
    assert (intake_round (self, &op, &bytes) == 1);
    zmsg_destroy (msg);
    *msg = zmsg_recv (collector);
    char why[128];
    assert (*msg && omni_wire_decode (WIRE_INTAKE, *msg, reply, why, sizeof why) == 0);
}

void
intake_test (bool verbose)
{
    (void) verbose;
    char *dir = selftest_tmpdir ("omni-intake");
    const char *writers[] = {"archive", "relational", NULL};
    char error[256];
    journal_t *journal = journal_new (dir, 1 << 30, 10, 64 << 20, writers, error, sizeof error);
    assert (journal);
    zsock_t *router =
        route_bind (ZMQ_ROUTER, "tcp://127.0.0.1:*", NULL, CURVE_INTAKE,
                    &(route_limits_t){PEERS_REPLY_HWM, 64, 1 << 20, ROUTE_PEER_TIMEOUT_MS, 0, 0},
                    error, sizeof error);
    assert (router);
    char *endpoint = zsock_last_endpoint (router);
    zsock_t *collector = zsock_new_dealer (endpoint);
    assert (collector);
    peers_t *peers = peers_new (16);
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    intake_config_t config = {writers, omni_record_default_limits, 1000, 1 << 20, false, NULL,
                              NULL};
    intake_t *self = intake_new (router, journal, peers, NULL, &config, &lock, NULL);
    const char *op;
    size_t bytes;
    assert (intake_round (self, &op, &bytes) == 0 && !intake_waiting (self));

    //  Two valid records and a bad frame: ACK 2 accepted, 1 rejected, under
    //  the batch's seq; the two journaled, the third a dead letter
    omni_record_encoder_t *enc = omni_record_encoder_new ();
    const void *data[3];
    size_t size[3];
    void *copies[2];
    for (int i = 0; i < 2; i++) {
        omni_record_encoder_begin (enc, "metric", "h", "c", "r", 5 + i);
        msgpack_packer *pk = omni_record_encoder_body (enc);
        msgpack_pack_map (pk, 2);
        omni_record_pack_str (pk, "name");
        omni_record_pack_str (pk, "cpu");
        omni_record_pack_str (pk, "value");
        msgpack_pack_int (pk, i);
        const void *record;
        assert (omni_record_encoder_end (enc, &record, &size[i], NULL, 0) == 0);
        copies[i] = malloc (size[i]);
        memcpy (copies[i], record, size[i]);
        data[i] = copies[i];
    }
    data[2] = "not a record";
    size[2] = 12;
    omni_wire_head_t head = {.command = WIRE_BATCH, .seq = 7};
    s_t_send (collector, &head, data, size, 3);
    omni_wire_head_t reply;
    zmsg_t *msg = NULL;
    s_t_round (self, collector, &reply, &msg);
    assert (reply.command == WIRE_INTAKE_ACK && reply.seq == 7);
    assert (reply.accepted == 2 && reply.rejected == 1);
    assert (journal_next_offset (journal) == 3 && journal_dead_count (journal) == 1);
    journal_counters_t c = journal_counters (journal);
    assert (c.received == 3 && c.accepted == 2 && c.rejected == 1);

    //  A message that is not a BATCH: ERROR, one dead letter
    head = (omni_wire_head_t){.command = WIRE_INTAKE_ACK, .seq = 8};
    s_t_send (collector, &head, NULL, NULL, 0);
    s_t_round (self, collector, &reply, &msg);
    assert (reply.command == WIRE_INTAKE_ERROR && journal_dead_count (journal) == 2);

    //  REPLAY: never to the archive; to the relational writer, routed there
    head = (omni_wire_head_t){.command = WIRE_REPLAY, .seq = 9, .text = "archive", .text_size = 7};
    s_t_send (collector, &head, data, size, 1);
    s_t_round (self, collector, &reply, &msg);
    assert (reply.command == WIRE_INTAKE_ERROR && reply.seq == 9);
    assert (memmem (reply.text, reply.text_size, "archive", 7));
    assert (intake_replayed (self) == 0);
    head.text = "relational";
    head.text_size = 10;
    s_t_send (collector, &head, data, size, 1);
    s_t_round (self, collector, &reply, &msg);
    assert (reply.command == WIRE_INTAKE_ACK && reply.accepted == 1);
    assert (intake_replayed (self) == WRITER_RELATIONAL && journal_next_offset (journal) == 4);

    //  BATCHP: the same three records packed into one frame, then a frame
    //  that does not unpack (one bad input): 2 accepted, 2 rejected. Every
    //  ACK says BATCHP is taken.
    assert (omni_wire_has_feature (&reply, WIRE_FEATURE_PACKED));
    char joined[512];
    size_t ends[3], at = 0;
    for (int i = 0; i < 3; i++) {
        memcpy (joined + at, data[i], size[i]);
        ends[i] = at += size[i];
    }
    uint8_t packed[600];
    omni_wire_pack (packed, joined, ends, 0, 3);
    const void *frames[2] = {packed, "\0\0\0\5xx"};
    size_t frame_sizes[2] = {omni_wire_pack_size (3, at), 6};
    head = (omni_wire_head_t){.command = WIRE_BATCHP, .seq = 10};
    s_t_send (collector, &head, frames, frame_sizes, 2);
    s_t_round (self, collector, &reply, &msg);
    assert (reply.command == WIRE_INTAKE_ACK && reply.seq == 10);
    assert (reply.accepted == 2 && reply.rejected == 2);
    assert (journal_next_offset (journal) == 6 && journal_dead_count (journal) == 5);
    c = journal_counters (journal);
    assert (c.received == 3 + 1 + 1 + 1 + 4 && c.accepted == 2 + 1 + 2);

    zmsg_destroy (&msg);
    free (copies[0]);
    free (copies[1]);
    omni_record_encoder_destroy (&enc);
    intake_destroy (&self);
    zsock_destroy (&collector);
    zstr_free (&endpoint);
    zsock_destroy (&router);
    peers_destroy (&peers);
    journal_destroy (&journal);
    selftest_rmtree (dir);
    free (dir);
}
