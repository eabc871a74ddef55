/*  tap: ingestd's publications for omni-tap (see tap.h).

    Why the XPUB socket is served by a thread of its own: libzmq enters a
    subscription in its trie as the socket reads it, and a read first
    handles every command waiting for the socket. Subscriptions coming
    faster than the trie takes them kept one read from returning (gdb: trie
    nodes allocated inside one zmq_msg_recv, the I/O thread idle), and with
    the socket on the event loop, intake and delivery stood still with it.
    Now such a flood can only hold the tap's thread: the event loop hands
    its publications over an inproc pipe (at most tap_budget bytes waiting;
    past that dropped and counted, never waited for), and the memory
    guard's thread drops the flooders by what their connections hold
    (peers_held), which needs no read of the socket.

    Why a round goes as one message, its buffer lent: two messages a record
    cost the event loop a quarter of its rate, and a fresh buffer a round a
    page fault per 4 KiB written (bench/tap.py). The thread gives a buffer
    back when it has published its records; two are kept for reuse.

    Accepted records are copied for the tap only while someone is
    connected, and kept back to back in one buffer (kind, then record) until
    their round is committed: a subscriber never sees a record that was not
    journaled.                                                              */
#include "ingestd/tap.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "ingestd/journal.h"

#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define REJECT_TOPIC      "!reject"
#define TAP_REJECTS_PER_S 1000        //  !reject messages published a second at most
#define TAP_PEER_BYTES    (64 << 10)  //  subscriptions one tap peer may send (beyond heartbeats)
#define TAP_BYTES_MAX     (256 << 10) //  and all of them together
#define TAP_FORWARD_MAX   64          //  messages the thread forwards before it looks around
#define TAP_BUF_KEPT      (8 << 20)   //  a round buffer larger than this is not kept for reuse
#define TAP_PIPE_HWM      10000       //  messages waiting for the thread at most
//  What the event loop hands the thread: a header frame (a type, then the
//  message's bytes, 8 bytes big-endian), then a round's records (its index
//  of s_tapped_t and its buffer, as kept) or one publication's frames.
#define TAP_ROUND       'R'
#define TAP_PUBLICATION 'P'
#define TAP_HEADER      17 //  type, bytes, records (a round's index ends its buffer)
#define TAP_SPARES      2  //  round buffers kept for reuse

//  An accepted record kept for the tap until the round is committed: its
//  kind and bytes, back to back in one buffer.
typedef struct {
    size_t kind_at, kind_len, record_at, record_len;
} s_tapped_t;

struct _tap_t {
    zsock_t *sock;  //  the XPUB: the thread's from tap_new on
    zsock_t *pipe;  //  the event loop's end of the publications' pipe
    zsock_t *inlet; //  the thread's end
    zactor_t *thread;
    peers_t *peers;
    //  Subscriptions XPUB reported since the tap last had no connection. An
    //  upper bound: an unsubscribe cannot be told from a bogus one (XPUB
    //  reports an unsubscribe of a topic the peer never had as if it were
    //  the last), so they are not counted down. Only a gauge: whether to
    //  publish is whether the tap has a connection.
    atomic_uint_fast64_t subscribes;
    size_t record_max;            //  larger records are not published (tap_budget / TAP_HWM)
    uint64_t budget;              //  bytes waiting in the pipe at most
    atomic_uint_fast64_t in_pipe; //  bytes handed to the thread, not yet published
    //  Round buffers the thread is done with, for the next rounds: fresh
    //  memory for every round cost a page fault per 4 KiB written
    pthread_mutex_t spare_lock;
    omni_buf_t spare[TAP_SPARES];
    size_t nspare;
    int64_t rejects_since_ms; //  rejects published on the tap this second
    uint32_t rejects;
    s_tapped_t *tapped; //  accepted records of the round
    size_t ntapped, tapped_cap;
    omni_buf_t buf; //  their kinds and bytes
    omni_metric_t *m_subscribers, *m_skipped, *m_rejects_skipped, *m_behind;
};

static void s_thread (zsock_t *pipe, void *args);

