/*  testpeer: an acknowledging intake for self-tests.

    It answers through the same codec as ingestd, so a self-test of a
    collector or a writer checks it against the protocol rather than against
    a second, hand-written spelling of it.                                   */
#include "testsupport/testpeer.h"
#include "client/intake_client.h"
#include "common/buf.h"
#include "proto/wire.h"

#include <assert.h>
#include <czmq.h>
#include <pthread.h>

struct _testpeer_t {
    zsock_t *router;
    zactor_t *actor;
    char endpoint[64];
    pthread_mutex_t lock;
    zlist_t *records; //  zframe_t *
    size_t drop, accepted, rejected;
    char *replay_writers;
    //  Delivery (the test's thread only)
    zsock_t *delivery;
    char delivery_endpoint[64];
    zframe_t *writer; //  routing id of the writer spoken to
    bool packed;      //  its HELLO asked for DELIVERP
    uint64_t acked;
    size_t conflicts;
    uint64_t conflict_acked;
    size_t packed_batches; //  BATCHP messages received
    bool old;              //  answers as an ingestd before BATCHP (testpeer_old)
};

//  The records of an intake message as frames: BATCHP's unpacked (a frame
//  that does not unpack fails the test: clients pack what they send).
static zmsg_t *
s_records (const omni_wire_head_t *head, zmsg_t *msg)
{
    zmsg_t *records = zmsg_new ();
    for (zframe_t *frame = zmsg_next (msg); frame; frame = zmsg_next (msg)) {
        if (head->command != WIRE_BATCHP) {
            zmsg_addmem (records, zframe_data (frame), zframe_size (frame));
            continue;
        }
        size_t count;
        const uint8_t *data;
        char why[128];
        if (omni_wire_unpack (zframe_data (frame), zframe_size (frame), &count, &data, why,
                              sizeof why)) {
            fprintf (stderr, "testpeer: BATCHP frame: %s\n", why);
            assert (false);
        }
        for (size_t i = 0; i < count; data += omni_wire_packed_size (zframe_data (frame), i++))
            zmsg_addmem (records, data, omni_wire_packed_size (zframe_data (frame), i));
    }
    return records;
}

static void
s_answer (testpeer_t *self, zmsg_t *msg, zframe_t *peer)
{
    omni_wire_head_t head;
    char why[128];
    if (omni_wire_decode (WIRE_INTAKE, msg, &head, why, sizeof why) != 0 ||
        !omni_wire_carries_records (head.command)) {
        fprintf (stderr, "testpeer: malformed intake message: %s\n", why);
        assert (false);
    }
    pthread_mutex_lock (&self->lock);
    bool old = self->old;
    pthread_mutex_unlock (&self->lock);
    if (old && head.command == WIRE_BATCHP) {
        //  What an ingestd that does not know BATCHP answers
        const char *text =
            "bad_frame: malformed intake message, see " WIRE_INTAKE_SIGNATURE " in PROTOCOL.md";
        omni_wire_head_t error = {.command = WIRE_INTAKE_ERROR,
                                  .seq = head.seq,
                                  .text = text,
                                  .text_size = strlen (text)};
        omni_wire_send_head (zsock_resolve (self->router), zframe_data (peer), zframe_size (peer),
                             &error, false, 0);
        return;
    }
    msgpack_zone zone;
    msgpack_zone_init (&zone, 4096);
    //  It takes BATCHP, as ingestd does
    omni_wire_head_t ack = {.command = WIRE_INTAKE_ACK,
                            .seq = head.seq,
                            .features = WIRE_FEATURE_PACKED,
                            .features_size = strlen (WIRE_FEATURE_PACKED)};
    zmsg_t *records = s_records (&head, msg);
    pthread_mutex_lock (&self->lock);
    if (head.command == WIRE_REPLAY) {
        free (self->replay_writers);
        self->replay_writers = strndup (head.text, head.text_size);
    }
    self->packed_batches += head.command == WIRE_BATCHP;
    for (zframe_t *frame = zmsg_first (records); frame; frame = zmsg_next (records)) {
        omni_record_t record;
        char detail[256];
        msgpack_zone_clear (&zone);
        if (omni_record_decode (&record, &zone, zframe_data (frame), zframe_size (frame), NULL,
                                detail, sizeof detail) == REJECT_NONE)
            ack.accepted++;
        else
            ack.rejected++;
        zlist_append (self->records, zframe_dup (frame));
    }
    bool drop = self->drop > 0;
    if (drop)
        self->drop--;
    else {
        self->accepted += ack.accepted;
        self->rejected += ack.rejected;
    }
    pthread_mutex_unlock (&self->lock);
    zmsg_destroy (&records);
    msgpack_zone_destroy (&zone);
    if (!drop)
        omni_wire_send_head (zsock_resolve (self->router), zframe_data (peer), zframe_size (peer),
                             &ack, false, 0);
}

