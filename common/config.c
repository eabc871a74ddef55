/*  config: one YAML file shared by all daemons, a top-level section each
    (plus `common`, applied to every daemon before its own section). Every key
    can be overridden by the environment, OMNI_<SECTION>_<KEY>, then by a
    command-line flag. Precedence: default < file common < file section <
    env < flag.

    Keys unknown in the daemon's own section are errors (a typo there would
    otherwise silently keep a default); in `common` they are ignored because
    that section also holds keys for the other daemons. The other sections'
    keys are not looked at, but their names are: one file serves every
    program, so a top-level name that no program reads is a typo (`ingestdd:`)
    whose settings would silently not apply.

    Durations and sizes carry their unit: `--flush-interval 5` once meant
    5 ms to the program and 5 s to the person who wrote it. Only 0 needs none.

    STRING and LIST values are owned by the object: a target points into it
    and is valid until the value is replaced or the object destroyed. A LIST
    with no default is an empty list, never NULL, so callers can iterate it. */
#include "common/config.h"
#include "testsupport/selftest.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#ifndef OMNI_VERSION
#define OMNI_VERSION "unknown"
#endif

//  Every program's section: a new program adds its own here.
static const char *s_sections[] = {"common",       "ingestd",   "collectord",  "archiverd",
                                   "relationald",  "documentd", "metricsd",    "omni-tap",
                                   "omni-loadgen", "omnictl",   "omni-report", NULL};

typedef struct {
    const char *origin; //  "default", "file", "env" or "flag"
    char *string;       //  CONFIG_STRING value, owned
    char **list;        //  CONFIG_LIST value, owned, NULL-terminated
} s_state_t;

struct _omni_config_t {
    char *section;
    const omni_config_option_t *options;
    size_t noptions;
    s_state_t *state;
    char **args; //  positional arguments, owned
    size_t nargs;
    size_t help_count; //  options shown by --help (the first ones)
};

//  Where a value comes from, for error messages and omni_config_origin.
typedef struct {
    const char *origin;  //  "default", "file", "env" or "flag"
    const char *section; //  "common" or the daemon's section
    const char *where;   //  file path, variable name or flag as given
    size_t line;         //  file only, 1-based
} s_source_t;

static void
s_print_source (const s_source_t *source)
{
    if (strcmp (source->origin, "file") == 0)
        fprintf (stderr, " [from file %s:%zu]\n", source->where, source->line);
    else if (source->where)
        fprintf (stderr, " [from %s %s]\n", source->origin, source->where);
    else
        fprintf (stderr, " [from %s]\n", source->origin);
}

//  Keys compare with '-' and '_' as the same character, so that flags and
//  YAML keys can use either spelling.
static bool
s_key_equal (const char *a, const char *b, size_t blen)
{
    size_t i = 0;
    for (; i < blen && a[i]; i++) {
        char ca = a[i] == '-' ? '_' : a[i];
        char cb = b[i] == '-' ? '_' : b[i];
        if (ca != cb)
            return false;
    }
    return i == blen && a[i] == 0;
}

static int
s_find (omni_config_t *self, const char *key, size_t len)
{
    for (size_t i = 0; i < self->noptions; i++)
        if (s_key_equal (self->options[i].key, key, len))
            return (int) i;
    return -1;
}

static void
s_free_list (char **list)
{
    if (list) {
        for (char **item = list; *item; item++)
            free (*item);
        free (list);
    }
}

static void *
s_alloc (size_t size)
{
    void *data = calloc (1, size ? size : 1);
    if (!data) {
        fprintf (stderr, "error: config: out of memory\n");
        abort ();
    }
    return data;
}

static char *
s_strdup (const char *text)
{
    size_t len = strlen (text);
    char *copy = s_alloc (len + 1);
    memcpy (copy, text, len);
    return copy;
}

//  --------------------------------------------------------------------------
//  Value parsing

static bool
s_parse_int (const char *text, int64_t *value)
{
    if (!*text || isspace ((unsigned char) *text))
        return false;
    char *end;
    errno = 0;
    long long parsed = strtoll (text, &end, 10);
    if (errno || *end)
        return false;
    *value = parsed;
    return true;
}

static bool
s_parse_bool (const char *text, bool *value)
{
    static const char *yes[] = {"true", "yes", "on", "1"};
    static const char *no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp (text, yes[i]) == 0) {
            *value = true;
            return true;
        }
        if (strcasecmp (text, no[i]) == 0) {
            *value = false;
            return true;
        }
    }
    return false;
}

//  Leading decimal digits without sign; returns the rest, or NULL.
static const char *
s_parse_digits (const char *text, uint64_t *value)
{
    if (*text < '0' || *text > '9')
        return NULL;
    uint64_t parsed = 0;
    while (*text >= '0' && *text <= '9') {
        unsigned digit = (unsigned) (*text - '0');
        if (parsed > (UINT64_MAX - digit) / 10)
            return NULL;
        parsed = parsed * 10 + digit;
        text++;
    }
    *value = parsed;
    return text;
}

//  512, 64k, 16M, 2G, 1T, in powers of 1024; "KB", "KiB" and a trailing
//  "B" are accepted too since people write them.
static bool
s_parse_size (const char *text, uint64_t *value)
{
    uint64_t number;
    const char *unit = s_parse_digits (text, &number);
    if (!unit)
        return false;
    uint64_t scale = 1;
    const char *scales = "kmgt";
    const char *found = *unit ? strchr (scales, tolower ((unsigned char) *unit)) : NULL;
    if (found) {
        for (const char *s = scales; s <= found; s++)
            scale *= 1024;
        unit++;
        if (strcasecmp (unit, "ib") == 0)
            unit += 2;
    } else if (*unit == 0 && number != 0)
        return false; //  bytes are written 512B: a bare 512 may mean anything
    if (strcasecmp (unit, "b") == 0)
        unit++;
    if (*unit)
        return false;
    if (number > UINT64_MAX / scale)
        return false;
    *value = number * scale;
    return true;
}

//  250ms, 5s, 2m, 1h, 1d; a bare number only for 0.
static bool
s_parse_duration (const char *text, int64_t *value)
{
    uint64_t number;
    const char *unit = s_parse_digits (text, &number);
    if (!unit)
        return false;
    uint64_t scale;
    if (*unit == 0 && number == 0)
        scale = 1;
    else if (strcmp (unit, "ms") == 0)
        scale = 1;
    else if (strcmp (unit, "s") == 0)
        scale = 1000;
    else if (strcmp (unit, "m") == 0)
        scale = 60 * 1000;
    else if (strcmp (unit, "h") == 0)
        scale = 3600 * 1000;
    else if (strcmp (unit, "d") == 0)
        scale = 24 * 3600 * 1000;
    else
        return false;
    if (number > (uint64_t) INT64_MAX / scale)
        return false;
    *value = (int64_t) (number * scale);
    return true;
}

