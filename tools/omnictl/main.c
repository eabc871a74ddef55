/*  omnictl: the operator's view of a deployment.

    omnictl status [--targets=NAME=HOST:PORT,...] [--watch] [--interval=2s]
    omnictl keygen PATH [--role=ROLE --clients=DIR]
    omnictl grant ROLE PATTERN [--dsn=...]
    omnictl revoke ROLE PATTERN [--dsn=...]
    omnictl grants [--dsn=...]
    omnictl replay --archive-dir=DIR [--intake=ENDPOINT] [--writer=NAME,...] [filters]
    omnictl rejects [--nats-urls=...] [--reason=R] [--limit=N] [--seq=N [--raw]]

    Prints one table of every daemon (up, health, records/s, lag, errors)
    from their /metrics and /health. Without --watch it exits 0 when every
    daemon is up and healthy, 1 otherwise (for scripts), 2 on a usage error.
    With --watch it redraws the table in place every interval until Ctrl-C,
    then exits 0.
    keygen writes a CURVE certificate: PATH (public) and PATH_secret (0600),
    for ingestd's curve_key and the clients' curve_key (docs/operations.md);
    with --role and --clients it also puts the public half in ingestd's
    clients directory, under the role (collector, tap, writer:NAME).
    grant, revoke and grants manage per-project access in a PostgreSQL
    database of relationald or metricsd (access.h, docs/operations.md):
    0 when done, 1 when PostgreSQL refused or the role or grant is not
    there, 2 on a usage error (a bad pattern or role name).
    rejects reads what ingestd rejected from the rejects stream (journal:
    jetstream; rejects.h).                                                    */
#include "tools/omnictl/access.h"
#include "common/daemon.h"
#include "common/config.h"
#include "proto/curve.h"
#include "common/log.h"
#include "tools/omnictl/export.h"
#include "tools/omnictl/rejects.h"
#include "tools/omnictl/replay.h"
#include "tools/omnictl/status.h"

#include "common/util.h"

#include <curl/curl.h>
#include <limits.h>
#include <stdint.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_TARGETS                                                                            \
    "ingestd=127.0.0.1:9100,archiverd=127.0.0.1:9101,relationald=127.0.0.1:9102,"                  \
    "documentd=127.0.0.1:9103,metricsd=127.0.0.1:9104"

//  Sleeps `ms`, returning early when a signal arrives.
static void
s_sleep_ms (int64_t ms)
{
    struct timespec left = {ms / 1000, (long) (ms % 1000) * 1000000L};
    while (!omni_daemon_stopping () && nanosleep (&left, &left) < 0 && errno == EINTR)
        ;
}

