/*  route: ingestd's sockets, bound and sent on (see route.h). Intake's
    replies and every message of delivery go through here, so that a peer
    that sends without reading is handled the same way on both; the
    self-tests bind their sockets here too, as ingestd does.              */
#include "ingestd/route.h"
#include "common/log.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HANDSHAKE_MS 10000 //  a connection not through its handshake by then is closed

//  Dead and half-open peers are found by the kernel, not by ZMTP
//  heartbeats. With a heartbeat interval set, libzmq (4.3.4, and upstream
//  still: issues 3937, 4364, 4767) aborts the process, "Assertion failed:
//  !_io_error (src/stream_engine_base.cpp:331)", when a connection whose
//  input it stopped (the queue from the peer full: a peer that floods) is
//  shut down by ingestd (peers.c) and the ping timer fires before ingestd
//  reads that queue: the hang-up took the descriptor out of the poller and
//  set _io_error, and the timer's out_event asserts it is not set. Any
//  peer could kill ingestd that way, on all three sockets. Keepalives
//  instead close an idle connection whose peer is gone within `timeout_ms`
//  (the first probe after a third of it, the last at its end);
//  ZMQ_TCP_MAXRT, TCP_USER_TIMEOUT on Linux, one whose data (or a closed
//  window) stayed unacknowledged that long. Both live in the kernel:
//  nothing of them runs in libzmq's engine.
static void
s_set_peer_timeout (zsock_t *sock, int64_t timeout_ms)
{
    int total_s = (int) (timeout_ms / 1000);
    int idle = total_s / 3 > 1 ? total_s / 3 : 1;
    int interval = total_s / 6 > 1 ? total_s / 6 : 1;
    int probes = (total_s - idle) / interval > 1 ? (total_s - idle) / interval : 1;
    zsock_set_tcp_keepalive (sock, 1);
    zsock_set_tcp_keepalive_idle (sock, idle);
    zsock_set_tcp_keepalive_intvl (sock, interval);
    zsock_set_tcp_keepalive_cnt (sock, probes);
    zsock_set_tcp_maxrt (sock, (int) timeout_ms);
}

//  Sends never block (ZMQ_SNDTIMEO 0): a ROUTER with ZMQ_ROUTER_MANDATORY
//  says EAGAIN for a peer whose queue is full instead of dropping in silence.
zsock_t *
route_bind (int type, const char *endpoint, omni_curve_server_t *curve, omni_curve_socket_t which,
            const route_limits_t *limits, char *error, size_t error_size)
{
    zsock_t *sock = zsock_new (type);
    assert (sock);
    zsock_set_linger (sock, 0);
    if (curve)
        omni_curve_server_apply (curve, sock, which);
    //  Every option before the bind: libzmq gives the listener a copy of
    //  them then, and an accepted connection inherits the listener's
    //  kernel buffers (an SO_SNDBUF set after the bind changed nothing)
    zsock_set_sndhwm (sock, limits->sndhwm);
    zsock_set_rcvhwm (sock, limits->rcvhwm);
    zsock_set_maxmsgsize (sock, limits->frame_max);
    if (limits->sndbuf > 0)
        zsock_set_sndbuf (sock, limits->sndbuf);
    if (limits->rcvbuf > 0)
        zsock_set_rcvbuf (sock, limits->rcvbuf);
    zsock_set_sndtimeo (sock, 0);
    //  A peer that connects and never finishes its handshake frees its
    //  descriptor; one gone without a FIN, by s_set_peer_timeout.
    zsock_set_handshake_ivl (sock, HANDSHAKE_MS);
    s_set_peer_timeout (sock, limits->peer_timeout_ms);
    if (type == ZMQ_ROUTER)
        zsock_set_router_mandatory (sock, 1);
    else {
        //  Every subscription is reported, so that they can be counted
        zsock_set_xpub_verbose (sock, 1);
    }
    if (zsock_bind (sock, "%s", endpoint) < 0) {
        snprintf (error, error_size, "cannot bind %s: %s", endpoint, zmq_strerror (zmq_errno ()));
        zsock_destroy (&sock);
    }
    return sock;
}

