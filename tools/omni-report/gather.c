/*  gather: one report's numbers from PostgreSQL (see gather.h).

    Every query takes the same parameters, $1 the LIKE pattern of sources,
    $2 and $3 the time range (NULL = open), $4 the top N, so the SQL below
    is constant text: nothing from the command line or the data is ever
    pasted into it. Weeks and days are UTC, weeks start on Monday, as in
    relationald's and metricsd's views; weeks without commits or builds
    come from generate_series, so a gap shows as zero, not as nothing.       */
#include "tools/omni-report/gather.h"
#include "common/log.h"
#include "proto/mpjson.h"
#include "testsupport/pgtest.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  The time range on a column, with the parameters of every query.
#define S_RANGE(col)                                                                               \
    "($2::timestamptz IS NULL OR " col " >= $2::timestamptz) AND ($3::timestamptz IS NULL OR " col \
    " < $3::timestamptz)"

//  The commits the views count (docs/queries.md, "Which commits count"):
//  reachable ones, with the .mailmap's canonical author (`author`, `email`)
//  and the source's name (`source`); a security_invoker view, so the role's
//  row-level security applies through it. Only the columns the report
//  uses: the CTE is materialized, and messages and parents would make it
//  several times wider.
#define S_COMMITS                                                                                  \
    "WITH c AS (SELECT c.id, c.source_id, c.source, c.sha, c.author, c.email, c.author_time, "     \
    "c.insertions, c.deletions FROM commits_canonical c "                                          \
    "WHERE c.source LIKE $1 AND " S_RANGE ("c.author_time") ") "

//  The changed files of those commits: commit_files carries its commit's
//  source (migration 4), so the files of other sources are left out by a
//  hashed look-up of a few source ids before the join.
#define S_FILES                                                                                    \
    "commit_files f JOIN c ON c.id = f.commit_id "                                                 \
    "WHERE f.source_id IN (SELECT s.id FROM sources s WHERE s.name LIKE $1)"

//  A build's time is its start, else its end, else when it was observed,
//  as in build_success_rate and metricsd's derivation.
#define S_BUILDS                                                                                   \
    "b AS (SELECT b.*, s.name AS source, coalesce (b.started, b.finished, b.observed) AS at "      \
    "FROM ci_builds b JOIN sources s ON s.id = b.source_id WHERE s.name LIKE $1 AND "              \
    "" S_RANGE ("coalesce (b.started, b.finished, b.observed)") ") "

//  The columns the report uses (failure messages would make it wide)
#define S_TESTS                                                                                    \
    "t AS (SELECT t.source_id, t.suite, t.class, t.name, t.status, t.duration, t.pipeline, "       \
    "t.build_id, s.name AS source FROM ci_tests t JOIN sources s ON s.id = t.source_id "           \
    "WHERE s.name LIKE $1 AND " S_RANGE ("t.observed") ") "

//  Code counts per snapshot (a revision of a source); the language totals
//  are the records without a path.
#define S_SNAPSHOTS                                                                                \
    "snaps AS (SELECT cs.source_id, s.name AS source, cs.rev, max (cs.observed) AS at "            \
    "FROM code_stats cs JOIN sources s ON s.id = cs.source_id "                                    \
    "WHERE s.name LIKE $1 AND cs.path IS NULL AND " S_RANGE (                                      \
        "cs.observed") " GROUP BY 1, 2, 3), "                                                      \
                       "latest AS (SELECT DISTINCT ON (source_id) source_id, source, rev FROM "    \
                       "snaps "                                                                    \
                       "ORDER BY source_id, at DESC, rev) "

//  success_rate = succeeded / (succeeded + failed): cancelled builds and
//  builds without a result (status other) are left out, as in relationald's
//  build_success_rate and metricsd's build_success_weekly (S_FIGURES and
//  s_builds_weekly_sql).
//  The bus factor: the fewest authors whose commits make at least half
//  (authors by canonical e-mail), per key k of the counts `a (k, n)`. Ties
//  in the order do not change it.
#define S_BUS(A)                                                                                   \
    "bf AS (SELECT k, min (r) AS bus_factor FROM (SELECT k, "                                      \
    "row_number () OVER (PARTITION BY k ORDER BY n DESC) AS r, "                                   \
    "sum (n) OVER (PARTITION BY k ORDER BY n DESC ROWS UNBOUNDED PRECEDING) AS cum, "              \
    "sum (n) OVER (PARTITION BY k) AS total FROM (" A ") a) r "                                    \
    "WHERE 2 * cum >= total GROUP BY k) "

//  The key of a row of GROUPING SETS ((), (source)): NULL for the whole
//  pattern, else the source.
#define S_K "CASE WHEN grouping (source) = 0 THEN source END"

//  The headline figures, for the whole pattern (the first row, source
//  NULL) and for each source (the next rows, by name), from one statement:
//  the summary and its per-source table cannot count differently. Distinct
//  counts go through small pre-aggregates per source (authors, paths, test
//  cases), not through sorts of every commit, file or test run. These are
//  `ae` (source, email, n, lo, hi), `fp` (source, path), `bs` (source,
//  status, n) and `tc` (source, suite, class, name, n); S_FIGURES is the
//  rest, the same whichever statement made them.
#define S_FIGURES                                                                                  \
    "cc AS (SELECT " S_K " AS k, sum (n) AS commits, count(DISTINCT email) AS authors, "           \
    "min (lo) AS first_commit, max (hi) AS last_commit FROM ae "                                   \
    "GROUP BY GROUPING SETS ((), (source))), "                                                     \
    "ff AS (SELECT " S_K " AS k, count(DISTINCT path) AS files FROM fp "                           \
    "GROUP BY GROUPING SETS ((), (source))), "                                                     \
    "bb AS (SELECT " S_K " AS k, sum (n) AS builds, "                                              \
    "round (sum (n) FILTER (WHERE status = 'success')::numeric "                                   \
    "  / nullif (sum (n) FILTER (WHERE status IN ('success', 'failure')), 0), 4) AS success_rate " \
    "FROM bs GROUP BY GROUPING SETS ((), (source))), "                                             \
    "tt AS (SELECT " S_K " AS k, sum (n) AS test_runs, "                                           \
    "count(DISTINCT suite || E'\\x01' || coalesce (class, '') || E'\\x01' || name) AS tests "      \
    "FROM tc GROUP BY GROUPING SETS ((), (source))), "                                             \
    "kk AS (SELECT " S_K " AS k, sum (cs.code) AS code_lines FROM code_stats cs "                  \
    "JOIN latest USING (source_id, rev) WHERE cs.path IS NULL "                                    \
    "GROUP BY GROUPING SETS ((), (source))), " S_BUS (                                             \
        "SELECT " S_K " AS k, email, sum (n) AS n FROM ae "                                        \
        "GROUP BY GROUPING SETS ((email), (source, email))") ", "                                  \
                                                             "keys AS (SELECT NULL::text AS k "    \
                                                             "UNION SELECT k FROM cc UNION "       \
                                                             "SELECT k FROM bb "                   \
                                                             "UNION SELECT k FROM tt UNION "       \
                                                             "SELECT k FROM kk) "                  \
                                                             "SELECT keys.k AS source, coalesce "  \
                                                             "(cc.commits, 0) AS commits, "        \
                                                             "coalesce (cc.authors, 0) AS "        \
                                                             "authors, coalesce (ff.files, 0) AS " \
                                                             "files, "                             \
                                                             "coalesce (bb.builds, 0) AS builds, " \
                                                             "bb.success_rate, "                   \
                                                             "coalesce (tt.test_runs, 0) AS "      \
                                                             "test_runs, coalesce (tt.tests, 0) "  \
                                                             "AS tests, kk.code_lines, "           \
                                                             "bf.bus_factor, cc.first_commit, "    \
                                                             "cc.last_commit FROM keys "           \
                                                             "LEFT JOIN cc ON cc.k IS NOT "        \
                                                             "DISTINCT FROM keys.k "               \
                                                             "LEFT JOIN ff ON ff.k IS NOT "        \
                                                             "DISTINCT FROM keys.k "               \
                                                             "LEFT JOIN bb ON bb.k IS NOT "        \
                                                             "DISTINCT FROM keys.k "               \
                                                             "LEFT JOIN tt ON tt.k IS NOT "        \
                                                             "DISTINCT FROM keys.k "               \
                                                             "LEFT JOIN kk ON kk.k IS NOT "        \
                                                             "DISTINCT FROM keys.k "               \
                                                             "LEFT JOIN bf ON bf.k IS NOT "        \
                                                             "DISTINCT FROM keys.k ORDER BY "      \
                                                             "keys.k NULLS FIRST"

//  The figures of a period, from the rows themselves
static const char *s_figures_sql =
    S_COMMITS ", " S_BUILDS ", " S_TESTS ", " S_SNAPSHOTS ", "
              "ae AS (SELECT source, email, count(*) AS n, min (author_time) AS lo, "
              "max (author_time) AS hi FROM c GROUP BY source, email), "
              "fp AS MATERIALIZED (SELECT c.source, f.path FROM " S_FILES " GROUP BY 1, 2), "
              "bs AS (SELECT source, status, count(*) AS n FROM b GROUP BY 1, 2), "
              "tc AS (SELECT source, suite, class, name, count(*) AS n FROM t "
              "GROUP BY source, suite, class, name), " S_FIGURES;

