/*  fake_ingestd: an acknowledging intake for self-tests.                   */
#include "fake_ingestd.h"

#include <assert.h>
#include <czmq.h>
#include <pthread.h>

struct _fake_ingestd_t {
    zsock_t *router;
    zactor_t *actor;
    char endpoint[64];
    pthread_mutex_t lock;
    zlist_t *records; //  zframe_t *
};

static void
s_actor (zsock_t *pipe, void *args)
{
    fake_ingestd_t *self = (fake_ingestd_t *) args;
    zsock_signal (pipe, 0);
    zpoller_t *poller = zpoller_new (pipe, self->router, NULL);
    while (zpoller_wait (poller, -1) == self->router) {
        zmsg_t *msg = zmsg_recv (self->router);
        zframe_t *peer = zmsg_pop (msg);
        zframe_t *sig = zmsg_pop (msg), *cmd = zmsg_pop (msg), *seq = zmsg_pop (msg);
        assert (zframe_streq (sig, "OI/1") && zframe_streq (cmd, "BATCH"));
        uint32_t n = (uint32_t) zmsg_size (msg);
        pthread_mutex_lock (&self->lock);
        zframe_t *frame;
        while ((frame = zmsg_pop (msg)))
            zlist_append (self->records, frame);
        pthread_mutex_unlock (&self->lock);
        uint8_t count[4] = {(uint8_t) (n >> 24), (uint8_t) (n >> 16), (uint8_t) (n >> 8),
                            (uint8_t) n};
        zmsg_t *ack = zmsg_new ();
        zmsg_append (ack, &peer);
        zmsg_addstr (ack, "OI/1");
        zmsg_addstr (ack, "ACK");
        zmsg_append (ack, &seq);
        zmsg_addmem (ack, count, 4);
        zmsg_addmem (ack, "\0\0\0\0", 4);
        zmsg_send (&ack, self->router);
        zframe_destroy (&sig);
        zframe_destroy (&cmd);
        zmsg_destroy (&msg);
    }
    zpoller_destroy (&poller);
}

fake_ingestd_t *
fake_ingestd_new (void)
{
    fake_ingestd_t *self = calloc (1, sizeof *self);
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
fake_ingestd_destroy (fake_ingestd_t **self_p)
{
    fake_ingestd_t *self = *self_p;
    if (!self)
        return;
    zactor_destroy (&self->actor);
    zsock_destroy (&self->router);
    fake_ingestd_clear (self);
    zlist_destroy (&self->records);
    pthread_mutex_destroy (&self->lock);
    free (self);
    *self_p = NULL;
}

const char *
fake_ingestd_endpoint (fake_ingestd_t *self)
{
    return self->endpoint;
}

size_t
fake_ingestd_count (fake_ingestd_t *self)
{
    pthread_mutex_lock (&self->lock);
    size_t n = zlist_size (self->records);
    pthread_mutex_unlock (&self->lock);
    return n;
}

void
fake_ingestd_record (fake_ingestd_t *self, size_t index, record_t *record, msgpack_zone *zone)
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
        fprintf (stderr, "fake_ingestd: record %zu: %s\n", index, detail);
    assert (rc == REJECT_NONE);
}

size_t
fake_ingestd_count_kind (fake_ingestd_t *self, const char *kind)
{
    size_t n = 0, total = fake_ingestd_count (self);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 4096);
    for (size_t i = 0; i < total; i++) {
        record_t record;
        fake_ingestd_record (self, i, &record, &zone);
        n += record_str_eq (record.kind, kind);
        msgpack_zone_clear (&zone);
    }
    msgpack_zone_destroy (&zone);
    return n;
}

void
fake_ingestd_clear (fake_ingestd_t *self)
{
    pthread_mutex_lock (&self->lock);
    zframe_t *frame;
    while ((frame = zlist_pop (self->records)))
        zframe_destroy (&frame);
    pthread_mutex_unlock (&self->lock);
}
