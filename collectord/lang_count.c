/*  lang_count: languages and their line counts, cloc's (see lang_count.h).

    Built as a port of cloc's counter rather than a smarter scanner of our
    own: the numbers are compared with cloc's in release meetings, and a
    scanner that knows strings better than cloc differs from it on every
    file that has a comment marker in a string, a here-document or a
    multi-line string (shell test bodies were +4 % code). So each language
    is cloc's list of filters, applied as cloc applies them, and the filters
    themselves are generated from cloc's own tables (lang_table.inc, by
    tools/gen-lang-table.pl), not copied by hand.

    The filters work on an array of lines as cloc's do: each drops lines
    (a comment line), rewrites them (a comment removed from a line of code)
    or joins them into one text and splits it again (a block comment that
    starts after code and ends before code leaves one line of code); after
    each, the lines left blank go. What is left is code; what went is
    comment, apart from the blank lines counted first.                     */
#include "collectord/lang_count.h"
#include "common/buf.h"

#include <assert.h>
#include <ctype.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

//  The filters (cloc's routine each stands for)
typedef enum {
    F_PREFIX,       //  remove_matches ^\s*LITERAL (case-insensitive, as cloc's m{}i)
    F_MATCH,        //  remove_matches REGEX
    F_COMMON,       //  call_regexp_common C / C++ / HTML / Pascal / PL/SQL / Smalltalk
    F_BETWEEN,      //  remove_between_general START END
    F_BETWEEN_RE,   //  remove_between_regex START END
    F_HTML,         //  remove_html_comments
    F_DOCSTRING,    //  docstring_to_C
    F_POWERSHELL,   //  powershell_to_C
    F_ELIXIR,       //  elixir_doc_to_C
    F_BELOW_ABOVE,  //  remove_below_above
    F_BELOW,        //  remove_below
    F_ABOVE,        //  remove_above
    F_REPLACE,      //  replace_regex
    F_QUOTED_XX,    //  Java's replace_between_regex: a string ending in /* or */ -> xx
    F_QUOTED_SPLIT, //  Groovy's: "a/*b" -> "a/" + "*b"
    F_HASKELL,      //  remove_haskell_comments
    F_OCAML,        //  remove_OCaml_comments
    F_F77,          //  remove_f77_comments
    F_F90           //  remove_f90_comments
} s_op_t;

typedef enum { CONT_NONE, CONT_BACKSLASH, CONT_REGEX } s_cont_t;

typedef struct {
    s_op_t op;
    int re1, re2;      //  regular expressions (s_regex_src), -1 none
    const char *a, *b; //  literal arguments
    char variant;      //  F_COMMON: 'C' '+' (C++) 'H' 'P' 'L' (PL/SQL) 'S'
} lang_filter_t;

//  lang_table.inc's limit on filters per language, checked there
#define S_FILTERS 8

struct _lang_t {
    const char *name;
    s_cont_t cont; //  a line continued on the next keeps a blank line after it
    int cont_re;
    bool script; //  a #! first line is code
    int nfilters;
    lang_filter_t filter[S_FILTERS];
};

#include "collectord/lang_table.inc"

_Static_assert(S_MAX_FILTERS <= S_FILTERS, "a language of lang_table.inc has too many filters");

#define S_COUNT(a) (sizeof (a) / sizeof ((a)[0]))
#define S_NLANGS   S_COUNT (s_langs)
#define S_NREGEX   S_COUNT (s_regex_src)

//  ---------------------------------------------------------------------------
//  Regular expressions: cloc's, translated to POSIX by the generator,
//  compiled on first use (the collector counts on one thread)

static regex_t s_regex[S_NREGEX];
static bool s_regex_ready[S_NREGEX];

static const regex_t *
s_re (int index)
{
    assert (index >= 0 && (size_t) index < S_NREGEX);
    if (!s_regex_ready[index]) {
        int flags = REG_EXTENDED | (s_regex_icase[index] ? REG_ICASE : 0);
        int rc = regcomp (&s_regex[index], s_regex_src[index], flags);
        assert (rc == 0);
        (void) rc;
        s_regex_ready[index] = true;
    }
    return &s_regex[index];
}

//  The first match of `re` in s[from, n), and with a newline after the
//  line when `newline`: its offsets from s. regexec wants a C string (and
//  sanitizers read it to its NUL), so the line is copied into one.
static bool
s_search (const regex_t *re, const char *s, size_t n, bool newline, size_t from, size_t *so,
          size_t *eo)
{
    static omni_buf_t text;
    if (from > n)
        return false;
    omni_buf_reset (&text);
    omni_buf_append (&text, s, n);
    if (newline)
        omni_buf_append_char (&text, '\n');
    regmatch_t m[1];
    //  ^ only at the line's start
    if (regexec (re, text.data + from, 1, m, from ? REG_NOTBOL : 0) != 0)
        return false;
    if (so)
        *so = from + (size_t) m[0].rm_so;
    if (eo)
        *eo = from + (size_t) m[0].rm_eo;
    return true;
}

//  Whether a pattern can match the newline itself (a negated bracket or
//  \s): cloc's lines carry theirs, so "x {" matches Pascal's \{[^$] and a
//  lone "#" gettext's ^\s*#[^,]
static bool
s_newline_matters (const char *pattern)
{
    return strstr (pattern, "[^") || strstr (pattern, "[[:space:]]");
}

//  s_search on a line as cloc sees it: with its newline when `nl` (the
//  match clipped to the line)
static bool
s_search_line (const regex_t *re, const char *pattern, const char *s, size_t n, bool nl,
               size_t from, size_t *so, size_t *eo)
{
    size_t a = 0, b = 0;
    bool hit = s_search (re, s, n, false, from, &a, &b) ||
               (nl && s_newline_matters (pattern) && s_search (re, s, n, true, from, &a, &b));
    if (hit && so)
        *so = a < n ? a : n;
    if (hit && eo)
        *eo = b < n ? b : n;
    return hit;
}

static bool
s_match (int index, const char *s, size_t n, bool nl)
{
    return s_search_line (s_re (index), s_regex_src[index], s, n, nl, 0, NULL, NULL);
}

//  ---------------------------------------------------------------------------
//  Lookup

static int
s_cmp_name (const void *key, const void *item)
{
    return strcmp ((const char *) key, ((const lang_t *) item)->name);
}

const lang_t *
lang_lookup (const char *name)
{
    return bsearch (name, s_langs, S_NLANGS, sizeof s_langs[0], s_cmp_name);
}

const char *
lang_name (const lang_t *lang)
{
    return lang->name;
}

bool
lang_binary (const char *data, size_t len)
{
    return memchr (data, 0, len < 8000 ? len : 8000) != NULL;
}

//  A name against the first string of a table's row
static int
s_cmp_str (const void *key, const void *item)
{
    return strcmp ((const char *) key, *(const char *const *) item);
}

#define S_FIND(table, key)                                                                         \
    ((const char *const *) bsearch ((key), (table), S_COUNT (table), sizeof (table)[0], s_cmp_str))

//  ---------------------------------------------------------------------------
//  Content: line by line helpers for the deciders

typedef struct {
    const char *p, *end;
    const char *s; //  the current line, without its newline
    size_t n;
    size_t number;    //  1-based
    const char *text; //  the line and its newline, NUL-terminated
} s_iter_t;

static bool
s_next (s_iter_t *it)
{
    if (!it->p || it->p >= it->end)
        return false;
    static omni_buf_t text;
    const char *nl = memchr (it->p, '\n', (size_t) (it->end - it->p));
    it->s = it->p;
    it->n = (size_t) ((nl ? nl : it->end) - it->p);
    it->p = nl ? nl + 1 : it->end;
    it->number++;
    //  The line as a C string with its newline, as cloc's rules see it,
    //  for the deciders' regular expressions
    omni_buf_reset (&text);
    omni_buf_append (&text, it->s, it->n + (nl ? 1 : 0));
    it->text = text.data;
    return true;
}

static bool
s_space (char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool
s_blank (const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!s_space (s[i]))
            return false;
    return true;
}

