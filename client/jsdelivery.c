/*  jsdelivery: the writer's JetStream delivery source (see jsdelivery.h).

    Why a bridge that speaks the delivery protocol. The writer loop
    (writer.c) already does everything a pulled batch needs: batches by
    size or time, deduplication, conflicts, a store thread, retries while
    the store is away, and an ACK only after the commit. A second loop for
    JetStream would repeat all of it. So this thread plays ingestd's part
    on an inproc socket: each pulled message gets the next local offset,
    DELIVERs go out within the window the loop grants, and the loop's ACK
    (every offset up to `upto` is committed) acknowledges those messages to
    the stream. A HELLO again (the loop lost its session) is WELCOMEd at the
    first unacknowledged offset and what was pending is sent again, as
    ingestd would from its cursor.

    Why it pulls by hand. nats.c's natsSubscription_Fetch (3.4, Debian's)
    writes past its list when it has to ask the server again during one
    fetch (nats.c pull request 749, fixed in 3.8): a heap overflow under
    load. So the bridge asks the consumer's next-message API itself, one
    request of at most FETCH_MAX messages on an inbox of its own at a time,
    reads what comes, and acknowledges with the reply subjects (+ACK, +WPI,
    -NAK), as the protocol has it.

    Why the messages are kept alive. The stream redelivers a message not
    acknowledged within the consumer's ack wait, to whichever instance
    pulls next. A message waiting for a slow commit is not lost work, so
    every third of the ack wait the bridge tells the stream it is in
    progress; only an instance that died (or hangs past that) has its
    messages go to another. On a clean stop what the loop did not commit
    is handed back at once (NAK).

    Why offsets are records and not messages. ingestd publishes a
    collector's batch as a message per route (proto/jsbatch.h), so a
    message holds up to a thousand records; the loop's window and batches
    count records. Each record of a pulled message gets its own offset,
    and the message is acknowledged once the loop acknowledged its last
    record (a message whose records span two store batches, after the
    later commit). A pull asks for as many messages as the window has
    room for at the size of the last one (always one when nothing is
    held), so what is held passes the window by less than one message.
    A message sent again (its ack lost) is stored again: the stores are
    idempotent by record id.

    Why a bad message is kept aside and terminated. A message whose body
    does not split (an unknown layout version, a truncated or malformed
    batch) would come again for ever and hold its place in the consumer.
    It is written, whole, to <conflicts_dir>/<writer>.bad-messages.jsonl
    and fsynced, logged with what and why, counted, and only then
    terminated (+TERM): nothing is dropped unseen. When it cannot be
    written it is left unacknowledged, and comes again after the ack wait.
    A message that splits but holds a record the loop cannot decode goes
    on as before: the loop logs and counts it (records_undecodable).       */
#include "client/jsdelivery.h"
#include "proto/jetstream.h"
#include "proto/jsbatch.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "proto/kinds.h"
#include "proto/wire.h"
#include "testsupport/natstest.h"

#include <assert.h>
#include <czmq.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FETCH_MAX     1000   //  messages asked for in one pull
#define FETCH_WAIT_MS 200    //  a pull waits this long for a first message
#define DELIVER_MAX   1000   //  records in one DELIVER
#define WINDOW_MAX    100000 //  records held at most (past one message), whatever the loop grants
#define RETRY_MS      1000   //  connect / bind again after a failure
#define HEARTBEAT_MS  1000
#define CONNECT_MS    2000

struct _omni_jsdelivery_t {
    zactor_t *actor;
    char endpoint[128];
};

//  A pulled message not acknowledged yet, and its last record's offset.
typedef struct {
    natsMsg *msg;
    uint64_t last;
} s_held_t;

typedef struct {
    char **urls;
    char *stream, *name, *aside_dir;
    char endpoint[128];
    char filter[OMNI_JS_SUBJECT_MAX];
    zsock_t *sock; //  the writer loop's side: DEALER to DEALER
    natsConnection *nc;
    jsCtx *js;
    natsSubscription *sub; //  on `inbox`, where the consumer's messages come
    natsInbox *inbox;
    char next[OMNI_JS_SUBJECT_MAX + 64]; //  the consumer's next-message subject
    bool asking;                         //  a pull request is open
    int64_t asked_until;                 //  when it is over at the latest
    size_t asked_left;                   //  messages it may still bring
    int64_t last_try_ms;
    int64_t progress_ms; //  how often messages held are said to be in progress
    int64_t last_progress_ms, last_sent_ms;
    uint8_t journal[WIRE_JOURNAL_ID]; //  this bridge's run, as WELCOME's journal
    //  Messages pulled and not acknowledged, in order, and their records:
    //  recs[i] has offset first + i and points into a message of msgs
    s_held_t *msgs;
    size_t nmsgs, msgs_cap;
    omni_js_part_t *recs;
    size_t count, cap;
    omni_js_part_t *parts; //  one message's records, as split
    size_t parts_cap;
    size_t per_msg;     //  records in the last message pulled (>= 1)
    uint64_t first;     //  offset of recs[0]
    uint64_t sent_upto; //  last offset delivered to the loop
    uint32_t window;
    bool welcomed;
    uint64_t pulled, acked, pulled_records, acked_records, bad;
    omni_metric_t *m_pulled, *m_pulled_records, *m_acked, *m_acked_records, *m_bad;
} s_bridge_t;

