/*  ingestd: the journal between collectors and writers.                     */
#include "common/daemon.h"
#include "common/log.h"
#include "ingestd/server.h"

#include <stdio.h>
#include <string.h>

int
main (int argc, char **argv)
{
    char *intake, *delivery, *tap, *journal_dir;
    char *curve_key, *curve_clients;
    char **writers;
    char *journal_kind, *stream, *storage, *rejects_stream;
    int64_t rejects_max_age;
    uint64_t rejects_max_bytes;
    char **nats_urls;
    int64_t replicas, duplicate_window, publish_timeout, writer_ack_wait;
    uint64_t journal_max, journal_map_size, max_record;
    int64_t dead_max, dead_retain;
    int64_t max_depth, session_timeout;
    int64_t window_max, batch_records, max_connections, idle_timeout, peer_timeout;
    uint64_t batch_bytes, memory_max, tap_budget;
    const omni_config_option_t options[] = {
        {"intake", CONFIG_ENDPOINT, "tcp://127.0.0.1:5550", "intake ROUTER bind endpoint", &intake},
        {"delivery", CONFIG_ENDPOINT, "tcp://127.0.0.1:5551", "delivery ROUTER bind endpoint",
         &delivery},
        {"tap", CONFIG_ENDPOINT, "tcp://127.0.0.1:5552", "tap XPUB bind endpoint", &tap},
        {"journal", CONFIG_STRING, "lmdb",
         "lmdb | jetstream: where accepted records wait for the writers (jetstream: a NATS "
         "JetStream stream, replicated by its cluster; journal_dir then keeps the dead letters)",
         &journal_kind},
        {"nats_urls", CONFIG_LIST, "",
         "journal: jetstream: NATS servers of the cluster, nats://HOST:PORT,...", &nats_urls},
        {"stream", CONFIG_STRING, "OMNI",
         "journal: jetstream: stream name (subjects <name in lower case>.rec.>), made if missing",
         &stream},
        {"replicas", CONFIG_INT, "3", "journal: jetstream: the stream's replicas (1..5)",
         &replicas},
        {"storage", CONFIG_STRING, "file",
         "journal: jetstream: the stream's storage, file | memory", &storage},
        {"duplicate_window", CONFIG_DURATION, "2m",
         "journal: jetstream: the stream drops a record id it stored this recently",
         &duplicate_window},
        {"publish_timeout", CONFIG_DURATION, "10s",
         "journal: jetstream: an intake round waits this long for the stream's acks, else it "
         "is not acknowledged (collectors resend) and intake pauses",
         &publish_timeout},
        {"writer_ack_wait", CONFIG_DURATION, "30s",
         "journal: jetstream: a record a writer instance took and did not acknowledge goes to "
         "another instance after this (the consumers' ack wait, set when ingestd makes them)",
         &writer_ack_wait},
        {"rejects_stream", CONFIG_STRING, "",
         "journal: jetstream: the stream rejected input also goes to (subjects <name of stream in "
         "lower case>.rejects.<reason>), made if missing; empty = <stream>_REJECTS",
         &rejects_stream},
        {"rejects_max_age", CONFIG_DURATION, "7d",
         "journal: jetstream: rejects older than this leave the rejects stream; 0 = only "
         "rejects_max_bytes bounds it",
         &rejects_max_age},
        {"rejects_max_bytes", CONFIG_SIZE, "1G",
         "journal: jetstream: past this the oldest rejects leave the rejects stream",
         &rejects_max_bytes},
        {"journal_dir", CONFIG_STRING, "var/journal", "journal directory (LMDB)", &journal_dir},
        {"journal_max", CONFIG_SIZE, "1G", "journal size that pauses intake (backpressure)",
         &journal_max},
        {"journal_map_size", CONFIG_SIZE, "0",
         "LMDB map size of the journal; 0 = 2 x journal_max + 1G (set small only to test a "
         "full map)",
         &journal_map_size},
        {"writers", CONFIG_LIST, "archive,relational,document,metrics",
         "writers that must acknowledge a record before it leaves the journal", &writers},
        {"max_record_size", CONFIG_SIZE, "4M", "larger records are rejected", &max_record},
        {"max_depth", CONFIG_INT, "16", "deeper nesting is rejected", &max_depth},
        {"dead_letter_max", CONFIG_INT, "100000", "rejected inputs kept for inspection (a count)",
         &dead_max},
        {"dead_letter_retain", CONFIG_DURATION, "0",
         "dead letters older than this are removed (log and counter); 0 = kept (still bounded "
         "by dead_letter_max)",
         &dead_retain},
        {"writer_session_timeout", CONFIG_DURATION, "5s",
         "a writer name is held by the instance heard from within this long; another instance's "
         "HELLO is refused while it is, and takes over after",
         &session_timeout},
        {"writer_window_max", CONFIG_INT, "100000",
         "a writer's window (records delivered ahead of its ACKs) is capped to this", &window_max},
        {"max_batch_records", CONFIG_INT, "100000",
         "record frames in one intake message; the rest of a larger one is refused and the peer "
         "disconnected",
         &batch_records},
        {"max_batch_bytes", CONFIG_SIZE, "64M",
         "bytes of one intake message; the rest of a larger one is refused and the peer "
         "disconnected",
         &batch_bytes},
        {"max_connections", CONFIG_INT, "0",
         "connections over all three sockets; at the limit the idlest is closed for a new one; "
         "0 = the descriptor limit (raised to its hard limit at start) less a reserve, at most "
         "4096",
         &max_connections},
        {"idle_timeout", CONFIG_DURATION, "10m",
         "intake and delivery connections that sent nothing this long are closed (clients "
         "reconnect when they have something to send)",
         &idle_timeout},
        {"peer_timeout", CONFIG_DURATION, "30s",
         "a connection whose peer is gone without closing it (host down, network cut) is "
         "closed within this (TCP keepalives; TCP_USER_TIMEOUT for data it does not "
         "acknowledge); whole seconds, 2s..1h",
         &peer_timeout},
        {"memory_max", CONFIG_SIZE, "1G",
         "memory budget (anonymous, not the journal's map): from memory_max less a headroom "
         "(an eighth, at least 64M) the connections holding most unread bytes are closed; "
         "their collectors resend",
         &memory_max},
        {"tap_budget", CONFIG_SIZE, "256M",
         "bytes queued at most for one tap subscriber that does not read (it holds 10000 "
         "messages): records larger than tap_budget/10000 are not published on the tap (counted)",
         &tap_budget},
        {"curve_key", CONFIG_STRING, "",
         "CURVE: ingestd's certificate (PATH and PATH_secret, omnictl keygen); empty = no "
         "security",
         &curve_key},
        {"curve_clients", CONFIG_STRING, "",
         "CURVE: directory of the clients' public certificates, one subdirectory per role: "
         "collector/ (intake), tap/, writer/NAME/ (delivery as writer NAME); required with "
         "curve_key",
         &curve_clients},
        {NULL}};
    const omni_daemon_spec_t spec = {
        .name = "ingestd", .options = options, .default_http = "127.0.0.1:9100"};
    int rc;
    omni_daemon_t *daemon = omni_daemon_new (&spec, argc, argv, &rc);
    if (!daemon)
        return rc;
    char error[1024] = "";
    if (dead_max < 0)
        snprintf (error, sizeof error, "dead_letter_max: %lld is negative", (long long) dead_max);
    if (max_depth < 2 || max_depth > 64)
        snprintf (error, sizeof error, "max_depth: %lld is outside 2..64", (long long) max_depth);
    //  The kernel takes whole seconds for its keepalive probes (route.c)
    if (peer_timeout < 2000 || peer_timeout > 3600000 || peer_timeout % 1000)
        snprintf (error, sizeof error, "peer_timeout: must be whole seconds, 2s..1h");
    const char *bad =
        *error ? error
        //  Writers ACK every second: less would hand a live writer's name away.
        : session_timeout < 2000                   ? "writer_session_timeout: must be at least 2s"
        : window_max < 1 || window_max > 100000000 ? "writer_window_max: must be 1..100000000"
        : batch_records < 1 || batch_records > 10000000 ? "max_batch_records: must be 1..10000000"
        : batch_bytes < max_record      ? "max_batch_bytes: must be at least max_record_size"
        : max_connections < 0           ? "max_connections: must not be negative"
        : idle_timeout < 1000           ? "idle_timeout: must be at least 1s"
        : memory_max < (128 << 20)      ? "memory_max: must be at least 128M"
        : tap_budget < (1 << 20)        ? "tap_budget: must be at least 1M"
        : !*curve_key && *curve_clients ? "curve_key: required when curve_clients is set"
                                        : NULL;
    bool jetstream = strcmp (journal_kind, "jetstream") == 0;
    bad = bad                                           ? bad
          : !jetstream && strcmp (journal_kind, "lmdb") ? "journal: must be lmdb or jetstream"
          : strcmp (storage, "file") && strcmp (storage, "memory")
              ? "storage: must be file or memory"
          : jetstream && !nats_urls[0] ? "nats_urls: required with journal: jetstream"
          : publish_timeout < 100      ? "publish_timeout: must be at least 100ms"
          : writer_ack_wait < 1000     ? "writer_ack_wait: must be at least 1s"
          : rejects_max_bytes < 1      ? "rejects_max_bytes: must be above 0"
          : rejects_max_age < 0        ? "rejects_max_age: must not be negative"
                                       : NULL;
    omni_curve_server_t *curve = NULL;
    if (!bad && *curve_key) {
        curve = omni_curve_server_new (curve_key, curve_clients, omni_daemon_metrics (daemon),
                                       error, sizeof error);
        bad = curve ? NULL : error;
        if (curve)
            log_info ("ingestd.curve", "key=%s clients=%s", curve_key, curve_clients);
    }
    if (bad) {
        rc = omni_daemon_bad_config (daemon, "%s", bad);
        omni_daemon_destroy (&daemon);
        return rc;
    }
    //  journal: jetstream: the stream and the writers' consumers, made or
    //  checked before the first record (jsjournal.h)
    jsjournal_t *js = NULL;
    jsrejects_t *rejects = NULL;
    if (jetstream) {
        jsjournal_config_t js_config = {(const char *const *) nats_urls,
                                        stream,
                                        (int) replicas,
                                        strcmp (storage, "memory") == 0,
                                        duplicate_window,
                                        publish_timeout,
                                        max_record,
                                        writer_ack_wait,
                                        (const char *const *) writers};
        jsjournal_failure_t failure;
        if (!(js = jsjournal_new (&js_config, &failure, error, sizeof error))) {
            fprintf (stderr, "error: ingestd: journal: jetstream: %s\n", error);
            omni_curve_server_destroy (&curve);
            omni_daemon_destroy (&daemon);
            //  a stream or consumer with other settings is a configuration error
            return failure == JSJOURNAL_MISMATCH ? OMNI_EXIT_USAGE : OMNI_EXIT_FAILURE;
        }
        jsjournal_metrics (js, omni_daemon_metrics (daemon));
        jsrejects_config_t rejects_config = {stream,           rejects_stream,
                                             (int) replicas,   strcmp (storage, "memory") == 0,
                                             rejects_max_age,  (int64_t) rejects_max_bytes,
                                             duplicate_window, publish_timeout,
                                             max_record};
        if (!(rejects = jsrejects_new (jsjournal_connection (js), &rejects_config, &failure, error,
                                       sizeof error))) {
            fprintf (stderr, "error: ingestd: journal: jetstream: %s\n", error);
            jsjournal_destroy (&js);
            omni_curve_server_destroy (&curve);
            omni_daemon_destroy (&daemon);
            return failure == JSJOURNAL_MISMATCH ? OMNI_EXIT_USAGE : OMNI_EXIT_FAILURE;
        }
        jsrejects_metrics (rejects, omni_daemon_metrics (daemon));
    }
    server_config_t server_config = {intake,
                                     delivery,
                                     tap,
                                     journal_dir,
                                     journal_max,
                                     (uint64_t) dead_max,
                                     (const char *const *) writers,
                                     {max_record, (size_t) max_depth},
                                     curve,
                                     session_timeout,
                                     journal_map_size,
                                     dead_retain,
                                     (uint32_t) window_max,
                                     (size_t) batch_records,
                                     batch_bytes,
                                     (size_t) max_connections,
                                     idle_timeout,
                                     peer_timeout,
                                     memory_max,
                                     tap_budget,
                                     js,
                                     rejects};
    server_t *server =
        server_new (&server_config, omni_daemon_metrics (daemon), error, sizeof error);
    if (!server)
        log_error ("ingestd.start_failed", "error=\"%s\"", error);
    rc = !server || omni_daemon_serve (daemon, server_healthy, server) ? OMNI_EXIT_FAILURE
                                                                       : server_run (server);
    omni_daemon_serve_end (daemon);
    server_destroy (&server);
    omni_curve_server_destroy (&curve);
    jsrejects_destroy (&rejects); //  on the journal's connection: first
    jsjournal_destroy (&js);
    omni_daemon_destroy (&daemon);
    return rc;
}