//  A source's rows of one of relationald's totals (migration 8), which
//  hold the whole history: never read for a period ($2, $3)
#define S_TOTALS(table, cols)                                                                      \
    "SELECT s.name AS source, " cols " FROM " table " x JOIN sources s ON s.id = x.source_id "     \
    "WHERE s.name LIKE $1 AND $2::timestamptz IS NULL AND $3::timestamptz IS NULL"

//  The figures of the whole history (no --since, no --until), from the
//  totals relationald keeps per source as it writes (migration 8: the
//  same counts, grouped by source and by what is counted distinct): a few
//  thousand rows instead of every commit, file and test result of the
//  project (docs/performance.md, "Reports", fourth pass).
#define S_AUTHOR_TOTALS                                                                            \
    S_TOTALS ("commit_author_totals",                                                              \
              "x.email, x.commits AS n, x.first_commit AS lo, x.last_commit AS hi")
#define S_PATH_TOTALS  S_TOTALS ("commit_path_totals", "x.path")
#define S_BUILD_TOTALS S_TOTALS ("ci_build_totals", "x.status, x.builds AS n")
//  Tests (relationald 10): each test of a source once, n 0, then each
//  source's runs with no test (NULL, which the distinct count leaves out)
#define S_TEST_TOTALS                                                                              \
    S_TOTALS ("ci_test_cases", "x.suite, x.class, x.name, 0::int8 AS n")                           \
    " UNION ALL " S_TOTALS ("ci_test_runs", "NULL, NULL, NULL, x.runs")
static const char *s_figures_totals_sql =
    "WITH " S_SNAPSHOTS ", ae AS (" S_AUTHOR_TOTALS "), fp AS (" S_PATH_TOTALS "), "
    "bs AS (" S_BUILD_TOTALS "), tc AS (" S_TEST_TOTALS "), " S_FIGURES;

//  The columns of the per-source table: the first ones of s_figures_sql
#define S_SOURCE_COLUMNS 10

static const char *s_outcomes_sql =
    "WITH " S_BUILDS "SELECT status, count(*) AS builds FROM b GROUP BY status "
    "ORDER BY builds DESC, status";

//  Commits per week and author first (a few thousand rows, hashed), then
//  per week: the distinct authors of a week are its rows, not a sort of
//  every commit of the week (docs/performance.md, "Reports").
#define S_WEEKLY                                                                                   \
    S_COMMITS ", we AS (SELECT date_trunc ('week', author_time AT TIME ZONE 'UTC') AS week, "      \
              "email, count(*) AS n, sum (insertions) AS insertions, "                             \
              "sum (deletions) AS deletions FROM c GROUP BY 1, 2), "                               \
              "r AS (SELECT min (week) AS lo, max (week) AS hi FROM we), "                         \
              "w AS (SELECT g AS week FROM r, generate_series (r.lo, r.hi, '1 week') g) "          \
              "SELECT w.week::date AS week, coalesce (sum (we.n), 0)::int8 AS commits, "           \
              "count(we.email) AS authors, "                                                       \
              "coalesce (sum (we.insertions), 0)::int8 AS insertions, "                            \
              "coalesce (sum (we.deletions), 0)::int8 AS deletions "                               \
              "FROM w LEFT JOIN we ON we.week = w.week GROUP BY w.week ORDER BY w.week"

//  One statement for two sections: activity shows its first three columns
//  (commits and authors), churn all of them.
static const char *s_weekly_sql = S_WEEKLY;

static const char *s_contributors_sql =
    S_COMMITS "SELECT (array_agg (author ORDER BY author_time DESC, sha))[1] AS author_name, "
              "email AS author_email, count(*) AS commits, "
              "round (count(*)::numeric / sum (count(*)) OVER (), 4) AS share, "
              "sum (insertions) AS insertions, sum (deletions) AS deletions, "
              "min (author_time) AS first_commit, max (author_time) AS last_commit "
              "FROM c GROUP BY email ORDER BY commits DESC, email LIMIT $4";

static const char *s_bus_factor_sql = S_COMMITS ", " S_BUS (
    "SELECT 0 AS k, email, count(*) AS n FROM c GROUP BY email") "SELECT bus_factor FROM bf";

static const char *s_files_sql =
    S_COMMITS "SELECT f.path, count(*) AS commits, coalesce (sum (f.insertions), 0) AS insertions, "
              "coalesce (sum (f.deletions), 0) AS deletions, "
              "coalesce (sum (f.insertions), 0) + coalesce (sum (f.deletions), 0) AS churn "
              "FROM " S_FILES " GROUP BY f.path "
              "ORDER BY churn DESC, f.path LIMIT $4";

//  The same from relationald's totals (migration 8), for the whole history
#define S_PATH_SUMS S_TOTALS ("commit_path_totals", "x.path, x.commits, x.insertions, x.deletions")
static const char *s_files_totals_sql =
    "SELECT path, sum (commits)::int8 AS commits, sum (insertions)::int8 AS insertions, "
    "sum (deletions)::int8 AS deletions, (sum (insertions) + sum (deletions))::int8 AS churn "
    "FROM (" S_PATH_SUMS ") p GROUP BY path ORDER BY churn DESC, path LIMIT $4";

static const char *s_builds_weekly_sql =
    "WITH " S_BUILDS ", r AS (SELECT date_trunc ('week', min (at AT TIME ZONE 'UTC')) AS lo, "
    "date_trunc ('week', max (at AT TIME ZONE 'UTC')) AS hi FROM b), "
    "w AS (SELECT g::date AS week FROM r, generate_series (r.lo, r.hi, '1 week') g) "
    "SELECT w.week, count(b.id) AS builds, count(*) FILTER (WHERE b.status = 'success') AS "
    "succeeded, "
    "count(*) FILTER (WHERE b.status = 'failure') AS failed, "
    "count(*) FILTER (WHERE b.status = 'cancelled') AS cancelled, "
    "round (count(*) FILTER (WHERE b.status = 'success')::numeric "
    "  / nullif (count(*) FILTER (WHERE b.status IN ('success', 'failure')), 0), 4) "
    "AS success_rate FROM w LEFT JOIN b ON date_trunc ('week', b.at AT TIME ZONE 'UTC')::date = "
    "w.week "
    "GROUP BY w.week ORDER BY w.week";

//  Averages rounded: a float sum depends on the order rows come in (a
//  parallel plan), and the report must equal a query made another day.
static const char *s_slowest_sql =
    "WITH " S_TESTS "SELECT suite, class, name, count(*) AS runs, "
    "round (avg (duration)::numeric, 6) AS avg_duration, max (duration) AS max_duration, "
    "round ((percentile_cont (0.95) WITHIN GROUP (ORDER BY duration))::numeric, 6) AS p95_duration "
    "FROM t WHERE status NOT IN ('skipped', 'disabled') GROUP BY suite, class, name "
    "ORDER BY avg_duration DESC, suite, class, name LIMIT $4";

//  Flaky: both passed and failed (or errored) on the same commit, the
//  commit being the sha of the test's build. Failures are few: the
//  (test, commit) pairs with a failure first, then the tests that also
//  passed on one of those commits, and only those tests' runs counted per
//  commit (was: every run of every test grouped by test and commit, 190,000
//  groups at 200,000 runs). A test is (suite, class, name), class NULL
//  being a class of its own, as in a GROUP BY.
#define S_SAME_TEST(a, b)                                                                          \
    a ".suite = " b ".suite AND " a ".name = " b ".name AND " a ".class IS NOT DISTINCT FROM " b   \
      ".class"
static const char *s_flakiest_sql =
    "WITH " S_TESTS ", tb AS NOT MATERIALIZED (SELECT t.suite, t.class, t.name, t.status, b.sha "
    "FROM t JOIN ci_builds b ON b.source_id = t.source_id AND b.pipeline = t.pipeline "
    "AND b.build_id = t.build_id WHERE b.sha IS NOT NULL "
    "AND t.status IN ('passed', 'failed', 'error')), "
    "fc AS MATERIALIZED (SELECT DISTINCT suite, class, name, sha FROM tb "
    "WHERE status <> 'passed'), "
    "fk AS MATERIALIZED (SELECT DISTINCT tb.suite, tb.class, tb.name FROM tb JOIN fc "
    "ON fc.sha = tb.sha AND " S_SAME_TEST (
        "fc", "tb") " WHERE tb.status = 'passed'), "
                    "per AS (SELECT tb.suite, tb.class, tb.name, tb.sha, count(*) AS runs, "
                    "bool_or (tb.status = 'passed') AS passed, bool_or (tb.status <> 'passed') AS "
                    "failed, "
                    "count(*) FILTER (WHERE tb.status <> 'passed') AS failures FROM tb "
                    "JOIN fk ON " S_SAME_TEST (
                        "fk", "tb") " GROUP BY 1, 2, 3, 4) "
                                    "SELECT suite, class, name, sum (runs) AS runs, sum (failures) "
                                    "AS failures, "
                                    "count(*) AS commits, count(*) FILTER (WHERE passed AND "
                                    "failed) AS flaky_commits "
                                    "FROM per GROUP BY suite, class, name HAVING count(*) FILTER "
                                    "(WHERE passed AND failed) > 0 "
                                    "ORDER BY flaky_commits DESC, suite, class, name LIMIT $4";

