/*  httpd: the operational HTTP endpoint of a daemon, on libmicrohttpd's own
    thread: GET /metrics (Prometheus text) and GET /health (200 "ok ..." or
    503 with the failing check), so monitoring never waits on the main loop. */
#ifndef OMNI_HTTPD_H
#define OMNI_HTTPD_H

#include "common/metrics.h"
#include <stdbool.h>
#include <stddef.h>

//  Writes a one-line status into `text` and returns true when healthy.
//  Called on the HTTP thread: it must only read atomics or take its own locks.
typedef bool (health_fn) (void *arg, char *text, size_t size);

typedef struct _omni_httpd_t omni_httpd_t;

//  `address` is "HOST:PORT"; port 0 picks a free port (see omni_httpd_port).
//  Returns NULL after logging why (bad address, port in use).
omni_httpd_t *omni_httpd_new (const char *address, omni_metrics_t *metrics, health_fn *health,
                              void *arg);
void omni_httpd_destroy (omni_httpd_t **self_p);

//  A listening socket on HOST:PORT ([::1]:PORT for IPv6; port 0 = any), for
//  a libmicrohttpd daemon given it with MHD_OPTION_LISTEN_SOCKET. Bound here,
//  not by MHD, which says "Failed to bind to port 0" for an address given
//  whole: `error` names the address, the reason and what to do. Returns the
//  descriptor, or -1.
int omni_httpd_listen (const char *address, bool *ipv6, char *error, size_t error_size);
int omni_httpd_port (omni_httpd_t *self);

void omni_httpd_test (bool verbose);

#endif