//  What libzmq would refuse with a bare "Invalid argument" at bind or
//  connect time, said at start-up with the key: the transport and, for tcp,
//  a host and a numeric port (or * to bind any).
bool
omni_config_valid_endpoint (const char *text)
{
    if (strncmp (text, "ipc://", 6) == 0)
        return text[6] != 0;
    if (strncmp (text, "inproc://", 9) == 0)
        return text[9] != 0;
    if (strncmp (text, "tcp://", 6) != 0)
        return false;
    const char *host = text + 6;
    const char *colon = strrchr (host, ':');
    if (!colon || colon == host)
        return false;
    const char *port = colon + 1;
    if (strcmp (port, "*") == 0)
        return true;
    uint64_t number;
    const char *rest = s_parse_digits (port, &number);
    return rest && *rest == 0 && number <= 65535;
}

//  "a, b,,c" -> {"a", "b", "c", NULL}: items are trimmed, empty ones dropped.
static char **
s_split (const char *text)
{
    size_t count = 1;
    for (const char *p = text; *p; p++)
        count += *p == ',';
    char **list = s_alloc ((count + 1) * sizeof (char *));
    size_t n = 0;
    const char *p = text;
    while (true) {
        const char *end = strchr (p, ',');
        if (!end)
            end = p + strlen (p);
        const char *start = p, *stop = end;
        while (start < stop && isspace ((unsigned char) *start))
            start++;
        while (stop > start && isspace ((unsigned char) stop[-1]))
            stop--;
        if (stop > start) {
            list[n] = s_alloc ((size_t) (stop - start) + 1);
            memcpy (list[n], start, (size_t) (stop - start));
            n++;
        }
        if (!*end)
            break;
        p = end + 1;
    }
    list[n] = NULL;
    return list;
}

static void
s_set_list (omni_config_t *self, size_t index, char **list, const char *origin)
{
    s_free_list (self->state[index].list);
    self->state[index].list = list;
    self->state[index].origin = origin;
    if (self->options[index].target)
        *(char ***) self->options[index].target = list;
}

static void
s_set_string (omni_config_t *self, size_t index, char *string, const char *origin)
{
    free (self->state[index].string);
    self->state[index].string = string;
    self->state[index].origin = origin;
    if (self->options[index].target)
        *(char **) self->options[index].target = string;
}

static int
s_bad_value (omni_config_t *self, size_t index, const char *text, const char *expected,
             const s_source_t *source)
{
    fprintf (stderr, "error: %s.%s: bad value \"%s\" (%s)", source->section,
             self->options[index].key, text, expected);
    s_print_source (source);
    return -1;
}

#define S_ENDPOINT_EXPECTED "expected an endpoint: tcp://HOST:PORT, ipc://PATH or inproc://NAME"

//  CONFIG_ENDPOINTS: every item checked, at least one, kept as one text
//  joined by commas. Takes `list`.
static int
s_set_endpoints (omni_config_t *self, size_t index, char **list, const s_source_t *source)
{
    size_t size = 1;
    for (char **item = list; *item; item++) {
        if (!omni_config_valid_endpoint (*item)) {
            int rc = s_bad_value (self, index, *item, S_ENDPOINT_EXPECTED, source);
            s_free_list (list);
            return rc;
        }
        size += strlen (*item) + 1;
    }
    if (!*list) {
        s_free_list (list);
        return s_bad_value (self, index, "", "expected one or more endpoints, separated by commas",
                            source);
    }
    char *joined = s_alloc (size);
    for (char **item = list; *item; item++) {
        if (item != list)
            strcat (joined, ",");
        strcat (joined, *item);
    }
    s_free_list (list);
    s_set_string (self, index, joined, source->origin);
    return 0;
}

//  Sets an option from text as found in a flag, variable, default or YAML
//  scalar. Returns -1 after printing an error on a bad value.
static int
s_apply (omni_config_t *self, size_t index, const char *text, const s_source_t *source)
{
    const omni_config_option_t *option = &self->options[index];
    void *target = option->target;
    switch (option->type) {
    case CONFIG_STRING: s_set_string (self, index, s_strdup (text), source->origin); return 0;
    case CONFIG_ENDPOINT:
        if (!omni_config_valid_endpoint (text))
            return s_bad_value (self, index, text, S_ENDPOINT_EXPECTED, source);
        s_set_string (self, index, s_strdup (text), source->origin);
        return 0;
    case CONFIG_ENDPOINTS: return s_set_endpoints (self, index, s_split (text), source);
    case CONFIG_LIST: s_set_list (self, index, s_split (text), source->origin); return 0;
    case CONFIG_INT: {
        int64_t value;
        if (!s_parse_int (text, &value))
            return s_bad_value (self, index, text, "expected an integer", source);
        if (target)
            *(int64_t *) target = value;
        break;
    }
    case CONFIG_BOOL: {
        bool value;
        if (!s_parse_bool (text, &value))
            return s_bad_value (self, index, text, "expected true or false", source);
        if (target)
            *(bool *) target = value;
        break;
    }
    case CONFIG_SIZE: {
        uint64_t value;
        if (!s_parse_size (text, &value))
            return s_bad_value (self, index, text,
                                "expected a size with its unit: 512B, 64k, 16M, 2G", source);
        if (target)
            *(uint64_t *) target = value;
        break;
    }
    case CONFIG_DURATION: {
        int64_t value;
        if (!s_parse_duration (text, &value))
            return s_bad_value (self, index, text,
                                "expected a duration with its unit: 250ms, 5s, 2m, 1h, 1d", source);
        if (target)
            *(int64_t *) target = value;
        break;
    }
    default:
        fprintf (stderr, "error: %s.%s: unknown option type %d\n", source->section, option->key,
                 (int) option->type);
        return -1;
    }
    self->state[index].origin = source->origin;
    return 0;
}

//  --------------------------------------------------------------------------
//  The YAML file

static const char *
s_scalar (yaml_node_t *node)
{
    return (const char *) node->data.scalar.value;
}

