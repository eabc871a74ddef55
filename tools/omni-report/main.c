/*  omni-report: audit reports and the live dashboard.

    omni-report html|pdf|json [--source=PATTERN] [--since=TIME] [--until=TIME]
                              [-o FILE | --out-dir=DIR] [--dsn=CONNINFO]
                              [--intake=ENDPOINT]
    omni-report serve --http=HOST:PORT [--dsn=CONNINFO]

    Reads relationald's tables and metricsd's points as the role of the DSN
    and writes one report for the sources whose name matches the LIKE
    pattern. Without -o, the file goes to --out-dir, else to reports/ beside
    the archive (--archive-dir), named after the project and the day; its
    path is printed. `-o -` writes to standard output (html and json).
    With --intake, the report's figures per source also go to ingestd as
    analysis.summary records (analysis.h), after the file is written.
    Exit 0 when written (and sent), 1 when the store could not be read, the
    file written or the records sent, 2 on a usage error. */
#include "common/buf.h"
#include "tools/omni-report/analysis.h"
#include "tools/omni-report/chart.h"
#include "common/daemon.h"
#include "common/config.h"
#include "tools/omni-report/gather.h"
#include "tools/omni-report/htmlout.h"
#include "tools/omni-report/jsonout.h"
#include "common/log.h"
#include "tools/omni-report/pdfout.h"
#include "tools/omni-report/server.h"
#include "common/util.h"

#include <errno.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void
s_usage (FILE *out)
{
    fprintf (out, "usage: omni-report html|pdf|json [--source=PATTERN] [--since=TIME] "
                  "[--until=TIME] [-o FILE | --out-dir=DIR] [--dsn=CONNINFO] [--top=N] "
                  "[--intake=ENDPOINT]\n"
                  "       omni-report serve --http=HOST:PORT [--dsn=CONNINFO]\n"
                  "       omni-report explain [--source=PATTERN] ...   (each query's plan, "
                  "EXPLAIN ANALYZE)\n"
                  "       omni-report --help   (every option, its default and environment name)\n");
}

//  The file name's project part: the last path segment of a source (a
//  repository path or URL), or "all" for a pattern of everything; only
//  characters safe in any file system.
static void
s_slug (const char *project, char *out, size_t size)
{
    const char *base = project;
    size_t len = strlen (project);
    while (len > 1 && project[len - 1] == '/')
        len--;
    //  A repository's git directory is named after its work tree.
    if (len > 4 && strncmp (project + len - 4, ".git", 4) == 0)
        len -= 4;
    while (len > 1 && project[len - 1] == '/')
        len--;
    for (size_t i = 0; i < len; i++)
        if (project[i] == '/' && i + 1 < len)
            base = project + i + 1;
    size_t n = 0;
    for (const char *p = base; p < project + len && n + 1 < size && n < 60; p++) {
        char c = *p;
        bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == '_';
        if (safe || (n && out[n - 1] != '-'))
            out[n++] = safe ? c : '-';
    }
    while (n && (out[n - 1] == '-' || out[n - 1] == '.'))
        n--;
    out[n] = 0;
    if (!n || strcmp (project, "%") == 0)
        snprintf (out, size, "all");
}

//  True when `path` names something other than a regular file (/dev/null, a
//  FIFO, a terminal): the report is then written into it as it is, because
//  the temporary file and rename below would replace the device with a file
//  (as root, /dev/null itself).
static bool
s_is_special (const char *path)
{
    struct stat st;
    return stat (path, &st) == 0 && !S_ISREG (st.st_mode);
}

//  Writes `data` to `path` through a temporary file and a rename, so that a
//  reader never sees half a report.
static int
s_write_file (const char *path, const char *data, size_t size)
{
    if (s_is_special (path)) {
        FILE *file = fopen (path, "wb");
        if (!file)
            return -1;
        bool ok = fwrite (data, 1, size, file) == size;
        return (fclose (file) == 0) && ok ? 0 : -1;
    }
    char tmp[4200];
    snprintf (tmp, sizeof tmp, "%s.tmp.%d", path, (int) getpid ());
    FILE *file = fopen (tmp, "wb");
    if (!file)
        return -1;
    bool ok = fwrite (data, 1, size, file) == size;
    ok = (fclose (file) == 0) && ok;
    if (!ok || rename (tmp, path) != 0) {
        int saved = errno;
        unlink (tmp);
        errno = saved;
        return -1;
    }
    return 0;
}