//  Regular expressions of the deciders (cloc's, in POSIX)
static const char *const s_decide_src[] = {
#define D_PROJECT 0
    "^[[:space:]]*<project[[:space:]]+",
#define D_TS_LINGUIST 1
    "</?(message|source|translation)>",
#define D_TS_KEYWORD 2
    "^[[:space:]]*(var|const|let|class|document)\\b",
#define D_TS_END 3
    "[;}][[:space:]]*$",
#define D_TS_COMMENT 4
    "^[[:space:]]*//",
#define D_PERL_POD 5
    "^=(head|over|item|cut)",
#define D_PERL_SEMI 6
    ";[[:space:]]*$",
#define D_PERL_BRACE 7
    "[{}]",
#define D_PERL_SUB 8
    "^[[:space:]]*sub[[:space:]]+",
#define D_PERL_HERE 9
    "<<'",
#define D_PERL_VAR 10
    "[$]([[:alnum:]_]+->|[_!])",
#define D_PROLOG_HASH 11
    "[[:space:]]*#",
#define D_PROLOG_DOT 12
    "[.][[:space:]]*$",
#define D_CS_END 13
    "[;}{][[:space:]]*$",
#define D_CS_USING 14
    "^(using|namespace)[[:space:]]",
#define D_CS_PUBLIC 15
    "^[[:space:]]*(public|private|new)[[:space:]]",
#define D_CS_ASSEMBLY 16
    "^[[:space:]]*\\[assembly:",
#define D_ST_END 17
    "(!|\\][.])[[:space:]]*$",
#define D_FORTH 18
    "^:[[:space:]]",
#define D_FSHARP 19
    "^[[:space:]]*(#light|import|let|module|namespace|open|type)",
#define D_VERILOG 20
    "^[[:space:]]*(module|begin|input|output|always)",
#define D_COQ 21
    "\\b(Inductive|Fixpoint|Definition|Theorem|Lemma|Proof|Qed|forall|Section|Check|Notation|"
    "Variable|Goal|Fail|Require|Scheme|Module|Ltac|Set|Unset|Parameter|Coercion|Axiom|Locate|Type|"
    "Record|Existing|Class)\\b",
#define D_LISP_SEMI 22
    "^[[:space:]]*;",
#define D_LISP_FORM 23
    "[(](def|eval|require|export|let|loop|dec|format)",
#define D_JULIA 24
    "^[[:space:]]*(function|end|println|for|while)",
#define D_M_COMMENT 25
    "^[[:space:]]*(/[*]|//)",
#define D_M_MERCURY 26
    "^:-[[:space:]]+",
#define D_M_MATRIX 27
    "[[:alnum:]_]+[[:space:]]*=[[:space:]]*\\[",
#define D_M_CALL 28
    "[[:alnum:]_]+\\[",
#define D_M_ASSIGN 29
    "^[[:space:]]*[[:alnum:]_]+[[:space:]]*=[[:space:]]*",
#define D_M_WORDS 30
    "^[[:space:]]*[.]?([[:alpha:]_])[[:space:]]+([[:alpha:]_])",
#define D_M_INCLUDE 31
    "^[[:space:]]*#(include|import)",
#define D_M_OBJC 32
    "^[[:space:]]*@(interface|implementation|protocol|public|protected|private|end)[[:space:]]",
#define D_M_PACKAGE 33
    "^[[:space:]]*BeginPackage",
#define D_M_BRACKET 34
    "^[[:space:]]*\\[",
#define D_M_KILL 35
    "^[[:space:]]K(ill)?[[:space:]]+",
#define D_M_FUNCTION 36
    "^[[:space:]]*function",
#define D_M_PERCENT 37
    "^[[:space:]]*%",
#define D_M_SEMI 38
    "^[[:space:]]*;",
#define D_PAS_HASH 39
    "^[[:space:]]*#[[:space:]]+",
#define D_PAS_WORDS 40
    "\\b(program|unit|module)[[:space:]]+[[:alpha:]]",
#define D_PAS_PROC 41
    "\\bprocedure\\b",
#define D_PAS_FUNC 42
    "\\bfunction\\b",
#define D_PAS_IFACE 43
    "^[[:space:]]*(interface|implementation|uses)[[:space:]]+",
#define D_PAS_BEGIN 44
    "\\bbegin\\b",
#define D_PAS_END 45
    "\\bend\\b",
#define D_PUP_CLASS 46
    "^[[:space:]]*class[[:space:]]+",
#define D_PUP_RES 47
    "^[[:space:]]*(case|package|file|service)[[:space:]]+",
#define D_PUP_INCLUDE 48
    "^[[:space:]]*include[[:space:]][[:alnum:]_]+",
#define D_PUP_ASSIGN 49
    "[[:space:]][$][[:alnum:]_]+[[:space:]]*=[[:space:]]*[^[:space:]]",
#define D_PUP_ARROW 50
    "[^[:space:]][[:space:]]*=>[[:space:]]*[^[:space:]]",
#define D_PHP_SCRIPT 51
    "<script.*language=\"?php\"?",
#define D_MAVEN_NS 52
    "xmlns=\"http://maven.apache.org/POM/",
#define D_ANT_NS 53
    "xmlns:artifact=\"antlib:org.apache.maven.artifact.ant\"",
#define D_XML_FIRST 54
    "<[?]xml[[:space:]]",
#define D_PAS_CONST 55
    "\\bconstant[[:space:]]+",
#define D_PAS_ENDDOT 56
    "end[.][[:space:]]*$",
#define D_PAS_UNIT 57
    "^[[:space:]]*(interface|implementation)[[:space:]]+",
#define D_FORTRAN 58
    "^([c*][^a-z]|[[:space:]]{6,}(subroutine|program|end|implicit)[[:space:]]|[[:space:]]*!)",
#define D_IDL_PLOT 59
    "plot[(]",
#define D_QT_KEY 60
    "^[[:space:]]*(qt|configs|sources|template|target|targetpath|subdirs)\\b",
#define D_QT_MODULE 61
    "qthavemodule",
#define D_PG_HASH 62
    "^[[:space:]]*#",
#define D_PG_OPTION 63
    "^-(keep|(dont)?obfuscate)",
#define D_OPENCL 64
    "^[[:space:]]*(int|float|const|[{])",
};

static regex_t s_decide[S_COUNT (s_decide_src)];
static bool s_decide_ready[S_COUNT (s_decide_src)];

//  Which of the deciders' case-insensitive ones: cloc's m//i
static bool
s_decide_icase (int index)
{
    return (index >= D_PAS_WORDS && index <= D_PAS_END) ||
           (index >= D_PAS_CONST && index <= D_QT_MODULE) || index == D_PHP_SCRIPT;
}

static bool
s_d (int index, const s_iter_t *it)
{
    if (!s_decide_ready[index]) {
        int flags = REG_EXTENDED | REG_NOSUB | (s_decide_icase (index) ? REG_ICASE : 0);
        int rc = regcomp (&s_decide[index], s_decide_src[index], flags);
        assert (rc == 0);
        (void) rc;
        s_decide_ready[index] = true;
    }
    return regexec (&s_decide[index], it->text, 0, NULL, 0) == 0;
}

static bool
s_has (const s_iter_t *it, const char *needle)
{
    return memmem (it->s, it->n, needle, strlen (needle)) != NULL;
}

static const lang_t *s_shebang (const char *data, size_t len);

