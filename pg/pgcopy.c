/*  pgcopy: the COPY encoder, apart from the connection it streams over.

    Rows are encoded into one buffer and sent in chunks of PGCOPY_CHUNK
    bytes, so a batch costs a few PQputCopyData calls rather than one per
    field. The encoder holds no connection of its own: begin is given the
    omni_pgconn_t, whose handle is asked again before every chunk, so a
    connection lost under the COPY (pgconn closes it) stops the sending and
    the error surfaces at end, as the connection's error.                    */
#include "pg/pgcopy.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "testsupport/pgtest.h"
#include "testsupport/selftest.h"

#include <assert.h>
#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PGCOPY_CHUNK (256 * 1024)
//  Seconds between 1970-01-01 and 2000-01-01, PostgreSQL's timestamp epoch.
#define PG_EPOCH_OFFSET_US INT64_C (946684800000000)
#define PG_TEXT_OID        25

struct _omni_pgcopy_t {
    omni_pgconn_t *conn; //  of the COPY in progress (or the last one)
    bool copying;
    omni_pgcopy_format_t format;
    omni_buf_t buf; //  rows not sent yet
    int row_fields, field_index;
    uint64_t rows;
};

omni_pgcopy_t *
omni_pgcopy_new (void)
{
    omni_pgcopy_t *self = calloc (1, sizeof *self);
    assert (self);
    return self;
}

void
omni_pgcopy_destroy (omni_pgcopy_t **self_p)
{
    omni_pgcopy_t *self = *self_p;
    if (!self)
        return;
    omni_buf_release (&self->buf);
    free (self);
    *self_p = NULL;
}

static void
s_put (omni_pgcopy_t *self, const void *data, size_t len)
{
    omni_buf_append (&self->buf, data, len);
}

//  The binary format's integers, big-endian: a swap and one store (a loop
//  over the bytes was a third of what a point's row cost to encode)
static inline void
s_put_be (omni_pgcopy_t *self, uint64_t value, int bytes)
{
    uint64_t be = htobe64 (value << (64 - 8 * bytes));
    s_put (self, &be, (size_t) bytes);
}

//  Sends what is buffered once it is worth a round of the socket.
static void
s_flush (omni_pgcopy_t *self, bool force)
{
    if (!self->copying || !self->buf.size || (!force && self->buf.size < PGCOPY_CHUNK))
        return;
    //  A connection lost under the COPY is gone (its handle NULL); the
    //  error surfaces at end
    PGconn *handle = omni_pgconn_handle (self->conn);
    if (!handle || PQputCopyData (handle, self->buf.data, (int) self->buf.size) != 1)
        self->copying = false;
    omni_buf_reset (&self->buf);
}

int
omni_pgcopy_begin (omni_pgcopy_t *self, omni_pgconn_t *conn, const char *table, const char *columns,
                   omni_pgcopy_format_t format)
{
    self->conn = conn;
    self->copying = false;
    PGconn *handle = omni_pgconn_handle (conn);
    if (!handle) {
        omni_pgconn_fail (conn, PGCONN_TRANSIENT, "08003", "not connected");
        return -1;
    }
    char sql[2048];
    snprintf (sql, sizeof sql, "COPY %s%s%s%s FROM STDIN%s", table, columns ? " (" : "",
              columns ? columns : "", columns ? ")" : "",
              format == PGCOPY_BINARY ? " (FORMAT binary)" : "");
    PGresult *result = PQexec (handle, sql);
    if (!result || PQresultStatus (result) != PGRES_COPY_IN) {
        omni_pgconn_check (conn, result);
        return -1;
    }
    PQclear (result);
    self->copying = true;
    self->format = format;
    omni_buf_reset (&self->buf);
    self->rows = 0;
    self->row_fields = 0;
    self->field_index = 0;
    if (format == PGCOPY_BINARY) {
        s_put (self, "PGCOPY\n\377\r\n\0", 11);
        s_put_be (self, 0, 4); //  flags
        s_put_be (self, 0, 4); //  header extension length
    }
    return 0;
}

