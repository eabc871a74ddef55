/*  archiverd: the JSON Lines writer. Takes every record from ingestd's
    delivery socket and stores it once in <archive_dir>/<kind>/<date>.jsonl;
    closed dates go to zstd, old ones go by retention (archive.h).          */
#include "archiverd/archive.h"
#include "common/log.h"
#include "client/writer_daemon.h"

#include <stdio.h>

int
main (int argc, char **argv)
{
    char *archive_dir;
    int64_t compress_after, compress_level, maintenance_interval;
    char **retain;
    const omni_config_option_t options[] = {
        {"archive_dir", CONFIG_STRING, "var/archive",
         "archive directory: <kind>/<YYYY-MM-DD>.jsonl, state in .state/", &archive_dir},
        {"compress_after", CONFIG_DURATION, "7d",
         "files of event dates that ended this long ago become <date>[.N].jsonl.zst; 0 = never",
         &compress_after},
        {"compress_level", CONFIG_INT, "3", "zstd level of cold files (1-19)", &compress_level},
        {"retain", CONFIG_LIST, "",
         "per kind, how long files are kept after their event date: KIND=DURATION or "
         "KIND=forever, *=DURATION for the kinds not named (metric=90d,git.commit=forever); "
         "empty = everything forever",
         &retain},
        {"maintenance_interval", CONFIG_DURATION, "1h",
         "how often compress_after and retain are applied (also at start)", &maintenance_interval},
        {NULL}};
    const omni_writer_daemon_spec_t spec = {
        "archiverd", "archive", "8000", "127.0.0.1:9101", "records per fsync and state commit",
        options};
    int rc;
    omni_writer_daemon_t *daemon = omni_writer_daemon_new (&spec, argc, argv, &rc);
    if (!daemon)
        return rc;
    if (!archive_dir || !*archive_dir) {
        fprintf (stderr, "error: archiverd.archive_dir: must not be empty\n");
        omni_writer_daemon_destroy (&daemon);
        return 2;
    }
    if (compress_level < 1 || compress_level > 19 || maintenance_interval <= 0 ||
        compress_after < 0) {
        fprintf (stderr, "error: archiverd: compress_level must be 1-19, maintenance_interval > "
                         "0, compress_after >= 0\n");
        omni_writer_daemon_destroy (&daemon);
        return 2;
    }
    char error[1024];
    archive_t *archive =
        archive_new (archive_dir, omni_writer_daemon_metrics (daemon), error, sizeof error);
    if (!archive) {
        log_error ("archiverd.start_failed", "error=\"%s\"", error);
        omni_writer_daemon_destroy (&daemon);
        return 1;
    }
    archive_policy_t policy = {compress_after, (int) compress_level, (const char *const *) retain};
    if (archive_set_policy (archive, &policy, error, sizeof error)) {
        fprintf (stderr, "error: archiverd.%s\n", error);
        archive_destroy (&archive);
        omni_writer_daemon_destroy (&daemon);
        return 2;
    }
    if (archive_start_maintenance (archive, maintenance_interval)) {
        log_error ("archiverd.start_failed", "error=\"cannot start the maintenance thread\"");
        archive_destroy (&archive);
        omni_writer_daemon_destroy (&daemon);
        return 1;
    }
    rc = omni_writer_daemon_run (daemon, archive_write, archive, NULL, NULL);
    //  The store first: its threads may still count in the daemon's metrics
    //  (run has already stopped the HTTP server that asks the store)
    archive_destroy (&archive);
    omni_writer_daemon_destroy (&daemon);
    return rc;
}