static void
s_actor (zsock_t *pipe, void *args)
{
    testpeer_t *self = (testpeer_t *) args;
    zsock_signal (pipe, 0);
    zpoller_t *poller = zpoller_new (pipe, self->router, NULL);
    while (zpoller_wait (poller, -1) == self->router) {
        zmsg_t *msg = zmsg_recv (self->router);
        if (!msg)
            break;
        zframe_t *peer = zmsg_pop (msg);
        s_answer (self, msg, peer);
        zframe_destroy (&peer);
        zmsg_destroy (&msg);
    }
    zpoller_destroy (&poller);
}

testpeer_t *
testpeer_new (void)
{
    testpeer_t *self = calloc (1, sizeof *self);
    assert (self);
    pthread_mutex_init (&self->lock, NULL);
    self->records = zlist_new ();
    self->router = zsock_new (ZMQ_ROUTER);
    int port = zsock_bind (self->router, "tcp://127.0.0.1:*");
    assert (port > 0);
    snprintf (self->endpoint, sizeof self->endpoint, "tcp://127.0.0.1:%d", port);
    self->actor = zactor_new (s_actor, self);
    return self;
}

void
testpeer_destroy (testpeer_t **self_p)
{
    testpeer_t *self = *self_p;
    if (!self)
        return;
    zactor_destroy (&self->actor);
    zsock_destroy (&self->router);
    zsock_destroy (&self->delivery);
    zframe_destroy (&self->writer);
    testpeer_clear (self);
    zlist_destroy (&self->records);
    pthread_mutex_destroy (&self->lock);
    free (self->replay_writers);
    free (self);
    *self_p = NULL;
}

const char *
testpeer_endpoint (testpeer_t *self)
{
    return self->endpoint;
}

void
testpeer_drop (testpeer_t *self, size_t batches)
{
    pthread_mutex_lock (&self->lock);
    self->drop = batches;
    pthread_mutex_unlock (&self->lock);
}

//  A counter the actor thread moves, read under its lock
static size_t
s_locked (testpeer_t *self, const size_t *counter)
{
    pthread_mutex_lock (&self->lock);
    size_t n = *counter;
    pthread_mutex_unlock (&self->lock);
    return n;
}

size_t
testpeer_count (testpeer_t *self)
{
    pthread_mutex_lock (&self->lock);
    size_t n = zlist_size (self->records);
    pthread_mutex_unlock (&self->lock);
    return n;
}

size_t
testpeer_accepted (testpeer_t *self)
{
    return s_locked (self, &self->accepted);
}

void
testpeer_old (testpeer_t *self, bool old)
{
    pthread_mutex_lock (&self->lock);
    self->old = old;
    pthread_mutex_unlock (&self->lock);
}

size_t
testpeer_packed_batches (testpeer_t *self)
{
    return s_locked (self, &self->packed_batches);
}

size_t
testpeer_rejected (testpeer_t *self)
{
    return s_locked (self, &self->rejected);
}

void
testpeer_record (testpeer_t *self, size_t index, omni_record_t *record, msgpack_zone *zone)
{
    pthread_mutex_lock (&self->lock);
    zframe_t *frame = zlist_first (self->records);
    for (size_t i = 0; frame && i < index; i++)
        frame = zlist_next (self->records);
    pthread_mutex_unlock (&self->lock);
    assert (frame);
    char detail[256];
    omni_record_reject_t rc = omni_record_decode (record, zone, zframe_data (frame),
                                                  zframe_size (frame), NULL, detail, sizeof detail);
    if (rc != REJECT_NONE)
        fprintf (stderr, "testpeer: record %zu: %s\n", index, detail);
    assert (rc == REJECT_NONE);
}

size_t
testpeer_count_kind (testpeer_t *self, const char *kind)
{
    size_t n = 0, total = testpeer_count (self);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 4096);
    for (size_t i = 0; i < total; i++) {
        omni_record_t record;
        testpeer_record (self, i, &record, &zone);
        n += omni_record_str_eq (record.kind, kind);
        msgpack_zone_clear (&zone);
    }
    msgpack_zone_destroy (&zone);
    return n;
}

char *
testpeer_replay_writers (testpeer_t *self)
{
    pthread_mutex_lock (&self->lock);
    char *writers = self->replay_writers ? strdup (self->replay_writers) : NULL;
    pthread_mutex_unlock (&self->lock);
    return writers;
}

void
testpeer_clear (testpeer_t *self)
{
    pthread_mutex_lock (&self->lock);
    zframe_t *frame;
    while ((frame = zlist_pop (self->records)))
        zframe_destroy (&frame);
    self->accepted = self->rejected = 0;
    pthread_mutex_unlock (&self->lock);
}

