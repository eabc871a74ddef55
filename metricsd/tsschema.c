/*  tsschema: chooses the mode, applies the migrations of that mode, then
    the views (and, under TimescaleDB's timescale license, the rollups and
    the compression policy), all in one transaction under migrate's lock. */
#include "metricsd/tsschema.h"
#include "common/log.h"
#include "pg/migrate.h"
#include "pg/shared_sql.h"
#include "metricsd/sql.h"
#include "common/util.h"
#include "testsupport/pgtest.h"
#include "testsupport/selftest.h"

#include <assert.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

//  "OmniMet1": the advisory lock key of metricsd's migrations
#define S_LOCK_KEY 5723352100006884401LL

//  Version 2 is shared with relationald (pg/sql/access.sql): the two may
//  migrate one database or two, and either way it is there once.
static const omni_migrate_step_t s_steps_native[] = {{1, "points", sql_points_native},
                                                     {2, "access", omni_shared_sql_access},
                                                     {3, "points_access", sql_access_native},
                                                     {4, "series", sql_series_native},
                                                     {5, "points_view", sql_points_view},
                                                     {6, "series_view", sql_series_view},
                                                     {7, "host_daily", sql_host_daily},
                                                     {8, "host_daily_epoch", sql_host_daily_epoch},
                                                     {0, NULL, NULL}};
static const omni_migrate_step_t s_steps_timescaledb[] = {
    {1, "points", sql_points_timescaledb},
    {2, "access", omni_shared_sql_access},
    {3, "points_access", sql_access_timescaledb},
    {4, "series", sql_series_timescaledb},
    {5, "points_view", sql_points_view},
    {6, "series_view", sql_series_view},
    {7, "host_daily", sql_host_daily},
    {8, "host_daily_epoch", sql_host_daily_epoch},
    {0, NULL, NULL}};

int
tsschema_parse_mode (const char *text, tsschema_mode_t *mode)
{
    static const char *names[] = {"auto", "native", "timescaledb"};
    for (int i = 0; i < 3; i++)
        if (text && strcmp (text, names[i]) == 0) {
            *mode = (tsschema_mode_t) i;
            return 0;
        }
    return -1;
}

const char *
tsschema_mode_name (tsschema_mode_t mode)
{
    return mode == TSSCHEMA_NATIVE        ? "native"
           : mode == TSSCHEMA_TIMESCALEDB ? "timescaledb"
                                          : "auto";
}

bool
tsschema_valid_interval (const char *unit)
{
    return unit && (strcmp (unit, "day") == 0 || strcmp (unit, "week") == 0 ||
                    strcmp (unit, "month") == 0 || strcmp (unit, "year") == 0);
}

typedef struct {
    const tsschema_config_t *config;
    tsschema_state_t *state;
} s_ctx_t;

//  metricsd_settings may not exist yet: ask the catalog first, so no
//  statement fails (a failed statement would end the transaction).
static int
s_stored_mode (omni_pgconn_t *conn, char *mode, size_t size)
{
    char exists[8];
    if (omni_pgconn_scalar (conn, "SELECT to_regclass ('metricsd_settings') IS NOT NULL", 0, NULL,
                            exists, sizeof exists))
        return -1;
    *mode = 0;
    if (strcmp (exists, "t"))
        return 0;
    return omni_pgconn_scalar (conn, "SELECT value FROM metricsd_settings WHERE key = 'mode'", 0,
                               NULL, mode, size);
}

//  ---------------------------------------------------------------------------
//  Can this server give TimescaleDB? Decided from catalog facts before any
//  CREATE EXTENSION: without the preload, TimescaleDB's loader ends the
//  session with FATAL ("extension timescaledb must be preloaded"), which no
//  savepoint catches. The decision is a pure function of the facts, so the
//  self-test covers it on a server without TimescaleDB.

typedef struct {
    bool installed;            //  pg_extension: created in this database
    bool available;            //  pg_available_extensions: packaged on the server
    const char *preload;       //  shared_preload_libraries; NULL: this role may not read it
    bool loader;               //  the loader's own GUC is defined, so the loader is loaded
    bool without_preload;      //  timescaledb.allow_install_without_preload = on
    bool superuser;            //  the current role
    bool trusted;              //  the extension's control file says trusted
    bool create_privilege;     //  CREATE on this database (what a trusted extension needs)
    bool create_ended_session; //  an earlier CREATE EXTENSION ended the session
} s_offer_t;

typedef enum {
    S_NATIVE, //  native partitions
    S_USE,    //  TimescaleDB, already created
    S_CREATE, //  CREATE EXTENSION, then TimescaleDB
    S_REFUSE  //  a permanent start-up error
} s_choice_t;

typedef struct {
    s_choice_t choice;
    const char *why; //  for a fallback or a refusal: the cause and what to do
    bool warn;       //  a fallback worth a warning: TimescaleDB is packaged here
} s_decision_t;

#define S_HOW_PRELOAD                                                                              \
    "add timescaledb to shared_preload_libraries in postgresql.conf (keep the other entries) "     \
    "and restart PostgreSQL"

static const char *s_why_not_packaged =
    "timescaledb is not packaged on this server (not in pg_available_extensions): install "
    "TimescaleDB for this PostgreSQL version, " S_HOW_PRELOAD;
static const char *s_why_not_preloaded =
    "timescaledb is packaged but not preloaded (CREATE EXTENSION would end the session with "
    "FATAL 'must be preloaded'): " S_HOW_PRELOAD;
static const char *s_why_session_ended =
    "CREATE EXTENSION timescaledb ended the session (FATAL: not preloaded?): " S_HOW_PRELOAD;
static const char *s_why_no_privilege =
    "timescaledb is not created in this database and this role may not create it: run CREATE "
    "EXTENSION timescaledb in this database as a superuser, or give metricsd such a role";
static const char *s_why_stored_unusable =
    "this database was set up with TimescaleDB (metricsd_settings.mode), which this server does "
    "not offer now (not packaged, not preloaded or not created): " S_HOW_PRELOAD
    ", or use another database";