static const char *s_languages_sql =
    "WITH " S_SNAPSHOTS "SELECT cs.language, sum (cs.files) AS files, sum (cs.code) AS code, "
    "sum (cs.comment) AS comment, sum (cs.blank) AS blank, "
    "round (sum (cs.code)::numeric / nullif (sum (sum (cs.code)) OVER (), 0), 4) AS share "
    "FROM code_stats cs JOIN latest USING (source_id, rev) WHERE cs.path IS NULL "
    "GROUP BY cs.language ORDER BY code DESC, cs.language";

static const char *s_trend_sql =
    "WITH " S_SNAPSHOTS
    "SELECT to_char (sn.at, 'YYYY-MM-DD') || ' ' || left (sn.rev, 8) AS snapshot, "
    "cs.language, sum (cs.code) AS code FROM snaps sn "
    "JOIN code_stats cs ON cs.source_id = sn.source_id AND cs.rev = sn.rev AND cs.path IS NULL "
    "GROUP BY sn.at, sn.rev, cs.language ORDER BY sn.at, sn.rev, code DESC, cs.language";

//  CPU busy = user + system of one sample (one host, one time); memory
//  used in bytes; load over one minute. Percentiles per UTC day.
//
//  One pass: the points of a sample pivoted into one row (cpu, mem, load),
//  then one sort per measure and day for both percentiles (an array of
//  fractions); percentile_cont leaves out the NULL of a sample without
//  that measure. At 1,000,000 points this halves the work of a row per
//  point and a sort per percentile.
#define S_PCT(col, digits)                                                                         \
    "round ((" col ")[1]::numeric" digits ") AS " col "_p50, "                                     \
    "round ((" col ")[2]::numeric" digits ") AS " col "_p95"
#define S_HOST_NAMES "('host.cpu.user', 'host.cpu.system', 'host.mem.used', 'host.load.1')"
#define S_HOST_PIVOT                                                                               \
    "sum (value) FILTER (WHERE name IN ('host.cpu.user', 'host.cpu.system')) AS cpu, "             \
    "max (value) FILTER (WHERE name = 'host.mem.used') AS mem, "                                   \
    "max (value) FILTER (WHERE name = 'host.load.1') AS load "
#define S_HOST_PCTS                                                                                \
    "percentile_cont (ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY cpu) AS cpu, "                      \
    "percentile_cont (ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY mem) AS mem, "                      \
    "percentile_cont (ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY load) AS load "
#define S_HOST_SELECT                                                                              \
    "SELECT day, " S_PCT ("cpu", ", 4") ", " S_PCT ("mem", "") ", " S_PCT (                        \
        "load", ", 4") " "                                                                         \
                       "FROM d ORDER BY day"
#define S_HOST_DAYS                                                                                \
    "d AS (SELECT (time AT TIME ZONE 'UTC')::date AS day, " S_HOST_PCTS "FROM s GROUP BY 1) "      \
    "" S_HOST_SELECT
static const char *s_host_sql =
    "WITH s AS (SELECT time, " S_HOST_PIVOT "FROM points WHERE name IN " S_HOST_NAMES " "
    "AND source LIKE $1 AND " S_RANGE (
        "time") " GROUP BY time, source, tags->>'host'), " S_HOST_DAYS;

//  The same figures from metricsd 6 on (its `series` view, points with
//  their series id): a sample is (time, k), k numbering the (source,
//  host) pairs of the series, and the measure of a point is a flag of its
//  series, so the million points are grouped by a time and a number, not
//  by two texts, one taken out of each point's tags, and filtered by
//  booleans, not by names (docs/performance.md, "Reports": 0.8 s of CPU
//  before, 0.6 s). dense_rank gives equal pairs one k, and a series
//  without a host its source's NULL host, as the GROUP BY above does.
#define S_POINT_RANGE S_RANGE ("p.time")
#define S_HOST_SERIES                                                                              \
    "g AS (SELECT id, source, name IN ('host.cpu.user', 'host.cpu.system') AS is_cpu, "            \
    "name = 'host.mem.used' AS is_mem, name = 'host.load.1' AS is_load, "                          \
    "dense_rank () OVER (ORDER BY source, tags->>'host') AS k FROM series "                        \
    "WHERE name IN " S_HOST_NAMES " AND source LIKE $1)"
#define S_HOST_SAMPLE                                                                              \
    "SELECT p.time, sum (p.value) FILTER (WHERE g.is_cpu) AS cpu, "                                \
    "max (p.value) FILTER (WHERE g.is_mem) AS mem, "                                               \
    "max (p.value) FILTER (WHERE g.is_load) AS load "
static const char *s_host_series_sql = "WITH " S_HOST_SERIES ", "
                                       "s AS (" S_HOST_SAMPLE "FROM points p JOIN g ON g.id = "
                                       "p.series_id WHERE " S_POINT_RANGE " GROUP BY p.time, g.k), "
                                       "" S_HOST_DAYS;

//  The same figures from metricsd 7 on: the days metricsd computed once
//  (host_daily: closed days, per source) are read as they are, the rest of
//  the period from the points (docs/metricsd.md, "Host figures of closed
//  days"). A kept day counts only when it has no pending mark (a point
//  came after it was computed) and lies wholly in the period, and only
//  for a pattern whose host series are those of one source (a day's
//  percentiles over two sources cannot be made of each one's). The points
//  read are those of the gaps between kept days (`gap`, as time ranges:
//  an index range per series and gap; OFFSET 0 keeps the subquery whole,
//  so the gap's bounds reach the index through the security barrier of
//  `points`), usually the current day; with no kept day that is the whole
//  period, the statement above.
static const char *s_host_daily_sql =
    "WITH " S_HOST_SERIES ", "
    "one AS (SELECT min (source) AS source FROM g HAVING count (DISTINCT source) = 1), "
    "kept AS (SELECT h.day, h.cpu, h.mem, h.load FROM host_daily h JOIN one USING (source) "
    "WHERE NOT EXISTS (SELECT 1 FROM host_daily_pending q WHERE q.source = h.source "
    "AND q.day = h.day) "
    "AND ($2::timestamptz IS NULL OR h.day::timestamp AT TIME ZONE 'UTC' >= $2::timestamptz) "
    "AND ($3::timestamptz IS NULL OR (h.day + 1)::timestamp AT TIME ZONE 'UTC' <= "
    "$3::timestamptz)), "
    "gap AS (SELECT * FROM (SELECT coalesce (lag (day + 1) OVER (ORDER BY day), '-infinity') "
    "::timestamp AT TIME ZONE 'UTC' AS lo, day::timestamp AT TIME ZONE 'UTC' AS hi FROM kept "
    "UNION ALL SELECT coalesce (max (day) + 1, '-infinity')::timestamp AT TIME ZONE 'UTC', "
    "'infinity' FROM kept) x WHERE lo < hi), "
    "s AS (" S_HOST_SAMPLE "FROM gap CROSS JOIN LATERAL (SELECT p.time, p.value, p.series_id "
    "FROM points p WHERE p.time >= gap.lo AND p.time < gap.hi AND " S_POINT_RANGE " "
    "AND p.series_id IN (SELECT id FROM g) OFFSET 0) p JOIN g ON g.id = p.series_id "
    "GROUP BY p.time, g.k), "
    "d AS (SELECT (time AT TIME ZONE 'UTC')::date AS day, " S_HOST_PCTS "FROM s GROUP BY 1 "
    "UNION ALL SELECT day, cpu, mem, load FROM kept) " S_HOST_SELECT;

//  has_table_privilege on a relation that may not exist (NULL then).
#define S_READABLE(rel) "has_table_privilege (to_regclass ('" rel "'), 'SELECT')"

//  The figures of earlier reports of the whole history (omni-report
//  --intake, relationald's analysis_trend), per source and report day in
//  the period: how the headline figures themselves moved.
static const char *s_history_sql =
    "SELECT a.day, a.source, a.commits, a.authors, a.builds, "
    "round (a.success_rate::numeric, 4) AS success_rate, a.code_lines, a.bus_factor "
    "FROM analysis_trend a WHERE a.source LIKE $1 AND a.since IS NULL AND a.until IS NULL "
    "AND " S_RANGE ("a.day::timestamptz") " ORDER BY a.day, a.source";

//  What the database has and this role may read; the range as PostgreSQL
//  reads it. Then metricsd 6's series view and points' series_id
//  (s_host_series_sql), relationald 8's totals, metricsd 7's kept days.
#define S_PROBE_RELATIONAL                                                                         \
    S_READABLE ("commits_canonical")                                                               \
    " AND " S_READABLE ("commit_files") " AND " S_READABLE ("ci_builds") " AND " S_READABLE (      \
        "ci_tests") " AND " S_READABLE ("code_stats") " AND " S_READABLE ("sources")
#define S_PROBE_POINTS S_READABLE ("points")
#define S_PROBE_TREND  S_READABLE ("analysis_trend")
#define S_PROBE_SERIES S_READABLE ("series")
//  relationald 8's totals (10's for tests), metricsd 7's kept days
#define S_PROBE_TOTALS                                                                             \
    S_READABLE ("commit_author_totals")                                                            \
    " AND " S_READABLE ("commit_path_totals") " AND " S_READABLE (                                 \
        "ci_build_totals") " AND " S_READABLE ("ci_test_cases") " AND " S_READABLE ("ci_test_"     \
                                                                                    "runs")
