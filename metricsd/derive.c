/*  derive: records -> time-series points, by one declarative table.

    Choices the table encodes (docs/metricsd.md explains them to users):
    - A commit counts at its committer time: when it entered this history.
      Rebases, cherry-picks and `git am` keep the author time of long ago,
      so "commits per day in this repository" follows the committer time.
    - A build counts at its start (else its end, else the record time), as
      relationald's build_success_rate does, so both stores agree. Only
      finished builds have a success value: success 1, failure 0; a
      cancelled or running build gives no success point.
    - A test run counts at its record time (ci.test has no time field); a
      skipped test gives no duration and no failed point.
    - Commits, builds and test runs are events, not samples: the object's
      own id (sha, build_id) is a tag, so two commits by one author in the
      same second stay two points, while the same commit seen again stays
      one (the points table is unique on name, source, tags, time).       */
#include "metricsd/derive.h"
#include "proto/kinds.h"
#include "proto/mpjson.h"
#include "pg/pgcopy.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    V_ONE,    //  the value is 1 (one event)
    V_FIELD,  //  a numeric body field; no point when absent
    V_STATUS, //  1 when `field` is one of `ones`, 0 when one of `zeros`, else no point
} s_value_t;

//  Event time: the first of these fields present, or the record's ts
//  (field NULL, the last one when there); `unit_ns` converts the field to
//  ns (git times are seconds). unit_ns 0 ends the list.
typedef struct {
    const char *field;
    int64_t unit_ns;
} s_time_t;

//  Where a tag comes from
typedef enum {
    T_FIELD, //  a body field (the tag is omitted when the field is absent)
    T_SRC,   //  the record's source
    T_TAGS,  //  every record tag, under its own name
} s_from_t;

typedef struct {
    const char *tag; //  NULL ends the list
    s_from_t from;
    const char *field; //  T_FIELD
} s_tag_t;

//  The kinds are numbers (proto/kinds.h) and the special names flags, so a
//  record is matched to its rules, and each rule applied, without comparing
//  strings: only the body's own fields are looked up by name.
typedef struct {
    omni_kind_id_t kind;
    const char *series; //  NULL: the body's name field
    s_value_t value;
    const char *field; //  V_FIELD: the number; V_STATUS: the status
    const char *const *ones, *const *zeros;
    const char *when_field; //  only when this field is one of `when`
    const char *const *when;
    const s_time_t *time;
    const s_tag_t *tags;
} s_rule_t;

#define S_NS_PER_S INT64_C (1000000000)

static const s_time_t s_at_ts[] = {{NULL, 1}, {NULL, 0}};
static const s_time_t s_commit_time[] = {{"committer_time", S_NS_PER_S}, {NULL, 0}};
static const s_time_t s_build_time[] = {{"started", 1}, {"finished", 1}, {NULL, 1}, {NULL, 0}};

static const s_tag_t s_metric_tags[] = {{"", T_TAGS, NULL}, {NULL, 0, NULL}};
static const s_tag_t s_commit_tags[] = {{"repository", T_SRC, NULL},
                                        {"author", T_FIELD, "author_email"},
                                        {"sha", T_FIELD, "sha"},
                                        {NULL, 0, NULL}};
static const s_tag_t s_build_tags[] = {{"pipeline", T_FIELD, "pipeline"},
                                       {"branch", T_FIELD, "branch"},
                                       {"build_id", T_FIELD, "build_id"},
                                       {NULL, 0, NULL}};
static const s_tag_t s_test_tags[] = {
    {"suite", T_FIELD, "suite"},       {"class", T_FIELD, "class"},       {"name", T_FIELD, "name"},
    {"pipeline", T_FIELD, "pipeline"}, {"build_id", T_FIELD, "build_id"}, {NULL, 0, NULL}};

static const char *const s_success[] = {"success", NULL};
static const char *const s_failure[] = {"failure", NULL};
static const char *const s_test_failed[] = {"failed", "error", NULL};
static const char *const s_test_passed[] = {"passed", NULL};
static const char *const s_test_ran[] = {"passed", "failed", "error", NULL};