//  `key:`, `key: ~` and `key: null` (unquoted) are YAML nulls.
static bool
s_is_null (yaml_node_t *node)
{
    if (node->type != YAML_SCALAR_NODE || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *text = s_scalar (node);
    return !*text || strcmp (text, "~") == 0 || strcmp (text, "null") == 0 ||
           strcmp (text, "Null") == 0 || strcmp (text, "NULL") == 0;
}

static int
s_load_value (omni_config_t *self, size_t index, yaml_document_t *doc, yaml_node_t *node,
              const s_source_t *source)
{
    const omni_config_option_t *option = &self->options[index];
    if (node->type == YAML_SCALAR_NODE) {
        if (s_is_null (node)) {
            //  A null unsets a string or empties a list; other types need a value
            if (option->type == CONFIG_STRING) {
                s_set_string (self, index, NULL, source->origin);
                return 0;
            }
            if (option->type == CONFIG_LIST) {
                s_set_list (self, index, s_alloc (sizeof (char *)), source->origin);
                return 0;
            }
        }
        return s_apply (self, index, s_scalar (node), source);
    }
    if (node->type == YAML_SEQUENCE_NODE &&
        (option->type == CONFIG_LIST || option->type == CONFIG_ENDPOINTS)) {
        yaml_node_item_t *start = node->data.sequence.items.start;
        size_t count = (size_t) (node->data.sequence.items.top - start);
        char **list = s_alloc ((count + 1) * sizeof (char *));
        for (size_t i = 0; i < count; i++) {
            yaml_node_t *item = yaml_document_get_node (doc, start[i]);
            if (!item || item->type != YAML_SCALAR_NODE) {
                fprintf (stderr,
                         "error: %s.%s: list items must be plain values [from file %s:%zu]\n",
                         source->section, option->key, source->where,
                         item ? item->start_mark.line + 1 : source->line);
                s_free_list (list);
                return -1;
            }
            list[i] = s_strdup (s_scalar (item));
        }
        if (option->type == CONFIG_ENDPOINTS)
            return s_set_endpoints (self, index, list, source);
        s_set_list (self, index, list, source->origin);
        return 0;
    }
    fprintf (stderr, "error: %s.%s: expected a single value, not a %s", source->section,
             option->key, node->type == YAML_SEQUENCE_NODE ? "list" : "mapping");
    s_print_source (source);
    return -1;
}

static int
s_load_section (omni_config_t *self, yaml_document_t *doc, yaml_node_t *node, const char *section,
                const char *path, bool strict)
{
    if (s_is_null (node))
        return 0;
    if (node->type != YAML_MAPPING_NODE) {
        fprintf (stderr, "error: %s:%zu: section \"%s\" must be a mapping of keys to values\n",
                 path, node->start_mark.line + 1, section);
        return -1;
    }
    for (yaml_node_pair_t *pair = node->data.mapping.pairs.start;
         pair < node->data.mapping.pairs.top; pair++) {
        yaml_node_t *key = yaml_document_get_node (doc, pair->key);
        yaml_node_t *value = yaml_document_get_node (doc, pair->value);
        if (!key || !value)
            continue;
        if (key->type != YAML_SCALAR_NODE) {
            fprintf (stderr, "error: %s:%zu: keys of section \"%s\" must be plain names\n", path,
                     key->start_mark.line + 1, section);
            return -1;
        }
        const char *name = s_scalar (key);
        int index = s_find (self, name, strlen (name));
        if (index < 0) {
            if (!strict)
                continue;
            fprintf (stderr, "error: %s.%s: unknown key [from file %s:%zu]\n", section, name, path,
                     key->start_mark.line + 1);
            return -1;
        }
        s_source_t source = {"file", section, path, value->start_mark.line + 1};
        if (s_load_value (self, (size_t) index, doc, value, &source))
            return -1;
    }
    return 0;
}

static bool
s_known_section (omni_config_t *self, const char *name)
{
    if (strcmp (name, self->section) == 0)
        return true;
    for (size_t i = 0; s_sections[i]; i++)
        if (strcmp (name, s_sections[i]) == 0)
            return true;
    return false;
}

//  Levenshtein distance, for "did you mean": sections are short.
static size_t
s_distance (const char *a, const char *b)
{
    size_t la = strlen (a), lb = strlen (b);
    if (la > 63 || lb > 63)
        return SIZE_MAX;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diagonal = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t above = row[j];
            size_t best = diagonal + (a[i - 1] != b[j - 1]);
            if (above + 1 < best)
                best = above + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diagonal = above;
        }
    }
    return row[lb];
}

static const char *
s_nearest_section (omni_config_t *self, const char *name)
{
    const char *best = NULL;
    size_t best_distance = 3; //  further than two edits is not a typo
    for (size_t i = 0; s_sections[i]; i++) {
        size_t d = s_distance (name, s_sections[i]);
        if (d < best_distance) {
            best = s_sections[i];
            best_distance = d;
        }
    }
    size_t own = s_distance (name, self->section);
    return own < best_distance ? self->section : best;
}

static int
s_load_file (omni_config_t *self, const char *path)
{
    FILE *file = fopen (path, "rb");
    if (!file) {
        fprintf (stderr, "error: config file %s: %s\n", path, strerror (errno));
        return -1;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize (&parser)) {
        fclose (file);
        fprintf (stderr, "error: config file %s: out of memory\n", path);
        return -1;
    }
    yaml_parser_set_input_file (&parser, file);
    if (!yaml_parser_load (&parser, &doc)) {
        fprintf (stderr, "error: %s:%zu: %s%s%s\n", path, parser.problem_mark.line + 1,
                 parser.problem ? parser.problem : "cannot parse YAML", parser.context ? " " : "",
                 parser.context ? parser.context : "");
        yaml_parser_delete (&parser);
        fclose (file);
        return -1;
    }
    int rc = 0;
    yaml_node_t *root = yaml_document_get_root_node (&doc);
    if (root && !s_is_null (root)) {
        if (root->type != YAML_MAPPING_NODE) {
            fprintf (stderr, "error: %s:%zu: the top level must be a mapping of sections\n", path,
                     root->start_mark.line + 1);
            rc = -1;
        }
        for (yaml_node_pair_t *pair = root->data.mapping.pairs.start;
             rc == 0 && root->type == YAML_MAPPING_NODE && pair < root->data.mapping.pairs.top;
             pair++) {
            yaml_node_t *key = yaml_document_get_node (&doc, pair->key);
            if (key && key->type == YAML_SCALAR_NODE && !s_known_section (self, s_scalar (key))) {
                const char *near = s_nearest_section (self, s_scalar (key));
                fprintf (stderr, "error: %s:%zu: unknown section \"%s\"%s%s%s (sections: ", path,
                         key->start_mark.line + 1, s_scalar (key), near ? " (did you mean \"" : "",
                         near ? near : "", near ? "\"?)" : "");
                for (size_t i = 0; s_sections[i]; i++)
                    fprintf (stderr, "%s%s", i ? ", " : "", s_sections[i]);
                fprintf (stderr, ")\n");
                rc = -1;
            }
        }
        //  `common` first, then the daemon's own section, whatever their
        //  order in the file
        const char *passes[] = {"common", self->section};
        size_t npasses = strcmp (self->section, "common") == 0 ? 1 : 2;
        for (size_t pass = 0; rc == 0 && pass < npasses; pass++) {
            for (yaml_node_pair_t *pair = root->data.mapping.pairs.start;
                 rc == 0 && pair < root->data.mapping.pairs.top; pair++) {
                yaml_node_t *key = yaml_document_get_node (&doc, pair->key);
                yaml_node_t *value = yaml_document_get_node (&doc, pair->value);
                if (key && value && key->type == YAML_SCALAR_NODE &&
                    strcmp (s_scalar (key), passes[pass]) == 0)
                    rc = s_load_section (self, &doc, value, passes[pass], path,
                                         strcmp (passes[pass], self->section) == 0);
            }
        }
    }
    yaml_document_delete (&doc);
    yaml_parser_delete (&parser);
    fclose (file);
    return rc;
}

//  --------------------------------------------------------------------------

