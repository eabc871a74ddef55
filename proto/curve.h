/*  curve: CURVE security on the pipeline's ZeroMQ sockets. ingestd is the
    server: it holds its own certificate and accepts a client only on the
    sockets its role allows (curve_roles.h: a directory of public
    certificates per role), checked by a ZAP handler of its own. Collectors,
    writers and omni-tap are clients: they hold their own certificate and
    ingestd's public one. Certificates are czmq zcert files: `<path>` holds
    the public key, `<path>_secret` the secret one (omnictl keygen writes
    both). Nothing is configured = no security, the sockets are left as
    they are.                                                               */
#ifndef OMNI_CURVE_H
#define OMNI_CURVE_H

#include "proto/curve_roles.h"
#include "common/metrics.h"

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct _omni_curve_server_t omni_curve_server_t;
typedef struct _omni_curve_client_t omni_curve_client_t;

//  One certificate file, checked (zcert_load alone is lenient); with its
//  secret key (`path`_secret) when `secret`. NULL with an error naming the
//  file that is missing or malformed.
zcert_t *omni_curve_cert_load (const char *path, bool secret, char *error, size_t error_size);

//  Loads the server certificate (with its secret) and the clients' roles
//  from clients_dir (omni_curve_roles_new: strict, an error names the file and
//  the fix), and starts the ZAP handler that admits a key on a socket only
//  in its role. clients_dir is read again when it changes. `metrics` (may
//  be NULL) gets curve_refused_total{socket,why}. NULL with an error.
omni_curve_server_t *omni_curve_server_new (const char *cert_path, const char *clients_dir,
                                            omni_metrics_t *metrics, char *error,
                                            size_t error_size);
void omni_curve_server_destroy (omni_curve_server_t **self_p);

//  Makes `sock` the CURVE server for `which` of ingestd's sockets; before
//  it binds.
void omni_curve_server_apply (omni_curve_server_t *self, zsock_t *sock, omni_curve_socket_t which);

//  Whether the delivery connection that `frame` came on (any frame of its
//  message) may HELLO as writer `name`: its key is in writer/<name>/. A
//  refusal is logged with the key's name and counted, and `reason` gets
//  the text for the writer's RESET. A NULL server (no CURVE) allows all.
//  The connection metadata our ZAP handler sets: the key's name (ZMQ's
//  "User-Id") and the writer names it may use (this property).
#define CURVE_WRITERS_PROPERTY "X-Omni-Writers"

//  The same from that metadata as read by zmq_msg_gets on any part of the
//  message (NULL when absent), for a loop that receives zmq_msg_t.
bool omni_curve_server_writer_allowed_meta (omni_curve_server_t *self, const char *key,
                                            const char *writers, const char *name, char *reason,
                                            size_t reason_size);

bool omni_curve_server_writer_allowed (omni_curve_server_t *self, zframe_t *frame, const char *name,
                                       char *reason, size_t reason_size);

//  The two config keys of a CURVE client (collectord, the writers, omni-tap,
//  omni-loadgen), declared once: two entries of an omni_config_option_t
//  table, their values for omni_curve_client_load. `who` is a string
//  literal naming this end in --help ("writer").
// clang-format off
#define OMNI_CURVE_CLIENT_OPTIONS(who, key, server_key)                                      \
    {"curve_key", CONFIG_STRING, "",                                                           \
     "CURVE: this " who "'s certificate (PATH and PATH_secret); with curve_server_key", (key)}, \
    {"curve_server_key", CONFIG_STRING, "",                                                    \
     "CURVE: ingestd's public certificate; empty with curve_key = no security", (server_key)}
// clang-format on

//  A client's keys from its config: both paths empty (or NULL) = no CURVE,
//  *client_p stays NULL; both set = CURVE; one without the other is an
//  error naming the missing key (`curve_key`, `curve_server_key`).
//  Returns 0, or -1 with an error naming the key or file.
int omni_curve_client_load (const char *cert_path, const char *server_cert_path,
                            omni_curve_client_t **client_p, char *error, size_t error_size);
void omni_curve_client_destroy (omni_curve_client_t **self_p);

//  Makes `sock` a CURVE client of the server; before it connects.
void omni_curve_client_apply (const omni_curve_client_t *self, zsock_t *sock);

//  The socket events that tell a refused key: monitor them on a client
//  socket and pass each event to omni_curve_refusal_event.
#define CURVE_MONITOR_EVENTS                                                                       \
    (ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |                             \
     ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)

//  Logs a refusal by the server at `endpoint` once per streak of refusals
//  (`*refused` remembers the streak; a successful handshake ends it).
//  Returns true when the event was a refusal.
bool omni_curve_refusal_event (uint16_t event, const char *endpoint, bool *refused);

//  libzmq ends a connection whose handshake the server refused and never
//  tries it again (a protocol error, unlike a lost connection); clients try
//  again themselves this long after a refusal, as the key may be allowed
//  in the meantime.
#define CURVE_RETRY_MS 2000

//  Connects `sock` to `endpoint` again after a refusal (owner thread).
void omni_curve_reconnect (zsock_t *sock, const char *endpoint);

//  Watches a client socket from a thread of its own and logs refusals, for
//  loops that do not read a monitor themselves. Create it from the thread
//  that owns the socket, and destroy it before the socket.
typedef struct _omni_curve_watch_t omni_curve_watch_t;
omni_curve_watch_t *omni_curve_watch_new (zsock_t *sock, const char *endpoint);
void omni_curve_watch_destroy (omni_curve_watch_t **self_p);

//  Called by the socket's owner at least every CURVE_RETRY_MS: reconnects
//  once a refusal is CURVE_RETRY_MS old. NULL does nothing.
void omni_curve_watch_poll (omni_curve_watch_t *self);

//  Writes a new certificate: `path` (public) and `path`_secret (mode 0600).
int omni_curve_keygen (const char *path, char *error, size_t error_size);

void omni_curve_test (bool verbose);

#endif
