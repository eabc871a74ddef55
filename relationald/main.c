/*  relationald: the PostgreSQL writer. Takes the relational kinds from
    ingestd's delivery socket and stores them with relstore.                 */
#include "common/log.h"
#include "relationald/relstore.h"
#include "client/writer_daemon.h"

#include <stdio.h>

int
main (int argc, char **argv)
{
    char *dsn;
    bool create_database;
    const omni_config_option_t options[] = {
        {"dsn", CONFIG_STRING, "",
         "PostgreSQL conninfo or postgresql:// URI; empty = the PG* environment", &dsn},
        {"create_database", CONFIG_BOOL, "false",
         "create the dsn's database when it does not exist (the role needs CREATEDB)",
         &create_database},
        {NULL}};
    //  5,000 a batch: each COPY costs PostgreSQL 15 a fixed ~1.5 ms of CPU
    //  (its insert buffer's tuple slots), and ci.test results went in 30-40 %
    //  faster than at 1,000; 20,000 was no faster (docs/performance.md, "Issue
    //  20, eighth pass"). A batch is cut at flush_interval whatever its size.
    const omni_writer_daemon_spec_t spec = {
        "relationald", "relational", "5000", "127.0.0.1:9102", "records per transaction", options};
    int rc;
    omni_writer_daemon_t *daemon = omni_writer_daemon_new (&spec, argc, argv, &rc);
    if (!daemon)
        return rc;
    char error[512];
    relstore_t *store =
        relstore_new (dsn, omni_writer_daemon_metrics (daemon), error, sizeof error);
    if (!store) {
        fprintf (stderr, "error: relationald.dsn: %s\n", error);
        omni_writer_daemon_destroy (&daemon);
        return 2;
    }
    relstore_set_create_database (store, create_database);
    //  A schema that cannot be applied is a start-up error; a server that is
    //  not up yet is not: writes wait for it.
    rc = relstore_connect (store);
    if (rc < 0) {
        log_error ("relationald.start_failed", "postgres=\"%s\" detail=\"schema migration failed\"",
                   relstore_display (store));
        relstore_destroy (&store);
        omni_writer_daemon_destroy (&daemon);
        return 1;
    }
    log_info ("relationald.start", "postgres=\"%s\" connected=%s", relstore_display (store),
              rc == 0 ? "yes" : "no");
    rc = omni_writer_daemon_run (daemon, relstore_write, store, relstore_healthy, store);
    //  The store first: its threads may still count in the daemon's metrics
    //  (run has already stopped the HTTP server that asks the store)
    relstore_destroy (&store);
    omni_writer_daemon_destroy (&daemon);
    return rc;
}
