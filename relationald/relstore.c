/*  relstore: batches of records into PostgreSQL.

    Why staging tables: COPY is the fastest way in, but it cannot resolve
    conflicts; INSERT ... ON CONFLICT can, and from a staging table it is one
    statement per table for the whole batch. The staging tables are session
    temporary tables (ON COMMIT DELETE ROWS, no WAL) with wide column types
    (int8 for every integer, text for JSON): the narrowing casts happen in
    the INSERT, so a value out of range for the real column is refused by
    PostgreSQL with a precise error, like any other content error.

    Each staged row carries `ord`, its record's index in the batch, and every
    INSERT takes the range of `ord` it applies to. The batch runs with the
    whole range; when PostgreSQL refuses it for content (SQLSTATE class 22,
    23, 54), the range is halved under savepoints until each refused record
    stands alone, and those go to rejected_records. One bad record in a batch
    of n costs about 2 log2(n) extra statements per table, not n.

    Why a direct way for test results: a batch of ci.test records alone
    (test reports come in such runs) is all inserts into one table. It is
    copied straight into ci_tests, with the source ids from a cache (new
    sources made first, committed on their own), skipping the staging copy
    and the INSERT ... SELECT that joins sources and checks each row for a
    conflict. When PostgreSQL refuses that COPY for content (a record seen
    before: 23505; a value out of range), the transaction is rolled back and
    the batch takes the staging way above, which resolves conflicts and
    isolates bad records; after a conflict the next batches go that way
    directly for a while (a re-collection sends many such batches).
    ci_tests has no foreign key to sources (a check per row, migration 7):
    the batch's sources are taken FOR KEY SHARE once, in its transaction.

    Nothing from a record ever becomes SQL text: values go through COPY and
    parameters only. U+0000 becomes U+FFFD (omni_pgcopy_text_clean).

    Why commits, tests and code statistics carry a content hash: their rows
    are never updated by a later record, so another record under a stored
    id with other content would be dropped by ON CONFLICT unseen. The hash
    is staged with the row; after the inserts, one join per such table
    (inside the batch's transaction, the staged rows are gone at commit)
    finds the staged records whose stored row has another hash: conflicts,
    which the writer loop files. The inserts leave those rows as they are.  */
#include "common/buf.h"
#include "relationald/relstore.h"
#include "common/log.h"
#include "proto/mpjson.h"
#include "pg/pgconn.h"
#include "pg/pgcopy.h"
#include "pg/pgwriter.h"
#include "relationald/schema.h"
#include "relationald/sql.h"
#include "common/util.h"
#include "testsupport/pgtest.h"
#include "testsupport/selftest.h"
#include "testsupport/testrec.h"
#include "client/writer.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  ---------------------------------------------------------------------------
//  Staging tables and the statements that move their rows

typedef enum {
    T_SOURCES,
    T_RUNS,
    T_COMMITS,
    T_FILES,
    T_BRANCHES,
    T_TAGS,
    T_BUILDS,
    T_TESTS,
    T_CODE,
    T_UNREACH,
    T_ANALYSIS,
    T_COUNT
} s_table_t;

static const struct {
    const char *name;
    int columns;
    const char *ddl;
} s_stage[T_COUNT] = {
    {"stage_sources", 2, "ord int4, src text"},
    {"stage_runs", 16,
     "ord int4, id bytea, src text, run text, col text, is_end bool, collector text, "
     "target text, status text, started timestamptz, finished timestamptz, duration float8, "
     "counts text, config text, error text, project text"},
    {"stage_commits", 24,
     "ord int4, id bytea, src text, run text, sha text, parents text[], author_name text, "
     "author_email text, author_time int8, author_tz int8, committer_name text, "
     "committer_email text, committer_time int8, committer_tz int8, message text, "
     "files_changed int8, insertions int8, deletions int8, raw text, author_name_mailmap text, "
     "author_email_mailmap text, committer_name_mailmap text, committer_email_mailmap text, "
     "content bytea"},
    {"stage_files", 7,
     "ord int4, commit_id bytea, path text, insertions int8, deletions int8, is_binary bool, "
     "old_path text"},
    {"stage_branches", 8,
     "ord int4, id bytea, src text, run text, ts timestamptz, name text, target text, "
     "head bool"},
    {"stage_tags", 13,
     "ord int4, id bytea, src text, run text, ts timestamptz, name text, target text, "
     "annotated bool, tagger_name text, tagger_email text, tagger_time int8, message text, "
     "tagger_tz int8"},
    {"stage_builds", 16,
     "ord int4, id bytea, src text, run text, ts timestamptz, pipeline text, build_id text, "
     "status text, system text, branch text, sha text, started timestamptz, "
     "finished timestamptz, duration float8, trigger text, tests text"},
    {"stage_tests", 19,
     "ord int4, id bytea, src text, run text, ts timestamptz, suite text, class text, "
     "name text, status text, duration float8, pipeline text, build_id text, file text, "
     "failure_type text, failure_message text, flaky bool, occurrence int8, retried bool, "
     "content bytea"},
    {"stage_code", 13,
     "ord int4, id bytea, src text, run text, ts timestamptz, rev text, language text, "
     "path text, files int8, blank int8, comment int8, code int8, content bytea"},
    {"stage_unreach", 6, "ord int4, id bytea, src text, run text, ts timestamptz, sha text"},
    {"stage_analysis", 17,
     "ord int4, id bytea, src text, run text, ts timestamptz, day text, since timestamptz, "
     "until timestamptz, commits int8, authors int8, files int8, builds int8, "
     "success_rate float8, test_runs int8, tests int8, code_lines int8, bus_factor int8"},
};

//  In dependency order: sources first, commits before their files. The
//  SQL is in relationald/sql/<name>.sql (embedded: relationald/sql.h);
//  $1 and $2 are the range of staged rows (ord) a statement moves.
static const struct {
    const char *name;
    s_table_t table;
    const char *sql;
} s_statements[] = {
    {"ins_sources", T_SOURCES, relsql_ins_sources},
    {"ins_runs_start", T_RUNS, relsql_ins_runs_start},
    {"ins_runs_end", T_RUNS, relsql_ins_runs_end},
    {"ins_projects", T_RUNS, relsql_ins_projects},
    {"ins_commits", T_COMMITS, relsql_ins_commits},
    {"ins_files", T_FILES, relsql_ins_files},
    {"upd_unreachable", T_UNREACH, relsql_upd_unreachable},
    {"ins_branches", T_BRANCHES, relsql_ins_branches},
    {"ins_tags", T_TAGS, relsql_ins_tags},
    {"ins_builds", T_BUILDS, relsql_ins_builds},
    {"ins_tests", T_TESTS, relsql_ins_tests},
    {"ins_code", T_CODE, relsql_ins_code},
    {"ins_analysis", T_ANALYSIS, relsql_ins_analysis},
};

#define S_STATEMENTS (sizeof s_statements / sizeof s_statements[0])

//  The staged records of the tables with content hashes whose stored row
//  holds another: conflicts (after the inserts, in the same transaction)
static const struct {
    s_table_t table;
    const char *sql;
} s_conflict_queries[] = {
    {T_COMMITS, relsql_conflicts_commits},
    {T_TESTS, relsql_conflicts_tests},
    {T_CODE, relsql_conflicts_code},
};

//  The table each kind's rows go to. Which kinds come here is the kinds
//  table's to say (proto/kinds.c, WRITER_RELATIONAL); where they go and
//  how (the SQL) is relationald's alone, so the two are joined here, by the
//  table's kind numbers: proto knows nothing of tables. The switch has no
//  default: a kind added to proto does not compile here until it is placed
//  (or said to have no table), and the self-test checks that the kinds
//  placed are the kinds routed here. Kinds with no table (metric, x.*) are
//  not routed here and are skipped if they come.
#define T_NONE T_COUNT

static s_table_t
s_table_of (omni_kind_id_t kind)
{
    switch (kind) {
    case KIND_RUN_START:
    case KIND_RUN_END: return T_RUNS; //  one row a run, is_end telling the two apart
    case KIND_GIT_COMMIT: return T_COMMITS;
    case KIND_GIT_BRANCH: return T_BRANCHES;
    case KIND_GIT_TAG: return T_TAGS;
    case KIND_GIT_UNREACHABLE: return T_UNREACH; //  marks stored commits (upd_unreachable)
    case KIND_CI_BUILD: return T_BUILDS;
    case KIND_CI_TEST: return T_TESTS;
    case KIND_CODE_STATS: return T_CODE;
    case KIND_ANALYSIS_SUMMARY: return T_ANALYSIS;
    case KIND_METRIC:
    case KIND_CUSTOM: break;
    }
    return T_NONE;
}

typedef struct {
    size_t index;
    char *error;
    char sqlstate[6];
} s_reject_t;

//  A source's id, by its src as records carry it
typedef struct {
    char *src;
    size_t len;
    int64_t id;
} s_source_t;

//  Sources cached at most (then the cache starts again empty)
#define S_SOURCES_MAX 4096
//  After a direct COPY met a record stored before, batches staged first
#define S_STAGED_AHEAD 16

struct _relstore_t {
    omni_pgconn_t *conn;
    omni_pgcopy_t *copy; //  COPY on conn

    //  The batch in hand
    const omni_record_t *records;
    size_t count;
    s_table_t *tables; //  of each record's row; T_NONE: not stored (another kind, refused)
    size_t tables_cap;
    size_t rows[T_COUNT];
    s_reject_t *rejects;
    size_t nrejects, rejects_cap;
    bool isolated;
    uint8_t *conflicts; //  the writer's flags for the batch in hand, or NULL
    size_t nconflicts;