tap_t *
tap_new (zsock_t *sock, peers_t *peers, uint64_t budget, omni_metrics_t *metrics)
{
    tap_t *self = calloc (1, sizeof *self);
    assert (self);
    self->sock = sock;
    self->peers = peers;
    atomic_init (&self->subscribes, 0);
    //  A record is published only when its copies queued for a subscriber
    //  that does not read stay within the budget.
    self->record_max = (size_t) (budget / TAP_HWM);
    self->budget = budget;
    atomic_init (&self->in_pipe, 0);
    pthread_mutex_init (&self->spare_lock, NULL);
    if (metrics) {
        self->m_subscribers = omni_metrics_gauge (
            metrics, "tap_subscriptions",
            "Tap subscriptions received since the tap last had no subscriber (an upper bound)",
            NULL);
        self->m_skipped = omni_metrics_counter (
            metrics, "tap_records_skipped_total",
            "Accepted records not published on the tap: larger than its budget "
            "allows (tap_budget / 10000)",
            NULL);
        self->m_rejects_skipped = omni_metrics_counter (
            metrics, "tap_rejects_skipped_total",
            "Rejected inputs not published on the tap's !reject topic: over 1,000 a second (each "
            "is a dead letter all the same)",
            NULL);
        self->m_behind = omni_metrics_counter (
            metrics, "tap_messages_behind_total",
            "Publications not made on the tap because tap_budget bytes already waited for its "
            "thread (a flood of subscriptions holds it; intake and delivery go on)",
            NULL);
    }
    //  A round's records go as one message; what the pipe holds is bounded
    //  in bytes (s_hand_over), its high-water mark only a backstop.
    char endpoint[64];
    snprintf (endpoint, sizeof endpoint, "inproc://omni-tap-%p", (void *) self);
    self->pipe = zsock_new (ZMQ_PAIR);
    self->inlet = zsock_new (ZMQ_PAIR);
    assert (self->pipe && self->inlet);
    zsock_set_sndhwm (self->pipe, TAP_PIPE_HWM / 2);
    zsock_set_rcvhwm (self->inlet, TAP_PIPE_HWM / 2);
    int rc = zsock_bind (self->inlet, "%s", endpoint);
    assert (rc == 0);
    rc = zsock_connect (self->pipe, "%s", endpoint);
    assert (rc == 0);
    self->thread = zactor_new (s_thread, self);
    assert (self->thread);
    return self;
}

void
tap_destroy (tap_t **self_p)
{
    tap_t *self = *self_p;
    if (!self)
        return;
    //  The socket is the event loop's again once the thread is gone. What
    //  it left in the pipe is closed here, not by libzmq's reaper after
    //  free (self): a round's buffer goes back to the spares on its close.
    zactor_destroy (&self->thread);
    zmq_msg_t msg;
    zmq_msg_init (&msg);
    while (zmq_msg_recv (&msg, zsock_resolve (self->inlet), ZMQ_DONTWAIT) >= 0)
        ;
    zmq_msg_close (&msg);
    zsock_destroy (&self->pipe);
    zsock_destroy (&self->inlet);
    for (size_t i = 0; i < self->nspare; i++)
        omni_buf_release (&self->spare[i]);
    pthread_mutex_destroy (&self->spare_lock);
    free (self->tapped);
    omni_buf_release (&self->buf);
    free (self);
    *self_p = NULL;
}

//  A connection, not a count of subscriptions, which a peer's bogus
//  unsubscribes could drive to nothing; XPUB filters by topic itself.
bool
tap_open (tap_t *self)
{
    return self && peers_count (self->peers, PEERS_TAP) > 0;
}

size_t
tap_record_max (tap_t *self)
{
    return self->record_max;
}

//  Hands one message of `n` frames, `bytes` in all, to the tap's thread
//  (frames[0] is left for the header). False, the frames closed and
//  `publications` counted, when tap_budget bytes are waiting for the thread
//  already (the event loop never waits for it) or its pipe is full.
static bool
s_hand_over (tap_t *self, char type, zmq_msg_t *frames, size_t n, uint64_t bytes,
             size_t publications)
{
    zmq_msg_init_size (&frames[0], TAP_HEADER);
    uint8_t *header = zmq_msg_data (&frames[0]);
    header[0] = (uint8_t) type;
    omni_util_put_be (header + 1, bytes, 8);
    omni_util_put_be (header + 9, publications, 8);
    //  Counted before it goes: the thread may publish it and count it
    //  down before this thread would have counted it up
    bool ok = atomic_fetch_add (&self->in_pipe, bytes) + bytes <= self->budget;
    void *pipe = zsock_resolve (self->pipe);
    for (size_t i = 0; i < n; i++) {
        //  libzmq checks the high-water mark at a message's first frame only
        if (ok && zmq_msg_send (&frames[i], pipe, (i + 1 < n ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) < 0)
            ok = false;
        if (!ok)
            zmq_msg_close (&frames[i]);
    }
    if (!ok) {
        atomic_fetch_sub (&self->in_pipe, bytes);
        omni_metric_add (self->m_behind, publications);
    }
    return ok;
}

//  One publication of `n` parts, copied.
static void
s_publish (tap_t *self, const void **parts, const size_t *sizes, size_t n)
{
    zmq_msg_t frames[8];
    assert (n < 8);
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        zmq_msg_init_size (&frames[i + 1], sizes[i]);
        if (sizes[i])
            memcpy (zmq_msg_data (&frames[i + 1]), parts[i], sizes[i]);
        bytes += sizes[i];
    }
    s_hand_over (self, TAP_PUBLICATION, frames, n + 1, bytes, 1);
}

