/*  export: archive -> JSON Lines, YAML or CSV (see export.h).

    Why CSV reads the archive twice. A CSV header must name every column
    before the first row, and a kind's records need not all have the same
    body fields (optional fields, custom kinds): the first pass collects the
    column names of each kind, the second writes the rows. Memory is the
    column names, not the records. The first pass is quiet; damage is
    reported once, by the second.                                           */
#include "tools/omnictl/export.h"
#include "common/buf.h"
#include "archiverd/archive.h"
#include "tools/omnictl/jsonrec.h"
#include "common/daemon.h"
#include "common/util.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

static const char *s_envelope[] = {"id", "kind", "src", "col", "run", "ts", NULL};

typedef struct {
    char *kind;
    zlistx_t *columns; //  names, in order of first appearance
    zhashx_t *index;   //  name -> column number + 1
} s_table_t;

typedef struct {
    const export_config_t *config;
    FILE *out;         //  the output (the current kind's file in a directory)
    const char *label; //  for errors: the output's name
    char *dir;         //  csv into a directory: one file a kind
    char path[PATH_MAX];
    jsonrec_t *parser;
    yaml_emitter_t yaml;
    bool yaml_open;
    zhashx_t *tables; //  csv: kind -> s_table_t
    s_table_t *table; //  csv: the kind being written
    json_t **cells;   //  csv: the current row, by column
    size_t cells_cap;
    char name[4096]; //  a flattened column name being built
    bool failed;     //  the output could not be written
} s_export_t;

int
export_format_parse (const char *text, export_format_t *format)
{
    if (strcmp (text, "json") == 0)
        *format = EXPORT_JSON;
    else if (strcmp (text, "yaml") == 0)
        *format = EXPORT_YAML;
    else if (strcmp (text, "csv") == 0)
        *format = EXPORT_CSV;
    else
        return -1;
    return 0;
}

//  Shortest text that reads back as the same double (as mpjson writes
//  it). For YAML, also a '.' before an exponent: YAML 1.1 (PyYAML) only
//  resolves a plain scalar with a '.' to a float.
static void
s_real_text (double value, bool yaml, char *out, size_t size)
{
    for (int precision = 15; precision <= 17; precision++) {
        snprintf (out, size, "%.*g", precision, value);
        if (strtod (out, NULL) == value)
            break;
    }
    char *e = strpbrk (out, "eE");
    if (!strchr (out, '.')) {
        if (!e)
            strncat (out, ".0", size - strlen (out) - 1);
        else if (yaml) {
            char exponent[16];
            snprintf (exponent, sizeof exponent, "%s", e);
            snprintf (e, size - (size_t) (e - out), ".0%s", exponent);
        }
    }
}

static bool
s_is_bin (json_t *value)
{
    return json_is_object (value) && json_object_size (value) == 1 &&
           json_is_string (json_object_get (value, "$bin"));
}

//  ---------------------------------------------------------------------------
//  YAML

static int
s_yaml_write (void *data, unsigned char *buffer, size_t size)
{
    return fwrite (buffer, 1, size, (FILE *) data) == size;
}

static bool
s_emit (s_export_t *self, yaml_event_t *event)
{
    if (self->failed)
        return false;
    if (!yaml_emitter_emit (&self->yaml, event)) {
        fprintf (stderr, "error: omnictl export: %s: %s\n", self->label,
                 self->yaml.error == YAML_WRITER_ERROR ? strerror (errno)
                 : self->yaml.problem                  ? self->yaml.problem
                                                       : "YAML emitter error");
        self->failed = true;
        return false;
    }
    return true;
}

//  Words YAML 1.1 reads as something other than a string when plain.
static bool
s_plain_is_safe (const char *text, size_t len)
{
    static const char *special[] = {"y",     "Y",     "yes",  "Yes",  "YES",  "n",    "N",
                                    "no",    "No",    "NO",   "true", "True", "TRUE", "false",
                                    "False", "FALSE", "on",   "On",   "ON",   "off",  "Off",
                                    "OFF",   "null",  "Null", "NULL", NULL};
    if (len == 0 || !((text[0] >= 'a' && text[0] <= 'z') || (text[0] >= 'A' && text[0] <= 'Z') ||
                      text[0] == '_'))
        return false; //  numbers, dates, ~, .inf, <<, = and the like begin otherwise
    for (const char **w = special; *w; w++)
        if (strlen (*w) == len && memcmp (*w, text, len) == 0)
            return false;
    return true;
}