static void
s_end_row (omni_pgcopy_t *self)
{
    if (self->row_fields) {
        assert (self->field_index == self->row_fields);
        if (self->format == PGCOPY_TEXT)
            s_put (self, "\n", 1);
        self->row_fields = 0;
        s_flush (self, false);
    }
}

void
omni_pgcopy_row (omni_pgcopy_t *self, int nfields)
{
    assert (nfields > 0);
    s_end_row (self);
    self->row_fields = nfields;
    self->field_index = 0;
    self->rows++;
    if (self->format == PGCOPY_BINARY)
        s_put_be (self, (uint64_t) nfields, 2);
}

//  Starts a field: the separator in text, the length in binary (-1 = NULL).
static void
s_field (omni_pgcopy_t *self, int64_t binary_len)
{
    assert (self->field_index < self->row_fields);
    if (self->format == PGCOPY_TEXT) {
        if (self->field_index)
            s_put (self, "\t", 1);
    } else
        s_put_be (self, (uint64_t) (uint32_t) (int32_t) binary_len, 4);
    self->field_index++;
}

void
omni_pgcopy_null (omni_pgcopy_t *self)
{
    s_field (self, -1);
    if (self->format == PGCOPY_TEXT)
        s_put (self, "\\N", 2);
}

//  Text format: backslash, tab, newline and carriage return are escaped.
static void
s_put_escaped (omni_pgcopy_t *self, const char *text, size_t len)
{
    char *start = omni_buf_reserve (&self->buf, len * 2), *out = start;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        switch (c) {
        case '\\':
            *out++ = '\\';
            *out++ = '\\';
            break;
        case '\t':
            *out++ = '\\';
            *out++ = 't';
            break;
        case '\n':
            *out++ = '\\';
            *out++ = 'n';
            break;
        case '\r':
            *out++ = '\\';
            *out++ = 'r';
            break;
        default: *out++ = c;
        }
    }
    omni_buf_advance (&self->buf, (size_t) (out - start));
}

void
omni_pgcopy_text (omni_pgcopy_t *self, const char *text, size_t len)
{
    s_field (self, (int64_t) len);
    if (self->format == PGCOPY_TEXT)
        s_put_escaped (self, text, len);
    else
        s_put (self, text, len);
}

void
omni_pgcopy_int8 (omni_pgcopy_t *self, int64_t value)
{
    s_field (self, 8);
    if (self->format == PGCOPY_TEXT) {
        char text[24];
        s_put (self, text, (size_t) snprintf (text, sizeof text, "%lld", (long long) value));
    } else
        s_put_be (self, (uint64_t) value, 8);
}

void
omni_pgcopy_int4 (omni_pgcopy_t *self, int32_t value)
{
    s_field (self, 4);
    if (self->format == PGCOPY_TEXT) {
        char text[16];
        s_put (self, text, (size_t) snprintf (text, sizeof text, "%d", value));
    } else
        s_put_be (self, (uint64_t) (uint32_t) value, 4);
}

void
omni_pgcopy_float8 (omni_pgcopy_t *self, double value)
{
    s_field (self, 8);
    if (self->format == PGCOPY_TEXT) {
        char text[40];
        if (value != value)
            snprintf (text, sizeof text, "NaN");
        else if (value > 1.7976931348623157e308)
            snprintf (text, sizeof text, "Infinity");
        else if (value < -1.7976931348623157e308)
            snprintf (text, sizeof text, "-Infinity");
        else
            snprintf (text, sizeof text, "%.17g", value);
        s_put (self, text, strlen (text));
    } else {
        uint64_t bits;
        memcpy (&bits, &value, 8);
        s_put_be (self, bits, 8);
    }
}

void
omni_pgcopy_bool (omni_pgcopy_t *self, bool value)
{
    s_field (self, 1);
    if (self->format == PGCOPY_TEXT)
        s_put (self, value ? "t" : "f", 1);
    else
        s_put (self, value ? "\1" : "\0", 1);
}

void
omni_pgcopy_bytea (omni_pgcopy_t *self, const void *data, size_t len)
{
    s_field (self, (int64_t) len);
    if (self->format == PGCOPY_BINARY) {
        s_put (self, data, len);
        return;
    }
    //  \\x<hex>: the bytea hex form, its backslash escaped for COPY
    char *out = omni_buf_reserve (&self->buf, 3 + 2 * len);
    memcpy (out, "\\\\x", 3);
    omni_util_hex (data, len, out + 3);
    omni_buf_advance (&self->buf, 3 + 2 * len);
}