static void
s_free_list (char **list)
{
    for (size_t i = 0; list && list[i]; i++)
        free (list[i]);
    free (list);
}

//  Interest removed and the connection closed (its reader thread stopped)
//  before the subscription is freed: nats.c 3.4's reader thread could still
//  hand a pull's reply to a subscription destroyed while active, and locked
//  its freed mutex (seen under ASan in the self-test, one stop in three).
static void
s_drop_nats (s_bridge_t *self)
{
    if (self->sub)
        natsSubscription_Unsubscribe (self->sub);
    if (self->nc)
        natsConnection_Close (self->nc);
    natsSubscription_Destroy (self->sub);
    self->sub = NULL;
    natsInbox_Destroy (self->inbox);
    self->inbox = NULL;
    self->asking = false;
    jsCtx_Destroy (self->js);
    self->js = NULL;
    if (self->nc)
        natsConnection_Destroy (self->nc);
    self->nc = NULL;
}

//  Connects and binds to the consumer; 0 when ready.
static int
s_attach (s_bridge_t *self)
{
    char error[600];
    if (!self->nc) {
        self->nc = omni_js_connect ((const char *const *) self->urls, self->name, CONNECT_MS, error,
                                    sizeof error);
        if (!self->nc) {
            uint64_t held;
            if (omni_log_allow ("jetstream.unreachable", self->name, 60000, &held))
                log_error ("jetstream.unreachable",
                           "writer=%s error=\"%s\" repeated=%" PRIu64 " (retrying every second)",
                           self->name, error, held);
            return -1;
        }
        natsStatus s = natsConnection_JetStream (&self->js, self->nc, NULL);
        if (s != NATS_OK) {
            s_drop_nats (self);
            return -1;
        }
    }
    jsConsumerInfo *ci = NULL;
    jsErrCode code = 0;
    natsStatus s = js_GetConsumerInfo (&ci, self->js, self->stream, self->name, NULL, &code);
    if (s == NATS_OK &&
        strcmp (ci->Config->FilterSubject ? ci->Config->FilterSubject : "", self->filter)) {
        //  Not the consumer ingestd makes for this writer: its records
        //  would be others'
        snprintf (error, sizeof error, "its filter is \"%s\", not \"%s\"",
                  ci->Config->FilterSubject ? ci->Config->FilterSubject : "", self->filter);
        jsConsumerInfo_Destroy (ci);
        s = NATS_ERR;
    } else if (s != NATS_OK)
        omni_js_error (s, code, error, sizeof error);
    if (s == NATS_OK) {
        int64_t wait_ms = ci->Config->AckWait / 1000000;
        self->progress_ms = wait_ms >= 300 ? wait_ms / 3 : 100;
        jsConsumerInfo_Destroy (ci);
        snprintf (self->next, sizeof self->next, "$JS.API.CONSUMER.MSG.NEXT.%s.%s", self->stream,
                  self->name);
        s = natsInbox_Create (&self->inbox);
        if (s == NATS_OK)
            s = natsConnection_SubscribeSync (&self->sub, self->nc, self->inbox);
        if (s != NATS_OK) {
            omni_js_error (s, 0, error, sizeof error);
            natsInbox_Destroy (self->inbox);
            self->inbox = NULL;
        }
    }
    if (s != NATS_OK) {
        uint64_t held;
        if (omni_log_allow ("jetstream.no_consumer", self->name, 60000, &held))
            log_error ("jetstream.no_consumer",
                       "writer=%s stream=%s error=\"%s\" repeated=%" PRIu64
                       " (ingestd with journal: jetstream makes it; retrying every second)",
                       self->name, self->stream, error, held);
        self->sub = NULL;
        return -1;
    }
    char url[256] = "";
    natsConnection_GetConnectedUrl (self->nc, url, sizeof url);
    log_info ("jetstream.consumer", "writer=%s stream=%s filter=%s server=%s", self->name,
              self->stream, self->filter, url);
    return 0;
}

static bool
s_ready (s_bridge_t *self)
{
    return self->sub && natsConnection_Status (self->nc) == NATS_CONN_STATUS_CONNECTED;
}

static void
s_send (s_bridge_t *self, const omni_wire_head_t *head)
{
    omni_wire_send_head (zsock_resolve (self->sock), NULL, 0, head, false, ZMQ_DONTWAIT);
    self->last_sent_ms = omni_util_mono_ms ();
}

//  DELIVERs of what was pulled and not yet sent, within the window.
static void
s_pump (s_bridge_t *self)
{
    void *sock = zsock_resolve (self->sock);
    uint64_t last = self->first + self->count - 1;
    while (self->welcomed && self->sent_upto < last) {
        uint64_t acked = self->first - 1;
        uint64_t inflight = self->sent_upto - acked;
        if (inflight >= self->window)
            return;
        uint64_t n = last - self->sent_upto;
        if (n > self->window - inflight)
            n = self->window - inflight;
        if (n > DELIVER_MAX)
            n = DELIVER_MAX;
        omni_wire_head_t head = {.command = WIRE_DELIVER, .upto = self->sent_upto + n};
        if (omni_wire_send_head (sock, NULL, 0, &head, true, ZMQ_DONTWAIT))
            return;
        for (uint64_t k = 1; k <= n; k++) {
            const omni_js_part_t *rec = &self->recs[self->sent_upto + k - self->first];
            omni_wire_send_record (sock, rec->data, rec->size, k == n);
        }
        self->sent_upto += n;
        self->last_sent_ms = omni_util_mono_ms ();
    }
}

