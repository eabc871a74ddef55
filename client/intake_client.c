/*  intake_client: the collector side of the intake protocol.

    Every batch stays in memory until ingestd acknowledges it; the window
    bounds how many there are. A socket monitor tells us when the DEALER has
    (re)connected: after a reconnect every unacknowledged batch is sent
    again at once, because ZeroMQ drops what was queued for the lost peer.
    An ACK timeout covers the remaining case of a peer that accepted the
    message but never answered.

    Failover. With several endpoints the DEALER is connected to one of them
    (not to all: a DEALER would spread the batches over every peer, and a
    batch queued for a peer that died is silently lost). The client moves to
    the next endpoint, with a new socket, when a batch stayed unacknowledged
    for ack_timeout or when the socket has had no working connection for
    INTAKE_FAILOVER_MS (ingestd killed: its connection is refused; a host
    gone: nothing answers), and sends every unacknowledged batch there: at
    least once, as for a reconnect; record ids make the copy harmless in
    the stores. A batch counts as done only on an ACK, from whichever
    ingestd. The client stays where it is while that works; when every
    endpoint is down it goes round them, one every INTAKE_FAILOVER_MS, until
    give_up. A socket per endpoint rather than a disconnect and a connect
    on one: the old socket's late events and replies go with it.

    A batch keeps its records back to back in one buffer (no frame, list
    node or allocation per record), and the buffers of acknowledged batches
    are reused; each transmission copies the records into ZeroMQ messages.

    Packed batches. A frame per record costs libzmq as much for 120 bytes as
    for 60 KiB (PROTOCOL.md, BATCHP), so once an ACK says the ingestd takes
    BATCHP the client sends its records packed into frames of up to 64 KiB.
    Only then: an older ingestd would refuse BATCHP. Packing starts over,
    as frames, on every connection (a reconnect may reach another ingestd),
    and an ERROR for a packed batch sends that batch again as frames before
    anything is counted: an ingestd downgraded behind the same endpoint
    refuses BATCHP whole, and its records must not count as rejected.     */
#include "client/intake_client.h"
#include "common/buf.h"
#include "common/config.h"
#include "common/log.h"
#include "testsupport/testpeer.h"
#include "common/util.h"
#include "proto/wire.h"

#include <assert.h>
#include <czmq.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <string.h>

typedef struct {
    uint64_t seq;
    uint64_t first;  //  index of its first record among all records sent
    omni_buf_t data; //  the records, kept for resending: record i is
    size_t *ends;    //  data.data[ends[i - 1] .. ends[i])
    size_t records, ends_cap;
    int64_t sent_ms;
    bool packed; //  last sent as BATCHP
} s_batch_t;

struct _omni_intake_client_t {
    omni_intake_config_t config;
    char *endpoint;                  //  the endpoints as given
    char **endpoints;                //  each of them
    bool *refused;                   //  per endpoint: in a streak of handshakes it refused
    omni_metric_t **connected_gauge; //  per endpoint: intake_connected, or NULL
    omni_metric_t *failovers_metric;
    size_t nendpoints, current; //  sending to endpoints[current]
    zsock_t *dealer;            //  connected to endpoints[current] alone
    void *monitor;              //  PAIR receiving the DEALER's socket events
    s_batch_t *window;          //  in-flight batches, oldest first
    size_t inflight;
    s_batch_t filling; //  the batch being filled
    s_batch_t *spare;  //  buffers of acknowledged batches, for reuse
    size_t nspare;
    uint64_t next_seq;
    uint64_t queued; //  records given to omni_intake_client_send
    char *replay_writers;
    char *error; //  the last ERROR's reason
    int64_t last_ack_ms;
    uint64_t accepted, rejected, resent, failovers;
    bool connected_once;  //  this socket was connected before
    bool refused_here;    //  this socket's handshake was refused (what it held went)
    int64_t down_ms;      //  since when this socket has no working connection; 0 = it has
    const char *down_why; //  why (static text, for the failover's log line)
    int64_t failover_ms;  //  INTAKE_FAILOVER_MS, at most ack_timeout
    int64_t refused_ms;   //  the last refusal, not yet retried; 0 = none
    bool worked;          //  a connection or an ACK since the last failover
    bool packed;          //  this connection's ingestd said it takes BATCHP
    bool draining;        //  waiting for ACKs after SIGINT/SIGTERM
    int64_t drain_deadline_ms;
};