void
omni_pgcopy_jsonb (omni_pgcopy_t *self, const char *json, size_t len)
{
    if (self->format == PGCOPY_TEXT) {
        omni_pgcopy_text (self, json, len);
        return;
    }
    //  jsonb's binary form: a version byte (1), then the JSON text
    s_field (self, (int64_t) len + 1);
    s_put (self, "\1", 1);
    s_put (self, json, len);
}

void
omni_pgcopy_text_array (omni_pgcopy_t *self, const char *const *items, const size_t *lens,
                        size_t count)
{
    if (self->format == PGCOPY_BINARY) {
        size_t len = count ? 20 : 12;
        for (size_t i = 0; i < count; i++)
            len += 4 + lens[i];
        s_field (self, (int64_t) len);
        s_put_be (self, count ? 1 : 0, 4); //  dimensions
        s_put_be (self, 0, 4);             //  has nulls
        s_put_be (self, PG_TEXT_OID, 4);
        if (count) {
            s_put_be (self, count, 4); //  length
            s_put_be (self, 1, 4);     //  lower bound
        }
        for (size_t i = 0; i < count; i++) {
            s_put_be (self, lens[i], 4);
            s_put (self, items[i], lens[i]);
        }
        return;
    }
    //  Array literal {"a","b"}: quotes and backslashes escaped for the
    //  array parser, then the whole escaped again for COPY.
    s_field (self, 0);
    s_put (self, "{", 1);
    for (size_t i = 0; i < count; i++) {
        if (i)
            s_put (self, ",", 1);
        s_put (self, "\"", 1);
        for (size_t k = 0; k < lens[i]; k++) {
            char c = items[i][k];
            if (c == '"' || c == '\\')
                s_put_escaped (self, "\\", 1);
            s_put_escaped (self, &c, 1);
        }
        s_put (self, "\"", 1);
    }
    s_put (self, "}", 1);
}

void
omni_pgcopy_timestamptz_ns (omni_pgcopy_t *self, int64_t ns)
{
    //  Floor division, so that times before 1970 round the same way
    int64_t us = ns / 1000 - (ns % 1000 < 0 ? 1 : 0);
    s_field (self, 8);
    if (self->format == PGCOPY_BINARY) {
        s_put_be (self, (uint64_t) (us - PG_EPOCH_OFFSET_US), 8);
        return;
    }
    int64_t secs = us / 1000000 - (us % 1000000 < 0 ? 1 : 0);
    int64_t frac = us - secs * 1000000;
    time_t t = (time_t) secs;
    struct tm tm;
    gmtime_r (&t, &tm);
    char text[64];
    size_t n = strftime (text, sizeof text, "%Y-%m-%d %H:%M:%S", &tm);
    n += (size_t) snprintf (text + n, sizeof text - n, ".%06lld+00", (long long) frac);
    s_put (self, text, n);
}

omni_pgconn_status_t
omni_pgcopy_end (omni_pgcopy_t *self)
{
    omni_pgconn_t *conn = self->conn;
    PGconn *handle = conn ? omni_pgconn_handle (conn) : NULL;
    if (!handle) {
        self->copying = false;
        omni_buf_reset (&self->buf);
        self->row_fields = 0;
        if (conn)
            omni_pgconn_fail (conn, PGCONN_TRANSIENT, "08003", "not connected");
        return PGCONN_TRANSIENT;
    }
    bool sending = self->copying;
    if (sending) {
        s_end_row (self);
        if (self->format == PGCOPY_BINARY)
            s_put_be (self, 0xFFFF, 2); //  trailer: -1 as int16
        s_flush (self, true);
    }
    self->copying = false;
    omni_buf_reset (&self->buf);
    self->row_fields = 0;
    PQputCopyEnd (handle, sending ? NULL : "client gave up");
    omni_pgconn_status_t status = PGCONN_OK;
    PGresult *result;
    while ((result = PQgetResult (handle))) {
        omni_pgconn_status_t one = omni_pgconn_check (conn, result);
        if (status == PGCONN_OK)
            status = one;
        if (!omni_pgconn_handle (conn))
            break; //  lost: check closed it
    }
    if (status == PGCONN_OK && !sending)
        status = omni_pgconn_check (conn, NULL);
    return status;
}

