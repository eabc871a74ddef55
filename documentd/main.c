/*  documentd: the MongoDB writer. Takes the document kinds from ingestd's
    delivery socket and stores every record as a document with docstore.     */
#include "documentd/docstore.h"
#include "common/log.h"
#include "client/writer_daemon.h"

#include <mongoc/mongoc.h>
#include <stdint.h>
#include <stdio.h>

static int
s_main (int argc, char **argv)
{
    char *uri, *database, *write_concern;
    int64_t write_timeout_ms;
    const omni_config_option_t options[] = {
        {"uri", CONFIG_STRING, "mongodb://127.0.0.1:27017",
         "MongoDB URI (credentials and TLS options included; the password is never logged)", &uri},
        {"database", CONFIG_STRING, "omniaudit", "database of the document collections", &database},
        {"write_concern", CONFIG_STRING, "majority",
         "majority | a number of nodes >= 1 | a tag set name; acks wait for it", &write_concern},
        {"write_timeout", CONFIG_DURATION, "10s",
         "how long the write concern may wait (wtimeout), 0 = forever", &write_timeout_ms},
        {NULL}};
    const omni_writer_daemon_spec_t spec = {
        "documentd", "document", "1000", "127.0.0.1:9103", "records per bulk write", options};
    int rc;
    omni_writer_daemon_t *daemon = omni_writer_daemon_new (&spec, argc, argv, &rc);
    if (!daemon)
        return rc;
    if (write_timeout_ms < 0 || write_timeout_ms > INT32_MAX) {
        fprintf (stderr, "error: documentd.write_timeout: must be 0..24d\n");
        omni_writer_daemon_destroy (&daemon);
        return 2;
    }
    char error[512];
    docstore_config_t store_config = {uri, database, write_concern, write_timeout_ms,
                                      omni_writer_daemon_batch_size (daemon)};
    docstore_t *store =
        docstore_new (&store_config, omni_writer_daemon_metrics (daemon), error, sizeof error);
    if (!store) {
        fprintf (stderr, "error: documentd.%s\n", error);
        omni_writer_daemon_destroy (&daemon);
        return 2;
    }
    //  A server that is not up yet, or slow, is not a start-up error: the
    //  indexes are made in the background, the writes retry, and /health
    //  answers from the start.
    docstore_start (store);
    log_info ("documentd.start", "mongodb=\"%s\" database=%s write_concern=%s",
              docstore_display (store), database, write_concern);
    rc = omni_writer_daemon_run (daemon, docstore_write, store, docstore_healthy, store);
    //  The store first: its threads may still count in the daemon's metrics
    //  (run has already stopped the HTTP server that asks the store)
    docstore_destroy (&store);
    omni_writer_daemon_destroy (&daemon);
    return rc;
}

int
main (int argc, char **argv)
{
    mongoc_init ();
    int rc = s_main (argc, argv);
    mongoc_cleanup ();
    return rc;
}