    //  Scratch space reused across batches
    omni_buf_t scratch;
    omni_buf_t json;
    const char **items;
    size_t *lens;
    size_t items_cap;

    //  The direct way (ci.test batches): source ids cached, and per record
    s_source_t *sources;
    size_t nsources, last_source;
    int64_t *source_ids;
    size_t source_ids_cap;
    int staged_ahead;
    bool sources_gone; //  a cached source id is no longer in sources

    omni_metric_t *m_rejected, *m_isolations, *m_up, *m_ignored, *m_direct;
};

//  ---------------------------------------------------------------------------
//  Connection setup: schema, staging tables, prepared statements

static int
s_setup (omni_pgconn_t *conn, void *arg)
{
    relstore_t *self = arg;
    if (schema_migrate (conn))
        return -1;
    //  Another session may be another database (or the same one restored)
    for (size_t i = 0; i < self->nsources; i++)
        free (self->sources[i].src);
    self->nsources = 0;
    char sql[1024];
    for (int t = 0; t < T_COUNT; t++) {
        snprintf (sql, sizeof sql, "CREATE TEMP TABLE IF NOT EXISTS %s (%s) ON COMMIT DELETE ROWS",
                  s_stage[t].name, s_stage[t].ddl);
        if (omni_pgconn_exec (conn, sql) != PGCONN_OK)
            return -1;
    }
    for (size_t s = 0; s < S_STATEMENTS; s++)
        if (omni_pgconn_check (conn, PQprepare (omni_pgconn_handle (conn), s_statements[s].name,
                                                s_statements[s].sql, 2, NULL)) != PGCONN_OK)
            return -1;
    if (omni_pgconn_check (conn, PQprepare (omni_pgconn_handle (conn), "ins_reject",
                                            relsql_ins_reject, 6, NULL)) != PGCONN_OK)
        return -1;
    return 0;
}

relstore_t *
relstore_new (const char *dsn, omni_metrics_t *metrics, char *error, size_t error_size)
{
    omni_pgconn_t *conn = omni_pgconn_new (dsn, error, error_size);
    if (!conn)
        return NULL;
    relstore_t *self = calloc (1, sizeof *self);
    assert (self);
    self->conn = conn;
    self->copy = omni_pgcopy_new ();
    omni_pgconn_set_setup (conn, s_setup, self);
    //  The writer loop already backs off between batch attempts; a short
    //  reconnect backoff here keeps the two from adding up after an outage.
    omni_pgconn_set_backoff (conn, 100, 1000);
    omni_pgconn_set_metrics (conn, metrics);
    if (metrics) {
        self->m_rejected =
            omni_metrics_counter (metrics, "records_rejected_total",
                                  "Records PostgreSQL refused, kept in rejected_records", NULL);
        self->m_isolations = omni_metrics_counter (
            metrics, "batch_isolations_total", "Batches split to isolate refused records", NULL);
        self->m_ignored =
            omni_metrics_counter (metrics, "records_ignored_total",
                                  "Delivered records of kinds relationald does not store", NULL);
        self->m_up = omni_metrics_gauge (metrics, "postgres_up",
                                         "1 while the PostgreSQL connection is up", NULL);
        self->m_direct = omni_metrics_counter (
            metrics, "batches_direct_total",
            "Batches of ci.test records copied straight into ci_tests (no staging)", NULL);
    }
    return self;
}

void
relstore_destroy (relstore_t **self_p)
{
    relstore_t *self = *self_p;
    if (!self)
        return;
    omni_pgconn_destroy (&self->conn);
    omni_pgcopy_destroy (&self->copy);
    for (size_t i = 0; i < self->nrejects; i++)
        free (self->rejects[i].error);
    free (self->rejects);
    free (self->tables);
    omni_buf_release (&self->scratch);
    free (self->items);
    free (self->lens);
    for (size_t i = 0; i < self->nsources; i++)
        free (self->sources[i].src);
    free (self->sources);
    free (self->source_ids);
    omni_buf_release (&self->json);
    free (self);
    *self_p = NULL;
}

const char *
relstore_display (relstore_t *self)
{
    return omni_pgconn_display (self->conn);
}

void
relstore_set_create_database (relstore_t *self, bool create)
{
    omni_pgconn_set_create_database (self->conn, create);
}

int
relstore_connect (relstore_t *self)
{
    if (omni_pgconn_ensure (self->conn) == 0)
        return 0;
    return omni_pgwriter_connect_failed (self->conn);
}

bool
relstore_healthy (void *self_, char *text, size_t size)
{
    relstore_t *self = self_;
    return omni_pgwriter_healthy (self->conn, text, size);
}

//  ---------------------------------------------------------------------------
//  Checking what PostgreSQL cannot check: the insides of arrays

static void
s_reject (relstore_t *self, size_t index, const char *sqlstate, const char *error)
{
    s_reject_t *reject = omni_array_push (self->rejects, self->nrejects, self->rejects_cap);
    reject->index = index;
    reject->error = strdup (error);
    assert (reject->error);
    snprintf (reject->sqlstate, sizeof reject->sqlstate, "%s", sqlstate ? sqlstate : "");
}

//  Sorts the batch by kind and counts the staged rows per table.
static void
s_prepare (relstore_t *self, const omni_record_t *records, size_t count)
{
    self->records = records;
    self->count = count;
    for (size_t i = 0; i < self->nrejects; i++)
        free (self->rejects[i].error);
    self->nrejects = 0;
    self->isolated = false;
    memset (self->rows, 0, sizeof self->rows);
    omni_array_reserve (self->tables, self->tables_cap, count);
    size_t ignored = 0;
    for (size_t i = 0; i < count; i++) {
        const omni_record_t *record = &records[i];
        //  The element types of parents and files are the kinds table's,
        //  checked by ingestd (omni_record_check): nothing to check here
        s_table_t table = record->spec ? s_table_of (omni_kinds_id (record->spec)) : T_NONE;
        self->tables[i] = table;
        if (table == T_NONE) {
            ignored++;
            continue;
        }
        self->rows[T_SOURCES]++;
        self->rows[table]++;
        const msgpack_object *files =
            table == T_COMMITS ? omni_record_field (record->body, "files") : NULL;
        if (files && files->type == MSGPACK_OBJECT_ARRAY)
            self->rows[T_FILES] += files->via.array.size;
    }
    if (ignored && self->m_ignored)
        omni_metric_add (self->m_ignored, ignored);
}

//  ---------------------------------------------------------------------------
//  Staging: one COPY (binary) per table with rows

static void
s_text (relstore_t *self, const char *text, size_t len)
{
    size_t clean_len;
    const char *clean = omni_pgcopy_text_clean (text, len, &self->scratch, &clean_len);
    omni_pgcopy_text (self->copy, clean, clean_len);
}

static void
s_str (relstore_t *self, omni_record_str_t s)
{
    s_text (self, s.ptr, s.len);
}

static void
s_field_str (relstore_t *self, const msgpack_object *body, const char *key)
{
    omni_record_str_t s;
    if (omni_record_field_str (body, key, &s))
        s_str (self, s);
    else
        omni_pgcopy_null (self->copy);
}

static void
s_field_int (relstore_t *self, const msgpack_object *body, const char *key)
{
    int64_t v;
    if (omni_record_field_int (body, key, &v))
        omni_pgcopy_int8 (self->copy, v);
    else
        omni_pgcopy_null (self->copy);
}

static void
s_field_num (relstore_t *self, const msgpack_object *body, const char *key)
{
    double v;
    if (omni_record_field_num (body, key, &v))
        omni_pgcopy_float8 (self->copy, v);
    else
        omni_pgcopy_null (self->copy);
}

static void
s_field_bool (relstore_t *self, const msgpack_object *body, const char *key)
{
    bool v;
    if (omni_record_field_bool (body, key, &v))
        omni_pgcopy_bool (self->copy, v);
    else
        omni_pgcopy_null (self->copy);
}

static void
s_field_time_ns (relstore_t *self, const msgpack_object *body, const char *key)
{
    int64_t v;
    if (omni_record_field_int (body, key, &v))
        omni_pgcopy_timestamptz_ns (self->copy, v);
    else
        omni_pgcopy_null (self->copy);
}

//  Maps and arrays as JSON text (binary as {"$bin": base64}), cast to jsonb
//  by the INSERT; \u0000 escapes follow the NUL rule.
static void
s_field_json (relstore_t *self, const msgpack_object *body, const char *key)
{
    const msgpack_object *val = omni_record_field (body, key);
    if (!val || val->type == MSGPACK_OBJECT_NIL) {
        omni_pgcopy_null (self->copy);
        return;
    }
    omni_buf_reset (&self->json);
    omni_mpjson_value (&self->json, val);
    omni_pgcopy_json_clean (self->json.data, self->json.size);
    omni_pgcopy_text (self->copy, self->json.data, self->json.size);
}

//  The columns every record row starts with: ord, id, src, run
static void
s_head (relstore_t *self, s_table_t table, size_t index)
{
    const omni_record_t *record = &self->records[index];
    omni_pgcopy_row (self->copy, s_stage[table].columns);
    omni_pgcopy_int4 (self->copy, (int32_t) index);
    omni_pgcopy_bytea (self->copy, record->id, RECORD_ID_SIZE);
    s_str (self, record->src);
    s_str (self, record->run);
}