static bool
s_yaml_scalar (s_export_t *self, const char *tag, const char *text, size_t len, bool plain_ok,
               bool quoted_ok)
{
    yaml_event_t event;
    yaml_scalar_event_initialize (&event, NULL, (yaml_char_t *) tag, (yaml_char_t *) text,
                                  (int) len, plain_ok, quoted_ok, YAML_ANY_SCALAR_STYLE);
    return s_emit (self, &event);
}

static bool
s_yaml_string (s_export_t *self, const char *text, size_t len)
{
    //  Plain only where YAML reads it back as a string; quoted otherwise
    return s_yaml_scalar (self, NULL, text, len, s_plain_is_safe (text, len), true);
}

static bool
s_yaml_node (s_export_t *self, json_t *value)
{
    char text[64];
    yaml_event_t event;
    switch (json_typeof (value)) {
    case JSON_NULL: return s_yaml_scalar (self, NULL, "null", 4, true, false);
    case JSON_TRUE: return s_yaml_scalar (self, NULL, "true", 4, true, false);
    case JSON_FALSE: return s_yaml_scalar (self, NULL, "false", 5, true, false);
    case JSON_INTEGER:
        snprintf (text, sizeof text, "%" JSON_INTEGER_FORMAT, json_integer_value (value));
        return s_yaml_scalar (self, NULL, text, strlen (text), true, false);
    case JSON_REAL:
        s_real_text (json_real_value (value), true, text, sizeof text);
        return s_yaml_scalar (self, NULL, text, strlen (text), true, false);
    case JSON_STRING:
        return s_yaml_string (self, json_string_value (value), json_string_length (value));
    case JSON_ARRAY: {
        yaml_sequence_start_event_initialize (&event, NULL, NULL, 1, YAML_ANY_SEQUENCE_STYLE);
        if (!s_emit (self, &event))
            return false;
        size_t i;
        json_t *item;
        json_array_foreach (value, i, item)
        {
            if (!s_yaml_node (self, item))
                return false;
        }
        yaml_sequence_end_event_initialize (&event);
        return s_emit (self, &event);
    }
    case JSON_OBJECT: {
        if (s_is_bin (value)) {
            json_t *b64 = json_object_get (value, "$bin");
            return s_yaml_scalar (self, "tag:yaml.org,2002:binary", json_string_value (b64),
                                  json_string_length (b64), false, false);
        }
        yaml_mapping_start_event_initialize (&event, NULL, NULL, 1, YAML_ANY_MAPPING_STYLE);
        if (!s_emit (self, &event))
            return false;
        for (void *it = json_object_iter (value); it; it = json_object_iter_next (value, it)) {
            if (!s_yaml_string (self, json_object_iter_key (it), json_object_iter_key_len (it)) ||
                !s_yaml_node (self, json_object_iter_value (it)))
                return false;
        }
        yaml_mapping_end_event_initialize (&event);
        return s_emit (self, &event);
    }
    }
    return false;
}

static bool
s_yaml_begin (s_export_t *self)
{
    yaml_emitter_initialize (&self->yaml);
    yaml_emitter_set_output (&self->yaml, s_yaml_write, self->out);
    yaml_emitter_set_unicode (&self->yaml, 1);
    yaml_emitter_set_width (&self->yaml, -1); //  a long string stays on its line
    self->yaml_open = true;
    yaml_event_t event;
    yaml_stream_start_event_initialize (&event, YAML_UTF8_ENCODING);
    return s_emit (self, &event);
}

static bool
s_yaml_record (s_export_t *self, json_t *record)
{
    yaml_event_t event;
    yaml_document_start_event_initialize (&event, NULL, NULL, NULL, 0);
    if (!s_emit (self, &event) || !s_yaml_node (self, record))
        return false;
    yaml_document_end_event_initialize (&event, 1);
    return s_emit (self, &event);
}