//  The table, in the order of the kinds' numbers (checked at the start).
//  Series names are documented in docs/metricsd.md.
static const s_rule_t s_rules[] = {
    //  kind        series                value     field          ones, zeros
    {KIND_GIT_COMMIT, "git.commits", V_ONE, NULL, NULL, NULL, NULL, NULL, s_commit_time,
     s_commit_tags},
    {KIND_GIT_COMMIT, "git.insertions", V_FIELD, "insertions", NULL, NULL, NULL, NULL,
     s_commit_time, s_commit_tags},
    {KIND_GIT_COMMIT, "git.deletions", V_FIELD, "deletions", NULL, NULL, NULL, NULL, s_commit_time,
     s_commit_tags},
    {KIND_GIT_COMMIT, "git.files_changed", V_FIELD, "files_changed", NULL, NULL, NULL, NULL,
     s_commit_time, s_commit_tags},
    {KIND_CI_BUILD, "ci.build.success", V_STATUS, "status", s_success, s_failure, NULL, NULL,
     s_build_time, s_build_tags},
    {KIND_CI_BUILD, "ci.build.duration", V_FIELD, "duration", NULL, NULL, NULL, NULL, s_build_time,
     s_build_tags},
    {KIND_CI_TEST, "ci.test.duration", V_FIELD, "duration", NULL, NULL, "status", s_test_ran,
     s_at_ts, s_test_tags},
    {KIND_CI_TEST, "ci.test.failed", V_STATUS, "status", s_test_failed, s_test_passed, NULL, NULL,
     s_at_ts, s_test_tags},
    {KIND_METRIC, NULL, V_FIELD, "value", NULL, NULL, NULL, NULL, s_at_ts, s_metric_tags},
};

#define S_RULES (sizeof s_rules / sizeof s_rules[0])

//  Each kind's rules: s_rules[s_first[kind] .. s_first[kind + 1])
//  (and s_first[KIND_CUSTOM + 1 .. + 2), none, for a record without a kind)
static uint8_t s_first[KIND_CUSTOM + 3];
static size_t s_series_len[S_RULES];
static pthread_once_t s_first_once = PTHREAD_ONCE_INIT;

static void
s_first_build (void)
{
    size_t r = 0;
    for (int kind = 0; kind <= KIND_CUSTOM; kind++) {
        s_first[kind] = (uint8_t) r;
        while (r < S_RULES && s_rules[r].kind == (omni_kind_id_t) kind)
            r++;
    }
    s_first[KIND_CUSTOM + 1] = s_first[KIND_CUSTOM + 2] = (uint8_t) r;
    assert (r == S_RULES); //  in kind order, each kind's rules together
    for (r = 0; r < S_RULES; r++)
        s_series_len[r] = s_rules[r].series ? strlen (s_rules[r].series) : 0;
}

struct _derive_t {
    omni_buf_t tags;
    omni_buf_t scratch; //  a source with NUL bytes, cleaned
    uint64_t skipped[DERIVE_SKIP_COUNT];
};

derive_t *
derive_new (void)
{
    derive_t *self = calloc (1, sizeof *self);
    assert (self);
    pthread_once (&s_first_once, s_first_build);
    return self;
}

void
derive_destroy (derive_t **self_p)
{
    derive_t *self = *self_p;
    if (!self)
        return;
    omni_buf_release (&self->tags);
    omni_buf_release (&self->scratch);
    free (self);
    *self_p = NULL;
}

bool
derive_wants (const omni_kind_spec_t *spec)
{
    pthread_once (&s_first_once, s_first_build);
    if (!spec)
        return false;
    omni_kind_id_t kind = omni_kinds_id (spec);
    return s_first[kind + 1] > s_first[kind];
}

uint64_t
derive_skipped (derive_t *self, derive_skip_t reason)
{
    return reason < DERIVE_SKIP_COUNT ? self->skipped[reason] : 0;
}

const char *
derive_skip_name (derive_skip_t reason)
{
    static const char *names[] = {"time_range", "too_large", "not_finite"};
    return reason < DERIVE_SKIP_COUNT ? names[reason] : "?";
}

static bool
s_in (omni_record_str_t value, const char *const *list)
{
    for (; list && *list; list++)
        if (omni_record_str_eq (value, *list))
            return true;
    return false;
}

//  0 = no point (absent), 1 = time set, -1 = out of range
static int
s_time (const s_rule_t *rule, const omni_record_t *record, int64_t *ns)
{
    for (const s_time_t *t = rule->time; t->unit_ns; t++) {
        int64_t v;
        if (!t->field)
            v = record->ts;
        else if (!omni_record_field_int (record->body, t->field, &v))
            continue;
        if (v > INT64_MAX / t->unit_ns || v < INT64_MIN / t->unit_ns)
            return -1;
        *ns = v * t->unit_ns;
        return 1;
    }
    return 0;
}