static void
s_stage_commit (relstore_t *self, size_t index)
{
    const omni_record_t *record = &self->records[index];
    const msgpack_object *body = record->body;
    s_head (self, T_COMMITS, index);
    s_field_str (self, body, "sha");
    const msgpack_object *parents = omni_record_field (body, "parents");
    size_t n = parents->via.array.size;
    if (omni_array_grow_cap (&self->items_cap, n)) {
        omni_array_resize (self->items, self->items_cap);
        omni_array_resize (self->lens, self->items_cap);
    }
    for (size_t i = 0; i < n; i++) {
        //  Shas are hex, but the rule holds for any text
        const msgpack_object *p = &parents->via.array.ptr[i];
        bool nul = memchr (p->via.str.ptr, 0, p->via.str.size) != NULL;
        self->items[i] = nul ? "\xef\xbf\xbd" : p->via.str.ptr;
        self->lens[i] = nul ? 3 : p->via.str.size;
    }
    omni_pgcopy_text_array (self->copy, self->items, self->lens, n);
    s_field_str (self, body, "author_name");
    s_field_str (self, body, "author_email");
    s_field_int (self, body, "author_time");
    s_field_int (self, body, "author_tz");
    s_field_str (self, body, "committer_name");
    s_field_str (self, body, "committer_email");
    s_field_int (self, body, "committer_time");
    s_field_int (self, body, "committer_tz");
    s_field_str (self, body, "message");
    s_field_int (self, body, "files_changed");
    s_field_int (self, body, "insertions");
    s_field_int (self, body, "deletions");
    s_field_json (self, body, "raw");
    s_field_str (self, body, "author_name_mailmap");
    s_field_str (self, body, "author_email_mailmap");
    s_field_str (self, body, "committer_name_mailmap");
    s_field_str (self, body, "committer_email_mailmap");
}

static void
s_stage_files (relstore_t *self, size_t index)
{
    const omni_record_t *record = &self->records[index];
    const msgpack_object *files = omni_record_field (record->body, "files");
    if (!files || files->type != MSGPACK_OBJECT_ARRAY)
        return;
    for (uint32_t i = 0; i < files->via.array.size; i++) {
        const msgpack_object *file = &files->via.array.ptr[i];
        omni_pgcopy_row (self->copy, s_stage[T_FILES].columns);
        omni_pgcopy_int4 (self->copy, (int32_t) index);
        omni_pgcopy_bytea (self->copy, record->id, RECORD_ID_SIZE);
        s_field_str (self, file, "path");
        s_field_int (self, file, "insertions");
        s_field_int (self, file, "deletions");
        bool binary = false;
        omni_record_field_bool (file, "binary", &binary);
        omni_pgcopy_bool (self->copy, binary);
        s_field_str (self, file, "old_path");
    }
}

//  A ci.test body, from suite to flaky: staged, and copied straight into
//  ci_tests by the direct way, in the same order
static void
s_test_fields (relstore_t *self, const msgpack_object *body)
{
    s_field_str (self, body, "suite");
    s_field_str (self, body, "class");
    s_field_str (self, body, "name");
    s_field_str (self, body, "status");
    s_field_num (self, body, "duration");
    s_field_str (self, body, "pipeline");
    s_field_str (self, body, "build_id");
    s_field_str (self, body, "file");
    s_field_str (self, body, "failure_type");
    s_field_str (self, body, "failure_message");
    s_field_bool (self, body, "flaky");
}

static void
s_stage_record (relstore_t *self, s_table_t table, size_t index)
{
    const omni_record_t *record = &self->records[index];
    const msgpack_object *body = record->body;
    switch (table) {
    case T_SOURCES:
        omni_pgcopy_row (self->copy, s_stage[T_SOURCES].columns);
        omni_pgcopy_int4 (self->copy, (int32_t) index);
        s_str (self, record->src);
        break;
    case T_RUNS:
        s_head (self, T_RUNS, index);
        s_str (self, record->col);
        omni_pgcopy_bool (self->copy, omni_kinds_id (record->spec) == KIND_RUN_END);
        s_field_str (self, body, "collector");
        s_field_str (self, body, "source");
        s_field_str (self, body, "status");
        s_field_time_ns (self, body, "started");
        s_field_time_ns (self, body, "finished");
        s_field_num (self, body, "duration");
        s_field_json (self, body, "counts");
        s_field_json (self, body, "config");
        s_field_str (self, body, "error");
        s_field_str (self, body, "project");
        break;
    case T_COMMITS: s_stage_commit (self, index); break;
    case T_FILES: s_stage_files (self, index); break;
    case T_BRANCHES:
        s_head (self, T_BRANCHES, index);
        omni_pgcopy_timestamptz_ns (self->copy, record->ts);
        s_field_str (self, body, "name");
        s_field_str (self, body, "target");
        s_field_bool (self, body, "head");
        break;
    case T_TAGS:
        s_head (self, T_TAGS, index);
        omni_pgcopy_timestamptz_ns (self->copy, record->ts);
        s_field_str (self, body, "name");
        s_field_str (self, body, "target");
        s_field_bool (self, body, "annotated");
        s_field_str (self, body, "tagger_name");
        s_field_str (self, body, "tagger_email");
        s_field_int (self, body, "tagger_time");
        s_field_str (self, body, "message");
        s_field_int (self, body, "tagger_tz");
        break;
    case T_BUILDS:
        s_head (self, T_BUILDS, index);
        omni_pgcopy_timestamptz_ns (self->copy, record->ts);
        s_field_str (self, body, "pipeline");
        s_field_str (self, body, "build_id");
        s_field_str (self, body, "status");
        s_field_str (self, body, "system");
        s_field_str (self, body, "branch");
        s_field_str (self, body, "sha");
        s_field_time_ns (self, body, "started");
        s_field_time_ns (self, body, "finished");
        s_field_num (self, body, "duration");
        s_field_str (self, body, "trigger");
        s_field_json (self, body, "tests");
        break;
    case T_TESTS:
        s_head (self, T_TESTS, index);
        omni_pgcopy_timestamptz_ns (self->copy, record->ts);
        s_test_fields (self, body);
        s_field_int (self, body, "occurrence");
        s_field_bool (self, body, "retried");
        break;
    case T_CODE:
        s_head (self, T_CODE, index);
        omni_pgcopy_timestamptz_ns (self->copy, record->ts);
        s_field_str (self, body, "rev");
        s_field_str (self, body, "language");
        s_field_str (self, body, "path");
        s_field_int (self, body, "files");
        s_field_int (self, body, "blank");
        s_field_int (self, body, "comment");
        s_field_int (self, body, "code");
        break;
    case T_UNREACH:
        s_head (self, T_UNREACH, index);
        omni_pgcopy_timestamptz_ns (self->copy, record->ts);
        s_field_str (self, body, "sha");
        break;
    case T_ANALYSIS:
        s_head (self, T_ANALYSIS, index);
        omni_pgcopy_timestamptz_ns (self->copy, record->ts);
        s_field_str (self, body, "day");
        s_field_time_ns (self, body, "since");
        s_field_time_ns (self, body, "until");
        s_field_int (self, body, "commits");
        s_field_int (self, body, "authors");
        s_field_int (self, body, "files");
        s_field_int (self, body, "builds");
        s_field_num (self, body, "success_rate");
        s_field_int (self, body, "test_runs");
        s_field_int (self, body, "tests");
        s_field_int (self, body, "code_lines");
        s_field_int (self, body, "bus_factor");
        break;
    case T_COUNT: break;
    }
    if (table == T_COMMITS || table == T_TESTS || table == T_CODE) {
        uint8_t content[RECORD_CONTENT_SIZE];
        omni_record_content_hash (record, content);
        omni_pgcopy_bytea (self->copy, content, sizeof content);
    }
}

static bool
s_in_table (s_table_t row_table, s_table_t table)
{
    if (row_table == T_NONE)
        return false;
    if (table == T_SOURCES)
        return true;
    if (table == T_FILES)
        return row_table == T_COMMITS;
    return row_table == table;
}

//  Copies the records lo..hi into the staging tables.
static omni_pgconn_status_t
s_stage_range (relstore_t *self, size_t lo, size_t hi)
{
    for (int t = 0; t < T_COUNT; t++) {
        if (!self->rows[t])
            continue;
        if (omni_pgcopy_begin (self->copy, self->conn, s_stage[t].name, NULL, PGCOPY_BINARY))
            return omni_pgconn_last_status (self->conn);
        for (size_t i = lo; i <= hi; i++)
            if (s_in_table (self->tables[i], (s_table_t) t))
                s_stage_record (self, (s_table_t) t, i);
        omni_pgconn_status_t status = omni_pgcopy_end (self->copy);
        if (status != PGCONN_OK)
            return status;
    }
    return PGCONN_OK;
}

//  ---------------------------------------------------------------------------
//  The direct way: a batch of ci.test records straight into ci_tests

static bool
s_direct_wanted (relstore_t *self)
{
    if (self->staged_ahead > 0) {
        self->staged_ahead--;
        return false;
    }
    if (self->count == 0 || self->nrejects)
        return false;
    for (size_t i = 0; i < self->count; i++)
        if (self->tables[i] != T_TESTS)
            return false;
    return true;
}

