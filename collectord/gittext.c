/*  gittext: UTF-8 text from git's bytes.                                   */
#include "collectord/gittext.h"
#include "collectord/utf8.h"
#include "common/util.h"

#include <assert.h>
#include <iconv.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct _gittext_t {
    omni_buf_t buf[GITTEXT_SLOTS];
    char *iconv_name; //  the encoding `iconv` converts from
    iconv_t iconv;
};

gittext_t *
gittext_new (void)
{
    gittext_t *self = calloc (1, sizeof *self);
    assert (self);
    self->iconv = (iconv_t) -1;
    return self;
}

void
gittext_destroy (gittext_t **self_p)
{
    gittext_t *self = *self_p;
    if (!self)
        return;
    for (int i = 0; i < GITTEXT_SLOTS; i++)
        omni_buf_release (&self->buf[i]);
    if (self->iconv != (iconv_t) -1)
        iconv_close (self->iconv);
    free (self->iconv_name);
    free (self);
    *self_p = NULL;
}

static bool
s_is_utf8 (const char *encoding)
{
    return !encoding || strcasecmp (encoding, "utf-8") == 0 || strcasecmp (encoding, "utf8") == 0;
}

//  Converts into `buf`; false when iconv cannot (unknown encoding, bytes
//  that are not of that encoding).
static bool
s_convert (gittext_t *self, const char *encoding, const char *s, size_t len, omni_buf_t *buf)
{
    if (!self->iconv_name || strcasecmp (self->iconv_name, encoding) != 0) {
        if (self->iconv != (iconv_t) -1)
            iconv_close (self->iconv);
        free (self->iconv_name);
        self->iconv_name = strdup (encoding);
        self->iconv = iconv_open ("UTF-8", encoding);
    }
    if (self->iconv == (iconv_t) -1)
        return false;
    iconv (self->iconv, NULL, NULL, NULL, NULL);
    size_t room = len * 4 + 16;
    omni_buf_reset (buf);
    char *in = (char *) s, *out = omni_buf_reserve (buf, room);
    size_t in_left = len, out_left = room;
    if (iconv (self->iconv, &in, &in_left, &out, &out_left) == (size_t) -1 ||
        iconv (self->iconv, NULL, NULL, &out, &out_left) == (size_t) -1)
        return false;
    omni_buf_advance (buf, room - out_left);
    return omni_util_utf8_valid (buf->data, buf->size);
}

gittext_str_t
gittext_get (gittext_t *self, size_t slot, const char *encoding, const char *s, size_t len)
{
    assert (slot < GITTEXT_SLOTS);
    gittext_str_t t = {s, len, s, len, false};
    bool utf8 = s_is_utf8 (encoding);
    if (utf8 && omni_util_utf8_valid (s, len))
        return t;
    omni_buf_t *buf = &self->buf[slot];
    if (utf8 || !s_convert (self, encoding, s, len, buf))
        utf8_repair (s, len, buf);
    t.ptr = buf->data;
    t.len = buf->size;
    t.changed = t.len != len || memcmp (t.ptr, s, len) != 0;
    return t;
}

void
gittext_test (bool verbose)
{
    (void) verbose;
    gittext_t *text = gittext_new ();
    gittext_str_t t = gittext_get (text, 0, NULL, "plain", 5);
    assert (!t.changed && t.len == 5 && memcmp (t.ptr, "plain", 5) == 0);
    t = gittext_get (text, 0, "UTF-8", "J\xC3\xBCrgen", 7);
    assert (!t.changed);
    //  Not UTF-8 without an encoding header: repaired
    t = gittext_get (text, 1, NULL, "J\xFCrgen", 6);
    assert (t.changed && strcmp (t.ptr, "J\xEF\xBF\xBDrgen") == 0 && t.orig_len == 6);
    //  With one: converted as git log converts
    t = gittext_get (text, 2, "ISO-8859-1", "J\xFCrgen", 6);
    assert (t.changed && strcmp (t.ptr, "J\xC3\xBCrgen") == 0);
    //  Slots are independent
    assert (strcmp (gittext_get (text, 1, NULL, "x\xFF", 2).ptr, "x\xEF\xBF\xBD") == 0);
    assert (strcmp (t.ptr, "J\xC3\xBCrgen") == 0);
    //  An unknown encoding, or bytes iconv refuses: repaired instead
    t = gittext_get (text, 3, "no-such-charset", "a\xFF", 2);
    assert (t.changed && strcmp (t.ptr, "a\xEF\xBF\xBD") == 0);
    t = gittext_get (text, 3, "SHIFT_JIS", "\x82", 1);
    assert (t.changed && strcmp (t.ptr, "\xEF\xBF\xBD") == 0);
    //  An ASCII commit declared ISO-8859-1 is unchanged text
    t = gittext_get (text, 4, "ISO-8859-1", "abc", 3);
    assert (!t.changed || (t.len == 3 && memcmp (t.ptr, "abc", 3) == 0));
    gittext_destroy (&text);
    assert (text == NULL);
}