static void
s_yaml_end (s_export_t *self)
{
    if (!self->yaml_open)
        return;
    yaml_event_t event;
    yaml_stream_end_event_initialize (&event);
    if (s_emit (self, &event) && !yaml_emitter_flush (&self->yaml) && !self->failed) {
        fprintf (stderr, "error: omnictl export: %s: %s\n", self->label, strerror (errno));
        self->failed = true;
    }
    yaml_emitter_delete (&self->yaml);
    self->yaml_open = false;
}

//  ---------------------------------------------------------------------------
//  CSV

static void
s_table_destroy (void **item_p)
{
    s_table_t *table = *item_p;
    if (table) {
        zlistx_destroy (&table->columns);
        zhashx_destroy (&table->index);
        free (table->kind);
        free (table);
        *item_p = NULL;
    }
}

static s_table_t *
s_table (s_export_t *self, const char *kind)
{
    s_table_t *table = zhashx_lookup (self->tables, kind);
    if (!table) {
        table = calloc (1, sizeof *table);
        assert (table);
        table->kind = strdup (kind);
        table->columns = zlistx_new ();
        zlistx_set_destructor (table->columns, (zlistx_destructor_fn *) zstr_free);
        zlistx_set_duplicator (table->columns, (zlistx_duplicator_fn *) strdup);
        table->index = zhashx_new ();
        for (const char **e = s_envelope; *e; e++) {
            zlistx_add_end (table->columns, (void *) *e);
            zhashx_insert (table->index, *e, (void *) (uintptr_t) zlistx_size (table->columns));
        }
        zhashx_insert (self->tables, kind, table);
    }
    return table;
}

typedef void (s_column_fn) (s_export_t *self, const char *name, json_t *value);

//  Calls `visit` for every leaf of `object`, named prefix + dotted path.
static void
s_flatten (s_export_t *self, json_t *object, size_t at, bool body, s_column_fn *visit)
{
    for (void *it = json_object_iter (object); it; it = json_object_iter_next (object, it)) {
        const char *key = json_object_iter_key (it);
        json_t *value = json_object_iter_value (it);
        size_t len = json_object_iter_key_len (it);
        if (at + len + 2 > sizeof self->name)
            continue; //  a 4 KiB column name is not a column
        memcpy (self->name + at, key, len);
        self->name[at + len] = 0;
        if (json_is_object (value) && !s_is_bin (value) && json_object_size (value) > 0) {
            self->name[at + len] = '.';
            s_flatten (self, value, at + len + 1, body, visit);
            continue;
        }
        const char *name = self->name;
        char renamed[sizeof self->name + 8];
        if (body) {
            bool clash = strncmp (name, "tags.", 5) == 0;
            for (const char **e = s_envelope; *e && !clash; e++)
                clash = strcmp (name, *e) == 0;
            if (clash) {
                snprintf (renamed, sizeof renamed, "body.%s", name);
                name = renamed;
            }
        }
        visit (self, name, value);
    }
}

//  A record's columns: the envelope's, the body's, the tags'.
static void
s_columns (s_export_t *self, json_t *record, s_column_fn *visit)
{
    for (const char **e = s_envelope; *e; e++) {
        json_t *value = json_object_get (record, *e);
        if (value)
            visit (self, *e, value);
    }
    json_t *body = json_object_get (record, "body");
    if (json_is_object (body))
        s_flatten (self, body, 0, true, visit);
    else if (body)
        visit (self, "body", body);
    json_t *tags = json_object_get (record, "tags");
    if (json_is_object (tags)) {
        memcpy (self->name, "tags.", 5);
        s_flatten (self, tags, 5, false, visit);
    }
}

static void
s_learn_column (s_export_t *self, const char *name, json_t *value)
{
    (void) value;
    if (!zhashx_lookup (self->table->index, name)) {
        zlistx_add_end (self->table->columns, (void *) name);
        zhashx_insert (self->table->index, name,
                       (void *) (uintptr_t) zlistx_size (self->table->columns));
    }
}

static void
s_set_cell (s_export_t *self, const char *name, json_t *value)
{
    size_t column = (size_t) (uintptr_t) zhashx_lookup (self->table->index, name);
    if (column) //  always: the first pass saw every record the second does
        self->cells[column - 1] = value;
}