//  A reply to one message: +ACK, +WPI (in progress), -NAK or +TERM.
static void
s_reply (s_bridge_t *self, natsMsg *msg, const char *what)
{
    const char *reply = natsMsg_GetReply (msg);
    if (reply && *reply)
        natsConnection_PublishString (self->nc, reply, what);
}

//  A message that does not split, written whole with why to the file of
//  bad messages and fsynced. Returns 0, or -1 with `error`.
static int
s_keep_aside (s_bridge_t *self, natsMsg *msg, uint64_t seq, const char *why, char *path,
              size_t path_size, char *error, size_t error_size)
{
    if (!self->aside_dir || !*self->aside_dir) {
        snprintf (error, error_size, "no conflicts_dir to keep it in");
        return -1;
    }
    snprintf (path, path_size, "%s/%s.bad-messages.jsonl", self->aside_dir, self->name);
    const char *version = NULL, *records = NULL, *subject = natsMsg_GetSubject (msg);
    if (natsMsgHeader_Get (msg, OMNI_JS_BATCH_HEADER, &version) != NATS_OK)
        version = "";
    if (natsMsgHeader_Get (msg, OMNI_JS_RECORDS_HEADER, &records) != NATS_OK)
        records = "";
    size_t size = (size_t) natsMsg_GetDataLength (msg);
    omni_buf_t line = {0};
    const char *fields[][2] = {{"stream", self->stream},
                               {"subject", subject ? subject : ""},
                               {"why", why},
                               {"omni_batch", version},
                               {"omni_records", records}};
    omni_buf_printf (&line, "{\"time_ns\":%" PRId64 ",\"seq\":%" PRIu64, omni_util_now_ns (), seq);
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        size_t len = strlen (fields[i][1]);
        omni_buf_printf (&line, ",\"%s\":\"", fields[i][0]);
        char *at = omni_buf_reserve (&line, 6 * len + 1);
        omni_buf_advance (&line, omni_util_json_escape (at, fields[i][1], len, true));
        omni_buf_append_char (&line, '"');
    }
    omni_buf_append_str (&line, ",\"data_hex\":\"");
    char *at = omni_buf_reserve (&line, 2 * size + 1);
    omni_util_hex ((const uint8_t *) natsMsg_GetData (msg), size, at);
    omni_buf_advance (&line, 2 * size);
    omni_buf_append_str (&line, "\"}\n");
    int rc = -1;
    int fd = -1;
    if (omni_util_mkdirs (self->aside_dir) == 0)
        fd = open (path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd >= 0 && write (fd, line.data, line.size) == (ssize_t) line.size && fsync (fd) == 0)
        rc = 0;
    if (rc)
        snprintf (error, error_size, "%s: %s", path, strerror (errno));
    if (fd >= 0)
        close (fd);
    omni_buf_release (&line);
    return rc;
}

//  A message that does not split: kept aside, said, then terminated.
static void
s_bad_message (s_bridge_t *self, natsMsg *msg, const char *why)
{
    self->bad++;
    if (self->m_bad)
        omni_metric_add (self->m_bad, 1);
    uint64_t seq = 0;
    jsMsgMetaData *meta = NULL;
    if (natsMsg_GetMetaData (&meta, msg) == NATS_OK) {
        seq = meta->Sequence.Stream;
        jsMsgMetaData_Destroy (meta);
    }
    char path[600] = "", error[700] = "";
    const char *subject = natsMsg_GetSubject (msg);
    if (s_keep_aside (self, msg, seq, why, path, sizeof path, error, sizeof error) == 0) {
        s_reply (self, msg, "+TERM");
        log_error ("jetstream.bad_message",
                   "writer=%s stream=%s seq=%" PRIu64
                   " subject=%s bytes=%d why=\"%s\" (kept in %s, terminated)",
                   self->name, self->stream, seq, subject ? subject : "",
                   natsMsg_GetDataLength (msg), why, path);
    } else
        log_error ("jetstream.bad_message",
                   "writer=%s stream=%s seq=%" PRIu64
                   " subject=%s bytes=%d why=\"%s\" (could not be kept: %s; left to the stream, "
                   "delivered again after the ack wait)",
                   self->name, self->stream, seq, subject ? subject : "",
                   natsMsg_GetDataLength (msg), why, error);
}

//  A pulled message: its records get the next offsets.
static void
s_take (s_bridge_t *self, natsMsg *msg)
{
    const char *version = NULL, *records = NULL;
    if (natsMsgHeader_Get (msg, OMNI_JS_BATCH_HEADER, &version) != NATS_OK)
        version = NULL;
    if (natsMsgHeader_Get (msg, OMNI_JS_RECORDS_HEADER, &records) != NATS_OK)
        records = NULL;
    char why[256];
    int n = omni_js_batch_split (version, records, natsMsg_GetData (msg),
                                 (size_t) natsMsg_GetDataLength (msg), &self->parts,
                                 &self->parts_cap, why, sizeof why);
    if (n < 0) {
        s_bad_message (self, msg, why);
        natsMsg_Destroy (msg);
        return;
    }
    omni_array_reserve (self->recs, self->cap, self->count + (size_t) n);
    memcpy (self->recs + self->count, self->parts, (size_t) n * sizeof *self->parts);
    self->count += (size_t) n;
    *omni_array_push (self->msgs, self->nmsgs, self->msgs_cap) =
        (s_held_t){msg, self->first + self->count - 1};
    self->per_msg = (size_t) n;
    self->pulled++;
    self->pulled_records += (size_t) n;
    if (self->m_pulled) {
        omni_metric_add (self->m_pulled, 1);
        omni_metric_add (self->m_pulled_records, (uint64_t) n);
    }
}

