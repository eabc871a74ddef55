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

typedef struct _omni_idset_t omni_idset_t;

omni_idset_t *omni_idset_new (void);
void omni_idset_destroy (omni_idset_t **self_p);

//  Adds `key`; returns true when it was not in the set yet.
bool omni_idset_insert (omni_idset_t *self, const uint8_t key[IDSET_KEY_SIZE]);

bool omni_idset_contains (const omni_idset_t *self, const uint8_t key[IDSET_KEY_SIZE]);

//  Removes `key`; returns true when it was in the set.
bool omni_idset_remove (omni_idset_t *self, const uint8_t key[IDSET_KEY_SIZE]);

size_t omni_idset_size (const omni_idset_t *self);

//  Empties the set and keeps its memory, for a set refilled at once.
void omni_idset_reset (omni_idset_t *self);

void omni_idset_test (bool verbose);

#endif