//  Copies the file at `from` into `path` (a device or FIFO: see s_is_special).
static int
s_copy_file (const char *from, const char *path)
{
    FILE *in = fopen (from, "rb");
    FILE *out = in ? fopen (path, "wb") : NULL;
    bool ok = in && out;
    char chunk[65536];
    size_t n;
    while (ok && (n = fread (chunk, 1, sizeof chunk, in)) > 0)
        ok = fwrite (chunk, 1, n, out) == n;
    ok = ok && !ferror (in);
    if (out)
        ok = (fclose (out) == 0) && ok;
    if (in)
        fclose (in);
    return ok ? 0 : -1;
}

static int
s_serve (const char *http, const server_options_t *options)
{
    //  SIGINT and SIGTERM are blocked before the server's threads start (they
    //  inherit the mask) and taken only inside sigsuspend below. With a
    //  check of the flag then pause (), a signal handled on a server thread,
    //  or between the check and the pause, left this thread paused until a
    //  next signal: serve did not stop.
    sigset_t stop, waiting;
    sigemptyset (&stop);
    sigaddset (&stop, SIGINT);
    sigaddset (&stop, SIGTERM);
    omni_daemon_catch_signals (false);
    pthread_sigmask (SIG_BLOCK, &stop, &waiting);
    sigdelset (&waiting, SIGINT);
    sigdelset (&waiting, SIGTERM);
    char error[512];
    server_t *server = server_new (http, options, error, sizeof error);
    if (!server) {
        fprintf (stderr, "error: omni-report serve: %s\n", error);
        return 1;
    }
    //  The port on stdout, for whoever started us with port 0.
    printf ("listening on http://%.*s:%d/\n", (int) (strrchr (http, ':') - http), http,
            server_port (server));
    fflush (stdout);
    log_info ("report.serve", "http=%s port=%d", http, server_port (server));
    while (!omni_daemon_stopping ())
        sigsuspend (&waiting);
    //  A second signal while requests finish stops at once (s_on_signal)
    pthread_sigmask (SIG_SETMASK, &waiting, NULL);
    server_destroy (&server);
    return 0;
}