//  A round's buffer lent to the thread: back among the spares when the
//  thread closes its frame (on the thread), or freed.
typedef struct {
    tap_t *tap;
    omni_buf_t buf;
} s_lent_t;

static void
s_give_back (void *data, void *hint)
{
    (void) data;
    s_lent_t *lent = hint;
    tap_t *self = lent->tap;
    pthread_mutex_lock (&self->spare_lock);
    if (self->nspare < TAP_SPARES && lent->buf.capacity <= TAP_BUF_KEPT) {
        self->spare[self->nspare++] = lent->buf;
        lent->buf = (omni_buf_t){0};
    }
    pthread_mutex_unlock (&self->spare_lock);
    omni_buf_release (&lent->buf);
    free (lent);
}

void
tap_round_begin (tap_t *self)
{
    if (!self)
        return;
    self->ntapped = 0;
    omni_buf_reset (&self->buf);
}

void
tap_keep (tap_t *self, const omni_record_t *record, const void *data, size_t size)
{
    if (size > self->record_max) {
        omni_metric_add (self->m_skipped, 1);
        return;
    }
    s_tapped_t *t = omni_array_push (self->tapped, self->ntapped, self->tapped_cap);
    t->kind_at = self->buf.size;
    t->kind_len = record->kind.len;
    omni_buf_append (&self->buf, record->kind.ptr, record->kind.len);
    t->record_at = self->buf.size;
    t->record_len = size;
    omni_buf_append (&self->buf, data, size);
}

//  The round's buffer goes to the thread as it is, its index appended (one
//  frame, no copy): the event loop spends a send a round on the tap, not
//  two a record. The thread gives the buffer back when done.
void
tap_round_end (tap_t *self, bool committed)
{
    if (!self)
        return;
    if (committed && self->ntapped) {
        static const char pad[_Alignof(s_tapped_t)];
        omni_buf_append (&self->buf, pad,
                         (_Alignof(s_tapped_t) - self->buf.size % _Alignof(s_tapped_t)) %
                             _Alignof(s_tapped_t));
        omni_buf_append (&self->buf, self->tapped, self->ntapped * sizeof *self->tapped);
        s_lent_t *lent = malloc (sizeof *lent);
        assert (lent);
        lent->tap = self;
        lent->buf = self->buf;
        zmq_msg_t frames[2];
        zmq_msg_init_data (&frames[1], lent->buf.data, lent->buf.size, s_give_back, lent);
        s_hand_over (self, TAP_ROUND, frames, 2, lent->buf.size, self->ntapped);
        self->buf = (omni_buf_t){0};
        pthread_mutex_lock (&self->spare_lock);
        if (self->nspare)
            self->buf = self->spare[--self->nspare];
        pthread_mutex_unlock (&self->spare_lock);
    }
    self->ntapped = 0;
    omni_buf_reset (&self->buf);
}