//  The id of a record's source: cached, else read or made in PostgreSQL
//  (outside the batch transaction: a cached id is always committed).
//  0 after an error.
static int64_t
s_source_id (relstore_t *self, omni_record_str_t src)
{
    s_source_t *last =
        self->last_source < self->nsources ? &self->sources[self->last_source] : NULL;
    if (last && last->len == src.len && memcmp (last->src, src.ptr, src.len) == 0)
        return last->id;
    for (size_t i = 0; i < self->nsources; i++)
        if (self->sources[i].len == src.len &&
            memcmp (self->sources[i].src, src.ptr, src.len) == 0) {
            self->last_source = i;
            return self->sources[i].id;
        }
    size_t clean_len;
    const char *clean = omni_pgcopy_text_clean (src.ptr, src.len, &self->scratch, &clean_len);
    char *name = strndup (clean, clean_len);
    assert (name);
    const char *params[] = {name};
    int64_t id = 0;
    //  A source made meanwhile by another session, committed after this
    //  statement's snapshot, is neither made nor seen: read it again
    for (int attempt = 0; attempt < 2 && id == 0; attempt++) {
        PGresult *result = omni_pgconn_query (self->conn, relsql_source_id, 1, params);
        if (!result)
            break;
        if (PQntuples (result) > 0)
            id = strtoll (PQgetvalue (result, 0, 0), NULL, 10);
        PQclear (result);
    }
    free (name);
    if (id == 0)
        return 0;
    if (self->nsources == S_SOURCES_MAX) {
        for (size_t i = 0; i < self->nsources; i++)
            free (self->sources[i].src);
        self->nsources = 0;
    }
    if (!self->sources) {
        self->sources = malloc (S_SOURCES_MAX * sizeof *self->sources);
        assert (self->sources);
    }
    s_source_t *entry = &self->sources[self->nsources];
    entry->src = malloc (src.len ? src.len : 1);
    assert (entry->src);
    memcpy (entry->src, src.ptr, src.len);
    entry->len = src.len;
    entry->id = id;
    self->last_source = self->nsources++;
    return id;
}

static int
s_cmp_int64 (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return (x > y) - (x < y);
}

//  What ci_tests' foreign key to sources did per row (migration 7), once
//  per batch: the batch's sources are taken FOR KEY SHARE, so none can be
//  deleted before the batch commits (the delete trigger then sees its
//  rows), and a cached id whose source is gone is caught. 0 when all are
//  there, 1 when one is gone, -1 after an error.
static int
s_lock_sources (relstore_t *self)
{
    int64_t *ids = malloc (self->count * sizeof *ids);
    assert (ids);
    memcpy (ids, self->source_ids, self->count * sizeof *ids);
    qsort (ids, self->count, sizeof *ids, s_cmp_int64);
    size_t distinct = 0;
    for (size_t i = 0; i < self->count; i++)
        if (i == 0 || ids[i] != ids[i - 1])
            ids[distinct++] = ids[i];
    //  "{1,2,...}": at most 20 digits and a comma per id
    char *array = malloc (distinct * 21 + 3);
    assert (array);
    size_t len = 0;
    array[len++] = '{';
    for (size_t i = 0; i < distinct; i++)
        len += (size_t) sprintf (array + len, "%s%" PRId64, i ? "," : "", ids[i]);
    array[len++] = '}';
    array[len] = 0;
    free (ids);
    const char *params[] = {array};
    PGresult *result = omni_pgconn_query (
        self->conn,
        "SELECT count (*) FROM (SELECT 1 FROM sources WHERE id = ANY ($1::int8[]) FOR KEY SHARE) l",
        1, params);
    free (array);
    if (!result)
        return -1;
    size_t found = (size_t) strtoull (PQgetvalue (result, 0, 0), NULL, 10);
    PQclear (result);
    return found == distinct ? 0 : 1;
}

static int
s_direct_tx (omni_pgconn_t *conn, void *arg)
{
    relstore_t *self = arg;
    int locked = s_lock_sources (self);
    if (locked) {
        self->sources_gone = locked > 0;
        return -1;
    }
    if (omni_pgcopy_begin (self->copy, conn, "ci_tests",
                           "id, source_id, suite, class, name, status, duration, pipeline, "
                           "build_id, file, failure_type, failure_message, flaky, occurrence, "
                           "retried, observed, run_id, content",
                           PGCOPY_BINARY))
        return -1;
    for (size_t i = 0; i < self->count; i++) {
        const omni_record_t *record = &self->records[i];
        const msgpack_object *body = record->body;
        omni_pgcopy_row (self->copy, 18);
        omni_pgcopy_bytea (self->copy, record->id, RECORD_ID_SIZE);
        omni_pgcopy_int8 (self->copy, self->source_ids[i]);
        s_test_fields (self, body);
        //  ci_tests' own types and defaults (the staging way casts them)
        int64_t occurrence = 0;
        bool retried = false;
        omni_record_field_int (body, "occurrence", &occurrence);
        omni_record_field_bool (body, "retried", &retried);
        omni_pgcopy_int4 (self->copy, (int32_t) occurrence);
        omni_pgcopy_bool (self->copy, retried);
        omni_pgcopy_timestamptz_ns (self->copy, record->ts);
        s_str (self, record->run);
        uint8_t content[RECORD_CONTENT_SIZE];
        omni_record_content_hash (record, content);
        omni_pgcopy_bytea (self->copy, content, sizeof content);
    }
    return omni_pgcopy_end (self->copy) == PGCONN_OK ? 0 : -1;
}

//  PGCONN_OK once stored; PGCONN_CONTENT when PostgreSQL refused the COPY
//  for content (the caller stages the batch); another status on failure.
static omni_pgconn_status_t
s_direct (relstore_t *self)
{
    omni_array_reserve (self->source_ids, self->source_ids_cap, self->count);
    for (size_t i = 0; i < self->count; i++)
        if ((self->source_ids[i] = s_source_id (self, self->records[i].src)) == 0)
            return omni_pgconn_last_status (self->conn) == PGCONN_OK
                       ? PGCONN_FAILED
                       : omni_pgconn_last_status (self->conn);
    self->sources_gone = false;
    omni_pgconn_status_t status = omni_pgconn_transaction (self->conn, s_direct_tx, self);
    if (self->sources_gone) {
        //  Deleted meanwhile (by hand): forget every cached id, and let the
        //  staging way make the source again by name
        log_warn ("relstore.source_gone", "detail=\"a cached source id is no longer in sources\"");
        for (size_t i = 0; i < self->nsources; i++)
            free (self->sources[i].src);
        self->nsources = 0;
        return PGCONN_CONTENT;
    }
    if (status == PGCONN_CONTENT && strcmp (omni_pgconn_sqlstate (self->conn), "23505") == 0)
        self->staged_ahead = S_STAGED_AHEAD;
    if (status == PGCONN_OK && self->m_direct)
        omni_metric_add (self->m_direct, 1);
    else
        log_debug ("relstore.direct_refused", "sqlstate=%s error=\"%s\"",
                   omni_pgconn_sqlstate (self->conn), omni_pgconn_error (self->conn));
    return status;
}

//  ---------------------------------------------------------------------------
//  Applying staged rows to the tables

static omni_pgconn_status_t
s_apply (relstore_t *self, size_t lo, size_t hi)
{
    char lo_text[16], hi_text[16];
    snprintf (lo_text, sizeof lo_text, "%zu", lo);
    snprintf (hi_text, sizeof hi_text, "%zu", hi);
    const char *params[] = {lo_text, hi_text};
    for (size_t s = 0; s < S_STATEMENTS; s++) {
        if (!self->rows[s_statements[s].table])
            continue;
        PGresult *result = PQexecPrepared (omni_pgconn_handle (self->conn), s_statements[s].name, 2,
                                           params, NULL, NULL, 0);
        omni_pgconn_status_t status = omni_pgconn_check (self->conn, result);
        if (status != PGCONN_OK)
            return status;
    }
    return PGCONN_OK;
}

static bool
s_any_staged (relstore_t *self, size_t lo, size_t hi)
{
    for (size_t i = lo; i <= hi; i++)
        if (self->tables[i] != T_NONE)
            return true;
    return false;
}

//  Applies lo..hi under a savepoint; on a content error, halves the range
//  until each refused record stands alone and is set aside.
static omni_pgconn_status_t
s_bisect (relstore_t *self, size_t lo, size_t hi)
{
    if (!s_any_staged (self, lo, hi))
        return PGCONN_OK;
    omni_pgconn_status_t status = omni_pgconn_exec (self->conn, "SAVEPOINT part");
    if (status != PGCONN_OK)
        return status;
    status = s_apply (self, lo, hi);
    if (status == PGCONN_OK)
        return omni_pgconn_exec (self->conn, "RELEASE SAVEPOINT part");
    if (status != PGCONN_CONTENT)
        return status;
    char error[4096], sqlstate[6];
    snprintf (error, sizeof error, "%s", omni_pgconn_error_detail (self->conn));
    snprintf (sqlstate, sizeof sqlstate, "%s", omni_pgconn_sqlstate (self->conn));
    status = omni_pgconn_exec (self->conn, "ROLLBACK TO SAVEPOINT part; RELEASE SAVEPOINT part");
    if (status != PGCONN_OK)
        return status;
    self->isolated = true;
    if (lo == hi) {
        s_reject (self, lo, sqlstate, error);
        self->tables[lo] = T_NONE;
        return PGCONN_OK;
    }
    size_t mid = lo + (hi - lo) / 2;
    status = s_bisect (self, lo, mid);
    return status == PGCONN_OK ? s_bisect (self, mid + 1, hi) : status;
}

static omni_pgconn_status_t
s_store_rejects (relstore_t *self)
{
    for (size_t i = 0; i < self->nrejects; i++) {
        s_reject_t *reject = &self->rejects[i];
        const omni_record_t *record = &self->records[reject->index];
        omni_buf_reset (&self->json);
        omni_mpjson_record (&self->json, record);
        omni_pgcopy_json_clean (self->json.data, self->json.size);
        char *kind = omni_record_str_dup (record->kind);
        size_t src_len;
        const char *src =
            omni_pgcopy_text_clean (record->src.ptr, record->src.len, &self->scratch, &src_len);
        char *source = malloc (src_len + 1);
        assert (source);
        memcpy (source, src, src_len);
        source[src_len] = 0;
        //  A source with NUL was cleaned; one cut at a NUL would be wrong,
        //  so the cleaned copy is what goes in.
        const char *values[] = {(const char *) record->id,
                                kind,
                                source,
                                reject->error,
                                *reject->sqlstate ? reject->sqlstate : NULL,
                                self->json.data};
        int lengths[] = {RECORD_ID_SIZE, 0, 0, 0, 0, 0};
        int formats[] = {1, 0, 0, 0, 0, 0};
        PGresult *result = PQexecPrepared (omni_pgconn_handle (self->conn), "ins_reject", 6, values,
                                           lengths, formats, 0);
        free (kind);
        free (source);
        omni_pgconn_status_t status = omni_pgconn_check (self->conn, result);
        if (status != PGCONN_OK)
            return status;
    }
    return PGCONN_OK;
}