//  Whether one shared_preload_libraries entry names TimescaleDB's loader.
//  As tolerant as the server: a directory ($libdir/...), a file suffix, a
//  version suffix (timescaledb-2.14.2), quotes left in by hand, any case.
static bool
s_preload_entry_is_timescaledb (const char *entry, size_t len)
{
    while (len && (*entry == ' ' || *entry == '\t' || *entry == '"' || *entry == '\'')) {
        entry++;
        len--;
    }
    while (len && (entry[len - 1] == ' ' || entry[len - 1] == '\t' || entry[len - 1] == '"' ||
                   entry[len - 1] == '\''))
        len--;
    for (size_t i = len; i > 0; i--)
        if (entry[i - 1] == '/' || entry[i - 1] == '\\') {
            entry += i;
            len -= i;
            break;
        }
    static const char *suffixes[] = {".so", ".dylib", ".dll", NULL};
    for (int i = 0; suffixes[i]; i++) {
        size_t n = strlen (suffixes[i]);
        if (len > n && strncasecmp (entry + len - n, suffixes[i], n) == 0) {
            len -= n;
            break;
        }
    }
    static const char name[] = "timescaledb";
    size_t n = sizeof name - 1;
    return len >= n && strncasecmp (entry, name, n) == 0 && (len == n || entry[n] == '-');
}

//  Whether a shared_preload_libraries value (a comma-separated list, items
//  maybe double-quoted) holds TimescaleDB's loader.
static bool
s_preload_has_timescaledb (const char *list)
{
    if (!list)
        return false;
    const char *item = list;
    bool quoted = false;
    for (const char *c = list;; c++) {
        if (*c == '"')
            quoted = !quoted;
        else if (*c == 0 || (*c == ',' && !quoted)) {
            if (s_preload_entry_is_timescaledb (item, (size_t) (c - item)))
                return true;
            if (*c == 0)
                return false;
            item = c + 1;
        }
    }
}

static bool
s_preloaded (const s_offer_t *offer)
{
    return offer->without_preload || offer->loader || s_preload_has_timescaledb (offer->preload);
}

//  What to do for `want` (AUTO or TIMESCALEDB) on a database whose stored
//  mode is `stored` (AUTO: none yet; NATIVE is decided before).
static s_decision_t
s_decide (tsschema_mode_t want, tsschema_mode_t stored, const s_offer_t *offer)
{
    if (stored == TSSCHEMA_TIMESCALEDB) {
        //  Never converted: without TimescaleDB every statement on points fails
        if (offer->installed && offer->available && s_preloaded (offer))
            return (s_decision_t){S_USE, NULL, false};
        return (s_decision_t){S_REFUSE, s_why_stored_unusable, false};
    }
    const char *why = NULL;
    if (!offer->available)
        why = s_why_not_packaged;
    else if (!s_preloaded (offer))
        why = s_why_not_preloaded;
    else if (offer->installed)
        return (s_decision_t){S_USE, NULL, false};
    else if (offer->create_ended_session)
        why = s_why_session_ended;
    else if (!offer->superuser && !(offer->trusted && offer->create_privilege))
        why = s_why_no_privilege;
    else
        return (s_decision_t){S_CREATE, NULL, false};
    if (want == TSSCHEMA_TIMESCALEDB)
        return (s_decision_t){S_REFUSE, why, false};
    return (s_decision_t){S_NATIVE, why, offer->available};
}

//  The facts of s_offer_t in one query that cannot fail: pg_settings hides
//  shared_preload_libraries from a role that may not read it (NULL then),
//  where current_setting () would raise an error and end the transaction.
//  The loader defines timescaledb.disable_load as a bool; a value set by
//  hand without the loader is a string placeholder.
static PGresult *
s_read_offer (omni_pgconn_t *conn, s_offer_t *offer)
{
    PGresult *result = omni_pgconn_query (
        conn,
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'), "
        "EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'), "
        "(SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries'), "
        "EXISTS (SELECT 1 FROM pg_settings WHERE name = 'timescaledb.disable_load' "
        "        AND vartype = 'bool'), "
        "coalesce (current_setting ('timescaledb.allow_install_without_preload', true), '') "
        "        = 'on', "
        "coalesce ((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false), "
        "coalesce ((SELECT v.trusted FROM pg_available_extension_versions v "
        "           JOIN pg_available_extensions a ON a.name = v.name "
        "           AND a.default_version = v.version WHERE v.name = 'timescaledb'), false), "
        "has_database_privilege (current_database (), 'CREATE')",
        0, NULL);
    if (!result)
        return NULL;
    assert (PQntuples (result) == 1);
#define S_BOOL(col) (strcmp (PQgetvalue (result, 0, col), "t") == 0)
    offer->installed = S_BOOL (0);
    offer->available = S_BOOL (1);
    offer->preload = PQgetisnull (result, 0, 2) ? NULL : PQgetvalue (result, 0, 2);
    offer->loader = S_BOOL (3);
    offer->without_preload = S_BOOL (4);
    offer->superuser = S_BOOL (5);
    offer->trusted = S_BOOL (6);
    offer->create_privilege = S_BOOL (7);
#undef S_BOOL
    return result; //  holds offer->preload
}