//  Rejects are published at most TAP_REJECTS_PER_S a second: one message
//  of 60,000 bad frames would otherwise fill a subscriber's queue (TAP_HWM)
//  and push out the accepted records published after it. The rest are
//  counted; every one is a dead letter all the same.
void
tap_reject (tap_t *self, const char *reason, const char *detail, const void *raw, size_t size)
{
    if (!tap_open (self))
        return;
    int64_t now = omni_util_mono_ms ();
    if (now - self->rejects_since_ms >= 1000) {
        self->rejects_since_ms = now;
        self->rejects = 0;
    }
    if (self->rejects >= TAP_REJECTS_PER_S) {
        omni_metric_add (self->m_rejects_skipped, 1);
        return;
    }
    self->rejects++;
    //  The raw frame is cut at JOURNAL_DEAD_RAW_MAX: the whole size says how
    //  much was refused (a 100 MiB frame is not a 4 KiB one).
    uint8_t whole[8];
    omni_util_put_be (whole, size, 8);
    const void *parts[] = {REJECT_TOPIC, reason, detail, raw, whole};
    size_t sizes[] = {strlen (REJECT_TOPIC), strlen (reason), strlen (detail),
                      size < JOURNAL_DEAD_RAW_MAX ? size : JOURNAL_DEAD_RAW_MAX, sizeof whole};
    s_publish (self, parts, sizes, 5);
}

//  So that an operator watching sees the evidence of what a writer kept
//  out of its store.
void
tap_conflict (tap_t *self, const char *writer, const omni_record_t *record, const void *data,
              size_t size)
{
    if (!tap_open (self))
        return;
    char topic[128];
    int len =
        snprintf (topic, sizeof topic, "conflict.%.*s", (int) record->kind.len, record->kind.ptr);
    const void *parts[] = {topic, writer, data};
    size_t sizes[] = {(size_t) len < sizeof topic ? (size_t) len : sizeof topic - 1,
                      strlen (writer), size};
    s_publish (self, parts, sizes, 3);
}

//  libzmq keeps every subscription in a trie, which a peer could grow
//  without end, and does not say which connection one came on. What a tap
//  connection sent is all subscriptions (and heartbeats), so its TCP byte
//  count (peers_held) is what it made the trie hold: a peer past
//  TAP_PEER_BYTES goes, and while all of them together are past
//  TAP_BYTES_MAX, the largest. A real omni-tap sends a few hundred bytes:
//  it keeps its subscriptions and its records whatever others send.
//  Called by the memory guard's thread and the tap's (peers has a lock of
//  its own); without a tap connection, not even the table is walked.
void
tap_housekeep (tap_t *self)
{
    if (!tap_open (self))
        return;
    size_t dropped = peers_drop_holding (self->peers, PEERS_TAP, TAP_PEER_BYTES, TAP_BYTES_MAX,
                                         PEERS_TAP_TOPICS, NULL);
    uint64_t held;
    if (dropped && omni_log_allow ("tap.too_many_subscriptions", "", 60000, &held))
        log_warn ("tap.too_many_subscriptions",
                  "dropped_connections=%zu peer_limit=%d total_limit=%d repeated=%" PRIu64
                  " why=\"subscriptions past their bound (each costs memory in libzmq); the "
                  "other subscribers keep theirs\"",
                  dropped, TAP_PEER_BYTES, TAP_BYTES_MAX, held);
}