//  0 = no point, 1 = value set
static int
s_value (const s_rule_t *rule, const omni_record_t *record, double *value)
{
    if (rule->when_field) {
        omni_record_str_t s;
        if (!omni_record_field_str (record->body, rule->when_field, &s) || !s_in (s, rule->when))
            return 0;
    }
    switch (rule->value) {
    case V_ONE: *value = 1; return 1;
    case V_FIELD: return omni_record_field_num (record->body, rule->field, value) ? 1 : 0;
    case V_STATUS: {
        omni_record_str_t s;
        if (!omni_record_field_str (record->body, rule->field, &s))
            return 0;
        if (s_in (s, rule->ones))
            *value = 1;
        else if (s_in (s, rule->zeros))
            *value = 0;
        else
            return 0;
        return 1;
    }
    }
    return 0;
}

static void
s_member (derive_t *self, bool *first, const char *key, size_t key_len, const char *value,
          size_t value_len)
{
    if (!*first)
        omni_buf_append (&self->tags, ",", 1);
    *first = false;
    omni_mpjson_string (&self->tags, key, key_len);
    omni_buf_append (&self->tags, ":", 1);
    omni_mpjson_string (&self->tags, value, value_len);
}

//  The tags of a rule as one JSON object; NUL becomes U+FFFD (jsonb
//  refuses \u0000), per the NUL rule of pgconn.
static void
s_tags (derive_t *self, const s_tag_t *tags, const omni_record_t *record)
{
    omni_buf_reset (&self->tags);
    omni_buf_append (&self->tags, "{", 1);
    bool first = true;
    for (const s_tag_t *t = tags; t->tag; t++) {
        if (t->from == T_TAGS) {
            if (!record->tags)
                continue;
            const msgpack_object_map *map = &record->tags->via.map;
            for (uint32_t i = 0; i < map->size; i++) {
                //  Keys and values are strings: omni_record_check saw to it
                const msgpack_object *k = &map->ptr[i].key, *v = &map->ptr[i].val;
                s_member (self, &first, k->via.str.ptr, k->via.str.size, v->via.str.ptr,
                          v->via.str.size);
            }
            continue;
        }
        omni_record_str_t value;
        if (t->from == T_SRC)
            value = record->src;
        else if (!omni_record_field_str (record->body, t->field, &value))
            continue;
        s_member (self, &first, t->tag, strlen (t->tag), value.ptr, value.len);
    }
    omni_buf_append (&self->tags, "}", 1);
    omni_pgcopy_json_clean (self->tags.data, self->tags.size);
}

size_t
derive_record (derive_t *self, const omni_record_t *record, derive_point_fn *emit, void *arg)
{
    //  (a record without a spec is of no declared kind: no rules)
    omni_kind_id_t kind = record->spec ? omni_kinds_id (record->spec) : KIND_CUSTOM + 1;
    if (s_first[kind] == s_first[kind + 1])
        return 0;
    size_t made = 0;
    const s_tag_t *tags_for = NULL; //  the tags in self->tags, reused across rules
    derive_point_t point;
    size_t source_len;
    point.source =
        omni_pgcopy_text_clean (record->src.ptr, record->src.len, &self->scratch, &source_len);
    point.source_len = source_len;
    for (size_t r = s_first[kind]; r < s_first[kind + 1]; r++) {
        const s_rule_t *rule = &s_rules[r];
        if (!s_value (rule, record, &point.value))
            continue;
        int rc = s_time (rule, record, &point.time_ns);
        if (rc == 0)
            continue;
        if (rc < 0) {
            self->skipped[DERIVE_SKIP_TIME_RANGE]++;
            continue;
        }
        if (!isfinite (point.value)) {
            self->skipped[DERIVE_SKIP_NOT_FINITE]++;
            continue;
        }
        omni_record_str_t name = {rule->series, s_series_len[r]};
        if (!rule->series && !omni_record_field_str (record->body, "name", &name))
            continue;
        if (rule->tags != tags_for) {
            s_tags (self, rule->tags, record);
            tags_for = rule->tags;
        }
        //  Series names never hold NUL: a name with one is refused with
        //  the oversized ones rather than silently renamed.
        if (name.len == 0 || name.len > DERIVE_MAX_NAME || memchr (name.ptr, 0, name.len) ||
            point.source_len > DERIVE_MAX_SOURCE || self->tags.size > DERIVE_MAX_TAGS) {
            self->skipped[DERIVE_SKIP_TOO_LARGE]++;
            continue;
        }
        point.name = name.ptr;
        point.name_len = name.len;
        point.tags = self->tags.data;
        point.tags_len = self->tags.size;
        emit (arg, &point);
        made++;
    }
    return made;
}

