/*  buf: the growable byte buffer and the growable array (see buf.h for why
    they are one class and why the fast path is inline).                     */
#include "common/buf.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

//  Doubling from a small first size: the callers' sizes range from a few
//  bytes (a key) to megabytes (a batch), and doubling keeps the copies
//  linear in the end size for all of them.
#define S_FIRST_CAP 64

omni_buf_t *
omni_buf_new (void)
{
    omni_buf_t *self = calloc (1, sizeof *self);
    assert (self);
    return self;
}

void
omni_buf_destroy (omni_buf_t **self_p)
{
    if (!*self_p)
        return;
    omni_buf_release (*self_p);
    free (*self_p);
    *self_p = NULL;
}

void
omni_buf_release (omni_buf_t *self)
{
    if (self->data != self->fixed)
        free (self->data);
    self->data = NULL;
    self->size = self->capacity = 0;
    self->fixed = NULL;
}

void
omni_buf_init_fixed (omni_buf_t *self, char *storage, size_t size)
{
    assert (size >= 1);
    self->data = self->fixed = storage;
    self->size = 0;
    self->capacity = size;
    storage[0] = 0;
}

int
omni_buf_try_reserve (omni_buf_t *self, size_t extra)
{
    if (self->capacity - self->size > extra)
        return 0;
    if (extra > SIZE_MAX / 2 - self->size - 1)
        return -1;
    size_t need = self->size + extra + 1;
    size_t cap = self->capacity ? self->capacity : S_FIRST_CAP;
    while (cap < need)
        cap *= 2;
    bool fixed = self->data && self->data == self->fixed;
    char *data = fixed ? malloc (cap) : realloc (self->data, cap);
    if (!data)
        return -1;
    if (fixed)
        memcpy (data, self->data, self->size + 1);
    else if (!self->data)
        data[0] = 0;
    self->data = data;
    self->capacity = cap;
    return 0;
}

void
omni_buf_grow_ (omni_buf_t *self, size_t extra)
{
    if (omni_buf_try_reserve (self, extra)) {
        fprintf (stderr, "omni_buf: out of memory for %zu bytes more\n", extra);
        abort ();
    }
}

void
omni_buf_append_str (omni_buf_t *self, const char *text)
{
    omni_buf_append (self, text, strlen (text));
}

int
omni_buf_try_vprintf (omni_buf_t *self, const char *format, va_list args)
{
    //  One try in the room there is, a second with the room the first said
    //  it needs: most appends fit, and then format once
    if (omni_buf_try_reserve (self, 0))
        return -1;
    va_list again;
    va_copy (again, args);
    size_t room = self->capacity - self->size;
    int len = vsnprintf (self->data + self->size, room, format, args);
    if (len >= 0 && (size_t) len >= room) {
        if (omni_buf_try_reserve (self, (size_t) len) == 0)
            vsnprintf (self->data + self->size, (size_t) len + 1, format, again);
        else
            len = -1;
    }
    va_end (again);
    if (len < 0) {
        self->data[self->size] = 0; //  what the first try wrote is not counted
        return -1;
    }
    omni_buf_advance (self, (size_t) len);
    return 0;
}

void
omni_buf_vprintf (omni_buf_t *self, const char *format, va_list args)
{
    if (omni_buf_try_vprintf (self, format, args)) {
        fprintf (stderr, "omni_buf: out of memory for formatted text\n");
        abort ();
    }
}

void
omni_buf_printf (omni_buf_t *self, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    omni_buf_vprintf (self, format, args);
    va_end (args);
}

int
omni_buf_read_file (omni_buf_t *self, FILE *file)
{
    while (true) {
        if (self->capacity - self->size <= 1)
            omni_buf_reserve (self, 4096);
        size_t n = fread (self->data + self->size, 1, self->capacity - self->size - 1, file);
        if (n == 0)
            break;
        omni_buf_advance (self, n);
    }
    return ferror (file) ? -1 : 0;
}

char *
omni_buf_detach (omni_buf_t *self)
{
    if (!self->data || self->data == self->fixed) {
        //  Nothing yet, or in the caller's storage: a copy on the heap
        omni_buf_t copy = {0};
        omni_buf_append (&copy, self->data ? self->data : "", self->size);
        omni_buf_release (self);
        return copy.data;
    }
    char *data = self->data;
    self->data = NULL;
    self->size = self->capacity = 0;
    return data;
}

bool
omni_array_grow_cap (size_t *cap, size_t need)
{
    if (need <= *cap)
        return false;
    size_t grown = *cap ? *cap : S_FIRST_CAP / 4;
    while (grown < need && grown <= SIZE_MAX / 2)
        grown *= 2;
    if (grown < need) {
        fprintf (stderr, "omni_array: %zu items are too many\n", need);
        abort ();
    }
    *cap = grown;
    return true;
}

void *
omni_array_resize_ (void *array, size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size) {
        fprintf (stderr, "omni_array: %zu items of %zu bytes are too many\n", count, size);
        abort ();
    }
    void *items = realloc (array, count * size);
    if (!items && count > 0 && size > 0) {
        fprintf (stderr, "omni_array: out of memory for %zu items of %zu bytes\n", count, size);
        abort ();
    }
    return items;
}

void *
omni_array_grow_ (void *array, size_t *cap, size_t need, size_t size)
{
    size_t grown = *cap;
    omni_array_grow_cap (&grown, need);
    array = omni_array_resize_ (array, grown, size);
    *cap = grown;
    return array;
}

//  ---------------------------------------------------------------------------
//  Self-test

