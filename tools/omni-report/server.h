/*  server: the live dashboard (omni-report serve). GET / lists the projects
    the role can see, /p/NAME is a project's report page, /json/NAME its
    JSON (/json/ the list), ?since=&until= narrow the period. Every page is
    built at its request, on a connection of its own, each statement bounded
    by the statement timeout: a store that is down or slow gives a 503 page
    that says which store and why, at once, never a hang. One thread per
    connection (libmicrohttpd), so a slow page holds up no other.            */
#ifndef OMNI_REPORT_SERVER_H
#define OMNI_REPORT_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *dsn;
    int64_t statement_timeout_ms;
    int64_t connect_timeout_ms;
    int top;
    //  A report page is served again from memory for this long after it
    //  was built (its "generated" time says when); 0 = built at every
    //  request. The dashboard serves one role, so one cache fits all.
    int64_t cache_ms;
    //  gather_options_t's: rows from which a page's statements run on
    //  `connections` connections at once (0 = 100,000, negative = always)
    int64_t pool_min_rows;
    int connections;
} server_options_t;

typedef struct _server_t server_t;

//  Listens on "HOST:PORT" (port 0: a free one, see server_port). NULL with
//  `error` naming the address and the reason.
server_t *server_new (const char *address, const server_options_t *options, char *error,
                      size_t error_size);
void server_destroy (server_t **self_p);
int server_port (server_t *self);

void server_test (bool verbose);

#endif
