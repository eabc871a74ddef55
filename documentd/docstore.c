/*  docstore: batches of records into MongoDB (rules in docstore.h).

    Why a client pool when one thread writes: /health runs on the HTTP
    thread and must not touch the writer's client (mongoc clients are not
    thread-safe); with a pool it borrows its own client and reads the
    topology that the pool's monitor threads keep, without any I/O.

    Why count the answers of a bulk write: an unordered bulk that fails part
    way (the connection drops between two of the commands it is split into)
    reports the write errors it saw and a transport error. The inserts of a
    batch are stored only when every one has an answer: inserted, or a
    write error we can place (duplicate _id, or a refusal of that one
    document). Anything short of that is retried whole; inserts of what was
    already written then count as duplicates.

    Why every batch is inserted first, and only what was already there is
    read. A bulk insert is checked against the unique _id index on every
    MongoDB-wire server. A query by _id is not: FerretDB 1.24 on SQLite
    uses its _id index for a query only when the filter is `{_id: <string
    or ObjectId>}`; our _id is BinData, so any find, update or replace by
    _id ($in included) scans the collection, up to the first match. Asking
    first which ids exist would put a scan in front of every batch; an
    insert costs no scan, and a redelivered batch, all duplicates, costs
    rolled-back inserts. On MongoDB both are index lookups.

    Why mutable state is read, compared here, and replaced only when newer,
    rather than upserted or replaced with a filter on the event time: an
    upsert filtered on ts_ns answers "older" with a duplicate-key error that
    FerretDB 1.24 places at the wrong index of a multi-statement update; a
    replace filtered on ts_ns that matches nothing (an older or the same
    observation, which is what a redelivery is) scans the whole collection
    on FerretDB, one scan per record: 5 s each at 29,000 builds. So the
    records whose insert met an existing _id are read back in one $in query
    (one scan per batch and collection on FerretDB, index lookups on
    MongoDB), and only those newer than what is stored, or as new but
    different, are replaced. The replace keeps `ts_ns <= the record's` in
    its filter: it costs nothing more (it matches), and should another
    writer have stored a newer state since the read, it is not overwritten.

    Why an immutable record whose _id existed is read back too: other
    content under a stored id is a conflict (a forgery or a collector bug)
    that the writer loop must file, not a duplicate to count. Its stored
    body is compared with the record's, in the same one $in query a batch
    and collection as mutable state; a batch without such duplicates reads
    nothing. Custom kinds are keyed on their whole body: their _id says it.

    Why the timeouts are sized and a timed-out operation is waited for: a
    server keeps running a command whose client gave up (FerretDB does not
    even notice the closed connection until the command ends). Retrying at
    once adds a second scan to the first, and so on. The socket timeout
    grows with the batch size, the read gives the server a maxTimeMS below
    it (the server then stops by itself), replaces go in small commands, and
    after a socket timeout no new operation is sent for as long again.
    The driver reconnects by itself: a timed-out connection is closed.

    Why the indexes are made by a thread of their own: creating them on a
    slow server takes a minute, and documentd must answer /health and take
    deliveries meanwhile; queries need them, writes do not.                 */
#include "documentd/docstore.h"
#include "common/buf.h"
#include "documentd/docmap.h"
#include "documentd/idmigrate.h"
#include "common/log.h"
#include "testsupport/selftest.h"
#include "common/util.h"
#include "client/writer.h"

#include <assert.h>
#include <ctype.h>
#include <czmq.h>
#include <inttypes.h>
#include <mongoc/mongoc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

//  MongoDB's document limit, the same on every version from 5 to 8
#define S_MAX_DOCUMENT (16 * 1024 * 1024)
//  A rejected record keeps its bytes up to this size (leaves room for the rest)
#define S_MAX_REJECT_RECORD (15 * 1024 * 1024)
#define S_REJECTED          "rejected_records"
#define S_ERROR_MAX         1024
//  Replaces per command: on FerretDB each one scans until its document, so
//  a command stays short and a timeout abandons little work
#define S_REPLACE_CHUNK 16
//  Up to this many stored documents of a batch and collection are read
//  back one `{_id}` find each, more in one $in query. On FerretDB 1.24
//  (SQLite) the find is a scan inside SQLite and the $in one in FerretDB
//  itself, decoding every document: at 100,000 builds 1.1 s against 16 s
//  for 10 ids (busy machine). On MongoDB both are index lookups.
#define S_FIND_EACH 8

typedef struct {
    char *name;
    mongoc_collection_t *coll;
    bool read_slowly; //  a read of it ran past its time limit: small replies since
} s_coll_t;

typedef struct {
    size_t index; //  record in the batch
    int32_t code;
    char *error;
    const char *collection;
} s_reject_t;

struct _docstore_t {
    const char *refused; //  the hint of the last failure when it was for good, else NULL
    mongoc_uri_t *uri;
    mongoc_client_pool_t *pool;
    mongoc_client_t *client; //  the writer thread's
    mongoc_database_t *db;
    char *database, *display, *password;
    mongoc_write_concern_t *wc;
    bson_t bulk_opts, insert_opts, replace_opts, upsert_opts;
    bool indexes_ready;
    atomic_bool ids_ready;     //  the database holds string _ids only (idmigrate.h): writes may go
    atomic_bool migrating;     //  a migration is copying: writes wait for it
    atomic_bool guard_replace; //  replaces keep ts_ns in their filter (not on FerretDB: s_queue)
    atomic_bool stopping;      //  destroy: the migration stops between two batches
    bool ids_failed;           //  the last migration attempt failed with the server up
    int32_t socket_timeout_ms; //  the pool's, sized to the batch unless the URI sets it
    int64_t hold_until_ms;     //  after a timeout: no operation before this
    atomic_int_fast64_t hold_until; //  the same, for /health

    //  Index thread
    pthread_t index_thread;
    bool index_started;
    pthread_mutex_t index_lock;
    pthread_cond_t index_wake;
    bool index_quit;
    char index_state[S_ERROR_MAX]; //  "pending", "ready", or the last error
    char ids_state[S_ERROR_MAX];   //  "checking", "hex", "migrating (...)", or the last error

    s_coll_t *colls;
    size_t ncolls, colls_cap;

    //  Per batch
    size_t *slot, *ops, *moved; //  collection of each record, bulk op -> record, _id existed
    size_t *newer;              //  moved records to replace (newer than stored)
    bson_t **stored;            //  per moved record: the document read back, or NULL
    size_t capacity, nmoved;
    s_reject_t *rejects;
    size_t nrejects, rejects_cap;
    bson_t doc;
    uint64_t inserted, replaced, duplicates, stale;
    uint8_t *conflicts; //  the writer's flags for the batch in hand, or NULL

    atomic_bool up;
    omni_metric_t *m_inserted, *m_replaced, *m_duplicates, *m_stale, *m_rejected, *m_up,
        *m_timeouts, *m_read, *m_read_replies;
};

//  ---------------------------------------------------------------------------
//  URI display: never the password, never a secret option

static bool
s_secret_option (const char *key, size_t len)
{
    char lower[64];
    if (len >= sizeof lower)
        return true;
    for (size_t i = 0; i < len; i++)
        lower[i] = (char) tolower ((unsigned char) key[i]);
    lower[len] = 0;
    return strstr (lower, "password") || strstr (lower, "secret") || strstr (lower, "token") ||
           strcmp (lower, "authmechanismproperties") == 0;
}

char *
docstore_mask_uri (const char *uri)
{
    size_t len = strlen (uri);
    //  Masking only shortens secrets to "***": twice the length is plenty
    char *out = malloc (2 * len + 16);
    assert (out);
    size_t o = 0;
    const char *scheme = strstr (uri, "://");
    const char *p = uri;
    if (scheme) {
        const char *auth = scheme + 3;
        size_t auth_len = strcspn (auth, "/?");
        const char *at = NULL;
        for (const char *c = auth; c < auth + auth_len; c++)
            if (*c == '@')
                at = c;
        memcpy (out, uri, (size_t) (auth - uri));
        o = (size_t) (auth - uri);
        p = auth;
        if (at) {
            const char *colon = memchr (auth, ':', (size_t) (at - auth));
            if (colon) {
                memcpy (out + o, auth, (size_t) (colon - auth));
                o += (size_t) (colon - auth);
                memcpy (out + o, ":***", 4);
                o += 4;
                p = at;
            }
        }
    }
    const char *query = strchr (p, '?');
    size_t head = query ? (size_t) (query - p) + 1 : strlen (p);
    memcpy (out + o, p, head);
    o += head;
    p += head;
    while (query && *p) {
        size_t item = strcspn (p, "&;");
        const char *eq = memchr (p, '=', item);
        if (eq && s_secret_option (p, (size_t) (eq - p))) {
            memcpy (out + o, p, (size_t) (eq - p) + 1);
            o += (size_t) (eq - p) + 1;
            memcpy (out + o, "***", 3);
            o += 3;
        } else {
            memcpy (out + o, p, item);
            o += item;
        }
        p += item;
        if (*p)
            out[o++] = *p++;
    }
    out[o] = 0;
    return out;
}

//  Error texts come from the driver and the server: should one ever quote
//  the password, it does not reach a log; quotes and line breaks, which the
//  key=value log lines cannot hold unescaped, become plain characters.
static void
s_scrub (docstore_t *self, char *text)
{
    size_t plen = self->password ? strlen (self->password) : 0;
    if (plen >= 4)
        for (char *hit = strstr (text, self->password); hit; hit = strstr (hit, self->password)) {
            memcpy (hit, "***", 3);
            memmove (hit + 3, hit + plen, strlen (hit + plen) + 1);
        }
    for (char *c = text; *c; c++)
        if (*c == '"')
            *c = '\'';
        else if (*c == '\\')
            *c = '/';
        else if (*c == '\n' || *c == '\r' || *c == '\t')
            *c = ' ';
}

//  ---------------------------------------------------------------------------
//  Construction

static int
s_write_concern (docstore_t *self, const char *text, int64_t timeout_ms, char *error,
                 size_t error_size)
{
    self->wc = mongoc_write_concern_new ();
    if (timeout_ms < 0 || timeout_ms > INT32_MAX) {
        snprintf (error, error_size, "write_timeout: out of range");
        return -1;
    }
    if (!text || !*text || strcmp (text, "majority") == 0)
        mongoc_write_concern_set_wmajority (self->wc, (int32_t) timeout_ms);
    else {
        char *end;
        long w = strtol (text, &end, 10);
        if (*end == 0) {
            //  w:0 is fire and forget: an ack to ingestd would then promise
            //  nothing, so it is refused.
            if (w < 1 || w > 1000) {
                snprintf (error, error_size,
                          "write_concern: %s: must be majority, a number of "
                          "nodes from 1, or a tag set name",
                          text);
                return -1;
            }
            mongoc_write_concern_set_w (self->wc, (int32_t) w);
        } else
            mongoc_write_concern_set_wtag (self->wc, text);
        if (timeout_ms)
            mongoc_write_concern_set_wtimeout_int64 (self->wc, timeout_ms);
    }
    return 0;
}

//  The driver's own messages, as events of our log (its default handler
//  prints every level, debug included, in its own format).
static void
s_mongoc_log (mongoc_log_level_t level, const char *domain, const char *message, void *arg)
{
    (void) arg;
    omni_log_level_t ours = level <= MONGOC_LOG_LEVEL_ERROR     ? LOGL_ERROR
                            : level == MONGOC_LOG_LEVEL_WARNING ? LOGL_WARN
                            : level <= MONGOC_LOG_LEVEL_INFO    ? LOGL_INFO
                            : level == MONGOC_LOG_LEVEL_DEBUG   ? LOGL_DEBUG
                                                                : -1;
    if ((int) ours < 0 || !omni_log_enabled (ours))
        return;
    char text[512];
    snprintf (text, sizeof text, "%s", message);
    for (char *c = text; *c; c++)
        if (*c == '"' || *c == '\\' || *c == '\n')
            *c = '\'';
    omni_log_event (ours, "mongoc.log", "domain=%s message=\"%s\"", domain, text);
}

