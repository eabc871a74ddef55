/*  lang_count: which language a file is in, and its blank, comment and code
    lines, by cloc's conventions (the names are cloc's too, so that counts
    compare language by language):

        blank    only whitespace
        comment  only comment (and whitespace): a line comment, a line inside
                 or holding a block comment, a line inside a Python
                 triple-quoted string (cloc counts those as comments)
        code     anything else: a line with code and a comment is code; the
                 #! first line of a script (Python, shells, Perl, Ruby ...)

    Unlike cloc's regular expressions, a scanner per language follows
    strings (with their escapes, on one line or across lines as the language
    allows), shell here-documents, Perl POD and __END__, Ruby =begin/=end,
    nested block comments (Rust, Swift, Haskell, OCaml, Julia...), so a
    comment marker inside a string never starts a comment. Where cloc
    differs: a line inside a string or here-document that looks like a
    comment (cloc: comment; here: code), a Python line holding a C comment
    marker (cloc: comment), nested comments, Perl POD that does not start
    with =head1 (cloc: code; here all POD is comment), and a block comment or
    Python triple-quoted string that starts after code and ends before code
    on a later line (cloc joins the two lines into one line of code and counts
    the other as comment; here both are code).

    The language: by file name (Makefile, Dockerfile, CMakeLists.txt ...),
    else by extension (the longest known suffix: .gradle.kts before .kts),
    else by the interpreter of a #! line (env and version numbers allowed:
    #!/usr/bin/env python3.11). Files with a NUL byte in their first 8000
    bytes are binary and have none.                                       */
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
