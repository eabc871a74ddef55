/*  metricsd: the time-series writer. Takes the metric, git.commit, ci.build
    and ci.test records from ingestd's delivery socket and stores the points
    derived from them with pointstore.                                       */
#include "common/log.h"
#include "metricsd/pointstore.h"
#include "client/writer_daemon.h"

#include <stdio.h>

int
main (int argc, char **argv)
{
    char *dsn, *mode, *partition_interval;
    int64_t compress_after_ms, retain_ms, connections;
    bool create_database;
    const omni_config_option_t options[] = {
        {"dsn", CONFIG_STRING, "",
         "PostgreSQL conninfo or postgresql:// URI; empty = the PG* environment", &dsn},
        {"mode", CONFIG_STRING, "auto",
         "auto | native | timescaledb: how a new database is set up (auto = TimescaleDB when "
         "the server offers it: packaged, preloaded, creatable; timescaledb = exit 1 if not)",
         &mode},
        {"partition_interval", CONFIG_STRING, "month",
         "day | week | month | year: native partitions (TimescaleDB: chunk interval)",
         &partition_interval},
        {"compress_after", CONFIG_DURATION, "30d",
         "TimescaleDB (timescale license): compress chunks older than this; 0 = never",
         &compress_after_ms},
        {"retain", CONFIG_DURATION, "0",
         "points older than this go, checked at the first batch and then hourly: native "
         "partitions wholly older are dropped, TimescaleDB chunks by drop_chunks; older points "
         "delivered are not written; 0 = kept forever",
         &retain_ms},
        {"connections", CONFIG_INT, "1",
         "PostgreSQL connections a batch of new points is copied over at once (1 to 8), dealt "
         "by series; committed together once every copy went through",
         &connections},
        {"create_database", CONFIG_BOOL, "false",
         "create the dsn's database when it does not exist (the role needs CREATEDB)",
         &create_database},
        {NULL}};
    //  10,000 a batch: PostgreSQL 15 spends about 1.5 ms of CPU on each COPY
    //  whatever its size (its insert buffer's 1,000 tuple slots made and
    //  dropped), which at 1,000 points a batch was a third of its work per
    //  point (docs/performance.md, "Issue 20, eighth pass"). A batch is cut
    //  at flush_interval, so a slow stream waits no longer for it.
    const omni_writer_daemon_spec_t spec = {
        "metricsd", "metrics", "10000", "127.0.0.1:9104", "records per transaction", options};
    int rc;
    omni_writer_daemon_t *daemon = omni_writer_daemon_new (&spec, argc, argv, &rc);
    if (!daemon)
        return rc;
    pointstore_config_t store_config = {
        dsn,       TSSCHEMA_AUTO,    partition_interval, compress_after_ms, create_database,
        retain_ms, (int) connections};
    if (tsschema_parse_mode (mode, &store_config.mode)) {
        fprintf (stderr, "error: metricsd.mode: '%s' is not auto, native or timescaledb\n", mode);
        omni_writer_daemon_destroy (&daemon);
        return 2;
    }
    char error[512];
    pointstore_t *store =
        pointstore_new (&store_config, omni_writer_daemon_metrics (daemon), error, sizeof error);
    if (!store) {
        //  The dsn or a schema setting; the message says which
        fprintf (stderr, "error: metricsd.%s\n", error);
        omni_writer_daemon_destroy (&daemon);
        return 2;
    }
    //  A schema that cannot be applied is a start-up error; a server that is
    //  not up yet is not: writes wait for it.
    rc = pointstore_connect (store);
    if (rc < 0) {
        log_error ("metricsd.start_failed", "postgres=\"%s\" detail=\"schema migration failed\"",
                   pointstore_display (store));
        pointstore_destroy (&store);
        omni_writer_daemon_destroy (&daemon);
        return 1;
    }
    char schema[256];
    pointstore_describe (store, schema, sizeof schema);
    log_info ("metricsd.start", "postgres=\"%s\" connected=%s %s", pointstore_display (store),
              rc == 0 ? "yes" : "no", schema);
    rc = omni_writer_daemon_run (daemon, pointstore_write, store, pointstore_healthy, store);
    //  The store first: its threads may still count in the daemon's metrics
    //  (run has already stopped the HTTP server that asks the store)
    pointstore_destroy (&store);
    omni_writer_daemon_destroy (&daemon);
    return rc;
}
