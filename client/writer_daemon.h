/*  writer_daemon: what every writer daemon's main does the same way: the
    writer's keys (delivery, batch_size, flush_interval, window, retry_max,
    curve_key, curve_server_key, conflicts_dir) next to the store's own, and
    the writer loop, on the skeleton of every daemon (common/daemon.h: http,
    log_level, log_format, logging, metrics, /metrics and /health, signals). */
#ifndef OMNI_WRITER_DAEMON_H
#define OMNI_WRITER_DAEMON_H

#include "common/config.h"
#include "common/daemon.h"
#include "common/httpd.h"
#include "common/metrics.h"
#include "client/writer.h"

typedef struct {
    const char *section;                       //  config section and daemon name, e.g. "archiverd"
    const char *writer;                        //  writer role, e.g. "archive"
    const char *default_batch;                 //  default batch_size
    const char *default_http;                  //  default /metrics /health address
    const char *batch_help;                    //  what one batch is for this store
    const omni_config_option_t *store_options; //  the store's own keys, ends with {NULL}
} omni_writer_daemon_spec_t;

typedef struct _omni_writer_daemon_t omni_writer_daemon_t;

//  Loads the config, starts logging and makes the metrics registry. Returns
//  NULL with *exit_code set: 0 after --help, 2 after a message naming a bad
//  key or value.
omni_writer_daemon_t *omni_writer_daemon_new (const omni_writer_daemon_spec_t *spec, int argc,
                                              char **argv, int *exit_code);
void omni_writer_daemon_destroy (omni_writer_daemon_t **self_p);

omni_metrics_t *omni_writer_daemon_metrics (omni_writer_daemon_t *self);

//  The skeleton under it, for omni_daemon_bad_config and the like.
omni_daemon_t *omni_writer_daemon_base (omni_writer_daemon_t *self);

//  The configured records per batch (a store may size its timeouts by it).
size_t omni_writer_daemon_batch_size (omni_writer_daemon_t *self);

//  Runs the writer loop over the store until the first SIGTERM/SIGINT (the
//  batch in hand is finished; a second signal exits at once, 143 / 130),
//  with /health failing when the writer or (if given) the store is
//  unhealthy. Returns the process exit code.
int omni_writer_daemon_run (omni_writer_daemon_t *self, writer_store_fn *store_fn, void *store,
                            health_fn *store_health, void *store_arg);

void omni_writer_daemon_test (bool verbose);

#endif