//  cloc's deciders for extensions several languages use, by points
static const char *
s_decide_lang (const char *which, const char *data, size_t len)
{
    s_iter_t it = {data, data + len, NULL, 0, 0, NULL};
    if (!data)
        return NULL;
    if (strcmp (which, "Ant/XML") == 0 || strcmp (which, "Maven/XML") == 0) {
        bool ant = which[0] == 'A';
        int points = 0, xml = 1;
        while (s_next (&it)) {
            int hits = s_d (D_PROJECT, &it) + s_d (ant ? D_ANT_NS : D_MAVEN_NS, &it);
            points += hits;
            xml -= hits;
        }
        return xml >= points ? "XML" : ant ? "Ant" : "Maven";
    }
    if (strcmp (which, "D/dtrace") == 0) {
        //  D, unless a #! line says what it is (an init.d script)
        if (len < 2 || data[0] != '#' || data[1] != '!')
            return "D";
        const lang_t *script = s_shebang (data, len);
        return script ? lang_name (script) : NULL;
    }
    if (strcmp (which, "TypeScript/Qt Linguist") == 0) {
        int ts = 0, linguist = 0;
        while (s_next (&it)) {
            linguist += s_d (D_TS_LINGUIST, &it);
            ts += s_d (D_TS_KEYWORD, &it) + s_d (D_TS_END, &it) + s_d (D_TS_COMMENT, &it);
        }
        return ts >= linguist ? "TypeScript" : "Qt Linguist";
    }
    if (strcmp (which, "Perl/Prolog") == 0) {
        int perl = 0, prolog = 0;
        while (s_next (&it)) {
            if (s_blank (it.s, it.n))
                continue;
            if (it.number == 1 && it.n > 2 && it.s[0] == '#' && it.s[1] == '!' &&
                s_has (&it, "perl")) {
                perl = 100;
                break;
            }
            perl += s_d (D_PERL_POD, &it) + s_d (D_PERL_SEMI, &it) + s_d (D_PERL_BRACE, &it) +
                    s_d (D_PERL_SUB, &it) + s_d (D_PERL_HERE, &it) + s_d (D_PERL_VAR, &it);
            prolog += (!s_d (D_PROLOG_HASH, &it) && s_d (D_PROLOG_DOT, &it)) + s_has (&it, ":-");
        }
        return perl > prolog ? "Perl" : "Prolog";
    }
    if (strcmp (which, "C#/Smalltalk") == 0) {
        int cs = 0, smalltalk = 0;
        while (s_next (&it)) {
            const char *c = memmem (it.s, it.n, "//", 2);
            if (c)
                it.n = (size_t) (c - it.s);
            if (s_blank (it.s, it.n))
                continue;
            if (s_d (D_CS_END, &it))
                cs++;
            else if (s_d (D_CS_USING, &it) || s_d (D_CS_PUBLIC, &it))
                cs += 20;
            else if (s_d (D_CS_ASSEMBLY, &it))
                cs++;
            if (s_d (D_ST_END, &it))
                smalltalk++, cs--;
        }
        return smalltalk > cs ? "Smalltalk" : "C#";
    }
    if (strcmp (which, "F#/Forth") == 0) {
        int forth = 0, fsharp = 0;
        while (s_next (&it))
            forth += s_d (D_FORTH, &it), fsharp += s_d (D_FSHARP, &it);
        return forth > fsharp ? NULL : "F#"; //  Forth: not counted (see lang_table.inc)
    }
    if (strcmp (which, "Verilog-SystemVerilog/Coq") == 0) {
        int coq = 0, verilog = 0;
        while (s_next (&it))
            verilog += s_d (D_VERILOG, &it), coq += s_d (D_COQ, &it);
        return coq > verilog ? "Coq" : "Verilog-SystemVerilog";
    }
    if (strcmp (which, "Fortran 77/Forth") == 0) {
        int forth = 0, fortran = 0;
        while (s_next (&it))
            forth += s_d (D_FORTH, &it), fortran += s_d (D_FORTRAN, &it);
        return forth > fortran ? NULL : "Fortran 77"; //  Forth: not counted
    }
    if (strcmp (which, "IDL/Qt Project/Prolog/ProGuard") == 0) {
        //  The most points; a tie to the first name (cloc's order)
        const char *names[] = {"IDL", "ProGuard", "Prolog", "Qt Project"};
        int points[4] = {0, 0, 0, 0};
        while (s_next (&it)) {
            points[0] += s_d (D_LISP_SEMI, &it) + s_d (D_IDL_PLOT, &it);
            points[1] += s_d (D_PG_HASH, &it) + s_d (D_PG_OPTION, &it);
            points[2] += s_d (D_PROLOG_DOT, &it) + s_has (&it, ":-");
            points[3] += s_d (D_QT_KEY, &it) + s_d (D_QT_MODULE, &it);
        }
        size_t best = 0;
        for (size_t i = 1; i < 4; i++)
            if (points[i] > points[best])
                best = i;
        return names[best];
    }
    if (strcmp (which, "Lisp/OpenCL") == 0) {
        int lisp = 0, opencl = 0;
        while (s_next (&it))
            lisp += s_d (D_LISP_SEMI, &it) + s_d (D_LISP_FORM, &it), opencl += s_d (D_OPENCL, &it);
        return lisp > opencl ? "Lisp" : "OpenCL";
    }
    if (strcmp (which, "Lisp/Julia") == 0) {
        int lisp = 0, julia = 0;
        while (s_next (&it))
            lisp += s_d (D_LISP_SEMI, &it) + s_d (D_LISP_FORM, &it), julia += s_d (D_JULIA, &it);
        return lisp > julia ? "Lisp" : "Julia";
    }
    if (strcmp (which, "PHP/Pascal") == 0) {
        //  PHP when it has <? ... ?>, <script language=php> ... </script>
        //  or <% ... %>; else Pascal when it reads like Pascal
        int normal = 0, script = 0, asp = 0, pascal = 0;
        while (s_next (&it)) {
            normal |= s_has (&it, "<?") ? 1 : 0;
            normal |= s_has (&it, "?>") && (normal & 1) ? 2 : 0;
            script |= s_d (D_PHP_SCRIPT, &it) ? 1 : 0;
            script |=
                (s_has (&it, "</script>") || s_has (&it, "</SCRIPT>")) && (script & 1) ? 2 : 0;
            asp |= s_has (&it, "<%") ? 1 : 0;
            asp |= s_has (&it, "%>") && (asp & 1) ? 2 : 0;
            pascal |= s_d (D_PAS_WORDS, &it) || s_d (D_PAS_PROC, &it) || s_d (D_PAS_FUNC, &it) ||
                      s_d (D_PAS_UNIT, &it) || s_d (D_PAS_CONST, &it) || s_d (D_PAS_ENDDOT, &it);
        }
        return normal == 3 || script == 3 || asp == 3 ? "PHP" : pascal ? "Pascal" : NULL;
    }
    if (strcmp (which, "Pascal/Puppet") == 0) {
        double pascal = 0, puppet = 0;
        while (s_next (&it)) {
            if (s_d (D_PAS_HASH, &it)) {
                puppet += .001;
                continue;
            }
            pascal += s_d (D_PAS_WORDS, &it) + s_d (D_PAS_PROC, &it) + s_d (D_PAS_FUNC, &it) +
                      s_d (D_PAS_IFACE, &it) + s_d (D_PAS_BEGIN, &it) + s_d (D_PAS_END, &it) +
                      s_has (&it, ":=") + s_has (&it, "<>") + s_has (&it, "writeln");
            puppet += (s_d (D_PUP_CLASS, &it) && !s_has (&it, "operator")) + s_d (D_PUP_RES, &it) +
                      s_d (D_PUP_INCLUDE, &it) + s_d (D_PUP_ASSIGN, &it) + s_d (D_PUP_ARROW, &it);
            if (pascal - puppet > 20 || puppet - pascal > 20)
                break;
        }
        return pascal > puppet ? "Pascal" : "Puppet";
    }
    if (strcmp (which, "MATLAB/Mathematica/Objective-C/MUMPS/Mercury") == 0) {
        int matlab = 0, mathematica = 0, objc = 0, mumps = 0, mercury = 0;
        while (s_next (&it)) {
            if (it.number == 1 && it.n && isupper ((unsigned char) it.s[0]))
                mumps++;
            if (s_d (D_M_COMMENT, &it)) {
                objc += 5;
                matlab -= 5;
            } else if (s_d (D_M_MERCURY, &it)) {
                mercury = 1000;
                break;
            } else if (s_d (D_M_MATRIX, &it))
                matlab += 5;
            if (s_d (D_M_CALL, &it))
                mathematica += 2;
            else if (s_d (D_M_ASSIGN, &it))
                mumps--;
            else if (s_d (D_M_WORDS, &it) || s_d (D_M_SEMI, &it))
                mumps++;
            if (s_d (D_M_INCLUDE, &it) || s_d (D_M_OBJC, &it)) {
                objc = 1000;
                matlab = 0;
                break;
            } else if (s_d (D_M_PACKAGE, &it))
                mathematica += 2;
            else if (s_d (D_M_BRACKET, &it))
                matlab += 5;
            else if (s_d (D_M_KILL, &it))
                mumps += 5;
            else if (s_d (D_M_FUNCTION, &it) || s_d (D_M_PERCENT, &it)) {
                objc--;
                matlab++;
            }
        }
        //  The most points; a tie to the first name in cloc's order (by name)
        const char *names[] = {"MATLAB", "MUMPS", "Mathematica", "Mercury", "Objective-C"};
        int points[] = {matlab, mumps, mathematica, mercury, objc};
        size_t best = 0;
        for (size_t i = 1; i < 5; i++)
            if (points[i] > points[best])
                best = i;
        return names[best];
    }
    return NULL;
}