//  OMNI_<SECTION>_<KEY>: upper case, anything not alphanumeric as '_'; a
//  section named omni-x is OMNI_X_ (not OMNI_OMNI_X_).
static void
s_env_name (omni_config_t *self, const char *key, char *name, size_t size)
{
    const char *section = self->section;
    if (strncmp (section, "omni-", 5) == 0)
        section += 5;
    snprintf (name, size, "OMNI_%s_%s", section, key);
    for (char *p = name; *p; p++)
        *p = isalnum ((unsigned char) *p) ? (char) toupper ((unsigned char) *p) : '_';
}

static const char *s_type_hints[] = {"TEXT",     "INT",  "BOOL",     "SIZE",
                                     "DURATION", "LIST", "ENDPOINT", "ENDPOINT[,...]"};

static const char *
s_program (omni_config_t *self, const char *program)
{
    const char *base = program ? strrchr (program, '/') : NULL;
    return base ? base + 1 : program ? program : self->section;
}

static void
s_print_help (omni_config_t *self, const char *program)
{
    const char *base = s_program (self, program);
    printf ("usage: %s [--config FILE] [OPTION...] [ARG...]\n\n", base);
    printf ("Options are read from section \"%s\" (after \"common\") of the YAML file given\n"
            "by --config or $OMNI_CONFIG, then from the environment, then from flags.\n\n",
            self->section);
    for (size_t i = 0; i < self->help_count; i++) {
        const omni_config_option_t *option = &self->options[i];
        char flag[128];
        snprintf (flag, sizeof flag, "--%s%s%s", option->key,
                  option->type == CONFIG_BOOL ? "[=" : " ",
                  option->type == CONFIG_BOOL ? "BOOL]" : s_type_hints[option->type]);
        for (char *p = flag + 2; *p && *p != ' ' && *p != '['; p++)
            if (*p == '_')
                *p = '-';
        char env[128];
        s_env_name (self, option->key, env, sizeof env);
        printf ("  %-30s %s\n", flag, option->help ? option->help : "");
        printf ("  %-30s (default: %s; env %s)\n", "",
                option->default_value ? option->default_value : "none", env);
    }
    printf ("  %-30s %s\n", "--config FILE", "the configuration file");
    printf ("  %-30s %s\n", "--help", "this text");
    printf ("  %-30s %s\n", "--version", "the version of OmniAudit");
}

omni_config_t *
omni_config_new (const char *section, const omni_config_option_t *options)
{
    assert (section);
    assert (options);
    omni_config_t *self = s_alloc (sizeof *self);
    self->section = s_strdup (section);
    self->options = options;
    while (options[self->noptions].key)
        self->noptions++;
    self->help_count = self->noptions;
    self->state = s_alloc (self->noptions * sizeof (s_state_t));
    for (size_t i = 0; i < self->noptions; i++)
        self->state[i].origin = "default";
    return self;
}

static void
s_free_args (omni_config_t *self)
{
    for (size_t i = 0; i < self->nargs; i++)
        free (self->args[i]);
    free (self->args);
    self->args = NULL;
    self->nargs = 0;
}

void
omni_config_destroy (omni_config_t **self_p)
{
    assert (self_p);
    omni_config_t *self = *self_p;
    if (!self)
        return;
    //  Targets are left alone: they may already be gone; they dangle now
    for (size_t i = 0; i < self->noptions; i++) {
        free (self->state[i].string);
        s_free_list (self->state[i].list);
    }
    free (self->state);
    s_free_args (self);
    free (self->section);
    free (self);
    *self_p = NULL;
}

typedef struct {
    size_t index;
    const char *value;
    const char *flag; //  as given, for messages
} s_flag_t;

int
omni_config_load (omni_config_t *self, int argc, char **argv)
{
    assert (self);
    s_free_args (self);
    self->args = s_alloc ((argc > 0 ? (size_t) argc : 1) * sizeof (char *));
    s_flag_t *flags = s_alloc ((argc > 0 ? (size_t) argc : 1) * sizeof (s_flag_t));
    size_t nflags = 0;
    const char *config_file = NULL;
    int rc = 0;

    //  Flags are parsed first, to find --config and --help and to reject a
    //  bad command line early, and applied last
    bool flags_done = false;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *arg = argv[i];
        if (flags_done || arg[0] != '-' || arg[1] == 0) {
            self->args[self->nargs++] = s_strdup (arg);
            continue;
        }
        if (strcmp (arg, "--") == 0) {
            flags_done = true;
            continue;
        }
        if (strcmp (arg, "--help") == 0 || strcmp (arg, "-h") == 0) {
            s_print_help (self, argc > 0 ? argv[0] : NULL);
            rc = 1;
            break;
        }
        if (strcmp (arg, "--version") == 0) {
            printf ("%s %s\n", s_program (self, argc > 0 ? argv[0] : NULL), OMNI_VERSION);
            rc = 2;
            break;
        }
        if (arg[1] != '-') {
            fprintf (stderr, "error: unknown flag %s (options are --key=value; see --help)\n", arg);
            rc = -1;
            break;
        }
        const char *name = arg + 2;
        const char *equals = strchr (name, '=');
        size_t name_len = equals ? (size_t) (equals - name) : strlen (name);
        const char *value = equals ? equals + 1 : NULL;
        if (s_key_equal ("config", name, name_len)) {
            if (!value && i + 1 < argc)
                value = argv[++i];
            if (!value || !*value) {
                fprintf (stderr, "error: flag --config needs a file name\n");
                rc = -1;
            }
            config_file = value;
            continue;
        }
        int index = s_find (self, name, name_len);
        if (index < 0 && name_len > 3 && !value &&
            (strncmp (name, "no-", 3) == 0 || strncmp (name, "no_", 3) == 0)) {
            //  --no-key for a boolean
            index = s_find (self, name + 3, name_len - 3);
            if (index >= 0 && self->options[index].type == CONFIG_BOOL)
                value = "false";
            else
                index = -1;
        }
        if (index < 0) {
            fprintf (stderr, "error: unknown flag --%.*s (see --help)\n", (int) name_len, name);
            rc = -1;
            break;
        }
        if (!value) {
            if (self->options[index].type == CONFIG_BOOL)
                value = "true";
            else if (i + 1 < argc)
                value = argv[++i];
            else {
                fprintf (stderr, "error: flag --%.*s needs a value\n", (int) name_len, name);
                rc = -1;
                break;
            }
        }
        flags[nflags++] = (s_flag_t){(size_t) index, value, arg};
    }

    //  Defaults
    for (size_t i = 0; i < self->noptions && rc == 0; i++) {
        const omni_config_option_t *option = &self->options[i];
        s_source_t source = {"default", self->section, NULL, 0};
        if (option->default_value)
            rc = s_apply (self, i, option->default_value, &source);
        else if (option->type == CONFIG_STRING || option->type == CONFIG_ENDPOINT ||
                 option->type == CONFIG_ENDPOINTS)
            s_set_string (self, i, NULL, "default");
        else if (option->type == CONFIG_LIST)
            s_set_list (self, i, s_alloc (sizeof (char *)), "default");
        else
            self->state[i].origin = "default";
    }

    //  The file
    if (rc == 0 && !config_file) {
        const char *env = getenv ("OMNI_CONFIG");
        if (env && *env)
            config_file = env;
    }
    if (rc == 0 && config_file)
        rc = s_load_file (self, config_file);

    //  The environment
    for (size_t i = 0; i < self->noptions && rc == 0; i++) {
        char name[256];
        s_env_name (self, self->options[i].key, name, sizeof name);
        const char *value = getenv (name);
        if (value) {
            s_source_t source = {"env", self->section, name, 0};
            rc = s_apply (self, i, value, &source);
        }
    }

    //  Flags, in order: the last one given wins
    for (size_t i = 0; i < nflags && rc == 0; i++) {
        s_source_t source = {"flag", self->section, flags[i].flag, 0};
        rc = s_apply (self, flags[i].index, flags[i].value, &source);
    }
    free (flags);
    return rc;
}

