/*  dirlock: one process per state directory. An exclusive flock on a lock
    file in the directory, held for the life of the object and released by
    the kernel when the process dies (kill -9 included), so a crashed holder
    never leaves a stale lock. The holder writes its pid into the file so
    that a second process can say who holds the directory.                  */
#ifndef OMNI_DIRLOCK_H
#define OMNI_DIRLOCK_H

#include <stdbool.h>
#include <stddef.h>

typedef struct _omni_dirlock_t omni_dirlock_t;

//  Creates `dir` if needed and locks `dir`/`name`. Returns NULL with `error`
//  filled: "<dir> in use by pid N" when another process holds it, or the
//  failing step and path.
omni_dirlock_t *omni_dirlock_new (const char *dir, const char *name, char *error,
                                  size_t error_size);
void omni_dirlock_destroy (omni_dirlock_t **self_p);

//  The lock file's path.
const char *omni_dirlock_path (omni_dirlock_t *self);

//  The pid written into `dir`/`name`, or 0 when there is none to read.
int omni_dirlock_holder (const char *dir, const char *name);

void omni_dirlock_test (bool verbose);

#endif