//  Decides the mode (see tsschema.h) and returns the steps of that mode.
static const omni_migrate_step_t *
s_plan_mode (omni_pgconn_t *conn, void *arg)
{
    s_ctx_t *ctx = arg;
    tsschema_mode_t want = ctx->config->want;
    tsschema_state_t *state = ctx->state;
    char stored[32];
    tsschema_mode_t stored_mode = TSSCHEMA_AUTO;
    if (s_stored_mode (conn, stored, sizeof stored))
        return NULL;
    if (*stored) {
        if (tsschema_parse_mode (stored, &stored_mode) || stored_mode == TSSCHEMA_AUTO) {
            log_error ("schema.bad_mode",
                       "stored=\"%s\" detail=\"metricsd_settings.mode is "
                       "neither native nor timescaledb\"",
                       stored);
            return NULL;
        }
        if (want != TSSCHEMA_AUTO && want != stored_mode) {
            log_error ("schema.mode_conflict",
                       "wanted=%s database=%s detail=\"the database was "
                       "set up in the other mode; metricsd does not convert it (set mode=auto "
                       "or use another database)\"",
                       tsschema_mode_name (want), stored);
            return NULL;
        }
    }
    if (stored_mode == TSSCHEMA_NATIVE || (!*stored && want == TSSCHEMA_NATIVE)) {
        state->mode = TSSCHEMA_NATIVE;
        return s_steps_native;
    }
    s_offer_t offer;
    PGresult *facts = s_read_offer (conn, &offer);
    if (!facts)
        return NULL;
    offer.create_ended_session = ctx->config->skip_create;
    s_decision_t decision = s_decide (want, stored_mode, &offer);
    log_debug ("schema.timescaledb_offer",
               "installed=%d available=%d preload=\"%s\" loader=%d superuser=%d trusted=%d",
               offer.installed, offer.available, offer.preload ? offer.preload : "(hidden)",
               offer.loader, offer.superuser, offer.trusted);
    PQclear (facts);
    if (decision.choice == S_CREATE) {
        //  The catalog says it can work; a refusal with an ERROR is caught
        //  by the savepoint, a session that ends anyway is reported to the
        //  caller, which reconnects and decides again without trying.
        if (omni_pgconn_exec (conn, "SAVEPOINT ext") != PGCONN_OK)
            return NULL;
        if (omni_pgconn_exec (conn, "CREATE EXTENSION IF NOT EXISTS timescaledb") == PGCONN_OK) {
            if (omni_pgconn_exec (conn, "RELEASE SAVEPOINT ext") != PGCONN_OK)
                return NULL;
            decision.choice = S_USE;
        } else if (!omni_pgconn_handle (conn)) {
            state->create_ended_session = true;
            log_warn ("schema.timescaledb_session_ended",
                      "error=\"%s\" detail=\"CREATE EXTENSION timescaledb ended the session; "
                      "reconnecting to decide without it\"",
                      omni_pgconn_error (conn));
            return NULL;
        } else {
            log_warn ("schema.timescaledb_refused",
                      "error=\"%s\" detail=\"the extension is packaged but CREATE EXTENSION "
                      "failed\"",
                      omni_pgconn_error (conn));
            if (omni_pgconn_exec (conn, "ROLLBACK TO SAVEPOINT ext") != PGCONN_OK)
                return NULL;
            decision.choice = want == TSSCHEMA_TIMESCALEDB ? S_REFUSE : S_NATIVE;
            decision.why = "CREATE EXTENSION timescaledb failed (see schema.timescaledb_refused)";
            decision.warn = true;
        }
    }
    switch (decision.choice) {
    case S_USE: state->mode = TSSCHEMA_TIMESCALEDB; return s_steps_timescaledb;
    case S_NATIVE:
        if (decision.warn)
            log_warn ("schema.timescaledb_unavailable", "mode=auto using=native reason=\"%s\"",
                      decision.why);
        else
            log_info ("schema.timescaledb_unavailable", "mode=auto using=native reason=\"%s\"",
                      decision.why);
        state->mode = TSSCHEMA_NATIVE;
        return s_steps_native;
    default:
        snprintf (state->problem, sizeof state->problem, "%s", decision.why);
        log_error ("schema.no_timescaledb", "mode=%s permanent=yes reason=\"%s\"",
                   *stored ? stored : tsschema_mode_name (want), decision.why);
        return NULL;
    }
}