#define S_PROBE_HOST_DAILY S_READABLE ("host_daily") " AND " S_READABLE ("host_daily_pending")
static const char *s_probe_sql =
    "SELECT to_regclass ('commits_canonical') IS NOT NULL AND to_regclass ('ci_builds') IS NOT "
    "NULL AND to_regclass ('code_stats') IS NOT NULL, to_regclass ('points') IS NOT NULL, "
    "$2::timestamptz, $3::timestamptz, $1::text, "
    "coalesce (" S_PROBE_RELATIONAL ", false), "
    "coalesce (" S_PROBE_POINTS ", false), "
    "coalesce (" S_PROBE_TREND ", false), "
    "coalesce (" S_PROBE_SERIES ", false) AND EXISTS (SELECT 1 FROM pg_attribute "
    "WHERE attrelid = to_regclass ('points') AND attname = 'series_id' AND NOT attisdropped), "
    "coalesce (" S_PROBE_TOTALS ", false), coalesce (" S_PROBE_HOST_DAILY ", false)";

//  A statement of the report sent ahead to the pool (see s_pool_start)
typedef struct {
    const char *sql; //  one of the constant statements above (its identity)
    int nparams;
    bool claimed; //  a connection runs it or ran it
    bool done;    //  result or why is set
    bool lost;    //  the connection that ran it is gone
    PGresult *result;
    char why[512]; //  the error, when it failed
} s_job_t;

#define S_MAX_JOBS    16
#define S_MAX_WORKERS 4

typedef struct s_gather_t s_gather_t;

typedef struct {
    s_gather_t *gather;
    pthread_t thread;
    bool started;
} s_worker_t;

struct s_gather_t {
    omni_pgconn_t *conn;
    const char *params[4];
    char top[16];
    bool lost; //  the connection is gone: nothing more can be read
    bool relational, points;
    //  There, but this role has no SELECT on them
    bool relational_denied, points_denied;
    bool trend;           //  analysis_trend (relationald 4) is there and readable
    const char *host_sql; //  s_host_sql, s_host_series_sql (metricsd 6), s_host_daily_sql (7)
    //  s_figures_sql and s_files_sql, or their totals' statements
    //  (relationald 8, for the whole history)
    const char *figures_sql, *files_sql;
    FILE *explain;         //  where query plans go, or NULL
    int64_t pool_min_rows; //  gather_options_t's
    int connections;       //  gather_options_t's
    PGresult *weekly;      //  activity's result, which churn shows too
    bool figures_read;     //  the summary's figures were read, and in them
    char bus_factor[32];   //  the bus factor ("" = no commits)
    //  The pool: statements sent ahead, run by worker connections that
    //  share the first one's snapshot (and by the first, while it waits)
    s_job_t jobs[S_MAX_JOBS];
    int njobs;
    s_worker_t workers[S_MAX_WORKERS];
    int nworkers;
    char *worker_setup;          //  the workers' session and snapshot SQL
    const char **keys, **values; //  the first connection's conninfo, for the workers
    PQconninfoOption *conninfo;
    bool stopping; //  no worker claims a job any more
    pthread_mutex_t mutex;
    pthread_cond_t cond;
};

//  A report's session, followed by its statement timeout in ms. The
//  settings hold for this session only: a report never reconnects
//  (gather_report fails instead), so they cannot be lost on the way. No
//  JIT: the report's statements are big (many CTEs, aggregates) and run
//  once each, so JIT compiling them cost more than it saved, 2 s of a
//  2.5 s query at 100,000 commits. work_mem: the distinct counts and
//  percentiles sort a project's rows (300,000 file paths at 100,000
//  commits), on disk at the default 4 MB (docs/performance.md, "Reports").
static const char *s_session_sql = "SET TimeZone = 'UTC'; SET application_name = 'omni-report'; "
                                   "SET jit = off; SET work_mem = '64MB'; SET statement_timeout = ";

omni_pgconn_t *
gather_connect (const char *dsn, int64_t statement_timeout_ms, int64_t connect_timeout_ms,
                char *error, size_t error_size)
{
    //  libpq takes connect_timeout from the environment when the conninfo
    //  has none; whole seconds, at least 2 (libpq's own minimum).
    char seconds[32];
    snprintf (seconds, sizeof seconds, "%lld",
              (long long) (connect_timeout_ms < 2000 ? 2 : (connect_timeout_ms + 999) / 1000));
    setenv ("PGCONNECT_TIMEOUT", seconds, 0);
    omni_pgconn_t *conn = omni_pgconn_new (dsn, error, error_size);
    if (!conn)
        return NULL;
    char sql[256];
    snprintf (sql, sizeof sql, "%s%lld", s_session_sql, (long long) statement_timeout_ms);
    if (omni_pgconn_ensure (conn) != 0 || omni_pgconn_exec (conn, sql) != PGCONN_OK) {
        snprintf (error, error_size, "PostgreSQL (%s) is not available: %s",
                  omni_pgconn_display (conn), omni_pgconn_error (conn));
        omni_pgconn_destroy (&conn);
        return NULL;
    }
    return conn;
}

//  The snapshot, the session's statement timeout, and the planner's row
//  estimate of the tables a report reads most of (0 before their first
//  ANALYZE, so a young database stays on one connection).
#define S_POOL_MIN_ROWS 100000
#define S_EST(rel)                                                                                 \
    "(SELECT coalesce (sum (greatest (c.reltuples, 0)), 0) FROM pg_class c "                       \
    "WHERE c.oid = to_regclass ('" rel "') OR c.oid IN (SELECT i.inhrelid FROM pg_inherits i "     \
    "WHERE i.inhparent = to_regclass ('" rel "')))"
static const char *s_pool_sql =
    "SELECT pg_export_snapshot (), current_setting ('statement_timeout', true), "
    "(" S_EST ("points_data") " + " S_EST ("points") " + " S_EST ("commits") " + " S_EST (
        "commit_files") " + " S_EST ("ci_tests") ")::int8";

//  Connections by default, the first included: three backends keep two
//  cores busy while one waits for a result to be taken; more only queue
//  for the same CPUs (docs/performance.md, "Reports").
#define S_CONNECTIONS 3

//  Runs one statement on a connection in a savepoint, so that a failure
//  leaves the transaction usable for the next one. The result, or NULL
//  with `why` (its first line) and `lost` when the connection went away.
static PGresult *
s_run (PGconn *conn, const char *sql, int nparams, const char *const *params, char *why,
       size_t why_size, bool *lost)
{
    PQclear (PQexec (conn, "SAVEPOINT job"));
    PGresult *result = PQexecParams (conn, sql, nparams, NULL, params, NULL, NULL, 0);
    if (result && PQresultStatus (result) == PGRES_TUPLES_OK) {
        PQclear (PQexec (conn, "RELEASE SAVEPOINT job"));
        return result;
    }
    const char *message = result ? PQresultErrorMessage (result) : PQerrorMessage (conn);
    snprintf (why, why_size, "%.*s", (int) strcspn (message, "\n"), message);
    PQclear (result);
    PQclear (PQexec (conn, "ROLLBACK TO SAVEPOINT job"));
    *lost = PQstatus (conn) != CONNECTION_OK;
    return NULL;
}

//  The next job nobody runs yet (under the mutex), or NULL
static s_job_t *
s_job_next (s_gather_t *self)
{
    for (int i = 0; i < self->njobs; i++)
        if (!self->jobs[i].claimed)
            return self->jobs + i;
    return NULL;
}

//  Runs a claimed job on `conn` (the caller holds no lock) and hands its
//  result to whoever waits for it. Returns whether the connection was lost.
static bool
s_job_run (s_gather_t *self, PGconn *conn, s_job_t *job)
{
    char why[sizeof job->why] = "";
    bool lost = false;
    PGresult *result = s_run (conn, job->sql, job->nparams, self->params, why, sizeof why, &lost);
    pthread_mutex_lock (&self->mutex);
    job->result = result;
    job->lost = lost;
    memcpy (job->why, why, sizeof why);
    job->done = true;
    pthread_cond_broadcast (&self->cond);
    pthread_mutex_unlock (&self->mutex);
    return lost;
}

//  A worker: its own connection of the same role, in the first one's
//  snapshot (the figures agree with each other), then jobs until none is
//  left. A worker that cannot connect or import the snapshot just ends:
//  its jobs are run by the others or by the first connection.
static void *
s_worker (void *arg)
{
    s_gather_t *self = ((s_worker_t *) arg)->gather;
    PGconn *conn = PQconnectdbParams (self->keys, self->values, 0);
    PGresult *set = PQstatus (conn) == CONNECTION_OK ? PQexec (conn, self->worker_setup) : NULL;
    bool ready = set && PQresultStatus (set) == PGRES_COMMAND_OK;
    PQclear (set);
    while (ready) {
        pthread_mutex_lock (&self->mutex);
        s_job_t *job = self->stopping ? NULL : s_job_next (self);
        if (job)
            job->claimed = true;
        pthread_mutex_unlock (&self->mutex);
        if (!job)
            break;
        ready = !s_job_run (self, conn, job);
    }
    PQfinish (conn);
    return NULL;
}