//  ---------------------------------------------------------------------------
//  Detection: cloc's classify_file

//  The #! interpreter: "#!/usr/bin/env python3" -> python3
static const lang_t *
s_shebang (const char *data, size_t len)
{
    s_iter_t it = {data, data + len, NULL, 0, 0, NULL};
    if (!s_next (&it) || it.n < 3 || it.s[0] != '#' || it.s[1] != '!')
        return NULL;
    char line[256];
    size_t n = it.n - 2 < sizeof line - 1 ? it.n - 2 : sizeof line - 1;
    memcpy (line, it.s + 2, n);
    line[n] = 0;
    char *save = NULL, *word = strtok_r (line, " \t\r\f\v", &save);
    if (!word)
        return NULL;
    const char *base = strrchr (word, '/');
    base = base ? base + 1 : word;
    if (strcmp (base, "env") == 0) {
        char *next = strtok_r (NULL, " \t\r\f\v", &save);
        if (next)
            base = next;
    }
    const char *const *hit = S_FIND (s_interpreters, base);
    return hit ? lang_lookup (hit[1]) : NULL;
}

//  A language name of the tables, deciders' names decided by content
static const lang_t *
s_resolve (const char *name, const char *data, size_t len)
{
    if (strchr (name, '/') && !lang_lookup (name)) {
        name = s_decide_lang (name, data, len);
        if (!name)
            return NULL;
    }
    return lang_lookup (name);
}

const lang_t *
lang_detect (const char *path, const char *data, size_t len)
{
    if (data && lang_binary (data, len))
        return NULL;
    const char *base = strrchr (path, '/');
    base = base ? base + 1 : path;
    size_t blen = strlen (base);
    if (blen == 0 || bsearch (base, s_not_code_file, S_COUNT (s_not_code_file),
                              sizeof s_not_code_file[0], s_cmp_str))
        return NULL;
    if (base[blen - 1] == '~')
        return NULL;
    const char *const *hit = S_FIND (s_filenames, base);
    if (hit)
        return s_resolve (hit[1], data, len);
    bool look = false;
    //  The last three dots: the triple, double then single extension
    //  (a.b.c.d: b.c.d, c.d, d), each with no empty part
    const char *dot[3] = {NULL, NULL, NULL};
    int ndots = 0;
    for (const char *p = base + blen; p > base && ndots < 3;)
        if (*--p == '.')
            dot[ndots++] = p;
    if (ndots && dot[0][1]) {
        for (int i = 2; i >= 0; i--) {
            bool whole = dot[i] != NULL && dot[0][1];
            for (int k = i; k > 0 && whole; k--)
                whole = dot[k] + 1 < dot[k - 1];
            if (!whole)
                continue;
            const char *ext = dot[i] + 1;
            if (bsearch (ext, s_not_code_ext, S_COUNT (s_not_code_ext), sizeof s_not_code_ext[0],
                         s_cmp_str))
                return NULL;
            hit = S_FIND (s_extensions, ext);
            if (hit)
                return s_resolve (hit[1], data, len);
            look = true;
        }
        //  The name before its first dot (Dockerfile.dev)
        const char *first = strchr (base, '.');
        char stem[128];
        if (first > base && (size_t) (first - base) < sizeof stem) {
            memcpy (stem, base, (size_t) (first - base));
            stem[first - base] = 0;
            hit = S_FIND (s_prefixes, stem);
            if (hit)
                return s_resolve (hit[1], data, len);
        }
    } else {
        char lower[256];
        size_t k = 0;
        for (; base[k] && k + 1 < sizeof lower; k++)
            lower[k] = (char) tolower ((unsigned char) base[k]);
        lower[k] = 0;
        hit = S_FIND (s_filenames, lower);
        if (hit)
            return s_resolve (hit[1], data, len);
        look = true;
    }
    if (!look || !data)
        return NULL;
    const lang_t *lang = s_shebang (data, len);
    if (lang)
        return lang;
    s_iter_t it = {data, data + len, NULL, 0, 0, NULL};
    if (s_next (&it) && s_d (D_XML_FIRST, &it))
        return lang_lookup ("XML");
    return NULL;
}

//  ---------------------------------------------------------------------------
//  Counting: the lines, and cloc's filters over them

typedef struct {
    const char *s; //  without its newline
    size_t n;
} s_line_t;

typedef struct {
    s_line_t *v;
    size_t n, cap;
    //  cloc's lines carry their newline until a filter joins and splits
    //  them; how the next join treats them depends on it
    bool nl;
    char **owned; //  text written by the filters
    size_t nowned, owned_cap;
} s_lines_t;

static void
s_push (s_lines_t *l, const char *s, size_t n)
{
    *omni_array_push (l->v, l->n, l->cap) = (s_line_t){s, n};
}

//  A copy of n bytes owned by `l` until the count ends
static char *
s_own (s_lines_t *l, const char *s, size_t n)
{
    char *copy = malloc (n + 1);
    assert (copy);
    if (n)
        memcpy (copy, s, n);
    copy[n] = 0;
    *omni_array_push (l->owned, l->nowned, l->owned_cap) = copy;
    return copy;
}

//  A line a filter rewrote into `b` up to `at`: the rest of it appended,
//  the whole owned by `out`, in place of *s, *n
static void
s_rewritten (s_lines_t *out, omni_buf_t *b, const char **s, size_t *n, size_t at)
{
    if (at < *n)
        omni_buf_append (b, *s + at, *n - at);
    *s = s_own (out, b->data ? b->data : "", b->size);
    *n = b->size;
}

static bool
s_cont (const lang_t *lang, const s_line_t *line, bool nl)
{
    if (lang->cont == CONT_BACKSLASH)
        return line->n && line->s[line->n - 1] == '\\';
    if (lang->cont == CONT_REGEX)
        return s_match (lang->cont_re, line->s, line->n, nl);
    return false;
}

//  Drops blank lines, but not one after a continued line (cloc's
//  remove_matches_2re), in place
static void
s_drop_blank (const lang_t *lang, s_lines_t *l)
{
    size_t k = 0;
    s_line_t prev = {NULL, 0};
    for (size_t i = 0; i < l->n; i++) {
        s_line_t line = l->v[i];
        if (!(s_blank (line.s, line.n) && !(i && s_cont (lang, &prev, l->nl))))
            l->v[k++] = line;
        prev = line;
    }
    l->n = k;
}

static const char *
s_find (const char *s, size_t n, size_t from, const char *needle)
{
    size_t k = strlen (needle);
    if (from > n || n - from < k)
        return NULL;
    return memmem (s + from, n - from, needle, k);
}

static bool
s_prefix_icase (const s_line_t *line, const char *lit)
{
    size_t i = 0, k = strlen (lit);
    while (i < line->n && s_space (line->s[i]))
        i++;
    return line->n - i >= k && strncasecmp (line->s + i, lit, k) == 0;
}

