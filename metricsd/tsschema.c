/*  tsschema: chooses the mode, applies the migrations of that mode, then
    the views (and, under TimescaleDB's timescale license, the rollups and
    the compression policy), all in one transaction under migrate's lock. */
#include "tsschema.h"
#include "log.h"
#include "migrate.h"
#include "shared_sql.h"
#include "sql.h"
#include "util.h"

#include <assert.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  "OmniMet1": the advisory lock key of metricsd's migrations
#define S_LOCK_KEY 5723352100006884401LL

//  Version 2 is shared with relationald (common/sql/access.sql): the two may
//  migrate one database or two, and either way it is there once.
static const migrate_step_t s_steps_native[] = {{1, "points", sql_points_native},
                                                {2, "access", shared_sql_access},
                                                {3, "points_access", sql_access_native},
                                                {0, NULL, NULL}};
static const migrate_step_t s_steps_timescaledb[] = {{1, "points", sql_points_timescaledb},
                                                     {2, "access", shared_sql_access},
                                                     {3, "points_access", sql_access_timescaledb},
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

//  The first value of a one-row query, copied into `out` ("" when no row
//  or NULL). Returns -1 after an error.
static int
s_scalar (pgconn_t *conn, const char *sql, int nparams, const char *const *params, char *out,
          size_t size)
{
    PGresult *result = pgconn_query (conn, sql, nparams, params);
    if (!result)
        return -1;
    snprintf (out, size, "%s",
              PQntuples (result) > 0 && !PQgetisnull (result, 0, 0) ? PQgetvalue (result, 0, 0)
                                                                    : "");
    PQclear (result);
    return 0;
}

//  metricsd_settings may not exist yet: ask the catalog first, so no
//  statement fails (a failed statement would end the transaction).
static int
s_stored_mode (pgconn_t *conn, char *mode, size_t size)
{
    char exists[8];
    if (s_scalar (conn, "SELECT to_regclass ('metricsd_settings') IS NOT NULL", 0, NULL, exists,
                  sizeof exists))
        return -1;
    *mode = 0;
    if (strcmp (exists, "t"))
        return 0;
    return s_scalar (conn, "SELECT value FROM metricsd_settings WHERE key = 'mode'", 0, NULL, mode,
                     size);
}

//  Decides the mode (see tsschema.h) and returns the steps of that mode.
static const migrate_step_t *
s_plan_mode (pgconn_t *conn, void *arg)
{
    s_ctx_t *ctx = arg;
    tsschema_mode_t want = ctx->config->want;
    tsschema_state_t *state = ctx->state;
    char stored[32], yes[8];
    if (s_stored_mode (conn, stored, sizeof stored))
        return NULL;
    if (*stored) {
        if (tsschema_parse_mode (stored, &state->mode) || state->mode == TSSCHEMA_AUTO) {
            log_error ("schema.bad_mode",
                       "stored=\"%s\" detail=\"metricsd_settings.mode is "
                       "neither native nor timescaledb\"",
                       stored);
            return NULL;
        }
        if (want != TSSCHEMA_AUTO && want != state->mode) {
            log_error ("schema.mode_conflict",
                       "wanted=%s database=%s detail=\"the database was "
                       "set up in the other mode; metricsd does not convert it (set mode=auto "
                       "or use another database)\"",
                       tsschema_mode_name (want), stored);
            return NULL;
        }
    } else if (want == TSSCHEMA_NATIVE)
        state->mode = TSSCHEMA_NATIVE;
    else {
        if (s_scalar (conn, "SELECT count (*) > 0 FROM pg_extension WHERE extname = 'timescaledb'",
                      0, NULL, yes, sizeof yes))
            return NULL;
        bool installed = strcmp (yes, "t") == 0;
        if (s_scalar (conn,
                      "SELECT count (*) > 0 FROM pg_available_extensions "
                      "WHERE name = 'timescaledb'",
                      0, NULL, yes, sizeof yes))
            return NULL;
        bool available = strcmp (yes, "t") == 0;
        state->mode = TSSCHEMA_NATIVE;
        if (installed)
            state->mode = TSSCHEMA_TIMESCALEDB;
        else if (available) {
            //  Packaged is not enough: it must be preloaded, and we need the
            //  right to create it. Try under a savepoint, so a refusal
            //  leaves the transaction usable for the native schema.
            if (pgconn_exec (conn, "SAVEPOINT ext") != PGCONN_OK)
                return NULL;
            if (pgconn_exec (conn, "CREATE EXTENSION IF NOT EXISTS timescaledb") == PGCONN_OK) {
                state->mode = TSSCHEMA_TIMESCALEDB;
                if (pgconn_exec (conn, "RELEASE SAVEPOINT ext") != PGCONN_OK)
                    return NULL;
            } else {
                log_warn ("schema.timescaledb_refused",
                          "error=\"%s\" detail=\"the extension is "
                          "packaged but CREATE EXTENSION failed\"",
                          pgconn_error (conn));
                if (pgconn_exec (conn, "ROLLBACK TO SAVEPOINT ext") != PGCONN_OK)
                    return NULL;
            }
        }
        if (want == TSSCHEMA_TIMESCALEDB && state->mode != TSSCHEMA_TIMESCALEDB) {
            log_error ("schema.no_timescaledb",
                       "detail=\"mode=timescaledb but the extension "
                       "is %s\"",
                       available ? "not creatable here" : "not available");
            return NULL;
        }
    }
    return state->mode == TSSCHEMA_TIMESCALEDB ? s_steps_timescaledb : s_steps_native;
}

//  Applies `sqls` (NULL-terminated) when their checksum differs from the
//  one stored under `key`, then stores it.
static int
s_apply_repeatable (pgconn_t *conn, const char *key, const char *const *sqls)
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
    util_hex (digest, SHA256_DIGEST_LENGTH, hex);
    const char *params[] = {key, hex};
    if (s_scalar (conn, "SELECT value FROM metricsd_settings WHERE key = $1", 1, params, stored,
                  sizeof stored))
        return -1;
    if (strcmp (stored, hex) == 0)
        return 0;
    for (const char *const *s = sqls; *s; s++)
        if (pgconn_exec (conn, *s) != PGCONN_OK) {
            log_error ("schema.views_failed", "key=%s error=\"%s\"", key, pgconn_error (conn));
            return -1;
        }
    PGresult *result = pgconn_query (conn,
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

static int
s_timescaledb (pgconn_t *conn, s_ctx_t *ctx)
{
    tsschema_state_t *state = ctx->state;
    if (s_scalar (conn, "SELECT current_setting ('timescaledb.license', true)", 0, NULL,
                  state->license, sizeof state->license) ||
        s_scalar (conn, "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'", 0,
                  NULL, state->version, sizeof state->version))
        return -1;
    const char *interval[] = {s_chunk_interval (ctx->config->partition_interval)};
    PGresult *result =
        pgconn_query (conn, "SELECT set_chunk_time_interval ('points', $1::interval)", 1, interval);
    if (!result)
        return -1;
    PQclear (result);
    state->rollups = strcmp (state->license, "timescale") == 0;
    if (!state->rollups) {
        //  apache: no continuous aggregates, no compression; plain views
        const char *sqls[] = {sql_views, NULL};
        return s_apply_repeatable (conn, "views", sqls);
    }
    const char *sqls[] = {sql_views, sql_rollups, sql_rollup_views, NULL};
    if (s_apply_repeatable (conn, "views", sqls))
        return -1;
    //  The policy follows the configuration at every start
    result = pgconn_query (conn, "SELECT remove_compression_policy ('points', if_exists => true)",
                           0, NULL);
    if (!result)
        return -1;
    PQclear (result);
    if (ctx->config->compress_after_ms <= 0)
        return 0;
    //  Segments are (name, source), ordered by tags then time: each series
    //  is one run of rows, which compresses best, and every column of the
    //  unique key is a segment or order column, as TimescaleDB requires to
    //  enforce it on compressed chunks.
    if (pgconn_exec (conn,
                     "DO $$ BEGIN "
                     "IF NOT (SELECT compression_enabled FROM timescaledb_information.hypertables "
                     "        WHERE hypertable_name = 'points' "
                     "        AND hypertable_schema = current_schema ()) THEN "
                     "  ALTER TABLE points SET (timescaledb.compress, "
                     "    timescaledb.compress_segmentby = 'name, source', "
                     "    timescaledb.compress_orderby = 'tags, time DESC'); "
                     "END IF; END $$") != PGCONN_OK)
        return -1;
    char after[64];
    snprintf (after, sizeof after, "%lld milliseconds", (long long) ctx->config->compress_after_ms);
    const char *params[] = {after};
    result = pgconn_query (conn,
                           "SELECT add_compression_policy ('points', "
                           "compress_after => $1::interval)",
                           1, params);
    if (!result)
        return -1;
    PQclear (result);
    state->compression = true;
    return 0;
}

static int
s_after (pgconn_t *conn, void *arg)
{
    s_ctx_t *ctx = arg;
    if (ctx->state->mode == TSSCHEMA_TIMESCALEDB)
        return s_timescaledb (conn, ctx);
    const char *sqls[] = {sql_views, NULL};
    return s_apply_repeatable (conn, "views", sqls);
}

int
tsschema_migrate (pgconn_t *conn, const tsschema_config_t *config, tsschema_state_t *state)
{
    assert (tsschema_valid_interval (config->partition_interval));
    memset (state, 0, sizeof *state);
    s_ctx_t ctx = {config, state};
    migrate_config_t migrate = {"metricsd", "metricsd_migrations", S_LOCK_KEY, s_plan_mode, s_after,
                                &ctx};
    return migrate_run (conn, &migrate, &state->applied);
}

//  ---------------------------------------------------------------------------
//  Self-test (native mode; the TimescaleDB variant needs the extension)

//  A metricsd running `arg` (SQL) at the same moment as others
static int
s_test_query (pgconn_t *conn, void *arg, int index)
{
    (void) index;
    PGresult *result = pgconn_query (conn, arg, 0, NULL);
    PQclear (result);
    return result ? 0 : -1;
}

void
tsschema_test (bool verbose)
{
    if (!verbose)
        log_init ("tsschema-test", "error", "kv");
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

    char *dsn = pgconn_testdb_new ("tsschema");
    if (!dsn) {
        fprintf (stderr, "tsschema_test: no PostgreSQL server, skipped\n");
        return;
    }
    char error[256];
    pgconn_t *conn = pgconn_new (dsn, error, sizeof error);
    assert (conn && pgconn_ensure (conn) == 0);
    assert (pgconn_exec (conn, "SET TIME ZONE 'UTC'") == PGCONN_OK);
    tsschema_config_t config = {TSSCHEMA_NATIVE, "month", 0};
    tsschema_state_t state;
    assert (tsschema_migrate (conn, &config, &state) == 0);
    assert (state.mode == TSSCHEMA_NATIVE && state.applied == 3 && !state.rollups);
    pgconn_test_expect (conn, "SELECT relkind FROM pg_class WHERE relname = 'points'", "p");
    pgconn_test_expect (conn,
                        "SELECT count (*) FROM information_schema.views WHERE table_name IN "
                        "('commits_per_day', 'commits_per_week', 'build_success_weekly', "
                        "'test_duration_weekly', 'host_per_minute')",
                        "5");
    pgconn_test_expect (conn, "SELECT value FROM metricsd_settings WHERE key = 'mode'", "native");
    //  Again, and in auto mode: nothing to do, the stored mode wins
    config.want = TSSCHEMA_AUTO;
    assert (tsschema_migrate (conn, &config, &state) == 0);
    assert (state.mode == TSSCHEMA_NATIVE && state.applied == 0);
    //  Forcing the other mode on this database stops start-up
    config.want = TSSCHEMA_TIMESCALEDB;
    assert (tsschema_migrate (conn, &config, &state) == -1);
    config.want = TSSCHEMA_NATIVE;

    //  Views re-applied when their text changed (here: the stored checksum)
    assert (pgconn_exec (conn, "DROP VIEW host_per_minute; UPDATE metricsd_settings SET value = "
                               "'old' WHERE key = 'views'") == PGCONN_OK);
    assert (tsschema_migrate (conn, &config, &state) == 0);
    pgconn_test_expect (conn, "SELECT count (*) FROM host_per_minute", "0");
    pgconn_test_expect (conn, "SELECT length (value) FROM metricsd_settings WHERE key = 'views'",
                        "64");

    //  Partitions on demand: bounds in UTC, found again, clipped to neighbours
    static const char *ensure = "SELECT lo || ' ' || hi FROM metricsd_ensure_partition (%s, '%s')";
    char sql[256];
    snprintf (sql, sizeof sql, ensure, "'1990-05-17 12:00+02'", "month");
    pgconn_test_expect (conn, sql, "1990-05-01 00:00:00+00 1990-06-01 00:00:00+00");
    pgconn_test_expect (conn, sql, "1990-05-01 00:00:00+00 1990-06-01 00:00:00+00");
    snprintf (sql, sizeof sql, ensure, "'1990-05-31 23:59:59.999999+00'", "day");
    pgconn_test_expect (conn, sql, "1990-05-01 00:00:00+00 1990-06-01 00:00:00+00");
    //  The week of Sunday 1990-06-03 starts on Monday 05-28, inside May's
    snprintf (sql, sizeof sql, ensure, "'1990-06-03 10:00+00'", "week");
    pgconn_test_expect (conn, sql, "1990-06-01 00:00:00+00 1990-06-04 00:00:00+00");
    snprintf (sql, sizeof sql, ensure, "'1990-06-04 00:00+00'", "week");
    pgconn_test_expect (conn, sql, "1990-06-04 00:00:00+00 1990-06-11 00:00:00+00");
    pgconn_test_expect (conn,
                        "SELECT string_agg (part, ',' ORDER BY lo) FROM metricsd_partitions ()",
                        "points_19900501,points_19900601,points_19900604");
    //  Before 1970 and far ahead
    snprintf (sql, sizeof sql, ensure, "'1969-12-31 23:59:59+00'", "year");
    pgconn_test_expect (conn, sql, "1969-01-01 00:00:00+00 1970-01-01 00:00:00+00");
    snprintf (sql, sizeof sql, ensure, "'2261-12-31 00:00+00'", "month");
    pgconn_test_expect (conn, sql, "2261-12-01 00:00:00+00 2262-01-01 00:00:00+00");
    assert (pgconn_exec (conn,
                         "INSERT INTO points VALUES ('1990-06-03 10:00+00', 'n', 1, 's', "
                         "'{}'), ('1969-12-31 23:59:59+00', 'n', 2, 's', '{}')") == PGCONN_OK);
    pgconn_test_expect (conn, "SELECT count (*) FROM points_19900601", "1");
    snprintf (sql, sizeof sql, ensure, "now ()", "fortnight");
    PGresult *result = pgconn_query (conn, sql, 0, NULL);
    assert (!result && strstr (pgconn_error (conn), "unit must be"));

    //  Several metricsd wanting the same new partition at once: one is made
    snprintf (sql, sizeof sql, ensure, "'2001-02-03 04:05:06+00'", "week");
    assert (pgconn_test_parallel (dsn, 6, s_test_query, sql) == 0);
    pgconn_test_expect (conn,
                        "SELECT count (*) FROM metricsd_partitions () WHERE lo = "
                        "'2001-01-29 00:00+00' AND hi = '2001-02-05 00:00+00'",
                        "1");
    pgconn_destroy (&conn);
    pgconn_testdb_drop (dsn);
    free (dsn);

    //  A fresh database in auto mode: TimescaleDB when the server has it,
    //  else native; forced TimescaleDB without it is a start-up error
    dsn = pgconn_testdb_new ("tsschema2");
    assert (dsn);
    conn = pgconn_new (dsn, error, sizeof error);
    assert (pgconn_ensure (conn) == 0);
    char *available =
        pgconn_test_value (conn, "SELECT count (*) FROM pg_available_extensions WHERE "
                                 "name = 'timescaledb'");
    if (strcmp (available, "0") == 0) {
        config.want = TSSCHEMA_TIMESCALEDB;
        assert (tsschema_migrate (conn, &config, &state) == -1);
        pgconn_test_expect (conn, "SELECT to_regclass ('points') IS NULL", "t");
        config.want = TSSCHEMA_AUTO;
        assert (tsschema_migrate (conn, &config, &state) == 0);
        assert (state.mode == TSSCHEMA_NATIVE && state.applied == 3);
    } else
        fprintf (stderr, "tsschema_test: timescaledb is available here; its path is tested by "
                         "the pointstore test in auto mode\n");
    free (available);
    pgconn_destroy (&conn);
    pgconn_testdb_drop (dsn);
    free (dsn);
}
