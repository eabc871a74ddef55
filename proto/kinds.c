/*  kinds: the one table of record kinds.                                     */
#include "proto/kinds.h"

#include <assert.h>
#include <pthread.h>
#include <string.h>

#define ALL_BUT_METRICS (WRITER_ARCHIVE | WRITER_RELATIONAL | WRITER_DOCUMENT)

static const omni_field_spec_t s_run_start[] = {
    {"collector", FIELD_STR, true, "collector type, e.g. git", NULL, NULL},
    {"source", FIELD_STR, true, "what is collected, e.g. the repository path or URL", NULL, NULL},
    {"config", FIELD_MAP, false, "collector settings in force", NULL, NULL},
    {"started", FIELD_INT, true, "ns since epoch", NULL, NULL},
    {"project", FIELD_STR, false, "the project the source belongs to (config key project)", NULL,
     NULL},
    {NULL}};

static const omni_field_spec_t s_run_end[] = {
    {"collector", FIELD_STR, true, "collector type", NULL, NULL},
    {"source", FIELD_STR, true, "what was collected", NULL, NULL},
    {"status", FIELD_STR, true, "ok | failed | interrupted", NULL, NULL},
    {"counts", FIELD_MAP, true, "records sent per kind", NULL, NULL},
    {"started", FIELD_INT, true, "ns since epoch", NULL, NULL},
    {"finished", FIELD_INT, true, "ns since epoch", NULL, NULL},
    {"duration", FIELD_NUM, true, "seconds", NULL, NULL},
    {"error", FIELD_STR, false, "why the run failed", NULL, NULL},
    {NULL}};

//  Array elements: what relationald stores of a commit's parents and
//  files (text[] and commit_files rows) is checked once, by ingestd
static const omni_field_spec_t s_sha_element = {"", FIELD_STR, true, "a sha", NULL, NULL};
static const omni_field_spec_t s_file_members[] = {
    {"path", FIELD_STR, true, "the path after the commit", NULL, NULL},
    {"insertions", FIELD_INT, false, "lines added", NULL, NULL},
    {"deletions", FIELD_INT, false, "lines removed", NULL, NULL},
    {"binary", FIELD_BOOL, false, "a binary file (no line counts)", NULL, NULL},
    {NULL}};
static const omni_field_spec_t s_file_element = {
    "", FIELD_MAP, true, "one file the commit changed", NULL, s_file_members};

static const omni_field_spec_t s_git_commit[] = {
    {"sha", FIELD_STR, true, "full hex object id", NULL, NULL},
    {"parents", FIELD_ARRAY, true, "parent shas, first parent first", &s_sha_element, NULL},
    {"author_name", FIELD_STR, true, "UTF-8 (invalid bytes replaced, see author_name_raw)", NULL,
     NULL},
    {"author_email", FIELD_STR, true, "", NULL, NULL},
    {"author_time", FIELD_INT, true, "seconds since epoch", NULL, NULL},
    {"author_tz", FIELD_INT, true, "UTC offset in minutes", NULL, NULL},
    {"committer_name", FIELD_STR, true, "", NULL, NULL},
    {"committer_email", FIELD_STR, true, "", NULL, NULL},
    {"committer_time", FIELD_INT, true, "seconds since epoch", NULL, NULL},
    {"committer_tz", FIELD_INT, true, "UTC offset in minutes", NULL, NULL},
    {"message", FIELD_STR, true, "full message, UTF-8", NULL, NULL},
    {"files_changed", FIELD_INT, true, "as git diff --numstat --no-renames first-parent", NULL,
     NULL},
    {"insertions", FIELD_INT, true, "", NULL, NULL},
    {"deletions", FIELD_INT, true, "", NULL, NULL},
    {"files", FIELD_ARRAY, false,
     "maps {path, insertions, deletions, binary, old_path (renamed from, 50% similarity)}",
     &s_file_element, NULL},
    {"raw", FIELD_MAP, false, "original bytes of fields that were not valid UTF-8", NULL, NULL},
    {"author_name_mailmap", FIELD_STR, false, ".mailmap's canonical name, when it differs", NULL,
     NULL},
    {"author_email_mailmap", FIELD_STR, false, ".mailmap's canonical e-mail, when it differs", NULL,
     NULL},
    {"committer_name_mailmap", FIELD_STR, false, "", NULL, NULL},
    {"committer_email_mailmap", FIELD_STR, false, "", NULL, NULL},
    {NULL}};