//  call_regexp_common: the lines joined as cloc joins them, the comments
//  of the variant removed (a block comment takes the newlines inside it),
//  split again
static void
s_common (s_lines_t *in, s_lines_t *out, char variant)
{
    omni_buf_t all = {0};
    for (size_t i = 0; i < in->n; i++) {
        const s_line_t *line = &in->v[i];
        omni_buf_append (&all, line->s, line->n);
        if (in->nl)
            omni_buf_append (&all, "\n", 1);
        //  C++ joins with an extra newline unless the line is continued
        if (variant == '+' && !(line->n && line->s[line->n - 1] == '\\'))
            omni_buf_append (&all, "\n", 1);
    }
    omni_buf_t kept = {0};
    const char *s = all.data ? all.data : "";
    size_t n = all.size, i = 0;
    const char *opens = variant == 'L'   ? "/-"
                        : variant == 'P' ? "{("
                        : variant == 'S' ? "\""
                        : variant == 'H' ? "<"
                                         : "/";
    while (i < n) {
        const char *end = NULL; //  the end of a comment starting at i
        if ((variant == 'C' || variant == '+' || variant == 'L') && s[i] == '/' && i + 1 < n &&
            s[i + 1] == '*') {
            end = s_find (s, n, i + 2, "*/");
            if (end)
                end += 2;
        } else if ((variant == '+' && s[i] == '/' && i + 1 < n && s[i + 1] == '/') ||
                   (variant == 'L' && s[i] == '-' && i + 1 < n && s[i + 1] == '-')) {
            end = memchr (s + i + 2, '\n', n - i - 2);
            if (end)
                end++;
        } else if (variant == 'P' &&
                   (s[i] == '{' || (s[i] == '(' && i + 1 < n && s[i + 1] == '*'))) {
            for (size_t j = i + (s[i] == '{' ? 1 : 2); j < n && !end; j++)
                if (s[j] == '}')
                    end = s + j + 1;
                else if (s[j] == '*' && j + 1 < n && s[j + 1] == ')')
                    end = s + j + 2;
        } else if (variant == 'S' && s[i] == '"') {
            end = memchr (s + i + 1, '"', n - i - 1);
            if (end)
                end++;
        } else if (variant == 'H' && s[i] == '<' && i + 1 < n && s[i + 1] == '!') {
            //  <! (-- ... -- \s*)* >
            size_t j = i + 2;
            for (;;) {
                if (j + 1 < n && s[j] == '-' && s[j + 1] == '-') {
                    const char *close = s_find (s, n, j + 2, "--");
                    if (!close)
                        break;
                    j = (size_t) (close - s) + 2;
                    while (j < n && s_space (s[j]))
                        j++;
                } else {
                    if (j < n && s[j] == '>')
                        end = s + j + 1;
                    break;
                }
            }
        }
        if (end) {
            i = (size_t) (end - s);
            continue;
        }
        //  Up to the next character that may open a comment, in one copy
        size_t j = i + 1;
        while (j < n && !strchr (opens, s[j]))
            j++;
        omni_buf_append (&kept, s + i, j - i);
        i = j;
    }
    char *text = s_own (out, kept.data ? kept.data : "", kept.size);
    size_t start = 0;
    for (size_t k = 0; k <= kept.size; k++)
        if (k == kept.size || text[k] == '\n') {
            if (k > start || k < kept.size)
                s_push (out, text + start, k - start);
            start = k + 1;
        }
    omni_buf_release (&all);
    omni_buf_release (&kept);
    out->nl = false;
}

//  remove_between_general / remove_between_regex: literal or regular
//  START and END
typedef struct {
    const char *lit[2];
    int re[2];
} s_marks_t;

static bool
s_mark (const s_marks_t *m, int which, const char *s, size_t n, bool nl, size_t from, size_t *so,
        size_t *eo)
{
    if (m->lit[which]) {
        const char *at = s_find (s, n, from, m->lit[which]);
        if (!at)
            return false;
        *so = (size_t) (at - s);
        *eo = *so + strlen (m->lit[which]);
        return true;
    }
    int re = m->re[which];
    return s_search_line (s_re (re), s_regex_src[re], s, n, nl, from, so, eo);
}

//  s/START.*?END//g: the comments that open and close on the line
static void
s_strip_pairs (s_lines_t *out, omni_buf_t *b, const s_marks_t *m, bool nl, const char **s,
               size_t *n)
{
    omni_buf_reset (b);
    size_t at = 0, so, eo, so2, eo2;
    bool changed = false;
    while (s_mark (m, 0, *s, *n, nl, at, &so, &eo)) {
        if (s_mark (m, 1, *s, *n, nl, eo, &so2, &eo2)) {
            omni_buf_append (b, *s + at, so - at);
            at = eo2;
            changed = true;
        } else {
            omni_buf_append (b, *s + at, so + 1 - at);
            at = so + 1;
        }
    }
    if (changed)
        s_rewritten (out, b, s, n, at);
}

static void
s_between (s_lines_t *in, s_lines_t *out, const s_marks_t *m)
{
    bool in_comment = false;
    omni_buf_t b = {0};
    for (size_t i = 0; i < in->n; i++) {
        const char *s = in->v[i].s;
        size_t n = in->v[i].n;
        if (s_blank (s, n))
            continue;
        s_strip_pairs (out, &b, m, in->nl, &s, &n);
        if (s_blank (s, n))
            continue;
        size_t so, eo;
        if (in_comment) {
            if (s_mark (m, 1, s, n, in->nl, 0, &so, &eo)) {
                s += eo;
                n -= eo;
                in_comment = false;
            } else
                continue;
        }
        if (s_blank (s, n))
            continue;
        if (s_mark (m, 0, s, n, in->nl, 0, &so, &eo)) {
            in_comment = true;
            if (s_blank (s, so))
                continue;
            n = so; //  part code, part comment: the code stays
        }
        s_push (out, s, n);
    }
    omni_buf_release (&b);
}

static void
s_html (s_lines_t *in, s_lines_t *out)
{
    static const s_marks_t marks = {{"<!--", "-->"}, {-1, -1}};
    bool in_comment = false;
    omni_buf_t b = {0};
    for (size_t i = 0; i < in->n; i++) {
        const char *s = in->v[i].s;
        size_t n = in->v[i].n;
        if (s_blank (s, n))
            continue;
        s_strip_pairs (out, &b, &marks, in->nl, &s, &n);
        if (s_blank (s, n))
            continue;
        if (in_comment) {
            const char *close = s_find (s, n, 0, "-->");
            if (close) {
                n -= (size_t) (close - s) + 3;
                s = close + 3;
                in_comment = false;
            }
        }
        if (s_blank (s, n))
            continue;
        const char *open = s_find (s, n, 0, "<!--");
        if (open) {
            in_comment = true;
            if (s_blank (s, (size_t) (open - s)))
                continue;
        }
        if (in_comment)
            continue;
        s_push (out, s, n);
    }
    omni_buf_release (&b);
}

//  docstring_to_C, powershell_to_C, elixir_doc_to_C: another language's
//  block comment markers turned into C's, for the C filter after them
static void
s_docstring (s_lines_t *l, s_op_t op)
{
    bool in_doc = false;
    omni_buf_t b = {0};
    for (size_t i = 0; i < l->n; i++) {
        const char *s = l->v[i].s;
        size_t n = l->v[i].n;
        omni_buf_reset (&b);
        bool changed = false;
        if (op == F_POWERSHELL) {
            //  s{<#}{/*}g then s{#>}{*/}g
            omni_buf_t first = {0};
            for (size_t k = 0; k < n; k++)
                if (s[k] == '<' && k + 1 < n && s[k + 1] == '#')
                    omni_buf_append (&first, "/*", 2), k++, changed = true;
                else
                    omni_buf_append (&first, s + k, 1);
            for (size_t k = 0; k < first.size; k++)
                if (first.data[k] == '#' && k + 1 < first.size && first.data[k + 1] == '>')
                    omni_buf_append (&b, "*/", 2), k++, changed = true;
                else
                    omni_buf_append (&b, first.data + k, 1);
            omni_buf_release (&first);
        } else if (op == F_DOCSTRING) {
            //  Each """ or ''' in turn opens (with a u prefix) or closes
            for (size_t k = 0; k < n; k++) {
                bool triple = k + 2 < n && (s[k] == '"' || s[k] == '\'') && s[k + 1] == s[k] &&
                              s[k + 2] == s[k];
                bool prefixed = !in_doc && (s[k] == 'u' || s[k] == 'U') && k + 3 < n &&
                                (s[k + 1] == '"' || s[k + 1] == '\'') && s[k + 2] == s[k + 1] &&
                                s[k + 3] == s[k + 1];
                if (prefixed || triple) {
                    omni_buf_append (&b, in_doc ? "*/" : "/*", 2);
                    k += prefixed ? 3 : 2;
                    in_doc = !in_doc;
                    changed = true;
                } else
                    omni_buf_append (&b, s + k, 1);
            }
        } else {
            //  @doc / @moduledoc, spaces, an optional sigil, three quotes
            size_t at = n, end = n;
            if (!in_doc)
                for (size_t k = 0; k < n && at == n; k++) {
                    size_t j = k;
                    if (s[j] != '@')
                        continue;
                    j++;
                    if (n - j >= 9 && memcmp (s + j, "moduledoc", 9) == 0)
                        j += 9;
                    else if (n - j >= 3 && memcmp (s + j, "doc", 3) == 0)
                        j += 3;
                    else
                        continue;
                    size_t sp = j;
                    while (j < n && s_space (s[j]))
                        j++;
                    if (j == sp)
                        continue;
                    if (j + 1 < n && s[j] == '~' && strchr ("sScC", s[j + 1]))
                        j += 2;
                    if (j + 3 <= n && strchr ("'\"", s[j]) && strchr ("'\"", s[j + 1]) &&
                        strchr ("'\"", s[j + 2]) && s[j] && s[j + 1] && s[j + 2]) {
                        at = k;
                        end = j + 3;
                    }
                }
            else
                for (size_t k = 0; k + 3 <= n && at == n; k++)
                    if (strchr ("'\"", s[k]) && strchr ("'\"", s[k + 1]) &&
                        strchr ("'\"", s[k + 2]) && s[k] && s[k + 1] && s[k + 2])
                        at = k, end = k + 3;
            if (at < n) {
                omni_buf_append (&b, s, at);
                omni_buf_append (&b, in_doc ? "*/" : "/*", 2);
                omni_buf_append (&b, s + end, n - end);
                in_doc = !in_doc;
                changed = true;
            }
        }
        if (changed) {
            l->v[i].s = s_own (l, b.data, b.size);
            l->v[i].n = b.size;
        }
    }
    omni_buf_release (&b);
}

