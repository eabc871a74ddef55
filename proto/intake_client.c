/*  intake_client: the collector side of the intake protocol.

    Every batch stays in memory until ingestd acknowledges it; the window
    bounds how many there are. A socket monitor tells us when the DEALER has
    (re)connected: after a reconnect every unacknowledged batch is sent
    again at once, because ZeroMQ drops what was queued for the lost peer.
    An ACK timeout covers the remaining case of a peer that accepted the
    message but never answered.

    A batch keeps its records back to back in one buffer (no frame, list
    node or allocation per record), and the buffers of acknowledged batches
    are reused; each transmission copies the records into ZeroMQ messages.  */
#include "intake_client.h"
#include "log.h"
#include "testpeer.h"
#include "util.h"
#include "wire.h"

#include <assert.h>
#include <czmq.h>
#include <inttypes.h>
#include <string.h>

typedef struct {
    uint64_t seq;
    uint64_t first; //  index of its first record among all records sent
    uint8_t *data;  //  the records, kept for resending: record i is
    size_t *ends;   //  data[ends[i - 1] .. ends[i])
    size_t records, size, data_cap, ends_cap;
    int64_t sent_ms;
} s_batch_t;

struct _intake_client_t {
    intake_config_t config;
    char *endpoint;
    zsock_t *dealer;
    void *monitor;     //  PAIR receiving the DEALER's socket events
    s_batch_t *window; //  in-flight batches, oldest first
    size_t inflight;
    s_batch_t filling; //  the batch being filled
    s_batch_t *spare;  //  buffers of acknowledged batches, for reuse
    size_t nspare;
    uint64_t next_seq;
    uint64_t queued; //  records given to intake_client_send
    char *replay_writers;
    char *error; //  the last ERROR's reason
    int64_t last_ack_ms;
    uint64_t accepted, rejected, resent;
    bool connected_once;
    bool refused;       //  in a streak of handshakes refused by ingestd
    int64_t refused_ms; //  the last refusal, not yet retried; 0 = none
    bool draining;      //  waiting for ACKs after SIGINT/SIGTERM
    int64_t drain_deadline_ms;
};

static void
s_destroy_batch (s_batch_t *batch)
{
    free (batch->data);
    free (batch->ends);
    memset (batch, 0, sizeof *batch);
}

//  An acknowledged batch: its buffers are kept for a next one.
static void
s_free_batch (intake_client_t *self, s_batch_t *batch)
{
    if (self->nspare < self->config.window + 1) {
        batch->records = batch->size = 0;
        self->spare[self->nspare++] = *batch;
        memset (batch, 0, sizeof *batch);
    } else
        s_destroy_batch (batch);
}

intake_client_t *
intake_client_new (const intake_config_t *config)
{
    intake_client_t *self = calloc (1, sizeof *self);
    assert (self);
    self->config = *config;
    if (!self->config.batch_records)
        self->config.batch_records = 500;
    if (!self->config.batch_bytes)
        self->config.batch_bytes = 1024 * 1024;
    if (!self->config.window)
        self->config.window = 8;
    if (!self->config.ack_timeout_ms)
        self->config.ack_timeout_ms = 10000;
    self->endpoint = strdup (config->endpoint);
    self->config.endpoint = self->endpoint;
    self->window = calloc (self->config.window, sizeof *self->window);
    self->spare = calloc (self->config.window + 1, sizeof *self->spare);
    assert (self->window && self->spare);
    self->dealer = zsock_new (ZMQ_DEALER);
    assert (self->dealer);
    zsock_set_linger (self->dealer, 0);
    zsock_set_sndhwm (self->dealer, 0);
    zsock_set_rcvhwm (self->dealer, 0);
    zsock_set_reconnect_ivl (self->dealer, 100);
    zsock_set_reconnect_ivl_max (self->dealer, 2000);
    if (config->curve)
        curve_client_apply (config->curve, self->dealer);
    char monitor_ep[64];
    snprintf (monitor_ep, sizeof monitor_ep, "inproc://intake-monitor-%p", (void *) self);
    int rc =
        zmq_socket_monitor (zsock_resolve (self->dealer), monitor_ep,
                            ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED | CURVE_MONITOR_EVENTS);
    assert (rc == 0);
    self->monitor = zmq_socket (zsys_init (), ZMQ_PAIR);
    assert (self->monitor);
    rc = zmq_connect (self->monitor, monitor_ep);
    assert (rc == 0);
    if (zsock_connect (self->dealer, "%s", self->endpoint) != 0) {
        log_error ("intake.endpoint", "endpoint=%s error=\"%s\"", self->endpoint,
                   zmq_strerror (zmq_errno ()));
        intake_client_destroy (&self);
        return NULL;
    }
    self->next_seq = 1;
    self->last_ack_ms = util_mono_ms ();
    return self;
}