bool
route_send (peers_t *peers, peers_socket_t socket, void *sock, const void *peer, size_t peer_size,
            int fd, const omni_wire_head_t *head, const route_frames_t *records,
            omni_metric_t *unread)
{
    size_t n = records ? records->count : 0;
    //  ROUTER_MANDATORY checks the queue on the routing id: past it, the
    //  rest of the message always goes in.
    bool sent = omni_wire_send_head (sock, peer, peer_size, head, n > 0, ZMQ_DONTWAIT) == 0;
    if (sent && n && head->command == WIRE_DELIVERP)
        omni_wire_send_packed (sock, records->data, records->ends, 0, n, true);
    else if (sent)
        for (size_t i = 0, from = 0; i < n; from = records->ends[i++])
            omni_wire_send_record (sock, records->data + from, records->ends[i] - from, i + 1 == n);
    else if (zmq_errno () == EAGAIN) {
        omni_metric_add (unread, 1);
        bool dropped = peers_drop (peers, socket, fd, PEERS_UNREAD);
        uint64_t held;
        if (omni_log_allow ("ingestd.peer_not_reading", peers_socket_name (socket), 60000, &held))
            log_warn ("ingestd.peer_not_reading",
                      "socket=%s queued=%d disconnected=%s repeated=%" PRIu64
                      " why=\"a peer that sends without reading the replies\"",
                      peers_socket_name (socket), PEERS_REPLY_HWM, dropped ? "yes" : "no", held);
    }
    return sent;
}

uint16_t
route_event (zsock_t *monitor, int timeout_ms, uint32_t *value)
{
    zmq_pollitem_t item = {zsock_resolve (monitor), 0, ZMQ_POLLIN, 0};
    if (zmq_poll (&item, 1, timeout_ms) != 1)
        return 0;
    zmsg_t *event = zmsg_recv (monitor);
    zframe_t *head = event ? zmsg_first (event) : NULL;
    uint16_t id = 0;
    if (head && zframe_size (head) == 6) {
        memcpy (&id, zframe_data (head), 2);
        memcpy (value, zframe_data (head) + 2, 4);
    }
    zmsg_destroy (&event);
    return id;
}

//  --------------------------------------------------------------------------
//  Self test

#define T_WAIT_MS 5000

//  The next event of `monitor` within `timeout_ms`: asserted to be `id`,
//  its value (a descriptor) returned; -1 when none came.
static int
s_t_event (zsock_t *monitor, uint16_t id, int timeout_ms)
{
    uint32_t value = 0;
    uint16_t got = route_event (monitor, timeout_ms, &value);
    assert (got == id || got == 0);
    return got ? (int) value : -1;
}

//  Watches the connections of `sock` (ACCEPTED and DISCONNECTED).
static zsock_t *
s_t_monitor (zsock_t *sock, const char *name)
{
    char endpoint[64];
    snprintf (endpoint, sizeof endpoint, "inproc://route-test-%s", name);
    assert (zmq_socket_monitor (zsock_resolve (sock), endpoint,
                                ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED) == 0);
    zsock_t *monitor = zsock_new_pair (NULL);
    assert (monitor && zsock_connect (monitor, "%s", endpoint) == 0);
    return monitor;
}

//  A TCP connection to the port `sock` is bound to on 127.0.0.1.
static int
s_t_connect (zsock_t *sock)
{
    char *endpoint = zsock_last_endpoint (sock);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons ((uint16_t) atoi (strrchr (endpoint, ':') + 1)),
                               .sin_addr.s_addr = htonl (INADDR_LOOPBACK)};
    zstr_free (&endpoint);
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    assert (fd >= 0 && connect (fd, (struct sockaddr *) &addr, sizeof addr) == 0);
    //  Nothing the test reads or writes may hang it
    struct timeval limit = {T_WAIT_MS / 1000, 0};
    assert (setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit) == 0 &&
            setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit) == 0);
    return fd;
}

