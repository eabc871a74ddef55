/*  bloom: a blocked Bloom filter over 16-byte ids.                          */
#include "archiverd/bloom.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define BITS_PER_ID 10
#define BLOCK_WORDS 8 //  512 bits, one cache line
#define PROBES      6 //  bits set per id, 9 bits of hash each

typedef struct {
    uint64_t word[BLOCK_WORDS];
} s_block_t;

struct _bloom_t {
    s_block_t *blocks;
    size_t nblocks;
    size_t capacity;
    uint64_t seed[2];
};

//  splitmix64's finaliser: ids a collector chose cannot aim at one block
//  without knowing the seed.
static uint64_t
s_mix (uint64_t x)
{
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static void
s_hash (const bloom_t *self, const uint8_t key[16], size_t *block, uint64_t *bits)
{
    uint64_t lo, hi;
    memcpy (&lo, key, 8);
    memcpy (&hi, key + 8, 8);
    //  Both halves decide the block: ids alike in one half still spread.
    uint64_t h2 = s_mix (hi ^ self->seed[1]), h1 = s_mix (lo ^ self->seed[0] ^ h2);
    h2 = s_mix (h2 ^ h1);
    *block = (size_t) (((unsigned __int128) h1 * self->nblocks) >> 64);
    *bits = h2;
}

bloom_t *
bloom_new (size_t capacity)
{
    bloom_t *self = calloc (1, sizeof *self);
    assert (self);
    self->capacity = capacity ? capacity : 1;
    self->nblocks = (self->capacity * BITS_PER_ID + 511) / 512;
    self->blocks = aligned_alloc (sizeof (s_block_t), self->nblocks * sizeof (s_block_t));
    assert (self->blocks);
    memset (self->blocks, 0, self->nblocks * sizeof (s_block_t));
    if (getrandom (self->seed, sizeof self->seed, 0) != (ssize_t) sizeof self->seed) {
        self->seed[0] = (uint64_t) time (NULL);
        self->seed[1] = (uint64_t) (uintptr_t) self;
    }
    return self;
}

void
bloom_destroy (bloom_t **self_p)
{
    bloom_t *self = *self_p;
    if (self) {
        free (self->blocks);
        free (self);
        *self_p = NULL;
    }
}

void
bloom_add (bloom_t *self, const uint8_t key[16])
{
    size_t block;
    uint64_t bits;
    s_hash (self, key, &block, &bits);
    s_block_t *b = &self->blocks[block];
    for (int i = 0; i < PROBES; i++, bits >>= 9)
        b->word[(bits >> 6) & 7] |= 1ULL << (bits & 63);
}

bool
bloom_may_contain (const bloom_t *self, const uint8_t key[16])
{
    size_t block;
    uint64_t bits;
    s_hash (self, key, &block, &bits);
    const s_block_t *b = &self->blocks[block];
    for (int i = 0; i < PROBES; i++, bits >>= 9)
        if (!(b->word[(bits >> 6) & 7] & (1ULL << (bits & 63))))
            return false;
    return true;
}

size_t
bloom_capacity (const bloom_t *self)
{
    return self->capacity;
}

size_t
bloom_memory (const bloom_t *self)
{
    return self->nblocks * sizeof (s_block_t);
}

//  ---------------------------------------------------------------------------
//  Self-test

static void
s_test_key (uint64_t n, uint64_t salt, uint8_t key[16])
{
    uint64_t a = s_mix (n + salt), b = s_mix (a);
    memcpy (key, &a, 8);
    memcpy (key + 8, &b, 8);
}

void
bloom_test (bool verbose)
{
    if (verbose)
        printf (" * bloom: ");
    const size_t n = 200000;
    bloom_t *bloom = bloom_new (n);
    assert (bloom_capacity (bloom) == n);
    assert (bloom_memory (bloom) * 8 >= n * BITS_PER_ID);
    uint8_t key[16];
    for (size_t i = 0; i < n; i++) {
        s_test_key (i, 0, key);
        bloom_add (bloom, key);
    }
    //  No false negatives, ever.
    for (size_t i = 0; i < n; i++) {
        s_test_key (i, 0, key);
        assert (bloom_may_contain (bloom, key));
    }
    //  Few false positives at capacity: about 1.5 %, asserted below 3 %.
    size_t positives = 0;
    for (size_t i = 0; i < n; i++) {
        s_test_key (i, 0x5555555555555555ULL, key);
        positives += bloom_may_contain (bloom, key);
    }
    if (verbose)
        printf ("false positives %.2f %% ", 100.0 * (double) positives / (double) n);
    assert (positives < n * 3 / 100);
    //  Keys sharing their first half (a hostile collector) spread out too.
    bloom_t *hostile = bloom_new (n);
    for (size_t i = 0; i < n; i++) {
        memset (key, 0xAB, 8);
        memcpy (key + 8, &i, 8);
        bloom_add (hostile, key);
    }
    positives = 0;
    for (size_t i = n; i < 2 * n; i++) {
        memset (key, 0xAB, 8);
        memcpy (key + 8, &i, 8);
        positives += bloom_may_contain (hostile, key);
    }
    assert (positives < n * 3 / 100);
    bloom_destroy (&hostile);
    bloom_destroy (&bloom);
    assert (bloom == NULL);
    if (verbose)
        printf ("OK\n");
}
