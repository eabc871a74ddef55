/*  utf8: strict UTF-8 checking and repair.                                  */
#include "collectord/utf8.h"
#include "common/util.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

size_t
utf8_repair (const char *s, size_t len, omni_buf_t *buf)
{
    const uint8_t *p = (const uint8_t *) s;
    omni_buf_reset (buf);
    omni_buf_reserve (buf, len);
    size_t i = 0, start = 0, replaced = 0, bad;
    while (i < len) {
        size_t n = omni_util_utf8_len (p + i, len - i, &bad);
        if (n) {
            i += n;
            continue;
        }
        omni_buf_append (buf, s + start, i - start);
        omni_buf_append (buf, "\xEF\xBF\xBD", 3);
        replaced++;
        i += bad;
        start = i;
    }
    omni_buf_append (buf, s + start, len - start);
    return replaced;
}

void
utf8_test (bool verbose)
{
    (void) verbose;
    assert (omni_util_utf8_valid ("", 0));
    assert (omni_util_utf8_valid ("plain", 5));
    assert (omni_util_utf8_valid ("J\xC3\xBCrgen \xE2\x82\xAC \xF0\x9F\x98\x80", 16));
    assert (!omni_util_utf8_valid ("J\xFCrgen", 6));        //  Latin-1
    assert (!omni_util_utf8_valid ("\xC0\xAF", 2));         //  overlong
    assert (!omni_util_utf8_valid ("\xED\xA0\x80", 3));     //  surrogate
    assert (!omni_util_utf8_valid ("\xF4\x90\x80\x80", 4)); //  past U+10FFFF
    assert (!omni_util_utf8_valid ("\xE2\x82", 2));         //  truncated

    omni_buf_t buf = {0};
    assert (utf8_repair ("ok \xC3\xA4", 5, &buf) == 0);
    assert (buf.size == 5 && memcmp (buf.data, "ok \xC3\xA4", 5) == 0);
    //  One U+FFFD per maximal subpart: what Python's decode(errors="replace") gives
    assert (utf8_repair ("J\xFCrgen", 6, &buf) == 1);
    assert (strcmp (buf.data, "J\xEF\xBF\xBDrgen") == 0);
    assert (utf8_repair ("a\xE2\x82z", 4, &buf) == 1); //  truncated 3-byte: one
    assert (strcmp (buf.data, "a\xEF\xBF\xBDz") == 0);
    assert (utf8_repair ("\xC0\xAF", 2, &buf) == 2);     //  overlong: two
    assert (utf8_repair ("\xED\xA0\x80", 3, &buf) == 3); //  surrogate: three
    assert (utf8_repair ("\xF0\x9F\x98", 3, &buf) == 1); //  truncated 4-byte at end
    assert (strcmp (buf.data, "\xEF\xBF\xBD") == 0);
    assert (utf8_repair ("x\0y", 3, &buf) == 0 && buf.size == 3);
    assert (omni_util_utf8_valid (buf.data, buf.size));
    omni_buf_release (&buf);
    assert (buf.data == NULL);
}
