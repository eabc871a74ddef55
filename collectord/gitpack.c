/*  gitpack: pack files read for libgit2, with a delta-base cache of ours.

    Why: on long histories most of collectord's time went into libgit2
    1.5's pack reading, not into diffing. Its delta-base cache is 16 MiB per
    pack, fixed, and when full it drops every entry not in use at once; a
    history whose directories hold hundreds of files has more tree versions
    in flight than that, so delta chains were rebuilt from their bases again
    and again. And every object read took the pack's locks (shared by all
    threads of the process: libgit2 keeps one pack object per file) several
    times, allocated a zlib state and a buffer and freed them. git itself
    keeps 96 MiB of bases and evicts the least recently used.

    So the packs are read here: each .idx and .pack mapped once, an object
    found by the index's fan-out and a binary search, its delta chain
    walked back until a cached base (or a whole object), then the deltas
    applied forward, each base kept in one cache shared by the threads,
    least recently used out first. libgit2 sees an ordinary object database
    backend tried before its own; whatever is not found here (loose
    objects, alternates) or cannot be read here is passed to libgit2's
    backends, which then answer or report the error as before. The objects
    are the same bytes either way: only how they are reached changed.     */
#include "collectord/gitpack.h"
#include "common/buf.h"
#include "testsupport/selftest.h"

#include <assert.h>
#include <dirent.h>
#include <fcntl.h>
#include <git2/sys/odb_backend.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define S_OID 20
//  Object types in a pack
#define S_OFS_DELTA 6
#define S_REF_DELTA 7
//  A chain longer than this is taken as a loop in a corrupt pack
#define S_CHAIN_MAX 100000
//  The mapped pack and index pages kept resident, at most (checked every
//  S_CHECK_EVERY reads): see s_check_resident
#define S_RESIDENT_MAX (128u << 20)
#define S_CHECK_EVERY  4096

typedef struct {
    const uint8_t *idx, *pack;
    size_t idx_size, pack_size;
    uint32_t count;
    const uint8_t *fanout, *ids, *off32, *off64;
    size_t off64_count;
} s_pack_t;

//  A delta base kept. `refs` counts the table (while in it) and the
//  readers applying a delta on it; the last one frees it.
typedef struct s_entry_t {
    uint64_t key;
    git_object_t type;
    uint8_t *data;
    size_t len;
    size_t refs;
    bool in_table;
    struct s_entry_t *chain, *newer, *older;
} s_entry_t;

struct _gitpack_t {
    atomic_size_t refs; //  the caller's and one per backend
    s_pack_t *packs;
    size_t npacks;
    pthread_mutex_t lock; //  the cache
    s_entry_t **buckets;
    size_t nbuckets; //  a power of two
    s_entry_t *lru_head, *lru_tail;
    size_t bytes, budget;
    atomic_uint_fast64_t reads, inflated, hits, passed;
    atomic_flag dropping; //  one thread at a time gives mapped pages back
};

//  One per object database (one per thread): its zlib state and delta
//  buffer are reused from object to object.
typedef struct {
    git_odb_backend parent;
    gitpack_t *store;
    pthread_mutex_t lock;
    z_stream zs;
    bool zs_ready;
    uint8_t *delta;
    size_t delta_cap;
} s_backend_t;