void
intake_client_destroy (intake_client_t **self_p)
{
    intake_client_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->inflight; i++)
        s_destroy_batch (&self->window[i]);
    free (self->window);
    for (size_t i = 0; i < self->nspare; i++)
        s_destroy_batch (&self->spare[i]);
    free (self->spare);
    s_destroy_batch (&self->filling);
    if (self->dealer)
        zmq_socket_monitor (zsock_resolve (self->dealer), NULL, 0);
    if (self->monitor) {
        int zero = 0;
        zmq_setsockopt (self->monitor, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close (self->monitor);
    }
    zsock_destroy (&self->dealer);
    free (self->endpoint);
    free (self->replay_writers);
    free (self->error);
    free (self);
    *self_p = NULL;
}

//  Copies, rather than ZeroMQ messages sharing the batch's buffer: a resent
//  batch may still be queued after its first copy was acknowledged and the
//  buffer reused.
static void
s_transmit (intake_client_t *self, s_batch_t *batch)
{
    void *sock = zsock_resolve (self->dealer);
    batch->sent_ms = util_mono_ms ();
    wire_head_t head = {.command = self->replay_writers ? WIRE_REPLAY : WIRE_BATCH,
                        .seq = batch->seq,
                        .text = self->replay_writers,
                        .text_size = self->replay_writers ? strlen (self->replay_writers) : 0};
    //  A handshake refused before the first send leaves the socket with no
    //  connection at all (libzmq does not retry it), and a blocking send
    //  would then never return to retry it: the batch stays in the window
    //  and goes again once accepted or at its ACK timeout. The other frames
    //  of a message whose first frame went through never block.
    if (wire_send_head (sock, NULL, 0, &head, batch->records > 0, ZMQ_DONTWAIT) < 0) {
        log_debug ("intake.not_sent", "seq=%" PRIu64 " error=\"%s\"", batch->seq,
                   zmq_strerror (zmq_errno ()));
        return;
    }
    size_t from = 0;
    for (size_t i = 0; i < batch->records; i++) {
        wire_send_record (sock, batch->data + from, batch->ends[i] - from, i + 1 == batch->records);
        from = batch->ends[i];
    }
}

//  Takes the batch `seq` out of the window, if it is there (an ACK for a
//  batch sent twice arrives twice; the first one counted).
static s_batch_t *
s_find_batch (intake_client_t *self, uint64_t seq)
{
    for (size_t i = 0; i < self->inflight; i++)
        if (self->window[i].seq == seq)
            return &self->window[i];
    return NULL;
}

static void
s_retire_batch (intake_client_t *self, s_batch_t *batch)
{
    size_t i = (size_t) (batch - self->window);
    s_free_batch (self, batch);
    memmove (&self->window[i], &self->window[i + 1],
             (self->inflight - i - 1) * sizeof *self->window);
    self->inflight--;
    self->last_ack_ms = util_mono_ms ();
}