static void
s_default_option (mongoc_uri_t *uri, const char *key, int32_t value)
{
    if (!mongoc_uri_has_option (uri, key))
        mongoc_uri_set_option_as_int32 (uri, key, value);
}

docstore_t *
docstore_new (const docstore_config_t *config, omni_metrics_t *metrics, char *error,
              size_t error_size)
{
    docstore_t *self = calloc (1, sizeof *self);
    assert (self);
    mongoc_log_set_handler (s_mongoc_log, NULL);
    bson_init (&self->bulk_opts);
    bson_init (&self->insert_opts);
    bson_init (&self->replace_opts);
    bson_init (&self->upsert_opts);
    bson_init (&self->doc);
    pthread_mutex_init (&self->index_lock, NULL);
    pthread_cond_init (&self->index_wake, NULL);
    snprintf (self->index_state, sizeof self->index_state, "pending");
    snprintf (self->ids_state, sizeof self->ids_state, "checking");
    atomic_init (&self->hold_until, 0);
    atomic_init (&self->ids_ready, false);
    atomic_init (&self->migrating, false);
    atomic_init (&self->stopping, false);
    atomic_init (&self->guard_replace, true);
    const char *uri = config->uri && *config->uri ? config->uri : "mongodb://127.0.0.1:27017";
    self->display = docstore_mask_uri (uri);
    self->database =
        strdup (config->database && *config->database ? config->database : "omniaudit");
    if (strpbrk (self->database, "/\\. \"$") || strlen (self->database) > 63) {
        snprintf (error, error_size, "database: \"%s\" is not a valid database name",
                  self->database);
        docstore_destroy (&self);
        return NULL;
    }
    bson_error_t berr;
    self->uri = mongoc_uri_new_with_error (uri, &berr);
    if (!self->uri) {
        snprintf (error, error_size, "uri: %s: %s", self->display, berr.message);
        docstore_destroy (&self);
        return NULL;
    }
    if (mongoc_uri_get_password (self->uri))
        self->password = strdup (mongoc_uri_get_password (self->uri));
    s_default_option (self->uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 5000);
    s_default_option (self->uri, MONGOC_URI_CONNECTTIMEOUTMS, 5000);
    //  A bulk of batch_size documents, or a read of as many, must fit in
    //  it with room to spare on a slow server; a hung one is given up on
    //  within it rather than a fixed minute.
    size_t batch = config->batch_size ? config->batch_size : 1000;
    int64_t sized = 10000 + 20 * (int64_t) batch;
    s_default_option (self->uri, MONGOC_URI_SOCKETTIMEOUTMS,
                      (int32_t) (sized > 600000 ? 600000 : sized));
    self->socket_timeout_ms =
        mongoc_uri_get_option_as_int32 (self->uri, MONGOC_URI_SOCKETTIMEOUTMS, 0);
    //  The monitor notices a server that went away (or came back) within
    //  this, which is what /health reports.
    s_default_option (self->uri, MONGOC_URI_HEARTBEATFREQUENCYMS, 2000);
    if (!mongoc_uri_get_appname (self->uri))
        mongoc_uri_set_appname (self->uri, "omniaudit-documentd");
    if (s_write_concern (self, config->write_concern, config->write_timeout_ms, error,
                         error_size)) {
        docstore_destroy (&self);
        return NULL;
    }
    self->pool = mongoc_client_pool_new_with_error (self->uri, &berr);
    if (!self->pool) {
        snprintf (error, error_size, "uri: %s: %s", self->display, berr.message);
        s_scrub (self, error);
        docstore_destroy (&self);
        return NULL;
    }
    mongoc_client_pool_set_error_api (self->pool, MONGOC_ERROR_API_VERSION_2);
    self->client = mongoc_client_pool_pop (self->pool);
    self->db = mongoc_client_get_database (self->client, self->database);

    BSON_APPEND_BOOL (&self->bulk_opts, "ordered", false);
    mongoc_write_concern_append (self->wc, &self->bulk_opts);
    //  docmap already made every key acceptable; validation would only cost
    BSON_APPEND_BOOL (&self->insert_opts, "validate", false);
    BSON_APPEND_BOOL (&self->replace_opts, "validate", false);
    BSON_APPEND_BOOL (&self->upsert_opts, "validate", false);
    BSON_APPEND_BOOL (&self->upsert_opts, "upsert", true);

    if (metrics) {
        self->m_inserted = omni_metrics_counter (metrics, "documents_inserted_total",
                                                 "documents inserted (new records)", NULL);
        self->m_replaced = omni_metrics_counter (metrics, "documents_replaced_total",
                                                 "mutable-state documents replaced by a record not "
                                                 "older",
                                                 NULL);
        self->m_duplicates = omni_metrics_counter (metrics, "documents_duplicate_total",
                                                   "records already stored (duplicate _id)", NULL);
        self->m_stale =
            omni_metrics_counter (metrics, "documents_stale_total",
                                  "mutable-state records older than the stored state", NULL);
        self->m_rejected =
            omni_metrics_counter (metrics, "records_rejected_total",
                                  "records refused for their content, kept in " S_REJECTED, NULL);
        self->m_up = omni_metrics_gauge (
            metrics, "mongodb_up", "1 while the last MongoDB operation reached the server", NULL);
        self->m_timeouts = omni_metrics_counter (
            metrics, "mongodb_timeouts_total",
            "operations given up after the socket timeout (then waited for)", NULL);
        self->m_read = omni_metrics_counter (metrics, "documents_read_total",
                                             "stored mutable-state documents read back to compare "
                                             "event times",
                                             NULL);
        self->m_read_replies = omni_metrics_counter (
            metrics, "documents_read_replies_total",
            "replies of the server read to get stored documents back (a round trip each)", NULL);
    }
    atomic_store (&self->up, false);
    return self;
}

void
docstore_destroy (docstore_t **self_p)
{
    docstore_t *self = *self_p;
    if (!self)
        return;
    if (self->index_started) {
        atomic_store (&self->stopping, true);
        pthread_mutex_lock (&self->index_lock);
        self->index_quit = true;
        pthread_cond_signal (&self->index_wake);
        pthread_mutex_unlock (&self->index_lock);
        pthread_join (self->index_thread, NULL);
    }
    pthread_mutex_destroy (&self->index_lock);
    pthread_cond_destroy (&self->index_wake);
    for (size_t i = 0; i < self->ncolls; i++) {
        mongoc_collection_destroy (self->colls[i].coll);
        free (self->colls[i].name);
    }
    free (self->colls);
    if (self->db)
        mongoc_database_destroy (self->db);
    if (self->client)
        mongoc_client_pool_push (self->pool, self->client);
    if (self->pool)
        mongoc_client_pool_destroy (self->pool);
    if (self->uri)
        mongoc_uri_destroy (self->uri);
    if (self->wc)
        mongoc_write_concern_destroy (self->wc);
    for (size_t i = 0; i < self->nrejects; i++)
        free (self->rejects[i].error);
    free (self->rejects);
    free (self->slot);
    free (self->ops);
    free (self->moved);
    free (self->newer);
    free (self->stored);
    bson_destroy (&self->doc);
    bson_destroy (&self->bulk_opts);
    bson_destroy (&self->insert_opts);
    bson_destroy (&self->replace_opts);
    bson_destroy (&self->upsert_opts);
    free (self->database);
    free (self->display);
    free (self->password);
    free (self);
    *self_p = NULL;
}

const char *
docstore_display (docstore_t *self)
{
    return self->display;
}

static void
s_set_up (docstore_t *self, bool up)
{
    atomic_store (&self->up, up);
    if (self->m_up)
        omni_metric_set (self->m_up, up ? 1 : 0);
}

//  A failure that will not pass by itself (the credentials, the rights), as
//  the hint to put after it; NULL for any other.
static const char *
s_refusal_hint (const bson_error_t *error)
{
    bool client = error->domain == MONGOC_ERROR_CLIENT;
    bool server = error->domain == MONGOC_ERROR_SERVER || error->domain == MONGOC_ERROR_QUERY ||
                  error->domain == MONGOC_ERROR_WRITE_CONCERN;
    if ((client && error->code == MONGOC_ERROR_CLIENT_AUTHENTICATE) ||
        (server && error->code == 18)) //  AuthenticationFailed
        return "check the user, the password and authSource in the uri";
    if (server && error->code == 13) //  Unauthorized
        return "the user may not do this here: grant it readWrite on the database";
    return NULL;
}

//  Whether an error means the server did not get or did not finish the
//  request (retry), rather than refusing it.
static bool
s_transient (const bson_error_t *error)
{
    if (error->domain != MONGOC_ERROR_SERVER)
        return true;
    switch (error->code) {
    case 6:     //  HostUnreachable
    case 7:     //  HostNotFound
    case 89:    //  NetworkTimeout
    case 91:    //  ShutdownInProgress
    case 189:   //  PrimarySteppedDown
    case 262:   //  ExceededTimeLimit
    case 9001:  //  SocketException
    case 10107: //  NotWritablePrimary
    case 11600: //  InterruptedAtShutdown
    case 11602: //  InterruptedDueToReplStateChange
    case 13435: //  NotPrimaryNoSecondaryOk
    case 13436: //  NotPrimaryOrSecondary
        return true;
    default: return false;
    }
}

//  ---------------------------------------------------------------------------
//  Indexes

static const char *
s_collection_at (size_t index)
{
    const omni_kind_spec_t *spec = omni_kinds_at (index);
    if (spec)
        return spec->collection;
    return index == 0 || omni_kinds_at (index - 1) ? omni_kinds_custom ()->collection : NULL;
}

//  One createIndexes command per index: FerretDB 1.24 drops the connection
//  when one command names several indexes that all exist already (on a
//  restart), and one index per command works on every server.
//  0 done, -1 server away (error set); a refusal is logged and not retried,
//  as a missing index slows queries but loses nothing.
static int
s_ensure_indexes (docstore_t *self, mongoc_database_t *db, char *error, size_t error_size)
{
    static const char *fields[] = {"src", "run", "ts"};
    for (size_t i = 0; s_collection_at (i); i++) {
        const char *name = s_collection_at (i);
        bool seen = false;
        for (size_t j = 0; j < i; j++)
            seen |= strcmp (s_collection_at (j), name) == 0;
        if (seen)
            continue;
        for (int f = 0; f < 3; f++) {
            char idx_name[16];
            snprintf (idx_name, sizeof idx_name, "%s_1", fields[f]);
            bson_t cmd = BSON_INITIALIZER, indexes, index, key;
            BSON_APPEND_UTF8 (&cmd, "createIndexes", name);
            BSON_APPEND_ARRAY_BEGIN (&cmd, "indexes", &indexes);
            BSON_APPEND_DOCUMENT_BEGIN (&indexes, "0", &index);
            BSON_APPEND_DOCUMENT_BEGIN (&index, "key", &key);
            BSON_APPEND_INT32 (&key, fields[f], 1);
            bson_append_document_end (&index, &key);
            BSON_APPEND_UTF8 (&index, "name", idx_name);
            bson_append_document_end (&indexes, &index);
            bson_append_array_end (&cmd, &indexes);
            bson_t opts = BSON_INITIALIZER, reply;
            mongoc_write_concern_append (self->wc, &opts);
            bson_error_t berr;
            bool ok = mongoc_database_write_command_with_opts (db, &cmd, &opts, &reply, &berr);
            bson_destroy (&cmd);
            bson_destroy (&opts);
            bson_destroy (&reply);
            if (!ok) {
                snprintf (error, error_size, "createIndexes %s.%s: %s", name, idx_name,
                          berr.message);
                s_scrub (self, error);
                if (s_transient (&berr)) {
                    s_set_up (self, berr.domain == MONGOC_ERROR_SERVER);
                    return -1;
                }
                log_warn ("indexes.refused", "collection=%s index=%s code=%u error=\"%s\"", name,
                          idx_name, berr.code, error);
            }
        }
    }
    s_set_up (self, true);
    log_info ("indexes.ready", "database=%s fields=src,run,ts", self->database);
    return 0;
}

