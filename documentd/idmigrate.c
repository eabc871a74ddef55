/*  idmigrate: BinData _ids to string _ids, once per database (idmigrate.h).

    Why copy into a new collection and swap, rather than convert in place
    (insert the hex twin, delete the BinData one): on FerretDB 1.24 a
    delete by a BinData _id scans the collection (only `{_id: <string>}`
    reaches SQL), so converting in place costs a scan per batch, hours for a
    million documents; a copy reads the collection once and inserts, checked
    by the unique _id index. And a collection converted in place holds both
    forms of a record at once, which readers would see.

    Why the writer waits for it instead of writing into the copy meanwhile:
    a record written into T while its BinData twin is still to be copied
    would have to be compared with it (which state is newer) when the copy
    meets it, a read by _id per such record; with the writer waiting, a
    duplicate _id in T can only be an earlier run's own copy of the very
    same document, and a resumed copy needs no read at all. ingestd keeps
    the records meanwhile; it is once per database.                       */
#include "documentd/idmigrate.h"
#include "common/log.h"
#include "testsupport/selftest.h"
#include "common/util.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_BATCH     1000
#define S_RECORD_ID 16

static void s_say (idmigrate_progress_fn *progress, void *arg, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
s_say (idmigrate_progress_fn *progress, void *arg, const char *format, ...)
{
    char text[512];
    va_list args;
    va_start (args, format);
    vsnprintf (text, sizeof text, format, args);
    va_end (args);
    if (progress)
        progress (arg, text);
}

//  "<what>: <the driver's message>" into error; -1
static int s_fail (char *error, size_t error_size, const bson_error_t *berr, const char *format,
                   ...) __attribute__ ((format (printf, 4, 5)));

static int
s_fail (char *error, size_t error_size, const bson_error_t *berr, const char *format, ...)
{
    char what[256];
    va_list args;
    va_start (args, format);
    vsnprintf (what, sizeof what, format, args);
    va_end (args);
    snprintf (error, error_size, "%s: %s", what, berr->message);
    return -1;
}

//  1 when the marker says hex, 0 when there is none (or another value), -1 on error
static int
s_marked_hex (mongoc_database_t *db, char *error, size_t error_size)
{
    mongoc_collection_t *meta = mongoc_database_get_collection (db, IDMIGRATE_META);
    bson_t *filter = BCON_NEW ("_id", BCON_UTF8 ("id_format"));
    mongoc_read_prefs_t *prefs = mongoc_read_prefs_new (MONGOC_READ_PRIMARY);
    mongoc_cursor_t *cursor = mongoc_collection_find_with_opts (meta, filter, NULL, prefs);
    const bson_t *doc;
    int rc = 0;
    if (mongoc_cursor_next (cursor, &doc)) {
        bson_iter_t it;
        rc = bson_iter_init_find (&it, doc, "value") && BSON_ITER_HOLDS_UTF8 (&it) &&
             strcmp (bson_iter_utf8 (&it, NULL), "hex") == 0;
    }
    bson_error_t berr;
    if (mongoc_cursor_error (cursor, &berr))
        rc = s_fail (error, error_size, &berr, "reading " IDMIGRATE_META);
    mongoc_cursor_destroy (cursor);
    mongoc_read_prefs_destroy (prefs);
    bson_destroy (filter);
    mongoc_collection_destroy (meta);
    return rc;
}

static int
s_mark_hex (mongoc_database_t *db, const mongoc_write_concern_t *wc, char *error, size_t error_size)
{
    mongoc_collection_t *meta = mongoc_database_get_collection (db, IDMIGRATE_META);
    bson_t *filter = BCON_NEW ("_id", BCON_UTF8 ("id_format"));
    //  No date: a database rebuilt from the archive must come out the same
    bson_t *doc = BCON_NEW ("_id", BCON_UTF8 ("id_format"), "value", BCON_UTF8 ("hex"));
    bson_t opts = BSON_INITIALIZER;
    BSON_APPEND_BOOL (&opts, "upsert", true);
    mongoc_write_concern_append ((mongoc_write_concern_t *) wc, &opts);
    bson_error_t berr;
    bool ok = mongoc_collection_replace_one (meta, filter, doc, &opts, NULL, &berr);
    bson_destroy (&opts);
    bson_destroy (doc);
    bson_destroy (filter);
    mongoc_collection_destroy (meta);
    return ok ? 0 : s_fail (error, error_size, &berr, "writing the id_format marker");
}

//  1 when the collection exists, 0 when not, -1 on error
static int
s_exists (mongoc_database_t *db, const char *name, char *error, size_t error_size)
{
    bson_error_t berr = {0};
    bool found = mongoc_database_has_collection (db, name, &berr);
    if (!found && berr.code)
        return s_fail (error, error_size, &berr, "listCollections");
    return found;
}

//  1 when some document of `name` has a BinData _id, 0 when none, -1 on error
static int
s_has_bindata (mongoc_database_t *db, const char *name, char *error, size_t error_size)
{
    mongoc_collection_t *coll = mongoc_database_get_collection (db, name);
    bson_t *filter = BCON_NEW ("_id", "{", "$type", BCON_UTF8 ("binData"), "}");
    bson_t *opts =
        BCON_NEW ("projection", "{", "_id", BCON_INT32 (1), "}", "limit", BCON_INT64 (1));
    mongoc_read_prefs_t *prefs = mongoc_read_prefs_new (MONGOC_READ_PRIMARY);
    mongoc_cursor_t *cursor = mongoc_collection_find_with_opts (coll, filter, opts, prefs);
    const bson_t *doc;
    int rc = mongoc_cursor_next (cursor, &doc) ? 1 : 0;
    bson_error_t berr;
    if (mongoc_cursor_error (cursor, &berr)) {
        rc = s_fail (error, error_size, &berr, "looking for BinData _ids in %s", name);
    }
    mongoc_cursor_destroy (cursor);
    mongoc_read_prefs_destroy (prefs);
    bson_destroy (opts);
    bson_destroy (filter);
    mongoc_collection_destroy (coll);
    return rc;
}

//  `doc` with a 16-byte BinData _id as 32 hex digits; any other _id, and
//  every other field, as it is (same order).
static void
s_convert (const bson_t *doc, bson_t *out)
{
    bson_iter_t it;
    bson_iter_init (&it, doc);
    while (bson_iter_next (&it)) {
        if (strcmp (bson_iter_key (&it), "_id") == 0 && BSON_ITER_HOLDS_BINARY (&it)) {
            bson_subtype_t subtype;
            uint32_t len;
            const uint8_t *bytes;
            bson_iter_binary (&it, &subtype, &len, &bytes);
            if (len == S_RECORD_ID && subtype == BSON_SUBTYPE_BINARY) {
                char hex[2 * S_RECORD_ID + 1];
                omni_util_hex (bytes, S_RECORD_ID, hex);
                bson_append_utf8 (out, "_id", 3, hex, 2 * S_RECORD_ID);
                continue;
            }
        }
        bson_append_iter (out, NULL, 0, &it);
    }
}

//  Inserts `n` converted documents into `target`; every one must be
//  inserted or already there (a duplicate key: an earlier run's copy).
static int
s_insert (mongoc_collection_t *target, const mongoc_write_concern_t *wc, bson_t *docs, size_t n,
          char *error, size_t error_size)
{
    bson_t opts = BSON_INITIALIZER;
    BSON_APPEND_BOOL (&opts, "ordered", false);
    mongoc_write_concern_append ((mongoc_write_concern_t *) wc, &opts);
    mongoc_bulk_operation_t *bulk =
        mongoc_collection_create_bulk_operation_with_opts (target, &opts);
    bson_t insert_opts = BSON_INITIALIZER;
    BSON_APPEND_BOOL (&insert_opts, "validate", false);
    for (size_t i = 0; i < n; i++)
        mongoc_bulk_operation_insert_with_opts (bulk, &docs[i], &insert_opts, NULL);
    bson_t reply;
    bson_error_t berr = {0};
    bool ok = mongoc_bulk_operation_execute (bulk, &reply, &berr) != 0;
    bson_iter_t it, list;
    int64_t answered = 0;
    bool other = false;
    if (bson_iter_init_find (&it, &reply, "nInserted") && BSON_ITER_HOLDS_NUMBER (&it))
        answered = bson_iter_as_int64 (&it);
    if (bson_iter_init_find (&it, &reply, "writeErrors") && BSON_ITER_HOLDS_ARRAY (&it) &&
        bson_iter_recurse (&it, &list))
        while (bson_iter_next (&list)) {
            bson_iter_t code;
            if (bson_iter_recurse (&list, &code) && bson_iter_find (&code, "code") &&
                bson_iter_as_int64 (&code) == 11000)
                answered++;
            else
                other = true;
        }
    if (bson_iter_init_find (&it, &reply, "writeConcernErrors") && BSON_ITER_HOLDS_ARRAY (&it) &&
        bson_iter_recurse (&it, &list) && bson_iter_next (&list))
        other = true;
    int rc = 0;
    if (other || (size_t) answered != n) {
        snprintf (error, error_size, "copying into %s: %s (%" PRId64 " of %zu accounted for)",
                  mongoc_collection_get_name (target), ok ? "write errors" : berr.message, answered,
                  n);
        rc = -1;
    }
    bson_destroy (&reply);
    mongoc_bulk_operation_destroy (bulk);
    bson_destroy (&insert_opts);
    bson_destroy (&opts);
    return rc;
}

//  Step 1: every document of `name` into `temp`; *copied = documents read
static int
s_copy (mongoc_database_t *db, const mongoc_write_concern_t *wc, const char *name, const char *temp,
        idmigrate_progress_fn *progress, void *arg, atomic_bool *quit, int64_t *copied, char *error,
        size_t error_size)
{
    mongoc_collection_t *source = mongoc_database_get_collection (db, name);
    mongoc_collection_t *target = mongoc_database_get_collection (db, temp);
    bson_t filter = BSON_INITIALIZER;
    bson_t *opts = BCON_NEW ("batchSize", BCON_INT32 (S_BATCH));
    mongoc_read_prefs_t *prefs = mongoc_read_prefs_new (MONGOC_READ_PRIMARY);
    mongoc_cursor_t *cursor = mongoc_collection_find_with_opts (source, &filter, opts, prefs);
    bson_t *docs = calloc (S_BATCH, sizeof *docs);
    assert (docs);
    size_t n = 0;
    int rc = 0;
    int64_t start = omni_util_mono_ms (), said = start;
    *copied = 0;
    const bson_t *doc;
    for (bool more = true; more && rc == 0;) {
        more = mongoc_cursor_next (cursor, &doc);
        if (more) {
            bson_init (&docs[n]);
            s_convert (doc, &docs[n++]);
        }
        if (n == S_BATCH || (!more && n > 0)) {
            if (quit && atomic_load (quit)) {
                snprintf (error, error_size, "stopped while copying %s", name);
                rc = -1;
            } else
                rc = s_insert (target, wc, docs, n, error, error_size);
            for (size_t i = 0; i < n; i++)
                bson_destroy (&docs[i]);
            *copied += rc == 0 ? (int64_t) n : 0;
            n = 0;
            s_say (progress, arg, "copying %s: %" PRId64 " documents copied", name, *copied);
            if (omni_util_mono_ms () - said >= 10000) {
                said = omni_util_mono_ms ();
                log_info ("ids.copying", "collection=%s copied=%" PRId64 " elapsed_ms=%" PRId64,
                          name, *copied, said - start);
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        bson_destroy (&docs[i]);
    free (docs);
    bson_error_t berr;
    if (rc == 0 && mongoc_cursor_error (cursor, &berr)) {
        rc = s_fail (error, error_size, &berr, "reading %s", name);
    }
    mongoc_cursor_destroy (cursor);
    mongoc_read_prefs_destroy (prefs);
    bson_destroy (opts);
    bson_destroy (&filter);
    mongoc_collection_destroy (target);
    mongoc_collection_destroy (source);
    return rc;
}

//  Step 3: the indexes of `name` but _id's on `temp`, one command each
//  (FerretDB 1.24 drops the connection on one command naming several
//  indexes that exist already, which a resumed run meets).
static int
s_copy_indexes (mongoc_database_t *db, const mongoc_write_concern_t *wc, const char *name,
                const char *temp, char *error, size_t error_size)
{
    mongoc_collection_t *source = mongoc_database_get_collection (db, name);
    mongoc_cursor_t *cursor = mongoc_collection_find_indexes_with_opts (source, NULL);
    const bson_t *spec;
    int rc = 0;
    while (rc == 0 && mongoc_cursor_next (cursor, &spec)) {
        bson_iter_t it;
        if (!bson_iter_init_find (&it, spec, "name") || !BSON_ITER_HOLDS_UTF8 (&it) ||
            strcmp (bson_iter_utf8 (&it, NULL), "_id_") == 0)
            continue;
        bson_t cmd = BSON_INITIALIZER, indexes, index;
        BSON_APPEND_UTF8 (&cmd, "createIndexes", temp);
        BSON_APPEND_ARRAY_BEGIN (&cmd, "indexes", &indexes);
        BSON_APPEND_DOCUMENT_BEGIN (&indexes, "0", &index);
        bson_iter_init (&it, spec);
        while (bson_iter_next (&it))
            if (strcmp (bson_iter_key (&it), "v") != 0 && strcmp (bson_iter_key (&it), "ns") != 0)
                bson_append_iter (&index, NULL, 0, &it);
        bson_append_document_end (&indexes, &index);
        bson_append_array_end (&cmd, &indexes);
        bson_t opts = BSON_INITIALIZER;
        mongoc_write_concern_append ((mongoc_write_concern_t *) wc, &opts);
        bson_error_t berr;
        if (!mongoc_database_write_command_with_opts (db, &cmd, &opts, NULL, &berr)) {
            rc = s_fail (error, error_size, &berr, "making the indexes of %s on %s", name, temp);
        }
        bson_destroy (&opts);
        bson_destroy (&cmd);
    }
    bson_error_t berr;
    if (rc == 0 && mongoc_cursor_error (cursor, &berr))
        rc = s_fail (error, error_size, &berr, "listIndexes");
    mongoc_cursor_destroy (cursor);
    mongoc_collection_destroy (source);
    return rc;
}

//  Step 5
static int
s_rename (mongoc_database_t *db, const mongoc_write_concern_t *wc, const char *temp,
          const char *name, char *error, size_t error_size)
{
    mongoc_collection_t *coll = mongoc_database_get_collection (db, temp);
    bson_t opts = BSON_INITIALIZER;
    mongoc_write_concern_append ((mongoc_write_concern_t *) wc, &opts);
    bson_error_t berr;
    bool ok = mongoc_collection_rename_with_opts (coll, NULL, name, false, &opts, &berr);
    bson_destroy (&opts);
    mongoc_collection_destroy (coll);
    if (ok)
        return 0;
    return s_fail (error, error_size, &berr, "renaming %s to %s", temp, name);
}

static int
s_migrate_collection (mongoc_database_t *db, const mongoc_write_concern_t *wc, const char *name,
                      idmigrate_progress_fn *progress, void *arg, atomic_bool *quit, char *error,
                      size_t error_size)
{
    char temp[256];
    snprintf (temp, sizeof temp, "%s%s", name, IDMIGRATE_SUFFIX);
    int has = s_exists (db, name, error, error_size);
    int has_temp = has < 0 ? -1 : s_exists (db, temp, error, error_size);
    if (has < 0 || has_temp < 0)
        return -1;
    if (!has && !has_temp)
        return 0;
    if (!has) { //  killed between drop and rename: the copy is complete
        log_info ("ids.resumed", "collection=%s step=rename", name);
        return s_rename (db, wc, temp, name, error, error_size);
    }
    if (!has_temp) {
        int bindata = s_has_bindata (db, name, error, error_size);
        if (bindata <= 0)
            return bindata; //  string _ids already (or an error)
    }
    log_info ("ids.migrating", "collection=%s into=%s resumed=%s", name, temp,
              has_temp ? "yes" : "no");
    int64_t start = omni_util_mono_ms (), copied = 0;
    s_say (progress, arg, "copying %s: 0 documents copied", name);
    if (s_copy (db, wc, name, temp, progress, arg, quit, &copied, error, error_size))
        return -1;
    //  The copy is all of it: T holds what was read, no more (only this
    //  copies into T), no less (every insert was answered).
    mongoc_collection_t *target = mongoc_database_get_collection (db, temp);
    bson_t filter = BSON_INITIALIZER;
    bson_error_t berr;
    int64_t held = mongoc_collection_count_documents (target, &filter, NULL, NULL, NULL, &berr);
    bson_destroy (&filter);
    if (held < 0) {
        mongoc_collection_destroy (target);
        return s_fail (error, error_size, &berr, "counting the copy");
    }
    if (held != copied) {
        mongoc_collection_destroy (target);
        snprintf (error, error_size,
                  "%s holds %" PRId64 " documents, %" PRId64 " were copied from %s: left as "
                  "it is for an operator (drop %s to start the copy again)",
                  temp, held, copied, name, temp);
        return -1;
    }
    mongoc_collection_destroy (target);
    s_say (progress, arg, "swapping %s: %" PRId64 " documents copied", name, copied);
    if (s_copy_indexes (db, wc, name, temp, error, error_size))
        return -1;
    mongoc_collection_t *old = mongoc_database_get_collection (db, name);
    bson_t opts = BSON_INITIALIZER;
    mongoc_write_concern_append ((mongoc_write_concern_t *) wc, &opts);
    bool dropped = mongoc_collection_drop_with_opts (old, &opts, &berr);
    bson_destroy (&opts);
    mongoc_collection_destroy (old);
    if (!dropped) {
        return s_fail (error, error_size, &berr, "dropping %s after its copy", name);
    }
    if (s_rename (db, wc, temp, name, error, error_size))
        return -1;
    log_info ("ids.migrated", "collection=%s documents=%" PRId64 " elapsed_ms=%" PRId64, name,
              copied, omni_util_mono_ms () - start);
    return 0;
}

int
idmigrate_marked (mongoc_database_t *db, char *error, size_t error_size)
{
    return s_marked_hex (db, error, error_size);
}

int
idmigrate_run (mongoc_database_t *db, const mongoc_write_concern_t *wc, const char *const *names,
               size_t count, idmigrate_progress_fn *progress, void *arg, atomic_bool *quit,
               char *error, size_t error_size)
{
    *error = 0;
    int marked = s_marked_hex (db, error, error_size);
    if (marked != 0)
        return marked;
    s_say (progress, arg, "checking");
    for (size_t i = 0; i < count; i++)
        if (s_migrate_collection (db, wc, names[i], progress, arg, quit, error, error_size))
            return -1;
    if (s_mark_hex (db, wc, error, error_size))
        return -1;
    log_info ("ids.hex", "database=%s", mongoc_database_get_name (db));
    return 0;
}

//  ---------------------------------------------------------------------------
//  Self-test against a real server: a database written the old way, and the
//  states a kill -9 can leave at each step, each brought to the end.

#define S_TEST_DOCS 2500

static void
s_old_doc (bson_t *doc, int i, bool bindata)
{
    uint8_t id[S_RECORD_ID];
    for (int k = 0; k < S_RECORD_ID; k++)
        id[k] = (uint8_t) ((i * 7919 + k * 31) >> (k % 3));
    id[0] = (uint8_t) i;
    id[1] = (uint8_t) (i >> 8);
    if (bindata)
        bson_append_binary (doc, "_id", 3, BSON_SUBTYPE_BINARY, id, S_RECORD_ID);
    else {
        char hex[2 * S_RECORD_ID + 1];
        omni_util_hex (id, S_RECORD_ID, hex);
        BSON_APPEND_UTF8 (doc, "_id", hex);
    }
    BSON_APPEND_UTF8 (doc, "kind", "ci.build");
    BSON_APPEND_INT64 (doc, "ts_ns", INT64_C (1700000000000000000) + i);
    bson_t body;
    BSON_APPEND_DOCUMENT_BEGIN (doc, "body", &body);
    BSON_APPEND_INT32 (&body, "n", i);
    bson_append_binary (&body, "blob", 4, BSON_SUBTYPE_BINARY, id, 4);
    bson_append_document_end (doc, &body);
}

static void
s_fill (mongoc_database_t *db, const char *name, int from, int to, bool bindata)
{
    mongoc_collection_t *coll = mongoc_database_get_collection (db, name);
    mongoc_bulk_operation_t *bulk = mongoc_collection_create_bulk_operation_with_opts (coll, NULL);
    for (int i = from; i < to; i++) {
        bson_t doc = BSON_INITIALIZER;
        s_old_doc (&doc, i, bindata);
        mongoc_bulk_operation_insert (bulk, &doc);
        bson_destroy (&doc);
    }
    bson_t reply;
    bson_error_t berr;
    bool ok = mongoc_bulk_operation_execute (bulk, &reply, &berr) != 0;
    if (!ok)
        fprintf (stderr, "fill %s: %s\n", name, berr.message);
    assert (ok);
    bson_destroy (&reply);
    mongoc_bulk_operation_destroy (bulk);
    mongoc_collection_destroy (coll);
}

//  Every document 0..n-1 once, with a hex _id and its content
static void
s_check (mongoc_database_t *db, const char *name, int n)
{
    mongoc_collection_t *coll = mongoc_database_get_collection (db, name);
    bson_t filter = BSON_INITIALIZER;
    mongoc_cursor_t *cursor = mongoc_collection_find_with_opts (coll, &filter, NULL, NULL);
    uint8_t *seen = calloc ((size_t) n, 1);
    const bson_t *doc;
    int total = 0;
    while (mongoc_cursor_next (cursor, &doc)) {
        bson_iter_t it;
        assert (bson_iter_init_find (&it, doc, "body") && bson_iter_recurse (&it, &it) &&
                bson_iter_find (&it, "n"));
        int i = bson_iter_int32 (&it);
        assert (i >= 0 && i < n && !seen[i]);
        seen[i] = 1;
        bson_t expect = BSON_INITIALIZER;
        s_old_doc (&expect, i, false);
        assert (bson_equal (doc, &expect));
        bson_destroy (&expect);
        total++;
    }
    assert (!mongoc_cursor_error (cursor, NULL));
    assert (total == n);
    free (seen);
    mongoc_cursor_destroy (cursor);
    bson_destroy (&filter);
    mongoc_collection_destroy (coll);
}

static bool
s_index_named (mongoc_database_t *db, const char *name, const char *index)
{
    mongoc_collection_t *coll = mongoc_database_get_collection (db, name);
    mongoc_cursor_t *cursor = mongoc_collection_find_indexes_with_opts (coll, NULL);
    const bson_t *spec;
    bool found = false;
    while (mongoc_cursor_next (cursor, &spec)) {
        bson_iter_t it;
        found |= bson_iter_init_find (&it, spec, "name") &&
                 strcmp (bson_iter_utf8 (&it, NULL), index) == 0;
    }
    mongoc_cursor_destroy (cursor);
    mongoc_collection_destroy (coll);
    return found;
}

static int s_said;

static void
s_count_said (void *arg, const char *text)
{
    (void) arg;
    (void) text;
    s_said++;
}

void
idmigrate_test (bool verbose)
{
    const char *uri = getenv ("OMNI_TEST_MONGO_URI");
    if (!uri || !*uri)
        selftest_skip ("no MongoDB-wire server (OMNI_TEST_MONGO_URI)");
    mongoc_client_t *client = mongoc_client_new (uri);
    assert (client);
    mongoc_client_set_error_api (client, MONGOC_ERROR_API_VERSION_2);
    char name[64];
    snprintf (name, sizeof name, "omni_idmig_%d_%d", (int) getpid (),
              (int) (omni_util_mono_ms () % 100000));
    mongoc_database_t *db = mongoc_client_get_database (client, name);
    mongoc_write_concern_t *wc = mongoc_write_concern_new ();
    mongoc_write_concern_set_w (wc, 1);
    const char *names[] = {"a", "b", "c", "d", "e", "empty"};
    char error[512];

    //  a: the old way, with an index; b: killed during the copy (half of it
    //  in b__hexid, indexes already there); c: killed between drop and
    //  rename (c__hexid alone); d: done but not marked (hex); e: absent.
    s_fill (db, "a", 0, S_TEST_DOCS, true);
    bson_t *cmd = BCON_NEW ("createIndexes", BCON_UTF8 ("a"), "indexes", "[", "{", "key", "{",
                            "ts_ns", BCON_INT32 (1), "}", "name", BCON_UTF8 ("ts_ns_1"), "}", "]");
    assert (mongoc_database_write_command_with_opts (db, cmd, NULL, NULL, NULL));
    bson_destroy (cmd);
    s_fill (db, "b", 0, S_TEST_DOCS, true);
    s_fill (db, "b" IDMIGRATE_SUFFIX, 0, S_TEST_DOCS / 2, false);
    s_fill (db, "c" IDMIGRATE_SUFFIX, 0, 300, false);
    s_fill (db, "d", 0, 300, false);
    assert (idmigrate_run (db, wc, names, 6, s_count_said, NULL, NULL, error, sizeof error) == 0);
    if (verbose)
        printf ("  migrated, %d progress texts\n", s_said);
    assert (s_said > 0);
    s_check (db, "a", S_TEST_DOCS);
    assert (s_index_named (db, "a", "ts_ns_1"));
    s_check (db, "b", S_TEST_DOCS);
    s_check (db, "c", 300);
    s_check (db, "d", 300);
    for (const char *t = "abcde"; *t; t++) {
        char temp[32];
        snprintf (temp, sizeof temp, "%c%s", *t, IDMIGRATE_SUFFIX);
        assert (s_exists (db, temp, error, sizeof error) == 0);
    }
    assert (s_exists (db, "e", error, sizeof error) == 0);
    //  Marked: the next run reads the marker only
    assert (idmigrate_run (db, wc, names, 6, NULL, NULL, NULL, error, sizeof error) == 1);
    //  Asked to stop: it stops between batches, and resumes
    s_fill (db, "f", 0, S_TEST_DOCS, true);
    mongoc_collection_t *meta = mongoc_database_get_collection (db, IDMIGRATE_META);
    assert (mongoc_collection_drop (meta, NULL));
    mongoc_collection_destroy (meta);
    atomic_bool quit;
    atomic_init (&quit, true);
    const char *f[] = {"f"};
    assert (idmigrate_run (db, wc, f, 1, NULL, NULL, &quit, error, sizeof error) == -1);
    assert (strstr (error, "stopped"));
    atomic_store (&quit, false);
    assert (idmigrate_run (db, wc, f, 1, NULL, NULL, &quit, error, sizeof error) == 0);
    s_check (db, "f", S_TEST_DOCS);
    //  Server away: an error to retry, nothing else
    mongoc_client_t *away =
        mongoc_client_new ("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200");
    mongoc_client_set_error_api (away, MONGOC_ERROR_API_VERSION_2);
    mongoc_database_t *away_db = mongoc_client_get_database (away, name);
    assert (idmigrate_run (away_db, wc, f, 1, NULL, NULL, NULL, error, sizeof error) == -1);
    assert (*error);
    mongoc_database_destroy (away_db);
    mongoc_client_destroy (away);

    assert (mongoc_database_drop (db, NULL));
    mongoc_write_concern_destroy (wc);
    mongoc_database_destroy (db);
    mongoc_client_destroy (client);
}