static const omni_field_spec_t s_git_unreachable[] = {
    {"sha", FIELD_STR, true, "a commit sent before that no ref reaches any more", NULL, NULL},
    {NULL}};

static const omni_field_spec_t s_git_branch[] = {
    {"name", FIELD_STR, true, "short name, e.g. main", NULL, NULL},
    {"target", FIELD_STR, true, "sha the branch points to", NULL, NULL},
    {"head", FIELD_BOOL, true, "whether HEAD points to this branch", NULL, NULL},
    {NULL}};

static const omni_field_spec_t s_git_tag[] = {
    {"name", FIELD_STR, true, "short name", NULL, NULL},
    {"target", FIELD_STR, true, "sha of the tagged object (peeled)", NULL, NULL},
    {"annotated", FIELD_BOOL, true, "", NULL, NULL},
    {"tagger_name", FIELD_STR, false, "", NULL, NULL},
    {"tagger_email", FIELD_STR, false, "", NULL, NULL},
    {"tagger_time", FIELD_INT, false, "seconds since epoch", NULL, NULL},
    {"tagger_tz", FIELD_INT, false, "UTC offset in minutes", NULL, NULL},
    {"message", FIELD_STR, false, "", NULL, NULL},
    {NULL}};

static const omni_field_spec_t s_ci_build[] = {
    {"pipeline", FIELD_STR, true, "workflow / pipeline / job name", NULL, NULL},
    {"build_id", FIELD_STR, true, "the CI system's id of the run", NULL, NULL},
    {"status", FIELD_STR, true, "success | failure | cancelled | other", NULL, NULL},
    {"system", FIELD_STR, false, "github | gitlab | jenkins | junit", NULL, NULL},
    {"branch", FIELD_STR, false, "", NULL, NULL},
    {"sha", FIELD_STR, false, "", NULL, NULL},
    {"started", FIELD_INT, false, "ns since epoch", NULL, NULL},
    {"finished", FIELD_INT, false, "ns since epoch", NULL, NULL},
    {"duration", FIELD_NUM, false, "seconds", NULL, NULL},
    {"trigger", FIELD_STR, false, "push | pull_request | schedule | manual | ...", NULL, NULL},
    {"tests", FIELD_MAP, false,
     "counts {total, passed, failed, error, skipped, disabled, retried}: total is the sum, and "
     "the build's ci.test records (junit)",
     NULL, NULL},
    {NULL}};

static const omni_field_spec_t s_ci_test[] = {
    {"suite", FIELD_STR, true, "", NULL, NULL},
    {"class", FIELD_STR, false, "", NULL, NULL},
    {"name", FIELD_STR, true, "", NULL, NULL},
    {"status", FIELD_STR, true, "passed | failed | error | skipped | disabled", NULL, NULL},
    {"duration", FIELD_NUM, true, "seconds", NULL, NULL},
    {"occurrence", FIELD_INT, false,
     "the n-th result of this suite, class and name in the build's reports; absent for the "
     "first (0)",
     NULL, NULL},
    {"pipeline", FIELD_STR, false, "", NULL, NULL},
    {"build_id", FIELD_STR, false, "", NULL, NULL},
    {"file", FIELD_STR, false, "report file", NULL, NULL},
    {"failure_type", FIELD_STR, false, "", NULL, NULL},
    {"failure_message", FIELD_STR, false, "truncated to 4096 bytes", NULL, NULL},
    {"flaky", FIELD_BOOL, false, "passed on a rerun", NULL, NULL},
    {"retried", FIELD_BOOL, false,
     "an attempt run again: a later result of the same case holds the outcome", NULL, NULL},
    {NULL}};