uint64_t
omni_pgcopy_rows (omni_pgcopy_t *self)
{
    return self->rows;
}

//  ---------------------------------------------------------------------------
//  NUL rule

const char *
omni_pgcopy_text_clean (const char *text, size_t len, omni_buf_t *scratch, size_t *out_len)
{
    const char *nul = memchr (text, 0, len);
    *out_len = len;
    if (!nul)
        return text;
    size_t nuls = 0;
    for (size_t i = 0; i < len; i++)
        nuls += text[i] == 0;
    omni_buf_reset (scratch);
    char *start = omni_buf_reserve (scratch, len + 2 * nuls), *out = start;
    for (size_t i = 0; i < len; i++) {
        if (text[i])
            *out++ = text[i];
        else {
            *out++ = (char) 0xEF;
            *out++ = (char) 0xBF;
            *out++ = (char) 0xBD;
        }
    }
    omni_buf_advance (scratch, (size_t) (out - start));
    *out_len = scratch->size;
    return scratch->data;
}

void
omni_pgcopy_json_clean (char *json, size_t len)
{
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        if (!in_string) {
            in_string = json[i] == '"';
            continue;
        }
        if (json[i] == '"')
            in_string = false;
        else if (json[i] == '\\') {
            if (i + 5 < len && memcmp (json + i + 1, "u0000", 5) == 0)
                memcpy (json + i + 1, "ufffd", 5);
            i++; //  skip the escaped character (or the 'u')
        }
    }
}
//  ---------------------------------------------------------------------------
//  Self-test, against a real server in a database of its own

static void
s_test_copy (omni_pgconn_t *conn, omni_pgcopy_t *copy, omni_pgcopy_format_t format)
{
    assert (omni_pgconn_exec (conn, "TRUNCATE t_copy") == PGCONN_OK);
    assert (omni_pgcopy_begin (copy, conn, "t_copy", "n, t, i8, i4, f, b, by, arr, ts", format) ==
            0);
    const char *hostile = "tab\there\nnl\\bs \"q\" 'x' \\N {a,b} \xc3\xa9";
    const char *items[] = {"a", "b,\"c\"\\", ""};
    size_t lens[] = {1, 6, 0};
    omni_pgcopy_row (copy, 9);
    omni_pgcopy_int4 (copy, 1);
    omni_pgcopy_text (copy, hostile, strlen (hostile));
    omni_pgcopy_int8 (copy, INT64_MIN);
    omni_pgcopy_int4 (copy, -7);
    omni_pgcopy_float8 (copy, 0.1);
    omni_pgcopy_bool (copy, true);
    omni_pgcopy_bytea (copy, "\0\1\\\xff", 4);
    omni_pgcopy_text_array (copy, items, lens, 3);
    omni_pgcopy_timestamptz_ns (copy, INT64_C (1700000000123456789));
    omni_pgcopy_row (copy, 9);
    omni_pgcopy_int4 (copy, 2);
    omni_pgcopy_text (copy, "", 0);
    for (int i = 0; i < 5; i++)
        omni_pgcopy_null (copy);
    omni_pgcopy_text_array (copy, NULL, NULL, 0);
    omni_pgcopy_timestamptz_ns (copy, -1500); //  1969-12-31 23:59:59.999998
    //  Enough rows to cross the chunk size
    for (int r = 3; r < 20000; r++) {
        omni_pgcopy_row (copy, 9);
        omni_pgcopy_int4 (copy, r);
        omni_pgcopy_text (copy, hostile, strlen (hostile));
        omni_pgcopy_int8 (copy, r);
        omni_pgcopy_int4 (copy, r);
        omni_pgcopy_float8 (copy, r / 2.0);
        omni_pgcopy_bool (copy, r & 1);
        omni_pgcopy_bytea (copy, &r, sizeof r);
        omni_pgcopy_text_array (copy, items, lens, 2);
        omni_pgcopy_timestamptz_ns (copy, (int64_t) r * 1000000000);
    }
    assert (omni_pgcopy_rows (copy) == 19999);
    assert (omni_pgcopy_end (copy) == PGCONN_OK);
    pgtest_expect (conn, "SELECT count(*) FROM t_copy", "19999");
    char *text = pgtest_value (conn, "SELECT t FROM t_copy WHERE n = 1");
    assert (strcmp (text, hostile) == 0);
    free (text);
    pgtest_expect (conn,
                   "SELECT i8::text || ' ' || i4 || ' ' || f || ' ' || b FROM t_copy "
                   "WHERE n = 1",
                   "-9223372036854775808 -7 0.1 true");
    pgtest_expect (conn, "SELECT encode (by, 'hex') FROM t_copy WHERE n = 1", "00015cff");
    pgtest_expect (conn,
                   "SELECT array_length (arr, 1) || ':' || arr[2] || ':' || arr[3] "
                   "FROM t_copy WHERE n = 1",
                   "3:b,\"c\"\\:");
    pgtest_expect (conn, "SELECT ts::text FROM t_copy WHERE n = 1",
                   "2023-11-14 22:13:20.123456+00");
    pgtest_expect (conn, "SELECT ts::text FROM t_copy WHERE n = 2",
                   "1969-12-31 23:59:59.999998+00");
    pgtest_expect (conn,
                   "SELECT coalesce (array_length (arr, 1), 0) || ':' || (t = '') || ':' "
                   "|| (i8 IS NULL AND by IS NULL) FROM t_copy WHERE n = 2",
                   "0:true:true");
    pgtest_expect (conn, "SELECT sum (i8) FROM t_copy WHERE n > 2", "199989997");
}

