/*  utf8: strict UTF-8 checking and repair for text read from outside (git
    authors, messages, paths), which records must carry as valid UTF-8.       */
#ifndef OMNI_COLLECTORD_UTF8_H
#define OMNI_COLLECTORD_UTF8_H

#include "common/buf.h"

#include <stdbool.h>
#include <stddef.h>

//  (Whether text is well-formed UTF-8: omni_util_utf8_valid.)

//  Replaces `buf`'s content with `s`, each ill-formed subsequence replaced by
//  one U+FFFD ("maximal subpart" practice of the Unicode standard, as
//  Python's bytes.decode (errors="replace") does). Returns the number of
//  replacements made. `buf` is reused across calls, so that repairing costs
//  no allocation once it is large enough.
size_t utf8_repair (const char *s, size_t len, omni_buf_t *buf);

void utf8_test (bool verbose);

#endif