//  Asks the consumer for what the window has room for (one request open
//  at a time) and takes what came, waiting up to `wait_ms` for the first.
static void
s_pull (s_bridge_t *self, int64_t wait_ms)
{
    if (!s_ready (self))
        return;
    //  The window is in records, a pull in messages: as many as fit at the
    //  size of the last one, and one when nothing is held
    size_t room = self->window > self->count ? self->window - self->count : 0;
    size_t fit = room / self->per_msg;
    room = fit ? fit : room && !self->nmsgs ? 1 : 0;
    if (room > FETCH_MAX)
        room = FETCH_MAX;
    int64_t now = omni_util_mono_ms ();
    if (self->asking && now > self->asked_until)
        self->asking = false; //  its end was lost (a reconnect)
    if (!self->asking && room) {
        char request[96];
        snprintf (request, sizeof request, "{\"batch\":%zu,\"expires\":%lld}", room,
                  (long long) FETCH_WAIT_MS * 1000000);
        natsStatus s =
            natsConnection_PublishRequestString (self->nc, self->next, self->inbox, request);
        if (s == NATS_OK) {
            self->asking = true;
            self->asked_left = room;
            self->asked_until = now + FETCH_WAIT_MS + 2000;
        } else {
            char error[400];
            omni_js_error (s, 0, error, sizeof error);
            uint64_t held;
            if (omni_log_allow ("jetstream.pull", self->name, 60000, &held))
                log_warn ("jetstream.pull", "writer=%s error=\"%s\" repeated=%" PRIu64, self->name,
                          error, held);
        }
    }
    natsMsg *msg = NULL;
    size_t taken = 0;
    while (taken < FETCH_MAX &&
           natsSubscription_NextMsg (&msg, self->sub, taken ? 1 : wait_ms) == NATS_OK) {
        const char *status = NULL;
        if (natsMsg_GetDataLength (msg) == 0 &&
            natsMsgHeader_Get (msg, "Status", &status) == NATS_OK) {
            //  404 no messages, 408 expired, 409: the request is over
            self->asking = false;
            natsMsg_Destroy (msg);
            continue;
        }
        taken++;
        if (self->asked_left && --self->asked_left == 0)
            self->asking = false;
        s_take (self, msg);
    }
}

//  The loop committed every offset up to `upto`: acknowledged to the stream.
static void
s_acked (s_bridge_t *self, uint64_t upto)
{
    if (upto > self->sent_upto)
        upto = self->sent_upto;
    if (upto < self->first)
        return;
    size_t n = (size_t) (upto - self->first + 1);
    memmove (self->recs, self->recs + n, (self->count - n) * sizeof *self->recs);
    self->count -= n;
    self->first += n;
    self->acked_records += n;
    //  The messages whose every record is committed (no record left points
    //  into them); counted before the stream hears of them
    size_t m = 0;
    while (m < self->nmsgs && self->msgs[m].last <= upto)
        m++;
    if (self->m_acked) {
        omni_metric_add (self->m_acked, m);
        omni_metric_add (self->m_acked_records, n);
    }
    for (size_t i = 0; i < m; i++) {
        s_reply (self, self->msgs[i].msg, "+ACK");
        natsMsg_Destroy (self->msgs[i].msg);
    }
    memmove (self->msgs, self->msgs + m, (self->nmsgs - m) * sizeof *self->msgs);
    self->nmsgs -= m;
    self->acked += m;
}

static void
s_handle (s_bridge_t *self, zmsg_t *msg)
{
    omni_wire_head_t head;
    char why[128];
    if (omni_wire_decode (WIRE_DELIVERY, msg, &head, why, sizeof why)) {
        log_warn ("jetstream.bad_message", "writer=%s why=\"%s\"", self->name, why);
        return;
    }
    if (head.command == WIRE_HELLO) {
        if (!s_ready (self))
            return; //  no WELCOME without a stream: the loop shows it is not connected
        self->window = head.window < WINDOW_MAX ? head.window : WINDOW_MAX;
        if (!self->window)
            self->window = 1;
        //  From the first message not acknowledged, again
        self->sent_upto = self->first - 1;
        self->welcomed = true;
        omni_wire_head_t welcome = {.command = WIRE_WELCOME, .cursor = self->first};
        memcpy (welcome.journal, self->journal, WIRE_JOURNAL_ID);
        s_send (self, &welcome);
    } else if (head.command == WIRE_DELIVERY_ACK && self->welcomed) {
        s_acked (self, head.upto);
        self->window = head.window < WINDOW_MAX ? head.window : WINDOW_MAX;
        if (!self->window)
            self->window = 1;
    } else if (head.command == WIRE_CONFLICT)
        //  Filed and counted by the writer loop; ingestd's tap is not on
        //  this path.
        log_debug ("jetstream.conflict", "writer=%s records=%zu", self->name, zmsg_size (msg) - 2);
}