static uint32_t
s_be32 (const uint8_t *p)
{
    return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

static uint64_t
s_be64 (const uint8_t *p)
{
    return (uint64_t) s_be32 (p) << 32 | s_be32 (p + 4);
}

//  ---------------------------------------------------------------------------
//  Pack files

static const uint8_t *
s_map (const char *path, size_t *size)
{
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    const uint8_t *data = NULL;
    if (fstat (fd, &st) == 0 && S_ISREG (st.st_mode) && st.st_size > 0) {
        void *map = mmap (NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map != MAP_FAILED) {
            data = map;
            *size = (size_t) st.st_size;
        }
    }
    close (fd);
    return data;
}

static void
s_pack_close (s_pack_t *p)
{
    if (p->idx)
        munmap ((void *) p->idx, p->idx_size);
    if (p->pack)
        munmap ((void *) p->pack, p->pack_size);
    memset (p, 0, sizeof *p);
}

//  Maps `base`.idx (version 2) and `base`.pack and checks that they belong
//  together. Returns 0 or -1 (nothing kept).
static int
s_pack_open (s_pack_t *p, const char *base)
{
    memset (p, 0, sizeof *p);
    char *path;
    assert (asprintf (&path, "%s.idx", base) > 0);
    p->idx = s_map (path, &p->idx_size);
    free (path);
    assert (asprintf (&path, "%s.pack", base) > 0);
    p->pack = s_map (path, &p->pack_size);
    free (path);
    if (!p->idx || !p->pack || p->idx_size < 8 + 1024 + 2 * S_OID || p->pack_size < 12 + S_OID ||
        memcmp (p->idx, "\377tOc", 4) != 0 || s_be32 (p->idx + 4) != 2 ||
        memcmp (p->pack, "PACK", 4) != 0 ||
        (s_be32 (p->pack + 4) != 2 && s_be32 (p->pack + 4) != 3))
        goto fail;
    p->fanout = p->idx + 8;
    p->count = s_be32 (p->fanout + 255 * 4);
    size_t fixed = 8 + 1024 + (size_t) p->count * (S_OID + 4 + 4) + 2 * S_OID;
    if (p->idx_size < fixed || (p->idx_size - fixed) % 8 != 0 || s_be32 (p->pack + 8) != p->count ||
        //  The pack's checksum, as the index recorded it
        memcmp (p->pack + p->pack_size - S_OID, p->idx + p->idx_size - 2 * S_OID, S_OID) != 0)
        goto fail;
    p->ids = p->fanout + 1024;
    p->off32 = p->ids + (size_t) p->count * (S_OID + 4); //  past the CRCs
    p->off64 = p->off32 + (size_t) p->count * 4;
    p->off64_count = (p->idx_size - fixed) / 8;
    return 0;
fail:
    s_pack_close (p);
    return -1;
}

//  The offset of object `id` in `p`, or 0 when it is not there (no object
//  starts at 0: the pack header does).
static uint64_t
s_pack_find (const s_pack_t *p, const uint8_t *id)
{
    uint32_t lo = id[0] ? s_be32 (p->fanout + 4 * (id[0] - 1)) : 0;
    uint32_t hi = s_be32 (p->fanout + 4 * id[0]);
    if (hi > p->count || lo > hi)
        return 0;
    //  The first 8 bytes decide nearly every comparison
    uint64_t want = s_be64 (id);
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        const uint8_t *entry = p->ids + (size_t) mid * S_OID;
        uint64_t have = s_be64 (entry);
        int c = have < want ? -1 : have > want ? 1 : memcmp (entry + 8, id + 8, S_OID - 8);
        if (c == 0) {
            uint32_t off = s_be32 (p->off32 + (size_t) mid * 4);
            if (!(off & 0x80000000u))
                return off;
            size_t at = off & 0x7fffffffu;
            if (at >= p->off64_count)
                return 0;
            return s_be64 (p->off64 + at * 8);
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

typedef struct {
    uint64_t offset; //  of the object's header
    uint64_t data;   //  of its zlib stream
    uint64_t base;   //  a delta's base object
    size_t size;     //  inflated
    int type;
} s_object_t;

//  Reads the header of the object at `offset`. Returns 0 or -1.
static int
s_pack_header (const s_pack_t *p, uint64_t offset, s_object_t *o)
{
    const uint8_t *at = p->pack + offset, *end = p->pack + p->pack_size - S_OID;
    if (offset < 12 || at >= end)
        return -1;
    unsigned c = *at++;
    o->offset = offset;
    o->type = (c >> 4) & 7;
    uint64_t size = c & 15;
    unsigned shift = 4;
    while (c & 0x80) {
        if (at >= end || shift > 57)
            return -1;
        c = *at++;
        size |= (uint64_t) (c & 0x7f) << shift;
        shift += 7;
    }
    if (size > SIZE_MAX / 2)
        return -1;
    o->size = (size_t) size;
    o->base = 0;
    if (o->type == S_OFS_DELTA) {
        if (at >= end)
            return -1;
        c = *at++;
        uint64_t back = c & 127;
        while (c & 128) {
            if (at >= end || back >> 56)
                return -1;
            c = *at++;
            back = ((back + 1) << 7) | (c & 127);
        }
        if (back == 0 || back >= offset)
            return -1;
        o->base = offset - back;
    } else if (o->type == S_REF_DELTA) {
        if (end - at < S_OID)
            return -1;
        o->base = s_pack_find (p, at); //  the base must be in the same pack
        at += S_OID;
        if (o->base == 0)
            return -1;
    } else if (o->type < GIT_OBJECT_COMMIT || o->type > GIT_OBJECT_TAG)
        return -1;
    o->data = (uint64_t) (at - p->pack);
    return 0;
}

//  ---------------------------------------------------------------------------
//  The delta-base cache

static size_t
s_hash (const gitpack_t *self, uint64_t key)
{
    return (size_t) ((key * 0x9E3779B97F4A7C15ull) >> 32) & (self->nbuckets - 1);
}

static void
s_entry_unref (s_entry_t *e)
{
    if (--e->refs == 0) {
        free (e->data);
        free (e);
    }
}

static void
s_unlink (gitpack_t *self, s_entry_t *e)
{
    s_entry_t **link = &self->buckets[s_hash (self, e->key)];
    while (*link != e)
        link = &(*link)->chain;
    *link = e->chain;
    if (e->newer)
        e->newer->older = e->older;
    else
        self->lru_head = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        self->lru_tail = e->newer;
    self->bytes -= e->len;
    e->in_table = false;
    s_entry_unref (e);
}

//  With the lock held
static void
s_trim (gitpack_t *self, size_t budget)
{
    while (self->lru_tail && self->bytes > budget)
        s_unlink (self, self->lru_tail);
}

//  The cached base `key` with a reference for the caller, or NULL.
static s_entry_t *
s_cache_get (gitpack_t *self, uint64_t key)
{
    pthread_mutex_lock (&self->lock);
    s_entry_t *e = self->buckets[s_hash (self, key)];
    while (e && e->key != key)
        e = e->chain;
    if (e) {
        e->refs++;
        if (e != self->lru_head) {
            //  To the front
            e->newer->older = e->older;
            if (e->older)
                e->older->newer = e->newer;
            else
                self->lru_tail = e->newer;
            e->newer = NULL;
            e->older = self->lru_head;
            self->lru_head->newer = e;
            self->lru_head = e;
        }
    }
    pthread_mutex_unlock (&self->lock);
    return e;
}

//  Keeps `data` (malloc'd) as the base `key`; returns the entry with a
//  reference for the caller, who no longer owns `data`, or NULL when it is
//  not kept (too large, or there already) and `data` stays the caller's.
static s_entry_t *
s_cache_put (gitpack_t *self, uint64_t key, git_object_t type, uint8_t *data, size_t len)
{
    if (len > self->budget / 4)
        return NULL;
    s_entry_t *e = malloc (sizeof *e);
    assert (e);
    pthread_mutex_lock (&self->lock);
    size_t bucket = s_hash (self, key);
    for (s_entry_t *known = self->buckets[bucket]; known; known = known->chain)
        if (known->key == key) {
            pthread_mutex_unlock (&self->lock);
            free (e);
            return NULL;
        }
    s_trim (self, self->budget - len);
    *e = (s_entry_t){key, type, data, len, 2, true, self->buckets[bucket], NULL, self->lru_head};
    self->buckets[bucket] = e;
    if (self->lru_head)
        self->lru_head->newer = e;
    else
        self->lru_tail = e;
    self->lru_head = e;
    self->bytes += len;
    pthread_mutex_unlock (&self->lock);
    return e;
}

static void
s_cache_release (gitpack_t *self, s_entry_t *e)
{
    pthread_mutex_lock (&self->lock);
    s_entry_unref (e);
    pthread_mutex_unlock (&self->lock);
}

//  ---------------------------------------------------------------------------
//  Reading an object

//  The backend's zlib stream, reset, reading the stream of `o` (its state
//  is allocated once, not per object). NULL on a zlib error.
static z_stream *
s_zstream (s_backend_t *b, const s_pack_t *p, const s_object_t *o)
{
    z_stream *zs = &b->zs;
    if (!b->zs_ready) {
        memset (zs, 0, sizeof *zs);
        if (inflateInit (zs) != Z_OK)
            return NULL;
        b->zs_ready = true;
    } else if (inflateReset (zs) != Z_OK)
        return NULL;
    size_t avail = p->pack_size - S_OID - o->data;
    zs->next_in = (Bytef *) (p->pack + o->data);
    zs->avail_in = avail > UINT32_MAX ? UINT32_MAX : (uInt) avail;
    return zs;
}

//  Inflates the stream of `o` into `out`, exactly o->size bytes (plus a
//  NUL after them, which `out` has room for). Returns 0 or -1.
static int
s_inflate (s_backend_t *b, const s_pack_t *p, const s_object_t *o, uint8_t *out)
{
    z_stream *zs = s_zstream (b, p, o);
    if (!zs || o->size + 1 > UINT32_MAX)
        return -1;
    zs->next_out = out;
    zs->avail_out = (uInt) (o->size + 1);
    int rc = inflate (zs, Z_FINISH);
    atomic_fetch_add_explicit (&b->store->inflated, 1, memory_order_relaxed);
    out[o->size] = 0;
    return rc == Z_STREAM_END && zs->total_out == o->size ? 0 : -1;
}

static int
s_varint (const uint8_t **at, const uint8_t *end, size_t *out)
{
    size_t value = 0;
    unsigned shift = 0;
    unsigned c;
    do {
        if (*at >= end || shift > 56)
            return -1;
        c = *(*at)++;
        value |= (size_t) (c & 0x7f) << shift;
        shift += 7;
    } while (c & 0x80);
    *out = value;
    return 0;
}

//  Applies `delta` (its two sizes read already, `at` past them) to `base`,
//  writing exactly `out_len` bytes. Returns 0 or -1.
static int
s_apply (const uint8_t *base, size_t base_len, const uint8_t *at, const uint8_t *end, uint8_t *out,
         size_t out_len)
{
    uint8_t *w = out, *w_end = out + out_len;
    while (at < end) {
        unsigned cmd = *at++;
        if (cmd & 0x80) {
            size_t off = 0, len = 0;
            for (unsigned i = 0; i < 4; i++)
                if (cmd & (1u << i)) {
                    if (at >= end)
                        return -1;
                    off |= (size_t) *at++ << (8 * i);
                }
            for (unsigned i = 0; i < 3; i++)
                if (cmd & (0x10u << i)) {
                    if (at >= end)
                        return -1;
                    len |= (size_t) *at++ << (8 * i);
                }
            if (len == 0)
                len = 0x10000;
            if (off > base_len || len > base_len - off || len > (size_t) (w_end - w))
                return -1;
            memcpy (w, base + off, len);
            w += len;
        } else if (cmd) {
            if (cmd > (size_t) (end - at) || cmd > (size_t) (w_end - w))
                return -1;
            memcpy (w, at, cmd);
            at += cmd;
            w += cmd;
        } else
            return -1;
    }
    return w == w_end ? 0 : -1;
}

static uint64_t
s_key (size_t pack, uint64_t offset)
{
    return (uint64_t) pack << 48 | offset;
}

//  Reads the object at `offset` of pack `packno` into a buffer from
//  git_odb_backend_data_alloc. Returns 0 or -1.
static int
s_read (s_backend_t *b, size_t packno, uint64_t offset, void **out, size_t *out_len,
        git_object_t *type)
{
    gitpack_t *self = b->store;
    const s_pack_t *p = &self->packs[packno];
    s_object_t small[64];
    s_object_t *chain = small;
    size_t n = 0, cap = 64;
    s_entry_t *cached = NULL;
    s_object_t whole;
    uint64_t at = offset;
    int rc = -1;
    //  Back along the chain to a cached base or a whole object
    for (;;) {
        if ((cached = s_cache_get (self, s_key (packno, at))))
            break;
        s_object_t o;
        if (s_pack_header (p, at, &o))
            goto done;
        if (o.type != S_OFS_DELTA && o.type != S_REF_DELTA) {
            whole = o;
            break;
        }
        if (n == S_CHAIN_MAX)
            goto done;
        if (n == cap) {
            s_object_t *bigger = malloc (2 * cap * sizeof *bigger);
            assert (bigger);
            memcpy (bigger, chain, n * sizeof *chain);
            if (chain != small)
                free (chain);
            chain = bigger;
            cap *= 2;
        }
        chain[n++] = o;
        at = o.base;
    }
    git_odb_backend *backend = &b->parent;
    const uint8_t *data;
    size_t len;
    uint8_t *owned = NULL; //  the current base when it is not in the cache
    if (cached) {
        atomic_fetch_add_explicit (&self->hits, 1, memory_order_relaxed);
        *type = cached->type;
        data = cached->data;
        len = cached->len;
        if (n == 0) {
            uint8_t *copy = git_odb_backend_data_alloc (backend, len + 1);
            assert (copy);
            memcpy (copy, data, len + 1);
            *out = copy;
            *out_len = len;
            rc = 0;
            goto done;
        }
    } else {
        *type = (git_object_t) whole.type;
        if (n == 0) {
            //  No delta: straight into libgit2's buffer
            uint8_t *obj = git_odb_backend_data_alloc (backend, whole.size + 1);
            assert (obj);
            if (s_inflate (b, p, &whole, obj)) {
                git_odb_backend_data_free (backend, obj);
                goto done;
            }
            *out = obj;
            *out_len = whole.size;
            rc = 0;
            goto done;
        }
        owned = malloc (whole.size + 1);
        assert (owned);
        if (s_inflate (b, p, &whole, owned)) {
            free (owned);
            goto done;
        }
        data = owned;
        len = whole.size;
    }
    //  Forward, a delta at a time; each base is kept for the next reader
    uint64_t base_at = at;
    while (n > 0) {
        const s_object_t *d = &chain[--n];
        if (owned) {
            cached = s_cache_put (self, s_key (packno, base_at), *type, owned, len);
            if (cached)
                owned = NULL;
        }
        if (d->size + 1 > b->delta_cap) {
            b->delta_cap = d->size + 1 > 2 * b->delta_cap ? d->size + 1 : 2 * b->delta_cap;
            free (b->delta);
            b->delta = malloc (b->delta_cap);
            assert (b->delta);
        }
        uint8_t *result = NULL;
        size_t base_size, result_size;
        const uint8_t *dat = b->delta, *dend = b->delta + d->size;
        bool ok = s_inflate (b, p, d, b->delta) == 0 && s_varint (&dat, dend, &base_size) == 0 &&
                  s_varint (&dat, dend, &result_size) == 0 && base_size == len &&
                  result_size < SIZE_MAX / 2;
        if (ok) {
            result = n == 0 ? git_odb_backend_data_alloc (backend, result_size + 1)
                            : malloc (result_size + 1);
            assert (result);
            ok = s_apply (data, len, dat, dend, result, result_size) == 0;
            result[result_size] = 0;
        }
        if (cached) {
            s_cache_release (self, cached);
            cached = NULL;
        }
        free (owned);
        owned = NULL;
        if (!ok) {
            if (result && n == 0)
                git_odb_backend_data_free (backend, result);
            else
                free (result);
            goto done;
        }
        if (n == 0) {
            *out = result;
            *out_len = result_size;
            rc = 0;
            goto done;
        }
        owned = result;
        data = result;
        len = result_size;
        base_at = d->offset;
    }
done:
    if (cached)
        s_cache_release (self, cached);
    if (chain != small)
        free (chain);
    return rc;
}

//  ---------------------------------------------------------------------------
//  The backend

//  A history is read all over its pack (the walk reads every commit first,
//  then each commit's trees and blobs lie anywhere): every page touched
//  would stay mapped, and count in the process's resident memory, until
//  the end, though the kernel keeps them in its page cache anyway. When
//  the file-backed pages resident pass S_RESIDENT_MAX they are given back
//  (MADV_DONTNEED: nothing is written to these mappings, so a page read
//  again simply comes back from the page cache, as with git's and
//  libgit2's pack windows under their mapped limits).
static void
s_check_resident (gitpack_t *self)
{
    if (atomic_flag_test_and_set (&self->dropping))
        return;
    FILE *f = fopen ("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0, shared = 0;
    if (f) {
        if (fscanf (f, "%lu %lu %lu", &size, &resident, &shared) != 3)
            shared = 0;
        fclose (f);
    }
    if (shared * (unsigned long) sysconf (_SC_PAGESIZE) > S_RESIDENT_MAX)
        for (size_t i = 0; i < self->npacks; i++) {
            madvise ((void *) self->packs[i].pack, self->packs[i].pack_size, MADV_DONTNEED);
            madvise ((void *) self->packs[i].idx, self->packs[i].idx_size, MADV_DONTNEED);
        }
    atomic_flag_clear (&self->dropping);
}

//  The pack holding `id` and its offset there; false when none does.
static bool
s_locate (const gitpack_t *self, const git_oid *id, size_t *pack, uint64_t *offset)
{
    for (size_t i = 0; i < self->npacks; i++)
        if ((*offset = s_pack_find (&self->packs[i], id->id))) {
            *pack = i;
            return true;
        }
    return false;
}

static int
s_backend_read (void **out, size_t *len, git_object_t *type, git_odb_backend *backend,
                const git_oid *id)
{
    s_backend_t *b = (s_backend_t *) backend;
    gitpack_t *self = b->store;
    size_t pack;
    uint64_t offset;
    if (s_locate (self, id, &pack, &offset)) {
        pthread_mutex_lock (&b->lock);
        int rc = s_read (b, pack, offset, out, len, type);
        pthread_mutex_unlock (&b->lock);
        if (rc == 0) {
            uint64_t n = atomic_fetch_add_explicit (&self->reads, 1, memory_order_relaxed);
            if (n % S_CHECK_EVERY == S_CHECK_EVERY - 1)
                s_check_resident (self);
            return 0;
        }
        //  Else libgit2 reads it, or says what is wrong with it
    }
    atomic_fetch_add_explicit (&self->passed, 1, memory_order_relaxed);
    return GIT_PASSTHROUGH;
}

//  The size and type of an object without reading it whole: the type is
//  its chain's whole object's, the size is in the first bytes of its delta.
static int
s_header_of (s_backend_t *b, const s_pack_t *p, uint64_t offset, size_t *len, git_object_t *type)
{
    s_object_t o;
    if (s_pack_header (p, offset, &o))
        return -1;
    if (o.type != S_OFS_DELTA && o.type != S_REF_DELTA) {
        *len = o.size;
        *type = (git_object_t) o.type;
        return 0;
    }
    //  Two sizes of at most 10 bytes each start the delta
    uint8_t head[21];
    z_stream *zs = s_zstream (b, p, &o);
    if (!zs)
        return -1;
    zs->next_out = head;
    zs->avail_out = o.size < 20 ? (uInt) o.size : 20;
    int rc = inflate (zs, Z_SYNC_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
        return -1;
    const uint8_t *at = head, *end = head + zs->total_out;
    size_t base_size;
    if (s_varint (&at, end, &base_size) || s_varint (&at, end, len))
        return -1;
    for (size_t n = 0; n < S_CHAIN_MAX; n++) {
        if (s_pack_header (p, o.base, &o))
            return -1;
        if (o.type != S_OFS_DELTA && o.type != S_REF_DELTA) {
            *type = (git_object_t) o.type;
            return 0;
        }
    }
    return -1;
}

static int
s_backend_read_header (size_t *len, git_object_t *type, git_odb_backend *backend, const git_oid *id)
{
    s_backend_t *b = (s_backend_t *) backend;
    size_t pack;
    uint64_t offset;
    if (!s_locate (b->store, id, &pack, &offset))
        return GIT_PASSTHROUGH;
    pthread_mutex_lock (&b->lock);
    int rc = s_header_of (b, &b->store->packs[pack], offset, len, type);
    pthread_mutex_unlock (&b->lock);
    return rc == 0 ? 0 : GIT_PASSTHROUGH;
}

static void
s_backend_free (git_odb_backend *backend)
{
    s_backend_t *b = (s_backend_t *) backend;
    if (b->zs_ready)
        inflateEnd (&b->zs);
    free (b->delta);
    pthread_mutex_destroy (&b->lock);
    gitpack_t *store = b->store;
    free (b);
    gitpack_destroy (&store);
}

//  ---------------------------------------------------------------------------
//  The store

gitpack_t *
gitpack_new (git_repository *repo, size_t cache_bytes)
{
    char *dir;
    assert (asprintf (&dir, "%sobjects/pack", git_repository_commondir (repo)) > 0);
    DIR *d = opendir (dir);
    if (!d) {
        free (dir);
        return NULL;
    }
    gitpack_t *self = calloc (1, sizeof *self);
    assert (self);
    size_t cap = 0;
    struct dirent *ent;
    while ((ent = readdir (d))) {
        size_t len = strlen (ent->d_name);
        if (len < 5 || strcmp (ent->d_name + len - 4, ".idx") != 0)
            continue;
        char *base;
        assert (asprintf (&base, "%s/%.*s", dir, (int) (len - 4), ent->d_name) > 0);
        s_pack_t pack;
        int rc = s_pack_open (&pack, base);
        free (base);
        if (rc)
            continue; //  libgit2 reads it, or says why not
        *omni_array_push (self->packs, self->npacks, cap) = pack;
    }
    closedir (d);
    free (dir);
    if (self->npacks == 0) {
        free (self->packs);
        free (self);
        return NULL;
    }
    atomic_init (&self->refs, 1);
    atomic_flag_clear (&self->dropping);
    pthread_mutex_init (&self->lock, NULL);
    self->budget = cache_bytes;
    //  About one bucket per KiB of budget
    self->nbuckets = 1024;
    while (self->nbuckets < cache_bytes / 1024 && self->nbuckets < (1u << 20))
        self->nbuckets *= 2;
    self->buckets = calloc (self->nbuckets, sizeof *self->buckets);
    assert (self->buckets);
    return self;
}

void
gitpack_destroy (gitpack_t **self_p)
{
    gitpack_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    if (atomic_fetch_sub (&self->refs, 1) != 1)
        return;
    s_trim (self, 0);
    for (size_t i = 0; i < self->npacks; i++)
        s_pack_close (&self->packs[i]);
    free (self->packs);
    free (self->buckets);
    pthread_mutex_destroy (&self->lock);
    free (self);
}

int
gitpack_attach (gitpack_t *self, git_repository *repo)
{
    git_odb *odb;
    if (git_repository_odb (&odb, repo))
        return -1;
    s_backend_t *b = calloc (1, sizeof *b);
    assert (b);
    b->parent.version = GIT_ODB_BACKEND_VERSION;
    b->parent.read = s_backend_read;
    b->parent.read_header = s_backend_read_header;
    b->parent.free = s_backend_free;
    pthread_mutex_init (&b->lock, NULL);
    atomic_fetch_add (&self->refs, 1);
    b->store = self;
    //  libgit2's pack backend has priority 2, its loose objects 1
    int rc = git_odb_add_backend (odb, &b->parent, 10);
    if (rc)
        s_backend_free (&b->parent);
    git_odb_free (odb);
    return rc ? -1 : 0;
}

void
gitpack_stats (gitpack_t *self, gitpack_stats_t *stats)
{
    stats->reads = atomic_load (&self->reads);
    stats->inflated = atomic_load (&self->inflated);
    stats->cache_hits = atomic_load (&self->hits);
    stats->passed = atomic_load (&self->passed);
    pthread_mutex_lock (&self->lock);
    stats->cached_bytes = self->bytes;
    pthread_mutex_unlock (&self->lock);
}

//  ---------------------------------------------------------------------------
//  Self-test: every object of repositories packed with offset deltas and
//  with reference deltas, read through the store (with a roomy cache and
//  with one that keeps nearly nothing), is what libgit2 reads itself; a
//  loose object is passed to libgit2.

static void
s_sh (const char *dir, const char *script)
{
    selftest_sh (
        dir, "GIT_AUTHOR_NAME=A GIT_AUTHOR_EMAIL=a@x GIT_COMMITTER_NAME=C GIT_COMMITTER_EMAIL=c@x",
        script);
}

//  Compares every object of `dir` read with and without the store.
static size_t
s_compare_all (const char *dir, size_t cache, gitpack_stats_t *stats)
{
    git_repository *plain, *packed;
    assert (git_repository_open (&plain, dir) == 0);
    assert (git_repository_open (&packed, dir) == 0);
    gitpack_t *store = gitpack_new (packed, cache);
    assert (store);
    assert (gitpack_attach (store, packed) == 0);
    git_odb *a, *b;
    assert (git_repository_odb (&a, plain) == 0 && git_repository_odb (&b, packed) == 0);
    char *cmd;
    assert (asprintf (&cmd, "git -C '%s' rev-list --objects --all --reflog", dir) > 0);
    FILE *list = popen (cmd, "r");
    assert (list);
    char line[4096];
    size_t count = 0;
    while (fgets (line, sizeof line, list)) {
        git_oid id;
        line[40] = 0;
        assert (git_oid_fromstr (&id, line) == 0);
        //  Twice: from the chain, then (mostly) from the cache
        for (int round = 0; round < 2; round++) {
            git_odb_object *x, *y;
            assert (git_odb_read (&x, a, &id) == 0 && git_odb_read (&y, b, &id) == 0);
            assert (git_odb_object_type (x) == git_odb_object_type (y));
            assert (git_odb_object_size (x) == git_odb_object_size (y));
            assert (memcmp (git_odb_object_data (x), git_odb_object_data (y),
                            git_odb_object_size (x)) == 0);
            git_odb_object_free (x);
            git_odb_object_free (y);
        }
        size_t len;
        git_object_t type;
        assert (git_odb_read_header (&len, &type, b, &id) == 0);
        git_odb_object *x;
        assert (git_odb_read (&x, a, &id) == 0);
        assert (len == git_odb_object_size (x) && type == git_odb_object_type (x));
        git_odb_object_free (x);
        count++;
    }
    assert (pclose (list) == 0);
    free (cmd);
    gitpack_stats (store, stats);
    assert (stats->cached_bytes <= cache);
    gitpack_destroy (&store);
    git_odb_free (a);
    git_odb_free (b);
    git_repository_free (plain);
    git_repository_free (packed); //  frees the backend, the store's last reference
    return count;
}

void
gitpack_test (bool verbose)
{
    git_libgit2_init ();
    git_libgit2_opts (GIT_OPT_ENABLE_CACHING, 0);
    char *dir = selftest_tmpdir ("gitpack");
    //  Files that change a little each commit: long delta chains
    s_sh (dir, "git init -q -b main . && mkdir -p d/e && "
               "for i in $(seq 1 60); do "
               "seq 1 $((200 + i)) | sed \"s/^$i\\$/changed $i/\" > big.txt && "
               "seq $i 400 > d/e/f.txt && echo $i > d/n$((i % 7)).txt && "
               "printf '\\000bin%s' $i > b.bin && : > empty && "
               "git add -A && git commit -q -m \"c $i\"; done && "
               "git repack -q -a -d -f --depth=50 --window=50");
    gitpack_stats_t stats;
    size_t count = s_compare_all (dir, GITPACK_CACHE, &stats);
    if (verbose)
        fprintf (stderr, "  gitpack: %zu objects, %llu reads, %llu inflated, %llu hits\n", count,
                 (unsigned long long) stats.reads, (unsigned long long) stats.inflated,
                 (unsigned long long) stats.cache_hits);
    assert (count > 200 && stats.reads == 2 * count && stats.passed == 0);
    assert (stats.cache_hits > 0 && stats.inflated > 0);
    //  A cache of a few bytes: every chain from its whole object
    count = s_compare_all (dir, 64, &stats);
    assert (stats.reads == 2 * count && stats.cache_hits == 0 && stats.cached_bytes == 0);
    //  Reference deltas, and a loose object beside the pack
    s_sh (dir, "git -c repack.useDeltaBaseOffset=false repack -q -a -d -f --depth=50 && "
               "echo loose > loose.txt && git add loose.txt && git commit -q -m loose");
    count = s_compare_all (dir, GITPACK_CACHE, &stats);
    assert (stats.reads > 0 && stats.passed >= 3); //  the commit, its tree, the blob
    //  No pack: nothing to read here
    s_sh (dir, "git init -q -b main fresh");
    git_repository *fresh;
    char *path;
    assert (asprintf (&path, "%s/fresh", dir) > 0);
    assert (git_repository_open (&fresh, path) == 0);
    assert (gitpack_new (fresh, GITPACK_CACHE) == NULL);
    git_repository_free (fresh);
    free (path);
    selftest_rmtree (dir);
    free (dir);
    git_libgit2_shutdown ();
}