//  ---------------------------------------------------------------------------
//  String _ids (idmigrate.h): writes wait until the database holds no other

static void
s_ids_said (void *arg, const char *text)
{
    docstore_t *self = arg;
    pthread_mutex_lock (&self->index_lock);
    snprintf (self->ids_state, sizeof self->ids_state, "migrating to string _ids (%s; writes wait)",
              text);
    self->ids_failed = false;
    pthread_mutex_unlock (&self->index_lock);
    atomic_store (&self->migrating, true);
}

//  FerretDB or not, which decides the replace filter (s_queue). 0, or -1
//  (error set, and *refused to the hint of a refusal for good) when the
//  server did not answer.
static int
s_server_kind (docstore_t *self, mongoc_database_t *db, const char **refused, char *error,
               size_t error_size)
{
    bson_t cmd = BSON_INITIALIZER, reply;
    BSON_APPEND_INT32 (&cmd, "buildInfo", 1);
    bson_error_t berr;
    bool ok = mongoc_database_command_simple (db, &cmd, NULL, &reply, &berr);
    bson_destroy (&cmd);
    if (ok)
        atomic_store (&self->guard_replace, !bson_has_field (&reply, "ferretdbVersion"));
    bson_destroy (&reply);
    if (ok)
        return 0;
    snprintf (error, error_size, "buildInfo: %s", berr.message);
    if ((*refused = s_refusal_hint (&berr))) {
        size_t len = strlen (error);
        snprintf (error + len, error_size - len, " (permanent: %s)", *refused);
    }
    s_scrub (self, error);
    s_set_up (self, berr.domain == MONGOC_ERROR_SERVER);
    return -1;
}

//  0 once the database holds string _ids only (migrated if need be) and
//  the server's kind is known; -1 (error set) to try again later.
static int
s_ensure_ids (docstore_t *self, mongoc_database_t *db, char *error, size_t error_size)
{
    if (atomic_load (&self->ids_ready))
        return 0;
    const char *refused;
    if (s_server_kind (self, db, &refused, error, error_size)) {
        pthread_mutex_lock (&self->index_lock);
        snprintf (self->ids_state, sizeof self->ids_state, "unknown (%s)", error);
        pthread_mutex_unlock (&self->index_lock);
        return -1;
    }
    const char *names[64];
    size_t n = 0;
    for (size_t i = 0; s_collection_at (i) && n < 63; i++) {
        bool seen = false;
        for (size_t j = 0; j < n; j++)
            seen |= strcmp (names[j], s_collection_at (i)) == 0;
        if (!seen)
            names[n++] = s_collection_at (i);
    }
    names[n++] = S_REJECTED;
    int64_t start = omni_util_mono_ms ();
    int rc = idmigrate_run (db, self->wc, names, n, s_ids_said, self, &self->stopping, error,
                            error_size);
    atomic_store (&self->migrating, false);
    pthread_mutex_lock (&self->index_lock);
    if (rc >= 0)
        snprintf (self->ids_state, sizeof self->ids_state, "hex");
    else {
        s_scrub (self, error);
        snprintf (self->ids_state, sizeof self->ids_state,
                  "string _id migration pending, writes wait (%s)", error);
    }
    self->ids_failed = rc < 0;
    pthread_mutex_unlock (&self->index_lock);
    if (rc < 0)
        return -1;
    if (rc == 0)
        log_info ("ids.ready", "database=%s migrated_ms=%" PRId64, self->database,
                  omni_util_mono_ms () - start);
    atomic_store (&self->ids_ready, true);
    return 0;
}

int
docstore_connect (docstore_t *self)
{
    char error[S_ERROR_MAX];
    if (self->indexes_ready)
        return 0;
    if (s_ensure_ids (self, self->db, error, sizeof error) == 0 &&
        s_ensure_indexes (self, self->db, error, sizeof error) == 0) {
        self->indexes_ready = true;
        pthread_mutex_lock (&self->index_lock);
        snprintf (self->index_state, sizeof self->index_state, "ready");
        pthread_mutex_unlock (&self->index_lock);
        return 0;
    }
    log_warn ("mongodb.unreachable", "uri=\"%s\" error=\"%s\"", self->display, error);
    return 1;
}

//  Tries until the _ids are strings and the indexes exist (or the store is
//  destroyed), with its own client: the writer's is not thread-safe. The
//  migration comes first: it moves collections, and their indexes with them.
static void *
s_index_thread (void *arg)
{
    docstore_t *self = arg;
    mongoc_client_t *client = mongoc_client_pool_pop (self->pool);
    mongoc_database_t *db = mongoc_client_get_database (client, self->database);
    int64_t wait_ms = 1000;
    bool warned = false;
    pthread_mutex_lock (&self->index_lock);
    while (!self->index_quit) {
        pthread_mutex_unlock (&self->index_lock);
        char error[S_ERROR_MAX / 2];
        bool ids = s_ensure_ids (self, db, error, sizeof error) == 0;
        int rc = ids ? s_ensure_indexes (self, db, error, sizeof error) : -1;
        pthread_mutex_lock (&self->index_lock);
        if (rc == 0) {
            snprintf (self->index_state, sizeof self->index_state, "ready");
            break;
        }
        if (ids)
            snprintf (self->index_state, sizeof self->index_state, "pending (%s)", error);
        else
            snprintf (self->index_state, sizeof self->index_state,
                      "pending (after the string _id migration)");
        if (self->index_quit)
            break;
        if (!warned)
            log_warn ("mongodb.unreachable", "uri=\"%s\" indexes=pending error=\"%s\"",
                      self->display, error);
        warned = true;
        struct timespec until;
        clock_gettime (CLOCK_REALTIME, &until);
        until.tv_sec += wait_ms / 1000;
        while (!self->index_quit &&
               pthread_cond_timedwait (&self->index_wake, &self->index_lock, &until) == 0)
            ;
        wait_ms = wait_ms * 2 > 30000 ? 30000 : wait_ms * 2;
    }
    pthread_mutex_unlock (&self->index_lock);
    mongoc_database_destroy (db);
    mongoc_client_pool_push (self->pool, client);
    return NULL;
}

void
docstore_start (docstore_t *self)
{
    if (self->index_started || self->indexes_ready)
        return;
    int rc = pthread_create (&self->index_thread, NULL, s_index_thread, self);
    assert (rc == 0);
    self->index_started = true;
}

bool
docstore_healthy (void *self_, char *text, size_t size)
{
    docstore_t *self = self_;
    bool up = false;
    mongoc_client_t *client = mongoc_client_pool_try_pop (self->pool);
    if (client) {
        size_t n = 0;
        mongoc_server_description_t **sds = mongoc_client_get_server_descriptions (client, &n);
        for (size_t i = 0; i < n && !up; i++) {
            const char *type = mongoc_server_description_type (sds[i]);
            up = strcmp (type, "Standalone") == 0 || strcmp (type, "RSPrimary") == 0 ||
                 strcmp (type, "Mongos") == 0 || strcmp (type, "LoadBalancer") == 0;
        }
        mongoc_server_descriptions_destroy_all (sds, n);
        mongoc_client_pool_push (self->pool, client);
    } else
        up = atomic_load (&self->up); //  every client busy: the last write tells
    char indexes[S_ERROR_MAX], ids[S_ERROR_MAX];
    pthread_mutex_lock (&self->index_lock);
    snprintf (indexes, sizeof indexes, "%s", self->index_state);
    snprintf (ids, sizeof ids, "%s", self->ids_state);
    bool ids_failed = self->ids_failed;
    pthread_mutex_unlock (&self->index_lock);
    int64_t hold = atomic_load (&self->hold_until) - omni_util_mono_ms ();
    if (up && hold > 0) {
        snprintf (text, size,
                  "mongodb slow: an operation timed out after %.1fs, the next waits %.1fs; "
                  "ids %s; indexes %s",
                  self->socket_timeout_ms / 1000.0, hold / 1000.0, ids, indexes);
        return false;
    }
    //  A migration under way is healthy (it says how far it got); one
    //  that failed with the server up needs looking at.
    if (up)
        snprintf (text, size, "mongodb ok; ids %s; indexes %s", ids, indexes);
    else
        snprintf (text, size, "mongodb: no writable server reachable at %s; ids %s; indexes %s",
                  self->display, ids, indexes);
    return up && !ids_failed;
}

//  ---------------------------------------------------------------------------
//  Writing a batch

static mongoc_collection_t *
s_collection (docstore_t *self, const char *name, size_t *slot)
{
    for (size_t i = 0; i < self->ncolls; i++)
        if (strcmp (self->colls[i].name, name) == 0) {
            *slot = i;
            return self->colls[i].coll;
        }
    *slot = self->ncolls;
    s_coll_t *coll = omni_array_push (self->colls, self->ncolls, self->colls_cap);
    coll->name = strdup (name);
    coll->coll = mongoc_database_get_collection (self->db, name);
    coll->read_slowly = false;
    return coll->coll;
}

static const char *
s_collection_of (const omni_record_t *record)
{
    return record->spec ? record->spec->collection : omni_kinds_custom ()->collection;
}

static void
s_reject (docstore_t *self, size_t index, int32_t code, const char *error)
{
    s_reject_t *reject = omni_array_push (self->rejects, self->nrejects, self->rejects_cap);
    reject->index = index;
    reject->code = code;
    reject->error = strndup (error, S_ERROR_MAX);
}

//  Codes with which a server refuses one document for what it holds.
static bool
s_content_code (int32_t code)
{
    switch (code) {
    case 2:     //  BadValue (e.g. a key a MongoDB-wire server does not take)
    case 14:    //  TypeMismatch
    case 52:    //  DollarPrefixedFieldName
    case 55:    //  InvalidDBRef
    case 56:    //  EmptyFieldName
    case 57:    //  DottedFieldName
    case 121:   //  DocumentValidationFailure (a validator set by an operator)
    case 10334: //  BSONObjectTooLarge
    case 17280: //  KeyTooLong
    case 17419: //  document too large after update
        return true;
    default: return false;
    }
}

//  Whether a duplicate-key write error is about _id (the record is stored)
//  rather than another unique index an operator added.
static bool
s_duplicate_on_id (const bson_t *write_error)
{
    bson_iter_t it, key;
    if (bson_iter_init_find (&it, write_error, "keyPattern") && BSON_ITER_HOLDS_DOCUMENT (&it) &&
        bson_iter_recurse (&it, &key) && bson_iter_next (&key))
        return strcmp (bson_iter_key (&key), "_id") == 0 && !bson_iter_next (&key);
    if (bson_iter_init_find (&it, write_error, "errmsg") && BSON_ITER_HOLDS_UTF8 (&it)) {
        const char *index = strstr (bson_iter_utf8 (&it, NULL), " index: ");
        if (index)
            return strncmp (index + 8, "_id_ ", 5) == 0 || strcmp (index + 8, "_id_") == 0;
    }
    return true;
}

static int64_t
s_reply_count (const bson_t *reply, const char *key)
{
    bson_iter_t it;
    return bson_iter_init_find (&it, reply, key) && BSON_ITER_HOLDS_NUMBER (&it)
               ? bson_iter_as_int64 (&it)
               : 0;
}

