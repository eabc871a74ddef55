/*  tap_printer: the text omni-tap prints for each tap message (see "Tap" in
    proto/PROTOCOL.md), and which topics it subscribes to.

    An accepted record, [kind, record], becomes the record as one JSON line
    (omni_mpjson_record), or in pretty form a header line
        git.commit  src=repo id=<hex> ts=2023-11-14T22:13:20.000000000Z col=.. run=..
    followed by the tags and the body as indented JSON. A reject,
    ["!reject", reason, detail, raw], becomes
        {"reject":"bad_body","detail":"...","size":N,"raw_hex":"<first 64 bytes>"}
    where size is the length of the raw frame as published (ingestd cuts it
    to 4096 bytes). Every output is valid UTF-8 JSON whatever the input.     */
#ifndef OMNI_TAP_PRINTER_H
#define OMNI_TAP_PRINTER_H

#include <stdbool.h>
#include <stddef.h>

#define TAP_REJECT_TOPIC "!reject"
#define TAP_RAW_HEX_MAX  64 //  bytes of a reject's raw input shown, as hex

typedef enum { TAP_FORMAT_JSON, TAP_FORMAT_PRETTY } tap_format_t;

typedef enum {
    TAP_PRINTED, //  text ready
    TAP_SKIPPED, //  a reject while rejects are not wanted: print nothing
    TAP_BAD      //  not a tap message or an undecodable record; text says why
} tap_result_t;

typedef struct _tap_printer_t tap_printer_t;

//  "json" or "pretty"; returns -1 for anything else.
int tap_format_parse (const char *name, tap_format_t *format);

//  The topics to subscribe to for these kind prefixes (NULL-terminated,
//  may be NULL) and --rejects: each prefix, plus "!reject" with rejects;
//  with no prefix, "" (everything) unless rejects alone were asked for.
//  Returns a NULL-terminated array of pointers into `kinds` or to static
//  text; the caller frees the array only. *show_rejects tells whether the
//  printer must print the rejects these topics may bring.
const char **tap_topics (const char *const *kinds, bool rejects, bool *show_rejects);

tap_printer_t *tap_printer_new (tap_format_t format, bool show_rejects);
void tap_printer_destroy (tap_printer_t **self_p);

//  Formats one message given as its frames. On TAP_PRINTED and TAP_BAD,
//  *text / *size hold the text (a complete line or lines ending in '\n'
//  for TAP_PRINTED, a one-line reason without newline for TAP_BAD), valid
//  until the next call.
tap_result_t tap_printer_format (tap_printer_t *self, const void *const *frames,
                                 const size_t *sizes, size_t count, const char **text,
                                 size_t *size);

//  Messages printed, skipped and bad so far.
size_t tap_printer_printed (tap_printer_t *self);
size_t tap_printer_bad (tap_printer_t *self);

void tap_printer_test (bool verbose);

#endif