static void
s_in_progress (s_bridge_t *self)
{
    for (size_t i = 0; i < self->nmsgs; i++)
        s_reply (self, self->msgs[i].msg, "+WPI");
    self->last_progress_ms = omni_util_mono_ms ();
}

static void
s_actor (zsock_t *pipe, void *arg)
{
    s_bridge_t *self = arg;
    self->sock = zsock_new (ZMQ_DEALER);
    assert (self->sock);
    zsock_set_rcvhwm (self->sock, 0);
    zsock_set_sndhwm (self->sock, 0);
    int rc = zsock_bind (self->sock, "%s", self->endpoint);
    assert (rc == 0);
    zsock_signal (pipe, 0);
    bool terminated = false;
    while (!terminated) {
        int64_t now = omni_util_mono_ms ();
        if (!self->sub && now - self->last_try_ms >= RETRY_MS) {
            self->last_try_ms = now;
            s_attach (self);
        }
        bool pulling = self->welcomed && s_ready (self) && self->count < self->window;
        zmq_pollitem_t items[] = {{zsock_resolve (pipe), 0, ZMQ_POLLIN, 0},
                                  {zsock_resolve (self->sock), 0, ZMQ_POLLIN, 0}};
        if (zmq_poll (items, 2, pulling ? 0 : 100) < 0)
            continue;
        while (zsock_events (self->sock) & ZMQ_POLLIN) {
            zmsg_t *msg = zmsg_recv (self->sock);
            if (!msg)
                break;
            s_handle (self, msg);
            zmsg_destroy (&msg);
        }
        if (items[0].revents & ZMQ_POLLIN) {
            zmsg_t *msg = zmsg_recv (pipe);
            char *command = msg ? zmsg_popstr (msg) : NULL;
            terminated = !command || streq (command, "$TERM");
            free (command);
            zmsg_destroy (&msg);
        }
        if (terminated)
            break;
        if (self->welcomed && s_ready (self) && self->count < self->window)
            //  Idle (all delivered): the pull's wait is the loop's sleep
            s_pull (self, self->sent_upto + 1 < self->first + self->count ? 1 : 100);
        s_pump (self);
        now = omni_util_mono_ms ();
        if (self->welcomed && s_ready (self) && now - self->last_sent_ms >= HEARTBEAT_MS) {
            omni_wire_head_t beat = {.command = WIRE_HEARTBEAT, .cursor = self->first};
            s_send (self, &beat);
        }
        if (self->nmsgs && now - self->last_progress_ms >= self->progress_ms)
            s_in_progress (self);
    }
    //  What the loop did not acknowledge goes back to the stream at once,
    //  for another instance or the next start.
    for (size_t i = 0; i < self->nmsgs; i++) {
        if (self->nc)
            s_reply (self, self->msgs[i].msg, "-NAK");
        natsMsg_Destroy (self->msgs[i].msg);
    }
    log_info ("jetstream.stop",
              "writer=%s pulled=%" PRIu64 " (records %" PRIu64 ") acked=%" PRIu64
              " (records %" PRIu64 ") returned=%zu (records %zu) bad=%" PRIu64,
              self->name, self->pulled, self->pulled_records, self->acked, self->acked_records,
              self->nmsgs, self->count, self->bad);
    self->count = self->nmsgs = 0;
    if (self->nc)
        natsConnection_FlushTimeout (self->nc, 2000);
    s_drop_nats (self);
    zsock_destroy (&self->sock);
    free (self->msgs);
    free (self->recs);
    free (self->parts);
    s_free_list (self->urls);
    free (self->stream);
    free (self->name);
    free (self->aside_dir);
    free (self);
}