typedef enum {
    S_INSERTS, //  every operation must be answered (inserted or a write error)
    S_REPLACES //  a replace that matches nothing (a newer state written since the read) is no error
} s_phase_t;

//  Reads the reply of one bulk write. 0 when every operation is accounted
//  for, -1 (error set) when the batch must be retried.
static int
s_account (docstore_t *self, s_phase_t phase, const omni_record_t *records, const bson_t *reply,
           bool ok, const bson_error_t *berr, size_t nops, const char *collection, char *error,
           size_t error_size)
{
    int64_t inserted = s_reply_count (reply, "nInserted");
    int64_t matched = s_reply_count (reply, "nMatched");
    int64_t answered = inserted, write_errors = 0;
    bool failed = false;
    *error = 0;
    bson_iter_t it, list;
    if (bson_iter_init_find (&it, reply, "writeConcernErrors") && BSON_ITER_HOLDS_ARRAY (&it) &&
        bson_iter_recurse (&it, &list) && bson_iter_next (&list)) {
        failed = true;
        snprintf (error, error_size, "%s: write concern not satisfied: %s", collection,
                  berr->message);
    }
    if (bson_iter_init_find (&it, reply, "writeErrors") && BSON_ITER_HOLDS_ARRAY (&it) &&
        bson_iter_recurse (&it, &list))
        while (bson_iter_next (&list)) {
            if (!BSON_ITER_HOLDS_DOCUMENT (&list))
                continue;
            uint32_t len;
            const uint8_t *data;
            bson_iter_document (&list, &len, &data);
            bson_t we;
            if (!bson_init_static (&we, data, len))
                continue;
            int64_t index = s_reply_count (&we, "index");
            int32_t code = (int32_t) s_reply_count (&we, "code");
            bson_iter_t msg;
            const char *errmsg =
                bson_iter_init_find (&msg, &we, "errmsg") && BSON_ITER_HOLDS_UTF8 (&msg)
                    ? bson_iter_utf8 (&msg, NULL)
                    : "";
            if (index < 0 || (size_t) index >= nops) {
                failed = true;
                continue;
            }
            size_t r = self->ops[index];
            answered++;
            write_errors++;
            if (phase == S_INSERTS && code == 11000 && s_duplicate_on_id (&we)) {
                //  Mutable: replaced if not older; immutable: compared. Next.
                if (records[r].spec && (records[r].spec->mutable_state || records[r].spec->key[0]))
                    self->moved[self->nmoved++] = r;
                else
                    self->duplicates++;
            } else if (code == 11000 || s_content_code (code)) {
                char text[S_ERROR_MAX];
                snprintf (text, sizeof text, "%s refused the document: %s",
                          code == 11000 ? "a unique index" : "the server", errmsg);
                s_reject (self, r, code, text);
                self->rejects[self->nrejects - 1].collection = collection;
            } else {
                if (!failed)
                    snprintf (error, error_size, "%s: write error %d: %s", collection, code,
                              errmsg);
                failed = true;
            }
        }
    if (!failed && phase == S_INSERTS && (size_t) answered < nops) {
        failed = true;
        snprintf (error, error_size, "%s: %s", collection,
                  ok ? "the server did not answer for every document" : berr->message);
    }
    //  Replaces: no per-operation count to check, so only write errors
    //  from the server itself (not a transport failure) may stand
    if (!failed && phase == S_REPLACES && !ok &&
        (write_errors == 0 || berr->domain != MONGOC_ERROR_SERVER)) {
        failed = true;
        snprintf (error, error_size, "%s: %s", collection, berr->message);
    }
    if (failed) {
        if (!*error)
            snprintf (error, error_size, "%s: %s", collection, berr->message);
        if (!ok && (self->refused = s_refusal_hint (berr))) {
            size_t len = strlen (error);
            snprintf (error + len, error_size - len, " (permanent: %s)", self->refused);
        }
        return -1;
    }
    if (phase == S_INSERTS)
        self->inserted += (uint64_t) inserted;
    else {
        self->replaced += (uint64_t) matched;
        self->stale += nops - (size_t) write_errors - (size_t) matched;
    }
    return 0;
}

static void
s_pack_str (msgpack_packer *pk, const char *text, size_t len)
{
    msgpack_pack_str_with_body (pk, text, len);
}

//  The record as msgpack again (the envelope fields and body as decoded).
static void
s_pack_record (msgpack_sbuffer *buf, const omni_record_t *record)
{
    msgpack_packer pk;
    msgpack_packer_init (&pk, buf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, record->tags ? 9 : 8);
    s_pack_str (&pk, "v", 1);
    msgpack_pack_uint64 (&pk, record->v);
    s_pack_str (&pk, "id", 2);
    msgpack_pack_bin_with_body (&pk, record->id, RECORD_ID_SIZE);
    s_pack_str (&pk, "kind", 4);
    s_pack_str (&pk, record->kind.ptr, record->kind.len);
    s_pack_str (&pk, "src", 3);
    s_pack_str (&pk, record->src.ptr, record->src.len);
    s_pack_str (&pk, "col", 3);
    s_pack_str (&pk, record->col.ptr, record->col.len);
    s_pack_str (&pk, "run", 3);
    s_pack_str (&pk, record->run.ptr, record->run.len);
    s_pack_str (&pk, "ts", 2);
    msgpack_pack_int64 (&pk, record->ts);
    s_pack_str (&pk, "body", 4);
    msgpack_pack_object (&pk, *record->body);
    if (record->tags) {
        s_pack_str (&pk, "tags", 4);
        msgpack_pack_object (&pk, *record->tags);
    }
}

//  Keeps refused records in rejected_records (replaced by id: a retried
//  batch writes the same document again).
static int
s_store_rejects (docstore_t *self, const omni_record_t *records, char *error, size_t error_size)
{
    size_t slot;
    mongoc_collection_t *coll = s_collection (self, S_REJECTED, &slot);
    mongoc_bulk_operation_t *bulk =
        mongoc_collection_create_bulk_operation_with_opts (coll, &self->bulk_opts);
    for (size_t i = 0; i < self->nrejects; i++) {
        const s_reject_t *reject = &self->rejects[i];
        const omni_record_t *record = &records[reject->index];
        bson_t doc = BSON_INITIALIZER, selector = BSON_INITIALIZER;
        docmap_append_id (&selector, "_id", record->id);
        docmap_append_id (&doc, "_id", record->id);
        bson_append_utf8 (&doc, "kind", 4, record->kind.ptr, (int) record->kind.len);
        bson_append_utf8 (&doc, "src", 3, record->src.ptr, (int) record->src.len);
        bson_append_utf8 (&doc, "col", 3, record->col.ptr, (int) record->col.len);
        bson_append_utf8 (&doc, "run", 3, record->run.ptr, (int) record->run.len);
        bson_append_date_time (&doc, "ts", 2, docmap_ns_to_ms (record->ts));
        bson_append_int64 (&doc, "ts_ns", 5, record->ts);
        BSON_APPEND_UTF8 (&doc, "collection", reject->collection);
        BSON_APPEND_INT32 (&doc, "code", reject->code);
        BSON_APPEND_UTF8 (&doc, "error", reject->error);
        msgpack_sbuffer buf;
        msgpack_sbuffer_init (&buf);
        s_pack_record (&buf, record);
        if (buf.size <= S_MAX_REJECT_RECORD)
            bson_append_binary (&doc, "record", 6, BSON_SUBTYPE_BINARY, (uint8_t *) buf.data,
                                (uint32_t) buf.size);
        else
            BSON_APPEND_INT64 (&doc, "record_size", (int64_t) buf.size);
        msgpack_sbuffer_destroy (&buf);
        bson_error_t berr;
        bool queued = mongoc_bulk_operation_replace_one_with_opts (bulk, &selector, &doc,
                                                                   &self->upsert_opts, &berr);
        bson_destroy (&doc);
        bson_destroy (&selector);
        if (!queued) {
            snprintf (error, error_size, "%s: %s", S_REJECTED, berr.message);
            mongoc_bulk_operation_destroy (bulk);
            return -1;
        }
    }
    bson_t reply;
    bson_error_t berr;
    bool ok = mongoc_bulk_operation_execute (bulk, &reply, &berr) != 0;
    mongoc_bulk_operation_destroy (bulk);
    bson_destroy (&reply);
    if (!ok) {
        snprintf (error, error_size, "%s: %s", S_REJECTED, berr.message);
        return -1;
    }
    return 0;
}

static void
s_reset_batch (docstore_t *self, size_t count)
{
    if (omni_array_grow_cap (&self->capacity, count)) {
        omni_array_resize (self->slot, self->capacity);
        omni_array_resize (self->ops, self->capacity);
        omni_array_resize (self->moved, self->capacity);
        omni_array_resize (self->newer, self->capacity);
        omni_array_resize (self->stored, self->capacity);
    }
    for (size_t i = 0; i < self->nrejects; i++)
        free (self->rejects[i].error);
    self->nrejects = 0;
    self->nmoved = 0;
    self->inserted = self->replaced = self->duplicates = self->stale = 0;
}

//  After an operation given up on at the socket timeout, the server may
//  still be running it: nothing more is sent for as long again.
static void
s_timed_out (docstore_t *self, const bson_error_t *berr, int64_t start)
{
    int64_t now = omni_util_mono_ms ();
    if (berr->domain == MONGOC_ERROR_SERVER || berr->domain == MONGOC_ERROR_WRITE_CONCERN ||
        now - start < self->socket_timeout_ms - 250)
        return;
    self->hold_until_ms = now + self->socket_timeout_ms;
    atomic_store (&self->hold_until, self->hold_until_ms);
    if (self->m_timeouts)
        omni_metric_add (self->m_timeouts, 1);
    log_warn ("mongodb.timeout",
              "elapsed_ms=%" PRId64 " hold_ms=%d error=\"%s\" (the server may still be working on "
              "it; nothing is sent until then)",
              now - start, self->socket_timeout_ms, berr->message);
}

//  Queues the record's operation on `bulk`: an insert, or for a record
//  whose _id exists, a replace of a state not newer than its own. False
//  when the record is rejected before it reaches the server.
static bool
s_queue (docstore_t *self, s_phase_t phase, mongoc_bulk_operation_t *bulk,
         const omni_record_t *records, size_t r, const char *collection)
{
    const omni_record_t *record = &records[r];
    bson_reinit (&self->doc);
    char text[S_ERROR_MAX];
    if (!docmap_record (&self->doc, record) || self->doc.len > S_MAX_DOCUMENT) {
        snprintf (text, sizeof text, "the document is over the %d-byte limit of MongoDB",
                  S_MAX_DOCUMENT);
        s_reject (self, r, 10334, text);
        self->rejects[self->nrejects - 1].collection = collection;
        return false;
    }
    bson_error_t berr;
    bool ok;
    if (phase == S_REPLACES) {
        //  `ts_ns <= the record's` keeps a newer state another writer may
        //  have stored since our read. Not on FerretDB: it serves in SQL
        //  only a filter that is `{_id: <string>}` alone, any other key
        //  makes it decode the whole collection (12 s against 0.8 s per
        //  replace at 30,000 builds); there a replace is by _id only.
        bson_t selector = BSON_INITIALIZER, cond;
        docmap_append_id (&selector, "_id", record->id);
        if (atomic_load (&self->guard_replace)) {
            BSON_APPEND_DOCUMENT_BEGIN (&selector, "ts_ns", &cond);
            BSON_APPEND_INT64 (&cond, "$lte", record->ts);
            bson_append_document_end (&selector, &cond);
        }
        ok = mongoc_bulk_operation_replace_one_with_opts (bulk, &selector, &self->doc,
                                                          &self->replace_opts, &berr);
        bson_destroy (&selector);
    } else
        ok = mongoc_bulk_operation_insert_with_opts (bulk, &self->doc, &self->insert_opts, &berr);
    if (!ok) {
        snprintf (text, sizeof text, "the driver refused the document: %s", berr.message);
        s_reject (self, r, (int32_t) berr.code, text);
        self->rejects[self->nrejects - 1].collection = collection;
    }
    return ok;
}

