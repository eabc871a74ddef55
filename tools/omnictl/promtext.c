/*  promtext: a parsed /metrics page (see promtext.h).

    The parser follows the text exposition format 0.0.4: a metric name
    [a-zA-Z_:][a-zA-Z0-9_:]*, optional labels in braces whose values are
    double-quoted with \\, \" and \n escapes, a value (a float, NaN, +Inf,
    -Inf), an optional timestamp that is ignored.                             */
#include "tools/omnictl/promtext.h"
#include "common/buf.h"

#include <assert.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *key;
    char *value;
} s_label_t;

typedef struct {
    char *name;
    s_label_t *labels;
    size_t nlabels, labels_cap;
    double value;
} s_sample_t;

struct _promtext_t {
    s_sample_t *samples;
    size_t nsamples, cap;
    size_t skipped;
    char daemon[64];
};

static bool
s_name_start (int c)
{
    return isalpha (c) || c == '_' || c == ':';
}

static bool
s_name_char (int c)
{
    return isalnum (c) || c == '_' || c == ':';
}

static void
s_sample_free (s_sample_t *sample)
{
    for (size_t i = 0; i < sample->nlabels; i++) {
        free (sample->labels[i].key);
        free (sample->labels[i].value);
    }
    free (sample->labels);
    free (sample->name);
    memset (sample, 0, sizeof *sample);
}

static char *
s_strndup (const char *text, size_t len)
{
    char *copy = malloc (len + 1);
    assert (copy);
    memcpy (copy, text, len);
    copy[len] = 0;
    return copy;
}

//  Parses a quoted label value at *p (just past the opening quote); returns
//  the unescaped text, or NULL when the line ends first.
static char *
s_parse_quoted (const char **p, const char *end)
{
    const char *s = *p;
    char *out = malloc ((size_t) (end - s) + 1);
    assert (out);
    size_t n = 0;
    while (s < end && *s != '"') {
        if (*s == '\\' && s + 1 < end) {
            s++;
            out[n++] = *s == 'n' ? '\n' : *s;
        } else
            out[n++] = *s;
        s++;
    }
    if (s >= end) {
        free (out);
        return NULL;
    }
    out[n] = 0;
    *p = s + 1;
    return out;
}

static void
s_skip_blanks (const char **p, const char *end)
{
    while (*p < end && (**p == ' ' || **p == '\t'))
        (*p)++;
}

//  One line [line, end) into `sample`; false when it does not parse.
static bool
s_parse_line (const char *line, const char *end, s_sample_t *sample)
{
    const char *p = line;
    memset (sample, 0, sizeof *sample);
    if (p >= end || !s_name_start ((unsigned char) *p))
        return false;
    while (p < end && s_name_char ((unsigned char) *p))
        p++;
    sample->name = s_strndup (line, (size_t) (p - line));
    if (p < end && *p == '{') {
        p++;
        while (true) {
            s_skip_blanks (&p, end);
            if (p < end && *p == '}') {
                p++;
                break;
            }
            const char *key = p;
            if (p >= end || !s_name_start ((unsigned char) *p))
                goto bad;
            while (p < end && s_name_char ((unsigned char) *p))
                p++;
            size_t key_len = (size_t) (p - key);
            s_skip_blanks (&p, end);
            if (p >= end || *p != '=')
                goto bad;
            p++;
            s_skip_blanks (&p, end);
            if (p >= end || *p != '"')
                goto bad;
            p++;
            char *value = s_parse_quoted (&p, end);
            if (!value)
                goto bad;
            *omni_array_push (sample->labels, sample->nlabels, sample->labels_cap) =
                (s_label_t){s_strndup (key, key_len), value};
            s_skip_blanks (&p, end);
            if (p < end && *p == ',')
                p++;
            else if (p < end && *p == '}') {
                p++;
                break;
            } else
                goto bad;
        }
    }
    if (p >= end || (*p != ' ' && *p != '\t'))
        goto bad;
    s_skip_blanks (&p, end);
    //  strtod takes NaN, +Inf and -Inf as the format writes them.
    char number[64];
    size_t len = 0;
    while (p + len < end && p[len] != ' ' && p[len] != '\t' && len < sizeof number - 1)
        len++;
    if (len == 0 || len == sizeof number - 1)
        goto bad;
    memcpy (number, p, len);
    number[len] = 0;
    char *tail;
    sample->value = strtod (number, &tail);
    if (*tail)
        goto bad;
    return true;
bad:
    s_sample_free (sample);
    return false;
}

promtext_t *
promtext_new (const char *text)
{
    promtext_t *self = calloc (1, sizeof *self);
    assert (self);
    const char *p = text ? text : "";
    while (*p) {
        const char *eol = strchr (p, '\n');
        const char *end = eol ? eol : p + strlen (p);
        const char *line_end = end;
        if (line_end > p && line_end[-1] == '\r')
            line_end--;
        const char *start = p;
        s_skip_blanks (&start, line_end);
        if (start < line_end && *start != '#') {
            s_sample_t sample;
            if (s_parse_line (start, line_end, &sample)) {
                *omni_array_push (self->samples, self->nsamples, self->cap) = sample;
            } else
                self->skipped++;
        }
        p = eol ? eol + 1 : end;
    }
    for (size_t i = 0; i < self->nsamples && !*self->daemon; i++) {
        const char *name = self->samples[i].name;
        const char *under = strncmp (name, "omni_", 5) == 0 ? strchr (name + 5, '_') : NULL;
        if (under && under > name + 5 && (size_t) (under - name - 5) < sizeof self->daemon)
            snprintf (self->daemon, sizeof self->daemon, "%.*s", (int) (under - name - 5),
                      name + 5);
    }
    return self;
}