static const omni_field_spec_t s_code_stats[] = {
    {"rev", FIELD_STR, true, "commit sha the counts are for", NULL, NULL},
    {"language", FIELD_STR, true, "", NULL, NULL},
    {"path", FIELD_STR, false, "per-file record when present", NULL, NULL},
    {"files", FIELD_INT, true, "", NULL, NULL},
    {"blank", FIELD_INT, true, "", NULL, NULL},
    {"comment", FIELD_INT, true, "", NULL, NULL},
    {"code", FIELD_INT, true, "", NULL, NULL},
    {NULL}};

static const omni_field_spec_t s_metric[] = {
    {"name", FIELD_STR, true, "series name, e.g. host.cpu.user", NULL, NULL},
    {"value", FIELD_NUM, true, "", NULL, NULL},
    {"unit", FIELD_STR, false, "e.g. percent, bytes, bytes/s", NULL, NULL},
    {NULL}};

static const omni_field_spec_t s_analysis_summary[] = {
    {"day", FIELD_STR, true, "the report's date, UTC, YYYY-MM-DD", NULL, NULL},
    {"since", FIELD_INT, false, "start of the period, ns since epoch; absent = open", NULL, NULL},
    {"until", FIELD_INT, false, "end of the period (exclusive), ns since epoch; absent = open",
     NULL, NULL},
    {"commits", FIELD_INT, true, "reachable commits (author time in the period)", NULL, NULL},
    {"authors", FIELD_INT, true, "distinct canonical author e-mails", NULL, NULL},
    {"files", FIELD_INT, true, "distinct paths the commits touched", NULL, NULL},
    {"builds", FIELD_INT, true, "CI builds in the period, every status", NULL, NULL},
    {"success_rate", FIELD_NUM, false, "succeeded / (succeeded + failed); absent = none", NULL,
     NULL},
    {"test_runs", FIELD_INT, true, "test case results", NULL, NULL},
    {"tests", FIELD_INT, true, "distinct test cases", NULL, NULL},
    {"code_lines", FIELD_INT, false, "lines of code at the latest snapshot", NULL, NULL},
    {"bus_factor", FIELD_INT, false, "fewest authors with half the commits", NULL, NULL},
    {NULL}};

static const omni_field_spec_t s_any[] = {{NULL}};

