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
    is handed back at once (NAK).                                          */
#include "client/jsdelivery.h"
#include "proto/jetstream.h"
#include "common/log.h"
#include "common/util.h"
#include "proto/kinds.h"
#include "proto/wire.h"
#include "testsupport/natstest.h"

#include <assert.h>
#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FETCH_MAX     1000   //  messages asked for in one pull
#define FETCH_WAIT_MS 200    //  a pull waits this long for a first message
#define DELIVER_MAX   1000   //  records in one DELIVER
#define WINDOW_MAX    100000 //  messages held at most, whatever the loop grants
#define RETRY_MS      1000   //  connect / bind again after a failure
#define HEARTBEAT_MS  1000
#define CONNECT_MS    2000

struct _omni_jsdelivery_t {
    zactor_t *actor;
    char endpoint[128];
};

typedef struct {
    char **urls;
    char *stream, *name;
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
    //  Messages pulled and not acknowledged: msgs[i] has offset first + i
    natsMsg **msgs;
    size_t count, cap;
    uint64_t first;     //  offset of msgs[0]
    uint64_t sent_upto; //  last offset delivered to the loop
    uint32_t window;
    bool welcomed;
    uint64_t pulled, acked;
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
            natsMsg *msg = self->msgs[self->sent_upto + k - self->first];
            omni_wire_send_record (sock, natsMsg_GetData (msg),
                                   (size_t) natsMsg_GetDataLength (msg), k == n);
        }
        self->sent_upto += n;
        self->last_sent_ms = omni_util_mono_ms ();
    }
}

//  Asks the consumer for what the window has room for (one request open
//  at a time) and takes what came, waiting up to `wait_ms` for the first.
static void
s_pull (s_bridge_t *self, int64_t wait_ms)
{
    if (!s_ready (self))
        return;
    size_t room = self->window > self->count ? self->window - self->count : 0;
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
        if (self->count == self->cap) {
            self->cap = self->cap ? self->cap * 2 : FETCH_MAX;
            self->msgs = realloc (self->msgs, self->cap * sizeof *self->msgs);
            assert (self->msgs);
        }
        self->msgs[self->count++] = msg;
        taken++;
        if (self->asked_left && --self->asked_left == 0)
            self->asking = false;
    }
    self->pulled += taken;
}

//  A reply to one message: +ACK, +WPI (in progress) or -NAK.
static void
s_reply (s_bridge_t *self, natsMsg *msg, const char *what)
{
    const char *reply = natsMsg_GetReply (msg);
    if (reply && *reply)
        natsConnection_PublishString (self->nc, reply, what);
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
    for (size_t i = 0; i < n; i++) {
        s_reply (self, self->msgs[i], "+ACK");
        natsMsg_Destroy (self->msgs[i]);
    }
    memmove (self->msgs, self->msgs + n, (self->count - n) * sizeof *self->msgs);
    self->count -= n;
    self->first += n;
    self->acked += n;
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
    for (size_t i = 0; i < self->count; i++)
        s_reply (self, self->msgs[i], "+WPI");
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
        if (self->count && now - self->last_progress_ms >= self->progress_ms)
            s_in_progress (self);
    }
    //  What the loop did not acknowledge goes back to the stream at once,
    //  for another instance or the next start.
    for (size_t i = 0; i < self->count; i++) {
        if (self->nc)
            s_reply (self, self->msgs[i], "-NAK");
        natsMsg_Destroy (self->msgs[i]);
    }
    log_info ("jetstream.stop", "writer=%s pulled=%" PRIu64 " acked=%" PRIu64 " returned=%zu",
              self->name, self->pulled, self->acked, self->count);
    self->count = 0;
    if (self->nc)
        natsConnection_FlushTimeout (self->nc, 2000);
    s_drop_nats (self);
    zsock_destroy (&self->sock);
    free (self->msgs);
    s_free_list (self->urls);
    free (self->stream);
    free (self->name);
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
    omni_jsdelivery_config_t config = {urls, "T", "relational"};
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
    jsConsumerInfo *ci = NULL;
    for (int i = 0; i < 100; i++) {
        s = js_GetConsumerInfo (&ci, js, "T", "relational", NULL, NULL);
        assert (s == NATS_OK);
        bool done = ci->NumAckPending == 0 && ci->NumPending == 0;
        jsConsumerInfo_Destroy (ci);
        if (done)
            break;
        assert (i < 99);
        zclock_sleep (50);
    }
    zsock_destroy (&loop);
    omni_jsdelivery_destroy (&source);
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
    omni_jsdelivery_config_t config = {urls, "a.b", "relational"};
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
    nats_Close ();
}