static void
s_destroy_batch (s_batch_t *batch)
{
    omni_buf_release (&batch->data);
    free (batch->ends);
    memset (batch, 0, sizeof *batch);
}

//  An acknowledged batch: its buffers are kept for a next one.
static void
s_free_batch (omni_intake_client_t *self, s_batch_t *batch)
{
    if (self->nspare < self->config.window + 1) {
        batch->records = 0;
        omni_buf_reset (&batch->data);
        self->spare[self->nspare++] = *batch;
        memset (batch, 0, sizeof *batch);
    } else
        s_destroy_batch (batch);
}

//  Splits "a, b" into endpoints; false (after logging why) when one is
//  not an endpoint a DEALER can connect to, or none is given.
static bool
s_parse_endpoints (omni_intake_client_t *self, const char *list)
{
    size_t max = 1;
    for (const char *p = list; *p; p++)
        max += *p == ',';
    self->endpoints = calloc (max + 1, sizeof *self->endpoints);
    assert (self->endpoints);
    char *copy = strdup (list), *save = NULL;
    assert (copy);
    bool valid = true;
    for (char *item = strtok_r (copy, ",", &save); item && valid;
         item = strtok_r (NULL, ",", &save)) {
        while (*item == ' ' || *item == '\t')
            item++;
        size_t len = strlen (item);
        while (len && (item[len - 1] == ' ' || item[len - 1] == '\t'))
            item[--len] = 0;
        if (!len)
            continue;
        //  A port of * or 0 binds anywhere but connects nowhere
        const char *port = strrchr (item, ':');
        valid = omni_config_valid_endpoint (item) &&
                !(strncmp (item, "tcp://", 6) == 0 && port &&
                  (streq (port, ":*") || strspn (port + 1, "0") == strlen (port + 1)));
        if (!valid)
            log_error ("intake.endpoint",
                       "endpoint=%s error=\"not an endpoint to connect to: expected "
                       "tcp://HOST:PORT, ipc://PATH or inproc://NAME\"",
                       item);
        else
            self->endpoints[self->nendpoints++] = strdup (item);
    }
    free (copy);
    if (valid && self->nendpoints == 0) {
        log_error ("intake.endpoint", "endpoint=\"%s\" error=\"no endpoint given\"", list);
        valid = false;
    }
    return valid;
}

//  Monitor endpoints are unique for the process: a closed monitor's inproc
//  name is released asynchronously, so an address could still be taken
static atomic_uint s_monitors;

//  A new socket connected to endpoints[current]. Returns 0, or -1 when the
//  connect failed (logged): the socket has no connection then, and the
//  failover moves on from it like from any endpoint that does not answer.
static int
s_open (omni_intake_client_t *self)
{
    const char *endpoint = self->endpoints[self->current];
    self->packed = false;
    self->dealer = zsock_new (ZMQ_DEALER);
    assert (self->dealer);
    zsock_set_linger (self->dealer, 0);
    zsock_set_sndhwm (self->dealer, 0);
    zsock_set_rcvhwm (self->dealer, 0);
    zsock_set_reconnect_ivl (self->dealer, 100);
    zsock_set_reconnect_ivl_max (self->dealer, 2000);
    if (self->config.curve)
        omni_curve_client_apply (self->config.curve, self->dealer);
    char monitor_ep[64];
    snprintf (monitor_ep, sizeof monitor_ep, "inproc://intake-monitor-%u",
              atomic_fetch_add (&s_monitors, 1));
    int rc =
        zmq_socket_monitor (zsock_resolve (self->dealer), monitor_ep,
                            ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED | CURVE_MONITOR_EVENTS);
    assert (rc == 0);
    self->monitor = zmq_socket (zsys_init (), ZMQ_PAIR);
    assert (self->monitor);
    rc = zmq_connect (self->monitor, monitor_ep);
    assert (rc == 0);
    self->connected_once = self->refused_here = false;
    self->down_ms = omni_util_mono_ms ();
    self->down_why = "unreachable";
    self->refused_ms = 0;
    if (zsock_connect (self->dealer, "%s", endpoint) == 0)
        return 0;
    log_error ("intake.endpoint", "endpoint=%s error=\"%s\"", endpoint,
               zmq_strerror (zmq_errno ()));
    return -1;
}