//  A filter that rewrites each line on its own: `rewrite` puts the line's
//  new text up to the offset it returns into `b` (SIZE_MAX: unchanged);
//  lines blank before or after go
typedef size_t (*s_rewrite_fn) (const char *s, size_t n, bool nl, omni_buf_t *b,
                                const lang_filter_t *f);

static void
s_per_line (s_lines_t *in, s_lines_t *out, const lang_filter_t *f, s_rewrite_fn rewrite)
{
    omni_buf_t b = {0};
    for (size_t i = 0; i < in->n; i++) {
        const char *s = in->v[i].s;
        size_t n = in->v[i].n;
        if (s_blank (s, n))
            continue;
        omni_buf_reset (&b);
        size_t at = rewrite (s, n, in->nl, &b, f);
        if (at != SIZE_MAX)
            s_rewritten (out, &b, &s, &n, at);
        if (!s_blank (s, n))
            s_push (out, s, n);
    }
    omni_buf_release (&b);
}

//  Java's and Groovy's replace_between_regex: a quoted string holding a
//  comment marker is rewritten so that the C++ filter after leaves it
static size_t
s_quoted (const char *s, size_t n, bool nl, omni_buf_t *b, const lang_filter_t *f)
{
    (void) nl;
    size_t at = 0;
    bool changed = false;
    for (size_t k = 0; k < n; k++) {
        if (s[k] != '"' && s[k] != '\'')
            continue;
        char q = s[k];
        if (f->op == F_QUOTED_XX) {
            //  (["'])(.*?MARK)\1 -> xx
            char want[4] = {f->a[0], f->a[1], q, 0};
            const char *hit = s_find (s, n, k + 1, want);
            if (!hit)
                continue;
            omni_buf_append (b, s + at, k - at);
            omni_buf_append (b, "xx", 2);
            at = (size_t) (hit - s) + 3;
        } else {
            //  (["'])(.*?/)(\*.*?)\1 -> q$2q + q$3q
            const char *mark = s_find (s, n, k + 1, "/*");
            if (!mark)
                continue;
            const char *close = memchr (mark + 2, q, n - (size_t) (mark + 2 - s));
            if (!close)
                continue;
            omni_buf_append (b, s + at, k - at);
            omni_buf_append (b, &q, 1);
            omni_buf_append (b, s + k + 1, (size_t) (mark - s) - k);
            omni_buf_append (b, &q, 1);
            omni_buf_append (b, " + ", 3);
            omni_buf_append (b, &q, 1);
            omni_buf_append (b, mark + 1, (size_t) (close - mark) - 1);
            omni_buf_append (b, &q, 1);
            at = (size_t) (close - s) + 1;
        }
        k = at - 1;
        changed = true;
    }
    return changed ? at : SIZE_MAX;
}

//  replace_regex: s/RE/WITH/g
static size_t
s_replace (const char *s, size_t n, bool nl, omni_buf_t *b, const lang_filter_t *f)
{
    const regex_t *re = s_re (f->re1);
    size_t at = 0, so, eo;
    bool changed = false;
    while (at <= n && s_search_line (re, s_regex_src[f->re1], s, n, nl, at, &so, &eo)) {
        omni_buf_append (b, s + at, so - at);
        omni_buf_append (b, f->a, strlen (f->a));
        changed = true;
        if (eo == so) {
            if (so < n)
                omni_buf_append (b, s + so, 1);
            at = so + 1;
        } else
            at = eo;
    }
    return changed ? at : SIZE_MAX;
}

//  remove_haskell_comments (SLOCCount's): {- -} and --; {-# pragmas #-}
//  are code; Elm's block comments nest
static void
s_haskell (const lang_t *lang, s_lines_t *in, s_lines_t *out)
{
    bool elm = strcmp (lang->name, "Elm") == 0;
    int depth = 0;
    omni_buf_t b = {0};
    for (size_t i = 0; i < in->n; i++) {
        const char *s = in->v[i].s;
        size_t n = in->v[i].n;
        size_t lead = 0;
        while (lead < n && s_space (s[lead]))
            lead++;
        if (n - lead >= 3 && memcmp (s + lead, "{-#", 3) == 0) {
            s_push (out, s, n);
            continue;
        }
        int opens = 0, closes = 0;
        for (size_t k = 0; k + 1 < n; k++)
            if (s[k] == '{' && s[k + 1] == '-')
                opens++, k++;
        for (size_t k = 0; k + 1 < n; k++)
            if (s[k] == '-' && s[k + 1] == '}')
                closes++, k++;
        //  s/{-.*?-}//g
        omni_buf_reset (&b);
        size_t at = 0;
        for (const char *open; (open = s_find (s, n, at, "{-"));) {
            const char *close = s_find (s, n, (size_t) (open - s) + 2, "-}");
            if (!close) {
                omni_buf_append (&b, s + at, (size_t) (open - s) + 1 - at);
                at = (size_t) (open - s) + 1;
                continue;
            }
            omni_buf_append (&b, s + at, (size_t) (open - s) - at);
            at = (size_t) (close - s) + 2;
        }
        omni_buf_append (&b, s + at, n - at);
        const char *t = b.data ? b.data : "";
        size_t m = b.size;
        if (depth) {
            const char *close = s_find (t, m, 0, "-}");
            if (close) {
                m -= (size_t) (close - t) + 2;
                t = close + 2;
                depth = elm ? depth + opens - closes : 0;
            } else
                m = 0;
        } else {
            const char *dash = s_find (t, m, 0, "--");
            if (dash)
                m = (size_t) (dash - t);
            const char *open = s_find (t, m, 0, "{-");
            if (open && !s_find (t, m, 0, "{-#")) {
                m = (size_t) (open - t);
                depth = elm ? depth + opens - closes : 1;
            }
        }
        if (!s_blank (t, m))
            s_push (out, s_own (out, t, m), m);
    }
    omni_buf_release (&b);
}

//  remove_OCaml_comments: nested (* *), strings on one line skipped
static void
s_ocaml (s_lines_t *in, s_lines_t *out)
{
    int depth = 0;
    omni_buf_t b = {0};
    for (size_t i = 0; i < in->n; i++) {
        const char *s = in->v[i].s;
        size_t n = in->v[i].n;
        if (s_blank (s, n))
            continue;
        omni_buf_reset (&b);
        for (size_t k = 0; k < n;) {
            if (s[k] == '(' && k + 1 < n && s[k + 1] == '*') {
                depth++;
                k += 2;
            } else if (s[k] == '*' && k + 1 < n && s[k + 1] == ')') {
                depth--;
                k += 2;
            } else if (s[k] == '"' && memchr (s + k + 1, '"', n - k - 1)) {
                const char *close = memchr (s + k + 1, '"', n - k - 1);
                size_t len = (size_t) (close - (s + k)) + 1;
                if (!depth)
                    omni_buf_append (&b, s + k, len);
                k += len;
            } else {
                if (!depth)
                    omni_buf_append (&b, s + k, 1);
                k++;
            }
        }
        //  cloc keeps a line whose newline was outside a comment; a blank
        //  one goes with the blank lines after the filter
        if (b.size || !depth)
            s_push (out, s_own (out, b.data ? b.data : "", b.size), b.size);
    }
    omni_buf_release (&b);
}