void
omni_config_set_help_count (omni_config_t *self, size_t count)
{
    assert (self);
    self->help_count = count < self->noptions ? count : self->noptions;
}

const char *
omni_config_version (void)
{
    return OMNI_VERSION;
}

bool
omni_config_parse_duration (const char *text, int64_t *ms)
{
    return s_parse_duration (text, ms);
}

size_t
omni_config_argc (omni_config_t *self)
{
    assert (self);
    return self->nargs;
}

const char *
omni_config_arg (omni_config_t *self, size_t index)
{
    assert (self);
    return index < self->nargs ? self->args[index] : NULL;
}

const char *
omni_config_origin (omni_config_t *self, const char *key)
{
    assert (self);
    if (!key)
        return NULL;
    int index = s_find (self, key, strlen (key));
    return index < 0 ? NULL : self->state[index].origin;
}

//  --------------------------------------------------------------------------
//  Self test

typedef struct {
    char *name;
    char *journal_dir;
    char *log_level;
    int64_t port;
    int64_t count;
    bool verbose;
    uint64_t max_size;
    int64_t timeout;
    char **peers;
    char **tags;
} s_test_config_t;

static s_test_config_t s_cfg;

static const omni_config_option_t s_test_options[] = {
    {"name", CONFIG_STRING, "dflt", "the name", &s_cfg.name},
    {"journal_dir", CONFIG_STRING, NULL, "where the journal lives", &s_cfg.journal_dir},
    {"log_level", CONFIG_STRING, "info", "debug, info, warn or error", &s_cfg.log_level},
    {"port", CONFIG_INT, "80", "the port", &s_cfg.port},
    {"count", CONFIG_INT, NULL, "no default", &s_cfg.count},
    {"verbose", CONFIG_BOOL, "false", "say more", &s_cfg.verbose},
    {"max_size", CONFIG_SIZE, "64M", "the largest", &s_cfg.max_size},
    {"timeout", CONFIG_DURATION, "250ms", "how long to wait", &s_cfg.timeout},
    {"peers", CONFIG_LIST, "x, y", "whom to talk to", &s_cfg.peers},
    {"tags", CONFIG_LIST, NULL, "labels", &s_cfg.tags},
    {NULL, CONFIG_STRING, NULL, NULL, NULL}};

static void
s_write_file (const char *path, const char *text)
{
    FILE *file = fopen (path, "w");
    assert (file);
    assert (fputs (text, file) >= 0);
    assert (fclose (file) == 0);
}

//  Runs omni_config_load with stderr and stdout captured into `out` (caller
//  frees), so that error messages can be checked.
static int
s_load (omni_config_t *config, char **out, int argc, ...)
{
    char *argv[32];
    assert (argc < 32);
    va_list args;
    va_start (args, argc);
    argv[0] = "testd";
    for (int i = 1; i < argc; i++)
        argv[i] = va_arg (args, char *);
    va_end (args);
    argv[argc] = NULL;

    FILE *file = tmpfile ();
    assert (file);
    fflush (stdout);
    fflush (stderr);
    int saved_err = dup (STDERR_FILENO), saved_out = dup (STDOUT_FILENO);
    dup2 (fileno (file), STDERR_FILENO);
    dup2 (fileno (file), STDOUT_FILENO);
    int rc = omni_config_load (config, argc, argv);
    fflush (stdout);
    fflush (stderr);
    dup2 (saved_err, STDERR_FILENO);
    dup2 (saved_out, STDOUT_FILENO);
    close (saved_err);
    close (saved_out);
    long size = lseek (fileno (file), 0, SEEK_END);
    assert (size >= 0);
    char *text = s_alloc ((size_t) size + 1);
    assert (pread (fileno (file), text, (size_t) size, 0) == size);
    fclose (file);
    if (out)
        *out = text;
    else
        free (text);
    return rc;
}

static bool
s_list_is (char **list, const char *expected)
{
    //  `expected` is the items joined by '|'
    char joined[256] = "";
    for (char **item = list; *item; item++) {
        if (item != list)
            strcat (joined, "|");
        strcat (joined, *item);
    }
    return strcmp (joined, expected) == 0;
}

static void
s_test_parsers (void)
{
    uint64_t size;
    assert (!s_parse_size ("512", &size));
    assert (s_parse_size ("512B", &size) && size == 512);
    assert (s_parse_size ("64k", &size) && size == 64 * 1024);
    assert (s_parse_size ("64K", &size) && size == 64 * 1024);
    assert (s_parse_size ("16M", &size) && size == 16ULL << 20);
    assert (s_parse_size ("2G", &size) && size == 2ULL << 30);
    assert (s_parse_size ("1T", &size) && size == 1ULL << 40);
    assert (s_parse_size ("10MB", &size) && size == 10ULL << 20);
    assert (s_parse_size ("10MiB", &size) && size == 10ULL << 20);
    assert (s_parse_size ("100B", &size) && size == 100);
    assert (s_parse_size ("0", &size) && size == 0);
    assert (!s_parse_size ("12x", &size));
    assert (!s_parse_size ("", &size));
    assert (!s_parse_size ("M", &size));
    assert (!s_parse_size ("-1", &size));
    assert (!s_parse_size (" 1", &size));
    assert (!s_parse_size ("1.5G", &size));
    assert (!s_parse_size ("16MM", &size));
    assert (!s_parse_size ("99999999999999999999", &size));
    assert (!s_parse_size ("16777216T", &size));

    int64_t ms;
    assert (s_parse_duration ("250ms", &ms) && ms == 250);
    assert (!s_parse_duration ("250", &ms));
    assert (s_parse_duration ("0", &ms) && ms == 0);
    assert (s_parse_duration ("5s", &ms) && ms == 5000);
    assert (s_parse_duration ("2m", &ms) && ms == 120000);
    assert (s_parse_duration ("1h", &ms) && ms == 3600000);
    assert (s_parse_duration ("1d", &ms) && ms == 86400000);
    assert (!s_parse_duration ("5 s", &ms));
    assert (!s_parse_duration ("5x", &ms));
    assert (!s_parse_duration ("s", &ms));
    assert (!s_parse_duration ("-5s", &ms));
    assert (!s_parse_duration ("9223372036854775807h", &ms));

    int64_t value;
    assert (s_parse_int ("42", &value) && value == 42);
    assert (s_parse_int ("-42", &value) && value == -42);
    assert (s_parse_int ("+7", &value) && value == 7);
    assert (s_parse_int ("9223372036854775807", &value) && value == INT64_MAX);
    assert (!s_parse_int ("9223372036854775808", &value));
    assert (!s_parse_int ("abc", &value));
    assert (!s_parse_int ("12x", &value));
    assert (!s_parse_int ("", &value));
    assert (!s_parse_int (" 1", &value));

    bool flag;
    assert (s_parse_bool ("yes", &flag) && flag);
    assert (s_parse_bool ("ON", &flag) && flag);
    assert (s_parse_bool ("1", &flag) && flag);
    assert (s_parse_bool ("True", &flag) && flag);
    assert (s_parse_bool ("off", &flag) && !flag);
    assert (s_parse_bool ("0", &flag) && !flag);
    assert (s_parse_bool ("no", &flag) && !flag);
    assert (!s_parse_bool ("maybe", &flag));
    assert (!s_parse_bool ("", &flag));

    char **list = s_split (" a, b,,c ,");
    assert (s_list_is (list, "a|b|c"));
    s_free_list (list);
    list = s_split ("");
    assert (list[0] == NULL);
    s_free_list (list);
    list = s_split ("one");
    assert (s_list_is (list, "one"));
    s_free_list (list);
}

