/*  httpd: the operational HTTP endpoint of a daemon, on libmicrohttpd's own
    thread: GET /metrics (Prometheus text) and GET /health (200 "ok ..." or
    503 with the failing check), so monitoring never waits on the main loop. */
#ifndef OMNI_HTTPD_H
#define OMNI_HTTPD_H

#include "metrics.h"
#include <stdbool.h>
#include <stddef.h>

//  Writes a one-line status into `text` and returns true when healthy.
//  Called on the HTTP thread: it must only read atomics or take its own locks.
typedef bool (health_fn) (void *arg, char *text, size_t size);

typedef struct _httpd_t httpd_t;

//  `address` is "HOST:PORT"; port 0 picks a free port (see httpd_port).
//  Returns NULL after logging why (bad address, port in use).
httpd_t *httpd_new (const char *address, metrics_t *metrics, health_fn *health, void *arg);
void httpd_destroy (httpd_t **self_p);
int httpd_port (httpd_t *self);

void httpd_test (bool verbose);

#endif