static void
s_apply (const lang_t *lang, const lang_filter_t *f, s_lines_t *l)
{
    s_lines_t out = {NULL, 0, 0, l->nl, l->owned, l->nowned, l->owned_cap};
    switch (f->op) {
    case F_PREFIX:
    case F_MATCH:
    case F_F77:
    case F_F90:
        for (size_t i = 0; i < l->n; i++) {
            const s_line_t *line = &l->v[i];
            bool drop;
            if (f->op == F_PREFIX)
                drop = s_prefix_icase (line, f->a);
            else if (f->op == F_MATCH)
                drop = s_match (f->re1, line->s, line->n, l->nl);
            else if (f->op == F_F77)
                drop = (line->n && strchr ("*cC", line->s[0])) || s_prefix_icase (line, "!");
            else
                drop = (s_prefix_icase (line, "!") || s_blank (line->s, line->n)) &&
                       !(s_prefix_icase (line, "!hpf$") || s_prefix_icase (line, "!omp$"));
            if (!drop)
                s_push (&out, line->s, line->n);
        }
        break;
    case F_COMMON: s_common (l, &out, f->variant); break;
    case F_BETWEEN:
    case F_BETWEEN_RE: {
        s_marks_t m = {{f->a, f->b}, {f->re1, f->re2}};
        s_between (l, &out, &m);
        break;
    }
    case F_HTML: s_html (l, &out); break;
    case F_DOCSTRING:
    case F_POWERSHELL:
    case F_ELIXIR: s_docstring (l, f->op); return;
    case F_BELOW_ABOVE: {
        bool between = false;
        for (size_t i = 0; i < l->n; i++) {
            const s_line_t *line = &l->v[i];
            if (!between && s_match (f->re1, line->s, line->n, l->nl))
                between = true;
            else if (between && s_match (f->re2, line->s, line->n, l->nl))
                between = false;
            else if (!between)
                s_push (&out, line->s, line->n);
        }
        break;
    }
    case F_BELOW:
        for (size_t i = 0; i < l->n && !s_match (f->re1, l->v[i].s, l->v[i].n, l->nl); i++)
            s_push (&out, l->v[i].s, l->v[i].n);
        break;
    case F_ABOVE: {
        size_t from = 0;
        while (from < l->n && !s_match (f->re1, l->v[from].s, l->v[from].n, l->nl))
            from++;
        if (from == l->n)
            from = 0;
        for (size_t i = from; i < l->n; i++)
            s_push (&out, l->v[i].s, l->v[i].n);
        break;
    }
    case F_REPLACE: s_per_line (l, &out, f, s_replace); break;
    case F_QUOTED_XX:
    case F_QUOTED_SPLIT: s_per_line (l, &out, f, s_quoted); break;
    case F_HASKELL: s_haskell (lang, l, &out); break;
    case F_OCAML: s_ocaml (l, &out); break;
    }
    free (l->v);
    *l = out;
}

//  cloc's read_file: byte order marks off, a CR before each newline off
static void
s_read (const char *data, size_t len, s_lines_t *l)
{
    static const char *const boms[] = {
        "\xfe\xff",         "\xff\xfe",         "\xef\xbb\xbf",        "\xf7\x64\x4c",
        "\x0e\xfe\xff",     "\xfb\xee\x28",     "\x00\x00\xfe\xff",    "\xff\xfe\x00\x00",
        "\x2b\x2f\x76\x38", "\x2b\x2f\x76\x39", "\x2b\x2f\x76\x2b",    "\x2b\x2f\x76\x2f",
        "\xdd\x73\x66\x73", "\x84\x31\x95\x33", "\x2b\x2f\x76\x38\x2d"};
    static const size_t bom_len[] = {2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 5};
    const char *p = data, *end = data + len;
    for (size_t i = 0; i < S_COUNT (boms); i++)
        if (len >= bom_len[i] && memcmp (data, boms[i], bom_len[i]) == 0) {
            p += bom_len[i];
            break;
        }
    while (p < end) {
        const char *nl = memchr (p, '\n', (size_t) (end - p));
        const char *e = nl ? nl : end;
        size_t n = (size_t) (e - p);
        if (n && p[n - 1] == '\r')
            n--;
        s_push (l, p, n);
        p = nl ? nl + 1 : end;
    }
    l->nl = true;
}

void
lang_count (const lang_t *lang, const char *data, size_t len, lang_lines_t *lines)
{
    s_lines_t l = {NULL, 0, 0, true, NULL, 0, 0};
    s_read (data, len, &l);
    uint64_t total = l.n;
    s_drop_blank (lang, &l);
    uint64_t blank = total - l.n;
    s_line_t first = l.n ? l.v[0] : (s_line_t){NULL, 0};
    for (int i = 0; i < lang->nfilters && l.n; i++) {
        s_apply (lang, &lang->filter[i], &l);
        s_drop_blank (lang, &l);
    }
    uint64_t code = l.n;
    //  cloc's exception for scripts: the #! line is code
    if (lang->script && first.n >= 2 && first.s[0] == '#' && first.s[1] == '!' &&
        (!l.n || l.v[0].n != first.n || memcmp (l.v[0].s, first.s, first.n) != 0))
        code++;
    lines->blank += blank;
    lines->code += code;
    lines->comment += total - blank - code;
    for (size_t i = 0; i < l.nowned; i++)
        free (l.owned[i]);
    free (l.owned);
    free (l.v);
}

//  ---------------------------------------------------------------------------
//  Self-test

static void
s_check (const char *lang_name_, const char *text, uint64_t blank, uint64_t comment, uint64_t code)
{
    const lang_t *lang = lang_lookup (lang_name_);
    assert (lang);
    lang_lines_t n = {0, 0, 0};
    lang_count (lang, text, strlen (text), &n);
    if (n.blank != blank || n.comment != comment || n.code != code) {
        fprintf (stderr, "%s: blank %llu comment %llu code %llu, expected %llu %llu %llu\n%s\n",
                 lang_name_, (unsigned long long) n.blank, (unsigned long long) n.comment,
                 (unsigned long long) n.code, (unsigned long long) blank,
                 (unsigned long long) comment, (unsigned long long) code, text);
        assert (false);
    }
}

static const char *
s_detect (const char *path, const char *data)
{
    const lang_t *lang = lang_detect (path, data, data ? strlen (data) : 0);
    return lang ? lang_name (lang) : "-";
}