//  The body of the batch transaction. `slow` stages and applies record by
//  record, for the (unexpected) case of a staging COPY refused for content.
typedef struct {
    relstore_t *self;
    bool slow;
    bool copy_refused;
} s_tx_t;

//  Flags the staged records whose stored row has other content
static omni_pgconn_status_t
s_find_conflicts (relstore_t *self)
{
    self->nconflicts = 0;
    for (size_t q = 0; q < sizeof s_conflict_queries / sizeof s_conflict_queries[0]; q++) {
        if (!self->rows[s_conflict_queries[q].table])
            continue;
        PGresult *result = omni_pgconn_query (self->conn, s_conflict_queries[q].sql, 0, NULL);
        if (!result)
            return omni_pgconn_last_status (self->conn);
        for (int row = 0; row < PQntuples (result); row++) {
            long ord = strtol (PQgetvalue (result, row, 0), NULL, 10);
            if (ord < 0 || (size_t) ord >= self->count || self->tables[ord] == T_NONE)
                continue; //  refused by PostgreSQL: in rejected_records
            self->nconflicts++;
            if (self->conflicts)
                self->conflicts[ord] = 1;
        }
        PQclear (result);
    }
    return PGCONN_OK;
}

static int
s_transaction (omni_pgconn_t *conn, void *arg)
{
    s_tx_t *tx = arg;
    relstore_t *self = tx->self;
    (void) conn;
    if (self->count == 0)
        return 0;
    omni_pgconn_status_t status = PGCONN_OK;
    if (!tx->slow) {
        status = s_stage_range (self, 0, self->count - 1);
        if (status == PGCONN_CONTENT)
            tx->copy_refused = true;
        if (status == PGCONN_OK)
            status = s_bisect (self, 0, self->count - 1);
    } else
        for (size_t i = 0; i < self->count && status == PGCONN_OK; i++) {
            if (self->tables[i] == T_NONE)
                continue;
            status = omni_pgconn_exec (self->conn, "SAVEPOINT one");
            if (status != PGCONN_OK)
                break;
            status = s_stage_range (self, i, i);
            if (status == PGCONN_OK)
                status = s_apply (self, i, i);
            if (status == PGCONN_CONTENT) {
                s_reject (self, i, omni_pgconn_sqlstate (self->conn),
                          omni_pgconn_error_detail (self->conn));
                self->tables[i] = T_NONE;
                status = omni_pgconn_exec (self->conn, "ROLLBACK TO SAVEPOINT one");
            } else if (status == PGCONN_OK)
                status = omni_pgconn_exec (self->conn, "RELEASE SAVEPOINT one");
        }
    if (status == PGCONN_OK)
        status = s_store_rejects (self);
    if (status == PGCONN_OK)
        status = s_find_conflicts (self);
    return status == PGCONN_OK ? 0 : -1;
}

int
relstore_write (void *self_, const omni_record_t *records, size_t count, uint8_t *conflicts,
                char *error, size_t error_size)
{
    relstore_t *self = self_;
    self->conflicts = conflicts;
    if (omni_pgconn_ensure (self->conn)) {
        if (self->m_up)
            omni_metric_set (self->m_up, 0);
        snprintf (error, error_size, "postgresql: %s", omni_pgconn_error (self->conn));
        return omni_pgconn_last_status (self->conn) == PGCONN_PERMANENT ? WRITER_STORE_PERMANENT
                                                                        : -1;
    }
    if (self->m_up)
        omni_metric_set (self->m_up, 1);
    s_prepare (self, records, count);
    s_tx_t tx = {self, false, false};
    omni_pgconn_status_t status = s_direct_wanted (self) ? s_direct (self) : PGCONN_CONTENT;
    if (status == PGCONN_CONTENT)
        status = omni_pgconn_transaction (self->conn, s_transaction, &tx);
    if (status == PGCONN_CONTENT && tx.copy_refused) {
        log_warn ("batch.copy_refused",
                  "records=%zu error=\"%s\" detail=\"staging record by "
                  "record\"",
                  count, omni_pgconn_error (self->conn));
        s_prepare (self, records, count);
        tx = (s_tx_t){self, true, false};
        status = omni_pgconn_transaction (self->conn, s_transaction, &tx);
    }
    if (status != PGCONN_OK) {
        snprintf (error, error_size, "postgresql: %s%s%s", omni_pgconn_sqlstate (self->conn),
                  *omni_pgconn_sqlstate (self->conn) ? " " : "", omni_pgconn_error (self->conn));
        if (status != PGCONN_TRANSIENT) {
            //  Not the server going away: a schema or statement problem an
            //  operator must see. A fresh session rebuilds the staging
            //  tables and statements in case they were the problem.
            log_error ("batch.failed", "records=%zu sqlstate=%s error=\"%s\"", count,
                       omni_pgconn_sqlstate (self->conn), omni_pgconn_error (self->conn));
            omni_pgconn_reset (self->conn);
        }
        if (self->m_up)
            omni_metric_set (self->m_up, omni_pgconn_is_up (self->conn) ? 1 : 0);
        return status == PGCONN_PERMANENT ? WRITER_STORE_PERMANENT : -1;
    }
    if (self->nrejects) {
        log_warn ("records.rejected", "count=%zu batch=%zu sqlstate=%s error=\"%s\"",
                  self->nrejects, count,
                  *self->rejects[0].sqlstate ? self->rejects[0].sqlstate : "-",
                  self->rejects[0].error);
        if (self->m_rejected)
            omni_metric_add (self->m_rejected, self->nrejects);
    }
    if (self->isolated && self->m_isolations)
        omni_metric_add (self->m_isolations, 1);
    return 0;
}

//  ---------------------------------------------------------------------------
//  Self-test: records built with the encoder, stored in a fresh database,
//  rows read back with plain SQL.

typedef struct {
    testrec_t *recs;
    const char *src;
    int64_t ts;
} s_batch_t;

static void
s_batch_init (s_batch_t *b, const char *src)
{
    b->recs = testrec_new ();
    b->src = src;
    b->ts = INT64_C (1700000000000000000);
}

static void
s_batch_clear (s_batch_t *b)
{
    testrec_clear (b->recs);
}

static void
s_batch_destroy (s_batch_t *b)
{
    testrec_destroy (&b->recs);
}

static msgpack_packer *
s_begin (s_batch_t *b, const char *kind, int nfields)
{
    return testrec_begin (b->recs, kind, b->src, b->ts, nfields);
}

static void
s_end (s_batch_t *b)
{
    testrec_end (b->recs);
}

static void
s_kv_strn (msgpack_packer *pk, const char *key, const char *value, size_t len)
{
    omni_record_pack_str (pk, key);
    msgpack_pack_str_with_body (pk, value, len);
}

typedef struct {
    const char *sha, *author, *email;
    const char *message;
    size_t message_len; //  0 = strlen
    int64_t time, tz, insertions, deletions;
    int files; //  number of file entries
} s_commit_t;

static void
s_commit (s_batch_t *b, const s_commit_t *c)
{
    msgpack_packer *pk = s_begin (b, "git.commit", c->files ? 15 : 14);
    omni_record_pack_kv (pk, "sha", c->sha);
    omni_record_pack_str (pk, "parents");
    msgpack_pack_array (pk, 1);
    msgpack_pack_str_with_body (pk, "0123456789abcdef0123456789abcdef01234567", 40);
    omni_record_pack_kv (pk, "author_name", c->author);
    omni_record_pack_kv (pk, "author_email", c->email);
    omni_record_pack_kv_int (pk, "author_time", c->time);
    omni_record_pack_kv_int (pk, "author_tz", c->tz);
    omni_record_pack_kv (pk, "committer_name", "Committer");
    omni_record_pack_kv (pk, "committer_email", "committer@example.org");
    omni_record_pack_kv_int (pk, "committer_time", c->time + 60);
    omni_record_pack_kv_int (pk, "committer_tz", 0);
    s_kv_strn (pk, "message", c->message, c->message_len ? c->message_len : strlen (c->message));
    omni_record_pack_kv_int (pk, "files_changed", c->files);
    omni_record_pack_kv_int (pk, "insertions", c->insertions);
    omni_record_pack_kv_int (pk, "deletions", c->deletions);
    if (c->files) {
        omni_record_pack_str (pk, "files");
        msgpack_pack_array (pk, (size_t) c->files);
        for (int f = 0; f < c->files; f++) {
            bool binary = f == 1;
            msgpack_pack_map (pk, binary ? 2 : 4);
            char path[32];
            snprintf (path, sizeof path, "src/file%d.c", f);
            omni_record_pack_kv (pk, "path", path);
            if (binary)
                omni_record_pack_kv_bool (pk, "binary", true);
            else {
                omni_record_pack_kv_int (pk, "insertions", c->insertions);
                omni_record_pack_kv_int (pk, "deletions", c->deletions);
                omni_record_pack_kv_bool (pk, "binary", false);
            }
        }
    }
    s_end (b);
}

