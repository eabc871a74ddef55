/*  relationald: the PostgreSQL writer. Takes the relational kinds from
    ingestd's delivery socket and stores them with relstore.                 */
#include "config.h"
#include "httpd.h"
#include "log.h"
#include "metrics.h"
#include "relstore.h"
#include "writer.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    writer_t *writer;
    relstore_t *store;
} s_health_t;

//  Healthy when PostgreSQL answers and the writer is connected and storing.
static bool
s_healthy (void *arg, char *text, size_t size)
{
    s_health_t *health = arg;
    if (!relstore_healthy (health->store, text, size))
        return false;
    return writer_healthy (health->writer, text, size);
}

int
main (int argc, char **argv)
{
    char *delivery, *dsn, *http, *log_level, *log_format;
    int64_t batch_size, window, flush_ms, retry_max_ms;
    const config_option_t options[] = {
        {"delivery", CONFIG_STRING, "tcp://127.0.0.1:5551", "ingestd delivery endpoint",
         &delivery},
        {"dsn", CONFIG_STRING, "",
         "PostgreSQL conninfo or postgresql:// URI; empty = the PG* environment", &dsn},
        {"batch_size", CONFIG_INT, "1000", "records per transaction", &batch_size},
        {"flush_interval", CONFIG_DURATION, "200ms", "a partial batch waits at most this long",
         &flush_ms},
        {"window", CONFIG_INT, "0", "records delivered ahead of acks; 0 = 4 * batch_size",
         &window},
        {"retry_max", CONFIG_DURATION, "5s", "longest wait between retries while PostgreSQL is away",
         &retry_max_ms},
        {"http", CONFIG_STRING, "127.0.0.1:9102", "/metrics and /health address, empty = off",
         &http},
        {"log_level", CONFIG_STRING, "info", "debug | info | warn | error", &log_level},
        {"log_format", CONFIG_STRING, "kv", "kv | json", &log_format},
        {NULL}};
    //  SIGTERM must drain from the first moment, even while connecting
    zsys_init ();
    config_t *config = config_new ("relationald", options);
    int rc = config_load (config, argc, argv);
    if (rc) {
        config_destroy (&config);
        return rc < 0 ? 2 : 0;
    }
    if (log_init ("relationald", log_level, log_format)) {
        fprintf (stderr, "error: relationald.log_level / log_format: bad value\n");
        config_destroy (&config);
        return 2;
    }
    const char *bad = batch_size < 1 || batch_size > 1000000 ? "batch_size: must be 1..1000000"
                      : window < 0 || window > 100000000 ? "window: must be 0..100000000"
                      : flush_ms < 1                     ? "flush_interval: must be at least 1ms"
                      : retry_max_ms < 100               ? "retry_max: must be at least 100ms"
                                                         : NULL;
    if (bad) {
        fprintf (stderr, "error: relationald.%s\n", bad);
        config_destroy (&config);
        return 2;
    }
    metrics_t *metrics = metrics_new ("omni_relationald_");
    char error[512];
    relstore_t *store = relstore_new (dsn, metrics, error, sizeof error);
    if (!store) {
        fprintf (stderr, "error: relationald.dsn: %s\n", error);
        metrics_destroy (&metrics);
        config_destroy (&config);
        return 2;
    }
    //  A schema that cannot be applied is a start-up error; a server that is
    //  not up yet is not: writes wait for it.
    rc = relstore_connect (store);
    if (rc < 0) {
        log_error ("relationald.start_failed", "postgres=\"%s\" detail=\"schema migration "
                   "failed\"", relstore_display (store));
        relstore_destroy (&store);
        metrics_destroy (&metrics);
        config_destroy (&config);
        return 1;
    }
    log_info ("relationald.start", "postgres=\"%s\" connected=%s", relstore_display (store),
              rc == 0 ? "yes" : "no");
    writer_config_t writer_config = {delivery,
                                     "relational",
                                     (size_t) batch_size,
                                     flush_ms,
                                     (uint32_t) window,
                                     100,
                                     retry_max_ms};
    writer_t *writer = writer_new (&writer_config, relstore_write, store, metrics);
    s_health_t health = {writer, store};
    httpd_t *httpd = NULL;
    if (http && *http) {
        httpd = httpd_new (http, metrics, s_healthy, &health);
        if (!httpd) {
            writer_destroy (&writer);
            relstore_destroy (&store);
            metrics_destroy (&metrics);
            config_destroy (&config);
            return 1;
        }
    }
    rc = writer_run (writer);
    httpd_destroy (&httpd);
    writer_destroy (&writer);
    relstore_destroy (&store);
    metrics_destroy (&metrics);
    config_destroy (&config);
    return rc ? 1 : 0;
}