//  ---------------------------------------------------------------------------
//  Delivery

const char *
testpeer_delivery_endpoint (testpeer_t *self)
{
    if (!self->delivery) {
        self->delivery = zsock_new (ZMQ_ROUTER);
        int port = zsock_bind (self->delivery, "tcp://127.0.0.1:*");
        assert (port > 0);
        snprintf (self->delivery_endpoint, sizeof self->delivery_endpoint, "tcp://127.0.0.1:%d",
                  port);
    }
    return self->delivery_endpoint;
}

//  The next message from a writer, decoded (NULL at the timeout). A writer
//  that sends one the codec refuses fails the test.
static zmsg_t *
s_delivery_recv (testpeer_t *self, int timeout_ms, zframe_t **from, omni_wire_head_t *head)
{
    testpeer_delivery_endpoint (self);
    zsock_set_rcvtimeo (self->delivery, timeout_ms);
    zmsg_t *msg = zmsg_recv (self->delivery);
    if (!msg)
        return NULL;
    *from = zmsg_pop (msg);
    char why[128];
    if (omni_wire_decode (WIRE_DELIVERY, msg, head, why, sizeof why) != 0 ||
        (head->command != WIRE_HELLO && head->command != WIRE_DELIVERY_ACK &&
         head->command != WIRE_CONFLICT)) {
        fprintf (stderr, "testpeer: malformed delivery message: %s\n",
                 head->command == WIRE_NONE ? why : omni_wire_command_name (head->command));
        assert (false);
    }
    if (head->command == WIRE_DELIVERY_ACK && head->upto > self->acked)
        self->acked = head->upto;
    else if (head->command == WIRE_CONFLICT) {
        for (zframe_t *frame = zmsg_next (msg); frame; frame = zmsg_next (msg))
            self->conflicts++;
        self->conflict_acked = self->acked;
    }
    return msg;
}

uint32_t
testpeer_hello (testpeer_t *self, char *name, size_t name_size, char *instance,
                size_t instance_size)
{
    while (true) {
        zframe_t *from;
        omni_wire_head_t head;
        zmsg_t *msg = s_delivery_recv (self, -1, &from, &head);
        assert (msg);
        if (head.command == WIRE_HELLO) {
            snprintf (name, name_size, "%.*s", (int) head.text_size, head.text);
            snprintf (instance, instance_size, "%.*s", (int) head.instance_size,
                      head.instance ? head.instance : "");
            zframe_destroy (&self->writer);
            self->writer = from;
            self->packed = omni_wire_has_feature (&head, WIRE_FEATURE_PACKED);
            self->acked = 0;
            zmsg_destroy (&msg);
            return head.window;
        }
        zframe_destroy (&from);
        zmsg_destroy (&msg);
    }
}

static void
s_delivery_send (testpeer_t *self, const omni_wire_head_t *head, zmsg_t **records)
{
    assert (self->writer);
    void *sock = zsock_resolve (self->delivery);
    size_t n = records && *records ? zmsg_size (*records) : 0;
    assert (omni_wire_send_head (sock, zframe_data (self->writer), zframe_size (self->writer), head,
                                 n > 0, 0) == 0);
    size_t i = 0;
    for (zframe_t *frame = n ? zmsg_first (*records) : NULL; frame; frame = zmsg_next (*records))
        omni_wire_send_record (sock, zframe_data (frame), zframe_size (frame), ++i == n);
    if (records)
        zmsg_destroy (records);
}

void
testpeer_welcome (testpeer_t *self, uint64_t cursor)
{
    omni_wire_head_t head = {.command = WIRE_WELCOME, .cursor = cursor};
    memcpy (head.journal, "testpeer-journal", WIRE_JOURNAL_ID);
    s_delivery_send (self, &head, NULL);
}

void
testpeer_deliver (testpeer_t *self, uint64_t upto, zmsg_t **records)
{
    size_t n = records && *records ? zmsg_size (*records) : 0;
    if (!self->packed || n == 0) {
        testpeer_deliver_frames (self, upto, records);
        return;
    }
    //  As ingestd sends them (omni_wire_send_packed)
    omni_buf_t data = {0};
    size_t *ends = calloc (n, sizeof *ends), i = 0;
    assert (ends);
    for (zframe_t *frame = zmsg_first (*records); frame; frame = zmsg_next (*records)) {
        omni_buf_append (&data, zframe_data (frame), zframe_size (frame));
        ends[i++] = data.size;
    }
    void *sock = zsock_resolve (self->delivery);
    omni_wire_head_t head = {.command = WIRE_DELIVERP, .upto = upto};
    assert (omni_wire_send_head (sock, zframe_data (self->writer), zframe_size (self->writer),
                                 &head, true, 0) == 0);
    assert (omni_wire_send_packed (sock, data.data, ends, 0, n, true) == 0);
    free (ends);
    omni_buf_release (&data);
    zmsg_destroy (records);
}