static void
s_csv_field (FILE *out, const char *text, size_t len)
{
    bool quote = false;
    for (size_t i = 0; i < len && !quote; i++)
        quote = text[i] == ',' || text[i] == '"' || text[i] == '\r' || text[i] == '\n';
    if (!quote) {
        fwrite (text, 1, len, out);
        return;
    }
    fputc ('"', out);
    for (const char *p = text, *end = text + len; p < end;) {
        const char *q = memchr (p, '"', (size_t) (end - p));
        size_t n = q ? (size_t) (q - p) + 1 : (size_t) (end - p);
        fwrite (p, 1, n, out);
        if (q)
            fputc ('"', out);
        p += n;
    }
    fputc ('"', out);
}

static void
s_csv_value (FILE *out, json_t *value)
{
    char text[64];
    switch (value ? json_typeof (value) : JSON_NULL) {
    case JSON_NULL: break;
    case JSON_TRUE: fputs ("true", out); break;
    case JSON_FALSE: fputs ("false", out); break;
    case JSON_INTEGER: fprintf (out, "%" JSON_INTEGER_FORMAT, json_integer_value (value)); break;
    case JSON_REAL:
        s_real_text (json_real_value (value), false, text, sizeof text);
        fputs (text, out);
        break;
    case JSON_STRING:
        s_csv_field (out, json_string_value (value), json_string_length (value));
        break;
    case JSON_OBJECT:
        if (s_is_bin (value)) {
            json_t *b64 = json_object_get (value, "$bin");
            fwrite (json_string_value (b64), 1, json_string_length (b64), out);
            break;
        }
        //  an empty map, as JSON
        __attribute__ ((fallthrough));
    case JSON_ARRAY: {
        char *json = json_dumps (value, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
        if (json)
            s_csv_field (out, json, strlen (json));
        free (json);
        break;
    }
    }
}

//  Starts the table of `kind`: its file when writing into a directory,
//  and its header.
static bool
s_csv_begin (s_export_t *self, const char *kind)
{
    self->table = zhashx_lookup (self->tables, kind);
    assert (self->table);
    if (self->dir) {
        if (self->out && fclose (self->out)) {
            fprintf (stderr, "error: omnictl export: %s: %s\n", self->path, strerror (errno));
            self->out = NULL;
            self->failed = true;
            return false;
        }
        char name[256];
        archive_kind_dir (kind, strlen (kind), name, sizeof name - 4);
        snprintf (self->path, sizeof self->path, "%s/%s.csv", self->dir, name);
        self->label = self->path;
        self->out = fopen (self->path, "w");
        if (!self->out) {
            fprintf (stderr, "error: omnictl export: %s: %s\n", self->path, strerror (errno));
            self->failed = true;
            return false;
        }
    }
    size_t n = zlistx_size (self->table->columns);
    omni_array_reserve (self->cells, self->cells_cap, n);
    size_t i = 0;
    for (const char *c = zlistx_first (self->table->columns); c;
         c = zlistx_next (self->table->columns)) {
        if (i++)
            fputc (',', self->out);
        s_csv_field (self->out, c, strlen (c));
    }
    fputs ("\r\n", self->out);
    return true;
}

static bool
s_csv_record (s_export_t *self, json_t *record)
{
    const char *kind = jsonrec_kind (self->parser);
    if (!self->table || strcmp (self->table->kind, kind) != 0)
        if (!s_csv_begin (self, kind))
            return false;
    size_t n = zlistx_size (self->table->columns);
    memset (self->cells, 0, n * sizeof *self->cells);
    s_columns (self, record, s_set_cell);
    for (size_t i = 0; i < n; i++) {
        if (i)
            fputc (',', self->out);
        s_csv_value (self->out, self->cells[i]);
    }
    fputs ("\r\n", self->out);
    return !ferror (self->out);
}

//  ---------------------------------------------------------------------------

static archread_t *
s_reader (s_export_t *self)
{
    char error[1024];
    archread_t *reader =
        archread_new (self->config->archive_dir, &self->config->filter, error, sizeof error);
    if (!reader)
        fprintf (stderr, "error: omnictl export: %s\n", error);
    return reader;
}

//  The next record the filters keep: true with its line and, for YAML and
//  CSV, its parsed object (JSON writes the line as it is: it is checked,
//  not parsed into a tree); false at the end. Damaged lines are reported
//  (counted) and skipped.
static bool
s_next (s_export_t *self, archread_t *reader, const char **line, size_t *len, json_t **record)
{
    char error[512];
    bool tree = self->config->format != EXPORT_JSON;
    while (archread_next (reader, line, len) == 1) {
        *record = NULL;
        if (tree ? !(*record = jsonrec_parse (self->parser, *line, *len, error, sizeof error))
                 : jsonrec_check (self->parser, *line, *len, error, sizeof error) != 0) {
            archread_bad (reader, error);
            continue;
        }
        if (archread_match (&self->config->filter, jsonrec_kind (self->parser),
                            jsonrec_src (self->parser), jsonrec_ts (self->parser)))
            return true;
    }
    return false;
}

//  CSV's first pass: the columns of every kind. 0, or 2 when several kinds
//  would share one file.
static int
s_csv_learn (s_export_t *self)
{
    archread_t *reader = s_reader (self);
    if (!reader)
        return 2;
    archread_quiet (reader, true);
    const char *line;
    size_t len;
    json_t *record;
    while (s_next (self, reader, &line, &len, &record)) {
        self->table = s_table (self, jsonrec_kind (self->parser));
        s_columns (self, record, s_learn_column);
    }
    archread_destroy (&reader);
    self->table = NULL;
    if (!self->dir && zhashx_size (self->tables) > 1) {
        zlistx_t *kinds = zhashx_keys (self->tables);
        zlistx_set_comparator (kinds, (zlistx_comparator_fn *) strcmp);
        zlistx_sort (kinds);
        char names[1024] = "";
        size_t used = 0;
        for (const char *k = zlistx_first (kinds); k && used < sizeof names;
             k = zlistx_next (kinds))
            used +=
                (size_t) snprintf (names + used, sizeof names - used, "%s%s", used ? ", " : "", k);
        fprintf (stderr,
                 "error: omnictl export: csv: %zu kinds (%s) would share one table: name one "
                 "with --kind, or give -o DIR for a file a kind\n",
                 zhashx_size (self->tables), names);
        zlistx_destroy (&kinds);
        return 2;
    }
    return 0;
}

int
export_run (const export_config_t *config)
{
    s_export_t self;
    memset (&self, 0, sizeof self);
    self.config = config;
    self.parser = jsonrec_new ();
    self.tables = zhashx_new ();
    zhashx_set_destructor (self.tables, s_table_destroy);
    const char *output = config->output ? config->output : "";
    bool to_stdout = !*output || strcmp (output, "-") == 0;
    struct stat st;
    bool is_dir = !to_stdout && ((stat (output, &st) == 0 && S_ISDIR (st.st_mode)) ||
                                 output[strlen (output) - 1] == '/');
    int rc = 0;
    if (is_dir && config->format != EXPORT_CSV) {
        fprintf (stderr,
                 "error: omnictl export: -o %s is a directory: only csv writes a file "
                 "a kind\n",
                 output);
        rc = 2;
        goto done;
    }
    if (is_dir) {
        self.dir = strdup (output);
        size_t n = strlen (self.dir);
        while (n > 1 && self.dir[n - 1] == '/')
            self.dir[--n] = 0;
        if (omni_util_mkdirs (self.dir)) {
            fprintf (stderr, "error: omnictl export: %s: %s\n", self.dir, strerror (errno));
            rc = 1;
            goto done;
        }
    }
    if (config->format == EXPORT_CSV && (rc = s_csv_learn (&self)))
        goto done;
    archread_t *reader = s_reader (&self);
    if (!reader) {
        rc = 2;
        goto done;
    }
    if (to_stdout) {
        self.out = stdout;
        self.label = "stdout";
    } else if (!self.dir) {
        self.label = output;
        if (!(self.out = fopen (output, "w"))) {
            fprintf (stderr, "error: omnictl export: %s: %s\n", output, strerror (errno));
            archread_destroy (&reader);
            rc = 1;
            goto done;
        }
    }
    if (config->format == EXPORT_YAML)
        s_yaml_begin (&self);
    const char *line;
    size_t len;
    json_t *record;
    uint64_t records = 0;
    while (!self.failed && s_next (&self, reader, &line, &len, &record)) {
        bool ok = true;
        switch (config->format) {
        case EXPORT_JSON:
            ok = fwrite (line, 1, len, self.out) == len && fputc ('\n', self.out) != EOF;
            break;
        case EXPORT_YAML: ok = s_yaml_record (&self, record); break;
        case EXPORT_CSV: ok = s_csv_record (&self, record); break;
        }
        if (!ok && !self.failed) {
            fprintf (stderr, "error: omnictl export: %s: %s\n", self.label, strerror (errno));
            self.failed = true;
        }
        records++;
    }
    if (config->format == EXPORT_YAML)
        s_yaml_end (&self);
    uint64_t bad = archread_bad_count (reader);
    archread_destroy (&reader);
    if (self.out && self.out != stdout) {
        if (fclose (self.out) && !self.failed) {
            fprintf (stderr, "error: omnictl export: %s: %s\n", self.label, strerror (errno));
            self.failed = true;
        }
    } else if (self.out && fflush (self.out) && !self.failed) {
        fprintf (stderr, "error: omnictl export: stdout: %s\n", strerror (errno));
        self.failed = true;
    }
    self.out = NULL;
    if (!to_stdout)
        fprintf (stderr, "exported %" PRIu64 " records, %" PRIu64 " damaged lines skipped\n",
                 records, bad);
    rc = self.failed ? OMNI_EXIT_FAILURE : bad ? OMNI_EXIT_DAMAGED : OMNI_EXIT_OK;

done:
    if (self.out && self.out != stdout)
        fclose (self.out);
    jsonrec_destroy (&self.parser);
    zhashx_destroy (&self.tables);
    free (self.cells);
    free (self.dir);
    return rc;
}

//  ---------------------------------------------------------------------------
//  Self-test

#include "testsupport/selftest.h"

static void
s_test_write (const char *root, const char *path, const char *text)
{
    char full[PATH_MAX];
    snprintf (full, sizeof full, "%s/%s", root, path);
    char *slash = strrchr (full, '/');
    *slash = 0;
    omni_util_mkdirs (full);
    *slash = '/';
    FILE *f = fopen (full, "wb");
    assert (f);
    fputs (text, f);
    fclose (f);
}

static char *
s_test_run (const char *archive, const char *out, export_format_t format, const char *kind,
            int expect_rc)
{
    const char *kinds[] = {kind, NULL};
    export_config_t config = {
        archive, {kind ? kinds : NULL, NULL, INT64_MIN, INT64_MAX}, format, out};
    int rc = export_run (&config);
    assert (rc == expect_rc);
    FILE *f = fopen (out, "rb");
    if (!f)
        return NULL;
    static char text[65536];
    size_t n = fread (text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose (f);
    return strdup (text);
}

void
export_test (bool verbose)
{
    (void) verbose;
    char text[64];
    s_real_text (1.5, true, text, sizeof text);
    assert (streq (text, "1.5"));
    s_real_text (1e300, true, text, sizeof text);
    assert (streq (text, "1.0e+300"));
    s_real_text (1e300, false, text, sizeof text);
    assert (streq (text, "1e+300"));
    s_real_text (42, false, text, sizeof text);
    assert (streq (text, "42.0"));
    s_real_text (0.1, false, text, sizeof text);
    assert (streq (text, "0.1"));
    assert (s_plain_is_safe ("metric", 6) && !s_plain_is_safe ("yes", 3) &&
            !s_plain_is_safe ("12", 2) && !s_plain_is_safe ("", 0) &&
            !s_plain_is_safe ("2024-01-01", 10));

    char *tmp = selftest_tmpdir ("export-test");
    char archive[PATH_MAX], out[PATH_MAX];
    snprintf (archive, sizeof archive, "%s/archive", tmp);
    const char *m1 = "{\"v\":1,\"id\":\"00000000000000000000000000000001\",\"kind\":\"metric\","
                     "\"src\":\"h\",\"col\":\"c\",\"run\":\"r\",\"ts\":1700000000000000000,"
                     "\"body\":{\"name\":\"cpu\",\"value\":1.5,\"labels\":{\"core\":\"0\"}}}";
    const char *m2 = "{\"v\":1,\"id\":\"00000000000000000000000000000002\",\"kind\":\"metric\","
                     "\"src\":\"h\",\"col\":\"c\",\"run\":\"r\",\"ts\":1700000000000000001,"
                     "\"body\":{\"name\":\"a,\\\"b\\\"\\nc\",\"value\":2,\"id\":\"x\","
                     "\"raw\":{\"$bin\":\"AAE=\"},\"list\":[1,\"x\"]},\"tags\":{\"env\":\"p\"}}";
    char both[4096];
    snprintf (both, sizeof both, "%s\n%s\nnot json\n", m1, m2);
    s_test_write (archive, "metric/2023-11-14.jsonl", both);
    s_test_write (archive, "x.a/2023-11-14.jsonl",
                  "{\"v\":1,\"id\":\"00000000000000000000000000000003\",\"kind\":\"x.a\","
                  "\"src\":\"s\",\"col\":\"c\",\"run\":\"r\",\"ts\":1700000000000000002,"
                  "\"body\":{\"n\":\"12\",\"ok\":true,\"none\":null}}\n");

    //  JSON: the lines as archived, the damaged one reported and skipped.
    snprintf (out, sizeof out, "%s/out.jsonl", tmp);
    char *got = s_test_run (archive, out, EXPORT_JSON, "metric", 3);
    snprintf (both, sizeof both, "%s\n%s\n", m1, m2);
    assert (streq (got, both));
    free (got);

    //  CSV: header, quoting, flattening, a body field named like the envelope.
    snprintf (out, sizeof out, "%s/out.csv", tmp);
    got = s_test_run (archive, out, EXPORT_CSV, "metric", 3);
    const char *csv =
        "id,kind,src,col,run,ts,name,value,labels.core,body.id,raw,list,tags.env\r\n"
        "00000000000000000000000000000001,metric,h,c,r,1700000000000000000,cpu,1.5,0,,,,\r\n"
        "00000000000000000000000000000002,metric,h,c,r,1700000000000000001,"
        "\"a,\"\"b\"\"\nc\",2,,x,AAE=,\"[1,\"\"x\"\"]\",p\r\n";
    if (!streq (got, csv))
        fprintf (stderr, "%s", got);
    assert (streq (got, csv));
    free (got);
    //  Two kinds into one file: refused; into a directory: a file each.
    got = s_test_run (archive, out, EXPORT_CSV, NULL, 2);
    free (got);
    snprintf (out, sizeof out, "%s/tables/", tmp);
    free (s_test_run (archive, out, EXPORT_CSV, NULL, 3));
    snprintf (out, sizeof out, "%s/tables/x.a.csv", tmp);
    got = s_test_run (archive, out, EXPORT_CSV, "x.a", 0);
    assert (streq (got, "id,kind,src,col,run,ts,n,ok,none\r\n"
                        "00000000000000000000000000000003,x.a,s,c,r,1700000000000000002,12,true,"
                        "\r\n"));
    free (got);

    //  YAML: a document a record, types kept.
    snprintf (out, sizeof out, "%s/out.yaml", tmp);
    got = s_test_run (archive, out, EXPORT_YAML, "x.a", 0);
    const char *yaml = "---\nv: 1\nid: '00000000000000000000000000000003'\nkind: x.a\nsrc: s\n"
                       "col: c\nrun: r\nts: 1700000000000000002\nbody:\n  'n': '12'\n  ok: true\n"
                       "  none: null\n";
    if (!streq (got, yaml))
        fprintf (stderr, "%s", got);
    assert (streq (got, yaml));
    free (got);
    got = s_test_run (archive, out, EXPORT_YAML, "metric", 3);
    assert (strstr (got, "raw: !!binary AAE=\n") && strstr (got, "value: 1.5\n") &&
            strstr (got, "value: 2\n"));
    free (got);

    selftest_rmtree (tmp);
    free (tmp);
}