omni_jsdelivery_t *
omni_jsdelivery_new (const omni_jsdelivery_config_t *config, char *error, size_t error_size)
{
    unsigned role = omni_kinds_writer_role (config->name);
    if (!omni_js_stream_name_ok (config->stream)) {
        snprintf (error, error_size,
                  "stream: \"%s\" is not a stream name (1..%d of A-Z a-z 0-9 _ -)", config->stream,
                  OMNI_JS_STREAM_MAX);
        return NULL;
    }
    if (!role) {
        snprintf (error, error_size, "\"%s\" is no writer", config->name);
        return NULL;
    }
    if (!config->urls || !config->urls[0]) {
        snprintf (error, error_size, "nats_urls: no NATS server given");
        return NULL;
    }
    s_bridge_t *bridge = calloc (1, sizeof *bridge);
    assert (bridge);
    size_t n = 0;
    while (config->urls[n])
        n++;
    bridge->urls = calloc (n + 1, sizeof *bridge->urls);
    assert (bridge->urls);
    for (size_t i = 0; i < n; i++)
        bridge->urls[i] = strdup (config->urls[i]);
    bridge->stream = strdup (config->stream);
    bridge->name = strdup (config->name);
    bridge->aside_dir = config->aside_dir ? strdup (config->aside_dir) : NULL;
    bridge->per_msg = 1;
    if (config->metrics) {
        bridge->m_pulled =
            omni_metrics_counter (config->metrics, "jetstream_messages_pulled_total",
                                  "Messages pulled from the writer's JetStream consumer", NULL);
        bridge->m_pulled_records = omni_metrics_counter (
            config->metrics, "jetstream_records_pulled_total",
            "Records in the messages pulled from the JetStream consumer", NULL);
        bridge->m_acked = omni_metrics_counter (
            config->metrics, "jetstream_messages_acked_total",
            "Messages acknowledged to the stream (every record in them committed)", NULL);
        bridge->m_acked_records =
            omni_metrics_counter (config->metrics, "jetstream_records_acked_total",
                                  "Records committed whose acknowledgement the stream was sent "
                                  "(with their message's last)",
                                  NULL);
        bridge->m_bad = omni_metrics_counter (
            config->metrics, "jetstream_bad_messages_total",
            "Messages that did not split into records: kept aside in conflicts_dir and terminated",
            NULL);
    }
    omni_js_writer_filter (config->stream, role, bridge->filter, sizeof bridge->filter);
    bridge->first = 1;
    bridge->window = 1;
    bridge->last_try_ms = omni_util_mono_ms () - RETRY_MS;
    zuuid_t *uuid = zuuid_new ();
    memcpy (bridge->journal, zuuid_data (uuid), WIRE_JOURNAL_ID);
    zuuid_destroy (&uuid);
    omni_jsdelivery_t *self = calloc (1, sizeof *self);
    assert (self);
    snprintf (self->endpoint, sizeof self->endpoint, "inproc://omni-jsdelivery-%s-%p", config->name,
              (void *) self);
    memcpy (bridge->endpoint, self->endpoint, sizeof self->endpoint);
    self->actor = zactor_new (s_actor, bridge);
    assert (self->actor);
    return self;
}

void
omni_jsdelivery_destroy (omni_jsdelivery_t **self_p)
{
    omni_jsdelivery_t *self = *self_p;
    if (!self)
        return;
    zactor_destroy (&self->actor);
    free (self);
    *self_p = NULL;
}

const char *
omni_jsdelivery_endpoint (omni_jsdelivery_t *self)
{
    return self->endpoint;
}

//  The next message of `command` from the bridge, heartbeats skipped.
static zmsg_t *
s_test_recv (zsock_t *loop, omni_wire_command_t command, omni_wire_head_t *head)
{
    for (;;) {
        zmsg_t *msg = zmsg_recv (loop);
        if (!msg)
            return NULL;
        char why[128];
        int rc = omni_wire_decode (WIRE_DELIVERY, msg, head, why, sizeof why);
        assert (rc == 0);
        if (head->command == command)
            return msg;
        assert (head->command == WIRE_HEARTBEAT);
        zmsg_destroy (&msg);
    }
}

//  A DELIVER of the records named, in order.
static void
s_test_deliver (zsock_t *loop, uint64_t upto, const char *records)
{
    omni_wire_head_t head;
    zmsg_t *msg = s_test_recv (loop, WIRE_DELIVER, &head);
    assert (msg && head.upto == upto);
    char got[64] = "";
    for (zframe_t *frame = zmsg_next (msg); frame; frame = zmsg_next (msg))
        snprintf (got + strlen (got), sizeof got - strlen (got), "%.*s ", (int) zframe_size (frame),
                  (const char *) zframe_data (frame));
    assert (streq (got, records));
    zmsg_destroy (&msg);
}

//  DELIVERs up to `upto` (however the pulls cut them), their records
//  named in order.
static void
s_test_collect (zsock_t *loop, uint64_t upto, const char *records)
{
    char got[128] = "";
    omni_wire_head_t head = {0};
    while (head.upto < upto) {
        zmsg_t *msg = s_test_recv (loop, WIRE_DELIVER, &head);
        assert (msg && head.upto <= upto);
        for (zframe_t *frame = zmsg_next (msg); frame; frame = zmsg_next (msg))
            snprintf (got + strlen (got), sizeof got - strlen (got), "%.*s ",
                      (int) zframe_size (frame), (const char *) zframe_data (frame));
        zmsg_destroy (&msg);
    }
    assert (streq (got, records));
}

//  A message of ingestd's: the records named (space-separated) in a batch
//  of `count` (another than theirs: a bad message), or `body` as it is.
static void
s_test_publish (jsCtx *js, unsigned writers, const char *names, const char *count, const char *body,
                size_t body_size)
{
    char subject[OMNI_JS_SUBJECT_MAX];
    omni_js_record_subject ("T", writers, "x.t", 3, subject, sizeof subject);
    omni_js_batch_t batch = {0};
    char copy[64];
    snprintf (copy, sizeof copy, "%s", names);
    uint8_t id[RECORD_ID_SIZE] = {0};
    for (char *name = strtok (copy, " "); name; name = strtok (NULL, " ")) {
        id[0]++;
        omni_js_batch_add (&batch, id, name, strlen (name));
    }
    char msg_id[OMNI_JS_BATCH_ID_SIZE];
    if (batch.count)
        omni_js_batch_finish (&batch, subject, msg_id);
    natsMsg *msg = NULL;
    natsStatus s = natsMsg_Create (&msg, subject, NULL, body ? body : batch.body.data,
                                   (int) (body ? body_size : batch.body.size));
    assert (s == NATS_OK);
    natsMsgHeader_Set (msg, OMNI_JS_BATCH_HEADER, OMNI_JS_BATCH_VERSION);
    natsMsgHeader_Set (msg, OMNI_JS_RECORDS_HEADER, count);
    s = js_PublishMsg (NULL, js, msg, NULL, NULL);
    assert (s == NATS_OK);
    natsMsg_Destroy (msg);
    omni_js_batch_release (&batch);
}