static void
s_branch (s_batch_t *b, const char *name, const char *target)
{
    msgpack_packer *pk = s_begin (b, "git.branch", 3);
    omni_record_pack_kv (pk, "name", name);
    omni_record_pack_kv (pk, "target", target);
    omni_record_pack_kv_bool (pk, "head", strcmp (name, "main") == 0);
    s_end (b);
}

static void
s_build (s_batch_t *b, const char *pipeline, const char *id, const char *status)
{
    msgpack_packer *pk = s_begin (b, "ci.build", 6);
    omni_record_pack_kv (pk, "pipeline", pipeline);
    omni_record_pack_kv (pk, "build_id", id);
    omni_record_pack_kv (pk, "status", status);
    omni_record_pack_kv_int (pk, "started", b->ts);
    omni_record_pack_kv_double (pk, "duration", 12.5);
    omni_record_pack_str (pk, "tests");
    msgpack_pack_map (pk, 2);
    omni_record_pack_kv_int (pk, "total", 3);
    omni_record_pack_kv_int (pk, "failed", 1);
    s_end (b);
}

static void
s_test_case (s_batch_t *b, const char *name, const char *status, double duration)
{
    msgpack_packer *pk = s_begin (b, "ci.test", 6);
    omni_record_pack_kv (pk, "suite", "unit");
    omni_record_pack_kv (pk, "name", name);
    omni_record_pack_kv (pk, "status", status);
    omni_record_pack_kv_double (pk, "duration", duration);
    omni_record_pack_kv (pk, "build_id", "b1");
    omni_record_pack_kv (pk, "pipeline", "ci");
    s_end (b);
}

static void
s_analysis (s_batch_t *b, const char *day, int64_t since, int64_t commits)
{
    msgpack_packer *pk = s_begin (b, "analysis.summary", since ? 10 : 9);
    omni_record_pack_kv (pk, "day", day);
    if (since)
        omni_record_pack_kv_int (pk, "since", since);
    omni_record_pack_kv_int (pk, "commits", commits);
    omni_record_pack_kv_int (pk, "authors", 2);
    omni_record_pack_kv_int (pk, "files", 3);
    omni_record_pack_kv_int (pk, "builds", 4);
    omni_record_pack_kv_double (pk, "success_rate", 0.5);
    omni_record_pack_kv_int (pk, "test_runs", 5);
    omni_record_pack_kv_int (pk, "tests", 2);
    omni_record_pack_kv_int (pk, "bus_factor", 1);
    s_end (b);
}

static void
s_full_batch (s_batch_t *b)
{
    msgpack_packer *pk = s_begin (b, "run.start", 3);
    omni_record_pack_kv (pk, "collector", "git");
    omni_record_pack_kv (pk, "source", b->src);
    omni_record_pack_kv_int (pk, "started", b->ts);
    s_end (b);
    s_commit (b,
              &(s_commit_t){"c1", "Ann", "ann@example.org", "first", 0, 1600000000, 120, 10, 0, 2});
    s_commit (b,
              &(s_commit_t){"c2", "Ann", "ann@example.org", "second", 0, 1600086400, 120, 5, 2, 0});
    s_commit (b,
              &(s_commit_t){"c3", "Bob", "bob@example.org", "third", 0, 1600172800, -300, 1, 1, 1});
    s_branch (b, "main", "c3");
    pk = s_begin (b, "git.tag", 6);
    omni_record_pack_kv (pk, "name", "v1.0");
    omni_record_pack_kv (pk, "target", "c2");
    omni_record_pack_kv_bool (pk, "annotated", true);
    omni_record_pack_kv (pk, "tagger_name", "Ann");
    omni_record_pack_kv_int (pk, "tagger_time", 1600090000);
    omni_record_pack_kv (pk, "message", "release");
    s_end (b);
    s_build (b, "ci", "b1", "running");
    s_test_case (b, "t_fast", "passed", 0.01);
    s_test_case (b, "t_slow", "passed", 3.5);
    s_test_case (b, "t_bad", "failed", 0.2);
    pk = s_begin (b, "code.stats", 6);
    omni_record_pack_kv (pk, "rev", "c3");
    omni_record_pack_kv (pk, "language", "C");
    omni_record_pack_kv_int (pk, "files", 3);
    omni_record_pack_kv_int (pk, "blank", 10);
    omni_record_pack_kv_int (pk, "comment", 20);
    omni_record_pack_kv_int (pk, "code", 300);
    s_end (b);
    pk = s_begin (b, "metric", 2); //  not for this writer: skipped
    omni_record_pack_kv (pk, "name", "host.cpu");
    omni_record_pack_kv_double (pk, "value", 1.5);
    s_end (b);
    pk = s_begin (b, "run.end", 7);
    omni_record_pack_kv (pk, "collector", "git");
    omni_record_pack_kv (pk, "source", b->src);
    omni_record_pack_kv (pk, "status", "ok");
    omni_record_pack_str (pk, "counts");
    msgpack_pack_map (pk, 1);
    omni_record_pack_kv_int (pk, "git.commit", 3);
    omni_record_pack_kv_int (pk, "started", b->ts);
    omni_record_pack_kv_int (pk, "finished", b->ts + 2000000000);
    omni_record_pack_kv_double (pk, "duration", 2.0);
    s_end (b);
}

static int
s_write (relstore_t *store, s_batch_t *b)
{
    char error[512] = "";
    int rc = relstore_write (store, testrec_records (b->recs), testrec_count (b->recs), NULL, error,
                             sizeof error);
    if (rc)
        fprintf (stderr, "relstore_write: %s\n", error);
    return rc;
}

//  The same batch again changes nothing and flags nothing; a test case and
//  a commit with other content under stored ids are flagged as conflicts
//  and leave their rows as they were.
static void
s_test_conflicts (relstore_t *store, omni_pgconn_t *pg)
{
    s_batch_t b;
    s_batch_init (&b, "repo-a");
    s_full_batch (&b);
    uint8_t *flags = calloc (testrec_count (b.recs), 1);
    char error[512];
    assert (relstore_write (store, testrec_records (b.recs), testrec_count (b.recs), flags, error,
                            sizeof error) == 0);
    for (size_t i = 0; i < testrec_count (b.recs); i++)
        assert (!flags[i]);
    s_batch_clear (&b);
    s_test_case (&b, "t_fast", "failed", 0.01);
    s_commit (&b,
              &(s_commit_t){"c2", "Eve", "eve@example.org", "forged", 0, 1600086400, 120, 5, 2, 0});
    s_test_case (&b, "t_new", "passed", 0.5);
    memset (flags, 0, 3);
    assert (relstore_write (store, testrec_records (b.recs), testrec_count (b.recs), flags, error,
                            sizeof error) == 0);
    assert (flags[0] == 1 && flags[1] == 1 && flags[2] == 0);
    pgtest_expect (pg, "SELECT status FROM ci_tests WHERE name = 't_fast'", "passed");
    pgtest_expect (pg, "SELECT author_name FROM commits WHERE sha = 'c2'", "Ann");
    pgtest_expect (pg, "SELECT count (*) FROM ci_tests WHERE name = 't_new'", "1");
    free (flags);
    s_batch_destroy (&b);
}

static const char *s_counts_sql =
    "SELECT (SELECT count (*) FROM sources) || ' ' || (SELECT count (*) FROM runs) || ' ' "
    "|| (SELECT count (*) FROM commits) || ' ' || (SELECT count (*) FROM commit_files) || ' ' "
    "|| (SELECT count (*) FROM branches) || ' ' || (SELECT count (*) FROM tags) || ' ' "
    "|| (SELECT count (*) FROM ci_builds) || ' ' || (SELECT count (*) FROM ci_tests) || ' ' "
    "|| (SELECT count (*) FROM code_stats) || ' ' || (SELECT count (*) FROM rejected_records)";

//  ci.test records alone go straight into ci_tests; mixed with records
//  stored before, they take the staging way and are stored once; a source
//  seen first here is made and cached.
static void
s_test_direct (relstore_t *store, omni_pgconn_t *pg)
{
    s_batch_t b;
    s_batch_init (&b, "repo-direct");
    store->staged_ahead = 0; //  an earlier test's re-collection met stored rows
    s_test_case (&b, "d1", "passed", 1.5);
    s_test_case (&b, "d2", "failed", 2.5);
    assert (s_write (store, &b) == 0);
    static const char *sql =
        "SELECT string_agg (so.name || ':' || t.name || ':' || t.status || ':' || t.duration, ',' "
        "ORDER BY t.name) FROM ci_tests t JOIN sources so ON so.id = t.source_id WHERE so.name = "
        "'repo-direct'";
    pgtest_expect (pg, sql, "repo-direct:d1:passed:1.5,repo-direct:d2:failed:2.5");
    //  Counted from here: the tests before may have gone straight in too
    long before = (long) omni_metric_value (store->m_direct) - 1;
    assert (before >= 0);
    //  Again, with a new one: the COPY meets d1 and d2, the batch is staged
    s_test_case (&b, "d3", "passed", 3.5);
    assert (s_write (store, &b) == 0);
    pgtest_expect (pg, sql,
                   "repo-direct:d1:passed:1.5,repo-direct:d2:failed:2.5,"
                   "repo-direct:d3:passed:3.5");
    assert ((long) omni_metric_value (store->m_direct) == before + 1);
    //  Once the staged batches ahead are done, straight in again
    s_batch_clear (&b);
    s_test_case (&b, "d4", "passed", 4.5);
    store->staged_ahead = 0;
    assert (s_write (store, &b) == 0);
    assert ((long) omni_metric_value (store->m_direct) == before + 2);
    s_batch_destroy (&b);

    //  No foreign key on ci_tests (migration 7): a source with results
    //  cannot be deleted all the same
    assert (omni_pgconn_exec (pg, "DELETE FROM sources WHERE name = 'repo-direct'") != PGCONN_OK);
    assert (strcmp (omni_pgconn_sqlstate (pg), "23503") == 0);
    //  A cached source deleted by hand: made again, no row points nowhere
    s_batch_init (&b, "repo-gone");
    s_test_case (&b, "g1", "passed", 1.0);
    assert (s_write (store, &b) == 0);
    assert (omni_pgconn_exec (pg, "DELETE FROM ci_tests WHERE source_id = (SELECT id FROM sources "
                                  "WHERE name = 'repo-gone'); DELETE FROM sources WHERE name = "
                                  "'repo-gone'") == PGCONN_OK);
    s_batch_clear (&b);
    s_test_case (&b, "g2", "passed", 2.0);
    assert (s_write (store, &b) == 0);
    pgtest_expect (pg,
                   "SELECT string_agg (t.name, ',') FROM ci_tests t JOIN sources so "
                   "ON so.id = t.source_id WHERE so.name = 'repo-gone'",
                   "g2");
    pgtest_expect (
        pg, "SELECT count (*) FROM ci_tests WHERE source_id NOT IN (SELECT id FROM sources)", "0");
    //  The next batch goes straight in again, with the new id cached
    s_batch_clear (&b);
    s_test_case (&b, "g3", "passed", 3.0);
    long direct = (long) omni_metric_value (store->m_direct);
    assert (s_write (store, &b) == 0);
    assert ((long) omni_metric_value (store->m_direct) == direct + 1);
    pgtest_expect (pg,
                   "SELECT string_agg (t.name, ',' ORDER BY t.name) FROM ci_tests t "
                   "JOIN sources so ON so.id = t.source_id WHERE so.name = 'repo-gone'",
                   "g2,g3");
    s_batch_destroy (&b);
}