static void
s_t_read (int fd, unsigned char *data, size_t size)
{
    for (size_t got = 0; got < size;) {
        ssize_t n = read (fd, data + got, size - got);
        assert (n > 0);
        got += (size_t) n;
    }
}

//  A ZMTP 3.0 peer by hand (NULL mechanism, socket type `type`), through
//  its handshake: what the test writes on it next is read as messages, as
//  fast as the test likes and with nothing of libzmq on this side.
static int
s_t_zmtp_peer (zsock_t *sock, const char *type)
{
    int fd = s_t_connect (sock);
    //  Signature, version 3.0, mechanism NULL, as-server 0, filler
    unsigned char greeting[64] = {0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0, 'N', 'U', 'L', 'L'};
    assert (write (fd, greeting, sizeof greeting) == sizeof greeting);
    //  READY with the Socket-Type property, a short command frame
    unsigned char ready[64] = {0x04, 0, 5, 'R', 'E', 'A', 'D', 'Y', 11};
    size_t type_size = strlen (type), size = 9;
    memcpy (ready + size, "Socket-Type\0\0\0", 14);
    size += 14;
    ready[size++] = (unsigned char) type_size;
    memcpy (ready + size, type, type_size);
    size += type_size;
    ready[1] = (unsigned char) (size - 2);
    assert (write (fd, ready, size) == (ssize_t) size);
    //  The server's greeting, then its READY: the handshake is through
    unsigned char in[256];
    s_t_read (fd, in, sizeof greeting);
    s_t_read (fd, in, 2);
    assert (in[0] == 0x04);
    s_t_read (fd, in, in[1]);
    assert (memcmp (in, "\x05READY", 6) == 0);
    return fd;
}

static int
s_t_option (int fd, int level, int name)
{
    int value = -1;
    socklen_t size = sizeof value;
    assert (getsockopt (fd, level, name, &value, &size) == 0);
    return value;
}

//  What the kernel was told for an accepted connection: the probes
//  (seconds) and the time data may stay unacknowledged (ms).
static void
s_t_assert_timeouts (int fd, int idle, int interval, int probes, int unacked_ms)
{
    assert (s_t_option (fd, SOL_SOCKET, SO_KEEPALIVE) == 1);
    assert (s_t_option (fd, IPPROTO_TCP, TCP_KEEPIDLE) == idle);
    assert (s_t_option (fd, IPPROTO_TCP, TCP_KEEPINTVL) == interval);
    assert (s_t_option (fd, IPPROTO_TCP, TCP_KEEPCNT) == probes);
    assert (s_t_option (fd, IPPROTO_TCP, TCP_USER_TIMEOUT) == unacked_ms);
}