void
omni_buf_test (bool verbose)
{
    (void) verbose;
    omni_buf_t buf = {0};
    omni_buf_reset (&buf); //  on an empty buffer: nothing to do
    omni_buf_append (&buf, "abc", 3);
    assert (buf.size == 3 && strcmp (buf.data, "abc") == 0 && buf.capacity > 3);
    omni_buf_append_char (&buf, '-');
    omni_buf_append_str (&buf, "de");
    omni_buf_printf (&buf, "%d/%s", 42, "x");
    assert (strcmp (buf.data, "abc-de42/x") == 0 && buf.size == 10);
    //  A long printf: past the room there is, formatted again
    omni_buf_printf (&buf, "%0300d", 7);
    assert (buf.size == 310 && buf.data[309] == '7' && buf.data[310] == 0);
    //  Many appends: the contents survive every doubling
    omni_buf_reset (&buf);
    assert (buf.size == 0 && buf.data[0] == 0);
    for (int i = 0; i < 100000; i++)
        omni_buf_append_char (&buf, (char) ('a' + i % 26));
    assert (buf.size == 100000 && buf.data[99999] == 'a' + 99999 % 26 && buf.capacity > buf.size);
    //  Reserve, write, advance
    char *at = omni_buf_reserve (&buf, 5);
    memcpy (at, "12345", 5);
    omni_buf_advance (&buf, 5);
    assert (buf.size == 100005 && strcmp (buf.data + 100000, "12345") == 0);
    assert (omni_buf_try_reserve (&buf, SIZE_MAX - 8) == -1 && buf.size == 100005);
    char *text = omni_buf_detach (&buf);
    assert (strlen (text) == 100005 && !buf.data && buf.size == 0 && buf.capacity == 0);
    free (text);
    //  Detaching an empty buffer gives "", never NULL
    text = omni_buf_detach (&buf);
    assert (text && !*text);
    free (text);
    omni_buf_t *heap = omni_buf_new ();
    omni_buf_append (heap, "", 0);
    assert (heap->data && heap->size == 0 && !*heap->data);
    omni_buf_destroy (&heap);
    assert (!heap);
    omni_buf_destroy (&heap);
    omni_buf_release (&buf);

    //  In the caller's storage until it outgrows it
    char line[8];
    omni_buf_init_fixed (&buf, line, sizeof line);
    omni_buf_append_str (&buf, "1234567");
    assert (buf.data == line && strcmp (line, "1234567") == 0);
    omni_buf_append_str (&buf, "89");
    assert (buf.data != line && strcmp (buf.data, "123456789") == 0);
    omni_buf_release (&buf);
    omni_buf_init_fixed (&buf, line, sizeof line);
    omni_buf_printf (&buf, "%s", "ab");
    text = omni_buf_detach (&buf); //  a heap copy, the storage left alone
    assert (text != line && strcmp (text, "ab") == 0 && !buf.data);
    free (text);
    omni_buf_release (&buf);

    //  A whole file, in the room reserved for it and past it
    FILE *file = tmpfile ();
    assert (file);
    for (int i = 0; i < 10000; i++)
        fprintf (file, "line %d\n", i);
    long length = ftell (file);
    rewind (file);
    omni_buf_reserve (&buf, 10);
    assert (omni_buf_read_file (&buf, file) == 0);
    assert (buf.size == (size_t) length && strncmp (buf.data, "line 0\nline 1\n", 14) == 0);
    assert (strcmp (buf.data + buf.size - 10, "line 9999\n") == 0);
    rewind (file);
    omni_buf_reset (&buf);
    omni_buf_reserve (&buf, (size_t) length);
    size_t room = buf.capacity;
    assert (omni_buf_read_file (&buf, file) == 0 && buf.size == (size_t) length);
    assert (buf.capacity == room || buf.capacity - (size_t) length - 1 >= 4096);
    fclose (file);
    omni_buf_release (&buf);

    //  The array: pushes keep what is there, reserve gives the room asked
    struct {
        int a;
        double b;
    } *items = NULL;
    size_t count = 0, cap = 0;
    for (int i = 0; i < 1000; i++)
        omni_array_push (items, count, cap)->a = i;
    assert (count == 1000 && cap >= 1000);
    for (int i = 0; i < 1000; i++)
        assert (items[i].a == i);
    omni_array_reserve (items, cap, 5000);
    assert (cap >= 5000 && items[999].a == 999);
    size_t before = cap;
    omni_array_reserve (items, cap, 10); //  enough already: unchanged
    assert (cap == before);
    free (items);

    //  Arrays indexed alike: one capacity, each resized to it
    int *flags = NULL;
    char *names = NULL;
    cap = 0;
    assert (!omni_array_grow_cap (&cap, 0) && cap == 0);
    assert (omni_array_grow_cap (&cap, 3) && cap >= 3);
    omni_array_resize (flags, cap);
    omni_array_resize (names, cap);
    for (size_t i = 0; i < 3; i++) {
        flags[i] = (int) i;
        names[i] = (char) ('a' + i);
    }
    before = cap;
    assert (!omni_array_grow_cap (&cap, before) && cap == before);
    assert (omni_array_grow_cap (&cap, 1000) && cap >= 1000 && cap >= 2 * before);
    omni_array_resize (flags, cap);
    omni_array_resize (names, cap);
    assert (flags[2] == 2 && names[2] == 'c');
    flags[999] = 999; //  the room is there (ASan would say otherwise)
    names[999] = 'z';
    free (flags);
    free (names);
}
