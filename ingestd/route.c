/*  route: a message to one peer of ingestd's ROUTER sockets (see route.h).
    Intake's replies and every message of delivery go through here, so that
    a peer that sends without reading is handled the same way on both.    */
#include "ingestd/route.h"
#include "common/log.h"

#include <errno.h>
#include <inttypes.h>

bool
route_send (peers_t *peers, peers_socket_t socket, void *sock, const void *peer, size_t peer_size,
            int fd, const omni_wire_head_t *head, zmsg_t **records, omni_metric_t *unread)
{
    size_t n = records && *records ? zmsg_size (*records) : 0, i = 0;
    //  ROUTER_MANDATORY checks the queue on the routing id: past it, the
    //  rest of the message always goes in.
    bool sent = omni_wire_send_head (sock, peer, peer_size, head, n > 0, ZMQ_DONTWAIT) == 0;
    if (sent)
        for (zframe_t *f = n ? zmsg_first (*records) : NULL; f; f = zmsg_next (*records))
            omni_wire_send_record (sock, zframe_data (f), zframe_size (f), ++i == n);
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
    if (records)
        zmsg_destroy (records);
    return sent;
}