//  jsonb: equal to what the server makes of the same text, in both formats
static void
s_test_copy_jsonb (omni_pgconn_t *conn, omni_pgcopy_t *copy, omni_pgcopy_format_t format)
{
    const char *docs[] = {"{\"b\": [1, 2.5, null], \"a\": \"tab\\t \\\\ \xc3\xa9\\n\"}", "[]",
                          "\"\\ufffd\"", "{\"k\":\t{\"x\": true}}"};
    assert (omni_pgconn_exec (conn, "TRUNCATE t_jsonb") == PGCONN_OK);
    assert (omni_pgcopy_begin (copy, conn, "t_jsonb", NULL, format) == 0);
    for (int i = 0; i < 4; i++) {
        omni_pgcopy_row (copy, 3);
        omni_pgcopy_int4 (copy, i);
        omni_pgcopy_text (copy, docs[i], strlen (docs[i]));
        omni_pgcopy_jsonb (copy, docs[i], strlen (docs[i]));
    }
    assert (omni_pgcopy_end (copy) == PGCONN_OK);
    pgtest_expect (conn,
                   "SELECT count (*) FILTER (WHERE j = t::jsonb) || '/' || count (*) "
                   "FROM t_jsonb",
                   "4/4");
    pgtest_expect (conn, "SELECT j->>'a' FROM t_jsonb WHERE n = 0", "tab\t \\ \xc3\xa9\n");
    //  Not JSON: the COPY is refused as content
    assert (omni_pgcopy_begin (copy, conn, "t_jsonb", NULL, format) == 0);
    omni_pgcopy_row (copy, 3);
    omni_pgcopy_int4 (copy, 9);
    omni_pgcopy_text (copy, "{", 1);
    omni_pgcopy_jsonb (copy, "{", 1);
    assert (omni_pgcopy_end (copy) == PGCONN_CONTENT);
}
void
omni_pgcopy_test (bool verbose)
{
    if (!verbose)
        omni_log_init ("pgcopy-test", "error", "kv");
    //  NUL rule
    omni_buf_t scratch = {0};
    size_t len;
    const char *clean = omni_pgcopy_text_clean ("abc", 3, &scratch, &len);
    assert (len == 3 && scratch.data == NULL && memcmp (clean, "abc", 3) == 0);
    clean = omni_pgcopy_text_clean ("a\0b\0", 4, &scratch, &len);
    assert (len == 8 && memcmp (clean,
                                "a\xef\xbf\xbd"
                                "b\xef\xbf\xbd",
                                8) == 0);
    //  Again, shorter: the scratch is reused from its start
    clean = omni_pgcopy_text_clean ("\0", 1, &scratch, &len);
    assert (len == 3 && clean == scratch.data && memcmp (clean, "\xef\xbf\xbd", 4) == 0);
    omni_buf_release (&scratch);
    char json[] = "{\"a\\u0000\":\"\\\\u0000\",\"b\":\"x\\u0000\"}";
    omni_pgcopy_json_clean (json, strlen (json));
    assert (strcmp (json, "{\"a\\ufffd\":\"\\\\u0000\",\"b\":\"x\\ufffd\"}") == 0);

    omni_pgcopy_t *copy = omni_pgcopy_new ();
    //  No connection: refused as transient
    char error[256];
    omni_pgconn_t *conn =
        omni_pgconn_new ("host=127.0.0.1 port=1 connect_timeout=2", error, sizeof error);
    assert (omni_pgcopy_begin (copy, conn, "t", NULL, PGCOPY_TEXT) == -1);
    assert (omni_pgconn_last_status (conn) == PGCONN_TRANSIENT);
    assert (omni_pgcopy_end (copy) == PGCONN_TRANSIENT);
    omni_pgconn_destroy (&conn);

    char *dsn = pgtest_db_new ("pgcopy");
    if (!dsn) {
        omni_pgcopy_destroy (&copy);
        selftest_skip ("no PostgreSQL server ($OMNI_TEST_PG_DSN, else 127.0.0.1:5432)");
    }
    conn = omni_pgconn_new (dsn, error, sizeof error);
    assert (conn);
    assert (omni_pgconn_ensure (conn) == 0);
    assert (omni_pgconn_exec (conn, "SET TIME ZONE 'UTC'") == PGCONN_OK);

    //  COPY in both formats, with every type
    assert (omni_pgconn_exec (conn, "CREATE TABLE t_copy (n int, t text, i8 int8, i4 int4, "
                                    "f float8, b bool, by bytea, arr text[], ts timestamptz)") ==
            PGCONN_OK);
    s_test_copy (conn, copy, PGCOPY_TEXT);
    s_test_copy (conn, copy, PGCOPY_BINARY);
    assert (omni_pgconn_exec (conn, "CREATE TABLE t_jsonb (n int, t text, j jsonb)") == PGCONN_OK);
    s_test_copy_jsonb (conn, copy, PGCOPY_TEXT);
    s_test_copy_jsonb (conn, copy, PGCOPY_BINARY);
    //  A refused COPY reports its class and leaves the connection usable
    assert (omni_pgconn_exec (conn, "CREATE TABLE t_tx (n int PRIMARY KEY)") == PGCONN_OK);
    assert (omni_pgcopy_begin (copy, conn, "t_tx", "n", PGCOPY_BINARY) == 0);
    omni_pgcopy_row (copy, 1);
    omni_pgcopy_int8 (copy, 5); //  int8 bytes into an int4 column
    assert (omni_pgcopy_end (copy) != PGCONN_OK);
    assert (omni_pgconn_exec (conn, "SELECT 1") == PGCONN_OK);
    assert (omni_pgcopy_begin (copy, conn, "no_such_table", "n", PGCOPY_TEXT) == -1);
    assert (omni_pgconn_last_status (conn) == PGCONN_FAILED);

    //  The server ends the session under a COPY: transient, nothing sent
    //  after the loss
    assert (omni_pgcopy_begin (copy, conn, "t_tx", "n", PGCOPY_TEXT) == 0);
    pgtest_end_session (conn, dsn);
    for (int r = 0; r < 100000; r++) {
        omni_pgcopy_row (copy, 1);
        omni_pgcopy_int4 (copy, r);
    }
    assert (omni_pgcopy_end (copy) == PGCONN_TRANSIENT);
    assert (!omni_pgconn_is_up (conn));

    omni_pgcopy_destroy (&copy);
    assert (copy == NULL);
    omni_pgconn_destroy (&conn);
    pgtest_db_drop (dsn);
    free (dsn);
}