int
main (int argc, char **argv)
{
    char *source, *since, *until, *output, *out_dir, *archive_dir, *dsn, *http, *project;
    char *intake, *curve_key, *curve_server_key;
    int64_t top, statement_timeout_ms, connect_timeout_ms, give_up_ms, cache_ms;
    int64_t connections, pool_min_rows;
    bool live;
    const omni_config_option_t options[] = {
        {"source", CONFIG_STRING, "%",
         "sources to report on: a LIKE pattern of their names (% = any text, _ = one "
         "character), or one name",
         &source},
        {"project", CONFIG_STRING, NULL, "what the report calls the project (default: --source)",
         &project},
        {"since", CONFIG_STRING, NULL, "start of the period (a PostgreSQL time, inclusive)",
         &since},
        {"until", CONFIG_STRING, NULL, "end of the period (exclusive)", &until},
        {"output", CONFIG_STRING, NULL, "file to write (-o); - = standard output", &output},
        {"out_dir", CONFIG_STRING, NULL,
         "directory of reports named after project and day (default: reports/ beside the "
         "archive)",
         &out_dir},
        {"archive_dir", CONFIG_STRING, "var/archive", "archiverd's archive_dir", &archive_dir},
        {"dsn", CONFIG_STRING, "",
         "PostgreSQL conninfo or URI; empty = the PG* environment. The report shows what this "
         "role may see",
         &dsn},
        {"top", CONFIG_INT, "10", "rows of the top-N tables (contributors, files, tests)", &top},
        {"statement_timeout", CONFIG_DURATION, "60s", "longest time of one query; 0 = none",
         &statement_timeout_ms},
        {"connect_timeout", CONFIG_DURATION, "5s", "longest wait for PostgreSQL to answer",
         &connect_timeout_ms},
        {"connections", CONFIG_INT, "3",
         "connections a report's statements run on at once, in one snapshot (1 = one after "
         "the other on one connection)",
         &connections},
        {"pool_min_rows", CONFIG_INT, "100000",
         "use those connections from this many rows (the planner's estimate of points, commits, "
         "changed files and test results; 0 = always)",
         &pool_min_rows},
        {"live", CONFIG_BOOL, "false",
         "every figure from the rows themselves, not from relationald's totals nor metricsd's "
         "days kept (the same numbers, slower: to check them)",
         &live},
        {"http", CONFIG_STRING, "127.0.0.1:8180", "serve: HOST:PORT of the dashboard", &http},
        {"cache", CONFIG_DURATION, "0",
         "serve: a report page is served again from memory for this long after it was built "
         "(its generated time says when); 0 = built at every request",
         &cache_ms},
        {"intake", CONFIG_ENDPOINTS, NULL,
         "ingestd intake endpoint (or several, separated by commas: failover): also send the "
         "figures per source as analysis.summary records; unset = do not send",
         &intake},
        {"give_up", CONFIG_DURATION, "30s",
         "fail when ingestd acknowledges nothing for this long (--intake)", &give_up_ms},
        {"curve_key", CONFIG_STRING, "",
         "CURVE: this client's certificate (its _secret file beside it), as collectord's",
         &curve_key},
        {"curve_server_key", CONFIG_STRING, "",
         "CURVE: ingestd's public certificate; empty with curve_key = no security",
         &curve_server_key},
        {NULL}};
    int rc;
    omni_config_t *config =
        omni_daemon_tool_config ("omni-report", options, argc, argv, s_usage, &rc);
    if (!config)
        return rc;
    const char *command = omni_config_argc (config) == 1 ? omni_config_arg (config, 0) : NULL;
    bool html = command && strcmp (command, "html") == 0;
    bool pdf = command && strcmp (command, "pdf") == 0;
    bool json = command && strcmp (command, "json") == 0;
    bool serve = command && strcmp (command, "serve") == 0;
    //  For an operator whose report or dashboard is slow: what each
    //  section's query does with this database's data
    bool explain = command && strcmp (command, "explain") == 0;
    if (!html && !pdf && !json && !serve && !explain) {
        if (command)
            fprintf (stderr, "error: omni-report: unknown command \"%s\"\n", command);
        s_usage (stderr);
        omni_config_destroy (&config);
        return 2;
    }
    if (top < 1 || top > 100000 || statement_timeout_ms < 0 || connect_timeout_ms < 0 ||
        give_up_ms < 0 || cache_ms < 0 || connections < 1 || connections > 5 || pool_min_rows < 0) {
        fprintf (stderr, "error: omni-report: top must be 1..100000, timeouts >= 0, "
                         "connections 1..5, pool_min_rows >= 0\n");
        omni_config_destroy (&config);
        return 2;
    }
    if (serve) {
        server_options_t server_options = {.dsn = dsn,
                                           .statement_timeout_ms = statement_timeout_ms,
                                           .connect_timeout_ms = connect_timeout_ms,
                                           .top = (int) top,
                                           .cache_ms = cache_ms,
                                           .pool_min_rows = pool_min_rows ? pool_min_rows : -1,
                                           .connections = (int) connections};
        rc = s_serve (http, &server_options);
        omni_config_destroy (&config);
        //  The pages drew charts: release cairo's and fontconfig's caches
        //  as the one-shot commands do, so a sanitizer sees no leak
        chart_shutdown ();
        return rc;
    }
    if (pdf && output && strcmp (output, "-") == 0) {
        fprintf (stderr, "error: omni-report: a PDF needs a file (-o FILE)\n");
        omni_config_destroy (&config);
        return 2;
    }

    //  CURVE keys are checked before any work, as a usage error
    omni_curve_client_t *curve = NULL;
    char error[8192];
    if (intake &&
        omni_curve_client_load (curve_key, curve_server_key, &curve, error, sizeof error)) {
        fprintf (stderr, "error: omni-report: %s\n", error);
        omni_config_destroy (&config);
        return 2;
    }
    omni_pgconn_t *conn =
        gather_connect (dsn, statement_timeout_ms, connect_timeout_ms, error, sizeof error);
    model_t *model = NULL;
    if (conn) {
        gather_options_t gather_options = {.pattern = source,
                                           .project = project,
                                           .since = since,
                                           .until = until,
                                           .top = (int) top,
                                           .explain = explain ? stdout : NULL,
                                           .pool_min_rows = pool_min_rows ? pool_min_rows : -1,
                                           .connections = (int) connections,
                                           .live = live};
        model = gather_report (conn, &gather_options, error, sizeof error);
        omni_pgconn_destroy (&conn);
    }
    if (explain && model) {
        model_destroy (&model);
        omni_curve_client_destroy (&curve);
        omni_config_destroy (&config);
        return fflush (stdout) == 0 ? 0 : 1;
    }
    if (!model) {
        fprintf (stderr, "error: omni-report: %s\n", error);
        omni_curve_client_destroy (&curve);
        omni_config_destroy (&config);
        return 1;
    }

    //  Where it goes: -o, else DIR/PROJECT-DAY.EXT.
    char path[4096];
    if (output)
        snprintf (path, sizeof path, "%s", output);
    else {
        char dir[2048];
        if (out_dir)
            snprintf (dir, sizeof dir, "%s", out_dir);
        else {
            char *copy = strdup (archive_dir);
            snprintf (dir, sizeof dir, "%s/reports", dirname (copy));
            free (copy);
        }
        if (omni_util_mkdirs (dir) != 0) {
            fprintf (stderr, "error: omni-report: cannot make %s: %s\n", dir, strerror (errno));
            model_destroy (&model);
            omni_curve_client_destroy (&curve);
            omni_config_destroy (&config);
            return 1;
        }
        char slug[80], day[16];
        s_slug (model_project (model), slug, sizeof slug);
        time_t now = time (NULL);
        struct tm tm;
        gmtime_r (&now, &tm);
        strftime (day, sizeof day, "%Y-%m-%d", &tm);
        snprintf (path, sizeof path, "%s/%s-%s.%s", dir, slug, day,
                  html  ? "html"
                  : pdf ? "pdf"
                        : "json");
    }
    rc = 0;
    if (pdf) {
        //  cairo writes the PDF to a file of its own; into a device it goes
        //  by way of a temporary file in TMPDIR (the device's directory is
        //  not ours to write in)
        bool special = s_is_special (path);
        char tmp[4200];
        if (special)
            snprintf (tmp, sizeof tmp, "%s/omni-report.%d.pdf",
                      getenv ("TMPDIR") ? getenv ("TMPDIR") : "/tmp", (int) getpid ());
        else
            snprintf (tmp, sizeof tmp, "%s.tmp.%d", path, (int) getpid ());
        if (pdfout_render (model, tmp, error, sizeof error) < 0 ||
            (special ? s_copy_file (tmp, path) : rename (tmp, path)) != 0) {
            if (!*error)
                snprintf (error, sizeof error, "cannot write %s: %s", path, strerror (errno));
            unlink (tmp);
            rc = 1;
        } else if (special)
            unlink (tmp);
    } else {
        omni_buf_t buf = {0};
        if (html)
            htmlout_render (model, &buf, NULL, NULL);
        else
            jsonout_render (model, &buf);
        if (strcmp (path, "-") == 0) {
            if (fwrite (buf.data, 1, buf.size, stdout) != buf.size || fflush (stdout) != 0) {
                snprintf (error, sizeof error, "cannot write to standard output");
                rc = 1;
            }
        } else if (s_write_file (path, buf.data, buf.size) != 0) {
            snprintf (error, sizeof error, "cannot write %s: %s", path, strerror (errno));
            rc = 1;
        }
        omni_buf_release (&buf);
    }
    if (rc)
        fprintf (stderr, "error: omni-report: %s\n", error);
    else if (strcmp (path, "-") != 0)
        printf ("%s\n", path);
    //  The report is written either way; its figures are stored when asked
    if (!rc && intake) {
        struct timespec now;
        clock_gettime (CLOCK_REALTIME, &now);
        analysis_config_t analysis = {intake, curve, give_up_ms};
        int sent = analysis_send (model, (int64_t) now.tv_sec * 1000000000 + now.tv_nsec, &analysis,
                                  error, sizeof error);
        if (sent < 0) {
            fprintf (stderr, "error: omni-report: figures not stored: %s\n", error);
            rc = 1;
        } else
            fprintf (stderr, "omni-report: %d analysis.summary records accepted by %s\n", sent,
                     intake);
    }
    omni_curve_client_destroy (&curve);
    model_destroy (&model);
    omni_config_destroy (&config);
    chart_shutdown ();
    return rc;
}