void
promtext_destroy (promtext_t **self_p)
{
    promtext_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->nsamples; i++)
        s_sample_free (&self->samples[i]);
    free (self->samples);
    free (self);
    *self_p = NULL;
}

size_t
promtext_size (promtext_t *self)
{
    return self->nsamples;
}

size_t
promtext_skipped (promtext_t *self)
{
    return self->skipped;
}

const char *
promtext_name (promtext_t *self, size_t index)
{
    return index < self->nsamples ? self->samples[index].name : NULL;
}

double
promtext_value (promtext_t *self, size_t index)
{
    return index < self->nsamples ? self->samples[index].value : NAN;
}

const char *
promtext_label (promtext_t *self, size_t index, const char *label)
{
    if (index >= self->nsamples)
        return NULL;
    s_sample_t *sample = &self->samples[index];
    for (size_t i = 0; i < sample->nlabels; i++)
        if (strcmp (sample->labels[i].key, label) == 0)
            return sample->labels[i].value;
    return NULL;
}

bool
promtext_get (promtext_t *self, const char *name, const char *label, const char *value,
              double *result)
{
    for (size_t i = 0; i < self->nsamples; i++) {
        if (strcmp (self->samples[i].name, name) != 0)
            continue;
        if (label) {
            const char *have = promtext_label (self, i, label);
            if (!have || strcmp (have, value) != 0)
                continue;
        }
        *result = self->samples[i].value;
        return true;
    }
    return false;
}

size_t
promtext_sum (promtext_t *self, const char *name, double *sum)
{
    size_t count = 0;
    *sum = 0;
    for (size_t i = 0; i < self->nsamples; i++)
        if (strcmp (self->samples[i].name, name) == 0) {
            *sum += self->samples[i].value;
            count++;
        }
    return count;
}

const char *
promtext_daemon (promtext_t *self)
{
    return self->daemon;
}

void
promtext_test (bool verbose)
{
    (void) verbose;
    const char *page =
        "# HELP omni_ingestd_records_received_total Inputs received\n"
        "# TYPE omni_ingestd_records_received_total counter\n"
        "omni_ingestd_records_received_total 42\n"
        "omni_ingestd_records_rejected_total{reason=\"not_msgpack\"} 2\n"
        "omni_ingestd_records_rejected_total{reason=\"bad_body\"} 1\r\n"
        "omni_ingestd_writer_lag_records{writer=\"archive\"} 0\n"
        "omni_ingestd_writer_lag_records{ writer = \"rel\\\"a\\\\tional\" , x=\"y\",} 17 "
        "1700000000000\n"
        "omni_ingestd_end_to_end_seconds_bucket{writer=\"archive\",le=\"+Inf\"} 5\n"
        "omni_ingestd_nan NaN\n"
        "omni_ingestd_inf -Inf\n"
        "\n"
        "   \n"
        "not a sample line\n"
        "broken{writer=\"unterminated} 3\n"
        "novalue{a=\"b\"}\n"
        "badvalue 12abc\n"
        "9starts_with_digit 1\n"
        "last_line_without_newline 7";
    promtext_t *self = promtext_new (page);
    assert (promtext_size (self) == 9);
    assert (promtext_skipped (self) == 5);
    assert (strcmp (promtext_daemon (self), "ingestd") == 0);
    double v;
    assert (promtext_get (self, "omni_ingestd_records_received_total", NULL, NULL, &v) && v == 42);
    assert (promtext_get (self, "omni_ingestd_records_rejected_total", "reason", "bad_body", &v) &&
            v == 1);
    assert (!promtext_get (self, "omni_ingestd_records_rejected_total", "reason", "nope", &v));
    assert (
        promtext_get (self, "omni_ingestd_writer_lag_records", "writer", "rel\"a\\tional", &v) &&
        v == 17);
    assert (promtext_get (self, "omni_ingestd_end_to_end_seconds_bucket", "le", "+Inf", &v) &&
            v == 5);
    assert (promtext_get (self, "omni_ingestd_nan", NULL, NULL, &v) && isnan (v));
    assert (promtext_get (self, "omni_ingestd_inf", NULL, NULL, &v) && isinf (v) && v < 0);
    assert (promtext_get (self, "last_line_without_newline", NULL, NULL, &v) && v == 7);
    assert (promtext_sum (self, "omni_ingestd_records_rejected_total", &v) == 2 && v == 3);
    assert (promtext_sum (self, "absent", &v) == 0 && v == 0);
    assert (promtext_label (self, 4, "x") && strcmp (promtext_label (self, 4, "x"), "y") == 0);
    assert (promtext_label (self, 4, "nope") == NULL);
    assert (promtext_label (self, 99, "x") == NULL);
    promtext_destroy (&self);
    assert (self == NULL);

    self = promtext_new (NULL);
    assert (promtext_size (self) == 0 && *promtext_daemon (self) == 0);
    promtext_destroy (&self);
    self = promtext_new ("# only comments\nomni_x 1\nomni_archiverd_up 1\n");
    assert (strcmp (promtext_daemon (self), "archiverd") == 0);
    promtext_destroy (&self);
}