//  Publishes what the event loop handed over in the message whose header
//  is in `msg` (its other frames follow at once: a message comes whole).
//  XPUB drops a publication for a subscriber whose queue is full (TAP_HWM).
static void
s_forward (tap_t *self, zmq_msg_t *msg, void *inlet, void *xpub)
{
    assert (zmq_msg_size (msg) == TAP_HEADER && zmq_msg_more (msg));
    const uint8_t *header = zmq_msg_data (msg);
    char type = (char) header[0];
    uint64_t bytes = omni_util_get_be (header + 1, 8);
    if (type == TAP_ROUND) {
        size_t records = (size_t) omni_util_get_be (header + 9, 8);
        int rc = zmq_msg_recv (msg, inlet, ZMQ_DONTWAIT);
        assert (rc >= 0 && !zmq_msg_more (msg));
        const char *buf = zmq_msg_data (msg);
        const s_tapped_t *t = (const s_tapped_t *) (buf + zmq_msg_size (msg) - records * sizeof *t);
        for (size_t i = 0; i < records; i++)
            if (zmq_send (xpub, buf + t[i].kind_at, t[i].kind_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
                zmq_send (xpub, buf + t[i].record_at, t[i].record_len, ZMQ_DONTWAIT);
        zmq_msg_close (msg); //  the buffer goes back
        zmq_msg_init (msg);
    } else {
        //  One publication, frame by frame, without a copy
        bool more = true, refused = false;
        while (more && zmq_msg_recv (msg, inlet, ZMQ_DONTWAIT) >= 0) {
            more = zmq_msg_more (msg);
            if (refused || zmq_msg_send (msg, xpub, (more ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) < 0) {
                refused = true; //  and the rest of it
                zmq_msg_close (msg);
                zmq_msg_init (msg);
            }
        }
    }
    atomic_fetch_sub (&self->in_pipe, bytes);
}

//  The thread: publications from the pipe onto the XPUB, subscriptions
//  read (XPUB enters them in its trie as it reads them) and counted.
static void
s_thread (zsock_t *pipe, void *args)
{
    tap_t *self = args;
    zsock_signal (pipe, 0);
    void *xpub = zsock_resolve (self->sock), *inlet = zsock_resolve (self->inlet);
    zmq_msg_t msg;
    zmq_msg_init (&msg);
    while (true) {
        zmq_pollitem_t items[] = {{zsock_resolve (pipe), 0, ZMQ_POLLIN, 0},
                                  {inlet, 0, ZMQ_POLLIN, 0},
                                  {xpub, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll (items, 3, -1) < 0)
            continue;
        if (items[0].revents & ZMQ_POLLIN)
            break; //  $TERM
        for (int n = 0; n < TAP_FORWARD_MAX && zmq_msg_recv (&msg, inlet, ZMQ_DONTWAIT) >= 0; n++)
            s_forward (self, &msg, inlet, xpub);
        if (items[2].revents & ZMQ_POLLIN) {
            for (int i = 0; i < 10000 && zmq_msg_recv (&msg, xpub, ZMQ_DONTWAIT) >= 0; i++)
                if (zmq_msg_size (&msg) >= 1 && ((uint8_t *) zmq_msg_data (&msg))[0] == 1)
                    atomic_fetch_add (&self->subscribes, 1);
            tap_housekeep (self);
            omni_metric_set (self->m_subscribers, (double) atomic_load (&self->subscribes));
        }
    }
    zmq_msg_close (&msg);
}

void
tap_closed (tap_t *self)
{
    if (peers_count (self->peers, PEERS_TAP) == 0) {
        atomic_store (&self->subscribes, 0); //  no one left: their subscriptions are gone
        omni_metric_set (self->m_subscribers, 0);
    }
}

//  Publishes a conflict as a marker and asserts it is the next message:
//  what was not published before it never will be (one pipe, in order).
static void
s_assert_nothing_before_marker (tap_t *tap, zsock_t *sub)
{
    omni_record_t marker = {0};
    marker.kind.ptr = "marker";
    marker.kind.len = 6;
    tap_conflict (tap, "test", &marker, "m", 1);
    zmsg_t *msg = zmsg_recv (sub);
    assert (msg && zframe_streq (zmsg_first (msg), "conflict.marker"));
    zmsg_destroy (&msg);
}

void
tap_test (bool verbose)
{
    (void) verbose;
    //  Over inproc, with a tap connection entered in the table by hand (no
    //  monitor here): what is published, and what is not.
    zsock_t *xpub = zsock_new (ZMQ_XPUB), *sub = zsock_new (ZMQ_SUB);
    assert (xpub && sub);
    //  Room for everything the held thread's pipe gives up at once
    zsock_set_sndhwm (xpub, 2 * TAP_HWM);
    zsock_set_rcvhwm (sub, 2 * TAP_HWM);
    int rc = zsock_bind (xpub, "inproc://tap-test");
    assert (rc == 0);
    zsock_set_subscribe (sub, "");
    rc = zsock_connect (sub, "inproc://tap-test");
    assert (rc == 0);
    zsock_set_rcvtimeo (sub, 2000);
    zframe_t *subscription = zframe_recv (xpub); //  the SUB's "" subscription
    assert (subscription);
    zframe_destroy (&subscription);
    omni_metrics_t *metrics = omni_metrics_new ("test_");
    peers_t *peers = peers_new (16);
    tap_t *tap = tap_new (xpub, peers, 10000ULL * 100, metrics);
    assert (tap_record_max (tap) == 100);
    const uint8_t record_bytes[] = {1, 2, 3};
    omni_record_t record = {0};
    record.kind.ptr = "event";
    record.kind.len = 5;

    //  No connection: nothing is kept or published
    assert (!tap_open (tap) && !tap_open (NULL));
    tap_reject (tap, "bad_frame", "x", "raw", 3);
    tap_conflict (NULL, "archive", &record, record_bytes, 3);

    //  A connection: records published only once their round committed
    assert (peers_accepted (peers, PEERS_TAP, 1000, 0) < 0);
    assert (tap_open (tap));
    s_assert_nothing_before_marker (tap, sub);
    tap_round_begin (tap);
    tap_keep (tap, &record, record_bytes, sizeof record_bytes);
    uint8_t large[101] = {0};
    tap_keep (tap, &record, large, sizeof large); //  over tap_record_max: skipped
    tap_round_end (tap, false);
    s_assert_nothing_before_marker (tap, sub);
    tap_round_begin (tap);
    tap_keep (tap, &record, record_bytes, sizeof record_bytes);
    tap_round_end (tap, true);
    zmsg_t *msg = zmsg_recv (sub);
    assert (msg && zmsg_size (msg) == 2 && zframe_streq (zmsg_first (msg), "event"));
    assert (zframe_size (zmsg_next (msg)) == sizeof record_bytes);
    zmsg_destroy (&msg);
    assert (omni_metric_value (
                omni_metrics_counter (metrics, "tap_records_skipped_total", "x", NULL)) == 1);

    //  Rejects: at most TAP_REJECTS_PER_S a second, the rest counted
    for (int i = 0; i < TAP_REJECTS_PER_S + 10; i++)
        tap_reject (tap, "bad_frame", "detail", "raw", 3);
    for (int i = 0; i < TAP_REJECTS_PER_S; i++) {
        msg = zmsg_recv (sub);
        assert (msg && zmsg_size (msg) == 5 && zframe_streq (zmsg_first (msg), REJECT_TOPIC));
        zmsg_destroy (&msg);
    }
    s_assert_nothing_before_marker (tap, sub);
    assert (omni_metric_value (
                omni_metrics_counter (metrics, "tap_rejects_skipped_total", "x", NULL)) == 10);

    //  A conflict: its topic, the writer, the record
    tap_conflict (tap, "relational", &record, record_bytes, sizeof record_bytes);
    msg = zmsg_recv (sub);
    assert (msg && zmsg_size (msg) == 3 && zframe_streq (zmsg_first (msg), "conflict.event"));
    assert (zframe_streq (zmsg_next (msg), "relational"));
    zmsg_destroy (&msg);

    //  The thread held (a flood of subscriptions, here: a thread that does
    //  not run): rounds wait in the pipe up to tap_budget bytes, the rest
    //  are counted and dropped, the event loop never waits; once the
    //  thread runs again, what waited is published, in order.
    zactor_destroy (&tap->thread);
    int64_t start = omni_util_mono_ms ();
    size_t handed = 0, rounds = 0;
    omni_metric_t *behind = omni_metrics_counter (metrics, "tap_messages_behind_total", "x", NULL);
    while (omni_metric_value (behind) == 0) {
        tap_round_begin (tap);
        for (int i = 0; i < 100; i++)
            tap_keep (tap, &record, record_bytes, sizeof record_bytes);
        tap_round_end (tap, true);
        assert (atomic_load (&tap->in_pipe) <= 10000ULL * 100);
        handed += omni_metric_value (behind) == 0 ? 100 : 0;
        rounds++;
    }
    assert (omni_metric_value (behind) == 100 && rounds > 100);
    assert (omni_util_mono_ms () - start < 1000);
    tap->thread = zactor_new (s_thread, tap);
    for (size_t published = 0; published < handed; published++) {
        msg = zmsg_recv (sub);
        assert (msg && zframe_streq (zmsg_first (msg), "event"));
        zmsg_destroy (&msg);
    }
    s_assert_nothing_before_marker (tap, sub);
    assert (atomic_load (&tap->in_pipe) == 0);
    //  Rounds still waiting when the tap goes are freed, not leaked
    //  (valgrind, ASan), and not given back after it is gone
    zactor_destroy (&tap->thread);
    for (int r = 0; r < 3; r++) {
        tap_round_begin (tap);
        tap_keep (tap, &record, record_bytes, sizeof record_bytes);
        tap_round_end (tap, true);
    }

    //  The last connection gone: the subscription count starts over
    tap_housekeep (tap);
    peers_closed (peers, 1000);
    tap_closed (tap);
    assert (!tap_open (tap));
    tap_destroy (&tap);
    peers_destroy (&peers);
    omni_metrics_destroy (&metrics);
    zsock_destroy (&sub);
    zsock_destroy (&xpub);
}
