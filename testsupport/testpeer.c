/*  testpeer: an acknowledging intake for self-tests.

    It answers through the same codec as ingestd, so a self-test of a
    collector checks the collector against the protocol rather than against
    a second, hand-written spelling of it.                                   */
#include "testpeer.h"
#include "intake_client.h"
#include "wire.h"

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
};

static void
s_answer (testpeer_t *self, zmsg_t *msg, zframe_t *peer)
{
    wire_head_t head;
    char why[128];
    if (wire_decode (WIRE_INTAKE, msg, &head, why, sizeof why) != 0 ||
        !wire_carries_records (head.command)) {
        fprintf (stderr, "testpeer: malformed intake message: %s\n", why);
        assert (false);
    }
    msgpack_zone zone;
    msgpack_zone_init (&zone, 4096);
    wire_head_t ack = {.command = WIRE_INTAKE_ACK, .seq = head.seq};
    pthread_mutex_lock (&self->lock);
    if (head.command == WIRE_REPLAY) {
        free (self->replay_writers);
        self->replay_writers = strndup (head.text, head.text_size);
    }
    for (zframe_t *frame = zmsg_next (msg); frame; frame = zmsg_next (msg)) {
        record_t record;
        char detail[256];
        msgpack_zone_clear (&zone);
        if (record_decode (&record, &zone, zframe_data (frame), zframe_size (frame), NULL, detail,
                           sizeof detail) == REJECT_NONE)
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
    msgpack_zone_destroy (&zone);
    if (!drop)
        wire_send_head (zsock_resolve (self->router), zframe_data (peer), zframe_size (peer), &ack,
                        false, 0);
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
    pthread_mutex_lock (&self->lock);
    size_t n = self->accepted;
    pthread_mutex_unlock (&self->lock);
    return n;
}

size_t
testpeer_rejected (testpeer_t *self)
{
    pthread_mutex_lock (&self->lock);
    size_t n = self->rejected;
    pthread_mutex_unlock (&self->lock);
    return n;
}

void
testpeer_record (testpeer_t *self, size_t index, record_t *record, msgpack_zone *zone)
{
    pthread_mutex_lock (&self->lock);
    zframe_t *frame = zlist_first (self->records);
    for (size_t i = 0; frame && i < index; i++)
        frame = zlist_next (self->records);
    pthread_mutex_unlock (&self->lock);
    assert (frame);
    char detail[256];
    record_reject_t rc = record_decode (record, zone, zframe_data (frame), zframe_size (frame),
                                        NULL, detail, sizeof detail);
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
        record_t record;
        testpeer_record (self, i, &record, &zone);
        n += record_str_eq (record.kind, kind);
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

void
testpeer_test (bool verbose)
{
    (void) verbose;
    testpeer_t *peer = testpeer_new ();
    intake_config_t config = {testpeer_endpoint (peer), 2, 0, 2, 5000, 5000, NULL};
    intake_client_t *client = intake_client_new (&config);
    assert (client);
    //  One valid record (an empty map is not one) and one that is not msgpack
    assert (intake_client_send (client, "\xc1", 1) == 0);
    assert (intake_client_send (client, "\x80", 1) == 0);
    assert (intake_client_flush (client) == 0);
    assert (testpeer_count (peer) == 2);
    assert (testpeer_accepted (peer) + testpeer_rejected (peer) == 2);
    assert (intake_client_accepted (client) == testpeer_accepted (peer));
    intake_client_destroy (&client);
    testpeer_destroy (&peer);
    assert (peer == NULL);
}
