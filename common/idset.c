/*  idset: an in-memory set of 16-byte record ids.                          */
#include "common/idset.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define MIN_CAPACITY 1024

//  An all-zero slot is empty; the all-zero key, which a collector may send,
//  is kept aside in a flag.
typedef struct {
    uint64_t lo, hi;
} s_slot_t;

struct _omni_idset_t {
    s_slot_t *slots;
    size_t capacity; //  a power of two, or 0 before the first insert
    size_t count;    //  keys in slots
    bool has_zero;
    uint64_t seed[2];
};

static s_slot_t
s_slot (const uint8_t key[IDSET_KEY_SIZE])
{
    s_slot_t slot;
    memcpy (&slot.lo, key, 8);
    memcpy (&slot.hi, key + 8, 8);
    return slot;
}

static bool
s_empty (const s_slot_t *slot)
{
    return (slot->lo | slot->hi) == 0;
}

static size_t
s_home (const omni_idset_t *self, const s_slot_t *slot)
{
    uint64_t h = (slot->lo ^ self->seed[0]) * 0x9E3779B97F4A7C15ULL;
    h ^= slot->hi ^ self->seed[1];
    h *= 0xFF51AFD7ED558CCDULL;
    h ^= h >> 32;
    return (size_t) h & (self->capacity - 1);
}

//  The slot holding `slot`'s key, or the empty slot where it would go.
static size_t
s_find (const omni_idset_t *self, const s_slot_t *slot)
{
    size_t mask = self->capacity - 1;
    size_t i = s_home (self, slot);
    while (!s_empty (&self->slots[i]) &&
           (self->slots[i].lo != slot->lo || self->slots[i].hi != slot->hi))
        i = (i + 1) & mask;
    return i;
}

static void
s_resize (omni_idset_t *self, size_t capacity)
{
    s_slot_t *old = self->slots;
    size_t old_capacity = self->capacity;
    self->slots = calloc (capacity, sizeof *self->slots);
    assert (self->slots);
    self->capacity = capacity;
    for (size_t i = 0; i < old_capacity; i++)
        if (!s_empty (&old[i]))
            self->slots[s_find (self, &old[i])] = old[i];
    free (old);
}

omni_idset_t *
omni_idset_new (void)
{
    omni_idset_t *self = calloc (1, sizeof *self);
    assert (self);
    if (getrandom (self->seed, sizeof self->seed, 0) != (ssize_t) sizeof self->seed) {
        self->seed[0] = (uint64_t) time (NULL) * 0x9E3779B97F4A7C15ULL;
        self->seed[1] = (uint64_t) getpid () ^ (uint64_t) (uintptr_t) self;
    }
    return self;
}

void
omni_idset_destroy (omni_idset_t **self_p)
{
    omni_idset_t *self = *self_p;
    if (self) {
        free (self->slots);
        free (self);
        *self_p = NULL;
    }
}

bool
omni_idset_insert (omni_idset_t *self, const uint8_t key[IDSET_KEY_SIZE])
{
    s_slot_t slot = s_slot (key);
    if (s_empty (&slot)) {
        bool added = !self->has_zero;
        self->has_zero = true;
        return added;
    }
    //  Load at most 3/4: linear probing stays short.
    if (4 * (self->count + 1) > 3 * self->capacity)
        s_resize (self, self->capacity ? self->capacity * 2 : MIN_CAPACITY);
    size_t i = s_find (self, &slot);
    if (!s_empty (&self->slots[i]))
        return false;
    self->slots[i] = slot;
    self->count++;
    return true;
}

bool
omni_idset_contains (const omni_idset_t *self, const uint8_t key[IDSET_KEY_SIZE])
{
    s_slot_t slot = s_slot (key);
    if (s_empty (&slot))
        return self->has_zero;
    return self->capacity && !s_empty (&self->slots[s_find (self, &slot)]);
}

bool
omni_idset_remove (omni_idset_t *self, const uint8_t key[IDSET_KEY_SIZE])
{
    s_slot_t slot = s_slot (key);
    if (s_empty (&slot)) {
        bool had = self->has_zero;
        self->has_zero = false;
        return had;
    }
    if (!self->capacity)
        return false;
    size_t mask = self->capacity - 1;
    size_t hole = s_find (self, &slot);
    if (s_empty (&self->slots[hole]))
        return false;
    //  Backward shift: later keys of the run move into the hole unless that
    //  would put them before their home slot. No tombstones to age.
    for (size_t j = (hole + 1) & mask; !s_empty (&self->slots[j]); j = (j + 1) & mask) {
        size_t home = s_home (self, &self->slots[j]);
        bool stays = hole < j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (!stays) {
            self->slots[hole] = self->slots[j];
            hole = j;
        }
    }
    self->slots[hole] = (s_slot_t){0, 0};
    self->count--;
    return true;
}

size_t
omni_idset_size (const omni_idset_t *self)
{
    return self->count + self->has_zero;
}

void
omni_idset_reset (omni_idset_t *self)
{
    if (self->slots)
        memset (self->slots, 0, self->capacity * sizeof *self->slots);
    self->count = 0;
    self->has_zero = false;
}

//  ---------------------------------------------------------------------------
//  Self-test

static void
s_test_key (uint64_t n, uint8_t key[IDSET_KEY_SIZE])
{
    //  Keys that share their first half, as a hostile collector might send.
    memset (key, 0xAB, 8);
    memcpy (key + 8, &n, 8);
}

void
omni_idset_test (bool verbose)
{
    if (verbose)
        printf (" * idset: ");
    omni_idset_t *set = omni_idset_new ();
    uint8_t key[IDSET_KEY_SIZE], zero[IDSET_KEY_SIZE] = {0};
    assert (!omni_idset_contains (set, zero));
    assert (!omni_idset_remove (set, zero));
    assert (omni_idset_insert (set, zero));
    assert (!omni_idset_insert (set, zero));
    assert (omni_idset_contains (set, zero) && omni_idset_size (set) == 1);

    const uint64_t n = 100000;
    for (uint64_t i = 1; i <= n; i++) {
        s_test_key (i, key);
        assert (omni_idset_insert (set, key));
    }
    for (uint64_t i = 1; i <= n; i++) {
        s_test_key (i, key);
        assert (!omni_idset_insert (set, key));
    }
    assert (omni_idset_size (set) == n + 1);
    //  Removing every third key keeps every other findable (backward shift).
    for (uint64_t i = 3; i <= n; i += 3) {
        s_test_key (i, key);
        assert (omni_idset_remove (set, key));
        assert (!omni_idset_remove (set, key));
    }
    for (uint64_t i = 1; i <= n; i++) {
        s_test_key (i, key);
        assert (omni_idset_contains (set, key) == (i % 3 != 0));
    }
    s_test_key (n + 1, key);
    assert (!omni_idset_contains (set, key));
    assert (omni_idset_size (set) == n - n / 3 + 1);
    assert (omni_idset_remove (set, zero) && !omni_idset_contains (set, zero));

    omni_idset_reset (set);
    assert (omni_idset_size (set) == 0);
    s_test_key (1, key);
    assert (!omni_idset_contains (set, key) && !omni_idset_contains (set, zero));
    s_test_key (7, key);
    assert (!omni_idset_contains (set, key));
    assert (omni_idset_insert (set, key) && omni_idset_contains (set, key));
    omni_idset_destroy (&set);
    assert (set == NULL);
    if (verbose)
        printf ("OK\n");
}
