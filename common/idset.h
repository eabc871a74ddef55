/*  idset: an in-memory set of 16-byte record ids (or dedup keys), for the
    archive's recent ids and the writers' duplicates inside a batch.

    Why not zhashx: the archive holds millions of these at once; a flat
    open-addressed table costs 16 bytes a slot and no allocation per key,
    where a general hash costs an allocation and ~80 bytes a key. Lookups
    are one or two cache misses. The hash is keyed with a per-process
    random seed, so that ids chosen by a hostile collector cannot be made
    to collide and turn lookups linear.                                      */
#ifndef OMNI_IDSET_H
#define OMNI_IDSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IDSET_KEY_SIZE 16

typedef struct _idset_t idset_t;

idset_t *idset_new (void);
void idset_destroy (idset_t **self_p);

//  Adds `key`; returns true when it was not in the set yet.
bool idset_insert (idset_t *self, const uint8_t key[IDSET_KEY_SIZE]);

bool idset_contains (const idset_t *self, const uint8_t key[IDSET_KEY_SIZE]);

//  Removes `key`; returns true when it was in the set.
bool idset_remove (idset_t *self, const uint8_t key[IDSET_KEY_SIZE]);

size_t idset_size (const idset_t *self);

//  Empties the set and keeps its memory, for a set refilled at once.
void idset_reset (idset_t *self);

void idset_test (bool verbose);

#endif
