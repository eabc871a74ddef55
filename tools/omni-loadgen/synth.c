/*  synth: deterministic synthetic records for omni-loadgen.

    Every value of record `index` comes from a splitmix64 stream seeded with
    (seed, index), so a record never depends on the ones before it and any
    index can be regenerated alone (--start-index, --dump).

    Records are assembled here, not by record_encoder: the encoder
    validates each record by decoding it again (the right default for a
    collector), which costs more than everything else a load generator
    does, and omni-loadgen must outrun ingestd. The bytes are exactly what
    record_encoder would produce (same fields, order and packing) and the
    id comes from omni_record_compute_id; the self-test checks both against the
    encoder for every kind.

    Padding to a target size is computed, not searched: the record is
    packed once without padding, and the one string that carries the
    padding is packed again with the length that makes the size come out
    right, allowing for its msgpack header growing at 32, 256 and 65536
    bytes.                                                                  */
#include "tools/omni-loadgen/synth.h"
#include "common/util.h"

#include <assert.h>
#include <inttypes.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { K_METRIC, K_COMMIT, K_TEST, K_BUILD, K_STATS, K_COUNT, K_MIX = K_COUNT } s_kind_t;

static const char *s_kind_names[K_COUNT] = {"metric", "git.commit", "ci.test", "ci.build",
                                            "code.stats"};

static const char *s_bad_names[SYNTH_BAD_COUNT] = {
    "none", "garbage", "truncated", "wrong-types", "bad-version", "deep", "huge"};

static const char s_filler_text[] =
    "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
    "incididunt ut labore et dolore magna aliqua. ut enim ad minim veniam, quis nostrud "
    "exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. ";

struct _synth_t {
    s_kind_t kind;
    uint64_t seed;
    size_t size;
    uint64_t suite_size;
    char *src, *col, *run;
    const omni_kind_spec_t *specs[K_COUNT];
    msgpack_sbuffer body, tags, out; //  the record being assembled, and its parts
    msgpack_packer body_pk, tags_pk, out_pk;
    uint64_t sha_index[2]; //  the last commit shas computed (bodies
    char sha_hex[2][41];   //  use index and index - 1, twice each)
    bool sha_valid[2];
    char *filler; //  padding text, filler_size bytes
    size_t filler_size;
    s_kind_t last_kind;
    uint8_t last_id[RECORD_ID_SIZE];
    msgpack_sbuffer bad; //  the last bad input
    msgpack_packer bad_pk;
    msgpack_sbuffer huge; //  the too large input, built once
    msgpack_packer huge_pk;
};

//  ---------------------------------------------------------------------------
//  Random numbers: splitmix64