void
route_test (bool verbose)
{
    (void) verbose;
    char error[256];
    //  The tap's socket as ingestd binds it
    route_limits_t tap = {10000, 64, 1024, ROUTE_PEER_TIMEOUT_MS, 0, 16 << 10};
    zsock_t *xpub =
        route_bind (ZMQ_XPUB, "tcp://127.0.0.1:*", NULL, CURVE_TAP, &tap, error, sizeof error);
    assert (xpub);
    assert (zsock_heartbeat_ivl (xpub) == 0 && zsock_handshake_ivl (xpub) == HANDSHAKE_MS);
    zsock_t *monitor = s_t_monitor (xpub, "xpub");
    int peer = s_t_zmtp_peer (xpub, "XSUB");
    int fd = s_t_event (monitor, ZMQ_EVENT_ACCEPTED, T_WAIT_MS);
    assert (fd >= 0);
    //  The kernel buffers asked for are the connection's (Linux keeps
    //  twice what is asked, for its bookkeeping); the rest autotuned
    assert (s_t_option (fd, SOL_SOCKET, SO_RCVBUF) == 2 * (16 << 10));
    //  The default: a dead idle peer probed from 10 s, every 5 s, gone at
    //  30 s; data unacknowledged for 30 s, gone
    s_t_assert_timeouts (fd, 10, 5, 4, 30000);

    //  A subscription flood, never read: libzmq queues 64 messages (RCVHWM),
    //  then stops reading the connection (its engine's input stopped)
    enum { FLOOD = 2000, FRAME = 13 };
    static unsigned char flood[FLOOD * FRAME];
    for (int i = 0; i < FLOOD; i++) {
        //  A short message frame: subscribe to topic-NNNN
        char body[24];
        snprintf (body, sizeof body, "\001topic-%04d", i);
        flood[i * FRAME] = 0;
        flood[i * FRAME + 1] = FRAME - 2;
        memcpy (flood + i * FRAME + 2, body, FRAME - 2);
    }
    assert (write (peer, flood, sizeof flood) == sizeof flood);
    //  libzmq reads up to 8 KiB at a time and stops within the read that
    //  brought the 65th message: holding twice that, its input is stopped
    peers_t *peers = peers_new (10);
    assert (peers_accepted (peers, PEERS_TAP, fd, 0) == -1);
    int64_t deadline = zclock_mono () + T_WAIT_MS;
    while (peers_held (peers, PEERS_TAP, fd) < 2 * 64 * FRAME) {
        assert (zclock_mono () < deadline);
        zclock_sleep (1);
    }
    assert (peers_held (peers, PEERS_TAP, fd) < sizeof flood); //  the rest waits in the kernel
    //  ingestd drops such a peer (shutdown): the hang-up comes while input
    //  is stopped. libzmq leaves the connection until the queue is read
    //  (had it been reading, it would have seen the end and closed it at
    //  once). With a ZMTP heartbeat interval set, its ping timer aborted
    //  the process here.
    assert (peers_drop (peers, PEERS_TAP, fd, PEERS_TAP_TOPICS));
    assert (s_t_event (monitor, ZMQ_EVENT_DISCONNECTED, 300) == -1);
    //  Once the queue is read, the connection goes
    size_t subscriptions = 0;
    int closed = -1;
    deadline = zclock_mono () + T_WAIT_MS;
    while (closed < 0 && zclock_mono () < deadline) {
        char topic[16];
        while (zmq_recv (zsock_resolve (xpub), topic, sizeof topic, ZMQ_DONTWAIT) == FRAME - 2)
            subscriptions++;
        closed = s_t_event (monitor, ZMQ_EVENT_DISCONNECTED, 10);
    }
    assert (closed == fd && subscriptions > 64 && subscriptions < FLOOD);
    peers_closed (peers, fd);
    peers_destroy (&peers);
    close (peer);

    //  A timeout of a few seconds (the tests'): probes every second
    route_limits_t intake = {1000, 64, 1024, 3000, 128 << 10, 0};
    zsock_t *router = route_bind (ZMQ_ROUTER, "tcp://127.0.0.1:*", NULL, CURVE_INTAKE, &intake,
                                  error, sizeof error);
    assert (router && zsock_heartbeat_ivl (router) == 0);
    zsock_t *router_monitor = s_t_monitor (router, "router");
    peer = s_t_connect (router);
    fd = s_t_event (router_monitor, ZMQ_EVENT_ACCEPTED, T_WAIT_MS);
    assert (fd >= 0);
    s_t_assert_timeouts (fd, 1, 1, 2, 3000);
    assert (s_t_option (fd, SOL_SOCKET, SO_SNDBUF) == 2 * (128 << 10));
    close (peer);

    //  A port in use: NULL and why
    char *endpoint = zsock_last_endpoint (router);
    assert (!route_bind (ZMQ_ROUTER, endpoint, NULL, CURVE_INTAKE, &intake, error, sizeof error));
    assert (strstr (error, "cannot bind") != NULL);
    zstr_free (&endpoint);
    zmq_socket_monitor (zsock_resolve (router), NULL, 0);
    zmq_socket_monitor (zsock_resolve (xpub), NULL, 0);
    zsock_destroy (&router_monitor);
    zsock_destroy (&monitor);
    zsock_destroy (&router);
    zsock_destroy (&xpub);
}
