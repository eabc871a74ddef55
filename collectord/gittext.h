/*  gittext: git's bytes as the UTF-8 text records must carry. A commit with
    an `encoding` header other than UTF-8 is converted with iconv, as `git
    log` converts it; what is still not valid UTF-8 has each bad sequence
    replaced by U+FFFD (utf8_repair). The caller keeps the original bytes
    (e.g. in body.raw) whenever `changed` is set.                            */
#ifndef OMNI_COLLECTORD_GITTEXT_H
#define OMNI_COLLECTORD_GITTEXT_H

#include <stdbool.h>
#include <stddef.h>

#define GITTEXT_SLOTS 12

typedef struct {
    const char *ptr; //  what to send: the bytes given, or a slot's buffer
    size_t len;
    const char *orig; //  the bytes given
    size_t orig_len;
    bool changed;
} gittext_str_t;

typedef struct _gittext_t gittext_t;

gittext_t *gittext_new (void);
void gittext_destroy (gittext_t **self_p);

//  The text of `len` bytes at `s` in `encoding` (NULL = UTF-8). A converted
//  or repaired copy lives in buffer `slot` (0..GITTEXT_SLOTS-1) until the
//  next call with that slot.
gittext_str_t gittext_get (gittext_t *self, size_t slot, const char *encoding, const char *s,
                           size_t len);

void gittext_test (bool verbose);

#endif