//  One unordered bulk write into collection `c` of the records listed in
//  `list`; 0 when all are accounted for.
static int
s_bulk (docstore_t *self, s_phase_t phase, size_t c, const omni_record_t *records,
        const size_t *list, size_t count, char *error, size_t error_size)
{
    mongoc_bulk_operation_t *bulk =
        mongoc_collection_create_bulk_operation_with_opts (self->colls[c].coll, &self->bulk_opts);
    size_t nops = 0;
    for (size_t i = 0; i < count; i++)
        if (s_queue (self, phase, bulk, records, list[i], self->colls[c].name))
            self->ops[nops++] = list[i];
    int rc = 0;
    if (nops > 0) {
        bson_t reply;
        bson_error_t berr = {0};
        int64_t start = omni_util_mono_ms ();
        bool ok = mongoc_bulk_operation_execute (bulk, &reply, &berr) != 0;
        rc = s_account (self, phase, records, &reply, ok, &berr, nops, self->colls[c].name, error,
                        error_size);
        bson_destroy (&reply);
        if (rc) {
            //  A server error reply means it is up; no reply means it is away
            s_set_up (self, ok || berr.domain == MONGOC_ERROR_SERVER ||
                                berr.domain == MONGOC_ERROR_WRITE_CONCERN);
            if (!ok)
                s_timed_out (self, &berr, start);
        }
    }
    mongoc_bulk_operation_destroy (bulk);
    return rc;
}

static const omni_record_t *s_sort_records; //  for s_cmp_by_id (the store thread only)

//  By id, then batch order: a record twice in a batch (possible when the
//  store is called directly; the writer dedups) keeps its order
static int
s_cmp_by_id (const void *a, const void *b)
{
    size_t x = *(const size_t *) a, y = *(const size_t *) b;
    int rc = memcmp (s_sort_records[x].id, s_sort_records[y].id, RECORD_ID_SIZE);
    return rc ? rc : x < y ? -1 : x > y;
}

static int
s_cmp_id_key (const void *key, const void *elem)
{
    return memcmp (key, s_sort_records[*(const size_t *) elem].id, RECORD_ID_SIZE);
}

//  Files a document read back under every entry of `list` (sorted, n
//  long) with its id; true when it is the first found for that id.
static bool
s_file_stored (docstore_t *self, const omni_record_t *records, size_t *list, size_t n,
               const bson_t *doc)
{
    bson_iter_t it;
    uint8_t id[RECORD_ID_SIZE];
    uint32_t len;
    if (!bson_iter_init_find (&it, doc, "_id") || !BSON_ITER_HOLDS_UTF8 (&it))
        return false;
    const char *hex = bson_iter_utf8 (&it, &len);
    if (len != 2 * RECORD_ID_SIZE || omni_util_unhex (hex, id, RECORD_ID_SIZE) != 0)
        return false;
    size_t *hit = bsearch (id, list, n, sizeof *list, s_cmp_id_key);
    if (!hit)
        return false;
    while (hit > list && memcmp (records[hit[-1]].id, id, RECORD_ID_SIZE) == 0)
        hit--;
    bool first = !self->stored[hit - list];
    for (; hit < list + n && memcmp (records[*hit].id, id, RECORD_ID_SIZE) == 0; hit++)
        if (!self->stored[hit - list])
            self->stored[hit - list] = bson_copy (doc);
    return first;
}

//  Reads back the stored documents of the `n` records in `list` (their
//  insert met an existing _id): a `{_id}` find each when they are few,
//  else one $in query (S_FIND_EACH); list is sorted by id and
//  self->stored[i] is the document of list[i], or NULL. 0, or -1 (error set).
static int
s_read_stored (docstore_t *self, size_t c, const omni_record_t *records, size_t *list, size_t n,
               char *error, size_t error_size)
{
    s_sort_records = records;
    qsort (list, n, sizeof *list, s_cmp_by_id);
    size_t distinct = 0, found = 0;
    for (size_t i = 0; i < n; i++) {
        self->stored[i] = NULL;
        distinct +=
            i == 0 || memcmp (records[list[i - 1]].id, records[list[i]].id, RECORD_ID_SIZE) != 0;
    }
    //  The server stops the query itself before the socket gives up, so an
    //  answer that takes too long leaves no work behind.
    bson_t opts = BSON_INITIALIZER;
    BSON_APPEND_INT64 (&opts, "maxTimeMS", self->socket_timeout_ms / 2);
    mongoc_read_prefs_t *prefs = mongoc_read_prefs_new (MONGOC_READ_PRIMARY);
    bson_error_t berr;
    bool failed = false;
    int64_t start = omni_util_mono_ms ();
    if (distinct <= S_FIND_EACH) {
        BSON_APPEND_INT64 (&opts, "limit", 1);
        for (size_t i = 0; i < n && !failed; i++) {
            if (i > 0 && memcmp (records[list[i - 1]].id, records[list[i]].id, RECORD_ID_SIZE) == 0)
                continue;
            bson_t filter = BSON_INITIALIZER;
            docmap_append_id (&filter, "_id", records[list[i]].id);
            start = omni_util_mono_ms ();
            mongoc_cursor_t *cursor =
                mongoc_collection_find_with_opts (self->colls[c].coll, &filter, &opts, prefs);
            const bson_t *doc;
            if (self->m_read_replies)
                omni_metric_add (self->m_read_replies, 1);
            if (mongoc_cursor_next (cursor, &doc))
                found += s_file_stored (self, records, list, n, doc);
            failed = mongoc_cursor_error (cursor, &berr);
            mongoc_cursor_destroy (cursor);
            bson_destroy (&filter);
        }
    } else {
        bson_t filter = BSON_INITIALIZER, id, in;
        BSON_APPEND_DOCUMENT_BEGIN (&filter, "_id", &id);
        BSON_APPEND_ARRAY_BEGIN (&id, "$in", &in);
        for (size_t i = 0; i < n; i++) {
            char key[16];
            const char *k;
            bson_uint32_to_string ((uint32_t) i, &k, key, sizeof key);
            docmap_append_id (&in, k, records[list[i]].id);
        }
        bson_append_array_end (&id, &in);
        bson_append_document_end (&filter, &id);
        //  One reply holds every document, unless a read of this collection
        //  once ran past its time limit: then replies start at one document
        //  and double while they come fast (a quarter when one took long),
        //  and none is asked for once every id is found. Where the query
        //  scans (FerretDB), a command then scans from one match to the
        //  next few, never the whole collection: as one command, the read
        //  at 100,000 builds ran past its limit at every retry on a busy
        //  server and the writer stood still. Not always so: 1,000 builds
        //  took 10 replies instead of one, which a busy FerretDB makes cost.
        uint32_t batch = self->colls[c].read_slowly ? 1 : (uint32_t) n;
        BSON_APPEND_INT64 (&opts, "batchSize", batch);
        mongoc_cursor_t *cursor =
            mongoc_collection_find_with_opts (self->colls[c].coll, &filter, &opts, prefs);
        const bson_t *doc;
        uint32_t left = 0; //  documents of the last reply not read yet
        while (found < distinct) {
            int64_t asked = omni_util_mono_ms ();
            if (!mongoc_cursor_next (cursor, &doc))
                break;
            if (left == 0) { //  this document came with a new reply
                int64_t took = omni_util_mono_ms () - asked;
                if (self->m_read_replies)
                    omni_metric_add (self->m_read_replies, 1);
                left = batch;
                if (took < self->socket_timeout_ms / 8)
                    batch = batch * 2 > n ? (uint32_t) n : batch * 2;
                else if (took > self->socket_timeout_ms / 4)
                    batch = batch > 4 ? batch / 4 : 1;
                mongoc_cursor_set_batch_size (cursor, batch);
            }
            left--;
            found += s_file_stored (self, records, list, n, doc);
        }
        failed = mongoc_cursor_error (cursor, &berr);
        mongoc_cursor_destroy (cursor);
        bson_destroy (&filter);
    }
    int rc = 0;
    if (failed) {
        snprintf (error, error_size, "%s: reading %zu stored documents: %s", self->colls[c].name, n,
                  berr.message);
        s_set_up (self, berr.domain == MONGOC_ERROR_SERVER);
        s_timed_out (self, &berr, start);
        if (berr.domain == MONGOC_ERROR_SERVER && berr.code == 50) //  MaxTimeMSExpired
            self->colls[c].read_slowly = true;
        for (size_t i = 0; i < n; i++)
            if (self->stored[i]) {
                bson_destroy (self->stored[i]);
                self->stored[i] = NULL;
            }
        rc = -1;
    }
    mongoc_read_prefs_destroy (prefs);
    bson_destroy (&opts);
    return rc;
}

//  Whether two documents hold the same "body"
static bool
s_same_body (const bson_t *a, const bson_t *b)
{
    bson_iter_t x, y;
    bool has_x = bson_iter_init_find (&x, a, "body"), has_y = bson_iter_init_find (&y, b, "body");
    if (!has_x || !has_y)
        return has_x == has_y;
    const uint8_t *dx, *dy;
    uint32_t lx = 0, ly = 0;
    if (BSON_ITER_HOLDS_DOCUMENT (&x))
        bson_iter_document (&x, &lx, &dx);
    if (BSON_ITER_HOLDS_DOCUMENT (&y))
        bson_iter_document (&y, &ly, &dy);
    return lx && lx == ly && memcmp (dx, dy, lx) == 0;
}

//  The records of `list` whose _id existed: for mutable kinds newer ones
//  (or as new but different) go to self->newer; the same body again is a
//  duplicate; an immutable record with another body is a conflict.
static int
s_resolve_moved (docstore_t *self, size_t c, const omni_record_t *records, size_t *list, size_t n,
                 size_t *nnewer, char *error, size_t error_size)
{
    *nnewer = 0;
    if (s_read_stored (self, c, records, list, n, error, error_size))
        return -1;
    if (self->m_read)
        omni_metric_add (self->m_read, n);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        const omni_record_t *record = &records[list[i]];
        bson_t *stored = self->stored[i];
        if (!stored) {
            //  Deleted between our insert and the read: insert it again
            //  with the whole batch, which is retried.
            if (rc == 0)
                snprintf (error, error_size, "%s: a document vanished between insert and read",
                          self->colls[c].name);
            rc = -1;
            continue;
        }
        if (!record->spec->mutable_state) {
            bson_reinit (&self->doc);
            if (docmap_record (&self->doc, record) && s_same_body (stored, &self->doc))
                self->duplicates++;
            else if (self->conflicts)
                self->conflicts[list[i]] = 1;
            bson_destroy (stored);
            self->stored[i] = NULL;
            continue;
        }
        bson_iter_t it;
        int64_t stored_ts =
            bson_iter_init_find (&it, stored, "ts_ns") && BSON_ITER_HOLDS_INT64 (&it)
                ? bson_iter_int64 (&it)
                : INT64_MIN;
        //  The same id again in this batch, newer (or as new and later):
        //  that one replaces, this one lost (the replace filter does not
        //  tell on every server: see s_queue)
        bool superseded = false;
        for (size_t j = i; j-- > 0 && !memcmp (records[list[j]].id, record->id, RECORD_ID_SIZE);)
            superseded |= records[list[j]].ts > record->ts;
        for (size_t j = i + 1;
             j < n && !memcmp (records[list[j]].id, record->id, RECORD_ID_SIZE) && !superseded; j++)
            superseded |= records[list[j]].ts >= record->ts;
        bool same = false;
        if (stored_ts == record->ts && !superseded) {
            bson_reinit (&self->doc);
            same = docmap_record (&self->doc, record) && bson_equal (stored, &self->doc);
        }
        if (stored_ts > record->ts || superseded)
            self->stale++;
        else if (same)
            self->duplicates++; //  this very observation is stored
        else
            self->newer[(*nnewer)++] = list[i];
        bson_destroy (stored);
        self->stored[i] = NULL;
    }
    return rc;
}