//  Applies `sqls` (NULL-terminated) when their checksum differs from the
//  one stored under `key`, then stores it.
static int
s_apply_repeatable (omni_pgconn_t *conn, const char *key, const char *const *sqls)
{
    size_t total = 0;
    for (const char *const *s = sqls; *s; s++)
        total += strlen (*s) + 1;
    char *all = malloc (total);
    assert (all);
    char *at = all;
    for (const char *const *s = sqls; *s; s++) {
        size_t len = strlen (*s) + 1; //  with the NUL, so the split is part of the sum
        memcpy (at, *s, len);
        at += len;
    }
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256 ((const unsigned char *) all, total, digest);
    free (all);
    char hex[2 * SHA256_DIGEST_LENGTH + 1], stored[2 * SHA256_DIGEST_LENGTH + 1];
    omni_util_hex (digest, SHA256_DIGEST_LENGTH, hex);
    const char *params[] = {key, hex};
    if (omni_pgconn_scalar (conn, "SELECT value FROM metricsd_settings WHERE key = $1", 1, params,
                            stored, sizeof stored))
        return -1;
    if (strcmp (stored, hex) == 0)
        return 0;
    for (const char *const *s = sqls; *s; s++)
        if (omni_pgconn_exec (conn, *s) != PGCONN_OK) {
            log_error ("schema.views_failed", "key=%s error=\"%s\"", key, omni_pgconn_error (conn));
            return -1;
        }
    PGresult *result =
        omni_pgconn_query (conn,
                           "INSERT INTO metricsd_settings (key, value) VALUES ($1, $2) "
                           "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                           2, params);
    if (!result)
        return -1;
    PQclear (result);
    log_info ("schema.views_applied", "key=%s", key);
    return 0;
}

static const char *
s_chunk_interval (const char *unit)
{
    //  Chunks have a fixed length: months and years are approximated
    if (strcmp (unit, "day") == 0)
        return "1 day";
    if (strcmp (unit, "week") == 0)
        return "7 days";
    if (strcmp (unit, "year") == 0)
        return "365 days";
    return "30 days";
}

//  ---------------------------------------------------------------------------
//  A license that cannot serve what the database holds. Compressed chunks
//  (writes into them decompress, a TSL function) and continuous aggregates
//  (their invalidation trigger on points is a TSL function) need the
//  timescale license: under apache, writes fail whatever the retry. Pure,
//  for the self-test; writes the problem into `out` ("" when none).

#define S_DECOMPRESS_SQL                                                                           \
    "SELECT remove_compression_policy ('points_data', if_exists => true); SELECT "                 \
    "decompress_chunk (c, if_compressed => true) FROM show_chunks ('points_data') c;"

static void
s_license_problem (const char *license, long compressed, long aggregates, char *out, size_t size)
{
    *out = 0;
    if (strcmp (license, "timescale") == 0 || (compressed <= 0 && aggregates <= 0))
        return;
    if (compressed > 0)
        snprintf (out, size,
                  "license=%s but %ld chunks of points_data are compressed: writes into them fail "
                  "(permanent). Set timescaledb.license = 'timescale' and restart PostgreSQL, "
                  "or under the timescale license run: " S_DECOMPRESS_SQL,
                  *license ? license : "unknown", compressed);
    else
        snprintf (out, size,
                  "license=%s but points_data has %ld continuous aggregates, whose invalidation "
                  "trigger needs the timescale license: every write fails (permanent). Set "
                  "timescaledb.license = 'timescale' and restart PostgreSQL, or drop them: DROP "
                  "MATERIALIZED VIEW points_daily, points_weekly;",
                  *license ? license : "unknown", aggregates);
}

//  The compression policy at start-up: kept when it already says what the
//  configuration says, so its job id and history survive restarts.
typedef enum {
    S_POLICY_NONE,   //  no policy wanted, none there
    S_POLICY_KEEP,   //  the job there has the wanted compress_after
    S_POLICY_ADD,    //  none there
    S_POLICY_REMOVE, //  compress_after = 0 and a job is there
    S_POLICY_REPLACE //  a job with other settings (or several)
} s_policy_t;

//  `jobs`: policy_compression jobs of points; `job_after_ms`: the one
//  job's config compress_after (-1 when not an interval).
static s_policy_t
s_policy_plan (long jobs, int64_t job_after_ms, int64_t want_ms)
{
    if (want_ms <= 0)
        return jobs > 0 ? S_POLICY_REMOVE : S_POLICY_NONE;
    if (jobs == 0)
        return S_POLICY_ADD;
    return jobs == 1 && job_after_ms == want_ms ? S_POLICY_KEEP : S_POLICY_REPLACE;
}

static int
s_compression_policy (omni_pgconn_t *conn, s_ctx_t *ctx)
{
    int64_t want_ms = ctx->config->compress_after_ms;
    //  compress_after is an interval's text in the job's config for a
    //  timestamptz hypertable (integers are for integer time columns)
    PGresult *result = omni_pgconn_query (
        conn,
        "SELECT count (*), min (job_id), min (CASE WHEN jsonb_typeof (config->'compress_after') "
        "= 'string' THEN round (extract (epoch FROM (config->>'compress_after')::interval) * "
        "1000)::int8 END) FROM timescaledb_information.jobs WHERE proc_name = "
        "'policy_compression' AND hypertable_schema = current_schema () AND hypertable_name = "
        "'points_data'",
        0, NULL);
    if (!result)
        return -1;
    long jobs = atol (PQgetvalue (result, 0, 0));
    char job_id[32];
    snprintf (job_id, sizeof job_id, "%s", PQgetvalue (result, 0, 1));
    int64_t job_after_ms =
        PQgetisnull (result, 0, 2) ? -1 : (int64_t) strtoll (PQgetvalue (result, 0, 2), NULL, 10);
    PQclear (result);
    s_policy_t plan = s_policy_plan (jobs, job_after_ms, want_ms);
    if (plan == S_POLICY_NONE)
        return 0;
    if (plan == S_POLICY_KEEP) {
        ctx->state->compression = true;
        log_debug ("schema.compression_kept", "job_id=%s compress_after_ms=%lld", job_id,
                   (long long) want_ms);
        return 0;
    }
    if (plan == S_POLICY_REMOVE || plan == S_POLICY_REPLACE) {
        result = omni_pgconn_query (
            conn, "SELECT remove_compression_policy ('points_data', if_exists => true)", 0, NULL);
        if (!result)
            return -1;
        PQclear (result);
        log_info ("schema.compression_removed", "job_id=%s compress_after_ms=%lld", job_id,
                  (long long) job_after_ms);
        if (plan == S_POLICY_REMOVE)
            return 0;
    }
    //  Segments are series (series_id), ordered by time: each series is one
    //  run of rows, which compresses best, and both columns of the unique
    //  key are a segment or order column, as TimescaleDB requires to enforce
    //  it on compressed chunks.
    if (omni_pgconn_exec (
            conn, "DO $$ BEGIN "
                  "IF NOT (SELECT compression_enabled FROM timescaledb_information.hypertables "
                  "        WHERE hypertable_name = 'points_data' "
                  "        AND hypertable_schema = current_schema ()) THEN "
                  "  ALTER TABLE points_data SET (timescaledb.compress, "
                  "    timescaledb.compress_segmentby = 'series_id', "
                  "    timescaledb.compress_orderby = 'time DESC'); "
                  "END IF; END $$") != PGCONN_OK)
        return -1;
    char after[64];
    snprintf (after, sizeof after, "%lld milliseconds", (long long) want_ms);
    const char *params[] = {after};
    result = omni_pgconn_query (conn,
                                "SELECT add_compression_policy ('points_data', "
                                "compress_after => $1::interval)",
                                1, params);
    if (!result)
        return -1;
    log_info ("schema.compression_added", "job_id=%s compress_after_ms=%lld",
              PQgetvalue (result, 0, 0), (long long) want_ms);
    PQclear (result);
    ctx->state->compression = true;
    return 0;
}

static int
s_timescaledb (omni_pgconn_t *conn, s_ctx_t *ctx)
{
    tsschema_state_t *state = ctx->state;
    if (omni_pgconn_scalar (conn, "SELECT current_setting ('timescaledb.license', true)", 0, NULL,
                            state->license, sizeof state->license) ||
        omni_pgconn_scalar (conn,
                            "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'", 0,
                            NULL, state->version, sizeof state->version))
        return -1;
    const char *interval[] = {s_chunk_interval (ctx->config->partition_interval)};
    PGresult *result = omni_pgconn_query (
        conn, "SELECT set_chunk_time_interval ('points_data', $1::interval)", 1, interval);
    if (!result)
        return -1;
    PQclear (result);
    state->rollups = strcmp (state->license, "timescale") == 0;
    if (!state->rollups) {
        //  Both catalog views are Apache code: readable under any license
        result = omni_pgconn_query (
            conn,
            "SELECT (SELECT count (*) FROM timescaledb_information.chunks WHERE "
            "hypertable_schema = current_schema () AND hypertable_name = 'points_data' AND "
            "is_compressed), (SELECT count (*) FROM timescaledb_information.continuous_aggregates "
            "WHERE hypertable_schema = current_schema () AND hypertable_name = 'points_data')",
            0, NULL);
        if (!result)
            return -1;
        s_license_problem (state->license, atol (PQgetvalue (result, 0, 0)),
                           atol (PQgetvalue (result, 0, 1)), state->problem, sizeof state->problem);
        PQclear (result);
        //  Kept running: the records wait in ingestd's journal (nothing is
        //  acknowledged that is not stored), writes that can succeed do,
        //  and a server restarted with the license back is seen at the
        //  reconnect. /health names the problem meanwhile.
        if (*state->problem)
            log_error ("schema.license_problem", "permanent=yes detail=\"%s\"", state->problem);
        //  apache: no continuous aggregates, no compression; plain views
        //  (which also stop the views depending on aggregates left behind)
        const char *sqls[] = {sql_views, NULL};
        return s_apply_repeatable (conn, "views", sqls);
    }
    const char *sqls[] = {sql_views, sql_rollups, sql_rollup_views, NULL};
    if (s_apply_repeatable (conn, "views", sqls))
        return -1;
    return s_compression_policy (conn, ctx);
}

static int
s_after (omni_pgconn_t *conn, void *arg)
{
    s_ctx_t *ctx = arg;
    if (ctx->state->mode == TSSCHEMA_TIMESCALEDB)
        return s_timescaledb (conn, ctx);
    const char *sqls[] = {sql_views, NULL};
    return s_apply_repeatable (conn, "views", sqls);
}

int
tsschema_migrate (omni_pgconn_t *conn, const tsschema_config_t *config, tsschema_state_t *state)
{
    assert (tsschema_valid_interval (config->partition_interval));
    memset (state, 0, sizeof *state);
    s_ctx_t ctx = {config, state};
    omni_migrate_config_t migrate = {
        "metricsd", "metricsd_migrations", S_LOCK_KEY, s_plan_mode, s_after, &ctx};
    return omni_migrate_run (conn, &migrate, &state->applied);
}

//  ---------------------------------------------------------------------------
//  Self-test (native mode; the TimescaleDB variant needs the extension)

//  A metricsd running `arg` (SQL) at the same moment as others
static int
s_test_query (omni_pgconn_t *conn, void *arg, int index)
{
    (void) index;
    PGresult *result = omni_pgconn_query (conn, arg, 0, NULL);
    PQclear (result);
    return result ? 0 : -1;
}

//  A database of version 3 (one wide points table) with points in two
//  partitions: version 4 moves them into series and points_data, and the
//  views answer as before.
static const omni_migrate_step_t *
s_test_plan_v3 (omni_pgconn_t *conn, void *arg)
{
    (void) conn;
    (void) arg;
    static omni_migrate_step_t steps[4];
    memcpy (steps, s_steps_native, 3 * sizeof *steps);
    steps[3] = (omni_migrate_step_t){0, NULL, NULL};
    return steps;
}

static void
s_test_series_migration (void)
{
    char *dsn = pgtest_db_new ("tsschema_v3");
    assert (dsn);
    char error[256];
    omni_pgconn_t *conn = omni_pgconn_new (dsn, error, sizeof error);
    assert (conn && omni_pgconn_ensure (conn) == 0);
    assert (omni_pgconn_exec (conn, "SET TIME ZONE 'UTC'") == PGCONN_OK);
    tsschema_config_t config = {TSSCHEMA_NATIVE, "month", 0, false};
    tsschema_state_t state = {0};
    s_ctx_t ctx = {&config, &state};
    omni_migrate_config_t v3 = {
        "metricsd", "metricsd_migrations", S_LOCK_KEY, s_test_plan_v3, s_after, &ctx};
    int applied = 0;
    assert (omni_migrate_run (conn, &v3, &applied) == 0 && applied == 3);
    assert (omni_pgconn_exec (
                conn,
                "SELECT metricsd_ensure_partition ('2024-01-01', 'month'); "
                "SELECT metricsd_ensure_partition ('1990-03-04', 'month'); "
                "INSERT INTO points SELECT '2024-01-01'::timestamptz + i * interval '1 hour', "
                "'git.commits', 1, 'repo-' || i % 2, jsonb_build_object ('author', "
                "'a' || i % 3, 'sha', 's' || i) FROM generate_series (0, 99) i; "
                "INSERT INTO points VALUES ('1990-03-04', 'legacy', 42, 'h', '{}'), "
                "('1990-03-04 00:01', 'legacy', 43, 'h', '{}')") == PGCONN_OK);
    static const char *answers =
        "SELECT (SELECT string_agg (day || ' ' || repository || ' ' || commits || ' ' || authors, "
        "',' ORDER BY day, repository) FROM commits_per_day) || ' ' || (SELECT string_agg "
        "(time || ' ' || name || ' ' || value || ' ' || source || ' ' || tags, ',' ORDER BY time) "
        "FROM points WHERE name = 'legacy')";
    char *before = pgtest_value (conn, answers);
    assert (tsschema_migrate (conn, &config, &state) == 0 && state.applied == 5);
    pgtest_expect (conn, answers, before);
    free (before);
    pgtest_expect (conn,
                   "SELECT (SELECT count (*) FROM points_data) || ' ' || (SELECT count (*) "
                   "FROM points_series) || ' ' || (SELECT string_agg (part, ',' ORDER BY "
                   "lo) FROM metricsd_partitions ())",
                   "102 101 points_data_19900301,points_data_20240101");
    pgtest_expect (conn, "SELECT to_regclass ('points_19900301') IS NULL", "t");
    omni_pgconn_destroy (&conn);
    pgtest_db_drop (dsn);
    free (dsn);
}

void
tsschema_test (bool verbose)
{
    if (!verbose)
        omni_log_init ("tsschema-test", "error", "kv");
    tsschema_mode_t mode;
    assert (tsschema_parse_mode ("native", &mode) == 0 && mode == TSSCHEMA_NATIVE);
    assert (tsschema_parse_mode ("timescaledb", &mode) == 0 && mode == TSSCHEMA_TIMESCALEDB);
    assert (tsschema_parse_mode ("auto", &mode) == 0 && mode == TSSCHEMA_AUTO);
    assert (tsschema_parse_mode ("Native", &mode) == -1);
    assert (tsschema_valid_interval ("week") && !tsschema_valid_interval ("fortnight"));
    assert (strcmp (tsschema_mode_name (TSSCHEMA_TIMESCALEDB), "timescaledb") == 0);
    //  The embedded files are all there, NUL-terminated
    assert (strstr (sql_points_native, "PARTITION BY RANGE (time)"));
    assert (strstr (sql_points_timescaledb, "create_hypertable"));
    assert (strstr (sql_views, "CREATE OR REPLACE VIEW host_per_minute"));
    assert (strstr (sql_rollups, "timescaledb.continuous"));
    assert (strstr (sql_rollup_views, "FROM points_weekly"));

    //  shared_preload_libraries as servers and people write it
    assert (!s_preload_has_timescaledb (NULL) && !s_preload_has_timescaledb (""));
    static const char *preloads[] = {"timescaledb",
                                     "'timescaledb'",
                                     "\"$libdir/timescaledb\"",
                                     "pg_stat_statements, timescaledb",
                                     " pg_stat_statements ,\"timescaledb\" ",
                                     "timescaledb-2.14.2",
                                     "$libdir/timescaledb.so",
                                     "/opt/pgsql/lib/timescaledb-2.14.2.so",
                                     "'pg_stat_statements,timescaledb'",
                                     "TimescaleDB",
                                     "auto_explain,\"odd, name\",timescaledb",
                                     NULL};
    for (int i = 0; preloads[i]; i++)
        assert (s_preload_has_timescaledb (preloads[i]));
    static const char *others[] = {"pg_stat_statements",
                                   "timescaledb_toolkit",
                                   "notimescaledb",
                                   "\"timescaledb,x\"",
                                   "$libdir/timescaledb_osm",
                                   "timescale",
                                   ",,",
                                   NULL};
    for (int i = 0; others[i]; i++)
        assert (!s_preload_has_timescaledb (others[i]));

    //  The mode decision from catalog facts
    const s_offer_t ready = {
        false, true, "pg_stat_statements,timescaledb", true, false, true, false, true, false};
    s_offer_t offer = ready;
    s_decision_t d = s_decide (TSSCHEMA_AUTO, TSSCHEMA_AUTO, &offer);
    assert (d.choice == S_CREATE);
    offer.installed = true;
    assert (s_decide (TSSCHEMA_TIMESCALEDB, TSSCHEMA_AUTO, &offer).choice == S_USE);
    //  Packaged, not preloaded (the FATAL case): native with a warning in
    //  auto, a permanent refusal when forced
    offer = ready;
    offer.preload = "pg_stat_statements";
    offer.loader = false;
    d = s_decide (TSSCHEMA_AUTO, TSSCHEMA_AUTO, &offer);
    assert (d.choice == S_NATIVE && d.warn && d.why == s_why_not_preloaded);
    assert (strstr (d.why, "shared_preload_libraries") && strstr (d.why, "restart"));
    d = s_decide (TSSCHEMA_TIMESCALEDB, TSSCHEMA_AUTO, &offer);
    assert (d.choice == S_REFUSE && d.why == s_why_not_preloaded);
    //  Installed in the database but not preloaded: using it would end
    //  the session as well
    offer.installed = true;
    assert (s_decide (TSSCHEMA_AUTO, TSSCHEMA_AUTO, &offer).choice == S_NATIVE);
    //  The list hidden from this role: the loader's GUC decides; the escape
    //  hatch timescaledb.allow_install_without_preload counts as preloaded
    offer = ready;
    offer.preload = NULL;
    assert (s_decide (TSSCHEMA_AUTO, TSSCHEMA_AUTO, &offer).choice == S_CREATE);
    offer.loader = false;
    assert (s_decide (TSSCHEMA_AUTO, TSSCHEMA_AUTO, &offer).choice == S_NATIVE);
    offer.without_preload = true;
    assert (s_decide (TSSCHEMA_AUTO, TSSCHEMA_AUTO, &offer).choice == S_CREATE);
    //  The list alone, without the loader's GUC (read as preloaded)
    offer = ready;
    offer.loader = false;
    assert (s_decide (TSSCHEMA_AUTO, TSSCHEMA_AUTO, &offer).choice == S_CREATE);
    //  Not packaged: native without a warning, refused when forced
    offer = ready;
    offer.available = false;
    d = s_decide (TSSCHEMA_AUTO, TSSCHEMA_AUTO, &offer);
    assert (d.choice == S_NATIVE && !d.warn && d.why == s_why_not_packaged);
    assert (s_decide (TSSCHEMA_TIMESCALEDB, TSSCHEMA_AUTO, &offer).choice == S_REFUSE);
    //  No right to create it: superuser, or trusted plus CREATE
    offer = ready;
    offer.superuser = false;
    d = s_decide (TSSCHEMA_AUTO, TSSCHEMA_AUTO, &offer);
    assert (d.choice == S_NATIVE && d.warn && d.why == s_why_no_privilege);
    offer.trusted = true;
    assert (s_decide (TSSCHEMA_AUTO, TSSCHEMA_AUTO, &offer).choice == S_CREATE);
    offer.create_privilege = false;
    assert (s_decide (TSSCHEMA_TIMESCALEDB, TSSCHEMA_AUTO, &offer).choice == S_REFUSE);
    //  CREATE EXTENSION ended the session all the same: never again
    offer = ready;
    offer.create_ended_session = true;
    d = s_decide (TSSCHEMA_AUTO, TSSCHEMA_AUTO, &offer);
    assert (d.choice == S_NATIVE && d.warn && d.why == s_why_session_ended);
    assert (s_decide (TSSCHEMA_TIMESCALEDB, TSSCHEMA_AUTO, &offer).choice == S_REFUSE);
    //  A database set up with TimescaleDB: used when all is there, else a
    //  permanent refusal whatever the wanted mode (it is never converted)
    offer = ready;
    offer.installed = true;
    assert (s_decide (TSSCHEMA_AUTO, TSSCHEMA_TIMESCALEDB, &offer).choice == S_USE);
    offer.loader = false;
    offer.preload = "";
    d = s_decide (TSSCHEMA_AUTO, TSSCHEMA_TIMESCALEDB, &offer);
    assert (d.choice == S_REFUSE && d.why == s_why_stored_unusable);
    offer = ready;
    assert (s_decide (TSSCHEMA_AUTO, TSSCHEMA_TIMESCALEDB, &offer).choice == S_REFUSE);

    //  A license change with TSL objects left behind
    char problem[512];
    s_license_problem ("timescale", 5, 2, problem, sizeof problem);
    assert (*problem == 0);
    s_license_problem ("apache", 0, 0, problem, sizeof problem);
    assert (*problem == 0);
    s_license_problem ("apache", 3, 2, problem, sizeof problem);
    assert (strstr (problem, "license=apache but 3 chunks of points_data are compressed"));
    assert (strstr (problem, "timescaledb.license = 'timescale'"));
    assert (strstr (problem, S_DECOMPRESS_SQL)); //  whole, not truncated
    s_license_problem ("apache", 0, 2, problem, sizeof problem);
    assert (strstr (problem, "2 continuous aggregates") && strstr (problem, "DROP MATERIALIZED"));
    assert (problem[strlen (problem) - 1] == ';');
    s_license_problem ("", 1, 0, problem, sizeof problem);
    assert (strstr (problem, "license=unknown"));

    //  The compression policy: kept when its compress_after is the wanted one
    assert (s_policy_plan (0, -1, 0) == S_POLICY_NONE);
    assert (s_policy_plan (1, 86400000, 0) == S_POLICY_REMOVE);
    assert (s_policy_plan (0, -1, 86400000) == S_POLICY_ADD);
    assert (s_policy_plan (1, 86400000, 86400000) == S_POLICY_KEEP);
    assert (s_policy_plan (1, 2592000000LL, 86400000) == S_POLICY_REPLACE);
    assert (s_policy_plan (1, -1, 86400000) == S_POLICY_REPLACE);
    assert (s_policy_plan (2, 86400000, 86400000) == S_POLICY_REPLACE);

    char *dsn = pgtest_db_new ("tsschema");
    if (!dsn) {
        selftest_skip ("no PostgreSQL server ($OMNI_TEST_PG_DSN, else 127.0.0.1:5432)");
    }
    char error[256];
    omni_pgconn_t *conn = omni_pgconn_new (dsn, error, sizeof error);
    assert (conn && omni_pgconn_ensure (conn) == 0);
    assert (omni_pgconn_exec (conn, "SET TIME ZONE 'UTC'") == PGCONN_OK);
    tsschema_config_t config = {TSSCHEMA_NATIVE, "month", 0, false};
    tsschema_state_t state;
    assert (tsschema_migrate (conn, &config, &state) == 0);
    assert (state.mode == TSSCHEMA_NATIVE && state.applied == 8 && !state.rollups);
    pgtest_expect (conn,
                   "SELECT string_agg (relname || ':' || relkind::text, ',' ORDER BY relname) FROM "
                   "pg_class WHERE relname IN ('points', 'points_data', 'points_series')",
                   "points:v,points_data:p,points_series:r");
    pgtest_expect (conn,
                   "SELECT count (*) FROM information_schema.views WHERE table_name IN "
                   "('commits_per_day', 'commits_per_week', 'build_success_weekly', "
                   "'test_duration_weekly', 'host_per_minute')",
                   "5");
    pgtest_expect (conn, "SELECT value FROM metricsd_settings WHERE key = 'mode'", "native");
    //  Again, and in auto mode: nothing to do, the stored mode wins
    config.want = TSSCHEMA_AUTO;
    assert (tsschema_migrate (conn, &config, &state) == 0);
    assert (state.mode == TSSCHEMA_NATIVE && state.applied == 0);
    //  Forcing the other mode on this database stops start-up
    config.want = TSSCHEMA_TIMESCALEDB;
    assert (tsschema_migrate (conn, &config, &state) == -1);
    config.want = TSSCHEMA_NATIVE;

    //  Views re-applied when their text changed (here: the stored checksum)
    assert (omni_pgconn_exec (conn,
                              "DROP VIEW host_per_minute; UPDATE metricsd_settings SET value = "
                              "'old' WHERE key = 'views'") == PGCONN_OK);
    assert (tsschema_migrate (conn, &config, &state) == 0);
    pgtest_expect (conn, "SELECT count (*) FROM host_per_minute", "0");
    pgtest_expect (conn, "SELECT length (value) FROM metricsd_settings WHERE key = 'views'", "64");

    //  Partitions on demand: bounds in UTC, found again, clipped to neighbours
#define S_ENSURE "SELECT lo || ' ' || hi FROM metricsd_ensure_partition (%s, '%s')"
    char sql[256];
    snprintf (sql, sizeof sql, S_ENSURE, "'1990-05-17 12:00+02'", "month");
    pgtest_expect (conn, sql, "1990-05-01 00:00:00+00 1990-06-01 00:00:00+00");
    pgtest_expect (conn, sql, "1990-05-01 00:00:00+00 1990-06-01 00:00:00+00");
    snprintf (sql, sizeof sql, S_ENSURE, "'1990-05-31 23:59:59.999999+00'", "day");
    pgtest_expect (conn, sql, "1990-05-01 00:00:00+00 1990-06-01 00:00:00+00");
    //  The week of Sunday 1990-06-03 starts on Monday 05-28, inside May's
    snprintf (sql, sizeof sql, S_ENSURE, "'1990-06-03 10:00+00'", "week");
    pgtest_expect (conn, sql, "1990-06-01 00:00:00+00 1990-06-04 00:00:00+00");
    snprintf (sql, sizeof sql, S_ENSURE, "'1990-06-04 00:00+00'", "week");
    pgtest_expect (conn, sql, "1990-06-04 00:00:00+00 1990-06-11 00:00:00+00");
    pgtest_expect (conn, "SELECT string_agg (part, ',' ORDER BY lo) FROM metricsd_partitions ()",
                   "points_data_19900501,points_data_19900601,points_data_19900604");
    //  Before 1970 and far ahead
    snprintf (sql, sizeof sql, S_ENSURE, "'1969-12-31 23:59:59+00'", "year");
    pgtest_expect (conn, sql, "1969-01-01 00:00:00+00 1970-01-01 00:00:00+00");
    snprintf (sql, sizeof sql, S_ENSURE, "'2261-12-31 00:00+00'", "month");
    pgtest_expect (conn, sql, "2261-12-01 00:00:00+00 2262-01-01 00:00:00+00");
    assert (omni_pgconn_exec (conn, "INSERT INTO points_data VALUES (1, '1990-06-03 10:00+00', 1), "
                                    "(1, '1969-12-31 23:59:59+00', 2)") == PGCONN_OK);
    pgtest_expect (conn, "SELECT count (*) FROM points_data_19900601", "1");
    snprintf (sql, sizeof sql, S_ENSURE, "now ()", "fortnight");
    PGresult *result = omni_pgconn_query (conn, sql, 0, NULL);
    assert (!result && strstr (omni_pgconn_error (conn), "unit must be"));

    //  Several metricsd wanting the same new partition at once: one is made
    snprintf (sql, sizeof sql, S_ENSURE, "'2001-02-03 04:05:06+00'", "week");
    assert (pgtest_parallel (dsn, 6, s_test_query, sql) == 0);
    pgtest_expect (conn,
                   "SELECT count (*) FROM metricsd_partitions () WHERE lo = "
                   "'2001-01-29 00:00+00' AND hi = '2001-02-05 00:00+00'",
                   "1");
    omni_pgconn_destroy (&conn);
    pgtest_db_drop (dsn);
    s_test_series_migration ();
    free (dsn);

    //  A fresh database in auto mode: TimescaleDB when the server has it,
    //  else native; forced TimescaleDB without it is a start-up error
    dsn = pgtest_db_new ("tsschema2");
    assert (dsn);
    conn = omni_pgconn_new (dsn, error, sizeof error);
    assert (omni_pgconn_ensure (conn) == 0);
    char *available = pgtest_value (conn, "SELECT count (*) FROM pg_available_extensions WHERE "
                                          "name = 'timescaledb'");
    if (strcmp (available, "0") == 0) {
        //  The facts as this server gives them, in a transaction that no
        //  probe may end: a value set by hand for the loader's GUC is a
        //  placeholder, not the loader
        assert (omni_pgconn_exec (conn, "BEGIN; SET LOCAL timescaledb.disable_load = 'on'") ==
                PGCONN_OK);
        PGresult *facts = s_read_offer (conn, &offer);
        assert (facts);
        assert (!offer.installed && !offer.available && !offer.loader && offer.preload);
        assert (!s_preload_has_timescaledb (offer.preload));
        PQclear (facts);
        //  A role that may not read shared_preload_libraries gets NULL,
        //  not an error (which would end the migration's transaction)
        char role[64], as_role[160];
        snprintf (role, sizeof role, "omni_test_%d_reader", (int) getpid ());
        snprintf (as_role, sizeof as_role, "CREATE ROLE %s; SET LOCAL ROLE %s", role, role);
        assert (omni_pgconn_exec (conn, as_role) == PGCONN_OK);
        facts = s_read_offer (conn, &offer);
        assert (facts && !offer.preload && !offer.superuser);
        PQclear (facts);
        assert (omni_pgconn_exec (conn, "ROLLBACK") == PGCONN_OK);

        config.want = TSSCHEMA_TIMESCALEDB;
        assert (tsschema_migrate (conn, &config, &state) == -1);
        //  Permanent, naming the cause and the cure
        assert (omni_pgconn_last_status (conn) == PGCONN_FAILED);
        assert (strstr (state.problem, "not packaged") &&
                strstr (state.problem, "shared_preload_libraries"));
        pgtest_expect (conn, "SELECT to_regclass ('points') IS NULL", "t");
        config.want = TSSCHEMA_AUTO;
        assert (tsschema_migrate (conn, &config, &state) == 0);
        assert (state.mode == TSSCHEMA_NATIVE && state.applied == 8 && !*state.problem);
        omni_pgconn_destroy (&conn);
        pgtest_db_drop (dsn);
        free (dsn);

        //  A database set up with TimescaleDB (restored here, say): refused
        //  in every mode, permanently, never converted
        dsn = pgtest_db_new ("tsschema3");
        assert (dsn);
        conn = omni_pgconn_new (dsn, error, sizeof error);
        assert (omni_pgconn_ensure (conn) == 0);
        assert (omni_pgconn_exec (conn,
                                  "CREATE TABLE metricsd_settings (key text PRIMARY KEY, value "
                                  "text NOT NULL); INSERT INTO metricsd_settings VALUES "
                                  "('mode', 'timescaledb')") == PGCONN_OK);
        assert (tsschema_migrate (conn, &config, &state) == -1);
        assert (omni_pgconn_last_status (conn) == PGCONN_FAILED);
        assert (strcmp (state.problem, s_why_stored_unusable) == 0);
        pgtest_expect (conn, "SELECT to_regclass ('points') IS NULL", "t");
    } else
        fprintf (stderr, "tsschema_test: timescaledb is available here; its path is tested by "
                         "the pointstore test in auto mode\n");
    free (available);
    omni_pgconn_destroy (&conn);
    pgtest_db_drop (dsn);
    free (dsn);
}