//  The consumer's messages delivered and not acknowledged, once it is
//  `expect` (within 5 s); the last value seen.
static int64_t
s_test_ack_pending (jsCtx *js, int64_t expect)
{
    int64_t have = -1;
    for (int i = 0; i < 100 && have != expect; i++) {
        jsConsumerInfo *ci = NULL;
        natsStatus s = js_GetConsumerInfo (&ci, js, "T", "relational", NULL, NULL);
        assert (s == NATS_OK);
        have = ci->NumAckPending + (int64_t) ci->NumPending;
        jsConsumerInfo_Destroy (ci);
        if (have != expect)
            zclock_sleep (50);
    }
    return have;
}

static void
s_test_send (zsock_t *loop, omni_wire_command_t command, uint64_t upto, uint32_t window)
{
    omni_wire_head_t head = {
        .command = command, .upto = upto, .window = window, .text = "relational", .text_size = 10};
    int rc = omni_wire_send_head (zsock_resolve (loop), NULL, 0, &head, false, 0);
    assert (rc == 0);
}

//  Against a nats-server: pulls within the window, DELIVERs in order,
//  acknowledges what the loop acknowledged, sends again after a HELLO.
static void
s_test_with_server (void)
{
    natstest_t *server = natstest_new ();
    natstest_start (server);
    const char *urls[] = {natstest_url (server), NULL};
    char error[512];
    natsConnection *nc = NULL;
    for (int i = 0; i < 200 && !nc; i++)
        if (!(nc = omni_js_connect (urls, "test", 500, error, sizeof error)))
            zclock_sleep (50);
    assert (nc);
    jsCtx *js = NULL;
    natsStatus s = natsConnection_JetStream (&js, nc, NULL);
    assert (s == NATS_OK);
    //  The stream and the consumer as ingestd makes them
    char subject[OMNI_JS_SUBJECT_MAX], filter[OMNI_JS_SUBJECT_MAX];
    omni_js_stream_subject ("T", subject, sizeof subject);
    const char *subjects[] = {subject};
    jsStreamConfig sc;
    jsStreamConfig_Init (&sc);
    sc.Name = "T";
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Retention = js_InterestPolicy;
    sc.Storage = js_MemoryStorage;
    for (int i = 0; i < 100 && (s = js_AddStream (NULL, js, &sc, NULL, NULL)) != NATS_OK; i++)
        zclock_sleep (50); //  JetStream starts a moment after the port
    assert (s == NATS_OK);
    omni_js_writer_filter ("T", WRITER_RELATIONAL, filter, sizeof filter);
    jsConsumerConfig cc;
    jsConsumerConfig_Init (&cc);
    cc.Durable = "relational";
    cc.FilterSubject = filter;
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = 30000000000LL;
    s = js_AddConsumer (NULL, js, "T", &cc, NULL, NULL);
    assert (s == NATS_OK);
    //  Five records for relationald, one for the archive alone
    for (int i = 0; i < 6; i++) {
        char data[8];
        snprintf (data, sizeof data, "r%d", i);
        omni_js_record_subject ("T", i == 2 ? WRITER_ARCHIVE : WRITER_ARCHIVE | WRITER_RELATIONAL,
                                "x.t", 3, subject, sizeof subject);
        s = js_Publish (NULL, js, subject, data, 2, NULL, NULL);
        assert (s == NATS_OK);
    }
    char aside[] = "/tmp/omni-jsdelivery-XXXXXX";
    assert (mkdtemp (aside));
    omni_metrics_t *metrics = omni_metrics_new ("test");
    omni_jsdelivery_config_t config = {urls, "T", "relational", aside, metrics};
    omni_jsdelivery_t *source = omni_jsdelivery_new (&config, error, sizeof error);
    assert (source);
    zsock_t *loop = zsock_new_dealer (omni_jsdelivery_endpoint (source));
    assert (loop);
    //  HELLO until the bridge is attached (it says nothing before)
    zsock_set_rcvtimeo (loop, 200);
    omni_wire_head_t head;
    zmsg_t *msg = NULL;
    for (int i = 0; i < 50 && !msg; i++) {
        s_test_send (loop, WIRE_HELLO, 0, 3);
        msg = s_test_recv (loop, WIRE_WELCOME, &head);
    }
    assert (msg && head.cursor == 1);
    zmsg_destroy (&msg);
    zsock_set_rcvtimeo (loop, 5000);
    //  The window: three records, then two more as the loop acknowledges
    s_test_deliver (loop, 3, "r0 r1 r3 ");
    s_test_send (loop, WIRE_DELIVERY_ACK, 2, 3);
    s_test_deliver (loop, 5, "r4 r5 ");
    //  The loop lost its session: what it did not acknowledge comes again
    s_test_send (loop, WIRE_HELLO, 0, 10);
    msg = s_test_recv (loop, WIRE_WELCOME, &head);
    assert (msg && head.cursor == 3);
    zmsg_destroy (&msg);
    s_test_deliver (loop, 5, "r3 r4 r5 ");
    s_test_send (loop, WIRE_DELIVERY_ACK, 5, 10);
    //  All acknowledged to the stream: nothing pending for the consumer
    assert (s_test_ack_pending (js, 0) == 0);
    //  Batches of ingestd's among a message of before and a bad one: each
    //  record an offset of its own, in order; the bad message (a record
    //  short) kept aside and terminated, the archive's batch not here
    s_test_publish (js, WRITER_ARCHIVE | WRITER_RELATIONAL, "b0 b1 b2", "3", NULL, 0);
    s_test_publish (js, WRITER_RELATIONAL, "z0 z1", "3", NULL, 0);
    s_test_publish (js, WRITER_ARCHIVE, "a0 a1", "2", NULL, 0);
    omni_js_record_subject ("T", WRITER_RELATIONAL, "x.t", 3, subject, sizeof subject);
    s = js_Publish (NULL, js, subject, "r6", 2, NULL, NULL);
    assert (s == NATS_OK);
    s_test_publish (js, WRITER_RELATIONAL, "c0 c1", "2", NULL, 0);
    s_test_publish (js, WRITER_RELATIONAL, "", "1", "\x91\xc4\x09trunc", 8);
    s_test_collect (loop, 11, "b0 b1 b2 r6 c0 c1 ");
    assert (s_test_ack_pending (js, 3) == 3); //  b, r6, c: the bad ones terminated
    omni_metric_t *bad = omni_metrics_counter (metrics, "jetstream_bad_messages_total", "", NULL);
    assert (omni_metric_value (bad) == 2);
    char path[300];
    snprintf (path, sizeof path, "%s/relational.bad-messages.jsonl", aside);
    FILE *file = fopen (path, "r");
    assert (file);
    char line[1024];
    assert (fgets (line, sizeof line, file) && strstr (line, "\"why\":\"the body holds 2 records"));
    assert (strstr (line, "\"omni_records\":\"3\"") && strstr (line, "\"seq\":8"));
    assert (fgets (line, sizeof line, file) && strstr (line, "truncated"));
    fclose (file);
    //  The batch b acknowledged once its last record is: not at b1, at b2
    s_test_send (loop, WIRE_DELIVERY_ACK, 7, 10);
    s_test_send (loop, WIRE_HELLO, 0, 10);
    msg = s_test_recv (loop, WIRE_WELCOME, &head);
    assert (msg && head.cursor == 8);
    zmsg_destroy (&msg);
    s_test_collect (loop, 11, "b2 r6 c0 c1 ");
    //  (a negative: nothing says an ack did not go; it would within 500 ms)
    for (int i = 0; i < 10; i++) {
        assert (s_test_ack_pending (js, 3) == 3);
        zclock_sleep (50);
    }
    s_test_send (loop, WIRE_DELIVERY_ACK, 8, 10);
    assert (s_test_ack_pending (js, 2) == 2);
    s_test_send (loop, WIRE_DELIVERY_ACK, 11, 10);
    assert (s_test_ack_pending (js, 0) == 0);
    omni_metric_t *records =
                      omni_metrics_counter (metrics, "jetstream_records_acked_total", "", NULL),
                  *messages =
                      omni_metrics_counter (metrics, "jetstream_messages_acked_total", "", NULL);
    assert (omni_metric_value (records) == 11 && omni_metric_value (messages) == 8);
    zsock_destroy (&loop);
    omni_jsdelivery_destroy (&source);
    omni_metrics_destroy (&metrics);
    unlink (path);
    rmdir (aside);
    jsCtx_Destroy (js);
    natsConnection_Destroy (nc);
    natstest_destroy (&server);
}