static void
s_close (omni_intake_client_t *self)
{
    if (self->dealer)
        zmq_socket_monitor (zsock_resolve (self->dealer), NULL, 0);
    if (self->monitor) {
        int zero = 0;
        zmq_setsockopt (self->monitor, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close (self->monitor);
        self->monitor = NULL;
    }
    zsock_destroy (&self->dealer);
    if (self->connected_gauge)
        omni_metric_set (self->connected_gauge[self->current], 0);
}

omni_intake_client_t *
omni_intake_client_new (const omni_intake_config_t *config)
{
    omni_intake_client_t *self = calloc (1, sizeof *self);
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
    self->failover_ms = self->config.ack_timeout_ms < INTAKE_FAILOVER_MS
                            ? self->config.ack_timeout_ms
                            : INTAKE_FAILOVER_MS;
    self->endpoint = strdup (config->endpoint ? config->endpoint : "");
    self->config.endpoint = self->endpoint;
    self->window = calloc (self->config.window, sizeof *self->window);
    self->spare = calloc (self->config.window + 1, sizeof *self->spare);
    assert (self->window && self->spare);
    if (!s_parse_endpoints (self, self->endpoint)) {
        omni_intake_client_destroy (&self);
        return NULL;
    }
    self->refused = calloc (self->nendpoints, sizeof *self->refused);
    assert (self->refused);
    self->connected_gauge = calloc (self->nendpoints, sizeof *self->connected_gauge);
    assert (self->connected_gauge);
    if (s_open (self)) {
        omni_intake_client_destroy (&self);
        return NULL;
    }
    self->next_seq = 1;
    self->last_ack_ms = omni_util_mono_ms ();
    return self;
}

void
omni_intake_client_destroy (omni_intake_client_t **self_p)
{
    omni_intake_client_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->inflight; i++)
        s_destroy_batch (&self->window[i]);
    free (self->window);
    for (size_t i = 0; i < self->nspare; i++)
        s_destroy_batch (&self->spare[i]);
    free (self->spare);
    s_destroy_batch (&self->filling);
    //  The gauge is left as it is: the metrics may be gone with their owner
    free (self->connected_gauge);
    self->connected_gauge = NULL;
    s_close (self);
    for (size_t i = 0; i < self->nendpoints; i++)
        free (self->endpoints[i]);
    free (self->endpoints);
    free (self->refused);
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
s_transmit (omni_intake_client_t *self, s_batch_t *batch)
{
    void *sock = zsock_resolve (self->dealer);
    batch->sent_ms = omni_util_mono_ms ();
    batch->packed = self->packed && !self->replay_writers && batch->records > 0;
    omni_wire_head_t head = {.command = self->replay_writers ? WIRE_REPLAY
                                        : batch->packed      ? WIRE_BATCHP
                                                             : WIRE_BATCH,
                             .seq = batch->seq,
                             .text = self->replay_writers,
                             .text_size = self->replay_writers ? strlen (self->replay_writers) : 0};
    //  A handshake refused before the first send leaves the socket with no
    //  connection at all (libzmq does not retry it), and a blocking send
    //  would then never return to retry it: the batch stays in the window
    //  and goes again once accepted or at its ACK timeout. The other frames
    //  of a message whose first frame went through never block.
    if (omni_wire_send_head (sock, NULL, 0, &head, batch->records > 0, ZMQ_DONTWAIT) < 0) {
        log_debug ("intake.not_sent", "seq=%" PRIu64 " error=\"%s\"", batch->seq,
                   zmq_strerror (zmq_errno ()));
        return;
    }
    if (batch->packed) {
        //  Records while the frame stays within WIRE_PACK_FRAME, at least one
        for (size_t first = 0; first < batch->records;) {
            size_t start = first ? batch->ends[first - 1] : 0, n = 1;
            while (first + n < batch->records &&
                   omni_wire_pack_size (n + 1, batch->ends[first + n] - start) <= WIRE_PACK_FRAME)
                n++;
            omni_wire_send_packed (sock, batch->data.data, batch->ends, first, n,
                                   first + n == batch->records);
            first += n;
        }
        return;
    }
    size_t from = 0;
    for (size_t i = 0; i < batch->records; i++) {
        omni_wire_send_record (sock, batch->data.data + from, batch->ends[i] - from,
                               i + 1 == batch->records);
        from = batch->ends[i];
    }
}

//  Takes the batch `seq` out of the window, if it is there (an ACK for a
//  batch sent twice arrives twice; the first one counted).
static s_batch_t *
s_find_batch (omni_intake_client_t *self, uint64_t seq)
{
    for (size_t i = 0; i < self->inflight; i++)
        if (self->window[i].seq == seq)
            return &self->window[i];
    return NULL;
}

static void
s_retire_batch (omni_intake_client_t *self, s_batch_t *batch)
{
    size_t i = (size_t) (batch - self->window);
    s_free_batch (self, batch);
    memmove (&self->window[i], &self->window[i + 1],
             (self->inflight - i - 1) * sizeof *self->window);
    self->inflight--;
    self->last_ack_ms = omni_util_mono_ms ();
    self->worked = true;
}

static void
s_handle_ack (omni_intake_client_t *self, zmsg_t *msg)
{
    omni_wire_head_t head;
    char why[128];
    if (omni_wire_decode (WIRE_INTAKE, msg, &head, why, sizeof why) != 0 ||
        (head.command != WIRE_INTAKE_ACK && head.command != WIRE_INTAKE_ERROR)) {
        log_warn ("intake.bad_reply", "endpoint=%s frames=%zu why=\"%s\"",
                  self->endpoints[self->current], zmsg_size (msg),
                  head.command == WIRE_NONE ? why : "not a reply");
        return;
    }
    s_batch_t *batch = s_find_batch (self, head.seq);
    if (head.command == WIRE_INTAKE_ACK && omni_wire_has_feature (&head, WIRE_FEATURE_PACKED))
        self->packed = true;
    if (head.command == WIRE_INTAKE_ERROR && batch && batch->packed) {
        //  Refused packed (an older ingestd behind this endpoint?): the same
        //  records as frames, and no packing on this connection any more
        log_info ("intake.unpacked",
                  "seq=%" PRIu64 " endpoint=%s why=\"an ERROR for a packed "
                  "batch: sent again one frame a record\"",
                  head.seq, self->endpoints[self->current]);
        self->packed = false;
        s_transmit (self, batch);
        self->resent++;
        return;
    }
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
s_resend_all (omni_intake_client_t *self, const char *why)
{
    if (self->inflight)
        log_info ("intake.resend", "batches=%zu why=%s", self->inflight, why);
    for (size_t i = 0; i < self->inflight; i++) {
        s_transmit (self, &self->window[i]);
        self->resent++;
    }
}

//  The socket's connection works (or no longer does) from now.
static void
s_set_up (omni_intake_client_t *self, bool up, const char *why)
{
    if (up) {
        self->down_ms = 0;
        self->worked = true;
    } else if (!self->down_ms) {
        self->down_ms = omni_util_mono_ms ();
        self->down_why = why;
    }
    omni_metric_set (self->connected_gauge[self->current], up ? 1 : 0);
}

//  Moves to the next endpoint, with a new socket, and sends every
//  unacknowledged batch there.
static void
s_failover (omni_intake_client_t *self, const char *why)
{
    size_t from = self->current;
    s_close (self);
    self->current = (self->current + 1) % self->nendpoints;
    s_open (self);
    self->failovers++;
    omni_metric_add (self->failovers_metric, 1);
    //  While every endpoint is down the client goes round them: then a line
    //  per endpoint a minute, with how many were held back
    uint64_t held = 0;
    if (self->worked ||
        omni_log_allow ("intake.failover", self->endpoints[self->current], 60000, &held))
        log_warn ("intake.failover",
                  "from=%s to=%s why=%s unacked=%zu failovers=%" PRIu64 " held_back=%" PRIu64,
                  self->endpoints[from], self->endpoints[self->current], why, self->inflight,
                  self->failovers, held);
    self->worked = false;
    for (size_t i = 0; i < self->inflight; i++) {
        s_transmit (self, &self->window[i]);
        self->resent++;
    }
}

//  Fails over when the socket has had no working connection for too long.
static void
s_check_down (omni_intake_client_t *self)
{
    if (self->nendpoints > 1 && self->down_ms &&
        omni_util_mono_ms () - self->down_ms >= self->failover_ms)
        s_failover (self, self->down_why);
}

static void
s_handle_monitor (omni_intake_client_t *self)
{
    zmq_msg_t event, address;
    zmq_msg_init (&event);
    zmq_msg_init (&address);
    if (zmq_msg_recv (&event, self->monitor, ZMQ_DONTWAIT) < 0)
        return;
    zmq_msg_recv (&address, self->monitor, 0);
    uint16_t id;
    memcpy (&id, zmq_msg_data (&event), sizeof id);
    const char *endpoint = self->endpoints[self->current];
    bool *refused = &self->refused[self->current];
    if (id == ZMQ_EVENT_CONNECTED || id == ZMQ_EVENT_DISCONNECTED)
        self->packed = false; //  until this connection's ingestd says it takes BATCHP
    if (id == ZMQ_EVENT_CONNECTED) {
        //  While ingestd refuses our key nothing gets through: the batches
        //  are sent again once a handshake succeeds, not at every retry
        if (self->connected_once && !*refused)
            s_resend_all (self, "reconnected");
        self->connected_once = true;
        if (!*refused)
            s_set_up (self, true, NULL);
        log_debug ("intake.connected", "endpoint=%s", endpoint);
    } else if (id == ZMQ_EVENT_DISCONNECTED) {
        //  A refused handshake disconnects too: said once by curve.refused
        if (!*refused)
            log_warn ("intake.disconnected", "endpoint=%s unacked=%zu", endpoint, self->inflight);
        s_set_up (self, false, "disconnected");
    } else {
        bool was_refused = *refused;
        if (omni_curve_refusal_event (id, endpoint, refused)) {
            self->refused_ms = omni_util_mono_ms ();
            self->refused_here = true;
            s_set_up (self, false, "refused");
        }
        //  The refused connection took what was queued with it (the streak
        //  may have begun on the socket before a failover, which did not)
        else if (was_refused && !*refused) {
            s_set_up (self, true, NULL);
            if (self->refused_here)
                s_resend_all (self, "accepted");
        }
    }
    zmq_msg_close (&event);
    zmq_msg_close (&address);
}

//  Handles every reply and socket event already waiting, without blocking,
//  so that a slow producer sees its ACKs before their batches time out.
static void
s_drain_replies (omni_intake_client_t *self)
{
    while (true) {
        zmq_pollitem_t items[] = {{zsock_resolve (self->dealer), 0, ZMQ_POLLIN, 0},
                                  {self->monitor, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll (items, 2, 0) <= 0)
            break;
        if (items[1].revents & ZMQ_POLLIN)
            s_handle_monitor (self);
        if (items[0].revents & ZMQ_POLLIN) {
            zmsg_t *msg = zmsg_recv (self->dealer);
            if (!msg)
                break;
            s_handle_ack (self, msg);
            zmsg_destroy (&msg);
        }
    }
    s_check_down (self);
}

//  Waits for replies until at most `max_inflight` batches are unacked.
static int
s_wait (omni_intake_client_t *self, size_t max_inflight)
{
    s_drain_replies (self);
    while (self->inflight > max_inflight) {
        if (zsys_interrupted && !self->draining)
            return -1;
        if (self->draining && omni_util_mono_ms () > self->drain_deadline_ms) {
            log_warn ("intake.drain_timeout", "unacked=%zu", self->inflight);
            return -1;
        }
        int64_t now = omni_util_mono_ms ();
        if (self->config.give_up_ms && now - self->last_ack_ms > self->config.give_up_ms) {
            //  ingestd holds back ACKs on purpose while its journal is full
            //  or cannot be written: its /health says which.
            log_error ("intake.unreachable",
                       "endpoints=%s unacked=%zu waited_ms=%" PRId64
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
            uint64_t failovers = self->failovers;
            s_drain_replies (self);
            if (self->inflight <= max_inflight)
                break;
            if (self->failovers != failovers)
                continue; //  sent again elsewhere just now
            //  The endpoint in use does not answer: another may
            if (self->nendpoints > 1) {
                s_failover (self, "ack_timeout");
                continue;
            }
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
        if (self->refused_ms && omni_util_mono_ms () - self->refused_ms >= CURVE_RETRY_MS) {
            self->refused_ms = 0;
            omni_curve_reconnect (self->dealer, self->endpoints[self->current]);
        }
        if (items[0].revents & ZMQ_POLLIN) {
            zmsg_t *msg = zmsg_recv (self->dealer);
            if (msg) {
                s_handle_ack (self, msg);
                zmsg_destroy (&msg);
            }
        }
        s_check_down (self);
    }
    return 0;
}

static int
s_dispatch (omni_intake_client_t *self)
{
    if (self->filling.records == 0)
        return 0;
    if (s_wait (self, self->config.window - 1))
        return -1;
    if (self->inflight == 0)
        self->last_ack_ms = omni_util_mono_ms (); //  the give-up clock runs while we wait
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
omni_intake_client_send (omni_intake_client_t *self, const void *record, size_t size)
{
    if (zsys_interrupted)
        return -1;
    s_batch_t *b = &self->filling;
    omni_buf_append (&b->data, record, size);
    *omni_array_push (b->ends, b->records, b->ends_cap) = b->data.size;
    self->queued++;
    if (b->records >= self->config.batch_records || b->data.size >= self->config.batch_bytes)
        return s_dispatch (self);
    return 0;
}

int
omni_intake_client_flush (omni_intake_client_t *self)
{
    if (s_dispatch (self))
        return -1;
    return s_wait (self, 0);
}

int
omni_intake_client_drain (omni_intake_client_t *self, int64_t timeout_ms)
{
    self->draining = true;
    self->drain_deadline_ms = omni_util_mono_ms () + timeout_ms;
    int rc = s_dispatch (self);
    if (rc == 0)
        rc = s_wait (self, 0);
    self->draining = false;
    return rc;
}

uint64_t
omni_intake_client_accepted (omni_intake_client_t *self)
{
    return self->accepted;
}

uint64_t
omni_intake_client_rejected (omni_intake_client_t *self)
{
    return self->rejected;
}

size_t
omni_intake_client_unacked (omni_intake_client_t *self)
{
    return self->inflight;
}

uint64_t
omni_intake_client_resent (omni_intake_client_t *self)
{
    return self->resent;
}

void
omni_intake_client_set_replay (omni_intake_client_t *self, const char *writers)
{
    free (self->replay_writers);
    self->replay_writers = writers ? strdup (writers) : NULL;
}

uint64_t
omni_intake_client_acked_prefix (omni_intake_client_t *self)
{
    //  The window is oldest first: its first batch bounds the prefix.
    if (self->inflight)
        return self->window[0].first;
    return self->queued - self->filling.records;
}

void
omni_intake_client_set_metrics (omni_intake_client_t *self, omni_metrics_t *metrics)
{
    self->failovers_metric = omni_metrics_counter (
        metrics, "failovers_total", "times the intake moved to the next ingestd endpoint", NULL);
    for (size_t i = 0; i < self->nendpoints; i++) {
        //  The label value escaped as the exposition format wants it
        char labels[600] = "endpoint=\"";
        size_t used = strlen (labels);
        for (const char *c = self->endpoints[i]; *c && used + 4 < sizeof labels; c++) {
            if (*c == '"' || *c == '\\')
                labels[used++] = '\\';
            labels[used++] = *c == '\n' ? ' ' : *c;
        }
        labels[used++] = '"';
        labels[used] = 0;
        self->connected_gauge[i] = omni_metrics_gauge (
            metrics, "intake_connected",
            "1 while connected to this ingestd endpoint (the one in use)", labels);
        omni_metric_set (self->connected_gauge[i], i == self->current && !self->down_ms);
    }
}

uint64_t
omni_intake_client_failovers (omni_intake_client_t *self)
{
    return self->failovers;
}

const char *
omni_intake_client_endpoint (omni_intake_client_t *self)
{
    return self->endpoints[self->current];
}

const char *
omni_intake_client_error (omni_intake_client_t *self)
{
    return self->error;
}

//  Sends `n` records ("\x80": not a record, so each is counted rejected,
//  and acknowledged) and waits for every ACK.
static void
s_test_send (omni_intake_client_t *client, int n)
{
    for (int i = 0; i < n; i++)
        assert (omni_intake_client_send (client, "\x80", 1) == 0);
    assert (omni_intake_client_flush (client) == 0);
}

static void
s_test_failover (void)
{
    //  Endpoint lists: trimmed, empty items skipped; one bad item (or a
    //  port that connects nowhere) refuses the whole list
    omni_intake_config_t config = {"", 2, 0, 2, 300, 5000, NULL};
    const char *bad[] = {"",
                         " , ",
                         "tcp://127.0.0.1:1,nonsense://x",
                         "tcp://127.0.0.1:*",
                         "tcp://127.0.0.1:0",
                         "127.0.0.1:5550"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        config.endpoint = bad[i];
        assert (omni_intake_client_new (&config) == NULL);
    }
    config.endpoint = " tcp://127.0.0.1:1 ,, tcp://127.0.0.1:2 ";
    omni_intake_client_t *client = omni_intake_client_new (&config);
    assert (client && streq (omni_intake_client_endpoint (client), "tcp://127.0.0.1:1"));
    omni_intake_client_destroy (&client);

    //  The first endpoint has nothing listening (a peer that is gone; made
    //  after the second, as czmq binds the lowest free port): the client
    //  moves to the second and stays there
    testpeer_t *second = testpeer_new ();
    testpeer_t *gone = testpeer_new ();
    char list[160];
    snprintf (list, sizeof list, "%s,%s", testpeer_endpoint (gone), testpeer_endpoint (second));
    testpeer_destroy (&gone);
    omni_metrics_t *metrics = omni_metrics_new ("omni_test_");
    config.endpoint = list;
    client = omni_intake_client_new (&config);
    omni_intake_client_set_metrics (client, metrics);
    s_test_send (client, 10);
    assert (omni_intake_client_rejected (client) == 10 && testpeer_rejected (second) == 10);
    assert (omni_intake_client_failovers (client) == 1);
    assert (streq (omni_intake_client_endpoint (client), testpeer_endpoint (second)));
    assert (omni_metric_value (omni_metrics_counter (metrics, "failovers_total", "", NULL)) == 1);
    char *text = omni_metrics_render (metrics);
    char line[160];
    snprintf (line, sizeof line, "omni_test_intake_connected{endpoint=\"%s\"} 1",
              testpeer_endpoint (second));
    assert (strstr (text, line));
    free (text);
    s_test_send (client, 4);
    assert (omni_intake_client_failovers (client) == 1 && testpeer_rejected (second) == 14);
    omni_intake_client_destroy (&client);
    omni_metrics_destroy (&metrics);
    testpeer_clear (second);

    //  The endpoint in use dies mid-stream: what it left unacknowledged
    //  goes to the next one, and the stream carries on there
    testpeer_t *first = testpeer_new ();
    snprintf (list, sizeof list, "%s,%s", testpeer_endpoint (first), testpeer_endpoint (second));
    client = omni_intake_client_new (&config);
    s_test_send (client, 4);
    assert (testpeer_rejected (first) == 4 && testpeer_count (second) == 0);
    testpeer_destroy (&first);
    s_test_send (client, 6);
    assert (omni_intake_client_rejected (client) == 10 && testpeer_rejected (second) == 6);
    assert (omni_intake_client_failovers (client) == 1);
    omni_intake_client_destroy (&client);
    testpeer_clear (second);

    //  The endpoint in use takes the batches but never answers: after
    //  ack_timeout they go to the next one
    first = testpeer_new ();
    testpeer_drop (first, 1000);
    snprintf (list, sizeof list, "%s,%s", testpeer_endpoint (first), testpeer_endpoint (second));
    client = omni_intake_client_new (&config);
    int64_t start = omni_util_mono_ms ();
    s_test_send (client, 3);
    assert (omni_util_mono_ms () - start >= 300);
    assert (testpeer_count (first) == 3 && testpeer_rejected (second) == 3);
    assert (omni_intake_client_failovers (client) == 1 && omni_intake_client_resent (client) >= 2);
    assert (streq (omni_intake_client_endpoint (client), testpeer_endpoint (second)));
    omni_intake_client_destroy (&client);
    testpeer_destroy (&first);
    testpeer_destroy (&second);
}

void
omni_intake_client_test (bool verbose)
{
    (void) verbose;
    //  The first batch is lost unanswered: the client resends it at its
    //  ACK timeout. "\x80" is not a record: counted as rejected, not lost.
    testpeer_t *peer = testpeer_new ();
    testpeer_drop (peer, 1);
    char endpoint[64];
    snprintf (endpoint, sizeof endpoint, "%s", testpeer_endpoint (peer));
    omni_intake_config_t config = {endpoint, 3, 0, 2, 300, 5000, NULL};
    omni_intake_client_t *client = omni_intake_client_new (&config);
    assert (client);
    for (int i = 0; i < 10; i++)
        assert (omni_intake_client_send (client, "\x80", 1) == 0);
    assert (omni_intake_client_unacked (client) <= 2);
    assert (omni_intake_client_flush (client) == 0);
    assert (omni_intake_client_unacked (client) == 0);
    assert (omni_intake_client_rejected (client) == 10 && testpeer_rejected (peer) == 10);
    assert (omni_intake_client_acked_prefix (client) == 10);
    assert (omni_intake_client_resent (client) >= 1);
    assert (omni_intake_client_failovers (client) == 0); //  one endpoint: sent again to it
    //  Packed once an ACK said BATCHP is taken
    size_t packed = testpeer_packed_batches (peer);
    assert (packed >= 1);

    //  Records larger than a packed frame: one a frame, each whole
    size_t before = testpeer_count (peer);
    static char big[3][40000];
    for (int i = 0; i < 3; i++) {
        memset (big[i], 'a' + i, sizeof big[i]);
        big[i][0] = (char) 0x80;
        assert (omni_intake_client_send (client, big[i], sizeof big[i]) == 0);
    }
    assert (omni_intake_client_flush (client) == 0);
    assert (testpeer_count (peer) == before + 3 && testpeer_packed_batches (peer) > packed);
    assert (omni_intake_client_rejected (client) == 13);

    //  An ingestd that refuses BATCHP behind the same endpoint: each batch
    //  refused packed goes again as frames, and nothing counts as refused
    testpeer_old (peer, true);
    for (int i = 0; i < 6; i++)
        assert (omni_intake_client_send (client, "\x80", 1) == 0);
    assert (omni_intake_client_flush (client) == 0);
    assert (omni_intake_client_rejected (client) == 19 && testpeer_rejected (peer) == 19);
    assert (omni_intake_client_error (client) == NULL);
    testpeer_old (peer, false);
    omni_intake_client_destroy (&client);
    assert (client == NULL);

    //  REPLAY messages carry their routing frame; the prefix follows ACKs.
    client = omni_intake_client_new (&config);
    omni_intake_client_set_replay (client, "relational");
    for (int i = 0; i < 7; i++)
        assert (omni_intake_client_send (client, "\x80", 1) == 0);
    assert (omni_intake_client_acked_prefix (client) <= 6);
    assert (omni_intake_client_flush (client) == 0);
    assert (omni_intake_client_acked_prefix (client) == 7 &&
            omni_intake_client_rejected (client) == 7);
    assert (omni_intake_client_error (client) == NULL);
    char *writers = testpeer_replay_writers (peer);
    assert (writers && streq (writers, "relational"));
    free (writers);
    omni_intake_client_destroy (&client);
    testpeer_destroy (&peer);

    //  Nobody answers: the client gives up after give_up_ms with an error.
    omni_intake_config_t lonely = {endpoint, 1, 0, 1, 100, 400, NULL};
    client = omni_intake_client_new (&lonely);
    assert (omni_intake_client_send (client, "\x80", 1) == 0);
    int64_t start = omni_util_mono_ms ();
    assert (omni_intake_client_flush (client) == -1);
    assert (omni_util_mono_ms () - start >= 300);
    assert (omni_intake_client_failovers (client) == 0);
    omni_intake_client_destroy (&client);

    s_test_failover ();
}