void
omni_config_test (bool verbose)
{
    s_test_parsers ();
    unsetenv ("OMNI_CONFIG");
    char *dir = selftest_tmpdir ("omni-config");
    assert (dir);
    char path[PATH_MAX], bad_path[PATH_MAX], other_path[PATH_MAX];
    snprintf (path, sizeof path, "%s/omni.yaml", dir);
    snprintf (bad_path, sizeof bad_path, "%s/bad.yaml", dir);
    snprintf (other_path, sizeof other_path, "%s/other.yaml", dir);
    s_write_file (path,
                  "# the test configuration\n"
                  "testd:\n"                       //  2: before common on purpose
                  "  name: from-section\n"         //  3
                  "  port: 9100\n"                 //  4
                  "  journal-dir: /var/journal\n"  //  5
                  "  peers:\n"                     //  6
                  "    - tcp://a:1\n"              //  7
                  "    - \"tcp://b:2, still b\"\n" //  8
                  "  verbose: yes\n"               //  9
                  "common:\n"                      //  10
                  "  name: from-common\n"          //  11
                  "  log_level: warn\n"            //  12
                  "  max_size: 1M\n"               //  13
                  "  shared_only: other daemons\n" //  14: unknown here, ignored
                  "omni-tap:\n"                    //  15
                  "  bogus: [1, 2]\n");            //  16: other sections ignored

    //  Defaults only
    memset (&s_cfg, 0, sizeof s_cfg);
    s_cfg.count = 77;
    omni_config_t *config = omni_config_new ("testd", s_test_options);
    assert (config);
    assert (s_load (config, NULL, 1) == 0);
    assert (strcmp (s_cfg.name, "dflt") == 0);
    assert (s_cfg.journal_dir == NULL);
    assert (strcmp (s_cfg.log_level, "info") == 0);
    assert (s_cfg.port == 80);
    assert (s_cfg.count == 77);
    assert (!s_cfg.verbose);
    assert (s_cfg.max_size == 64ULL << 20);
    assert (s_cfg.timeout == 250);
    assert (s_list_is (s_cfg.peers, "x|y"));
    assert (s_cfg.tags && s_cfg.tags[0] == NULL);
    assert (strcmp (omni_config_origin (config, "name"), "default") == 0);
    assert (omni_config_origin (config, "nope") == NULL);
    assert (omni_config_argc (config) == 0 && omni_config_arg (config, 0) == NULL);

    //  File: section over common over default, whatever the order in the file
    assert (s_load (config, NULL, 3, "--config", path) == 0);
    assert (strcmp (s_cfg.name, "from-section") == 0);
    assert (strcmp (s_cfg.log_level, "warn") == 0);
    assert (strcmp (s_cfg.journal_dir, "/var/journal") == 0);
    assert (s_cfg.port == 9100);
    assert (s_cfg.verbose);
    assert (s_cfg.max_size == 1ULL << 20);
    assert (s_cfg.timeout == 250);
    //  A YAML sequence is taken item by item, commas and all
    assert (s_list_is (s_cfg.peers, "tcp://a:1|tcp://b:2, still b"));
    assert (strcmp (omni_config_origin (config, "name"), "file") == 0);
    assert (strcmp (omni_config_origin (config, "log_level"), "file") == 0);
    assert (strcmp (omni_config_origin (config, "timeout"), "default") == 0);
    assert (strcmp (omni_config_origin (config, "journal-dir"), "file") == 0);

    //  $OMNI_CONFIG when there is no --config; env over file; flag over env
    setenv ("OMNI_CONFIG", path, 1);
    setenv ("OMNI_TESTD_PORT", "9200", 1);
    setenv ("OMNI_TESTD_TIMEOUT", "5s", 1);
    setenv ("OMNI_TESTD_TAGS", "red, green", 1);
    setenv ("OMNI_TESTD_NAME", "from-env", 1);
    assert (s_load (config, NULL, 8, "--port=9300", "--name", "from-flag", "--max-size", "2G",
                    "--no-verbose", "--journal_dir=/flag") == 0);
    assert (s_cfg.port == 9300);
    assert (strcmp (s_cfg.name, "from-flag") == 0);
    assert (s_cfg.timeout == 5000);
    assert (s_list_is (s_cfg.tags, "red|green"));
    assert (s_cfg.max_size == 2ULL << 30);
    assert (!s_cfg.verbose);
    assert (strcmp (s_cfg.journal_dir, "/flag") == 0);
    assert (strcmp (s_cfg.log_level, "warn") == 0);
    assert (strcmp (omni_config_origin (config, "port"), "flag") == 0);
    assert (strcmp (omni_config_origin (config, "timeout"), "env") == 0);
    assert (strcmp (omni_config_origin (config, "log_level"), "file") == 0);
    assert (strcmp (omni_config_origin (config, "verbose"), "flag") == 0);
    unsetenv ("OMNI_TESTD_PORT");
    unsetenv ("OMNI_TESTD_TIMEOUT");
    unsetenv ("OMNI_TESTD_TAGS");
    unsetenv ("OMNI_TESTD_NAME");
    unsetenv ("OMNI_CONFIG");

    //  Booleans, later flags win, positional arguments, "--" and "-"
    assert (s_load (config, NULL, 11, "first", "--verbose", "-", "--port", "1", "--port=2",
                    "second", "--", "--port=3", "--verbose") == 0);
    assert (s_cfg.verbose && s_cfg.port == 2);
    assert (omni_config_argc (config) == 5);
    assert (strcmp (omni_config_arg (config, 0), "first") == 0);
    assert (strcmp (omni_config_arg (config, 1), "-") == 0);
    assert (strcmp (omni_config_arg (config, 2), "second") == 0);
    assert (strcmp (omni_config_arg (config, 3), "--port=3") == 0);
    assert (strcmp (omni_config_arg (config, 4), "--verbose") == 0);
    assert (omni_config_arg (config, 5) == NULL);
    assert (s_load (config, NULL, 2, "--verbose=off") == 0 && !s_cfg.verbose);
    assert (s_load (config, NULL, 3, "--verbose", "--no_verbose") == 0 && !s_cfg.verbose);
    //  The tags list went back to its (empty) default
    assert (s_cfg.tags && s_cfg.tags[0] == NULL);
    assert (strcmp (s_cfg.name, "dflt") == 0);

    //  Errors name the key, the value and where it came from
    char *out;
    assert (s_load (config, &out, 2, "--bogus=1") == -1);
    assert (strstr (out, "unknown flag --bogus"));
    free (out);
    assert (s_load (config, &out, 2, "-x") == -1);
    assert (strstr (out, "unknown flag -x"));
    free (out);
    assert (s_load (config, &out, 2, "--no-port") == -1);
    assert (strstr (out, "unknown flag --no-port"));
    free (out);
    assert (s_load (config, &out, 2, "--port") == -1);
    assert (strstr (out, "--port needs a value"));
    free (out);
    assert (s_load (config, &out, 2, "--port=abc") == -1);
    assert (strcmp (out, "error: testd.port: bad value \"abc\" (expected an integer) "
                         "[from flag --port=abc]\n") == 0);
    free (out);
    assert (s_load (config, &out, 2, "--verbose=maybe") == -1);
    assert (strstr (out, "error: testd.verbose: bad value \"maybe\" (expected true or false)"));
    free (out);
    assert (s_load (config, &out, 3, "--timeout", "soon") == -1);
    assert (strstr (out, "bad value \"soon\" (expected a duration with its unit: 250ms, 5s, 2m, "
                         "1h, 1d) [from flag --timeout]"));
    free (out);
    setenv ("OMNI_TESTD_MAX_SIZE", "12x", 1);
    assert (s_load (config, &out, 1) == -1);
    assert (strcmp (out, "error: testd.max_size: bad value \"12x\" (expected a size with its unit: "
                         "512B, 64k, 16M, 2G) "
                         "[from env OMNI_TESTD_MAX_SIZE]\n") == 0);
    free (out);
    unsetenv ("OMNI_TESTD_MAX_SIZE");
    assert (s_load (config, &out, 2, "--config") == -1);
    assert (strstr (out, "--config needs a file name"));
    free (out);
    assert (s_load (config, &out, 3, "--config", other_path) == -1);
    assert (strstr (out, other_path) && strstr (out, "No such file"));
    free (out);

    //  An unknown key in the daemon's own section, with file and line
    s_write_file (bad_path, "common:\n  anything: goes\ntestd:\n  port: 1\n  prot: 2\n");
    assert (s_load (config, &out, 3, "--config", bad_path) == -1);
    char expected[PATH_MAX + 128];
    snprintf (expected, sizeof expected, "error: testd.prot: unknown key [from file %s:5]\n",
              bad_path);
    assert (strcmp (out, expected) == 0);
    free (out);
    //  Bad values in the file, in common too
    s_write_file (bad_path, "testd:\n  verbose: maybe\n");
    assert (s_load (config, &out, 2,
                    "--config="
                    "/nonexistent/x.yaml") == -1);
    free (out);
    assert (s_load (config, &out, 3, "--config", bad_path) == -1);
    snprintf (expected, sizeof expected,
              "error: testd.verbose: bad value \"maybe\" (expected true or false) "
              "[from file %s:2]\n",
              bad_path);
    assert (strcmp (out, expected) == 0);
    free (out);
    s_write_file (bad_path, "common:\n  max_size: 12x\n");
    assert (s_load (config, &out, 3, "--config", bad_path) == -1);
    assert (strstr (out, "error: common.max_size: bad value \"12x\" (expected a size with its "
                         "unit: 512B, 64k, 16M, 2G)"));
    free (out);
    //  A list where one value is expected, and a mapping as a value
    s_write_file (bad_path, "testd:\n  port: [1, 2]\n");
    assert (s_load (config, &out, 3, "--config", bad_path) == -1);
    assert (strstr (out, "testd.port: expected a single value, not a list"));
    free (out);
    s_write_file (bad_path, "testd:\n  peers:\n    - a\n    - {b: c}\n");
    assert (s_load (config, &out, 3, "--config", bad_path) == -1);
    assert (strstr (out, "testd.peers: list items must be plain values"));
    free (out);
    //  Broken YAML and a wrong shape
    s_write_file (bad_path, "testd:\n  port: 1\n bad: [\n");
    assert (s_load (config, &out, 3, "--config", bad_path) == -1);
    assert (strstr (out, bad_path));
    free (out);
    s_write_file (bad_path, "- a\n- b\n");
    assert (s_load (config, &out, 3, "--config", bad_path) == -1);
    assert (strstr (out, "top level must be a mapping"));
    free (out);
    s_write_file (bad_path, "testd: 5\n");
    assert (s_load (config, &out, 3, "--config", bad_path) == -1);
    assert (strstr (out, "section \"testd\" must be a mapping"));
    free (out);

    //  Empty files and sections, YAML nulls, flow lists, quoted text
    s_write_file (bad_path, "");
    assert (s_load (config, NULL, 3, "--config", bad_path) == 0);
    s_write_file (bad_path, "common:\ntestd:\n");
    assert (s_load (config, NULL, 3, "--config", bad_path) == 0);
    s_write_file (bad_path, "testd:\n  name: ~\n  peers:\n  tags: [a, 'b c']\n"
                            "  journal_dir: \"null\"\n  timeout: 2m\n");
    assert (s_load (config, NULL, 3, "--config", bad_path) == 0);
    assert (s_cfg.name == NULL);
    assert (s_cfg.peers && s_cfg.peers[0] == NULL);
    assert (s_list_is (s_cfg.tags, "a|b c"));
    assert (strcmp (s_cfg.journal_dir, "null") == 0);
    assert (s_cfg.timeout == 120000);
    s_write_file (bad_path, "testd:\n  port: ~\n");
    assert (s_load (config, &out, 3, "--config", bad_path) == -1);
    assert (strstr (out, "testd.port: bad value \"~\""));
    free (out);

    //  Durations and sizes carry their unit; only 0 needs none
    assert (s_load (config, &out, 2, "--timeout=5") == -1);
    assert (strstr (out, "error: testd.timeout: bad value \"5\" (expected a duration with its "
                         "unit: 250ms, 5s, 2m, 1h, 1d) [from flag --timeout=5]"));
    free (out);
    assert (s_load (config, NULL, 2, "--timeout=0") == 0 && s_cfg.timeout == 0);
    assert (s_load (config, NULL, 2, "--timeout=5s") == 0 && s_cfg.timeout == 5000);
    assert (s_load (config, &out, 2, "--max-size=512") == -1);
    assert (strstr (out, "testd.max_size: bad value \"512\""));
    free (out);
    assert (s_load (config, NULL, 2, "--max-size=512B") == 0 && s_cfg.max_size == 512);
    assert (s_load (config, NULL, 2, "--max-size=0") == 0 && s_cfg.max_size == 0);

    //  A top-level section no program reads is a typo, said with file and line
    s_write_file (bad_path, "common:\n  x: 1\ningestdd:\n  journal_dir: /x\n");
    assert (s_load (config, &out, 3, "--config", bad_path) == -1);
    snprintf (expected, sizeof expected,
              "error: %s:3: unknown section \"ingestdd\" (did you mean \"ingestd\"?)", bad_path);
    assert (strstr (out, expected));
    free (out);
    s_write_file (bad_path, "zzz:\n  x: 1\n");
    assert (s_load (config, &out, 3, "--config", bad_path) == -1);
    assert (strstr (out, "unknown section \"zzz\" (sections: common, ingestd"));
    free (out);
    s_write_file (bad_path, "ingestd:\n  x: 1\nomni-tap:\n  y: 2\ntestd:\n  port: 3\n");
    assert (s_load (config, NULL, 3, "--config", bad_path) == 0);

    //  Endpoints are checked when given
    static char *endpoint;
    static const omni_config_option_t endpoint_options[] = {
        {"at", CONFIG_ENDPOINT, "tcp://127.0.0.1:5550", "an endpoint", &endpoint},
        {NULL, CONFIG_STRING, NULL, NULL, NULL}};
    omni_config_t *with_endpoint = omni_config_new ("testd", endpoint_options);
    assert (s_load (with_endpoint, NULL, 1) == 0 && strcmp (endpoint, "tcp://127.0.0.1:5550") == 0);
    const char *good[] = {"tcp://*:5", "tcp://[::1]:65535", "ipc:///tmp/x", "inproc://y"};
    for (size_t i = 0; i < 4; i++) {
        char flag[64];
        snprintf (flag, sizeof flag, "--at=%s", good[i]);
        assert (s_load (with_endpoint, NULL, 2, flag) == 0 && strcmp (endpoint, good[i]) == 0);
    }
    const char *bad[] = {"127.0.0.1:5550", "tcp://127.0.0.1", "tcp://:5", "tcp://h:70000",
                         "tcp://h:x",      "ipc://",          "udp://h:1"};
    for (size_t i = 0; i < 7; i++) {
        char flag[64];
        snprintf (flag, sizeof flag, "--at=%s", bad[i]);
        assert (s_load (with_endpoint, &out, 2, flag) == -1);
        assert (strstr (out, "testd.at: bad value") && strstr (out, "tcp://HOST:PORT"));
        free (out);
    }
    omni_config_destroy (&with_endpoint);

    //  Several endpoints: comma-separated text or a YAML sequence, each
    //  checked, kept as one text joined by commas
    static char *endpoints;
    static const omni_config_option_t endpoints_options[] = {
        {"to", CONFIG_ENDPOINTS, "tcp://127.0.0.1:5550", "endpoints", &endpoints},
        {NULL, CONFIG_STRING, NULL, NULL, NULL}};
    omni_config_t *with_endpoints = omni_config_new ("testd", endpoints_options);
    assert (s_load (with_endpoints, NULL, 1) == 0 &&
            strcmp (endpoints, "tcp://127.0.0.1:5550") == 0);
    assert (s_load (with_endpoints, NULL, 2, "--to= tcp://a:1 ,, ipc:///x ") == 0 &&
            strcmp (endpoints, "tcp://a:1,ipc:///x") == 0);
    s_write_file (bad_path, "testd:\n  to:\n    - tcp://a:1\n    - tcp://b:2\n");
    assert (s_load (with_endpoints, NULL, 3, "--config", bad_path) == 0 &&
            strcmp (endpoints, "tcp://a:1,tcp://b:2") == 0);
    assert (strcmp (omni_config_origin (with_endpoints, "to"), "file") == 0);
    s_write_file (bad_path, "testd:\n  to:\n    - tcp://a:1\n    - b:2\n");
    assert (s_load (with_endpoints, &out, 3, "--config", bad_path) == -1);
    assert (strstr (out, "testd.to: bad value \"b:2\"") && strstr (out, "tcp://HOST:PORT") &&
            strstr (out, "bad.yaml:"));
    free (out);
    assert (s_load (with_endpoints, &out, 2, "--to=tcp://a:1,udp://b:2") == -1);
    assert (strstr (out, "testd.to: bad value \"udp://b:2\""));
    free (out);
    assert (s_load (with_endpoints, &out, 2, "--to= , ") == -1);
    assert (strstr (out, "testd.to: bad value \"\" (expected one or more endpoints"));
    free (out);
    omni_config_destroy (&with_endpoints);

    //  --version
    assert (s_load (config, &out, 2, "--version") == 2);
    assert (strstr (out, omni_config_version ()));
    free (out);

    //  --help prints every option and its variable, and returns 1
    assert (s_load (config, &out, 2, "--help") == 1);
    if (verbose)
        printf ("%s", out);
    assert (strstr (out, "--journal-dir TEXT"));
    assert (strstr (out, "--verbose[=BOOL]"));
    assert (strstr (out, "OMNI_TESTD_MAX_SIZE"));
    assert (strstr (out, "--version"));
    free (out);
    //  ... or only the first ones
    omni_config_set_help_count (config, 1);
    assert (s_load (config, &out, 2, "--help") == 1);
    assert (strstr (out, "--name TEXT") && !strstr (out, "--journal-dir"));
    free (out);
    assert (s_load (config, NULL, 2, "--journal-dir=/x") == 0);
    omni_config_destroy (&config);
    assert (config == NULL);
    omni_config_destroy (&config);

    //  Section names with '-' map to '_' in variable names
    static char *tap_name;
    static const omni_config_option_t tap_options[] = {
        {"key", CONFIG_STRING, NULL, "a key", &tap_name}, {NULL, CONFIG_STRING, NULL, NULL, NULL}};
    config = omni_config_new ("omni-tap", tap_options);
    setenv ("OMNI_TAP_KEY", "from-env", 1);
    assert (s_load (config, NULL, 1) == 0);
    assert (strcmp (tap_name, "from-env") == 0);
    unsetenv ("OMNI_TAP_KEY");
    s_write_file (bad_path, "omni-tap:\n  key: from-file\n  other: 1\n");
    assert (s_load (config, &out, 3, "--config", bad_path) == -1);
    assert (strstr (out, "omni-tap.other: unknown key"));
    free (out);
    omni_config_destroy (&config);

    selftest_rmtree (dir);
    assert (access (dir, F_OK) == -1 && errno == ENOENT);
    free (dir);
}