static const omni_kind_spec_t s_kinds[] = {
    [KIND_RUN_START] = {"run.start",
                        "runs",
                        ALL_BUT_METRICS,
                        false,
                        {"@ts", "collector"},
                        s_run_start,
                        "a collection run began"},
    [KIND_RUN_END] = {"run.end",
                      "runs",
                      ALL_BUT_METRICS,
                      false,
                      {"@ts", "collector"},
                      s_run_end,
                      "a collection run ended"},
    [KIND_GIT_COMMIT] =
        {"git.commit", "git_commits", WRITER_ALL, false, {"sha"}, s_git_commit, "one commit"},
    [KIND_GIT_BRANCH] = {"git.branch",
                         "git_branches",
                         ALL_BUT_METRICS,
                         true,
                         {"name"},
                         s_git_branch,
                         "a branch and where it points now"},
    [KIND_GIT_TAG] = {"git.tag", "git_tags", ALL_BUT_METRICS, true, {"name"}, s_git_tag, "a tag"},
    //  Keyed on the time too: a commit restored then dropped again is a new fact
    [KIND_GIT_UNREACHABLE] =
        {"git.unreachable",
         "git_unreachable",
         WRITER_ARCHIVE | WRITER_RELATIONAL,
         false,
         {"sha", "@ts"},
         s_git_unreachable,
         "a commit sent earlier is no longer reachable from the refs (amended, rebased away)"},
    [KIND_CI_BUILD] = {"ci.build",
                       "ci_builds",
                       WRITER_ALL,
                       true,
                       {"pipeline", "build_id"},
                       s_ci_build,
                       "one CI build or pipeline run"},
    [KIND_CI_TEST] = {"ci.test",
                      "ci_tests",
                      WRITER_ALL,
                      false,
                      {"build_id", "suite", "class", "name", "?occurrence"},
                      s_ci_test,
                      "one test case result"},
    [KIND_CODE_STATS] = {"code.stats",
                         "code_stats",
                         ALL_BUT_METRICS,
                         false,
                         {"rev", "language", "path"},
                         s_code_stats,
                         "line counts per language (or per file) at a revision"},
    //  One source's figures in one report (omni-report --intake); a later
    //  report of the same day and period replaces it
    [KIND_ANALYSIS_SUMMARY] =
        {"analysis.summary",
         "analysis_summaries",
         ALL_BUT_METRICS,
         true,
         {"day", "since", "until"},
         s_analysis_summary,
         "the headline figures of a report, per source (omni-report --intake)"},
    [KIND_METRIC] = {"metric",
                     "metrics",
                     WRITER_ARCHIVE | WRITER_DOCUMENT | WRITER_METRICS,
                     false,
                     {"name", "@ts", "@tags"},
                     s_metric,
                     "one point of a time series"},
};

static const omni_kind_spec_t s_custom = {
    "x.*",
    "custom",
    WRITER_ARCHIVE | WRITER_DOCUMENT,
    false,
    {NULL},
    s_any,
    "user-declared kind (collectord exec), keyed on its body"};

#define KIND_COUNT (sizeof s_kinds / sizeof s_kinds[0])
_Static_assert(KIND_COUNT == KIND_CUSTOM, "a spec for every declared omni_kind_id_t");

omni_kind_id_t
omni_kinds_id (const omni_kind_spec_t *spec)
{
    assert (spec == &s_custom || (spec >= s_kinds && spec < s_kinds + KIND_COUNT));
    return spec == &s_custom ? KIND_CUSTOM : (omni_kind_id_t) (spec - s_kinds);
}

//  The declared kinds by name: open addressing over a hash of a name's
//  length and first and last letters, which tells every declared kind apart
//  in one or two probes (the self-test says so). ingestd and every writer
//  look up every record's kind; a scan of the table in its order took 177
//  instructions for `metric`, the last kind and the most frequent one.
#define S_SLOTS 64
static uint8_t s_slot[S_SLOTS]; //  a kind's index + 1, 0: empty
static uint8_t s_name_len[KIND_COUNT];

static inline size_t
s_hash (const char *name, size_t len)
{
    return ((size_t) len * 7 + (uint8_t) name[0] * 3 + (uint8_t) name[len - 1]) % S_SLOTS;
}

static void
s_build_slots (void)
{
    _Static_assert(KIND_COUNT < S_SLOTS / 2 && KIND_COUNT < 255, "room to probe");
    for (size_t k = 0; k < KIND_COUNT; k++) {
        size_t len = strlen (s_kinds[k].name);
        s_name_len[k] = (uint8_t) len;
        size_t slot = s_hash (s_kinds[k].name, len);
        while (s_slot[slot])
            slot = (slot + 1) % S_SLOTS;
        s_slot[slot] = (uint8_t) (k + 1);
    }
}

static pthread_once_t s_slots_once = PTHREAD_ONCE_INIT;

const omni_kind_spec_t *
omni_kinds_lookup (const char *name, size_t len)
{
    if (len > 2 && name[0] == 'x' && name[1] == '.')
        return &s_custom;
    if (len == 0)
        return NULL;
    pthread_once (&s_slots_once, s_build_slots);
    for (size_t slot = s_hash (name, len); s_slot[slot]; slot = (slot + 1) % S_SLOTS) {
        size_t k = s_slot[slot] - 1u;
        if (s_name_len[k] == len && memcmp (s_kinds[k].name, name, len) == 0)
            return &s_kinds[k];
    }
    return NULL;
}

