/*  route: ingestd's sockets, bound and sent on (see route.h). Intake's
    replies and every message of delivery go through here, so that a peer
    that sends without reading is handled the same way on both; the
    self-tests bind their sockets here too, as ingestd does.              */
#include "ingestd/route.h"
#include "common/log.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>

#define HANDSHAKE_MS    10000 //  a connection not through its handshake by then is closed
#define ZMTP_PING_MS    10000 //  ZMTP heartbeats: a peer that does not answer...
#define ZMTP_TIMEOUT_MS 30000 //  ...within this is disconnected

//  Sends never block (ZMQ_SNDTIMEO 0): a ROUTER with ZMQ_ROUTER_MANDATORY
//  says EAGAIN for a peer whose queue is full instead of dropping in silence.
zsock_t *
route_bind (int type, const char *endpoint, omni_curve_server_t *curve, omni_curve_socket_t which,
            int sndhwm, int rcvhwm, int64_t frame_max, char *error, size_t error_size)
{
    zsock_t *sock = zsock_new (type);
    assert (sock);
    zsock_set_linger (sock, 0);
    if (curve)
        omni_curve_server_apply (curve, sock, which);
    zsock_set_sndhwm (sock, sndhwm);
    zsock_set_rcvhwm (sock, rcvhwm);
    zsock_set_maxmsgsize (sock, frame_max);
    zsock_set_sndtimeo (sock, 0);
    //  A peer that connects and never finishes its handshake, or stops
    //  answering ZMTP pings (gone without a FIN), frees its descriptor.
    zsock_set_handshake_ivl (sock, HANDSHAKE_MS);
    zsock_set_heartbeat_ivl (sock, ZMTP_PING_MS);
    zsock_set_heartbeat_timeout (sock, ZMTP_TIMEOUT_MS);
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
    if (sent)
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