void
lang_count_test (bool verbose)
{
    (void) verbose;
    //  Every table's regular expression compiles; the tables are sorted
    for (size_t i = 0; i < S_NREGEX; i++)
        s_re ((int) i);
    for (size_t i = 0; i < S_COUNT (s_decide_src); i++) {
        s_iter_t it = {"", "", "", 0, 1, ""};
        s_d ((int) i, &it);
    }
    for (size_t i = 1; i < S_NLANGS; i++)
        assert (strcmp (s_langs[i - 1].name, s_langs[i].name) < 0);
    for (size_t i = 1; i < S_COUNT (s_extensions); i++)
        assert (strcmp (s_extensions[i - 1][0], s_extensions[i][0]) < 0);
    for (size_t i = 0; i < S_COUNT (s_extensions); i++)
        assert (lang_lookup (s_extensions[i][1]) || strchr (s_extensions[i][1], '/'));
    //  ^ at the start of a search from the middle of a line does not match
    size_t so, eo;
    regex_t re;
    assert (regcomp (&re, "^a", REG_EXTENDED) == 0);
    assert (!s_search (&re, "ba", 2, false, 1, &so, &eo));
    assert (s_search (&re, "ab", 2, false, 0, &so, &eo) && so == 0 && eo == 1);
    assert (s_search (&re, "xab", 2, false, 1, &so, &eo) == false); //  not past n
    regfree (&re);
    assert (regcomp (&re, "b$", REG_EXTENDED) == 0);
    assert (s_search (&re, "abc", 2, false, 0, &so, &eo) && so == 1 && eo == 2);
    regfree (&re);

    //  Detection: cloc's names, extensions (the triple, double then single
    //  one, in cloc's case), prefixes, #! lines, deciders, binary files
    assert (strcmp (s_detect ("a/b/main.c", NULL), "C") == 0);
    assert (strcmp (s_detect ("x.hpp", NULL), "C/C++ Header") == 0);
    assert (strcmp (s_detect ("src/Makefile", ""), "make") == 0);
    assert (strcmp (s_detect ("module.mk", ""), "make") == 0);
    assert (strcmp (s_detect ("Dockerfile.dev", ""), "Dockerfile") == 0);
    assert (strcmp (s_detect ("CMakeLists.txt", ""), "CMake") == 0);
    assert (strcmp (s_detect ("notes.txt", ""), "Text") == 0);
    assert (strcmp (s_detect ("doc/guide.adoc", ""), "AsciiDoc") == 0);
    assert (strcmp (s_detect ("po/de.po", ""), "PO File") == 0);
    assert (strcmp (s_detect ("fix.patch", ""), "diff") == 0);
    assert (strcmp (s_detect ("a.diff", ""), "diff") == 0);
    assert (strcmp (s_detect ("App.csproj", ""), "MSBuild script") == 0);
    assert (strcmp (s_detect ("Directory.Build.props", ""), "XML") == 0);
    assert (strcmp (s_detect ("App.sln", ""), "Visual Studio Solution") == 0);
    assert (strcmp (s_detect ("lib.def", ""), "Windows Module Definition") == 0);
    assert (strcmp (s_detect ("tool.perl", "print 1;\n"), "Perl") == 0);
    assert (strcmp (s_detect ("config.h.in", "int a;\n"), "-") == 0);
    assert (strcmp (s_detect ("README", "hello\n"), "-") == 0);
    assert (strcmp (s_detect ("a.c~", "int a;\n"), "-") == 0);
    assert (strcmp (s_detect ("tools/run", "#!/usr/bin/env python3\nprint(1)\n"), "Python") == 0);
    assert (strcmp (s_detect ("run", "#!/bin/bash -e\necho\n"), "Bourne Again Shell") == 0);
    assert (strcmp (s_detect ("run", "#! /bin/sh\n"), "Bourne Shell") == 0);
    assert (strcmp (s_detect ("data.weird", "<?xml version=\"1.0\"?>\n<a/>\n"), "XML") == 0);
    assert (strcmp (s_detect ("x.sh", "#!/bin/bash\n"), "Bourne Shell") == 0);
    assert (strcmp (s_detect (".clang-format", "a: b\n"), "YAML") == 0);
    assert (strcmp (s_detect ("pom.xml", "<project xmlns=\"x\">\n"), "Maven") == 0);
    assert (strcmp (s_detect ("pom.xml", "<other/>\n"), "XML") == 0);
    assert (strcmp (s_detect ("lib.pl", "use strict;\nsub f { }\n"), "Perl") == 0);
    assert (strcmp (s_detect ("fact.pl", "f(X) :- g(X).\n"), "Prolog") == 0);
    assert (strcmp (s_detect ("a.m", "#import <Foundation/Foundation.h>\n"), "Objective-C") == 0);
    assert (strcmp (s_detect ("a.m", "% c\nx = [1 2];\n"), "MATLAB") == 0);
    assert (strcmp (s_detect ("a.ts", "const a = 1;\n"), "TypeScript") == 0);
    assert (strcmp (s_detect ("a.c", "int\0x"), "C") == 0); //  strlen: no NUL seen
    assert (lang_detect ("a.c", "int\0x", 5) == NULL);
    assert (lang_binary ("a\0", 2) && !lang_binary ("ab", 2));
    assert (lang_lookup ("Cobol") == NULL);

    //  C: a block comment between code on two lines leaves one line of code
    //  (cloc joins them); // in a string is a comment (cloc does not look
    //  at strings); a continued line keeps the blank line after it
    s_check ("C",
             "// line comment\n"
             "/* block\n"
             "\n"
             "   still */\n"
             "int a; // trailing\n"
             "   \t \n"
             "x = 1; /* start\n"
             "end */ y = 2;\n"
             "/* a */ /* b */\n"
             "char *t = \"a\";\n"
             "int z;",
             2, 5, 4);
    s_check ("C", "#define A \\\n\nint b;\n", 0, 0, 3);
    s_check ("C", "", 0, 0, 0);
    s_check ("C", "int a;\r\n\r\n// c\r\n", 1, 1, 1);
    s_check ("C", "\xef\xbb\xbf// c\n", 0, 1, 0);
    //  Python: docstrings are comments, and so is any line with /* or */
    //  (cloc's filters); the #! line is code
    s_check ("Python",
             "#!/usr/bin/env python3\n"
             "\"\"\"Module docstring.\n"
             "\n"
             "More.\n"
             "\"\"\"\n"
             "import os  # why\n"
             "s = \"# not a comment\"\n"
             "x = '/* a C comment marker */'\n"
             "    # indented comment\n",
             1, 5, 3);
    //  Shell and Tcl: a line starting with # is a comment, wherever it is
    //  (a here-document, a single-quoted test body); \" does not open a
    //  string
    s_check ("Bourne Shell",
             "#!/bin/sh\n"
             "# comment\n"
             "echo \"a # b\"  # trailing\n"
             "test_expect 'body' '\n"
             "    # a comment in a test body\n"
             "    true\n"
             "'\n"
             "cat <<EOF\n"
             "# here-document\n"
             "EOF\n",
             0, 3, 7);
    s_check ("Tcl/Tk", "#!/usr/bin/tclsh\nset a \\\"\n# comment\nputs $a\n", 0, 1, 3);
    //  SQL: -- and /* */
    s_check ("SQL", "-- comment\nSELECT 1; -- trailing\n/* block\n   */\nSELECT 2;\n", 0, 3, 2);
    //  Lua long comments; markup
    s_check ("Lua", "--[[ long\ncomment ]]\nlocal s = 1 -- c\n-- c\n", 0, 3, 1);
    s_check ("XML", "<a>\n<!-- c\n c -->\n<b/> <!-- x -->\n\n", 1, 2, 2);
    s_check ("Markdown", "# Title\n\n<!-- hidden -->\ntext\n[//]: # (a comment)\n", 1, 2, 2);
    s_check ("HTML", "<p>\ncode <!-- starts\n -->\n</p>\n", 0, 2, 2);
    //  Haskell, OCaml, Pascal, Perl POD and __END__, Ruby =begin
    s_check ("Haskell", "{-# LANGUAGE X #-}\n{- a\n-}\nmain = print 1 -- c\n-- c\n", 0, 3, 2);
    s_check ("OCaml", "(* a (* nested *) still *)\nlet x = \"(*\" (* c *)\n", 0, 1, 1);
    s_check ("Pascal", "{ c }\nbegin (* c *) x := 1; end.\n// c\n", 0, 2, 1);
    s_check ("Perl", "print 1;\n=head1 NAME\n\nx\n=cut\nprint 2; # c\n__END__\nstuff\n", 1, 5, 2);
    s_check ("Ruby", "=begin\nx\n=end\nputs 1 # c\n# c\n", 0, 4, 1);
    //  Java: a string ending in /* does not open a comment
    s_check ("Java", "String s = \"/*\";\nint a; /* c */\n// c\n", 0, 1, 2);
    //  Languages the issue named: AsciiDoc, gettext, diff, MSBuild, .sln, .def
    s_check ("AsciiDoc", "= Title\n////\nhidden\n////\n// c\ntext\n", 0, 4, 2);
    s_check ("PO File", "# translator\n#, fuzzy\nmsgid \"a\"\nmsgstr \"b\"\n", 0, 1, 3);
    s_check ("diff", "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-old\n+new\n context\n", 0, 3, 3);
    s_check ("MSBuild script", "<Project>\n  <!-- c -->\n</Project>\n", 0, 1, 2);
    s_check ("Visual Studio Solution", "\n# Visual Studio\nProject(\"x\")\nEndProject\n", 1, 1, 2);
    s_check ("Windows Module Definition", "; c\nEXPORTS\n  f ; c\n", 0, 1, 2);
    //  JSON has no comments; YAML's are #
    s_check ("JSON", "{\n  \"a\": \"//\"\n}\n", 0, 0, 3);
    s_check ("YAML", "a: b#c\n# c\nd: \"#\"\n", 0, 1, 2);
    s_check ("make", "# c\nA := 1 # c\n\tcmd\n", 0, 1, 2);
}