static uint64_t
s_mix (uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

typedef struct {
    uint64_t state;
} s_rng_t;

static s_rng_t
s_rng (uint64_t seed, uint64_t index, uint64_t salt)
{
    s_rng_t rng = {s_mix (s_mix (seed ^ salt) ^ index)};
    return rng;
}

static uint64_t
s_next (s_rng_t *rng)
{
    rng->state += 0x9e3779b97f4a7c15ULL;
    return s_mix (rng->state);
}

static uint64_t
s_below (s_rng_t *rng, uint64_t n)
{
    return s_next (rng) % n;
}

//  ---------------------------------------------------------------------------

synth_t *
synth_new (const synth_config_t *config, char *error, size_t error_size)
{
    s_kind_t kind = K_COUNT + 1;
    const char *name = config->kind ? config->kind : "metric";
    if (strcmp (name, "mix") == 0)
        kind = K_MIX;
    for (int k = 0; k < K_COUNT; k++)
        if (strcmp (name, s_kind_names[k]) == 0)
            kind = (s_kind_t) k;
    if (kind > K_MIX) {
        snprintf (error, error_size,
                  "unknown kind \"%s\" (expected metric, git.commit, ci.test, ci.build, "
                  "code.stats or mix)",
                  name);
        return NULL;
    }
    synth_t *self = calloc (1, sizeof *self);
    assert (self);
    self->kind = kind;
    self->seed = config->seed;
    self->size = config->size;
    self->suite_size = config->suite_size;
    self->src = strdup (config->src ? config->src : "loadgen");
    self->col = strdup (config->col ? config->col : "omni-loadgen");
    if (config->run)
        self->run = strdup (config->run);
    else {
        char run[64];
        snprintf (run, sizeof run, "loadgen-%" PRIu64, config->seed);
        self->run = strdup (run);
    }
    for (int k = 0; k < K_COUNT; k++) {
        self->specs[k] = omni_kinds_lookup (s_kind_names[k], strlen (s_kind_names[k]));
        assert (self->specs[k]);
    }
    msgpack_sbuffer_init (&self->body);
    msgpack_packer_init (&self->body_pk, &self->body, msgpack_sbuffer_write);
    msgpack_sbuffer_init (&self->tags);
    msgpack_packer_init (&self->tags_pk, &self->tags, msgpack_sbuffer_write);
    msgpack_sbuffer_init (&self->out);
    msgpack_packer_init (&self->out_pk, &self->out, msgpack_sbuffer_write);
    msgpack_sbuffer_init (&self->bad);
    msgpack_packer_init (&self->bad_pk, &self->bad, msgpack_sbuffer_write);
    msgpack_sbuffer_init (&self->huge);
    msgpack_packer_init (&self->huge_pk, &self->huge, msgpack_sbuffer_write);
    return self;
}

void
synth_destroy (synth_t **self_p)
{
    synth_t *self = *self_p;
    if (!self)
        return;
    free (self->src);
    free (self->col);
    free (self->run);
    free (self->filler);
    msgpack_sbuffer_destroy (&self->body);
    msgpack_sbuffer_destroy (&self->tags);
    msgpack_sbuffer_destroy (&self->out);
    msgpack_sbuffer_destroy (&self->bad);
    msgpack_sbuffer_destroy (&self->huge);
    free (self);
    *self_p = NULL;
}

//  At least `len` bytes of padding text.
static const char *
s_filler (synth_t *self, size_t len)
{
    if (len > self->filler_size) {
        size_t size = len < 4096 ? 4096 : len;
        free (self->filler);
        self->filler = malloc (size);
        assert (self->filler);
        size_t text = sizeof s_filler_text - 1;
        for (size_t i = 0; i < size; i += text)
            memcpy (self->filler + i, s_filler_text, size - i < text ? size - i : text);
        self->filler_size = size;
    }
    return self->filler;
}

//  Size of a msgpack str header for a string of `len` bytes.
static size_t
s_str_header (size_t len)
{
    return len < 32 ? 1 : len < 256 ? 2 : len < 65536 ? 3 : 5;
}

static int64_t
s_ts (synth_t *self, uint64_t index)
{
    return SYNTH_T0 + (int64_t) index * 1000000 + (int64_t) (self->seed % 1000000);
}

//  40 hex digits: the sha of synthetic commit `index` of this seed.
static const char *
s_commit_sha (synth_t *self, uint64_t index)
{
    int slot = (int) (index & 1);
    if (self->sha_valid[slot] && self->sha_index[slot] == index)
        return self->sha_hex[slot];
    uint8_t input[32] = "omni-loadgen/commit";
    for (int i = 0; i < 8; i++) {
        input[16 + i] = (uint8_t) (self->seed >> (8 * i));
        input[24 + i] = (uint8_t) (index >> (8 * i));
    }
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256 (input, sizeof input, digest);
    omni_util_hex (digest, 20, self->sha_hex[slot]);
    self->sha_index[slot] = index;
    self->sha_valid[slot] = true;
    return self->sha_hex[slot];
}

static s_kind_t
s_kind_of (synth_t *self, uint64_t index)
{
    if (self->kind != K_MIX)
        return self->kind;
    uint64_t r = s_mix (self->seed ^ s_mix (index ^ 0x6d6978ULL)) % 100;
    return r < 50 ? K_METRIC : r < 65 ? K_COMMIT : r < 85 ? K_TEST : r < 95 ? K_STATS : K_BUILD;
}

//  ---------------------------------------------------------------------------
//  Bodies. Each packs the body of record `index` with `pad` bytes of padding
//  where the kind pads its body, and returns the length of the padded string
//  without the padding (0 when the kind pads a tag instead).

static const struct {
    const char *name, *unit;
    uint64_t max; //  values are 0..max with two decimals
} s_series[] = {{"host.cpu.user", "percent", 100},
                {"host.cpu.system", "percent", 100},
                {"host.mem.used", "bytes", 64ULL << 30},
                {"host.disk.read", "bytes/s", 1ULL << 30},
                {"host.disk.write", "bytes/s", 1ULL << 30},
                {"host.net.rx", "bytes/s", 1ULL << 30},
                {"host.net.tx", "bytes/s", 1ULL << 30},
                {"host.load.1m", "load", 16},
                {"app.requests", "requests/s", 5000},
                {"app.latency.p99", "seconds", 5},
                {"app.errors", "errors/s", 50},
                {"ci.queue.length", "jobs", 200}};

static size_t
s_body_metric (synth_t *self, msgpack_packer *pk, s_rng_t *rng, uint64_t index, size_t pad)
{
    (void) self;
    (void) index;
    (void) pad;
    size_t series = s_below (rng, sizeof s_series / sizeof s_series[0]);
    msgpack_pack_map (pk, 3);
    omni_record_pack_kv (pk, "name", s_series[series].name);
    omni_record_pack_kv_double (pk, "value",
                                (double) s_below (rng, s_series[series].max * 100 + 1) / 100.0);
    omni_record_pack_kv (pk, "unit", s_series[series].unit);
    return 0;
}

static const struct {
    const char *name, *email;
} s_people[] = {{"Ada Lovelace", "ada@example.org"},
                {"Jos\xc3\xa9 M\xc3\xbcller", "jose.mueller@example.org"},
                {"Grace Hopper", "grace@example.com"},
                {"Zo\xc3\xab \xc3\x87"
                 "elik",
                 "zoe.celik@example.net"},
                {"\xe6\x9d\x8e\xe9\x9b\xb7", "lilei@example.cn"},
                {"Margaret Hamilton", "margaret@example.org"},
                {"Ken Thompson", "ken@example.com"},
                {"Barbara Liskov", "barbara@example.edu"}};

static const char *s_subjects[] = {"Fix race in journal trim",  "Add retry to intake client",
                                   "Refactor config loader",    "Update dependencies",
                                   "Improve error messages",    "Speed up JSON encoding",
                                   "Document the tap protocol", "Handle empty batches"};

static const int s_timezones[] = {0, 60, 120, -300, -480, 330, 540};

static size_t
s_body_commit (synth_t *self, msgpack_packer *pk, s_rng_t *rng, uint64_t index, size_t pad)
{
    char base[160];
    size_t author = s_below (rng, 8);
    size_t committer = s_below (rng, 5) == 0 ? s_below (rng, 8) : author;
    int64_t author_time = s_ts (self, index) / 1000000000 - (int64_t) s_below (rng, 30 * 86400);
    int64_t committer_time = author_time + (int64_t) s_below (rng, 3600);
    int tz = s_timezones[s_below (rng, sizeof s_timezones / sizeof s_timezones[0])];
    int base_len =
        snprintf (base, sizeof base, "%s (#%" PRIu64 ")\n\n", s_subjects[s_below (rng, 8)], index);
    msgpack_pack_map (pk, 14);
    omni_record_pack_kv (pk, "sha", s_commit_sha (self, index));
    omni_record_pack_str (pk, "parents");
    if (index > 0) {
        msgpack_pack_array (pk, 1);
        omni_record_pack_str (pk, s_commit_sha (self, index - 1));
    } else
        msgpack_pack_array (pk, 0);
    omni_record_pack_kv (pk, "author_name", s_people[author].name);
    omni_record_pack_kv (pk, "author_email", s_people[author].email);
    omni_record_pack_kv_int (pk, "author_time", author_time);
    omni_record_pack_kv_int (pk, "author_tz", tz);
    omni_record_pack_kv (pk, "committer_name", s_people[committer].name);
    omni_record_pack_kv (pk, "committer_email", s_people[committer].email);
    omni_record_pack_kv_int (pk, "committer_time", committer_time);
    omni_record_pack_kv_int (pk, "committer_tz", tz);
    omni_record_pack_str (pk, "message");
    msgpack_pack_str (pk, (size_t) base_len + pad);
    msgpack_pack_str_body (pk, base, (size_t) base_len);
    msgpack_pack_str_body (pk, s_filler (self, pad), pad);
    omni_record_pack_kv_int (pk, "files_changed", 1 + (int64_t) s_below (rng, 20));
    omni_record_pack_kv_int (pk, "insertions", (int64_t) s_below (rng, 500));
    omni_record_pack_kv_int (pk, "deletions", (int64_t) s_below (rng, 300));
    return (size_t) base_len;
}

static size_t
s_body_test (synth_t *self, msgpack_packer *pk, s_rng_t *rng, uint64_t index, size_t pad)
{
    (void) pad;
    char suite[32], klass[64], name[48], build[64];
    //  The draws are made either way: a suite size changes the names only
    uint64_t module = s_below (rng, 12), klass_no = s_below (rng, 40);
    uint64_t test = index, per_build = 200;
    if (self->suite_size) {
        test = index % self->suite_size;
        per_build = self->suite_size;
        module = test % 12;
        klass_no = test / 12 % 40;
    }
    snprintf (suite, sizeof suite, "suite-%02" PRIu64, module);
    snprintf (klass, sizeof klass, "org.example.mod%02" PRIu64 ".Test%" PRIu64, module, klass_no);
    snprintf (name, sizeof name, "test_case_%" PRIu64, test);
    snprintf (build, sizeof build, "build-%" PRIu64 "-%" PRIu64, self->seed, index / per_build);
    uint64_t roll = s_below (rng, 100);
    const char *status = roll < 90 ? "passed" : roll < 95 ? "failed" : "skipped";
    bool failed = roll >= 90 && roll < 95;
    msgpack_pack_map (pk, failed ? 8 : 7);
    omni_record_pack_kv (pk, "suite", suite);
    omni_record_pack_kv (pk, "class", klass);
    omni_record_pack_kv (pk, "name", name);
    omni_record_pack_kv (pk, "status", status);
    omni_record_pack_kv_double (pk, "duration", (double) s_below (rng, 100000) / 1000.0);
    omni_record_pack_kv (pk, "pipeline", "ci");
    omni_record_pack_kv (pk, "build_id", build);
    if (failed)
        omni_record_pack_kv (pk, "failure_message", "AssertionError: expected 200, got 503");
    return 0;
}

static size_t
s_body_build (synth_t *self, msgpack_packer *pk, s_rng_t *rng, uint64_t index, size_t pad)
{
    (void) pad;
    static const char *pipelines[] = {"build", "test", "deploy", "nightly"};
    static const char *statuses[] = {"success", "success", "success", "success", "success",
                                     "success", "success", "failure", "failure", "cancelled"};
    char build[64];
    snprintf (build, sizeof build, "b-%" PRIu64 "-%" PRIu64, self->seed, index);
    int64_t started = s_ts (self, index);
    uint64_t millis = 1000 + s_below (rng, 3600000);
    msgpack_pack_map (pk, 10);
    omni_record_pack_kv (pk, "pipeline", pipelines[s_below (rng, 4)]);
    omni_record_pack_kv (pk, "build_id", build);
    omni_record_pack_kv (pk, "status", statuses[s_below (rng, 10)]);
    omni_record_pack_kv (pk, "system", "github");
    omni_record_pack_kv (pk, "branch", "main");
    omni_record_pack_kv (pk, "sha", s_commit_sha (self, index));
    omni_record_pack_kv_int (pk, "started", started);
    omni_record_pack_kv_int (pk, "finished", started + (int64_t) millis * 1000000);
    omni_record_pack_kv_double (pk, "duration", (double) millis / 1000.0);
    omni_record_pack_kv (pk, "trigger", "push");
    return 0;
}

static size_t
s_body_stats (synth_t *self, msgpack_packer *pk, s_rng_t *rng, uint64_t index, size_t pad)
{
    (void) pad;
    static const struct {
        const char *language, *ext;
    } languages[] = {{"C", "c"},           {"Python", "py"}, {"Go", "go"},       {"Rust", "rs"},
                     {"JavaScript", "js"}, {"Shell", "sh"},  {"Markdown", "md"}, {"YAML", "yaml"}};
    char path[96];
    size_t language = s_below (rng, 8);
    snprintf (path, sizeof path, "src/mod%02" PRIu64 "/file_%" PRIu64 ".%s", s_below (rng, 30),
              index, languages[language].ext);
    uint64_t code = 10 + s_below (rng, 2000);
    msgpack_pack_map (pk, 7);
    omni_record_pack_kv (pk, "rev", s_commit_sha (self, index / 64 * 64));
    omni_record_pack_kv (pk, "language", languages[language].language);
    omni_record_pack_kv (pk, "path", path);
    omni_record_pack_kv_int (pk, "files", 1);
    omni_record_pack_kv_int (pk, "blank", (int64_t) (code / 8));
    omni_record_pack_kv_int (pk, "comment", (int64_t) s_below (rng, code / 4 + 1));
    omni_record_pack_kv_int (pk, "code", (int64_t) code);
    return 0;
}

typedef size_t (s_body_fn) (synth_t *, msgpack_packer *, s_rng_t *, uint64_t, size_t);

static s_body_fn *s_bodies[K_COUNT] = {s_body_metric, s_body_commit, s_body_test, s_body_build,
                                       s_body_stats};

//  Whether the kind pads its body (else a "pad" tag).
static bool
s_pads_body (s_kind_t kind)
{
    return kind == K_COMMIT;
}

//  ---------------------------------------------------------------------------

//  Packs the body of record `index` into self->body; returns the padded
//  string's length without padding (see s_body_fn).
static size_t
s_pack_body (synth_t *self, s_kind_t kind, uint64_t index, size_t pad)
{
    msgpack_sbuffer_clear (&self->body);
    s_rng_t rng = s_rng (self->seed, index, kind);
    return s_bodies[kind](self, &self->body_pk, &rng, index, pad);
}

//  Packs the tags of record `index` into self->tags, in key order as
//  record_encoder sorts them, with a pad tag of `pad` bytes unless pad is
//  SIZE_MAX. Returns the number of tags.
static uint32_t
s_pack_tags (synth_t *self, s_kind_t kind, uint64_t index, size_t pad)
{
    msgpack_sbuffer_clear (&self->tags);
    uint32_t ntags = (kind == K_METRIC) + (pad != SIZE_MAX);
    if (ntags == 0)
        return 0;
    msgpack_pack_map (&self->tags_pk, ntags);
    if (kind == K_METRIC) {
        char host[16];
        snprintf (host, sizeof host, "host-%02" PRIu64,
                  s_mix (self->seed ^ s_mix (index ^ 0x686f7374ULL)) % 16);
        omni_record_pack_kv (&self->tags_pk, "host", host);
    }
    if (pad != SIZE_MAX) {
        omni_record_pack_str (&self->tags_pk, "pad");
        msgpack_pack_str_with_body (&self->tags_pk, s_filler (self, pad), pad);
    }
    return ntags;
}

//  Packs the envelope of record `index` into self->out as omni_record_encoder_end
//  does, up to and including the "body" key, for a record with tags or not.
//  Returns the offset of the id.
static size_t
s_pack_envelope_head (synth_t *self, s_kind_t kind, uint64_t index, bool tags)
{
    return omni_record_pack_head (&self->out, &self->out_pk, tags, s_kind_names[kind], self->src,
                                  self->col, self->run, s_ts (self, index));
}

//  Size of the record with `pad` bytes of padding, given `size0`, its size
//  without, and `base_len`, the padded string's length without padding.
static size_t
s_padded_size (size_t size0, size_t base_len, size_t pad)
{
    return size0 + pad + s_str_header (base_len + pad) - s_str_header (base_len);
}

//  The largest padding that keeps the record within self->size bytes:
//  exact, unless the target falls in the gap where the padded string's
//  header grows (1 to 2 bytes at 32, 256 and 65536 bytes).
static size_t
s_solve_pad (synth_t *self, size_t size0, size_t base_len)
{
    size_t header0 = s_str_header (base_len), pad = 0;
    static const size_t headers[] = {1, 2, 3, 5};
    for (int h = 0; h < 4; h++) {
        if (headers[h] < header0 || self->size < size0 + headers[h] - header0)
            continue;
        size_t candidate = self->size - size0 - (headers[h] - header0);
        while (candidate > 0 && s_padded_size (size0, base_len, candidate) > self->size)
            candidate--;
        if (s_padded_size (size0, base_len, candidate) <= self->size && candidate > pad)
            pad = candidate;
    }
    return pad;
}

void
synth_record (synth_t *self, uint64_t index, const void **data, size_t *size)
{
    s_kind_t kind = s_kind_of (self, index);
    bool pads_body = s_pads_body (kind);
    //  Unpadded first: body, tags with an empty pad tag when a size is
    //  asked, envelope.
    size_t base_len = s_pack_body (self, kind, index, 0);
    size_t tag_pad = self->size && !pads_body ? 0 : SIZE_MAX;
    uint32_t ntags = s_pack_tags (self, kind, index, tag_pad);
    size_t id_at = s_pack_envelope_head (self, kind, index, ntags > 0);
    if (self->size) {
        size_t size0 = self->out.size + self->body.size + (ntags ? 5 + self->tags.size : 0);
        if (pads_body) {
            size_t pad = self->size > size0 ? s_solve_pad (self, size0, base_len) : 0;
            if (pad)
                s_pack_body (self, kind, index, pad);
        } else if (self->size < size0) {
            //  Even an empty pad tag would overshoot: no pad tag.
            ntags = s_pack_tags (self, kind, index, SIZE_MAX);
            self->out.data[0] = (char) (ntags ? 0x89 : 0x88); //  the fixmap's field count
        } else
            s_pack_tags (self, kind, index, s_solve_pad (self, size0, 0));
    }
    msgpack_sbuffer_write (&self->out, self->body.data, self->body.size);
    if (ntags) {
        omni_record_pack_str (&self->out_pk, "tags");
        msgpack_sbuffer_write (&self->out, self->tags.data, self->tags.size);
    }

    //  The id, as record_encoder computes it from the checked record.
    omni_record_t record;
    int rc = omni_record_check (&record, self->out.data, self->out.size, NULL, NULL, 0);
    assert (rc == REJECT_NONE);
    omni_record_compute_id (&record, self->last_id);
    memcpy (self->out.data + id_at, self->last_id, RECORD_ID_SIZE);
    self->last_kind = kind;
    *data = self->out.data;
    *size = self->out.size;
}

const uint8_t *
synth_id (synth_t *self)
{
    return self->last_id;
}

const char *
synth_kind (synth_t *self)
{
    return s_kind_names[self->last_kind];
}

//  ---------------------------------------------------------------------------
//  Bad inputs

synth_bad_t
synth_bad_parse (const char *name)
{
    for (int m = 1; m < SYNTH_BAD_COUNT; m++)
        if (name && strcmp (name, s_bad_names[m]) == 0)
            return (synth_bad_t) m;
    return SYNTH_BAD_NONE;
}

const char *
synth_bad_name (synth_bad_t mode)
{
    return mode < SYNTH_BAD_COUNT ? s_bad_names[mode] : "?";
}

omni_record_reject_t
synth_bad_reason (synth_bad_t mode)
{
    switch (mode) {
    case SYNTH_BAD_GARBAGE:
    case SYNTH_BAD_TRUNCATED: return REJECT_NOT_MSGPACK;
    case SYNTH_BAD_WRONG_TYPES: return REJECT_BAD_BODY;
    case SYNTH_BAD_VERSION: return REJECT_BAD_VERSION;
    case SYNTH_BAD_DEEP: return REJECT_TOO_DEEP;
    case SYNTH_BAD_HUGE: return REJECT_TOO_LARGE;
    default: return REJECT_NONE;
    }
}

//  The envelope of a metric-like record, all but body (and tags): the map
//  header and seven fields.
static void
s_pack_envelope (synth_t *self, msgpack_packer *pk, uint32_t fields, uint64_t v, uint64_t index)
{
    uint8_t id[RECORD_ID_SIZE];
    s_rng_t rng = s_rng (self->seed, index, 0x626164ULL);
    for (int i = 0; i < RECORD_ID_SIZE; i++)
        id[i] = (uint8_t) s_next (&rng);
    msgpack_pack_map (pk, fields);
    omni_record_pack_str (pk, "v");
    msgpack_pack_uint64 (pk, v);
    omni_record_pack_str (pk, "id");
    msgpack_pack_bin_with_body (pk, id, RECORD_ID_SIZE);
    omni_record_pack_kv (pk, "kind", "metric");
    omni_record_pack_kv (pk, "src", self->src);
    omni_record_pack_kv (pk, "col", self->col);
    omni_record_pack_kv (pk, "run", self->run);
    omni_record_pack_kv_int (pk, "ts", s_ts (self, index));
}

void
synth_bad (synth_t *self, synth_bad_t mode, uint64_t index, const void **data, size_t *size)
{
    msgpack_sbuffer_clear (&self->bad);
    msgpack_packer *pk = &self->bad_pk;
    switch (mode) {
    case SYNTH_BAD_GARBAGE: {
        //  0xc1 is never valid msgpack, so the reason does not depend on luck.
        size_t len = self->size ? self->size : 200;
        s_rng_t rng = s_rng (self->seed, index, 0x67617262ULL);
        uint8_t byte = 0xc1;
        msgpack_sbuffer_write (&self->bad, (const char *) &byte, 1);
        for (size_t i = 1; i < len; i++) {
            byte = (uint8_t) s_next (&rng);
            msgpack_sbuffer_write (&self->bad, (const char *) &byte, 1);
        }
        break;
    }
    case SYNTH_BAD_TRUNCATED: {
        const void *record;
        size_t record_size;
        synth_record (self, index, &record, &record_size);
        msgpack_sbuffer_write (&self->bad, record, record_size / 2);
        break;
    }
    case SYNTH_BAD_WRONG_TYPES:
    case SYNTH_BAD_VERSION:
        s_pack_envelope (self, pk, 8, mode == SYNTH_BAD_VERSION ? 99 : RECORD_VERSION, index);
        omni_record_pack_str (pk, "body");
        msgpack_pack_map (pk, 3);
        omni_record_pack_kv (pk, "name", "host.cpu.user");
        if (mode == SYNTH_BAD_WRONG_TYPES)
            omni_record_pack_kv (pk, "value", "12.5");
        else
            omni_record_pack_kv_double (pk, "value", 12.5);
        omni_record_pack_kv (pk, "unit", "percent");
        break;
    case SYNTH_BAD_DEEP:
        s_pack_envelope (self, pk, 8, RECORD_VERSION, index);
        omni_record_pack_str (pk, "body");
        msgpack_pack_map (pk, 1);
        omni_record_pack_str (pk, "nested");
        for (int level = 0; level < 100; level++)
            msgpack_pack_array (pk, 1);
        msgpack_pack_int (pk, 0);
        break;
    case SYNTH_BAD_HUGE:
        if (self->huge.size == 0) {
            //  A well-formed record, only too large: a pad tag fills it up
            //  to exactly SYNTH_HUGE_SIZE bytes.
            msgpack_packer *hpk = &self->huge_pk;
            s_pack_envelope (self, hpk, 9, RECORD_VERSION, 0);
            omni_record_pack_str (hpk, "body");
            msgpack_pack_map (hpk, 2);
            omni_record_pack_kv (hpk, "name", "host.cpu.user");
            omni_record_pack_kv_double (hpk, "value", 12.5);
            omni_record_pack_str (hpk, "tags");
            msgpack_pack_map (hpk, 1);
            omni_record_pack_str (hpk, "pad");
            size_t pad = SYNTH_HUGE_SIZE - self->huge.size - 5;
            msgpack_pack_str (hpk, pad);
            msgpack_pack_str_body (hpk, s_filler (self, pad), pad);
            assert (self->huge.size == SYNTH_HUGE_SIZE);
            //  The filler is not needed at that size again.
            free (self->filler);
            self->filler = NULL;
            self->filler_size = 0;
        }
        *data = self->huge.data;
        *size = self->huge.size;
        return;
    default: assert (false);
    }
    *data = self->bad.data;
    *size = self->bad.size;
}

//  ---------------------------------------------------------------------------

//  What record_encoder makes of the last record synth_record assembled:
//  its body and tags taken from the assembled record, everything through
//  the encoder's own packing, validation and id.
static void
s_reference (synth_t *self, omni_record_encoder_t *enc, const void **data, size_t *size)
{
    msgpack_zone zone;
    msgpack_zone_init (&zone, 4096);
    omni_record_t rec;
    char detail[256];
    assert (omni_record_decode (&rec, &zone, self->out.data, self->out.size, NULL, detail,
                                sizeof detail) == REJECT_NONE);
    char *kind = omni_record_str_dup (rec.kind), *src = omni_record_str_dup (rec.src);
    char *col = omni_record_str_dup (rec.col), *run = omni_record_str_dup (rec.run);
    omni_record_encoder_begin (enc, kind, src, col, run, rec.ts);
    msgpack_pack_object (omni_record_encoder_body (enc), *rec.body);
    for (uint32_t i = 0; rec.tags && i < rec.tags->via.map.size; i++) {
        char *key = omni_record_str_dup ((omni_record_str_t){
            rec.tags->via.map.ptr[i].key.via.str.ptr, rec.tags->via.map.ptr[i].key.via.str.size});
        char *value = omni_record_str_dup ((omni_record_str_t){
            rec.tags->via.map.ptr[i].val.via.str.ptr, rec.tags->via.map.ptr[i].val.via.str.size});
        omni_record_encoder_tag (enc, key, value);
        free (key);
        free (value);
    }
    assert (omni_record_encoder_end (enc, data, size, detail, sizeof detail) == 0);
    free (kind);
    free (src);
    free (col);
    free (run);
    msgpack_zone_destroy (&zone);
}

static omni_record_reject_t
s_decode (const void *data, size_t size, omni_record_t *record, msgpack_zone *zone, char *detail)
{
    msgpack_zone_clear (zone);
    return omni_record_decode (record, zone, data, size, NULL, detail, 256);
}

void
synth_test (bool verbose)
{
    char error[256], detail[256];
    assert (synth_new (&(synth_config_t){"nope", 1, 0, NULL, NULL, NULL, 0}, error, sizeof error) ==
            NULL);
    assert (strstr (error, "nope"));

    msgpack_zone zone;
    msgpack_zone_init (&zone, 4096);
    omni_record_t rec;

    //  The records are byte for byte what record_encoder makes of them,
    //  with the same id, for every kind, with and without padding.
    omni_record_encoder_t *enc = omni_record_encoder_new ();
    const char *all[] = {"metric", "git.commit", "ci.test", "ci.build", "code.stats"};
    const size_t sizes[] = {0, 200, 300, 70000};
    for (int k = 0; k < 5; k++)
        for (int z = 0; z < 4; z++) {
            synth_t *s = synth_new (&(synth_config_t){all[k], 77, sizes[z], "r", "c", "u", 0},
                                    error, sizeof error);
            for (uint64_t i = 0; i < 100; i++) {
                const void *data, *want;
                size_t size, want_size;
                synth_record (s, i * 7919, &data, &size);
                s_reference (s, enc, &want, &want_size);
                assert (size == want_size && memcmp (data, want, size) == 0);
                assert (memcmp (synth_id (s), omni_record_encoder_id (enc), RECORD_ID_SIZE) == 0);
            }
            synth_destroy (&s);
        }
    omni_record_encoder_destroy (&enc);

    const char *kinds[] = {"metric", "git.commit", "ci.test", "ci.build", "code.stats", "mix"};
    for (int k = 0; k < 6; k++) {
        synth_config_t config = {kinds[k], 42, 200, "src-a", NULL, NULL, 0};
        synth_t *a = synth_new (&config, error, sizeof error);
        synth_t *b = synth_new (&config, error, sizeof error);
        config.seed = 43;
        synth_t *c = synth_new (&config, error, sizeof error);
        assert (a && b && c);
        //  Same seed and index: same bytes, whatever came before; the
        //  records validate, are of the kind asked, ids are distinct.
        enum { N = 400 };
        static uint8_t ids[N][RECORD_ID_SIZE];
        size_t total = 0, kinds_seen = 0;
        for (uint64_t i = 0; i < N; i++) {
            const void *da, *db;
            size_t sa, sb;
            synth_record (a, i, &da, &sa);
            uint8_t *copy = malloc (sa);
            memcpy (copy, da, sa);
            synth_record (b, N - 1 - i, &db, &sb); //  other order
            synth_record (b, i, &db, &sb);
            assert (sa == sb && memcmp (copy, db, sa) == 0);
            assert (memcmp (synth_id (a), synth_id (b), RECORD_ID_SIZE) == 0);
            assert (s_decode (copy, sa, &rec, &zone, detail) == REJECT_NONE);
            assert (memcmp (rec.id, synth_id (a), RECORD_ID_SIZE) == 0);
            assert (omni_record_str_eq (rec.kind, synth_kind (a)));
            assert (omni_record_str_eq (rec.src, "src-a"));
            assert (rec.ts == SYNTH_T0 + (int64_t) i * 1000000 + 42);
            if (k < 5)
                assert (omni_record_str_eq (rec.kind, kinds[k]));
            else
                kinds_seen |= 1u << (strcmp (synth_kind (a), "metric") == 0);
            //  Metrics are padded to the size asked, or 1 byte under when
            //  the pad's msgpack header would grow (at 32 bytes).
            if (strcmp (synth_kind (a), "metric") == 0)
                assert (sa <= 200 && sa + 2 >= 200);
            memcpy (ids[i], synth_id (a), RECORD_ID_SIZE);
            for (uint64_t j = 0; j < i; j++)
                assert (memcmp (ids[j], ids[i], RECORD_ID_SIZE) != 0);
            synth_record (c, i, &db, &sb);
            assert (memcmp (synth_id (c), ids[i], RECORD_ID_SIZE) != 0);
            total += sa;
            free (copy);
        }
        if (k == 5)
            assert (kinds_seen == 3); //  metrics and others
        if (verbose)
            printf ("synth: %s: %zu records, %zu bytes on average\n", kinds[k], (size_t) N,
                    total / N);
        synth_destroy (&a);
        synth_destroy (&b);
        synth_destroy (&c);
    }

    //  Sizes across header boundaries come out exact, or at most 2 bytes
    //  under where the padded string's header grows; a record larger
    //  than the target unpadded keeps its natural size.
    synth_t *natural =
        synth_new (&(synth_config_t){"git.commit", 1, 0, NULL, NULL, NULL, 0}, error, sizeof error);
    synth_t *natural_metric =
        synth_new (&(synth_config_t){"metric", 1, 0, NULL, NULL, NULL, 0}, error, sizeof error);
    for (size_t size = 150; size < 70000; size += size < 600 ? 1 : 997) {
        synth_config_t config = {"git.commit", 1, size, NULL, NULL, NULL, 0};
        synth_t *s = synth_new (&config, error, sizeof error);
        for (uint64_t i = 0; i < 3; i++) {
            const void *data;
            size_t got, unpadded;
            synth_record (natural, i, &data, &unpadded);
            synth_record (s, i, &data, &got);
            assert (s_decode (data, got, &rec, &zone, detail) == REJECT_NONE);
            if (unpadded >= size)
                assert (got == unpadded);
            else
                assert (got <= size && got + 2 >= size);
        }
        synth_destroy (&s);
        config.kind = "metric";
        s = synth_new (&config, error, sizeof error);
        const void *data;
        size_t got, unpadded;
        synth_record (natural_metric, 7, &data, &unpadded);
        synth_record (s, 7, &data, &got);
        assert (s_decode (data, got, &rec, &zone, detail) == REJECT_NONE);
        assert (rec.tags && omni_record_field (rec.tags, "host"));
        //  A pad tag costs at least 5 bytes ("pad" and an empty value).
        if (size < unpadded + 5)
            assert (got == unpadded && !omni_record_field (rec.tags, "pad"));
        else
            assert (got <= size && got + 2 >= size && omni_record_field (rec.tags, "pad"));
        synth_destroy (&s);
    }
    synth_destroy (&natural);
    synth_destroy (&natural_metric);
    synth_t *plain =
        synth_new (&(synth_config_t){"metric", 5, 0, NULL, NULL, NULL, 0}, error, sizeof error);
    const void *data;
    size_t size;
    synth_record (plain, 0, &data, &size);
    assert (s_decode (data, size, &rec, &zone, detail) == REJECT_NONE);
    assert (!omni_record_field (rec.tags, "pad") && size < 200);
    assert (omni_record_str_eq (rec.src, "loadgen") && omni_record_str_eq (rec.run, "loadgen-5"));
    //  The metric body is {name, value, unit}.
    omni_record_str_t name, unit;
    double value;
    assert (omni_record_field_str (rec.body, "name", &name) &&
            omni_record_field_str (rec.body, "unit", &unit));
    assert (omni_record_field_num (rec.body, "value", &value));
    assert (rec.body->via.map.size == 3);

    //  A suite size: record i and i + N are the same test (suite, class,
    //  name) of the next build, with ids of their own; without one, every
    //  result is a test of its own.
    synth_t *suite =
        synth_new (&(synth_config_t){"ci.test", 3, 0, NULL, NULL, NULL, 250}, error, sizeof error);
    synth_t *each =
        synth_new (&(synth_config_t){"ci.test", 3, 0, NULL, NULL, NULL, 0}, error, sizeof error);
    const char *fields[] = {"suite", "class", "name", "build_id"};
    char seen[2][4][96];
    uint8_t ids[2][RECORD_ID_SIZE];
    for (int r = 0; r < 2; r++) {
        synth_record (suite, 7 + 250 * (uint64_t) r, &data, &size);
        assert (s_decode (data, size, &rec, &zone, detail) == REJECT_NONE);
        memcpy (ids[r], synth_id (suite), RECORD_ID_SIZE);
        for (int f = 0; f < 4; f++) {
            omni_record_str_t s;
            assert (omni_record_field_str (rec.body, fields[f], &s) && s.len < 96);
            snprintf (seen[r][f], sizeof seen[r][f], "%.*s", (int) s.len, s.ptr);
        }
    }
    assert (strcmp (seen[0][0], seen[1][0]) == 0 && strcmp (seen[0][1], seen[1][1]) == 0);
    assert (strcmp (seen[0][2], "test_case_7") == 0 && strcmp (seen[1][2], "test_case_7") == 0);
    assert (strcmp (seen[0][3], seen[1][3]) != 0 && memcmp (ids[0], ids[1], RECORD_ID_SIZE) != 0);
    synth_record (each, 257, &data, &size);
    assert (s_decode (data, size, &rec, &zone, detail) == REJECT_NONE);
    omni_record_str_t each_name;
    assert (omni_record_field_str (rec.body, "name", &each_name) &&
            omni_record_str_eq (each_name, "test_case_257"));
    synth_destroy (&suite);
    synth_destroy (&each);

    //  Each bad mode gives what ingestd rejects, with the expected reason.
    assert (synth_bad_parse ("wrong-types") == SYNTH_BAD_WRONG_TYPES);
    assert (synth_bad_parse ("huge") == SYNTH_BAD_HUGE);
    assert (synth_bad_parse ("fine") == SYNTH_BAD_NONE);
    assert (synth_bad_parse (NULL) == SYNTH_BAD_NONE);
    for (int m = 1; m < SYNTH_BAD_COUNT; m++) {
        assert (synth_bad_parse (synth_bad_name ((synth_bad_t) m)) == (synth_bad_t) m);
        for (uint64_t i = 0; i < 3; i++) {
            synth_bad (plain, (synth_bad_t) m, i, &data, &size);
            omni_record_reject_t reason = s_decode (data, size, &rec, &zone, detail);
            if (verbose || reason != synth_bad_reason ((synth_bad_t) m))
                printf ("synth: bad %s -> %s: %s (%zu bytes)\n", synth_bad_name ((synth_bad_t) m),
                        omni_record_reject_name (reason), detail, size);
            assert (reason == synth_bad_reason ((synth_bad_t) m));
            if (m == SYNTH_BAD_HUGE) {
                assert (size == SYNTH_HUGE_SIZE);
                //  Only its size is wrong: with no size limit it is a valid record.
                omni_record_limits_t unlimited = {SIZE_MAX, 16};
                msgpack_zone_clear (&zone);
                assert (omni_record_decode (&rec, &zone, data, size, &unlimited, detail,
                                            sizeof detail) == REJECT_NONE);
            }
        }
    }
    synth_bad (plain, SYNTH_BAD_WRONG_TYPES, 0, &data, &size);
    assert (s_decode (data, size, &rec, &zone, detail) == REJECT_BAD_BODY);
    assert (strstr (detail, "body.value"));
    synth_destroy (&plain);
    assert (plain == NULL);
    msgpack_zone_destroy (&zone);
}