void
testpeer_deliver_frames (testpeer_t *self, uint64_t upto, zmsg_t **records)
{
    omni_wire_head_t head = {.command = WIRE_DELIVER, .upto = upto};
    s_delivery_send (self, &head, records);
}

void
testpeer_deliver_packed (testpeer_t *self, uint64_t upto, const void *frame, size_t size)
{
    omni_wire_head_t head = {.command = WIRE_DELIVERP, .upto = upto};
    zmsg_t *records = zmsg_new ();
    zmsg_addmem (records, frame, size);
    s_delivery_send (self, &head, &records);
}

void
testpeer_heartbeat (testpeer_t *self, uint64_t cursor)
{
    omni_wire_head_t head = {.command = WIRE_HEARTBEAT, .cursor = cursor};
    s_delivery_send (self, &head, NULL);
}

void
testpeer_refuse (testpeer_t *self, const char *reason)
{
    omni_wire_head_t head = {.command = WIRE_REFUSED, .text = reason, .text_size = strlen (reason)};
    s_delivery_send (self, &head, NULL);
}

uint64_t
testpeer_await_ack (testpeer_t *self, uint64_t upto, int timeout_ms)
{
    int64_t until = timeout_ms < 0 ? INT64_MAX : zclock_mono () + timeout_ms;
    while (self->acked < upto) {
        int64_t left = until - zclock_mono ();
        if (left <= 0)
            break;
        zframe_t *from;
        omni_wire_head_t head;
        zmsg_t *msg = s_delivery_recv (self, timeout_ms < 0 ? -1 : (int) left, &from, &head);
        if (!msg)
            break;
        zframe_destroy (&from);
        zmsg_destroy (&msg);
    }
    return self->acked;
}

size_t
testpeer_conflicts (testpeer_t *self, uint64_t *acked)
{
    if (acked)
        *acked = self->conflict_acked;
    return self->conflicts;
}

void
testpeer_test (bool verbose)
{
    (void) verbose;
    testpeer_t *peer = testpeer_new ();
    omni_intake_config_t config = {testpeer_endpoint (peer), 2, 0, 2, 5000, 5000, NULL};
    omni_intake_client_t *client = omni_intake_client_new (&config);
    assert (client);
    //  One valid record (an empty map is not one) and one that is not msgpack
    assert (omni_intake_client_send (client, "\xc1", 1) == 0);
    assert (omni_intake_client_send (client, "\x80", 1) == 0);
    assert (omni_intake_client_flush (client) == 0);
    assert (testpeer_count (peer) == 2);
    assert (testpeer_accepted (peer) + testpeer_rejected (peer) == 2);
    assert (omni_intake_client_accepted (client) == testpeer_accepted (peer));
    omni_intake_client_destroy (&client);

    //  Delivery: a writer's HELLO (without instance, as before instance
    //  ids), its ACK; the writer hears WELCOME and DELIVER through the codec
    zsock_t *writer = zsock_new_dealer (testpeer_delivery_endpoint (peer));
    assert (writer);
    omni_wire_head_t head = {.command = WIRE_HELLO, .text = "archive", .text_size = 7, .window = 9};
    omni_wire_send_head (zsock_resolve (writer), NULL, 0, &head, false, 0);
    char name[16], instance[16];
    assert (testpeer_hello (peer, name, sizeof name, instance, sizeof instance) == 9);
    assert (streq (name, "archive") && streq (instance, ""));
    testpeer_welcome (peer, 3);
    zmsg_t *records = zmsg_new ();
    zmsg_addmem (records, "\x80", 1);
    testpeer_deliver (peer, 4, &records);
    char why[128];
    zmsg_t *msg = zmsg_recv (writer);
    assert (omni_wire_decode (WIRE_DELIVERY, msg, &head, why, sizeof why) == 0);
    assert (head.command == WIRE_WELCOME && head.cursor == 3);
    zmsg_destroy (&msg);
    msg = zmsg_recv (writer);
    assert (omni_wire_decode (WIRE_DELIVERY, msg, &head, why, sizeof why) == 0);
    assert (head.command == WIRE_DELIVER && head.upto == 4 && zmsg_size (msg) == 4);
    zmsg_destroy (&msg);
    head = (omni_wire_head_t){.command = WIRE_DELIVERY_ACK, .upto = 4, .window = 9};
    omni_wire_send_head (zsock_resolve (writer), NULL, 0, &head, false, 0);
    assert (testpeer_await_ack (peer, 4, -1) == 4);
    assert (testpeer_await_ack (peer, 5, 10) == 4); //  nothing more comes
    zsock_destroy (&writer);
    testpeer_destroy (&peer);
    assert (peer == NULL);
}