int
docstore_write (void *self_, const omni_record_t *records, size_t count, uint8_t *conflicts,
                char *error, size_t error_size)
{
    docstore_t *self = self_;
    *error = 0;
    self->refused = NULL;
    self->conflicts = conflicts;
    //  Nothing is written before the database holds string _ids only: a
    //  hex _id next to a BinData one would be a second document. While a
    //  migration copies, the write waits for it (the writer loop keeps
    //  hearing ingestd: /health says store busy); otherwise (the check
    //  not done yet, the server away, a failed attempt) it fails after a
    //  moment and is retried like any write to a server that is away.
    int64_t waited_since = omni_util_mono_ms ();
    if (!atomic_load (&self->ids_ready) && !atomic_load (&self->migrating)) {
        //  Asked here too, with the writer's client, not to wait for the
        //  background thread: a marked database is ready at once, and a
        //  server that refuses us says why in the writer's error
        int marked = s_server_kind (self, self->db, &self->refused, error, error_size)
                         ? -1
                         : idmigrate_marked (self->db, error, error_size);
        if (marked < 0) {
            s_scrub (self, error);
            return self->refused ? WRITER_STORE_PERMANENT : -1;
        }
        if (marked == 1) {
            pthread_mutex_lock (&self->index_lock);
            snprintf (self->ids_state, sizeof self->ids_state, "hex");
            pthread_mutex_unlock (&self->index_lock);
            atomic_store (&self->ids_ready, true);
        }
    }
    while (!atomic_load (&self->ids_ready)) {
        if (zsys_interrupted || !self->index_started ||
            (!atomic_load (&self->migrating) && omni_util_mono_ms () - waited_since > 2000)) {
            pthread_mutex_lock (&self->index_lock);
            snprintf (error, error_size, "waiting for the string _id migration: %s",
                      self->ids_state);
            pthread_mutex_unlock (&self->index_lock);
            return -1;
        }
        usleep (50000);
    }
    int64_t hold = self->hold_until_ms - omni_util_mono_ms ();
    if (hold > 0) {
        snprintf (error, error_size,
                  "waiting %.1fs more for the server to end the operation that timed out",
                  hold / 1000.0);
        return -1;
    }
    s_reset_batch (self, count);
    for (size_t r = 0; r < count; r++)
        s_collection (self, s_collection_of (&records[r]), &self->slot[r]);
    //  Per collection present in the batch: every record inserted; the
    //  mutable-state records whose _id was there are read back in one
    //  query, and those newer than what is stored replace it.
    //  `ops` holds the list of one collection's records (s_bulk rewrites
    //  it in place, in order).
    size_t ncolls = self->ncolls;
    for (size_t c = 0; c < ncolls; c++) {
        size_t n = 0, *list = self->ops;
        size_t moved_before = self->nmoved;
        for (size_t r = 0; r < count; r++)
            if (self->slot[r] == c)
                list[n++] = r;
        if (n == 0)
            continue;
        size_t nnewer = 0;
        int rc = s_bulk (self, S_INSERTS, c, records, list, n, error, error_size);
        if (rc == 0 && self->nmoved > moved_before)
            rc = s_resolve_moved (self, c, records, self->moved + moved_before,
                                  self->nmoved - moved_before, &nnewer, error, error_size);
        for (size_t k = 0; rc == 0 && k < nnewer; k += S_REPLACE_CHUNK)
            rc = s_bulk (self, S_REPLACES, c, records, self->newer + k,
                         nnewer - k < S_REPLACE_CHUNK ? nnewer - k : S_REPLACE_CHUNK, error,
                         error_size);
        if (rc) {
            s_scrub (self, error);
            //  Refused for good (credentials, rights): said once at error
            //  by the writer, asked again at its backoff ceiling
            return self->refused ? WRITER_STORE_PERMANENT : -1;
        }
    }
    if (self->nrejects && s_store_rejects (self, records, error, error_size)) {
        s_scrub (self, error);
        s_set_up (self, false);
        return -1;
    }
    s_set_up (self, true);
    if (self->nrejects) {
        char first[S_ERROR_MAX];
        snprintf (first, sizeof first, "%s", self->rejects[0].error);
        s_scrub (self, first);
        log_warn ("records.rejected", "count=%zu batch=%zu code=%d error=\"%s\"", self->nrejects,
                  count, self->rejects[0].code, first);
    }
    if (self->m_inserted) {
        omni_metric_add (self->m_inserted, self->inserted);
        omni_metric_add (self->m_replaced, self->replaced);
        omni_metric_add (self->m_duplicates, self->duplicates);
        omni_metric_add (self->m_stale, self->stale);
        omni_metric_add (self->m_rejected, self->nrejects);
    }
    return 0;
}

//  ---------------------------------------------------------------------------
//  Self-test: records built with the encoder, stored by calling the store
//  directly against a real server, documents read back with the driver.

typedef struct {
    omni_record_encoder_t *enc;
    omni_record_t records[64];
    size_t count;
    msgpack_zone zone;
} s_batch_t;

static void
s_add (s_batch_t *b)
{
    const void *data;
    size_t size;
    char detail[256];
    int rc = omni_record_encoder_end (b->enc, &data, &size, detail, sizeof detail);
    if (rc)
        fprintf (stderr, "encoder: %s\n", detail);
    assert (rc == 0 && b->count < 64);
    void *copy = msgpack_zone_malloc (&b->zone, size);
    memcpy (copy, data, size);
    omni_record_limits_t limits = omni_record_default_limits;
    limits.max_size = 64 * 1024 * 1024;
    assert (omni_record_decode (&b->records[b->count++], &b->zone, copy, size, &limits, detail,
                                sizeof detail) == REJECT_NONE);
}

static void
s_str (msgpack_packer *pk, const char *text)
{
    msgpack_pack_str_with_body (pk, text, strlen (text));
}

static void
s_kv_str (msgpack_packer *pk, const char *key, const char *value)
{
    s_str (pk, key);
    s_str (pk, value);
}

static void
s_kv_int (msgpack_packer *pk, const char *key, int64_t value)
{
    s_str (pk, key);
    msgpack_pack_int64 (pk, value);
}

//  The one test result the self-test stores and then contradicts.
static void
s_test_a (s_batch_t *b, const char *status, int64_t ts)
{
    omni_record_encoder_begin (b->enc, "ci.test", "repo-a", "col-1", "run-1", ts);
    msgpack_packer *pk = omni_record_encoder_body (b->enc);
    msgpack_pack_map (pk, 5);
    s_kv_str (pk, "suite", "core");
    s_kv_str (pk, "name", "test_a");
    s_kv_str (pk, "status", status);
    s_kv_str (pk, "build_id", "42");
    s_str (pk, "duration");
    msgpack_pack_double (pk, 0.125);
    s_add (b);
}

static void
s_commit (s_batch_t *b, const char *src, int i, int64_t ts)
{
    char sha[41], parent[41], message[64];
    snprintf (sha, sizeof sha, "%040d", i);
    snprintf (parent, sizeof parent, "%040d", i - 1);
    snprintf (message, sizeof message, "change %d\n\nwith \"quotes\" and é\n", i);
    omni_record_encoder_begin (b->enc, "git.commit", src, "col-1", "run-1", ts);
    msgpack_packer *pk = omni_record_encoder_body (b->enc);
    msgpack_pack_map (pk, 15);
    s_kv_str (pk, "sha", sha);
    s_str (pk, "parents");
    msgpack_pack_array (pk, i > 0 ? 1 : 0);
    if (i > 0)
        s_str (pk, parent);
    s_kv_str (pk, "author_name", "Ann");
    s_kv_str (pk, "author_email", "ann@example.org");
    s_kv_int (pk, "author_time", 1700000000 + i);
    s_kv_int (pk, "author_tz", -300);
    s_kv_str (pk, "committer_name", "Bob");
    s_kv_str (pk, "committer_email", "bob@example.org");
    s_kv_int (pk, "committer_time", 1700000100 + i);
    s_kv_int (pk, "committer_tz", 60);
    s_kv_str (pk, "message", message);
    s_kv_int (pk, "files_changed", 2);
    s_kv_int (pk, "insertions", 10 + i);
    s_kv_int (pk, "deletions", i);
    s_str (pk, "files");
    msgpack_pack_array (pk, 2);
    for (int f = 0; f < 2; f++) {
        msgpack_pack_map (pk, 4);
        s_kv_str (pk, "path", f ? "img/logo.png" : "src/main.c");
        s_kv_int (pk, "insertions", f ? 0 : 10 + i);
        s_kv_int (pk, "deletions", f ? 0 : i);
        s_str (pk, "binary");
        f ? msgpack_pack_true (pk) : msgpack_pack_false (pk);
    }
    s_add (b);
}

static void
s_branch (s_batch_t *b, const char *name, const char *target, int64_t ts)
{
    omni_record_encoder_begin (b->enc, "git.branch", "repo-a", "col-1", "run-1", ts);
    msgpack_packer *pk = omni_record_encoder_body (b->enc);
    msgpack_pack_map (pk, 3);
    s_kv_str (pk, "name", name);
    s_kv_str (pk, "target", target);
    s_str (pk, "head");
    msgpack_pack_true (pk);
    s_add (b);
}

static void
s_write_ok (docstore_t *store, s_batch_t *b)
{
    char error[S_ERROR_MAX];
    int rc = docstore_write (store, b->records, b->count, NULL, error, sizeof error);
    if (rc)
        fprintf (stderr, "docstore_write: %s\n", error);
    assert (rc == 0);
}

static mongoc_collection_t *
s_coll (mongoc_client_t *client, const char *db, const char *name)
{
    return mongoc_client_get_collection (client, db, name);
}

static int64_t
s_count (mongoc_client_t *client, const char *db, const char *name)
{
    mongoc_collection_t *coll = s_coll (client, db, name);
    bson_t filter = BSON_INITIALIZER;
    bson_error_t berr;
    int64_t n = mongoc_collection_count_documents (coll, &filter, NULL, NULL, NULL, &berr);
    if (n < 0)
        fprintf (stderr, "count %s: %s\n", name, berr.message);
    bson_destroy (&filter);
    mongoc_collection_destroy (coll);
    return n;
}

//  The document with the record's id, or NULL; caller destroys.
static bson_t *
s_fetch (mongoc_client_t *client, const char *db, const char *name, const omni_record_t *record)
{
    mongoc_collection_t *coll = s_coll (client, db, name);
    bson_t filter = BSON_INITIALIZER;
    docmap_append_id (&filter, "_id", record->id);
    mongoc_cursor_t *cursor = mongoc_collection_find_with_opts (coll, &filter, NULL, NULL);
    const bson_t *found;
    bson_t *doc = NULL;
    if (mongoc_cursor_next (cursor, &found))
        doc = bson_copy (found);
    bson_error_t berr;
    if (mongoc_cursor_error (cursor, &berr))
        fprintf (stderr, "find %s: %s\n", name, berr.message);
    mongoc_cursor_destroy (cursor);
    bson_destroy (&filter);
    mongoc_collection_destroy (coll);
    return doc;
}

static const char *
s_utf8_at (const bson_t *doc, const char *path)
{
    bson_iter_t it, found;
    if (bson_iter_init (&it, doc) && bson_iter_find_descendant (&it, path, &found) &&
        BSON_ITER_HOLDS_UTF8 (&found))
        return bson_iter_utf8 (&found, NULL);
    return NULL;
}