//  One table of --watch. On a terminal: cursor home, each line cleared to
//  its end, then the rest of the screen, so the table is redrawn in place
//  without flicker; elsewhere (a pipe, a log) tables follow each other.
static void
s_print_frame (status_t *status, bool tty, int64_t interval_ms)
{
    char *text = status_render (status);
    time_t now = time (NULL);
    char stamp[32];
    strftime (stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", localtime (&now));
    if (tty) {
        printf ("\033[H");
        for (char *line = text, *eol; *line; line = eol + 1) {
            eol = strchr (line, '\n');
            printf ("%.*s\033[K\n", (int) (eol - line), line);
        }
        printf ("%s, every %.1fs, Ctrl-C to quit\033[K\n\033[J", stamp,
                (double) interval_ms / 1000.0);
    } else
        printf ("%s\n%s\n", stamp, text);
    fflush (stdout);
    free (text);
}

//  grant, revoke, grants: `argc` words from omni_config_arg (0) on
static int
s_access (omni_config_t *config, const char *dsn)
{
    const char *command = omni_config_arg (config, 0);
    bool list = strcmp (command, "grants") == 0;
    if (omni_config_argc (config) != (list ? 1u : 3u)) {
        fprintf (stderr, "error: omnictl %s takes %s\n", command,
                 list ? "no argument" : "two arguments: ROLE PATTERN");
        return 2;
    }
    char error[1024];
    const char *role = list ? NULL : omni_config_arg (config, 1);
    const char *pattern = list ? NULL : omni_config_arg (config, 2);
    if (!list && !access_valid_role (role, error, sizeof error)) {
        fprintf (stderr, "error: omnictl %s: bad role: %s\n", command, error);
        return 2;
    }
    //  A revoke takes the pattern as granted, whatever it is
    if (strcmp (command, "grant") == 0 && !access_valid_pattern (pattern, error, sizeof error)) {
        fprintf (stderr, "error: omnictl grant: bad pattern: %s\n", error);
        return 2;
    }
    //  The errors are reported here, with their hint: not twice by pgconn
    omni_log_init ("omnictl", "error", "kv");
    access_t *access = access_new (dsn, error, sizeof error);
    if (!access) {
        fprintf (stderr, "error: omnictl %s: %s\n", command, error);
        return 1;
    }
    int rc = 0;
    if (list) {
        char *text = access_list (access, error, sizeof error);
        if (text)
            fputs (text, stdout);
        else
            fprintf (stderr, "error: omnictl grants: %s\n", error);
        rc = text ? 0 : 1;
        free (text);
    } else {
        rc = strcmp (command, "grant") == 0
                 ? access_grant (access, role, pattern, error, sizeof error)
                 : access_revoke (access, role, pattern, error, sizeof error);
        if (rc == 0)
            printf ("%s\n", error);
        else
            fprintf (stderr, "error: omnictl %s: %s\n", command, error);
        rc = rc ? 1 : 0;
    }
    access_destroy (&access);
    return rc;
}

//  The filters replay and export share; 0, or 2 after saying what is wrong.
static int
s_filter (const char *command, char **kinds, char **sources, const char *since, const char *until,
          archread_filter_t *filter)
{
    filter->kinds = (const char *const *) kinds;
    filter->sources = (const char *const *) sources;
    filter->since_ns = INT64_MIN;
    filter->until_ns = INT64_MAX;
    if (*since && archread_parse_time (since, &filter->since_ns)) {
        fprintf (stderr,
                 "error: omnictl %s: --since=%s: expected 2024-01-31 or 2024-01-31T12:00:00Z\n",
                 command, since);
        return 2;
    }
    if (*until && archread_parse_time (until, &filter->until_ns)) {
        fprintf (stderr,
                 "error: omnictl %s: --until=%s: expected 2024-01-31 or 2024-01-31T12:00:00Z\n",
                 command, until);
        return 2;
    }
    return 0;
}

static int
s_replay (size_t argc, const char *archive_dir, const char *intake, char **writer, char **kinds,
          char **sources, const char *since, const char *until, const char *state, int64_t give_up,
          int64_t rate, const char *curve_key, const char *curve_server_key)
{
    if (argc != 1 || !*archive_dir) {
        fprintf (stderr, "error: omnictl replay takes --archive-dir=DIR and no argument\n");
        return 2;
    }
    if (rate < 0 || give_up < 0) {
        fprintf (stderr, "error: omnictl replay: --rate and --give-up must be >= 0\n");
        return 2;
    }
    replay_config_t config = {archive_dir, intake, "", {0}, state, NULL, give_up, rate};
    if (s_filter ("replay", kinds, sources, since, until, &config.filter))
        return 2;
    char writers[256] = "";
    for (size_t i = 0, used = 0; writer && writer[i]; i++)
        used += (size_t) snprintf (writers + used, sizeof writers - used, "%s%s", used ? "," : "",
                                   writer[i]);
    config.writers = writers;
    char error[1024];
    omni_curve_client_t *curve = NULL;
    if (omni_curve_client_load (curve_key, curve_server_key, &curve, error, sizeof error)) {
        fprintf (stderr, "error: omnictl replay: %s\n", error);
        return 2;
    }
    config.curve = curve;
    //  One state file per archive and options: two replays never share one
    char *default_state = NULL;
    if (!*state) {
        char real[PATH_MAX], key[PATH_MAX + 2048], hex[17];
        const char *xdg = getenv ("XDG_STATE_HOME"), *home = getenv ("HOME");
        snprintf (key, sizeof key, "%s|%s|%s|%s|%s",
                  realpath (archive_dir, real) ? real : archive_dir, writers, since, until,
                  kinds && kinds[0] ? kinds[0] : "");
        uint64_t hash = 14695981039346656037ULL; //  FNV-1a
        for (const char *p = key; *p; p++)
            hash = (hash ^ (uint8_t) *p) * 1099511628211ULL;
        for (const char *const *s = (const char *const *) sources; s && *s; s++)
            for (const char *p = *s; *p; p++)
                hash = (hash ^ (uint8_t) *p) * 1099511628211ULL;
        snprintf (hex, sizeof hex, "%016llx", (unsigned long long) hash);
        char dir[PATH_MAX];
        if (xdg && *xdg == '/')
            snprintf (dir, sizeof dir, "%s/omniaudit", xdg);
        else
            snprintf (dir, sizeof dir, "%s/.local/state/omniaudit", home && *home ? home : ".");
        omni_util_mkdirs (dir);
        if (asprintf (&default_state, "%s/replay-%s.state", dir, hex) < 0)
            default_state = NULL;
        config.state_path = default_state;
    }
    omni_log_init ("omnictl", "info", "kv");
    //  The first Ctrl-C stops reading and hands over what is in flight
    omni_daemon_catch_signals (true);
    int rc = replay_run (&config);
    free (default_state);
    omni_curve_client_destroy (&curve);
    return rc;
}

static int
s_export (size_t argc, const char *archive_dir, const char *format, const char *output,
          char **kinds, char **sources, const char *since, const char *until)
{
    if (argc != 1 || !*archive_dir) {
        fprintf (stderr, "error: omnictl export takes --archive-dir=DIR and no argument\n");
        return 2;
    }
    export_config_t config = {archive_dir, {0}, EXPORT_JSON, output};
    if (!*format)
        format = "json";
    if (export_format_parse (format, &config.format)) {
        fprintf (stderr, "error: omnictl export: --format=%s: expected json, yaml or csv\n",
                 format);
        return 2;
    }
    if (s_filter ("export", kinds, sources, since, until, &config.filter))
        return 2;
    return export_run (&config);
}

static void
s_usage (FILE *out)
{
    fprintf (out,
             "usage: omnictl status [--targets=NAME=HOST:PORT,...] [--watch] "
             "[--interval=2s] [--sample=1s] [--timeout=1s]\n"
             "       omnictl keygen PATH [--role=collector|tap|writer:NAME --clients=DIR]\n"
             "              (CURVE certificate: PATH and PATH_secret; with --role, its public\n"
             "              half also goes to DIR/<role directory>/, ingestd's curve_clients)\n"
             "       omnictl grant ROLE PATTERN [--dsn=...]   (ROLE reads the sources LIKE "
             "PATTERN)\n"
             "       omnictl revoke ROLE PATTERN [--dsn=...]\n"
             "       omnictl grants [--dsn=...]\n"
             "       omnictl replay --archive-dir=DIR [--intake=tcp://127.0.0.1:5550]\n"
             "              [--writer=relational,document,metrics] [--kind=K,...] "
             "[--source=S,...]\n"
             "              [--since=2024-01-01] [--until=2024-02-01T00:00:00Z] [--state=FILE]\n"
             "              (the archive's records back to the stores, never to the archive)\n"
             "       omnictl export --archive-dir=DIR [--format=json|yaml|csv] [-o FILE|DIR/]\n"
             "              [--kind=K,...] [--source=S,...] [--since=...] [--until=...]\n"
             "              (csv: one kind to FILE or stdout, or a file a kind into DIR/)\n"
             "       omnictl rejects [--nats-urls=nats://HOST:4222,...] [--stream=OMNI] "
             "[--reason=R]\n"
             "              [--limit=100] [--format=text|json] [--seq=N [--raw]]\n"
             "              (journal: jetstream: what ingestd rejected, newest last; --seq: one,\n"
             "              --raw: its bytes alone)\n"
             "       omnictl --help   (every option, its default and environment name)\n");
}

int
main (int argc, char **argv)
{
    char **targets;
    char *dsn;
    bool watch;
    int64_t interval_ms, sample_ms, timeout_ms;
    char *role, *clients;
    char *archive_dir, *intake, *since, *until, *state, *curve_key, *curve_server_key;
    char **writer, **kinds, **sources;
    char *format, *output;
    int64_t give_up, rate;
    char **nats_urls;
    char *stream, *rejects_stream, *reason;
    int64_t seq, limit;
    bool raw;
    const omni_config_option_t options[] = {
        {"targets", CONFIG_LIST, DEFAULT_TARGETS,
         "daemons to show, NAME=HOST:PORT of their /metrics and /health", &targets},
        {"watch", CONFIG_BOOL, "false", "redraw the table every interval until Ctrl-C", &watch},
        {"interval", CONFIG_DURATION, "2s", "time between two tables with --watch", &interval_ms},
        {"sample", CONFIG_DURATION, "1s",
         "without --watch: time between the two scrapes that give rates; 0 = one scrape, no "
         "rates",
         &sample_ms},
        {"timeout", CONFIG_DURATION, "1s", "HTTP timeout per request", &timeout_ms},
        {"role", CONFIG_STRING, "",
         "keygen: the client's role, collector | tap | writer:NAME (with --clients)", &role},
        {"clients", CONFIG_STRING, "",
         "keygen: ingestd's curve_clients directory, where --role puts the public certificate",
         &clients},
        {"archive_dir", CONFIG_STRING, "", "replay, export: archiverd's archive directory",
         &archive_dir},
        {"intake", CONFIG_ENDPOINTS, "tcp://127.0.0.1:5550",
         "replay: ingestd's intake endpoint, or several separated by commas (failover)", &intake},
        {"writer", CONFIG_LIST, "",
         "replay: the writers to fill (relational, document, metrics); empty = every writer "
         "ingestd has but the archive",
         &writer},
        {"kind", CONFIG_LIST, "", "replay, export: only these kinds (empty = all)", &kinds},
        {"source", CONFIG_LIST, "", "replay, export: only these sources (src; empty = all)",
         &sources},
        {"since", CONFIG_STRING, "",
         "replay, export: only records with ts at or after this (2024-01-01 or "
         "2024-01-01T12:00:00Z, UTC)",
         &since},
        {"until", CONFIG_STRING, "", "replay, export: only records with ts before this", &until},
        {"state", CONFIG_STRING, "",
         "replay: the resume file; empty = $XDG_STATE_HOME/omniaudit/replay-<hash of the "
         "archive directory and options>.state",
         &state},
        {"give_up", CONFIG_DURATION, "2m",
         "replay: stop when ingestd acknowledges nothing for this long; 0 = wait forever",
         &give_up},
        {"rate", CONFIG_INT, "0",
         "replay: records per second at most (room for live collection during a rebuild); 0 = "
         "no limit",
         &rate},
        {"curve_key", CONFIG_STRING, "", "replay: CURVE certificate (role collector)", &curve_key},
        {"curve_server_key", CONFIG_STRING, "", "replay: ingestd's public CURVE certificate",
         &curve_server_key},
        {"format", CONFIG_STRING, "",
         "export: json (the archived lines, the default), yaml or csv; rejects: text (the "
         "default) or json (a line each, the bytes in hex)",
         &format},
        {"nats_urls", CONFIG_LIST, "nats://127.0.0.1:4222",
         "rejects: NATS servers of the cluster (ingestd.nats_urls)", &nats_urls},
        {"stream", CONFIG_STRING, "OMNI", "rejects: ingestd.stream, the records' stream", &stream},
        {"rejects_stream", CONFIG_STRING, "",
         "rejects: ingestd.rejects_stream; empty = <stream>_REJECTS", &rejects_stream},
        {"reason", CONFIG_STRING, "",
         "rejects: only this reason (bad_body, not_msgpack, ..., bad_frame); empty = all", &reason},
        {"limit", CONFIG_INT, "100", "rejects: the newest this many", &limit},
        {"seq", CONFIG_INT, "0", "rejects: only the reject with this stream sequence (#N)", &seq},
        {"raw", CONFIG_BOOL, "false", "rejects: with --seq, the input's bytes alone to stdout",
         &raw},
        {"output", CONFIG_STRING, "",
         "export: the file to write (-o FILE); csv: a directory (-o DIR/) for a file a kind; "
         "empty or - = stdout",
         &output},
        {"dsn", CONFIG_STRING, "",
         "grant, revoke, grants: the PostgreSQL database of relationald or metricsd, conninfo "
         "or postgresql:// URI (as the writers take it); empty = the PG* environment",
         &dsn},
        {NULL}};
    //  -o FILE, the one short flag, as --output=FILE
    static char output_flag[PATH_MAX + 16];
    char **args = calloc ((size_t) argc + 1, sizeof *args);
    if (!args)
        return 2;
    int nargs = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp (argv[i], "-o") == 0 && i + 1 < argc) {
            snprintf (output_flag, sizeof output_flag, "--output=%s", argv[++i]);
            args[nargs++] = output_flag;
        } else
            args[nargs++] = argv[i];
    }
    omni_config_t *config = omni_config_new ("omnictl", options);
    int rc = omni_config_load (config, nargs, args);
    free (args);
    if (rc) {
        if (rc == 1)
            s_usage (stdout);
        omni_config_destroy (&config);
        return rc < 0 ? 2 : 0;
    }
    omni_log_init ("omnictl", "warn", "kv");
    const char *command = omni_config_argc (config) > 0 ? omni_config_arg (config, 0) : NULL;
    if (command && strcmp (command, "keygen") == 0) {
        if (omni_config_argc (config) != 2) {
            s_usage (stderr);
            omni_config_destroy (&config);
            return 2;
        }
        char error[1024], placed[4096];
        const char *path = omni_config_arg (config, 1);
        if (!*role != !*clients) {
            fprintf (stderr, "error: omnictl keygen: --role and --clients go together (the "
                             "role says where under the clients directory the key goes)\n");
            omni_config_destroy (&config);
            return 2;
        }
        //  A typo in the role must not leave a key pair behind
        if (*role && !omni_curve_roles_known (role)) {
            fprintf (stderr,
                     "error: omnictl keygen: unknown role \"%s\" (expected collector, tap or "
                     "writer:NAME with NAME archive, relational, document or metrics)\n",
                     role);
            omni_config_destroy (&config);
            return 2;
        }
        rc = omni_curve_keygen (path, error, sizeof error);
        if (rc == 0 && *role &&
            omni_curve_roles_allow (clients, role, path, placed, sizeof placed, error,
                                    sizeof error))
            rc = -1;
        if (rc)
            fprintf (stderr, "error: omnictl keygen: %s\n", error);
        else {
            printf ("wrote %s (public: give it to the other side) and %s_secret (keep it "
                    "private)\n",
                    path, path);
            if (*role)
                printf ("allowed %s as %s: %s\n", path, role, placed);
        }
        omni_config_destroy (&config);
        return rc ? 1 : 0;
    }
    if (command && (strcmp (command, "grant") == 0 || strcmp (command, "revoke") == 0 ||
                    strcmp (command, "grants") == 0)) {
        rc = s_access (config, dsn);
        omni_config_destroy (&config);
        return rc;
    }
    if (command && strcmp (command, "export") == 0) {
        rc = s_export (omni_config_argc (config), archive_dir, format, output, kinds, sources,
                       since, until);
        omni_config_destroy (&config);
        return rc;
    }
    if (command && strcmp (command, "rejects") == 0) {
        bool json = strcmp (format, "json") == 0;
        if (omni_config_argc (config) != 1 || (*format && !json && strcmp (format, "text")) ||
            seq < 0 || limit < 1) {
            fprintf (stderr, "error: omnictl rejects takes no argument, --format=text|json, "
                             "--seq >= 1 and --limit >= 1\n");
            omni_config_destroy (&config);
            return 2;
        }
        rejects_config_t rc_config = {(const char *const *) nats_urls,
                                      stream,
                                      rejects_stream,
                                      reason,
                                      (uint64_t) seq,
                                      (size_t) limit,
                                      json,
                                      raw,
                                      stdout};
        rc = rejects_run (&rc_config);
        omni_config_destroy (&config);
        return rc;
    }
    if (command && strcmp (command, "replay") == 0) {
        rc = s_replay (omni_config_argc (config), archive_dir, intake, writer, kinds, sources,
                       since, until, state, give_up, rate, curve_key, curve_server_key);
        omni_config_destroy (&config);
        return rc;
    }
    if (!command || strcmp (command, "status") != 0 || omni_config_argc (config) > 1) {
        if (command && strcmp (command, "status") != 0)
            fprintf (stderr, "error: unknown command \"%s\"\n", command);
        else if (command)
            fprintf (stderr, "error: unexpected argument \"%s\"\n", omni_config_arg (config, 1));
        s_usage (stderr);
        omni_config_destroy (&config);
        return 2;
    }
    if (interval_ms < 100 || sample_ms < 0 || timeout_ms < 1) {
        fprintf (stderr,
                 "error: omnictl: interval must be >= 100ms, sample >= 0, timeout >= 1ms\n");
        omni_config_destroy (&config);
        return 2;
    }
    curl_global_init (CURL_GLOBAL_DEFAULT);
    char error[512];
    status_t *status = status_new ((const char *const *) targets, timeout_ms, error, sizeof error);
    if (!status) {
        fprintf (stderr, "error: %s\n", error);
        curl_global_cleanup ();
        omni_config_destroy (&config);
        return 2;
    }
    //  No SA_RESTART: Ctrl-C cuts the sleep between two tables short.
    omni_daemon_catch_signals (false);

    if (watch) {
        bool tty = isatty (STDOUT_FILENO);
        if (tty)
            printf ("\033[2J");
        //  The first table at once (its rates need the next sample).
        for (bool first = true; !omni_daemon_stopping (); first = false) {
            if (!first)
                s_sleep_ms (interval_ms);
            if (omni_daemon_stopping ())
                break;
            status_sample (status);
            s_print_frame (status, tty, interval_ms);
        }
        rc = 0;
    } else {
        status_sample (status);
        if (sample_ms > 0 && !omni_daemon_stopping ()) {
            s_sleep_ms (sample_ms);
            status_sample (status);
        }
        char *text = status_render (status);
        fputs (text, stdout);
        free (text);
        rc = omni_daemon_stopping () ? 130 : status_ok (status) ? 0 : 1;
    }
    status_destroy (&status);
    curl_global_cleanup ();
    omni_config_destroy (&config);
    return rc;
}
