/*  archiverd: the JSON Lines writer. Takes every record from ingestd's
    delivery socket and stores it once in <archive_dir>/<kind>/<date>.jsonl. */
#include "archive.h"
#include "log.h"
#include "writer_daemon.h"

#include <stdio.h>

int
main (int argc, char **argv)
{
    char *archive_dir;
    const config_option_t options[] = {
        {"archive_dir", CONFIG_STRING, "var/archive",
         "archive directory: <kind>/<YYYY-MM-DD>.jsonl, state in .state/", &archive_dir},
        {NULL}};
    const writer_daemon_spec_t spec = {
        "archiverd", "archive", "8000", "127.0.0.1:9101", "records per fsync and state commit",
        options};
    int rc;
    writer_daemon_t *daemon = writer_daemon_new (&spec, argc, argv, &rc);
    if (!daemon)
        return rc;
    if (!archive_dir || !*archive_dir) {
        fprintf (stderr, "error: archiverd.archive_dir: must not be empty\n");
        writer_daemon_destroy (&daemon);
        return 2;
    }
    char error[1024];
    archive_t *archive =
        archive_new (archive_dir, writer_daemon_metrics (daemon), error, sizeof error);
    if (!archive) {
        log_error ("archiverd.start_failed", "error=\"%s\"", error);
        writer_daemon_destroy (&daemon);
        return 1;
    }
    rc = writer_daemon_run (daemon, archive_write, archive, NULL, NULL);
    writer_daemon_destroy (&daemon);
    archive_destroy (&archive);
    return rc;
}