//  Sends the report's statements ahead to a pool of connections: each
//  statement reads all of the project's rows (no index makes one small),
//  so the page takes the longest chain of statements on one connection
//  instead of their sum. The statements and their order are those the
//  sections will ask for, longest first; a section then takes its result
//  (s_query). Only when the planner counts enough rows for the worker
//  connections (a few ms each) to pay for themselves; never for
//  `explain`. Called at the transaction's top level (a snapshot cannot be
//  exported from a section's savepoint). Anything that fails here leaves
//  the statements to the first connection, as without a pool.
static void
s_pool_start (s_gather_t *self)
{
    PGconn *main = omni_pgconn_handle (self->conn);
    PGresult *result = PQexec (main, s_pool_sql);
    if (PQresultStatus (result) != PGRES_TUPLES_OK || PQntuples (result) != 1) {
        log_debug ("report.pool_not_used", "why=\"%s\"", PQerrorMessage (main));
        PQclear (result);
        //  The transaction is aborted: start it again, without a pool
        PQclear (PQexec (main, "ROLLBACK"));
        PQclear (PQexec (main, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
        return;
    }
    if (self->pool_min_rows >= 0 &&
        strtoll (PQgetvalue (result, 0, 2), NULL, 10) <
            (self->pool_min_rows ? self->pool_min_rows : S_POOL_MIN_ROWS)) {
        PQclear (result); //  few rows: more connections would cost more than they save
        return;
    }
    //  The statements, longest first (docs/performance.md, "Reports")
    const char *relational[] = {self->figures_sql,
                                s_flakiest_sql,
                                self->files_sql,
                                s_weekly_sql,
                                s_slowest_sql,
                                s_contributors_sql,
                                s_outcomes_sql,
                                s_builds_weekly_sql,
                                s_languages_sql,
                                s_trend_sql,
                                NULL};
    bool readable = self->relational && !self->relational_denied;
    if (self->points && !self->points_denied)
        self->jobs[self->njobs++] = (s_job_t){.sql = self->host_sql, .nparams = 3};
    for (int i = 0; readable && relational[i]; i++)
        self->jobs[self->njobs++] = (s_job_t){
            .sql = relational[i],
            .nparams = relational[i] == s_contributors_sql || relational[i] == self->files_sql ||
                               relational[i] == s_slowest_sql || relational[i] == s_flakiest_sql
                           ? 4
                           : 3};
    if (readable && self->trend)
        self->jobs[self->njobs++] = (s_job_t){.sql = s_history_sql, .nparams = 3};
    assert (self->njobs <= S_MAX_JOBS);
    //  The same server, database, role and options as the first
    self->conninfo = PQconninfo (main);
    int n = 0;
    for (PQconninfoOption *o = self->conninfo; o && o->keyword; o++)
        n++;
    self->keys = calloc ((size_t) n + 1, sizeof (char *));
    self->values = calloc ((size_t) n + 1, sizeof (char *));
    assert (self->keys && self->values);
    n = 0;
    for (PQconninfoOption *o = self->conninfo; o && o->keyword; o++)
        if (o->val && *o->val)
            self->keys[n] = o->keyword, self->values[n++] = o->val;
    char *snapshot =
        PQescapeLiteral (main, PQgetvalue (result, 0, 0), strlen (PQgetvalue (result, 0, 0)));
    char *timeout =
        PQescapeLiteral (main, PQgetvalue (result, 0, 1), strlen (PQgetvalue (result, 0, 1)));
    size_t size = strlen (s_session_sql) + 200 + (snapshot ? strlen (snapshot) : 0) +
                  (timeout ? strlen (timeout) : 0);
    self->worker_setup = malloc (size);
    assert (self->worker_setup);
    snprintf (self->worker_setup, size,
              "%s%s; BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT %s",
              s_session_sql, timeout ? timeout : "'0'", snapshot ? snapshot : "''");
    PQfreemem (snapshot);
    PQfreemem (timeout);
    PQclear (result);
    int workers = (self->connections > 0 ? self->connections : S_CONNECTIONS) - 1;
    if (workers > S_MAX_WORKERS)
        workers = S_MAX_WORKERS;
    if (workers > self->njobs - 1)
        workers = self->njobs - 1;
    for (int i = 0; i < workers; i++) {
        s_worker_t *worker = self->workers + self->nworkers;
        worker->gather = self;
        if (pthread_create (&worker->thread, NULL, s_worker, worker) == 0) {
            worker->started = true;
            self->nworkers++;
        }
    }
}

//  Ends the pool: no new job is claimed, the running ones end (each is
//  bounded by the statement timeout), results nobody asked for are freed.
static void
s_pool_stop (s_gather_t *self)
{
    pthread_mutex_lock (&self->mutex);
    self->stopping = true;
    pthread_mutex_unlock (&self->mutex);
    for (int i = 0; i < self->nworkers; i++)
        pthread_join (self->workers[i].thread, NULL);
    self->nworkers = 0;
    for (int i = 0; i < self->njobs; i++)
        PQclear (self->jobs[i].result);
    self->njobs = 0;
    free (self->worker_setup);
    free (self->keys);
    free (self->values);
    PQconninfoFree (self->conninfo);
    self->worker_setup = NULL;
    self->keys = self->values = NULL;
    self->conninfo = NULL;
}

//  The pool's job of `sql`, or NULL when it was not sent ahead
static s_job_t *
s_job_find (s_gather_t *self, const char *sql)
{
    for (int i = 0; i < self->njobs; i++)
        if (self->jobs[i].sql == sql)
            return self->jobs + i;
    return NULL;
}

//  A job's result once done, handed to the caller (NULL after an error,
//  said in `why`). While a worker runs it, the first connection runs the
//  jobs nobody has taken yet rather than wait idle.
static PGresult *
s_job_take (s_gather_t *self, s_job_t *job, char *why, size_t why_size)
{
    pthread_mutex_lock (&self->mutex);
    while (!job->done) {
        s_job_t *next = job->claimed ? s_job_next (self) : job;
        if (next && !self->lost) {
            next->claimed = true;
            pthread_mutex_unlock (&self->mutex);
            s_job_run (self, omni_pgconn_handle (self->conn), next);
            pthread_mutex_lock (&self->mutex);
            if (next->lost)
                self->lost = true;
        } else if (self->lost && !job->claimed) {
            job->claimed = job->done = true;
            snprintf (job->why, sizeof job->why, "the connection was lost");
        } else
            pthread_cond_wait (&self->cond, &self->mutex);
    }
    PGresult *result = job->result;
    job->result = NULL;
    snprintf (why, why_size, "%s", job->why);
    pthread_mutex_unlock (&self->mutex);
    return result;
}

//  With `explain`: the plan of a query as it runs (EXPLAIN ANALYZE, so it
//  runs twice), under a header naming the section and the statement.
static void
s_explain (s_gather_t *self, model_section_t *section, const char *sql, const char *name,
           int nparams)
{
    size_t len = strlen (sql);
    char *text = malloc (len + 64);
    assert (text);
    snprintf (text, len + 64, "EXPLAIN (ANALYZE, BUFFERS) %s", sql);
    //  The variable's name without s_ and _sql
    size_t n = strlen (name);
    if (n > 6 && strncmp (name, "s_", 2) == 0 && strcmp (name + n - 4, "_sql") == 0)
        name += 2, n -= 6;
    fprintf (self->explain, "-- %s: %.*s\n", section->id, (int) n, name);
    if (omni_pgconn_exec (self->conn, "SAVEPOINT plan") != PGCONN_OK) {
        self->lost = true;
        free (text);
        return;
    }
    PGresult *result = omni_pgconn_query (self->conn, text, nparams, self->params);
    free (text);
    if (!result)
        fprintf (self->explain, "(no plan: %s)\n", omni_pgconn_error (self->conn));
    for (int r = 0; result && r < PQntuples (result); r++)
        fprintf (self->explain, "%s\n", PQgetvalue (result, r, 0));
    fprintf (self->explain, "\n");
    PQclear (result);
    if (omni_pgconn_exec (self->conn, result ? "RELEASE SAVEPOINT plan"
                                             : "ROLLBACK TO SAVEPOINT plan") != PGCONN_OK)
        self->lost = true;
}

//  Runs one query of the report. NULL after an error: the error goes into
//  the section (which then says why it is empty) and the transaction is
//  brought back to the savepoint taken before, so the next section runs.
static PGresult *
s_query_named (s_gather_t *self, model_section_t *section, const char *sql, const char *name,
               int nparams)
{
    if (self->lost)
        return NULL;
    s_job_t *job = s_job_find (self, sql);
    if (job) {
        char why[512];
        PGresult *result = s_job_take (self, job, why, sizeof why);
        if (!result && !self->lost) {
            char text[600];
            snprintf (text, sizeof text, "could not be read: %s", why);
            log_warn ("report.section_failed", "section=%s error=\"%s\"", section->id, why);
            model_section_empty (section, text);
        }
        return result;
    }
    if (self->explain)
        s_explain (self, section, sql, name, nparams);
    if (omni_pgconn_exec (self->conn, "SAVEPOINT section") != PGCONN_OK) {
        self->lost = true;
        return NULL;
    }
    PGresult *result = omni_pgconn_query (self->conn, sql, nparams, self->params);
    if (!result) {
        char why[600];
        snprintf (why, sizeof why, "could not be read: %s", omni_pgconn_error (self->conn));
        log_warn ("report.section_failed", "section=%s error=\"%s\"", section->id,
                  omni_pgconn_error (self->conn));
        model_section_empty (section, why);
        if (omni_pgconn_exec (self->conn, "ROLLBACK TO SAVEPOINT section") != PGCONN_OK)
            self->lost = true;
        return NULL;
    }
    omni_pgconn_exec (self->conn, "RELEASE SAVEPOINT section");
    return result;
}

#define s_query(self, section, sql, nparams) s_query_named (self, section, sql, #sql, nparams)

static model_type_t
s_type (Oid oid)
{
    switch (oid) {
    case 20:   //  int8
    case 21:   //  int2
    case 23:   //  int4
    case 700:  //  float4
    case 701:  //  float8
    case 1700: //  numeric
        return MODEL_NUM;
    case 1082: //  date
    case 1114: //  timestamp
    case 1184: //  timestamptz
        return MODEL_TIME;
    default: return MODEL_TEXT;
    }
}

//  A table of the section from a result: column ids are the SQL names,
//  titles given in the same order.
static model_table_t *
s_table_part (model_section_t *section, const char *id, const char *title, PGresult *result,
              const char *const *titles, int first_row, int ncols)
{
    model_table_t *table = model_table_add (section, id, title);
    for (int i = 0; i < ncols; i++)
        model_column_add (table, PQfname (result, i), titles[i] ? titles[i] : PQfname (result, i),
                          s_type (PQftype (result, i)));
    const char *row[32];
    assert (ncols <= 32);
    for (int r = first_row; r < PQntuples (result); r++) {
        for (int i = 0; i < ncols; i++)
            row[i] = PQgetisnull (result, r, i) ? NULL : PQgetvalue (result, r, i);
        model_row_add (table, row);
    }
    return table;
}

static model_table_t *
s_table (model_section_t *section, const char *id, const char *title, PGresult *result,
         const char *const *titles)
{
    return s_table_part (section, id, title, result, titles, 0, PQnfields (result));
}

static const char *
s_value (PGresult *result, const char *column)
{
    int col = PQfnumber (result, column);
    if (col < 0 || PQntuples (result) < 1 || PQgetisnull (result, 0, col))
        return NULL;
    return PQgetvalue (result, 0, col);
}

static bool
s_zero (const char *value)
{
    return !value || strcmp (value, "0") == 0;
}

#define S_NO_RELATIONAL "no relationald tables in this database"
#define S_DENIED                                                                                   \
    "this role may not read relationald's tables (no grant: see omnictl grant in "                 \
    "docs/operations.md)"

//  Whether a relational section can be read; if not, says why in it.
static bool
s_relational (s_gather_t *self, model_section_t *section)
{
    if (!self->relational)
        model_section_empty (section, S_NO_RELATIONAL);
    else if (self->relational_denied)
        model_section_empty (section, S_DENIED);
    else
        return true;
    return false;
}

static void
s_summary (s_gather_t *self, model_t *model)
{
    model_section_t *section = model_section_add (model, "summary", "Summary");
    if (!s_relational (self, section))
        return;
    PGresult *result = s_query_named (
        self, section, self->figures_sql,
        self->figures_sql == s_figures_sql ? "s_figures_sql" : "s_figures_totals_sql", 3);
    if (!result)
        return;
    static const struct {
        const char *id, *title;
        model_type_t type;
    } figures[] = {{"commits", "Commits", MODEL_NUM},
                   {"authors", "Authors", MODEL_NUM},
                   {"files", "Files touched", MODEL_NUM},
                   {"first_commit", "First commit", MODEL_TIME},
                   {"last_commit", "Last commit", MODEL_TIME},
                   {"builds", "Builds", MODEL_NUM},
                   {"success_rate", "Build success rate", MODEL_NUM},
                   {"test_runs", "Test runs", MODEL_NUM},
                   {"tests", "Tests", MODEL_NUM},
                   {"code_lines", "Lines of code", MODEL_NUM}};
    for (size_t i = 0; i < sizeof figures / sizeof figures[0]; i++)
        model_figure_add (section, figures[i].id, figures[i].title, figures[i].type,
                          s_value (result, figures[i].id));
    self->figures_read = true;
    const char *bus = s_value (result, "bus_factor");
    snprintf (self->bus_factor, sizeof self->bus_factor, "%s", bus ? bus : "");
    bool empty = s_zero (s_value (result, "commits")) && s_zero (s_value (result, "builds")) &&
                 s_zero (s_value (result, "test_runs")) && !s_value (result, "code_lines");
    if (empty) {
        PQclear (result);
        model_section_empty (section, "no commits, builds, tests or code counts for this project");
        return;
    }
    //  The same figures per source (the rows after the first): a pattern's
    //  report shows which source holds what, and --intake stores these
    //  rows (analysis.summary).
    const char *source_titles[] = {"Source",        "Commits",      "Authors",   "Files",
                                   "Builds",        "Success rate", "Test runs", "Tests",
                                   "Lines of code", "Bus factor"};
    s_table_part (section, "sources", "Per source", result, source_titles, 1, S_SOURCE_COLUMNS);
    PQclear (result);
    result = s_query (self, section, s_outcomes_sql, 3);
    if (!result)
        return;
    const char *titles[] = {"Build outcome", "Builds"};
    s_table (section, "build_outcomes", "Builds by outcome", result, titles);
    if (PQntuples (result) > 0) {
        const char *values[] = {"builds", NULL};
        model_chart_add (section, "build_outcomes", "Builds by outcome", MODEL_HBARS,
                         "build_outcomes", "status", NULL, values, "builds");
    }
    PQclear (result);
}

static void
s_activity (s_gather_t *self, model_t *model)
{
    model_section_t *section = model_section_add (model, "activity", "Commit activity per week");
    if (!s_relational (self, section))
        return;
    PGresult *result = s_query (self, section, s_weekly_sql, 3);
    if (!result)
        return;
    if (PQntuples (result) == 0)
        model_section_empty (section, "no commits in this period");
    else {
        const char *titles[] = {"Week", "Commits", "Authors"};
        s_table_part (section, "weekly", "Commits per week", result, titles, 0, 3);
        const char *values[] = {"commits", NULL};
        model_chart_add (section, "commits", "Commits per week (UTC, Monday)", MODEL_BARS, "weekly",
                         "week", NULL, values, "commits");
    }
    self->weekly = result; //  for churn
}

static void
s_contributors (s_gather_t *self, model_t *model)
{
    model_section_t *section = model_section_add (model, "contributors", "Contributors");
    if (!s_relational (self, section))
        return;
    //  The summary's figures have it; its own statement only when they failed
    PGresult *result = NULL;
    if (!self->figures_read && !(result = s_query (self, section, s_bus_factor_sql, 3)))
        return;
    const char *bus = result              ? s_value (result, "bus_factor")
                      : *self->bus_factor ? self->bus_factor
                                          : NULL;
    if (!bus) {
        PQclear (result);
        model_section_empty (section, "no commits in this period");
        return;
    }
    model_figure_add (section, "bus_factor", "Bus factor (fewest authors with half the commits)",
                      MODEL_NUM, bus);
    PQclear (result);
    result = s_query (self, section, s_contributors_sql, 4);
    if (!result)
        return;
    const char *titles[] = {"Author",     "E-mail",    "Commits",      "Share",
                            "Insertions", "Deletions", "First commit", "Last commit"};
    s_table (section, "top", "Top contributors", result, titles);
    const char *values[] = {"commits", NULL};
    model_chart_add (section, "top", "Commits per author", MODEL_HBARS, "top", "author_name", NULL,
                     values, "commits");
    PQclear (result);
}

static void
s_churn (s_gather_t *self, model_t *model)
{
    model_section_t *section = model_section_add (model, "churn", "Churn");
    if (!s_relational (self, section))
        return;
    PGresult *result = self->weekly ? self->weekly : s_query (self, section, s_weekly_sql, 3);
    self->weekly = NULL;
    if (!result)
        return;
    if (PQntuples (result) == 0) {
        PQclear (result);
        model_section_empty (section, "no commits in this period");
        return;
    }
    const char *titles[] = {"Week", "Commits", "Authors", "Insertions", "Deletions"};
    s_table (section, "weekly", "Lines changed per week", result, titles);
    PQclear (result);
    const char *values[] = {"insertions", "deletions", NULL};
    model_chart_add (section, "weekly", "Insertions and deletions per week", MODEL_BARS, "weekly",
                     "week", NULL, values, "lines");
    result =
        s_query_named (self, section, self->files_sql,
                       self->files_sql == s_files_sql ? "s_files_sql" : "s_files_totals_sql", 4);
    if (!result)
        return;
    const char *file_titles[] = {"File", "Commits", "Insertions", "Deletions", "Churn"};
    s_table (section, "files", "Most changed files", result, file_titles);
    PQclear (result);
}

static void
s_ci (s_gather_t *self, model_t *model)
{
    model_section_t *section = model_section_add (model, "ci", "Continuous integration");
    if (!s_relational (self, section))
        return;
    PGresult *result = s_query (self, section, s_builds_weekly_sql, 3);
    if (!result)
        return;
    bool builds = PQntuples (result) > 0;
    if (builds) {
        const char *titles[] = {"Week",   "Builds",    "Succeeded",
                                "Failed", "Cancelled", "Success rate"};
        s_table (section, "weekly", "Builds per week", result, titles);
        const char *values[] = {"success_rate", NULL};
        model_chart_add (section, "success", "Build success rate per week", MODEL_LINES, "weekly",
                         "week", NULL, values, "rate");
    }
    PQclear (result);
    result = s_query (self, section, s_slowest_sql, 4);
    if (!result)
        return;
    bool tests = PQntuples (result) > 0;
    const char *slow_titles[] = {"Suite", "Class", "Test", "Runs", "Average s", "Max s", "p95 s"};
    if (tests) {
        s_table (section, "slowest", "Slowest tests", result, slow_titles);
        const char *values[] = {"avg_duration", NULL};
        model_chart_add (section, "slowest", "Slowest tests (average seconds)", MODEL_HBARS,
                         "slowest", "name", NULL, values, "s");
    }
    PQclear (result);
    result = s_query (self, section, s_flakiest_sql, 4);
    if (!result)
        return;
    const char *flaky_titles[] = {
        "Suite", "Class", "Test", "Runs", "Failures", "Commits", "Commits with both outcomes"};
    if (tests)
        s_table (section, "flakiest", "Flakiest tests (passed and failed on the same commit)",
                 result, flaky_titles);
    PQclear (result);
    if (!builds && !tests)
        model_section_empty (section, "no builds or tests in this period");
}

static void
s_code (s_gather_t *self, model_t *model)
{
    model_section_t *section = model_section_add (model, "code", "Code composition");
    if (!s_relational (self, section))
        return;
    PGresult *result = s_query (self, section, s_languages_sql, 3);
    if (!result)
        return;
    if (PQntuples (result) == 0) {
        PQclear (result);
        model_section_empty (section, "no code counts (collectord code) in this period");
        return;
    }
    const char *titles[] = {"Language", "Files", "Code", "Comments", "Blank", "Share of code"};
    s_table (section, "languages", "Languages at the latest snapshot", result, titles);
    PQclear (result);
    const char *values[] = {"code", NULL};
    model_chart_add (section, "languages", "Lines of code per language", MODEL_HBARS, "languages",
                     "language", NULL, values, "lines");
    result = s_query (self, section, s_trend_sql, 3);
    if (!result)
        return;
    const char *trend_titles[] = {"Snapshot", "Language", "Code"};
    s_table (section, "trend", "Lines of code per snapshot", result, trend_titles);
    PQclear (result);
    model_chart_add (section, "trend", "Lines of code across snapshots", MODEL_LINES, "trend",
                     "snapshot", "language", values, "lines");
}

static void
s_host (s_gather_t *self, model_t *model)
{
    model_section_t *section = model_section_add (model, "host", "Host performance");
    if (!self->points || self->points_denied) {
        model_section_empty (section, self->points ? "this role may not read metricsd's points"
                                                   : "no metricsd points table in this database");
        return;
    }
    PGresult *result = s_query_named (self, section, self->host_sql,
                                      self->host_sql == s_host_daily_sql    ? "s_host_daily_sql"
                                      : self->host_sql == s_host_series_sql ? "s_host_series_sql"
                                                                            : "s_host_sql",
                                      3);
    if (!result)
        return;
    if (PQntuples (result) == 0) {
        PQclear (result);
        model_section_empty (section, "no host metrics (collectord host) in this period");
        return;
    }
    const char *titles[] = {"Day",        "CPU % p50", "CPU % p95", "Memory used p50",
                            "Memory p95", "Load p50",  "Load p95"};
    s_table (section, "daily", "Host per day", result, titles);
    PQclear (result);
    const char *cpu[] = {"cpu_p50", "cpu_p95", NULL};
    const char *mem[] = {"mem_p50", "mem_p95", NULL};
    const char *load[] = {"load_p50", "load_p95", NULL};
    model_chart_add (section, "cpu", "CPU busy (user + system) per day", MODEL_LINES, "daily",
                     "day", NULL, cpu, "%");
    model_chart_add (section, "memory", "Memory used per day", MODEL_LINES, "daily", "day", NULL,
                     mem, "bytes");
    model_chart_add (section, "load", "Load (1 min) per day", MODEL_LINES, "daily", "day", NULL,
                     load, NULL);
}

static void
s_history (s_gather_t *self, model_t *model)
{
    model_section_t *section = model_section_add (model, "history", "Figures across reports");
    if (!s_relational (self, section))
        return;
    if (!self->trend) {
        model_section_empty (section, "no stored figures in this database (relationald of an "
                                      "older release, or no right to analysis_trend)");
        return;
    }
    PGresult *result = s_query (self, section, s_history_sql, 3);
    if (!result)
        return;
    if (PQntuples (result) == 0) {
        PQclear (result);
        model_section_empty (section, "no stored figures yet: omni-report --intake stores each "
                                      "report's, one row per source and day");
        return;
    }
    const char *titles[] = {"Report day", "Source",       "Commits",       "Authors",
                            "Builds",     "Success rate", "Lines of code", "Bus factor"};
    s_table (section, "reports", "Figures of each report (whole history)", result, titles);
    PQclear (result);
    const char *bus[] = {"bus_factor", NULL};
    const char *rate[] = {"success_rate", NULL};
    model_chart_add (section, "bus_factor", "Bus factor, report after report", MODEL_LINES,
                     "reports", "day", "source", bus, "authors");
    model_chart_add (section, "success_rate", "Build success rate, report after report",
                     MODEL_LINES, "reports", "day", "source", rate, "rate");
}

model_t *
gather_report (omni_pgconn_t *conn, const gather_options_t *options, char *error, size_t error_size)
{
    s_gather_t self = {.conn = conn,
                       .explain = options->explain,
                       .pool_min_rows = options->pool_min_rows,
                       .connections = options->connections};
    pthread_mutex_init (&self.mutex, NULL);
    pthread_cond_init (&self.cond, NULL);
    snprintf (self.top, sizeof self.top, "%d", options->top > 0 ? options->top : 10);
    self.params[0] = options->pattern ? options->pattern : "%";
    self.params[1] = options->since;
    self.params[2] = options->until;
    self.params[3] = self.top;
    //  One snapshot for every section, so the figures agree with each other.
    if (!omni_pgconn_handle (conn) ||
        omni_pgconn_exec (conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") != PGCONN_OK) {
        snprintf (error, error_size, "PostgreSQL (%s): %s", omni_pgconn_display (conn),
                  omni_pgconn_error (conn));
        return NULL;
    }
    //  Present, and readable by this role: a role never granted anything
    //  (not even omni_viewer) gets a report that says so, not an error.
    PGresult *result = omni_pgconn_query (conn, s_probe_sql, 3, self.params);
    if (!result) {
        snprintf (error, error_size, "PostgreSQL (%s): %s", omni_pgconn_display (conn),
                  omni_pgconn_error (conn));
        omni_pgconn_exec (conn, "ROLLBACK");
        return NULL;
    }
    self.relational = strcmp (PQgetvalue (result, 0, 0), "t") == 0;
    self.points = strcmp (PQgetvalue (result, 0, 1), "t") == 0;
    self.relational_denied = self.relational && strcmp (PQgetvalue (result, 0, 5), "t") != 0;
    self.points_denied = self.points && strcmp (PQgetvalue (result, 0, 6), "t") != 0;
    self.trend = strcmp (PQgetvalue (result, 0, 7), "t") == 0;
    bool series = strcmp (PQgetvalue (result, 0, 8), "t") == 0;
    self.host_sql = !series                                                     ? s_host_sql
                    : strcmp (PQgetvalue (result, 0, 10), "t") || options->live ? s_host_series_sql
                                                                                : s_host_daily_sql;
    //  The totals hold the whole history: a period is counted from the rows
    bool totals = strcmp (PQgetvalue (result, 0, 9), "t") == 0 && !options->since &&
                  !options->until && !options->live;
    self.figures_sql = totals ? s_figures_totals_sql : s_figures_sql;
    self.files_sql = totals ? s_files_totals_sql : s_files_sql;
    //  The range as PostgreSQL read it, so the report says what it covers.
    model_t *model =
        model_new (options->project ? options->project : self.params[0], self.params[0],
                   PQgetisnull (result, 0, 2) ? NULL : PQgetvalue (result, 0, 2),
                   PQgetisnull (result, 0, 3) ? NULL : PQgetvalue (result, 0, 3));
    PQclear (result);
    if (!self.explain && self.connections != 1 &&
        ((self.points && !self.points_denied) || (self.relational && !self.relational_denied)))
        s_pool_start (&self);
    s_summary (&self, model);
    s_activity (&self, model);
    s_contributors (&self, model);
    s_churn (&self, model);
    s_ci (&self, model);
    s_code (&self, model);
    s_host (&self, model);
    s_history (&self, model);
    PQclear (self.weekly);
    s_pool_stop (&self);
    pthread_mutex_destroy (&self.mutex);
    pthread_cond_destroy (&self.cond);
    if (self.lost) {
        snprintf (error, error_size, "PostgreSQL (%s) went away during the report: %s",
                  omni_pgconn_display (conn), omni_pgconn_error (conn));
        model_destroy (&model);
        return NULL;
    }
    omni_pgconn_exec (conn, "COMMIT");
    return model;
}

char **
gather_projects (omni_pgconn_t *conn, char *error, size_t error_size)
{
    if (!omni_pgconn_handle (conn)) {
        snprintf (error, error_size, "PostgreSQL (%s): not connected", omni_pgconn_display (conn));
        return NULL;
    }
    //  Point sources: a DISTINCT over the table (no index leads with
    //  source), bounded like every statement by the statement timeout.
    //  A relation this role may not read lists nothing (a role with no
    //  grant sees no project), rather than failing the index.
    PGresult *result = omni_pgconn_query (
        conn,
        "SELECT coalesce (" S_READABLE ("sources") ", false), "
                                                   "coalesce (" S_READABLE ("points") ", false)",
        0, NULL);
    if (!result) {
        snprintf (error, error_size, "PostgreSQL (%s): %s", omni_pgconn_display (conn),
                  omni_pgconn_error (conn));
        return NULL;
    }
    bool sources = strcmp (PQgetvalue (result, 0, 0), "t") == 0;
    bool points = strcmp (PQgetvalue (result, 0, 1), "t") == 0;
    PQclear (result);
    char sql[300] = "SELECT NULL::text WHERE false";
    if (sources)
        strcat (sql, " UNION SELECT name FROM sources");
    if (points)
        strcat (sql, " UNION SELECT DISTINCT source FROM points");
    strcat (sql, " ORDER BY 1");
    result = omni_pgconn_query (conn, sql, 0, NULL);
    if (!result) {
        snprintf (error, error_size, "PostgreSQL (%s): %s", omni_pgconn_display (conn),
                  omni_pgconn_error (conn));
        return NULL;
    }
    int n = PQntuples (result);
    char **names = calloc ((size_t) n + 1, sizeof (char *));
    assert (names);
    for (int i = 0; i < n; i++) {
        names[i] = strdup (PQgetvalue (result, i, 0));
        assert (names[i]);
    }
    PQclear (result);
    return names;
}

void
gather_names_free (char ***names_p)
{
    char **names = *names_p;
    if (!names)
        return;
    for (size_t i = 0; names[i]; i++)
        free (names[i]);
    free (names);
    *names_p = NULL;
}

char *
gather_like_literal (const char *name)
{
    char *out = malloc (2 * strlen (name) + 1);
    assert (out);
    char *p = out;
    for (; *name; name++) {
        if (*name == '\\' || *name == '%' || *name == '_')
            *p++ = '\\';
        *p++ = *name;
    }
    *p = 0;
    return out;
}

//  The host section's table of a report, its cells joined by | (NULL as
//  -), after checking it has `rows` rows. Caller frees.
static char *
s_test_host (omni_pgconn_t *conn, gather_options_t *options, size_t rows)
{
    char error[512];
    model_t *model = gather_report (conn, options, error, sizeof error);
    assert (model);
    model_section_t *host = model_section (model, 6);
    assert (!host->empty && host->ntables == 1 && host->tables[0]->nrows == rows);
    omni_buf_t buf = {0};
    for (size_t i = 0; i < rows * 7; i++) {
        const char *cell = host->tables[0]->cells[i];
        omni_buf_append (&buf, i ? "|" : "", i ? 1 : 0);
        omni_buf_append (&buf, cell ? cell : "-", strlen (cell ? cell : "-"));
    }
    omni_buf_append (&buf, "", 1);
    model_destroy (&model);
    return buf.data;
}

void
gather_test (bool verbose)
{
    (void) verbose;
    char *like = gather_like_literal ("a_b%c\\d");
    assert (strcmp (like, "a\\_b\\%c\\\\d") == 0);
    free (like);

    char error[512];
    //  A closed port: a clear error naming the server, at once.
    omni_pgconn_t *conn =
        gather_connect ("host=127.0.0.1 port=1 dbname=x", 1000, 2000, error, sizeof error);
    assert (!conn && strstr (error, "port=1") && strstr (error, "not available"));

    char *dsn = pgtest_db_new ("report");
    if (!dsn) {
        fprintf (stderr, "gather: no PostgreSQL, database part skipped\n");
        return;
    }
    conn = gather_connect (dsn, 5000, 2000, error, sizeof error);
    assert (conn);
    //  A database without any OmniAudit table: every section says why.
    gather_options_t options = {.pattern = "%", .top = 5};
    model_t *model = gather_report (conn, &options, error, sizeof error);
    if (!model)
        fprintf (stderr, "gather: %s\n", error);
    assert (model && model_sections (model) == 8);
    for (size_t i = 0; i < model_sections (model); i++)
        assert (model_section (model, i)->empty);
    assert (strstr (model_section (model, 0)->empty, "relationald"));
    assert (strstr (model_section (model, 6)->empty, "points"));
    model_destroy (&model);

    //  A section whose query fails (here: a points table of the wrong
    //  shape) says why, and the report goes on in the same transaction.
    assert (omni_pgconn_exec (conn, "CREATE TABLE points (x int)") == PGCONN_OK);
    options.since = "2024-01-01";
    model = gather_report (conn, &options, error, sizeof error);
    assert (model && strstr (model_section (model, 6)->empty, "could not be read"));
    assert (strncmp (model_since (model), "2024-01-01 00:00:00", 19) == 0);
    model_destroy (&model);
    //  The same through the second connection (forced: the table is small)
    options.pool_min_rows = -1;
    model = gather_report (conn, &options, error, sizeof error);
    assert (model && strstr (model_section (model, 6)->empty, "could not be read"));
    model_destroy (&model);
    char **names = gather_projects (conn, error, sizeof error);
    assert (!names && *error);
    assert (omni_pgconn_exec (conn, "DROP TABLE points") == PGCONN_OK);

    //  Host points read on the second connection: the day's figures are
    //  the ones one connection reads.
    assert (omni_pgconn_exec (
                conn, "CREATE TABLE points (time timestamptz, name text, value float8, "
                      "source text, tags jsonb); INSERT INTO points VALUES "
                      "('2024-01-02 10:00Z', 'host.cpu.user', 10, 's', '{\"host\": \"h\"}'), "
                      "('2024-01-02 10:00Z', 'host.cpu.system', 5, 's', '{\"host\": \"h\"}'), "
                      "('2024-01-02 10:00Z', 'host.load.1', 0.5, 's', '{\"host\": \"h\"}'), "
                      "('2024-01-02 10:02Z', 'host.cpu.user', 20, 's', '{\"host\": \"h\"}')") ==
            PGCONN_OK);
    options.since = NULL;
    options.pool_min_rows = INT64_MAX;
    char *one = s_test_host (conn, &options, 1);
    options.pool_min_rows = -1;
    char *pooled = s_test_host (conn, &options, 1);
    assert (strncmp (one, "2024-01-02|17.5000|", 19) == 0 && strcmp (one, pooled) == 0);
    free (one);
    free (pooled);
    assert (omni_pgconn_exec (conn, "DROP TABLE points") == PGCONN_OK);

    //  metricsd 6's series and series ids (s_host_series_sql) give the
    //  figures of the statement without them (s_host_sql), here with what
    //  makes a sample: two hosts and two sources at one time, a second
    //  memory series of one host (the larger value counts), a series
    //  without a host, samples with some measures only.
    assert (omni_pgconn_exec (
                conn,
                "CREATE TABLE series (id int8, name text, source text, tags jsonb); "
                "INSERT INTO series VALUES (1, 'host.cpu.user', 's', '{\"host\": \"h\"}'), "
                "(2, 'host.cpu.system', 's', '{\"host\": \"h\"}'), "
                "(3, 'host.mem.used', 's', '{\"host\": \"h\"}'), "
                "(4, 'host.load.1', 's', '{\"host\": \"h\"}'), "
                "(5, 'host.mem.used', 's', '{\"host\": \"h\", \"dev\": \"x\"}'), "
                "(6, 'host.cpu.user', 's', '{\"host\": \"h2\"}'), "
                "(7, 'host.cpu.system', 's', '{\"host\": \"h2\"}'), "
                "(8, 'host.load.1', 's', '{}'), (9, 'host.cpu.user', 's2', '{\"host\": \"h\"}'); "
                "CREATE TABLE points AS SELECT p.time::timestamptz AS time, s.name, "
                "p.value::float8 AS value, s.source, s.tags, s.id AS series_id FROM (VALUES "
                "('2024-01-02 10:00Z', 1, 10), ('2024-01-02 10:00Z', 2, 5), "
                "('2024-01-02 10:00Z', 3, 100), ('2024-01-02 10:00Z', 4, 0.5), "
                "('2024-01-02 10:00Z', 5, 300), ('2024-01-02 10:00Z', 6, 50), "
                "('2024-01-02 10:00Z', 7, 1), ('2024-01-02 10:00Z', 9, 7), "
                "('2024-01-02 10:02Z', 1, 20), ('2024-01-02 10:02Z', 3, 110), "
                "('2024-01-02 10:02Z', 5, 90), ('2024-01-02 10:04Z', 8, 3), "
                "('2024-01-02 10:04Z', 4, 0.7), ('2024-01-03 09:00Z', 1, 30), "
                "('2024-01-03 09:00Z', 2, 2), ('2024-01-03 09:00Z', 3, 120), "
                "('2024-01-03 09:00Z', 4, 1.5)) p (time, id, value) JOIN series s USING (id)") ==
            PGCONN_OK);
    options.pool_min_rows = INT64_MAX;
    char *series = s_test_host (conn, &options, 2);
    assert (omni_pgconn_exec (conn, "ALTER TABLE points DROP COLUMN series_id") == PGCONN_OK);
    char *plain = s_test_host (conn, &options, 2);
    //  CPU of the first day's samples: 7, 15, 20, 51 (and one without)
    assert (strncmp (series, "2024-01-02|17.5000|", 19) == 0 && strcmp (series, plain) == 0);
    free (series);
    free (plain);
    assert (omni_pgconn_exec (conn, "DROP TABLE points; DROP TABLE series") == PGCONN_OK);
    names = gather_projects (conn, error, sizeof error);
    assert (names && !names[0]);
    gather_names_free (&names);
    assert (!names);

    //  A bad time is PostgreSQL's to refuse, and the report fails cleanly.
    options.since = "not a time";
    model = gather_report (conn, &options, error, sizeof error);
    assert (!model && strstr (error, "not a time"));
    omni_pgconn_destroy (&conn);
    pgtest_db_drop (dsn);
    free (dsn);
}
