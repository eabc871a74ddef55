/*  metricsd: the time-series writer. Takes the metric, git.commit, ci.build
    and ci.test records from ingestd's delivery socket and stores the points
    derived from them with pointstore.                                       */
#include "config.h"
#include "httpd.h"
#include "log.h"
#include "metrics.h"
#include "pointstore.h"
#include "writer.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    writer_t *writer;
    pointstore_t *store;
} s_health_t;

//  Healthy when PostgreSQL answers and the writer is connected and storing.
static bool
s_healthy (void *arg, char *text, size_t size)
{
    s_health_t *health = arg;
    if (!pointstore_healthy (health->store, text, size))
        return false;
    return writer_healthy (health->writer, text, size);
}

int
main (int argc, char **argv)
{
    char *delivery, *dsn, *mode, *partition_interval, *http, *log_level, *log_format;
    int64_t batch_size, window, flush_ms, retry_max_ms, compress_after_ms;
    const config_option_t options[] = {
        {"delivery", CONFIG_STRING, "tcp://127.0.0.1:5551", "ingestd delivery endpoint",
         &delivery},
        {"dsn", CONFIG_STRING, "",
         "PostgreSQL conninfo or postgresql:// URI; empty = the PG* environment", &dsn},
        {"mode", CONFIG_STRING, "auto",
         "auto | native | timescaledb: how a new database is set up (auto = TimescaleDB when "
         "CREATE EXTENSION works)",
         &mode},
        {"batch_size", CONFIG_INT, "1000", "records per transaction", &batch_size},
        {"flush_interval", CONFIG_DURATION, "200ms", "a partial batch waits at most this long",
         &flush_ms},
        {"window", CONFIG_INT, "0", "records delivered ahead of acks; 0 = 4 * batch_size",
         &window},
        {"retry_max", CONFIG_DURATION, "5s",
         "longest wait between retries while PostgreSQL is away", &retry_max_ms},
        {"partition_interval", CONFIG_STRING, "month",
         "day | week | month | year: native partitions (TimescaleDB: chunk interval)",
         &partition_interval},
        {"compress_after", CONFIG_DURATION, "30d",
         "TimescaleDB (timescale license): compress chunks older than this; 0 = never",
         &compress_after_ms},
        {"http", CONFIG_STRING, "127.0.0.1:9104", "/metrics and /health address, empty = off",
         &http},
        {"log_level", CONFIG_STRING, "info", "debug | info | warn | error", &log_level},
        {"log_format", CONFIG_STRING, "kv", "kv | json", &log_format},
        {NULL}};
    //  SIGTERM must drain from the first moment, even while connecting
    zsys_init ();
    config_t *config = config_new ("metricsd", options);
    int rc = config_load (config, argc, argv);
    if (rc) {
        config_destroy (&config);
        return rc < 0 ? 2 : 0;
    }
    if (log_init ("metricsd", log_level, log_format)) {
        fprintf (stderr, "error: metricsd.log_level / log_format: bad value\n");
        config_destroy (&config);
        return 2;
    }
    if (batch_size < 1 || batch_size > 1000000 || window < 0 || window > 100000000
        || flush_ms < 1 || retry_max_ms < 100) {
        fprintf (stderr, "error: metricsd: batch_size must be 1..1000000, window 0..100000000, "
                         "flush_interval >= 1ms, retry_max >= 100ms\n");
        config_destroy (&config);
        return 2;
    }
    pointstore_config_t store_config = {dsn, TSSCHEMA_AUTO, partition_interval,
                                        compress_after_ms};
    if (tsschema_parse_mode (mode, &store_config.mode)) {
        fprintf (stderr, "error: metricsd.mode: '%s' is not auto, native or timescaledb\n", mode);
        config_destroy (&config);
        return 2;
    }
    metrics_t *metrics = metrics_new ("omni_metricsd_");
    char error[512];
    pointstore_t *store = pointstore_new (&store_config, metrics, error, sizeof error);
    if (!store) {
        //  The dsn or a schema setting; the message says which
        fprintf (stderr, "error: metricsd.%s\n", error);
        metrics_destroy (&metrics);
        config_destroy (&config);
        return 2;
    }
    //  A schema that cannot be applied is a start-up error; a server that is
    //  not up yet is not: writes wait for it.
    rc = pointstore_connect (store);
    if (rc < 0) {
        log_error ("metricsd.start_failed", "postgres=\"%s\" detail=\"schema migration failed\"",
                   pointstore_display (store));
        pointstore_destroy (&store);
        metrics_destroy (&metrics);
        config_destroy (&config);
        return 1;
    }
    char schema[256];
    pointstore_describe (store, schema, sizeof schema);
    log_info ("metricsd.start", "postgres=\"%s\" connected=%s %s", pointstore_display (store),
              rc == 0 ? "yes" : "no", schema);
    writer_config_t writer_config = {delivery,
                                     "metrics",
                                     (size_t) batch_size,
                                     flush_ms,
                                     (uint32_t) window,
                                     100,
                                     retry_max_ms};
    writer_t *writer = writer_new (&writer_config, pointstore_write, store, metrics);
    s_health_t health = {writer, store};
    httpd_t *httpd = NULL;
    if (http && *http) {
        httpd = httpd_new (http, metrics, s_healthy, &health);
        if (!httpd) {
            writer_destroy (&writer);
            pointstore_destroy (&store);
            metrics_destroy (&metrics);
            config_destroy (&config);
            return 1;
        }
    }
    rc = writer_run (writer);
    httpd_destroy (&httpd);
    writer_destroy (&writer);
    pointstore_destroy (&store);
    metrics_destroy (&metrics);
    config_destroy (&config);
    return rc ? 1 : 0;
}