//  ---------------------------------------------------------------------------
//  Self-test

#include "metricsd/testrec.h"

typedef struct {
    char text[64][512];
    size_t count;
} s_seen_t;

//  Each point as "name value time_ns source tags"
static void
s_collect (void *arg, const derive_point_t *p)
{
    s_seen_t *seen = arg;
    assert (seen->count < 64);
    snprintf (seen->text[seen->count++], 512, "%.*s %g %lld %.*s %.*s", (int) p->name_len, p->name,
              p->value, (long long) p->time_ns, (int) p->source_len, p->source, (int) p->tags_len,
              p->tags);
}

static void
s_expect (derive_t *derive, testrec_t *recs, const char *const *expected)
{
    s_seen_t seen = {.count = 0};
    for (size_t i = 0; i < testrec_count (recs); i++)
        derive_record (derive, &testrec_records (recs)[i], s_collect, &seen);
    size_t n = 0;
    for (; expected[n]; n++) {
        if (n >= seen.count || strcmp (seen.text[n], expected[n])) {
            fprintf (stderr, "point %zu:\n  got      %s\n  expected %s\n", n,
                     n < seen.count ? seen.text[n] : "(none)", expected[n]);
            assert (false);
        }
    }
    if (seen.count != n)
        fprintf (stderr, "extra point: %s\n", seen.text[n]);
    assert (seen.count == n);
    testrec_clear (recs);
}

