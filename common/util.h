/*  util: the few small helpers every daemon needs.                           */
#ifndef OMNI_UTIL_H
#define OMNI_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Wall-clock time in ns since the epoch (event times).
int64_t omni_util_now_ns (void);
//  Monotonic time in ms (timeouts, intervals).
int64_t omni_util_mono_ms (void);

//  Lower-case hex of `size` bytes into `out` (2*size+1 bytes, NUL-terminated).
void omni_util_hex (const uint8_t *bytes, size_t size, char *out);
//  Parses exactly 2*size hex digits; returns -1 on any other input.
int omni_util_unhex (const char *hex, uint8_t *bytes, size_t size);

//  The length of the well-formed UTF-8 sequence at `p` (`left` >= 1 bytes):
//  1 for ASCII, 2..4, or 0 when it is ill-formed (overlong, a surrogate,
//  past U+10FFFF, cut short), the rule ingestd applies to records (Unicode
//  Table 3-7). Then `bad`, if given, is the length of its maximal subpart,
//  what one U+FFFD replaces ("maximal subpart" practice).
size_t omni_util_utf8_len (const uint8_t *p, size_t left, size_t *bad);
//  Whether `len` bytes are well-formed UTF-8.
bool omni_util_utf8_valid (const void *text, size_t len);
//  The length of the longest prefix of `text` (`len` bytes of UTF-8) of at
//  most `max` bytes that does not cut a character, for text cut to a limit.
size_t omni_util_utf8_cut (const void *text, size_t len, size_t max);

//  Writes `len` bytes as the body of a JSON string (no quotes) at `out`,
//  which has room for 6 * len bytes; returns the bytes written. Quotes,
//  backslashes and control characters are escaped. `untrusted`: text from
//  outside (logs, the tap) that may not be UTF-8: each byte that starts no
//  well-formed sequence becomes \ufffd and DEL \u007f, so that the output
//  always parses and shows nothing raw; otherwise (record strings, valid by
//  omni_record_check) bytes of 0x80 and over pass as they are.
size_t omni_util_json_escape (char *out, const void *text, size_t len, bool untrusted);

//  The `n` low bytes of `value`, most significant first (the byte order of
//  every integer on the wire and in the stores' keys, so that they sort).
void omni_util_put_be (uint8_t *out, uint64_t value, size_t n);
//  The integer of `n` bytes at `in`, most significant first.
uint64_t omni_util_get_be (const void *in, size_t n);

//  Reads exactly `n` decimal digits at *p into `out`, moving *p past them
//  (the fields of the times the collectors parse: 2024-01-31T12:00).
//  Returns -1 at a character that is not a digit.
int omni_util_digits (const char **p, int n, int *out);

//  A time read by omni_util_iso_time.
typedef struct {
    int year, mon, day, hour, min, sec;
    int64_t frac_ns; //  the fraction of the second, in ns
    int offset_min;  //  the offset east of UTC it was written with
    int64_t secs;    //  seconds since the epoch (UTC)
} omni_util_time_t;

//  Reads YYYY-MM-DD[(T| )HH:MM[:SS]][Z|(+|-)HH[:]MM] at *p, UTC unless an
//  offset is given, moving *p past it (what follows is the caller's to
//  judge). `lenient` also takes what CI exports write: a lower-case t or
//  z, a fraction of the second after . or , and an offset in hours alone.
//  Returns -1 where the text is no such time or a field is out of range.
//  Both of builds' and git's parsers, whose accepted inputs differ only
//  by `lenient`.
int omni_util_iso_time (const char **p, bool lenient, omni_util_time_t *out);

//  mkdir -p; returns -1 with errno set.
int omni_util_mkdirs (const char *path);
//  fsync the directory holding entries just created or renamed.
int omni_util_fsync_dir (const char *path);

void omni_util_test (bool verbose);

#endif