//  How many probes finding `name` takes (the self-test)
static int
s_probes (const char *name)
{
    size_t len = strlen (name);
    int n = 1;
    for (size_t slot = s_hash (name, len); s_slot[slot]; slot = (slot + 1) % S_SLOTS, n++) {
        size_t k = s_slot[slot] - 1u;
        if (s_name_len[k] == len && memcmp (s_kinds[k].name, name, len) == 0)
            return n;
    }
    return 0;
}

static uint64_t s_key_masks[KIND_COUNT];

const char *
omni_kinds_key_field (const char *part)
{
    return part[0] == '?' ? part + 1 : part;
}
static pthread_once_t s_key_masks_once = PTHREAD_ONCE_INIT;

static void
s_build_key_masks (void)
{
    for (size_t k = 0; k < KIND_COUNT; k++)
        for (int n = 0; s_kinds[k].fields[n].name && n < 64; n++)
            for (int i = 0; i < KIND_KEY_MAX && s_kinds[k].key[i]; i++)
                if (strcmp (omni_kinds_key_field (s_kinds[k].key[i]), s_kinds[k].fields[n].name) ==
                    0)
                    s_key_masks[k] |= 1ULL << n;
}

uint64_t
omni_kinds_key_mask (const omni_kind_spec_t *spec)
{
    if (spec < s_kinds || spec >= s_kinds + KIND_COUNT)
        return 0; //  the custom kinds: keyed on the whole body
    pthread_once (&s_key_masks_once, s_build_key_masks);
    return s_key_masks[spec - s_kinds];
}

const omni_kind_spec_t *
omni_kinds_at (size_t index)
{
    return index < KIND_COUNT ? &s_kinds[index] : NULL;
}

const omni_kind_spec_t *
omni_kinds_custom (void)
{
    return &s_custom;
}

static const char *s_writer_names[WRITER_MAX] = {"archive", "relational", "document", "metrics"};

unsigned
omni_kinds_writer_role (const char *name)
{
    for (unsigned i = 0; i < WRITER_MAX; i++)
        if (strcmp (name, s_writer_names[i]) == 0)
            return 1u << i;
    return 0;
}

const char *
omni_kinds_writer_name (unsigned role)
{
    for (unsigned i = 0; i < WRITER_MAX; i++)
        if (role == 1u << i)
            return s_writer_names[i];
    return "?";
}

const char *
omni_field_type_name (omni_field_type_t type)
{
    static const char *names[] = {"str", "int", "number", "bool", "bin", "array", "map", "any"};
    return names[type];
}

