/*  documentd: the MongoDB writer. Takes the document kinds from ingestd's
    delivery socket and stores every record as a document with docstore.     */
#include "config.h"
#include "docstore.h"
#include "httpd.h"
#include "log.h"
#include "metrics.h"
#include "writer.h"

#include <czmq.h>
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    writer_t *writer;
    docstore_t *store;
} s_health_t;

//  Healthy when a writable MongoDB server is up and the writer is connected
//  and storing.
static bool
s_healthy (void *arg, char *text, size_t size)
{
    s_health_t *health = arg;
    if (!docstore_healthy (health->store, text, size))
        return false;
    return writer_healthy (health->writer, text, size);
}

static int
s_main (int argc, char **argv)
{
    char *delivery, *uri, *database, *write_concern, *http, *log_level, *log_format;
    int64_t batch_size, window, flush_ms, retry_max_ms, write_timeout_ms;
    const config_option_t options[] = {
        {"delivery", CONFIG_STRING, "tcp://127.0.0.1:5551", "ingestd delivery endpoint",
         &delivery},
        {"uri", CONFIG_STRING, "mongodb://127.0.0.1:27017",
         "MongoDB URI (credentials and TLS options included; the password is never logged)",
         &uri},
        {"database", CONFIG_STRING, "omniaudit", "database of the document collections",
         &database},
        {"write_concern", CONFIG_STRING, "majority",
         "majority | a number of nodes >= 1 | a tag set name; acks wait for it", &write_concern},
        {"write_timeout", CONFIG_DURATION, "10s",
         "how long the write concern may wait (wtimeout), 0 = forever", &write_timeout_ms},
        {"batch_size", CONFIG_INT, "1000", "records per bulk write", &batch_size},
        {"flush_interval", CONFIG_DURATION, "200ms", "a partial batch waits at most this long",
         &flush_ms},
        {"window", CONFIG_INT, "0", "records delivered ahead of acks; 0 = 4 * batch_size",
         &window},
        {"retry_max", CONFIG_DURATION, "5s", "longest wait between retries while MongoDB is away",
         &retry_max_ms},
        {"http", CONFIG_STRING, "127.0.0.1:9103", "/metrics and /health address, empty = off",
         &http},
        {"log_level", CONFIG_STRING, "info", "debug | info | warn | error", &log_level},
        {"log_format", CONFIG_STRING, "kv", "kv | json", &log_format},
        {NULL}};
    //  SIGTERM must drain from the first moment, even while connecting
    zsys_init ();
    config_t *config = config_new ("documentd", options);
    int rc = config_load (config, argc, argv);
    if (rc) {
        config_destroy (&config);
        return rc < 0 ? 2 : 0;
    }
    if (log_init ("documentd", log_level, log_format)) {
        fprintf (stderr, "error: documentd.log_level / log_format: bad value\n");
        config_destroy (&config);
        return 2;
    }
    const char *bad = batch_size < 1 || batch_size > 100000 ? "batch_size: must be 1..100000"
                      : window < 0 || window > 100000000   ? "window: must be 0..100000000"
                      : flush_ms < 1                       ? "flush_interval: must be at least 1ms"
                      : retry_max_ms < 100                 ? "retry_max: must be at least 100ms"
                      : write_timeout_ms < 0 || write_timeout_ms > INT32_MAX
                          ? "write_timeout: must be 0..24d"
                          : NULL;
    if (bad) {
        fprintf (stderr, "error: documentd.%s\n", bad);
        config_destroy (&config);
        return 2;
    }
    metrics_t *metrics = metrics_new ("omni_documentd_");
    char error[512];
    docstore_config_t store_config = {uri, database, write_concern, write_timeout_ms};
    docstore_t *store = docstore_new (&store_config, metrics, error, sizeof error);
    if (!store) {
        fprintf (stderr, "error: documentd.%s\n", error);
        metrics_destroy (&metrics);
        config_destroy (&config);
        return 2;
    }
    writer_config_t writer_config = {delivery,
                                     "document",
                                     (size_t) batch_size,
                                     flush_ms,
                                     (uint32_t) window,
                                     100,
                                     retry_max_ms};
    writer_t *writer = writer_new (&writer_config, docstore_write, store, metrics);
    s_health_t health = {writer, store};
    httpd_t *httpd = NULL;
    if (http && *http) {
        httpd = httpd_new (http, metrics, s_healthy, &health);
        if (!httpd) {
            writer_destroy (&writer);
            docstore_destroy (&store);
            metrics_destroy (&metrics);
            config_destroy (&config);
            return 1;
        }
    }
    //  A server that is not up yet is not a start-up error: the indexes and
    //  the writes wait for it.
    rc = docstore_connect (store);
    log_info ("documentd.start", "mongodb=\"%s\" database=%s write_concern=%s connected=%s",
              docstore_display (store), database, write_concern, rc == 0 ? "yes" : "no");
    rc = writer_run (writer);
    httpd_destroy (&httpd);
    writer_destroy (&writer);
    docstore_destroy (&store);
    metrics_destroy (&metrics);
    config_destroy (&config);
    return rc ? 1 : 0;
}

int
main (int argc, char **argv)
{
    mongoc_init ();
    int rc = s_main (argc, argv);
    mongoc_cleanup ();
    return rc;
}