void
derive_test (bool verbose)
{
    (void) verbose;
    derive_t *derive = derive_new ();
    testrec_t *recs = testrec_new ();
    const int64_t ts = INT64_C (1700000000123456789);

    //  metric: name, value, record ts, record tags
    testrec_metric (recs, "web-1", ts, "host.cpu.user", 12.5, "web-1");
    s_expect (derive, recs,
              (const char *[]){"host.cpu.user 12.5 1700000000123456789 web-1 {\"host\":\"web-1\"}",
                               NULL});
    testrec_metric (recs, "web-1", ts, "queue.depth", 3, NULL);
    s_expect (derive, recs, (const char *[]){"queue.depth 3 1700000000123456789 web-1 {}", NULL});

    //  git.commit: four series at the committer time (not the author time)
    testrec_commit (recs, "repo", "abc", "ann@example.org", 1500000000, 1600000000, 3, 10, 2);
    static const char tags[] = "{\"repository\":\"repo\",\"author\":\"ann@example.org\","
                               "\"sha\":\"abc\"}";
    char expected[4][256];
    const char *names[] = {"git.commits 1", "git.insertions 10", "git.deletions 2",
                           "git.files_changed 3"};
    for (int i = 0; i < 4; i++)
        snprintf (expected[i], sizeof expected[i], "%s 1600000000000000000 repo %s", names[i],
                  tags);
    s_expect (derive, recs,
              (const char *[]){expected[0], expected[1], expected[2], expected[3], NULL});

    //  ci.build: success 1 / failure 0 / none for cancelled and running;
    //  the time is started, else the record time; branch only when present
    testrec_build (recs, "ci", ts, "deploy", "7", "success", "main", 1600000000000000000, 30.5);
    testrec_build (recs, "ci", ts, "deploy", "8", "failure", NULL, 0, -1);
    testrec_build (recs, "ci", ts, "deploy", "9", "cancelled", "main", 0, 4);
    testrec_build (recs, "ci", ts, "deploy", "10", "running", "main", 0, -1);
    s_expect (derive, recs,
              (const char *[]){"ci.build.success 1 1600000000000000000 ci "
                               "{\"pipeline\":\"deploy\",\"branch\":\"main\",\"build_id\":\"7\"}",
                               "ci.build.duration 30.5 1600000000000000000 ci "
                               "{\"pipeline\":\"deploy\",\"branch\":\"main\",\"build_id\":\"7\"}",
                               "ci.build.success 0 1700000000123456789 ci "
                               "{\"pipeline\":\"deploy\",\"build_id\":\"8\"}",
                               "ci.build.duration 4 1700000000123456789 ci "
                               "{\"pipeline\":\"deploy\",\"branch\":\"main\",\"build_id\":\"9\"}",
                               NULL});

    //  ci.test: duration and failed; skipped gives nothing
    testrec_test_case (recs, "ci", ts, "unit", "Parser", "t_ok", "passed", 0.25, "7");
    testrec_test_case (recs, "ci", ts, "unit", NULL, "t_bad", "error", 1.5, NULL);
    testrec_test_case (recs, "ci", ts, "unit", NULL, "t_skip", "skipped", 0, NULL);
    s_expect (derive, recs,
              (const char *[]){
                  "ci.test.duration 0.25 1700000000123456789 ci "
                  "{\"suite\":\"unit\",\"class\":\"Parser\",\"name\":\"t_ok\",\"build_id\":\"7\"}",
                  "ci.test.failed 0 1700000000123456789 ci "
                  "{\"suite\":\"unit\",\"class\":\"Parser\",\"name\":\"t_ok\",\"build_id\":\"7\"}",
                  "ci.test.duration 1.5 1700000000123456789 ci "
                  "{\"suite\":\"unit\",\"name\":\"t_bad\"}",
                  "ci.test.failed 1 1700000000123456789 ci {\"suite\":\"unit\",\"name\":\"t_bad\"}",
                  NULL});

    //  Kinds without rules give nothing
    msgpack_packer *pk = testrec_begin (recs, "git.branch", "repo", ts, 3);
    omni_record_pack_kv (pk, "name", "main");
    omni_record_pack_kv (pk, "target", "abc");
    msgpack_pack_str_with_body (pk, "head", 4);
    msgpack_pack_true (pk);
    testrec_end (recs);
    s_expect (derive, recs, (const char *[]){NULL});
    assert (derive_wants (omni_kinds_lookup ("ci.test", 7)));
    assert (!derive_wants (omni_kinds_lookup ("git.branch", 10)));
    //  By number: exactly the four kinds of the table, not the custom ones
    size_t wanted = 0;
    for (size_t k = 0; omni_kinds_at (k); k++)
        wanted += derive_wants (omni_kinds_at (k));
    assert (wanted == 4 && derive_wants (omni_kinds_lookup ("metric", 6)));
    assert (!derive_wants (omni_kinds_custom ()) && !derive_wants (NULL));

    //  Hostile text: quotes, backslashes, control bytes and NUL in tags
    pk = testrec_begin (recs, "metric", "s\"rc", ts, 2);
    omni_record_pack_kv (pk, "name", "m");
    omni_record_pack_kv_double (pk, "value", -1);
    testrec_tag (recs, "k\"\\", "v\n\x01");
    testrec_end (recs);
    s_expect (
        derive, recs,
        (const char *[]){"m -1 1700000000123456789 s\"rc {\"k\\\"\\\\\":\"v\\n\\u0001\"}", NULL});
    //  a tag value with NUL (the encoder takes C strings: patch the map)
    s_seen_t seen = {.count = 0};
    {
        testrec_t *one = testrec_new ();
        pk = testrec_begin (one, "metric", "src", ts, 2);
        omni_record_pack_kv (pk, "name", "m");
        omni_record_pack_kv_double (pk, "value", 2);
        testrec_tag (one, "k", "aXb");
        testrec_end (one);
        omni_record_t r = testrec_records (one)[0];
        msgpack_object *v = &r.tags->via.map.ptr[0].val;
        ((char *) v->via.str.ptr)[1] = 0;
        derive_record (derive, &r, s_collect, &seen);
        testrec_destroy (&one);
    }
    assert (seen.count == 1);
    assert (strstr (seen.text[0], "{\"k\":\"a\\ufffdb\"}"));
    testrec_clear (recs);

    //  Out of range: a commit time that overflows ns; oversized tags
    testrec_commit (recs, "repo", "big", "x@example.org", 0, INT64_C (100000000000000), 1, 1, 1);
    char huge[2000];
    memset (huge, 'h', sizeof huge - 1);
    huge[sizeof huge - 1] = 0;
    testrec_metric (recs, "src", ts, "m", 1, huge);
    testrec_metric (recs, huge, ts, "m", 1, NULL);
    s_expect (derive, recs, (const char *[]){NULL});
    assert (derive_skipped (derive, DERIVE_SKIP_TIME_RANGE) == 4);
    assert (derive_skipped (derive, DERIVE_SKIP_TOO_LARGE) == 2);
    assert (strcmp (derive_skip_name (DERIVE_SKIP_TOO_LARGE), "too_large") == 0);

    //  Commit times before 1970 work
    testrec_commit (recs, "repo", "old", "x@example.org", 0, -86400, 1, 0, 0);
    seen.count = 0;
    derive_record (derive, &testrec_records (recs)[0], s_collect, &seen);
    assert (seen.count == 4);
    assert (strstr (seen.text[0], "git.commits 1 -86400000000000 repo"));
    testrec_clear (recs);

    testrec_destroy (&recs);
    derive_destroy (&derive);
    assert (derive == NULL);
}
