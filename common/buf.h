/*  buf: the growable byte buffer and the growable array, written once.
    The tree had some fifty of each grown by hand, each with its own
    doubling, its own NUL and its own overflow (or none); these are the one
    way. Both are plain structs (a buffer is zero-initialised empty, by value
    in its owner), with the fast path inline, because the record encoder, the
    writers' batches and the archive's JSON lines append in their loops.
    Out of memory aborts, as every hand-grown site did (`assert` on realloc);
    omni_buf_try_reserve is for the few callers that carry on without.      */
#ifndef OMNI_BUF_H
#define OMNI_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    char *data;      //  NULL until the first byte, else NUL-terminated at `size`
    size_t size;     //  bytes in use
    size_t capacity; //  bytes allocated (room for size + 1)
    char *fixed;     //  the caller's storage it started in (omni_buf_init_fixed), or NULL
} omni_buf_t;

//  A buffer on the heap, for owners that pass it around by pointer.
omni_buf_t *omni_buf_new (void);
void omni_buf_destroy (omni_buf_t **self_p);
//  Frees the bytes of a buffer held by value; leaves it empty and usable.
void omni_buf_release (omni_buf_t *self);
//  A buffer that starts in the caller's `storage` of `size` (>= 1) bytes, a
//  line on the stack, and goes to the heap only when it outgrows it.
void omni_buf_init_fixed (omni_buf_t *self, char *storage, size_t size);

//  Room for `extra` bytes after `size`, and the NUL; -1 (buffer unchanged)
//  when memory is out.
int omni_buf_try_reserve (omni_buf_t *self, size_t extra);
//  The slow path of omni_buf_reserve (aborts when memory is out).
void omni_buf_grow_ (omni_buf_t *self, size_t extra);

//  Room for `extra` bytes after `size`, and the NUL; returns where they go
//  (fill them, then omni_buf_advance). Aborts when memory is out.
static inline char *
omni_buf_reserve (omni_buf_t *self, size_t extra)
{
    if (self->capacity - self->size <= extra)
        omni_buf_grow_ (self, extra);
    return self->data + self->size;
}

//  Counts `len` bytes written at omni_buf_reserve's pointer as used.
static inline void
omni_buf_advance (omni_buf_t *self, size_t len)
{
    self->size += len;
    self->data[self->size] = 0;
}

static inline void
omni_buf_append (omni_buf_t *self, const void *data, size_t len)
{
    char *at = omni_buf_reserve (self, len);
    if (len)
        memcpy (at, data, len);
    omni_buf_advance (self, len);
}

static inline void
omni_buf_append_char (omni_buf_t *self, char c)
{
    omni_buf_reserve (self, 1)[0] = c;
    omni_buf_advance (self, 1);
}

void omni_buf_append_str (omni_buf_t *self, const char *text);
//  Appends formatted text.
void omni_buf_printf (omni_buf_t *self, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));
void omni_buf_vprintf (omni_buf_t *self, const char *format, va_list args)
    __attribute__ ((format (printf, 2, 0)));
//  The same, -1 (buffer unchanged) when memory is out or the format fails.
int omni_buf_try_vprintf (omni_buf_t *self, const char *format, va_list args)
    __attribute__ ((format (printf, 2, 0)));

//  Drops what is past `size` (<= the size), keeping the memory.
static inline void
omni_buf_truncate (omni_buf_t *self, size_t size)
{
    self->size = size;
    if (self->data)
        self->data[size] = 0;
}

//  Empties the buffer and keeps its memory (data stays "" once allocated).
static inline void
omni_buf_reset (omni_buf_t *self)
{
    self->size = 0;
    if (self->data)
        self->data[0] = 0;
}

//  Appends what is left of `file`, to its end; -1 on a read error (errno
//  set), what was read kept. Reads into the room there is first, so that a
//  buffer reserved to the file's size reads it without growing.
int omni_buf_read_file (omni_buf_t *self, FILE *file);

//  Hands the bytes (NUL-terminated, never NULL, to be freed by the caller)
//  over and leaves the buffer empty.
char *omni_buf_detach (omni_buf_t *self);

//  The growable array: `array` a pointer to items, `cap` a size_t, both
//  lvalues (evaluated more than once). Makes room for `need` items, at least
//  doubling; aborts when memory is out.
#define omni_array_reserve(array, cap, need)                                                       \
    ((void) ((need) <= (cap) ||                                                                    \
             ((array) = omni_array_grow_ ((array), &(cap), (need), sizeof *(array)), true)))
//  Room for one more item at `count` (a size_t lvalue), counted; returns
//  its address: `*omni_array_push (self->refs, self->nrefs, self->refs_cap) = ref;`
#define omni_array_push(array, count, cap)                                                         \
    (omni_array_reserve (array, cap, (count) + 1), &(array)[(count)++])
//  The slow path of the two: the array reallocated for at least `need`
//  items of `size` bytes, `*cap` updated.
void *omni_array_grow_ (void *array, size_t *cap, size_t need, size_t size);

//  Arrays indexed alike (a batch's flags, order and line ends) share one
//  capacity: omni_array_grow_cap raises `*cap` for `need` items as
//  omni_array_reserve would and says whether it did; each array is then
//  omni_array_resize'd to it:
//      if (omni_array_grow_cap (&self->cap, count)) {
//          omni_array_resize (self->skip, self->cap);
//          omni_array_resize (self->order, self->cap);
//      }
bool omni_array_grow_cap (size_t *cap, size_t need);
//  `array` reallocated to exactly `count` items; aborts when memory is out.
#define omni_array_resize(array, count)                                                            \
    ((void) ((array) = omni_array_resize_ ((array), (count), sizeof *(array))))
void *omni_array_resize_ (void *array, size_t count, size_t size);

void omni_buf_test (bool verbose);

#endif