static void
s_handle_ack (intake_client_t *self, zmsg_t *msg)
{
    wire_head_t head;
    char why[128];
    if (wire_decode (WIRE_INTAKE, msg, &head, why, sizeof why) != 0 ||
        (head.command != WIRE_INTAKE_ACK && head.command != WIRE_INTAKE_ERROR)) {
        log_warn ("intake.bad_reply", "endpoint=%s frames=%zu why=\"%s\"", self->endpoint,
                  zmsg_size (msg), head.command == WIRE_NONE ? why : "not a reply");
        return;
    }
    s_batch_t *batch = s_find_batch (self, head.seq);
    if (head.command == WIRE_INTAKE_ERROR) {
        char *reason = strndup (head.text, head.text_size);
        log_error ("intake.batch_refused", "seq=%" PRIu64 " reason=\"%s\"", head.seq, reason);
        free (self->error);
        self->error = reason;
        //  ingestd dead-lettered the whole message: its records count as rejected.
        if (batch) {
            self->rejected += batch->records;
            s_retire_batch (self, batch);
        }
    } else if (batch) {
        self->accepted += head.accepted;
        self->rejected += head.rejected;
        s_retire_batch (self, batch);
    }
}

static void
s_resend_all (intake_client_t *self, const char *why)
{
    if (self->inflight)
        log_info ("intake.resend", "batches=%zu why=%s", self->inflight, why);
    for (size_t i = 0; i < self->inflight; i++) {
        s_transmit (self, &self->window[i]);
        self->resent++;
    }
}

static void
s_handle_monitor (intake_client_t *self)
{
    zmq_msg_t event, address;
    zmq_msg_init (&event);
    zmq_msg_init (&address);
    if (zmq_msg_recv (&event, self->monitor, ZMQ_DONTWAIT) < 0)
        return;
    zmq_msg_recv (&address, self->monitor, 0);
    uint16_t id;
    memcpy (&id, zmq_msg_data (&event), sizeof id);
    if (id == ZMQ_EVENT_CONNECTED) {
        //  While ingestd refuses our key nothing gets through: the batches
        //  are sent again once a handshake succeeds, not at every retry
        if (self->connected_once && !self->refused)
            s_resend_all (self, "reconnected");
        self->connected_once = true;
        log_debug ("intake.connected", "endpoint=%s", self->endpoint);
    } else if (id == ZMQ_EVENT_DISCONNECTED) {
        //  A refused handshake disconnects too: said once by curve.refused
        if (!self->refused)
            log_warn ("intake.disconnected", "endpoint=%s unacked=%zu", self->endpoint,
                      self->inflight);
    } else {
        bool was_refused = self->refused;
        if (curve_refusal_event (id, self->endpoint, &self->refused))
            self->refused_ms = util_mono_ms ();
        //  The refused connection took what was queued with it
        else if (was_refused && !self->refused)
            s_resend_all (self, "accepted");
    }
    zmq_msg_close (&event);
    zmq_msg_close (&address);
}

