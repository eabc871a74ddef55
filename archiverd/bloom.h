/*  bloom: a blocked Bloom filter over 16-byte ids, in memory.

    Why: the archive's id tree lives in LMDB, and asking it about an id
    costs a descent through random pages (about a microsecond), once for
    every new record. The filter answers "certainly not there" for almost
    all of them from one cache line: each id sets 6 bits inside one 64-byte
    block. At 10 bits an id it errs about 1.5 % of the time, and an error
    only costs the lookup it would have saved. It is derived data, built
    from the tree at start-up and grown with it, never stored.               */
#ifndef OMNI_ARCHIVERD_BLOOM_H
#define OMNI_ARCHIVERD_BLOOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _bloom_t bloom_t;

//  A filter sized for `capacity` ids at 10 bits each.
bloom_t *bloom_new (size_t capacity);
void bloom_destroy (bloom_t **self_p);

void bloom_add (bloom_t *self, const uint8_t key[16]);

//  False when `key` was certainly never added.
bool bloom_may_contain (const bloom_t *self, const uint8_t key[16]);

//  The number of ids it was sized for.
size_t bloom_capacity (const bloom_t *self);

//  Bytes held.
size_t bloom_memory (const bloom_t *self);

void bloom_test (bool verbose);

#endif