static void
s_test_basic (relstore_t *store, omni_pgconn_t *pg)
{
    s_batch_t b;
    s_batch_init (&b, "repo-a");
    s_full_batch (&b);
    assert (s_write (store, &b) == 0);
    pgtest_expect (pg, s_counts_sql, "1 1 3 3 1 1 1 3 1 0");
    pgtest_expect (pg,
                   "SELECT status || ' ' || started || ' ' || finished || ' ' || duration || ' ' "
                   "|| (counts->>'git.commit') || ' ' || instance FROM runs",
                   "ok 2023-11-14 22:13:20+00 2023-11-14 22:13:22+00 2 3 test-col");
    pgtest_expect (pg,
                   "SELECT author_time || ' ' || author_tz || ' ' || committer_time || ' ' "
                   "|| parents[1] || ' ' || insertions || ' ' || (length (id) = 16) "
                   "FROM commits WHERE sha = 'c3'",
                   "2020-09-15 12:26:40+00 -300 2020-09-15 12:27:40+00 "
                   "0123456789abcdef0123456789abcdef01234567 1 true");
    pgtest_expect (pg,
                   "SELECT string_agg (path || ':' || coalesce (f.insertions::text, '-') || ':' "
                   "|| is_binary, ',' ORDER BY path) FROM commit_files f JOIN commits c "
                   "ON c.id = f.commit_id WHERE c.sha = 'c1'",
                   "src/file0.c:10:false,src/file1.c:-:true");
    pgtest_expect (pg, "SELECT name || ' ' || target || ' ' || head FROM branches", "main c3 true");
    pgtest_expect (pg, "SELECT tagger_time || ' ' || annotated || ' ' || message FROM tags",
                   "2020-09-14 13:26:40+00 true release");
    pgtest_expect (pg,
                   "SELECT status || ' ' || duration || ' ' || (tests->>'total') FROM ci_builds",
                   "running 12.5 3");
    pgtest_expect (pg, "SELECT code || ' ' || (path IS NULL) FROM code_stats", "300 true");
    pgtest_expect (pg,
                   "SELECT string_agg (author_name || ':' || commits || ':' || insertions || ':' "
                   "|| deletions, ',' ORDER BY author_name) FROM contributors",
                   "Ann:2:15:2,Bob:1:1:1");
    pgtest_expect (pg, "SELECT count (*) FROM commit_activity_daily", "3");
    pgtest_expect (pg, "SELECT name FROM slowest_tests ORDER BY avg_duration DESC LIMIT 1",
                   "t_slow");

    //  The same batch again, and each record twice in one batch: no new row
    assert (s_write (store, &b) == 0);
    pgtest_expect (pg, s_counts_sql, "1 1 3 3 1 1 1 3 1 0");
    size_t n = testrec_count (b.recs);
    s_full_batch (&b);
    assert (testrec_count (b.recs) == 2 * n);
    assert (s_write (store, &b) == 0);
    pgtest_expect (pg, s_counts_sql, "1 1 3 3 1 1 1 3 1 0");

    //  State moves: the branch to a new target, the build to success. An
    //  older observation delivered late changes nothing.
    s_batch_clear (&b);
    b.ts += 1000;
    s_branch (&b, "main", "c4");
    s_build (&b, "ci", "b1", "success");
    assert (s_write (store, &b) == 0);
    pgtest_expect (pg, "SELECT target FROM branches WHERE name = 'main'", "c4");
    pgtest_expect (pg, "SELECT status FROM ci_builds", "success");
    s_batch_clear (&b);
    b.ts -= 1000;
    s_branch (&b, "main", "c3");
    s_build (&b, "ci", "b1", "running");
    assert (s_write (store, &b) == 0);
    pgtest_expect (pg, "SELECT target || ' ' || count (*) OVER () FROM branches", "c4 1");
    pgtest_expect (pg, "SELECT status || ' ' || count (*) OVER () FROM ci_builds", "success 1");
    pgtest_expect (pg,
                   "SELECT succeeded || '/' || builds || ' ' || success_rate "
                   "FROM build_success_rate",
                   "1/1 1.0000");

    //  A report's figures: a second report of the same day and period
    //  replaces the row, an older one delivered late does not; another
    //  period is a row of its own
    s_batch_clear (&b);
    b.ts += 5000;
    s_analysis (&b, "2024-03-01", 0, 7);
    s_analysis (&b, "2024-03-01", 1700000000000000000, 8);
    assert (s_write (store, &b) == 0);
    s_batch_clear (&b);
    b.ts += 1000;
    s_analysis (&b, "2024-03-01", 0, 9);
    assert (s_write (store, &b) == 0);
    s_batch_clear (&b);
    b.ts -= 3000;
    s_analysis (&b, "2024-03-01", 0, 1);
    assert (s_write (store, &b) == 0);
    pgtest_expect (pg,
                   "SELECT string_agg (day || ' ' || coalesce (since::text, '-') || ' ' "
                   "|| commits || ' ' || success_rate || ' ' || coalesce (code_lines, -1) "
                   "|| ' ' || source, ',' ORDER BY since NULLS FIRST) FROM analysis_trend",
                   "2024-03-01 - 9 0.5 -1 repo-a,"
                   "2024-03-01 2023-11-14 22:13:20+00 8 0.5 -1 repo-a");
    s_batch_destroy (&b);
}