void
omni_kinds_test (bool verbose)
{
    (void) verbose;
    const omni_kind_spec_t *spec = omni_kinds_lookup ("git.commit", 10);
    assert (spec && strcmp (spec->collection, "git_commits") == 0);
    assert (spec->writers & WRITER_RELATIONAL);
    assert (omni_kinds_lookup ("git.commi", 9) == NULL);
    //  Every declared kind is found, in at most two probes; other names not
    for (size_t k = 0; k < KIND_COUNT; k++) {
        const char *name = s_kinds[k].name;
        assert (omni_kinds_lookup (name, strlen (name)) == &s_kinds[k]);
        int probes = s_probes (name);
        assert (probes >= 1 && probes <= 2);
        char other[32];
        size_t len = strlen (name);
        assert (len < sizeof other);
        memcpy (other, name, len);
        other[len / 2] ^= 0x20;
        assert (omni_kinds_lookup (other, len) == NULL);
        assert (omni_kinds_lookup (name, strlen (name) - 1) == NULL);
    }
    assert (omni_kinds_lookup ("", 0) == NULL);
    assert (omni_kinds_lookup ("m", 1) == NULL);
    assert (omni_kinds_lookup ("x.deploy", 8) == omni_kinds_custom ());
    assert (omni_kinds_lookup ("x.", 2) == NULL);
    spec = omni_kinds_lookup ("analysis.summary", 16);
    assert (spec && spec->mutable_state && !(spec->writers & WRITER_METRICS));
    assert (omni_kinds_writer_role ("archive") == WRITER_ARCHIVE);
    assert (omni_kinds_writer_role ("metrics") == WRITER_METRICS);
    assert (omni_kinds_writer_role ("nope") == 0);
    assert (strcmp (omni_kinds_writer_name (WRITER_DOCUMENT), "document") == 0);
    //  Every declared kind goes to the archive, and every key part is a
    //  declared field or a record field, so ids are well defined.
    size_t n = 0;
    for (const omni_kind_spec_t *k; (k = omni_kinds_at (n)); n++) {
        assert (k->writers & WRITER_ARCHIVE);
        //  Element types only on arrays, members only on maps
        for (const omni_field_spec_t *f = k->fields; f->name; f++) {
            assert (!f->element || f->type == FIELD_ARRAY);
            assert (!f->members || f->type == FIELD_MAP);
            assert (!f->element || !f->element->members || f->element->type == FIELD_MAP);
            //  One level: elements and members are checked in the body's own
            //  fields only (omni_record_check)
            for (const omni_field_spec_t *m = f->members; m && m->name; m++)
                assert (!m->element && !m->members);
            for (const omni_field_spec_t *m = f->element ? f->element->members : NULL; m && m->name;
                 m++)
                assert (!m->element && !m->members);
        }
        for (int i = 0; i < KIND_KEY_MAX && k->key[i]; i++) {
            if (k->key[i][0] == '@')
                continue;
            const char *name = k->key[i] + (k->key[i][0] == '?');
            bool found = false;
            for (const omni_field_spec_t *f = k->fields; f->name; f++)
                found |= strcmp (f->name, name) == 0;
            assert (found);
        }
    }
    assert (n == KIND_COUNT);
    //  Every number has its spec (no gap in the table), found by its name
    for (size_t id = 0; id < KIND_COUNT; id++) {
        const omni_kind_spec_t *k = omni_kinds_at (id);
        assert (k->name && k->fields && omni_kinds_id (k) == (omni_kind_id_t) id);
        assert (omni_kinds_lookup (k->name, strlen (k->name)) == k);
    }
    assert (omni_kinds_id (omni_kinds_lookup ("run.end", 7)) == KIND_RUN_END);
    assert (omni_kinds_id (omni_kinds_lookup ("x.deploy", 8)) == KIND_CUSTOM);
    //  git.commit is keyed on sha, its first field; ci.test on four and an optional fifth
    spec = omni_kinds_lookup ("git.commit", 10);
    assert (omni_kinds_key_mask (spec) == 1);
    assert (__builtin_popcountll (omni_kinds_key_mask (omni_kinds_lookup ("ci.test", 7))) == 5);
    assert (omni_kinds_key_mask (omni_kinds_lookup ("metric", 6)) ==
            1); //  name; @ts and @tags are no field
    assert (omni_kinds_key_mask (omni_kinds_custom ()) == 0);
    //  git.commit: parents an array of str, files an array of maps with a str path
    spec = omni_kinds_lookup ("git.commit", 10);
    const omni_field_spec_t *parents = &spec->fields[1], *files = NULL;
    for (const omni_field_spec_t *f = spec->fields; f->name; f++)
        if (strcmp (f->name, "files") == 0)
            files = f;
    assert (strcmp (parents->name, "parents") == 0 && parents->element->type == FIELD_STR);
    assert (files && files->element->type == FIELD_MAP);
    assert (strcmp (files->element->members[0].name, "path") == 0);
    assert (files->element->members[0].type == FIELD_STR && files->element->members[0].required);
}
