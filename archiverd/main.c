/*  archiverd: the JSON Lines writer. Takes every record from ingestd's
    delivery socket and stores it once in <archive_dir>/<kind>/<date>.jsonl. */
#include "archive.h"
#include "config.h"
#include "httpd.h"
#include "log.h"
#include "metrics.h"
#include "writer.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>

int
main (int argc, char **argv)
{
    char *delivery, *archive_dir, *http, *log_level, *log_format;
    int64_t batch_size, window, flush_ms, retry_max_ms;
    const config_option_t options[] = {
        {"delivery", CONFIG_STRING, "tcp://127.0.0.1:5551", "ingestd delivery endpoint",
         &delivery},
        {"archive_dir", CONFIG_STRING, "var/archive",
         "archive directory: <kind>/<YYYY-MM-DD>.jsonl, state in .state/", &archive_dir},
        {"batch_size", CONFIG_INT, "2000", "records per fsync and state commit", &batch_size},
        {"flush_interval", CONFIG_DURATION, "200ms", "a partial batch waits at most this long",
         &flush_ms},
        {"window", CONFIG_INT, "0", "records delivered ahead of acks; 0 = 4 * batch_size",
         &window},
        {"retry_max", CONFIG_DURATION, "5s", "longest wait between retries of a failed write",
         &retry_max_ms},
        {"http", CONFIG_STRING, "127.0.0.1:9101", "/metrics and /health address, empty = off",
         &http},
        {"log_level", CONFIG_STRING, "info", "debug | info | warn | error", &log_level},
        {"log_format", CONFIG_STRING, "kv", "kv | json", &log_format},
        {NULL}};
    //  SIGTERM must drain from the first moment, even during the recovery
    zsys_init ();
    config_t *config = config_new ("archiverd", options);
    int rc = config_load (config, argc, argv);
    if (rc) {
        config_destroy (&config);
        return rc < 0 ? 2 : 0;
    }
    if (log_init ("archiverd", log_level, log_format)) {
        fprintf (stderr, "error: archiverd.log_level / log_format: bad value\n");
        config_destroy (&config);
        return 2;
    }
    if (batch_size < 1 || batch_size > 1000000 || window < 0 || window > 100000000
        || flush_ms < 1 || retry_max_ms < 100 || !archive_dir || !*archive_dir) {
        fprintf (stderr, "error: archiverd: batch_size must be 1..1000000, window 0..100000000, "
                         "flush_interval >= 1ms, retry_max >= 100ms, archive_dir not empty\n");
        config_destroy (&config);
        return 2;
    }
    metrics_t *metrics = metrics_new ("omni_archiverd_");
    char error[1024];
    archive_t *archive = archive_new (archive_dir, metrics, error, sizeof error);
    if (!archive) {
        log_error ("archiverd.start_failed", "error=\"%s\"", error);
        metrics_destroy (&metrics);
        config_destroy (&config);
        return 1;
    }
    writer_config_t writer_config = {delivery,
                                     "archive",
                                     (size_t) batch_size,
                                     flush_ms,
                                     (uint32_t) window,
                                     100,
                                     retry_max_ms};
    writer_t *writer = writer_new (&writer_config, archive_write, archive, metrics);
    httpd_t *httpd = NULL;
    if (http && *http) {
        httpd = httpd_new (http, metrics, writer_healthy, writer);
        if (!httpd) {
            writer_destroy (&writer);
            archive_destroy (&archive);
            metrics_destroy (&metrics);
            config_destroy (&config);
            return 1;
        }
    }
    rc = writer_run (writer);
    httpd_destroy (&httpd);
    writer_destroy (&writer);
    archive_destroy (&archive);
    metrics_destroy (&metrics);
    config_destroy (&config);
    return rc ? 1 : 0;
}