static void
s_test_hostile (relstore_t *store, omni_pgconn_t *pg)
{
    char *before =
        pgtest_value (pg, "SELECT string_agg (table_name, ',' ORDER BY table_name) "
                          "FROM information_schema.tables WHERE table_schema = 'public'");
    s_batch_t b;
    //  A source with a NUL, quotes and an injection attempt
    static const char src[] = "repo'); DROP TABLE commits; --\\\"\t\n";
    s_batch_init (&b, src);
    static const char name[] = "O'Brien \"Bob\" \\ '); DROP TABLE commits; -- \xe2\x98\x83";
    //  1 MB message with every ASCII byte, NUL included
    size_t big = 1024 * 1024;
    char *message = malloc (big);
    assert (message);
    for (size_t i = 0; i < big; i++)
        message[i] = (char) (i % 128);
    s_commit (&b, &(s_commit_t){"h1", name, "x@example.org", message, big, 1600000000, 0, 1, 1, 0});
    s_branch (&b, "feature/'; DELETE FROM branches; --", "h1");
    assert (s_write (store, &b) == 0);

    //  Read back with binary results, compare byte for byte (NUL -> U+FFFD)
    const char *params[] = {"h1"};
    PGresult *result = omni_pgconn_query (pg,
                                          "SELECT message, author_name, s.name FROM commits c "
                                          "JOIN sources s ON s.id = c.source_id WHERE sha = $1",
                                          1, params);
    assert (result && PQntuples (result) == 1);
    omni_buf_t expected = {0};
    size_t expected_len;
    const char *clean = omni_pgcopy_text_clean (message, big, &expected, &expected_len);
    assert (expected_len == big + 2 * (big / 128));
    assert ((size_t) PQgetlength (result, 0, 0) == expected_len);
    assert (memcmp (PQgetvalue (result, 0, 0), clean, expected_len) == 0);
    assert (strcmp (PQgetvalue (result, 0, 1), name) == 0);
    assert (strcmp (PQgetvalue (result, 0, 2), src) == 0);
    PQclear (result);
    omni_buf_release (&expected);
    pgtest_expect (pg, "SELECT name FROM branches WHERE name LIKE 'feature/%'",
                   "feature/'; DELETE FROM branches; --");

    //  NUL inside a string: stored as U+FFFD, in text and in jsonb
    s_batch_clear (&b);
    msgpack_packer *pk = s_begin (&b, "ci.build", 4);
    omni_record_pack_kv (pk, "pipeline", "nul");
    s_kv_strn (pk, "build_id", "a\0b", 3);
    omni_record_pack_kv (pk, "status", "success");
    omni_record_pack_str (pk, "tests");
    msgpack_pack_map (pk, 1);
    msgpack_pack_str_with_body (pk, "k\0", 2);
    msgpack_pack_str_with_body (pk, "v\0\\u0000", 8);
    s_end (&b);
    assert (s_write (store, &b) == 0);
    pgtest_expect (pg, "SELECT build_id = E'a\\uFFFDb' FROM ci_builds WHERE pipeline = 'nul'", "t");
    pgtest_expect (pg,
                   "SELECT tests->>E'k\\uFFFD' = E'v\\uFFFD\\\\u0000' FROM ci_builds "
                   "WHERE pipeline = 'nul'",
                   "t");

    //  Repeated cases, a rerun and a disabled case (collectord junit): every
    //  result a row; the views leave out what did not run and retried attempts
    s_batch_clear (&b);
    static const struct {
        const char *name, *status;
        int occurrence;
        bool retried, flaky;
        double duration;
    } results[] = {{"t_rep", "passed", 0, false, false, 0.5},
                   {"t_rep", "passed", 1, false, false, 0.7},
                   {"t_rerun", "failed", 0, true, false, 9.0},
                   {"t_rerun", "passed", 1, false, true, 1.0},
                   {"t_off", "disabled", 0, false, false, 99.0}};
    for (size_t i = 0; i < sizeof results / sizeof results[0]; i++) {
        pk = s_begin (&b, "ci.test", 7 + (results[i].occurrence > 0) + results[i].retried);
        omni_record_pack_kv (pk, "suite", "rep");
        omni_record_pack_kv (pk, "name", results[i].name);
        omni_record_pack_kv (pk, "status", results[i].status);
        omni_record_pack_kv_double (pk, "duration", results[i].duration);
        omni_record_pack_kv (pk, "build_id", "b9");
        omni_record_pack_kv (pk, "pipeline", "ci");
        omni_record_pack_kv_bool (pk, "flaky", results[i].flaky);
        if (results[i].occurrence)
            omni_record_pack_kv_int (pk, "occurrence", results[i].occurrence);
        if (results[i].retried)
            omni_record_pack_kv_bool (pk, "retried", true);
        s_end (&b);
    }
    assert (s_write (store, &b) == 0);
    pgtest_expect (pg,
                   "SELECT string_agg (name || occurrence || retried::text, ',' ORDER BY "
                   "name, occurrence) FROM ci_tests WHERE suite = 'rep'",
                   "t_off0false,t_rep0false,t_rep1false,t_rerun0true,t_rerun1false");
    pgtest_expect (pg,
                   "SELECT string_agg (name || ':' || runs || ':' || max_duration, ',' "
                   "ORDER BY name) FROM slowest_tests WHERE suite = 'rep'",
                   "t_rep:2:0.7,t_rerun:1:1");
    pgtest_expect (pg,
                   "SELECT string_agg (name || ':' || runs || ':' || flaky_runs || ':' || "
                   "flips, ',') FROM flakiest_tests WHERE suite = 'rep'",
                   "t_rerun:1:1:0");

    char *after = pgtest_value (pg, "SELECT string_agg (table_name, ',' ORDER BY table_name) "
                                    "FROM information_schema.tables WHERE table_schema = 'public'");
    assert (strcmp (before, after) == 0);
    free (before);
    free (after);
    free (message);
    s_batch_destroy (&b);
}

static void
s_test_rejects (relstore_t *store, omni_pgconn_t *pg)
{
    s_batch_t b;
    s_batch_init (&b, "repo-r");
    char sha[16];
    for (int i = 0; i < 50; i++) {
        snprintf (sha, sizeof sha, "r%02d", i);
        s_commit_t c = {sha, "Rae", "rae@example.org", "m", 0, 1600000000 + i, 0, 1, 1, 1};
        if (i == 17)
            c.insertions = INT64_C (5000000000); //  integer out of range
        if (i == 33)
            c.tz = 100000; //  smallint out of range
        if (i == 40)
            c.time = INT64_C (100000000000000); //  timestamp out of range
        //  (A parent that is not a string is refused before: by the
        //  encoder and by ingestd, the kinds table's element types)
        s_commit (&b, &c);
    }
    s_branch (&b, "ok-branch", "r00");
    assert (s_write (store, &b) == 0);
    pgtest_expect (pg,
                   "SELECT count (*) FROM commits c JOIN sources s ON s.id = c.source_id "
                   "WHERE s.name = 'repo-r'",
                   "47");
    pgtest_expect (pg,
                   "SELECT count (*) FROM commit_files f JOIN commits c ON c.id = f.commit_id "
                   "WHERE c.sha LIKE 'r%'",
                   "47");
    pgtest_expect (pg, "SELECT count (*) FROM branches WHERE name = 'ok-branch'", "1");
    pgtest_expect (pg,
                   "SELECT string_agg (record->'body'->>'sha' || ':' || coalesce (sqlstate, '-'), "
                   "',' ORDER BY record->'body'->>'sha') FROM rejected_records",
                   "r17:22003,r33:22003,r40:22008");
    pgtest_expect (pg,
                   "SELECT count (*) FROM rejected_records WHERE error LIKE '%out of range%' "
                   "AND kind = 'git.commit' AND source = 'repo-r' AND length (record_id) = 16",
                   "3");
    //  Delivered again: still one row per refused record, counted
    assert (s_write (store, &b) == 0);
    pgtest_expect (pg, "SELECT count (*) || ' ' || sum (attempts) FROM rejected_records", "3 6");
    pgtest_expect (pg,
                   "SELECT count (*) FROM commits c JOIN sources s ON s.id = c.source_id "
                   "WHERE s.name = 'repo-r'",
                   "47");
    s_batch_destroy (&b);
}

//  The session ends under relstore (server restart, network): the write
//  fails (the writer retries), and a later one goes through.
static void
s_test_outage (relstore_t *store, omni_pgconn_t *pg, const char *dsn)
{
    s_batch_t b;
    s_batch_init (&b, "repo-o");
    s_commit (&b, &(s_commit_t){"o1", "Oz", "oz@example.org", "m", 0, 1600000000, 0, 1, 1, 0});
    assert (s_write (store, &b) == 0);
    char sql[256];
    snprintf (sql, sizeof sql,
              "SELECT count (pg_terminate_backend (pid)) FROM pg_stat_activity WHERE "
              "datname = current_database () AND pid <> pg_backend_pid ()");
    pgtest_expect (pg, sql, "1");
    char error[512] = "";
    int rc = relstore_write (store, testrec_records (b.recs), testrec_count (b.recs), NULL, error,
                             sizeof error);
    int64_t deadline = omni_util_mono_ms () + 10000;
    while (rc != 0 && omni_util_mono_ms () < deadline) {
        assert (strstr (error, "postgresql"));
        rc = relstore_write (store, testrec_records (b.recs), testrec_count (b.recs), NULL, error,
                             sizeof error);
    }
    assert (rc == 0);
    pgtest_expect (pg, "SELECT count (*) FROM commits WHERE sha = 'o1'", "1");

    //  A server that is not there: -1 and unhealthy
    relstore_t *away =
        relstore_new ("host=127.0.0.1 port=1 connect_timeout=1", NULL, error, sizeof error);
    assert (away);
    assert (relstore_connect (away) == 1);
    assert (relstore_write (away, testrec_records (b.recs), testrec_count (b.recs), NULL, error,
                            sizeof error) == -1);
    assert (strstr (error, "postgresql"));
    char text[256];
    assert (!relstore_healthy (away, text, sizeof text));
    relstore_destroy (&away);
    assert (relstore_healthy (store, text, sizeof text));
    (void) dsn;
    s_batch_destroy (&b);
}

void
relstore_test (bool verbose)
{
    if (!verbose)
        omni_log_init ("relstore-test", "error", "kv");
    //  The kinds with a table here are the kinds the kinds table routes here
    for (size_t id = 0; omni_kinds_at (id); id++) {
        bool routed = (omni_kinds_at (id)->writers & WRITER_RELATIONAL) != 0;
        assert (routed == (s_table_of ((omni_kind_id_t) id) != T_NONE));
    }
    assert (!(omni_kinds_custom ()->writers & WRITER_RELATIONAL));
    assert (s_table_of (KIND_CUSTOM) == T_NONE);
    char error[256];
    assert (relstore_new ("port='unterminated", NULL, error, sizeof error) == NULL);
    char *dsn = pgtest_db_new ("relstore");
    if (!dsn) {
        selftest_skip ("no PostgreSQL server ($OMNI_TEST_PG_DSN, else 127.0.0.1:5432)");
    }
    omni_metrics_t *metrics = omni_metrics_new ("test_");
    relstore_t *store = relstore_new (dsn, metrics, error, sizeof error);
    assert (store);
    assert (relstore_connect (store) == 0);
    omni_pgconn_t *pg = omni_pgconn_new (dsn, error, sizeof error);
    assert (pg && omni_pgconn_ensure (pg) == 0);
    assert (omni_pgconn_exec (pg, "SET TIME ZONE 'UTC'") == PGCONN_OK);

    s_test_basic (store, pg);
    s_test_conflicts (store, pg);
    s_test_hostile (store, pg);
    s_test_rejects (store, pg);
    s_test_outage (store, pg, dsn);
    s_test_direct (store, pg);
    char *text = omni_metrics_render (metrics);
    assert (strstr (text, "test_records_rejected_total 6"));
    free (text);

    omni_pgconn_destroy (&pg);
    relstore_destroy (&store);
    assert (store == NULL);
    omni_metrics_destroy (&metrics);
    pgtest_db_drop (dsn);
    free (dsn);
}