void
omni_jsdelivery_test (bool verbose)
{
    (void) verbose;
    char error[256];
    const char *urls[] = {"nats://127.0.0.1:1", NULL};
    omni_jsdelivery_config_t config = {urls, "a.b", "relational", NULL, NULL};
    assert (!omni_jsdelivery_new (&config, error, sizeof error) && strstr (error, "a.b"));
    config.stream = "OMNI";
    config.name = "nope";
    assert (!omni_jsdelivery_new (&config, error, sizeof error) && strstr (error, "nope"));
    //  No server: the bridge waits, the loop hears nothing (not connected)
    config.name = "relational";
    omni_jsdelivery_t *source = omni_jsdelivery_new (&config, error, sizeof error);
    assert (source);
    assert (strncmp (omni_jsdelivery_endpoint (source), "inproc://", 9) == 0);
    zsock_t *loop = zsock_new_dealer (omni_jsdelivery_endpoint (source));
    assert (loop);
    omni_wire_head_t hello = {
        .command = WIRE_HELLO, .window = 10, .text = "relational", .text_size = 10};
    assert (omni_wire_send_head (zsock_resolve (loop), NULL, 0, &hello, false, 0) == 0);
    zsock_set_rcvtimeo (loop, 300);
    zmsg_t *msg = zmsg_recv (loop);
    assert (!msg);
    zsock_destroy (&loop);
    omni_jsdelivery_destroy (&source);
    assert (!source);
    s_test_with_server ();
    natstest_close_library ();
}