//  Asserts that the stored branch of `record` points at `target`.
static void
s_expect_target (mongoc_client_t *client, const char *db, const omni_record_t *record,
                 const char *target)
{
    bson_t *doc = s_fetch (client, db, "git_branches", record);
    assert (strcmp (s_utf8_at (doc, "body.target"), target) == 0);
    bson_destroy (doc);
}

static bool
s_int64_at (const bson_t *doc, const char *path, int64_t *value)
{
    bson_iter_t it, found;
    if (bson_iter_init (&it, doc) && bson_iter_find_descendant (&it, path, &found) &&
        BSON_ITER_HOLDS_INT64 (&found)) {
        *value = bson_iter_int64 (&found);
        return true;
    }
    return false;
}

//  The document must equal docmap's rendering of the record, byte for byte
//  once the server's own field order is the same (it keeps ours).
static void
s_check_doc (mongoc_client_t *client, const char *db, const char *name, const omni_record_t *record)
{
    bson_t *doc = s_fetch (client, db, name, record);
    assert (doc);
    bson_t expect = BSON_INITIALIZER;
    assert (docmap_record (&expect, record));
    if (!bson_equal (doc, &expect)) {
        char *a = bson_as_canonical_extended_json (doc, NULL);
        char *e = bson_as_canonical_extended_json (&expect, NULL);
        fprintf (stderr, "stored:   %s\nexpected: %s\n", a, e);
        bson_free (a);
        bson_free (e);
        assert (false);
    }
    bson_destroy (&expect);
    bson_destroy (doc);
}

//  The value of an unlabelled metric in rendered text, or -1
static int64_t
s_metric (const char *rendered, const char *name)
{
    size_t len = strlen (name);
    for (const char *line = rendered; line && *line; line = strchr (line, '\n') + 1) {
        if (strncmp (line, name, len) == 0 && line[len] == ' ')
            return strtoll (line + len + 1, NULL, 10);
        if (!strchr (line, '\n'))
            break;
    }
    return -1;
}

static bool
s_has_index (mongoc_client_t *client, const char *db, const char *name, const char *index)
{
    mongoc_collection_t *coll = s_coll (client, db, name);
    mongoc_cursor_t *cursor = mongoc_collection_find_indexes_with_opts (coll, NULL);
    const bson_t *doc;
    bool found = false;
    while (mongoc_cursor_next (cursor, &doc)) {
        const char *n = s_utf8_at (doc, "name");
        found |= n && strcmp (n, index) == 0;
    }
    mongoc_cursor_destroy (cursor);
    mongoc_collection_destroy (coll);
    return found;
}

//  FerretDB says so in buildInfo; only the self-test asks (documentd does
//  not care which server it writes to).
static bool
s_is_ferretdb (mongoc_client_t *client)
{
    bson_t *cmd = BCON_NEW ("buildInfo", BCON_INT32 (1)), reply;
    bson_error_t berr;
    bool ok = mongoc_client_command_simple (client, "admin", cmd, NULL, &reply, &berr);
    bson_iter_t it;
    bool ferret = ok && bson_iter_init_find (&it, &reply, "ferretdbVersion");
    bson_destroy (cmd);
    bson_destroy (&reply);
    return ferret;
}

static void
s_drop (mongoc_client_t *client, const char *db)
{
    mongoc_database_t *database = mongoc_client_get_database (client, db);
    bson_error_t berr;
    if (!mongoc_database_drop_with_opts (database, NULL, &berr))
        fprintf (stderr, "drop %s: %s\n", db, berr.message);
    mongoc_database_destroy (database);
}

static void
s_test_masking (void)
{
    static const char *cases[][2] = {
        {"mongodb://127.0.0.1:27017", "mongodb://127.0.0.1:27017"},
        {"mongodb://user:s3cret@h1:1,h2:2/db?tls=true", "mongodb://user:***@h1:1,h2:2/db?tls=true"},
        {"mongodb://user@host/", "mongodb://user@host/"},
        {"mongodb+srv://u:p%40ss@cluster.example.net/?retryWrites=true",
         "mongodb+srv://u:***@cluster.example.net/?retryWrites=true"},
        {"mongodb://h/?tls=true&tlsCertificateKeyFilePassword=pw&appname=x",
         "mongodb://h/?tls=true&tlsCertificateKeyFilePassword=***&appname=x"},
        {"mongodb://h/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:abc",
         "mongodb://h/?authMechanism=MONGODB-AWS&authMechanismProperties=***"},
        {"not a uri", "not a uri"},
        {NULL, NULL}};
    for (int i = 0; cases[i][0]; i++) {
        char *masked = docstore_mask_uri (cases[i][0]);
        if (strcmp (masked, cases[i][1]) != 0)
            fprintf (stderr, "mask %s: got %s\n", cases[i][0], masked);
        assert (strcmp (masked, cases[i][1]) == 0);
        free (masked);
    }
}

static void
s_test_config (void)
{
    char error[512];
    docstore_config_t config = {"mongodb://u:hunter22@127.0.0.1:1/", "omni", "0", 0, 0};
    assert (!docstore_new (&config, NULL, error, sizeof error));
    assert (strstr (error, "write_concern") && !strstr (error, "hunter22"));
    config.write_concern = "majority";
    config.database = "a.b";
    assert (!docstore_new (&config, NULL, error, sizeof error));
    assert (strstr (error, "database"));
    config.database = NULL;
    config.uri = "http://u:hunter22@x/";
    assert (!docstore_new (&config, NULL, error, sizeof error));
    assert (strstr (error, "uri") && !strstr (error, "hunter22"));
    config.uri = "mongodb://u:hunter22@127.0.0.1:1/?serverSelectionTimeoutMS=200";
    config.write_concern = "2";
    docstore_t *store = docstore_new (&config, NULL, error, sizeof error);
    assert (store);
    assert (strcmp (docstore_display (store),
                    "mongodb://u:***@127.0.0.1:1/?serverSelectionTimeoutMS=200") == 0);
    docstore_destroy (&store);
    assert (!store);
}

//  A server that is not there: writes fail (to be retried), health is false.
static void
s_test_away (s_batch_t *b)
{
    char error[512], text[256];
    docstore_config_t config = {
        "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300&connectTimeoutMS=300", "omni", NULL, 0,
        0};
    docstore_t *store = docstore_new (&config, NULL, error, sizeof error);
    assert (store);
    assert (docstore_connect (store) == 1);
    assert (docstore_write (store, b->records, b->count, NULL, error, sizeof error) == -1);
    assert (*error);
    assert (!docstore_healthy (store, text, sizeof text));
    assert (strstr (text, "127.0.0.1:1"));
    docstore_destroy (&store);
}