//  Handles every reply and socket event already waiting, without blocking,
//  so that a slow producer sees its ACKs before their batches time out.
static void
s_drain_replies (intake_client_t *self)
{
    while (true) {
        zmq_pollitem_t items[] = {{zsock_resolve (self->dealer), 0, ZMQ_POLLIN, 0},
                                  {self->monitor, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll (items, 2, 0) <= 0)
            return;
        if (items[1].revents & ZMQ_POLLIN)
            s_handle_monitor (self);
        if (items[0].revents & ZMQ_POLLIN) {
            zmsg_t *msg = zmsg_recv (self->dealer);
            if (!msg)
                return;
            s_handle_ack (self, msg);
            zmsg_destroy (&msg);
        }
    }
}

//  Waits for replies until at most `max_inflight` batches are unacked.
static int
s_wait (intake_client_t *self, size_t max_inflight)
{
    s_drain_replies (self);
    while (self->inflight > max_inflight) {
        if (zsys_interrupted && !self->draining)
            return -1;
        if (self->draining && util_mono_ms () > self->drain_deadline_ms) {
            log_warn ("intake.drain_timeout", "unacked=%zu", self->inflight);
            return -1;
        }
        int64_t now = util_mono_ms ();
        if (self->config.give_up_ms && now - self->last_ack_ms > self->config.give_up_ms) {
            //  ingestd holds back ACKs on purpose while its journal is full
            //  or cannot be written: its /health says which.
            log_error ("intake.unreachable",
                       "endpoint=%s unacked=%zu waited_ms=%" PRId64
                       " reason=\"no acknowledgement from ingestd: ingestd stopped "
                       "acknowledging or is not reachable; ingestd's /health tells why (e.g. "
                       "journal full, disk full)\"",
                       self->endpoint, self->inflight, now - self->last_ack_ms);
            return -1;
        }
        int64_t oldest = self->window[0].sent_ms;
        for (size_t i = 1; i < self->inflight; i++)
            if (self->window[i].sent_ms < oldest)
                oldest = self->window[i].sent_ms;
        if (now - oldest >= self->config.ack_timeout_ms) {
            s_drain_replies (self);
            if (self->inflight <= max_inflight)
                break;
            for (size_t i = 0; i < self->inflight; i++)
                if (now - self->window[i].sent_ms >= self->config.ack_timeout_ms) {
                    s_transmit (self, &self->window[i]);
                    self->resent++;
                }
            continue;
        }
        long timeout = (long) (self->config.ack_timeout_ms - (now - oldest));
        if (timeout > 200)
            timeout = 200;
        zmq_pollitem_t items[] = {{zsock_resolve (self->dealer), 0, ZMQ_POLLIN, 0},
                                  {self->monitor, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll (items, 2, timeout) < 0)
            continue; //  EINTR: the loop head checks zsys_interrupted
        if (items[1].revents & ZMQ_POLLIN)
            s_handle_monitor (self);
        if (self->refused_ms && util_mono_ms () - self->refused_ms >= CURVE_RETRY_MS) {
            self->refused_ms = 0;
            curve_reconnect (self->dealer, self->endpoint);
        }
        if (items[0].revents & ZMQ_POLLIN) {
            zmsg_t *msg = zmsg_recv (self->dealer);
            if (msg) {
                s_handle_ack (self, msg);
                zmsg_destroy (&msg);
            }
        }
    }
    return 0;
}

static int
s_dispatch (intake_client_t *self)
{
    if (self->filling.records == 0)
        return 0;
    if (s_wait (self, self->config.window - 1))
        return -1;
    if (self->inflight == 0)
        self->last_ack_ms = util_mono_ms (); //  the give-up clock runs while we wait
    s_batch_t *batch = &self->window[self->inflight++];
    *batch = self->filling;
    batch->seq = self->next_seq++;
    batch->first = self->queued - batch->records;
    if (self->nspare)
        self->filling = self->spare[--self->nspare];
    else
        memset (&self->filling, 0, sizeof self->filling);
    s_transmit (self, batch);
    return 0;
}

int
intake_client_send (intake_client_t *self, const void *record, size_t size)
{
    if (zsys_interrupted)
        return -1;
    s_batch_t *b = &self->filling;
    if (b->size + size > b->data_cap) {
        b->data_cap = b->data_cap ? b->data_cap : 64 * 1024;
        while (b->size + size > b->data_cap)
            b->data_cap *= 2;
        b->data = realloc (b->data, b->data_cap);
        assert (b->data);
    }
    if (b->records == b->ends_cap) {
        b->ends_cap = b->ends_cap ? b->ends_cap * 2 : 512;
        b->ends = realloc (b->ends, b->ends_cap * sizeof *b->ends);
        assert (b->ends);
    }
    if (size)
        memcpy (b->data + b->size, record, size);
    b->size += size;
    b->ends[b->records++] = b->size;
    self->queued++;
    if (b->records >= self->config.batch_records || b->size >= self->config.batch_bytes)
        return s_dispatch (self);
    return 0;
}

int
intake_client_flush (intake_client_t *self)
{
    if (s_dispatch (self))
        return -1;
    return s_wait (self, 0);
}

int
intake_client_drain (intake_client_t *self, int64_t timeout_ms)
{
    self->draining = true;
    self->drain_deadline_ms = util_mono_ms () + timeout_ms;
    int rc = s_dispatch (self);
    if (rc == 0)
        rc = s_wait (self, 0);
    self->draining = false;
    return rc;
}

uint64_t
intake_client_accepted (intake_client_t *self)
{
    return self->accepted;
}

uint64_t
intake_client_rejected (intake_client_t *self)
{
    return self->rejected;
}

size_t
intake_client_unacked (intake_client_t *self)
{
    return self->inflight;
}

uint64_t
intake_client_resent (intake_client_t *self)
{
    return self->resent;
}

void
intake_client_set_replay (intake_client_t *self, const char *writers)
{
    free (self->replay_writers);
    self->replay_writers = writers ? strdup (writers) : NULL;
}

uint64_t
intake_client_acked_prefix (intake_client_t *self)
{
    //  The window is oldest first: its first batch bounds the prefix.
    if (self->inflight)
        return self->window[0].first;
    return self->queued - self->filling.records;
}

const char *
intake_client_error (intake_client_t *self)
{
    return self->error;
}

void
intake_client_test (bool verbose)
{
    (void) verbose;
    //  The first batch is lost unanswered: the client resends it at its
    //  ACK timeout. "\x80" is not a record: counted as rejected, not lost.
    testpeer_t *peer = testpeer_new ();
    testpeer_drop (peer, 1);
    char endpoint[64];
    snprintf (endpoint, sizeof endpoint, "%s", testpeer_endpoint (peer));
    intake_config_t config = {endpoint, 3, 0, 2, 300, 5000, NULL};
    intake_client_t *client = intake_client_new (&config);
    assert (client);
    for (int i = 0; i < 10; i++)
        assert (intake_client_send (client, "\x80", 1) == 0);
    assert (intake_client_unacked (client) <= 2);
    assert (intake_client_flush (client) == 0);
    assert (intake_client_unacked (client) == 0);
    assert (intake_client_rejected (client) == 10 && testpeer_rejected (peer) == 10);
    assert (intake_client_acked_prefix (client) == 10);
    assert (intake_client_resent (client) >= 1);
    intake_client_destroy (&client);
    assert (client == NULL);

    //  REPLAY messages carry their routing frame; the prefix follows ACKs.
    client = intake_client_new (&config);
    intake_client_set_replay (client, "relational");
    for (int i = 0; i < 7; i++)
        assert (intake_client_send (client, "\x80", 1) == 0);
    assert (intake_client_acked_prefix (client) <= 6);
    assert (intake_client_flush (client) == 0);
    assert (intake_client_acked_prefix (client) == 7 && intake_client_rejected (client) == 7);
    assert (intake_client_error (client) == NULL);
    char *writers = testpeer_replay_writers (peer);
    assert (writers && streq (writers, "relational"));
    free (writers);
    intake_client_destroy (&client);
    testpeer_destroy (&peer);

    //  Nobody answers: the client gives up after give_up_ms with an error.
    intake_config_t lonely = {endpoint, 1, 0, 1, 100, 400, NULL};
    client = intake_client_new (&lonely);
    assert (intake_client_send (client, "\x80", 1) == 0);
    int64_t start = util_mono_ms ();
    assert (intake_client_flush (client) == -1);
    assert (util_mono_ms () - start >= 300);
    intake_client_destroy (&client);
}
