/*  lang_count: which language a file is in, and its blank, comment and code
    lines, as cloc (1.96, Debian's) counts them, so that counts compare
    language by language and the names are cloc's:

        blank    only whitespace (cloc: and not after a line continued with \)
        comment  a line cloc's comment filters for the language remove whole
        code     what is left, and the #! first line of a script

    cloc's filters are regular expressions over lines, not parsers: a line
    starting with # is a shell or Tcl comment even inside a quoted string or
    here-document, a Python line holding a C comment marker is a comment, a block
    comment that starts after code on one line and ends before code on a
    later one leaves one line of code, and strings are not looked at (cloc's
    --strip-str-comments is off by default). lang_count does the same, on
    purpose: the figure is meant to be cloc's.

    The language: cloc's rules in cloc's order. A name cloc never counts
    (README, ChangeLog ...) or ending in ~: none. A file name (Makefile,
    CMakeLists.txt ...); else the triple, double then single extension, as
    cloc spells it (case matters; an extension cloc ignores, like .in,
    means none), an extension several languages share decided by cloc's
    point rules (.m, .pl, .ts, .cs, .v, .d, .jl, .pp, .inc, pom.xml,
    build.xml); else the name before the first dot (Dockerfile.dev); else
    the #! line's interpreter (cloc's list: python3, not python3.11), or
    XML for a first line <?xml. Files with a NUL byte in their first 8000
    bytes are binary and have none. The languages and extensions are
    cloc's tables (lang_table.inc), less those whose filters lang_count.c
    does not implement (listed there).                                    */
#ifndef OMNI_COLLECTORD_LANG_COUNT_H
#define OMNI_COLLECTORD_LANG_COUNT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _lang_t lang_t;

typedef struct {
    uint64_t blank, comment, code;
} lang_lines_t;

//  The language of `path` (its last component decides) holding `data`;
//  NULL when unknown or binary.
const lang_t *lang_detect (const char *path, const char *data, size_t len);

//  cloc's name of the language: "C", "C/C++ Header", "Python" ...
const char *lang_name (const lang_t *lang);

//  The language of that name, or NULL.
const lang_t *lang_lookup (const char *name);

//  Counts the lines of `data` (a final line without newline counts).
void lang_count (const lang_t *lang, const char *data, size_t len, lang_lines_t *lines);

//  True when the first 8000 bytes hold a NUL.
bool lang_binary (const char *data, size_t len);

void lang_count_test (bool verbose);

#endif