void
docstore_test (bool verbose)
{
    //  Refusals for good are told from the rest
    bson_error_t e = {MONGOC_ERROR_CLIENT, MONGOC_ERROR_CLIENT_AUTHENTICATE, "auth"};
    assert (s_refusal_hint (&e) && strstr (s_refusal_hint (&e), "password"));
    e = (bson_error_t){MONGOC_ERROR_SERVER, 18, "AuthenticationFailed"};
    assert (s_refusal_hint (&e));
    e = (bson_error_t){MONGOC_ERROR_SERVER, 13, "not authorized"};
    assert (s_refusal_hint (&e) && strstr (s_refusal_hint (&e), "readWrite"));
    e = (bson_error_t){MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_SOCKET, "socket"};
    assert (!s_refusal_hint (&e));
    e = (bson_error_t){MONGOC_ERROR_SERVER, 11000, "duplicate"};
    assert (!s_refusal_hint (&e));

    s_test_masking ();
    s_test_config ();
    const char *uri = getenv ("OMNI_TEST_MONGO_URI");
    s_batch_t b;
    memset (&b, 0, sizeof b);
    b.enc = omni_record_encoder_new ();
    msgpack_zone_init (&b.zone, 1 << 20);
    s_commit (&b, "repo-a", 0, INT64_C (1700000000000000000));
    s_test_away (&b);
    b.count = 0;
    if (!uri || !*uri)
        selftest_skip ("no MongoDB-wire server (OMNI_TEST_MONGO_URI)");
    char db[64];
    srand ((unsigned) time (NULL) ^ (unsigned) getpid ());
    snprintf (db, sizeof db, "omni_selftest_%d_%d", (int) getpid (), rand () % 100000);
    omni_metrics_t *metrics = omni_metrics_new ("test_");
    char error[512], text[256];
    docstore_config_t config = {uri, db, "majority", 10000, 0};
    docstore_t *store = docstore_new (&config, metrics, error, sizeof error);
    assert (store);
    assert (docstore_connect (store) == 0);
    mongoc_client_t *client = mongoc_client_new (uri);
    assert (client);
    mongoc_client_set_error_api (client, MONGOC_ERROR_API_VERSION_2);
    assert (s_has_index (client, db, "git_commits", "src_1"));
    assert (s_has_index (client, db, "git_commits", "run_1"));
    assert (s_has_index (client, db, "git_commits", "ts_1"));
    assert (s_has_index (client, db, "ci_tests", "ts_1"));
    assert (s_has_index (client, db, "custom", "src_1"));
    //  A restart finds the indexes there: no error, the connection stays
    docstore_t *restarted = docstore_new (&config, NULL, error, sizeof error);
    assert (restarted && docstore_connect (restarted) == 0);
    docstore_destroy (&restarted);
    //  In the background: /health says pending, then ready
    char db2[80];
    snprintf (db2, sizeof db2, "%s_bg", db);
    docstore_config_t config2 = {uri, db2, "majority", 10000, 0};
    docstore_t *background = docstore_new (&config2, NULL, error, sizeof error);
    assert (background);
    docstore_start (background);
    text[0] = 0;
    for (int i = 0; i < 600 && !strstr (text, "indexes ready"); i++) {
        docstore_healthy (background, text, sizeof text);
        if (!strstr (text, "indexes ready"))
            usleep (50000);
    }
    assert (strstr (text, "indexes ready"));
    assert (s_has_index (client, db2, "ci_builds", "ts_1"));
    docstore_destroy (&background);
    s_drop (client, db2);
    text[0] = 0;
    //  The pool's monitor has seen the server by now, or soon
    bool healthy = false;
    for (int i = 0; i < 100 && !healthy; i++) {
        healthy = docstore_healthy (store, text, sizeof text);
        if (!healthy)
            usleep (50000);
    }
    assert (healthy);

    //  1. A mixed batch: commits, a branch, a test result with a float, a
    //  metric with tags, a custom kind with hostile keys and a uint64.
    int64_t ts = INT64_C (1700000000000000000);
    for (int i = 0; i < 5; i++)
        s_commit (&b, "repo-a", i, ts + (int64_t) i * 1000000001);
    s_branch (&b, "main", "0000000000000000000000000000000000000004", ts);
    s_test_a (&b, "passed", ts);
    msgpack_packer *pk;
    omni_record_encoder_begin (b.enc, "metric", "host-1", "col-1", "run-1", ts + 123456);
    omni_record_encoder_tag (b.enc, "host", "h1");
    omni_record_encoder_tag (b.enc, "cpu", "0");
    pk = omni_record_encoder_body (b.enc);
    msgpack_pack_map (pk, 2);
    s_kv_str (pk, "name", "host.cpu.user");
    s_str (pk, "value");
    msgpack_pack_double (pk, 12.5);
    s_add (&b);
    omni_record_encoder_begin (b.enc, "x.deploy", "svc", "col-1", "run-1", ts - 1);
    pk = omni_record_encoder_body (b.enc);
    msgpack_pack_map (pk, 5);
    s_str (pk, "$where");
    s_str (pk, "1");
    s_str (pk, "a.b");
    msgpack_pack_map (pk, 1);
    s_str (pk, "$in");
    msgpack_pack_array (pk, 3);
    msgpack_pack_nil (pk);
    msgpack_pack_uint64 (pk, UINT64_MAX);
    msgpack_pack_bin_with_body (pk, "\x00\xff", 2);
    s_str (pk, "dup");
    msgpack_pack_int (pk, 1);
    s_str (pk, "dup");
    msgpack_pack_int (pk, 2);
    s_str (pk, "nested");
    msgpack_pack_array (pk, 2);
    msgpack_pack_map (pk, 2);
    s_kv_int (pk, "deep", -7);
    s_str (pk, "list");
    msgpack_pack_array (pk, 2);
    msgpack_pack_int (pk, 1);
    msgpack_pack_map (pk, 1);
    s_kv_str (pk, "x", "y");
    msgpack_pack_map (pk, 0);
    s_add (&b);
    size_t first = b.count;
    //  Arrays directly in arrays: MongoDB stores them; FerretDB 1.x refuses
    //  them, and the record must then be kept aside, not block the batch.
    omni_record_encoder_begin (b.enc, "x.matrix", "svc", "col-1", "run-1", ts);
    pk = omni_record_encoder_body (b.enc);
    msgpack_pack_map (pk, 1);
    s_str (pk, "rows");
    msgpack_pack_array (pk, 2);
    msgpack_pack_array (pk, 2);
    msgpack_pack_int (pk, 1);
    msgpack_pack_int (pk, 2);
    msgpack_pack_array (pk, 0);
    s_add (&b);
    bool ferret = s_is_ferretdb (client);
    int64_t custom = ferret ? 1 : 2;
    s_write_ok (store, &b);
    assert (s_count (client, db, "git_commits") == 5);
    assert (s_count (client, db, "git_branches") == 1);
    assert (s_count (client, db, "ci_tests") == 1);
    assert (s_count (client, db, "metrics") == 1);
    assert (s_count (client, db, "custom") == custom);
    for (size_t i = 0; i < b.count; i++)
        if (!ferret || i != first)
            s_check_doc (client, db, b.records[i].spec->collection, &b.records[i]);
    assert (s_count (client, db, S_REJECTED) == (ferret ? 1 : 0));
    //  A few fields read the way a user would, not only via docmap
    bson_t *doc = s_fetch (client, db, "git_commits", &b.records[4]);
    assert (doc);
    int64_t value;
    assert (strcmp (s_utf8_at (doc, "kind"), "git.commit") == 0);
    assert (strcmp (s_utf8_at (doc, "src"), "repo-a") == 0);
    assert (strcmp (s_utf8_at (doc, "body.files.1.path"), "img/logo.png") == 0);
    assert (s_int64_at (doc, "body.insertions", &value) && value == 14);
    assert (s_int64_at (doc, "ts_ns", &value) && value == ts + INT64_C (4) * 1000000001);
    bson_iter_t it, found;
    assert (bson_iter_init (&it, doc) && bson_iter_find_descendant (&it, "ts", &found) &&
            BSON_ITER_HOLDS_DATE_TIME (&found) &&
            bson_iter_date_time (&found) == (ts + INT64_C (4) * 1000000001) / 1000000);
    bson_destroy (doc);
    doc = s_fetch (client, db, "custom", &b.records[first - 1]);
    assert (bson_iter_init (&it, doc) &&
            bson_iter_find_descendant (&it,
                                       "body.a\xef\xbc\x8e"
                                       "b.\xef\xbc\x84in.1",
                                       &found) &&
            BSON_ITER_HOLDS_DOUBLE (&found));
    assert (s_int64_at (doc, "body.dup", &value) && value == 2);
    assert (s_int64_at (doc, "body.nested.0.deep", &value) && value == -7);
    assert (strcmp (s_utf8_at (doc, "body.nested.0.list.1.x"), "y") == 0);
    bson_destroy (doc);
    doc = s_fetch (client, db, "metrics", &b.records[first - 2]);
    assert (strcmp (s_utf8_at (doc, "tags.host"), "h1") == 0);
    bson_destroy (doc);
    if (verbose)
        printf ("  docstore: %zu records stored and read back\n", b.count);

    //  2. The same batch again: no duplicates, every one counted as stored
    s_write_ok (store, &b);
    assert (s_count (client, db, "git_commits") == 5);
    assert (s_count (client, db, "git_branches") == 1);
    assert (s_count (client, db, "custom") == custom);
    //  The branch, the same observation again, is read back and left as it
    //  is: a redelivery replaces nothing
    char *rendered = omni_metrics_render (metrics);
    assert (strstr (rendered, ferret ? "test_documents_inserted_total 9\n"
                                     : "test_documents_inserted_total 10\n"));
    assert (strstr (rendered, ferret ? "test_documents_duplicate_total 9\n"
                                     : "test_documents_duplicate_total 10\n"));
    assert (strstr (rendered, "test_documents_replaced_total 0\n"));
    //  (the commits, the test and the metric are read back and compared too)
    assert (strstr (rendered, "test_documents_read_total 8\n"));
    free (rendered);

    //  Other content under a stored id of an immutable kind: a conflict,
    //  flagged for the writer loop; the stored document stays
    b.count = 0;
    s_test_a (&b, "failed", ts);
    uint8_t flag = 0;
    char conflict_error[S_ERROR_MAX];
    assert (docstore_write (store, b.records, 1, &flag, conflict_error, sizeof conflict_error) ==
            0);
    assert (flag == 1);
    doc = s_fetch (client, db, "ci_tests", &b.records[0]);
    assert (strcmp (s_utf8_at (doc, "body.status"), "passed") == 0);
    bson_destroy (doc);

    //  3. The branch moves: updated, not duplicated; an older observation
    //  arriving later (and one in the same batch, before or after) loses.
    b.count = 0;
    s_branch (&b, "main", "1111111111111111111111111111111111111111", ts + 10);
    s_branch (&b, "main", "2222222222222222222222222222222222222222", ts + 5);
    s_write_ok (store, &b);
    assert (s_count (client, db, "git_branches") == 1);
    doc = s_fetch (client, db, "git_branches", &b.records[0]);
    assert (strcmp (s_utf8_at (doc, "body.target"), "1111111111111111111111111111111111111111") ==
            0);
    assert (s_int64_at (doc, "ts_ns", &value) && value == ts + 10);
    bson_destroy (doc);
    b.count = 0;
    s_branch (&b, "main", "3333333333333333333333333333333333333333", ts + 7);
    s_write_ok (store, &b);
    s_expect_target (client, db, &b.records[0], "1111111111111111111111111111111111111111");
    s_branch (&b, "dev", "4444444444444444444444444444444444444444", ts);
    s_branch (&b, "main", "5555555555555555555555555555555555555555", ts + 20);
    s_write_ok (store, &b);
    assert (s_count (client, db, "git_branches") == 2);
    s_expect_target (client, db, &b.records[0], "5555555555555555555555555555555555555555");

    //  The same event time with other content: the last arrival wins, as
    //  with an equal time before
    b.count = 0;
    s_branch (&b, "main", "6666666666666666666666666666666666666666", ts + 20);
    s_write_ok (store, &b);
    s_expect_target (client, db, &b.records[0], "6666666666666666666666666666666666666666");
    //  Forty branches stored, then the same batch again with a few moved:
    //  only those are replaced (in commands of S_REPLACE_CHUNK), the rest
    //  count as stored
    b.count = 0;
    for (int i = 0; i < 40; i++) {
        char name[16];
        snprintf (name, sizeof name, "b%02d", i);
        s_branch (&b, name, "7777777777777777777777777777777777777777", ts);
    }
    s_write_ok (store, &b);
    rendered = omni_metrics_render (metrics);
    int64_t replaced_before = s_metric (rendered, "test_documents_replaced_total");
    int64_t stale_before = s_metric (rendered, "test_documents_stale_total");
    free (rendered);
    b.count = 0;
    for (int i = 0; i < 40; i++) {
        char name[16];
        snprintf (name, sizeof name, "b%02d", i);
        s_branch (&b, name,
                  i % 2 ? "7777777777777777777777777777777777777777"
                        : "8888888888888888888888888888888888888888",
                  i % 2   ? ts
                  : i % 4 ? ts - 1
                          : ts + 1);
    }
    s_write_ok (store, &b);
    assert (s_count (client, db, "git_branches") == 42);
    rendered = omni_metrics_render (metrics);
    assert (s_metric (rendered, "test_documents_replaced_total") == replaced_before + 10);
    assert (s_metric (rendered, "test_documents_stale_total") == stale_before + 10);
    free (rendered);
    for (int i = 0; i < 40; i++) {
        doc = s_fetch (client, db, "git_branches", &b.records[i]);
        assert (strcmp (s_utf8_at (doc, "body.target"),
                        i % 4 == 0 ? "8888888888888888888888888888888888888888"
                                   : "7777777777777777777777777777777777777777") == 0);
        bson_destroy (doc);
    }

    //  4. A record too large for a document is kept aside; the others of
    //  its batch are stored.
    b.count = 0;
    s_commit (&b, "repo-b", 1, ts);
    omni_record_encoder_begin (b.enc, "x.huge", "svc", "col-1", "run-1", ts);
    pk = omni_record_encoder_body (b.enc);
    msgpack_pack_map (pk, 1);
    s_str (pk, "values");
    msgpack_pack_array (pk, 1200000);
    for (int i = 0; i < 1200000; i++)
        msgpack_pack_int (pk, i & 63);
    s_add (&b);
    s_commit (&b, "repo-b", 2, ts);
    s_write_ok (store, &b);
    assert (s_count (client, db, "git_commits") == 7);
    assert (s_count (client, db, "custom") == custom);
    assert (s_count (client, db, S_REJECTED) == (ferret ? 2 : 1));
    doc = s_fetch (client, db, S_REJECTED, &b.records[1]);
    assert (doc);
    assert (strcmp (s_utf8_at (doc, "kind"), "x.huge") == 0);
    assert (strcmp (s_utf8_at (doc, "collection"), "custom") == 0);
    assert (strstr (s_utf8_at (doc, "error"), "limit"));
    assert (bson_iter_init (&it, doc) && bson_iter_find_descendant (&it, "record", &found) &&
            BSON_ITER_HOLDS_BINARY (&found));
    uint32_t len;
    const uint8_t *bytes;
    bson_iter_binary (&found, NULL, &len, &bytes);
    //  The kept bytes decode to the same record
    msgpack_zone zone;
    msgpack_zone_init (&zone, 4096);
    omni_record_t again;
    omni_record_limits_t limits = omni_record_default_limits;
    limits.max_size = 64 * 1024 * 1024;
    char detail[256];
    assert (omni_record_decode (&again, &zone, bytes, len, &limits, detail, sizeof detail) ==
            REJECT_NONE);
    assert (memcmp (again.id, b.records[1].id, RECORD_ID_SIZE) == 0);
    assert (again.body->via.map.ptr[0].val.via.array.size == 1200000);
    msgpack_zone_destroy (&zone);
    bson_destroy (doc);
    //  Again: still one reject, nothing else
    s_write_ok (store, &b);
    assert (s_count (client, db, S_REJECTED) == (ferret ? 2 : 1));
    assert (s_count (client, db, "git_commits") == 7);
    rendered = omni_metrics_render (metrics);
    assert (strstr (rendered, ferret ? "test_records_rejected_total 4\n"
                                     : "test_records_rejected_total 2\n"));
    assert (strstr (rendered, "test_mongodb_up 1\n"));
    free (rendered);

    s_drop (client, db);
    mongoc_client_destroy (client);
    docstore_destroy (&store);
    omni_metrics_destroy (&metrics);
    omni_record_encoder_destroy (&b.enc);
    msgpack_zone_destroy (&b.zone);
}
