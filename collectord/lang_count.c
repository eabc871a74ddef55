/*  lang_count: languages and their line counts (cloc's conventions).      */
#include "lang_count.h"

#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

//  A string delimiter
#define Q_ESC     1u //  a backslash escapes the next character
#define Q_MULTI   2u //  may span lines (else it ends at the end of the line)
#define Q_COMMENT 4u //  its lines count as comment (Python's triple quotes, as cloc)

typedef struct {
    const char *open, *close;
    unsigned flags;
} s_quote_t;

//  Language flags
#define L_NEST     (1u << 0) //  block comments nest
#define L_WORD     (1u << 1) //  a line comment starts a word (shell: a#b is a word)
#define L_FIRST    (1u << 2) //  a line comment is the first thing on its line
#define L_CODE_ESC (1u << 3) //  in code a backslash escapes the next character
#define L_HEREDOC  (1u << 4) //  shell here-documents: <<TAG ... TAG
#define L_POD      (1u << 5) //  Perl: POD (=word ... =cut) and all after __END__ / __DATA__
#define L_RDOC     (1u << 6) //  Ruby: =begin ... =end
#define L_NOCASE   (1u << 7) //  line comment markers in any case (DOS batch REM)
#define L_MARKUP   (1u << 8) //  no strings, only <!-- --> (HTML, XML, Markdown)
#define L_SCRIPT   (1u << 9) //  a #! first line is code (cloc's rule for interpreted languages)

struct _lang_t {
    const char *name;
    const char *line[4];
    const char *block[2][2];
    s_quote_t quote[5];
    unsigned flags;
};

//  Quote sets
#define QS_C                                                                                       \
    {                                                                                              \
        {"\"", "\"", Q_ESC},                                                                       \
        {                                                                                          \
            "'", "'", Q_ESC                                                                        \
        }                                                                                          \
    }
#define QS_JS                                                                                      \
    {                                                                                              \
        {"\"", "\"", Q_ESC}, {"'", "'", Q_ESC},                                                    \
        {                                                                                          \
            "`", "`", Q_ESC | Q_MULTI                                                              \
        }                                                                                          \
    }
#define QS_TRIPLE                                                                                  \
    {                                                                                              \
        {"\"\"\"", "\"\"\"", Q_ESC | Q_MULTI}, {"'''", "'''", Q_ESC | Q_MULTI},                    \
            {"\"", "\"", Q_ESC},                                                                   \
        {                                                                                          \
            "'", "'", Q_ESC                                                                        \
        }                                                                                          \
    }
#define QS_PYTHON                                                                                  \
    {                                                                                              \
        {"\"\"\"", "\"\"\"", Q_ESC | Q_MULTI | Q_COMMENT},                                         \
            {"'''", "'''", Q_ESC | Q_MULTI | Q_COMMENT}, {"\"", "\"", Q_ESC},                      \
        {                                                                                          \
            "'", "'", Q_ESC                                                                        \
        }                                                                                          \
    }
#define QS_SHELL                                                                                   \
    {                                                                                              \
        {"\"", "\"", Q_ESC | Q_MULTI}, {"'", "'", Q_MULTI},                                        \
        {                                                                                          \
            "`", "`", Q_ESC | Q_MULTI                                                              \
        }                                                                                          \
    }
#define QS_MULTI                                                                                   \
    {                                                                                              \
        {"\"", "\"", Q_ESC | Q_MULTI},                                                             \
        {                                                                                          \
            "'", "'", Q_ESC | Q_MULTI                                                              \
        }                                                                                          \
    }
#define QS_DQ                                                                                      \
    {                                                                                              \
        {                                                                                          \
            "\"", "\"", Q_ESC                                                                      \
        }                                                                                          \
    }
#define QS_DQ_MULTI                                                                                \
    {                                                                                              \
        {                                                                                          \
            "\"", "\"", Q_ESC | Q_MULTI                                                            \
        }                                                                                          \
    }
#define QS_NONE                                                                                    \
    {                                                                                              \
        {                                                                                          \
            NULL, NULL, 0                                                                          \
        }                                                                                          \
    }

#define C_BLOCK                                                                                    \
    {                                                                                              \
        {                                                                                          \
            "/*", "*/"                                                                             \
        }                                                                                          \
    }
#define NO_BLOCK                                                                                   \
    {                                                                                              \
        {                                                                                          \
            NULL, NULL                                                                             \
        }                                                                                          \
    }

//  C-like: // and /* */, strings "..." '...'
#define C_LANG(name)                                                                               \
    {                                                                                              \
        name, {"//"}, C_BLOCK, QS_C, 0                                                             \
    }
#define HASH_LANG(name)                                                                            \
    {                                                                                              \
        name, {"#"}, NO_BLOCK, QS_MULTI, 0                                                         \
    }

static const lang_t s_langs[] = {
    C_LANG ("C"),
    C_LANG ("C++"),
    C_LANG ("C/C++ Header"),
    C_LANG ("C#"),
    C_LANG ("Objective-C"),
    C_LANG ("Objective-C++"),
    C_LANG ("CUDA"),
    C_LANG ("GLSL"),
    C_LANG ("HLSL"),
    C_LANG ("Metal"),
    C_LANG ("Protocol Buffers"),
    C_LANG ("Solidity"),
    C_LANG ("Arduino Sketch"),
    C_LANG ("Verilog-SystemVerilog"),
    {"Thrift", {"//", "#"}, C_BLOCK, QS_C, 0},
    {"Java",
     {"//"},
     C_BLOCK,
     {{"\"\"\"", "\"\"\"", Q_ESC | Q_MULTI}, {"\"", "\"", Q_ESC}, {"'", "'", Q_ESC}},
     0},
    {"JavaScript", {"//"}, C_BLOCK, QS_JS, 0},
    {"JSX", {"//"}, C_BLOCK, QS_JS, 0},
    {"TypeScript", {"//"}, C_BLOCK, QS_JS, 0},
    {"Go", {"//"}, C_BLOCK, {{"\"", "\"", Q_ESC}, {"'", "'", Q_ESC}, {"`", "`", Q_MULTI}}, 0},
    {"Rust", {"//"}, C_BLOCK, {{"\"", "\"", Q_ESC | Q_MULTI}, {"'", "'", Q_ESC}}, L_NEST},
    {"Swift", {"//"}, C_BLOCK, QS_TRIPLE, L_NEST},
    {"Kotlin", {"//"}, C_BLOCK, QS_TRIPLE, 0},
    {"Scala", {"//"}, C_BLOCK, QS_TRIPLE, 0},
    {"Groovy", {"//"}, C_BLOCK, QS_TRIPLE, L_SCRIPT},
    {"Gradle", {"//"}, C_BLOCK, QS_TRIPLE, 0},
    {"Dart", {"//"}, C_BLOCK, QS_TRIPLE, 0},
    {"Zig", {"//"}, NO_BLOCK, QS_C, 0},
    {"CSS", {NULL}, C_BLOCK, QS_C, 0},
    {"SCSS", {"//"}, C_BLOCK, QS_C, 0},
    {"Sass", {"//"}, C_BLOCK, QS_C, 0},
    {"LESS", {"//"}, C_BLOCK, QS_C, 0},
    {"PHP", {"//", "#"}, C_BLOCK, QS_MULTI, L_SCRIPT},
    {"HCL", {"#", "//"}, C_BLOCK, QS_DQ, 0},
    {"Nix", {"#"}, C_BLOCK, {{"\"", "\"", Q_ESC | Q_MULTI}, {"''", "''", Q_MULTI}}, 0},
    {"F#", {"//"}, {{"(*", "*)"}}, QS_DQ_MULTI, 0},
    {"OCaml", {NULL}, {{"(*", "*)"}}, QS_DQ_MULTI, L_NEST},
    {"Pascal", {"//"}, {{"{", "}"}, {"(*", "*)"}}, {{"'", "'", 0}}, 0},
    {"Python", {"#"}, NO_BLOCK, QS_PYTHON, L_SCRIPT},
    {"Cython", {"#"}, NO_BLOCK, QS_PYTHON, 0},
    {"Starlark", {"#"}, NO_BLOCK, QS_PYTHON, 0},
    {"Bazel", {"#"}, NO_BLOCK, QS_TRIPLE, 0},
    {"GraphQL", {"#"}, NO_BLOCK, QS_PYTHON, 0},
    {"Bourne Shell", {"#"}, NO_BLOCK, QS_SHELL, L_WORD | L_CODE_ESC | L_HEREDOC | L_SCRIPT},
    {"Bourne Again Shell", {"#"}, NO_BLOCK, QS_SHELL, L_WORD | L_CODE_ESC | L_HEREDOC | L_SCRIPT},
    {"zsh", {"#"}, NO_BLOCK, QS_SHELL, L_WORD | L_CODE_ESC | L_HEREDOC | L_SCRIPT},
    {"Korn Shell", {"#"}, NO_BLOCK, QS_SHELL, L_WORD | L_CODE_ESC | L_HEREDOC | L_SCRIPT},
    {"C Shell", {"#"}, NO_BLOCK, QS_SHELL, L_WORD | L_CODE_ESC | L_HEREDOC | L_SCRIPT},
    {"Fish Shell", {"#"}, NO_BLOCK, QS_SHELL, L_WORD | L_CODE_ESC},
    {"Perl", {"#"}, NO_BLOCK, QS_C, L_POD | L_CODE_ESC | L_SCRIPT},
    {"Ruby", {"#"}, NO_BLOCK, QS_MULTI, L_RDOC | L_SCRIPT},
    {"Crystal", {"#"}, NO_BLOCK, QS_MULTI, L_SCRIPT},
    {"Elixir",
     {"#"},
     NO_BLOCK,
     {{"\"\"\"", "\"\"\"", Q_ESC | Q_MULTI}, {"\"", "\"", Q_ESC | Q_MULTI}},
     0},
    {"Julia",
     {"#"},
     {{"#=", "=#"}},
     {{"\"\"\"", "\"\"\"", Q_ESC | Q_MULTI}, {"\"", "\"", Q_ESC | Q_MULTI}},
     L_NEST},
    {"Nim", {"#"}, {{"#[", "]#"}}, QS_TRIPLE, L_NEST},
    HASH_LANG ("R"),
    HASH_LANG ("CoffeeScript"),
    {"PowerShell", {"#"}, {{"<#", "#>"}}, {{"\"", "\"", Q_MULTI}, {"'", "'", Q_MULTI}}, 0},
    {"YAML", {"#"}, NO_BLOCK, {{"\"", "\"", Q_ESC}, {"'", "'", 0}}, L_WORD},
    {"TOML",
     {"#"},
     NO_BLOCK,
     {{"\"\"\"", "\"\"\"", Q_ESC | Q_MULTI},
      {"'''", "'''", Q_MULTI},
      {"\"", "\"", Q_ESC},
      {"'", "'", 0}},
     0},
    {"make", {"#"}, NO_BLOCK, QS_NONE, L_CODE_ESC | L_SCRIPT},
    {"CMake", {"#"}, {{"#[[", "]]"}}, QS_DQ_MULTI, 0},
    {"Meson", {"#"}, NO_BLOCK, {{"'''", "'''", Q_MULTI}, {"'", "'", Q_ESC}}, 0},
    {"Dockerfile", {"#"}, NO_BLOCK, QS_NONE, L_FIRST},
    {"Containerfile", {"#"}, NO_BLOCK, QS_NONE, L_FIRST},
    {"awk", {"#"}, NO_BLOCK, QS_DQ, L_WORD | L_SCRIPT},
    {"Tcl/Tk", {"#"}, NO_BLOCK, QS_DQ_MULTI, L_WORD | L_SCRIPT},
    {"m4", {"dnl"}, NO_BLOCK, QS_NONE, L_FIRST},
    {"INI", {";", "#"}, NO_BLOCK, QS_NONE, L_FIRST},
    {"DOS Batch", {"rem ", "::", "@rem "}, NO_BLOCK, QS_NONE, L_FIRST | L_NOCASE},
    {"vim script", {"\""}, NO_BLOCK, QS_NONE, L_FIRST},
    {"SQL", {"--"}, C_BLOCK, {{"'", "'", Q_MULTI}, {"\"", "\"", Q_MULTI}}, 0},
    {"Ada", {"--"}, NO_BLOCK, QS_DQ, 0},
    {"VHDL", {"--"}, C_BLOCK, QS_DQ, 0},
    {"Lua",
     {"--"},
     {{"--[[", "]]"}},
     {{"[[", "]]", Q_MULTI}, {"\"", "\"", Q_ESC}, {"'", "'", Q_ESC}},
     L_SCRIPT},
    {"Haskell", {"--"}, {{"{-", "-}"}}, QS_DQ, L_NEST},
    {"Lisp", {";"}, {{"#|", "|#"}}, QS_DQ_MULTI, 0},
    {"Scheme", {";"}, {{"#|", "|#"}}, QS_DQ_MULTI, 0},
    {"Clojure", {";"}, NO_BLOCK, QS_DQ_MULTI, 0},
    {"ClojureScript", {";"}, NO_BLOCK, QS_DQ_MULTI, 0},
    {"ClojureC", {";"}, NO_BLOCK, QS_DQ_MULTI, 0},
    {"Erlang", {"%"}, NO_BLOCK, QS_DQ, L_SCRIPT},
    {"TeX", {"%"}, NO_BLOCK, QS_NONE, L_CODE_ESC},
    {"Fortran 90", {"!"}, NO_BLOCK, {{"\"", "\"", 0}, {"'", "'", 0}}, 0},
    {"Fortran 95", {"!"}, NO_BLOCK, {{"\"", "\"", 0}, {"'", "'", 0}}, 0},
    {"HTML", {NULL}, {{"<!--", "-->"}}, QS_NONE, L_MARKUP},
    {"XML", {NULL}, {{"<!--", "-->"}}, QS_NONE, L_MARKUP},
    {"XSD", {NULL}, {{"<!--", "-->"}}, QS_NONE, L_MARKUP},
    {"XSLT", {NULL}, {{"<!--", "-->"}}, QS_NONE, L_MARKUP},
    {"SVG", {NULL}, {{"<!--", "-->"}}, QS_NONE, L_MARKUP},
    {"Maven/XML", {NULL}, {{"<!--", "-->"}}, QS_NONE, L_MARKUP},
    {"Svelte", {NULL}, {{"<!--", "-->"}}, QS_NONE, L_MARKUP},
    {"Vuejs Component", {"//"}, {{"<!--", "-->"}, {"/*", "*/"}}, QS_NONE, 0},
    {"Markdown", {NULL}, {{"<!--", "-->"}}, QS_NONE, L_MARKUP},
    {"JSON", {NULL}, NO_BLOCK, QS_DQ, 0},
    {"Text", {NULL}, NO_BLOCK, QS_NONE, 0},
    {"CSV", {NULL}, NO_BLOCK, QS_NONE, 0},
};

#define S_NLANGS (sizeof s_langs / sizeof s_langs[0])

//  By extension (lower case; the longest known suffix of the name wins)
static const char *s_extensions[][2] = {
    {"c", "C"},
    {"ec", "C"},
    {"pgc", "C"},
    {"cc", "C++"},
    {"cpp", "C++"},
    {"cxx", "C++"},
    {"c++", "C++"},
    {"inl", "C++"},
    {"ipp", "C++"},
    {"tpp", "C++"},
    {"tcc", "C++"},
    {"h", "C/C++ Header"},
    {"hh", "C/C++ Header"},
    {"hpp", "C/C++ Header"},
    {"hxx", "C/C++ Header"},
    {"h++", "C++"},
    {"cs", "C#"},
    {"m", "Objective-C"},
    {"mm", "Objective-C++"},
    {"cu", "CUDA"},
    {"cuh", "CUDA"},
    {"glsl", "GLSL"},
    {"frag", "GLSL"},
    {"vert", "GLSL"},
    {"hlsl", "HLSL"},
    {"metal", "Metal"},
    {"proto", "Protocol Buffers"},
    {"sol", "Solidity"},
    {"ino", "Arduino Sketch"},
    {"sv", "Verilog-SystemVerilog"},
    {"thrift", "Thrift"},
    {"java", "Java"},
    {"js", "JavaScript"},
    {"mjs", "JavaScript"},
    {"cjs", "JavaScript"},
    {"jsx", "JSX"},
    {"ts", "TypeScript"},
    {"tsx", "TypeScript"},
    {"mts", "TypeScript"},
    {"cts", "TypeScript"},
    {"go", "Go"},
    {"rs", "Rust"},
    {"swift", "Swift"},
    {"kt", "Kotlin"},
    {"kts", "Kotlin"},
    {"scala", "Scala"},
    {"groovy", "Groovy"},
    {"gradle", "Gradle"},
    {"gradle.kts", "Gradle"},
    {"dart", "Dart"},
    {"zig", "Zig"},
    {"css", "CSS"},
    {"scss", "SCSS"},
    {"sass", "Sass"},
    {"less", "LESS"},
    {"php", "PHP"},
    {"hcl", "HCL"},
    {"tf", "HCL"},
    {"nix", "Nix"},
    {"fs", "F#"},
    {"fsi", "F#"},
    {"ml", "OCaml"},
    {"mli", "OCaml"},
    {"pas", "Pascal"},
    {"py", "Python"},
    {"pyi", "Python"},
    {"pyw", "Python"},
    {"pyx", "Cython"},
    {"pxd", "Cython"},
    {"bzl", "Starlark"},
    {"bazel", "Starlark"},
    {"star", "Starlark"},
    {"graphql", "GraphQL"},
    {"gql", "GraphQL"},
    {"sh", "Bourne Shell"},
    {"bash", "Bourne Again Shell"},
    {"zsh", "zsh"},
    {"ksh", "Korn Shell"},
    {"csh", "C Shell"},
    {"tcsh", "C Shell"},
    {"fish", "Fish Shell"},
    {"pl", "Perl"},
    {"pm", "Perl"},
    {"t", "Perl"},
    {"rb", "Ruby"},
    {"rake", "Ruby"},
    {"gemspec", "Ruby"},
    {"cr", "Crystal"},
    {"ex", "Elixir"},
    {"exs", "Elixir"},
    {"jl", "Julia"},
    {"nim", "Nim"},
    {"r", "R"},
    {"coffee", "CoffeeScript"},
    {"ps1", "PowerShell"},
    {"psm1", "PowerShell"},
    {"psd1", "PowerShell"},
    {"yaml", "YAML"},
    {"yml", "YAML"},
    {"toml", "TOML"},
    {"mk", "make"},
    {"mak", "make"},
    {"am", "make"},
    {"cmake", "CMake"},
    {"cmake.in", "CMake"},
    {"dockerfile", "Dockerfile"},
    {"containerfile", "Containerfile"},
    {"clang-format", "YAML"},
    {"clang-tidy", "YAML"},
    {"awk", "awk"},
    {"tcl", "Tcl/Tk"},
    {"m4", "m4"},
    {"ac", "m4"},
    {"ini", "INI"},
    {"bat", "DOS Batch"},
    {"cmd", "DOS Batch"},
    {"vim", "vim script"},
    {"sql", "SQL"},
    {"ada", "Ada"},
    {"adb", "Ada"},
    {"ads", "Ada"},
    {"vhd", "VHDL"},
    {"vhdl", "VHDL"},
    {"lua", "Lua"},
    {"hs", "Haskell"},
    {"lisp", "Lisp"},
    {"lsp", "Lisp"},
    {"el", "Lisp"},
    {"scm", "Scheme"},
    {"ss", "Scheme"},
    {"clj", "Clojure"},
    {"cljs", "ClojureScript"},
    {"cljc", "ClojureC"},
    {"erl", "Erlang"},
    {"hrl", "Erlang"},
    {"tex", "TeX"},
    {"sty", "TeX"},
    {"f90", "Fortran 90"},
    {"f95", "Fortran 95"},
    {"html", "HTML"},
    {"htm", "HTML"},
    {"xhtml", "HTML"},
    {"xml", "XML"},
    {"xsd", "XSD"},
    {"xsl", "XSLT"},
    {"xslt", "XSLT"},
    {"svg", "SVG"},
    {"svelte", "Svelte"},
    {"vue", "Vuejs Component"},
    {"md", "Markdown"},
    {"markdown", "Markdown"},
    {"json", "JSON"},
    {"avsc", "JSON"},
    {"txt", "Text"},
    {"csv", "CSV"},
};

//  By file name
static const char *s_filenames[][2] = {
    {"Makefile", "make"},         {"makefile", "make"},
    {"GNUmakefile", "make"},      {"Gnumakefile", "make"},
    {"gnumakefile", "make"},      {"CMakeLists.txt", "CMake"},
    {"cmakelists.txt", "CMake"},  {"Dockerfile", "Dockerfile"},
    {"dockerfile", "Dockerfile"}, {"Containerfile", "Containerfile"},
    {"meson.build", "Meson"},     {"BUILD", "Bazel"},
    {"WORKSPACE", "Bazel"},       {"BUILD.bazel", "Starlark"},
    {"Rakefile", "Ruby"},         {"rakefile", "Ruby"},
    {"Gemfile", "Ruby"},          {"Vagrantfile", "Ruby"},
    {"Jenkinsfile", "Groovy"},
};

//  By name prefix (Dockerfile.dev)
static const char *s_prefixes[][2] = {
    {"Dockerfile", "Dockerfile"},
    {"Containerfile", "Containerfile"},
};

//  By #! interpreter, version numbers removed
static const char *s_interpreters[][2] = {
    {"sh", "Bourne Shell"},   {"dash", "Bourne Shell"},
    {"ash", "Bourne Shell"},  {"bash", "Bourne Again Shell"},
    {"zsh", "zsh"},           {"ksh", "Korn Shell"},
    {"mksh", "Korn Shell"},   {"csh", "C Shell"},
    {"tcsh", "C Shell"},      {"fish", "Fish Shell"},
    {"python", "Python"},     {"pypy", "Python"},
    {"perl", "Perl"},         {"miniperl", "Perl"},
    {"ruby", "Ruby"},         {"node", "JavaScript"},
    {"nodejs", "JavaScript"}, {"php", "PHP"},
    {"lua", "Lua"},           {"tclsh", "Tcl/Tk"},
    {"wish", "Tcl/Tk"},       {"awk", "awk"},
    {"gawk", "awk"},          {"mawk", "awk"},
    {"nawk", "awk"},          {"make", "make"},
    {"Rscript", "R"},         {"groovy", "Groovy"},
    {"escript", "Erlang"},    {"crystal", "Crystal"},
    {"julia", "Julia"},       {"elixir", "Elixir"},
};

#define S_COUNT(a) (sizeof (a) / sizeof ((a)[0]))

const lang_t *
lang_lookup (const char *name)
{
    for (size_t i = 0; i < S_NLANGS; i++)
        if (strcmp (s_langs[i].name, name) == 0)
            return &s_langs[i];
    return NULL;
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

//  The interpreter a #! line names: /usr/bin/env -S python3.11 -u -> python
static const lang_t *
s_shebang (const char *data, size_t len)
{
    if (len < 3 || data[0] != '#' || data[1] != '!')
        return NULL;
    const char *end = memchr (data, '\n', len);
    size_t n = end ? (size_t) (end - data) : len;
    char line[256];
    if (n >= sizeof line)
        n = sizeof line - 1;
    memcpy (line, data + 2, n - 2);
    line[n - 2] = 0;
    char *save = NULL, *word = strtok_r (line, " \t\r", &save);
    if (!word)
        return NULL;
    const char *base = strrchr (word, '/');
    base = base ? base + 1 : word;
    if (strcmp (base, "env") == 0) {
        //  Options (-S, -i) and VAR=value come before the program
        while ((word = strtok_r (NULL, " \t\r", &save)) && (word[0] == '-' || strchr (word, '=')))
            ;
        if (!word)
            return NULL;
        base = strrchr (word, '/');
        base = base ? base + 1 : word;
    }
    char name[64];
    snprintf (name, sizeof name, "%s", base);
    //  python3.11 -> python, perl5 -> perl
    size_t k = strlen (name);
    while (k && (isdigit ((unsigned char) name[k - 1]) || name[k - 1] == '.'))
        name[--k] = 0;
    for (size_t i = 0; i < S_COUNT (s_interpreters); i++)
        if (strcmp (s_interpreters[i][0], name) == 0)
            return lang_lookup (s_interpreters[i][1]);
    return NULL;
}

const lang_t *
lang_detect (const char *path, const char *data, size_t len)
{
    if (data && lang_binary (data, len))
        return NULL;
    const char *base = strrchr (path, '/');
    base = base ? base + 1 : path;
    for (size_t i = 0; i < S_COUNT (s_filenames); i++)
        if (strcmp (s_filenames[i][0], base) == 0)
            return lang_lookup (s_filenames[i][1]);
    for (size_t i = 0; i < S_COUNT (s_prefixes); i++)
        if (strncmp (s_prefixes[i][0], base, strlen (s_prefixes[i][0])) == 0 &&
            base[strlen (s_prefixes[i][0])] == '.')
            return lang_lookup (s_prefixes[i][1]);
    //  Suffixes after each dot, longest first (as cloc: .clang-format is
    //  a file of extension clang-format)
    for (const char *dot = strchr (base, '.'); dot; dot = strchr (dot + 1, '.')) {
        char ext[32];
        size_t n = strlen (dot + 1);
        if (n == 0 || n >= sizeof ext)
            continue;
        for (size_t k = 0; k <= n; k++)
            ext[k] = (char) tolower ((unsigned char) dot[1 + k]);
        for (size_t i = 0; i < S_COUNT (s_extensions); i++)
            if (strcmp (s_extensions[i][0], ext) == 0)
                return lang_lookup (s_extensions[i][1]);
    }
    return data ? s_shebang (data, len) : NULL;
}

//  ---------------------------------------------------------------------------
//  Counting

typedef enum {
    M_CODE,
    M_LINE_COMMENT,
    M_BLOCK,
    M_STRING,
    M_HEREDOC,
    M_POD,
    M_RDOC,
    M_END
} s_mode_t;

static bool
s_space (char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static bool
s_ident (char c)
{
    return isalnum ((unsigned char) c) || c == '_';
}

static bool
s_at (const char *p, const char *end, const char *s)
{
    size_t n = strlen (s);
    return (size_t) (end - p) >= n && memcmp (p, s, n) == 0;
}

static bool
s_at_nocase (const char *p, const char *end, const char *s)
{
    size_t n = strlen (s);
    return (size_t) (end - p) >= n && strncasecmp (p, s, n) == 0;
}

//  The line from p: its end (the '\n' or the end of data)
static const char *
s_eol (const char *p, const char *end)
{
    const char *nl = memchr (p, '\n', (size_t) (end - p));
    return nl ? nl : end;
}

//  Here-document after "<<" at p: its tag into `tag`; p moved past it.
static bool
s_heredoc_tag (const char **pp, const char *end, char *tag, size_t size, bool *strip)
{
    const char *p = *pp + 2;
    *strip = false;
    if (p < end && *p == '-') {
        *strip = true;
        p++;
    }
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    char quote = 0;
    if (p < end && (*p == '\'' || *p == '"'))
        quote = *p++;
    else if (p < end && *p == '\\')
        p++;
    if (p >= end || !(isalpha ((unsigned char) *p) || *p == '_'))
        return false;
    size_t n = 0;
    while (p < end && (s_ident (*p) || *p == '-' || *p == '.') && n + 1 < size)
        tag[n++] = *p++;
    tag[n] = 0;
    if (quote && p < end && *p == quote)
        p++;
    *pp = p;
    return true;
}

void
lang_count (const lang_t *lang, const char *data, size_t len, lang_lines_t *lines)
{
    const char *p = data, *end = data + len;
    s_mode_t mode = M_CODE;
    const s_quote_t *quote = NULL;
    size_t block = 0;
    int depth = 0;
    char tag[64] = "", pending[64] = "";
    bool strip = false, pending_strip = false;
    while (p < end) {
        const char *eol = s_eol (p, end);
        const char *line = p;
        bool code = false, comment = false, blank = true;
        for (const char *q = line; q < eol; q++)
            if (!s_space (*q)) {
                blank = false;
                break;
            }
        //  Whole-line modes
        if (line == data && (lang->flags & L_SCRIPT) && s_at (line, eol, "#!")) {
            code = true;
            p = eol;
        } else if (mode == M_HEREDOC) {
            const char *s = line;
            if (strip)
                while (s < eol && *s == '\t')
                    s++;
            size_t n = (size_t) (eol - s);
            if (n && s[n - 1] == '\r')
                n--;
            if (n == strlen (tag) && memcmp (s, tag, n) == 0)
                mode = M_CODE;
            code = !blank;
            p = eol;
        } else if (mode == M_END) {
            comment = !blank;
            p = eol;
        } else if (mode == M_POD || mode == M_RDOC) {
            comment = !blank;
            if ((mode == M_POD && s_at (line, eol, "=cut")) ||
                (mode == M_RDOC && s_at (line, eol, "=end")))
                mode = M_CODE;
            p = eol;
        } else if (mode == M_CODE && (lang->flags & L_POD) && line < eol && *line == '=' &&
                   line + 1 < eol && isalpha ((unsigned char) line[1])) {
            mode = s_at (line, eol, "=cut") ? M_CODE : M_POD;
            comment = true;
            p = eol;
        } else if (mode == M_CODE && (lang->flags & L_POD) &&
                   (s_at (line, eol, "__END__") || s_at (line, eol, "__DATA__"))) {
            mode = M_END;
            comment = true;
            p = eol;
        } else if (mode == M_CODE && (lang->flags & L_RDOC) && s_at (line, eol, "=begin")) {
            mode = M_RDOC;
            comment = true;
            p = eol;
        }
        bool first = true; //  nothing seen yet on this line
        bool escaped_eol = false;
        while (p < eol) {
            char c = *p;
            if (s_space (c)) {
                p++;
                continue;
            }
            if (mode == M_LINE_COMMENT) {
                comment = true;
                p = eol;
                break;
            }
            if (mode == M_BLOCK) {
                comment = true;
                const char *open = lang->block[block][0], *close = lang->block[block][1];
                if (s_at (p, eol, close)) {
                    p += strlen (close);
                    if (--depth == 0)
                        mode = M_CODE;
                } else if ((lang->flags & L_NEST) && s_at (p, eol, open)) {
                    p += strlen (open);
                    depth++;
                } else
                    p++;
                continue;
            }
            if (mode == M_STRING) {
                if (quote->flags & Q_COMMENT)
                    comment = true;
                else
                    code = true;
                if ((quote->flags & Q_ESC) && c == '\\') {
                    if (p + 1 == eol) {
                        escaped_eol = true;
                        p++;
                    } else
                        p += 2;
                } else if (s_at (p, eol, quote->close)) {
                    p += strlen (quote->close);
                    mode = M_CODE;
                } else
                    p++;
                continue;
            }
            //  Code: a block comment, a line comment, a string, or code
            bool matched = false;
            for (size_t b = 0; b < 2 && lang->block[b][0] && !matched; b++)
                if (s_at (p, eol, lang->block[b][0])) {
                    mode = M_BLOCK;
                    block = b;
                    depth = 1;
                    comment = true;
                    p += strlen (lang->block[b][0]);
                    matched = true;
                }
            if (matched) {
                first = false;
                continue;
            }
            for (size_t l = 0; l < 4 && lang->line[l] && !matched; l++) {
                bool at = lang->flags & L_NOCASE ? s_at_nocase (p, eol, lang->line[l])
                                                 : s_at (p, eol, lang->line[l]);
                if (!at)
                    continue;
                if ((lang->flags & L_FIRST) && !first)
                    continue;
                if ((lang->flags & L_WORD) && p > line && !s_space (p[-1]) &&
                    !strchr (";|&(){}", p[-1]))
                    continue;
                mode = M_LINE_COMMENT;
                comment = true;
                matched = true;
            }
            if (matched) {
                first = false;
                continue;
            }
            for (size_t k = 0; k < 5 && lang->quote[k].open && !matched; k++)
                if (s_at (p, eol, lang->quote[k].open)) {
                    quote = &lang->quote[k];
                    mode = M_STRING;
                    if (quote->flags & Q_COMMENT)
                        comment = true;
                    else
                        code = true;
                    p += strlen (quote->open);
                    matched = true;
                }
            if (matched) {
                first = false;
                continue;
            }
            code = true;
            first = false;
            if ((lang->flags & L_HEREDOC) && c == '<' && s_at (p, eol, "<<") &&
                !s_at (p, eol, "<<<") && (p == line || s_space (p[-1]))) {
                if (s_heredoc_tag (&p, eol, pending, sizeof pending, &pending_strip))
                    continue;
                p += 2;
                continue;
            }
            if ((lang->flags & L_CODE_ESC) && c == '\\') {
                p += p + 1 < eol ? 2 : 1;
                continue;
            }
            if (s_ident (c)) {
                while (p < eol && s_ident (*p))
                    p++;
                continue;
            }
            p++;
        }
        //  End of the line
        if (mode == M_LINE_COMMENT)
            mode = M_CODE;
        else if (mode == M_STRING && !(quote->flags & Q_MULTI) && !escaped_eol)
            mode = M_CODE;
        if (mode == M_CODE && *pending) {
            snprintf (tag, sizeof tag, "%s", pending);
            strip = pending_strip;
            pending[0] = 0;
            mode = M_HEREDOC;
        }
        if (blank)
            lines->blank++;
        else if (code)
            lines->code++;
        else if (comment)
            lines->comment++;
        else
            lines->code++;
        p = eol < end ? eol + 1 : end;
    }
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

void
lang_count_test (bool verbose)
{
    (void) verbose;
    //  Detection: names, extensions, prefixes, shebangs, binary
    assert (strcmp (lang_name (lang_detect ("a/b/main.c", NULL, 0)), "C") == 0);
    assert (strcmp (lang_name (lang_detect ("x.H", NULL, 0)), "C/C++ Header") == 0);
    assert (strcmp (lang_name (lang_detect ("src/Makefile", "", 0)), "make") == 0);
    assert (strcmp (lang_name (lang_detect ("module.mk", "", 0)), "make") == 0);
    assert (strcmp (lang_name (lang_detect ("Dockerfile.dev", "", 0)), "Dockerfile") == 0);
    assert (strcmp (lang_name (lang_detect ("app.gradle.kts", "", 0)), "Gradle") == 0);
    assert (strcmp (lang_name (lang_detect ("lib.kts", "", 0)), "Kotlin") == 0);
    assert (strcmp (lang_name (lang_detect ("CMakeLists.txt", "", 0)), "CMake") == 0);
    assert (strcmp (lang_name (lang_detect ("notes.txt", "", 0)), "Text") == 0);
    const char *py = "#!/usr/bin/env -S python3.11 -u\nprint(1)\n";
    assert (strcmp (lang_name (lang_detect ("tools/run", py, strlen (py))), "Python") == 0);
    const char *bash = "#!/bin/bash -e\necho\n";
    assert (strcmp (lang_name (lang_detect ("run", bash, strlen (bash))), "Bourne Again Shell") ==
            0);
    const char *sh = "#! /bin/sh\n";
    assert (strcmp (lang_name (lang_detect ("run", sh, strlen (sh))), "Bourne Shell") == 0);
    //  A known extension wins over the #! line, as with cloc
    assert (strcmp (lang_name (lang_detect ("x.sh", bash, strlen (bash))), "Bourne Shell") == 0);
    assert (lang_detect ("README", "hello\n", 6) == NULL);
    assert (lang_detect (".bashrc", "x\n", 2) == NULL);
    assert (strcmp (lang_name (lang_detect (".clang-format", "a: b\n", 5)), "YAML") == 0);
    assert (strcmp (lang_name (lang_detect ("db.Containerfile", "", 0)), "Containerfile") == 0);
    assert (lang_detect ("a.c", "int\0x", 5) == NULL);
    assert (lang_binary ("a\0", 2) && !lang_binary ("ab", 2));
    assert (lang_lookup ("Cobol") == NULL);

    //  C: both comment styles, comment markers in strings and characters,
    //  a blank line of whitespace, code with a trailing comment, a block
    //  comment with a blank line inside, a last line without newline
    s_check ("C",
             "// line comment\n"
             "/* block\n"
             "\n"
             "   still */\n"
             "int a; // trailing\n"
             "char *s = \"/* not a comment\";\n"
             "char *t = \"// nor this\";\n"
             "char c = '\"'; /* a quote char */\n"
             "   \t \n"
             "x = 1; /* start\n"
             "end */ y = 2;\n"
             "/* a */ /* b */\n"
             "char *u = \"esc \\\" /* still string\";\n"
             "int z;",
             2, 4, 8);
    //  Python: docstrings are comments (cloc), # in strings is not; the #!
    //  line is code (cloc's rule for interpreted languages)
    s_check ("Python",
             "#!/usr/bin/env python3\n"
             "\"\"\"Module docstring.\n"
             "\n"
             "More.\n"
             "\"\"\"\n"
             "import os  # why\n"
             "s = \"# not a comment\"\n"
             "t = '\"\"\"'\n"
             "def f():\n"
             "    '''One line.'''\n"
             "    return '#'\n"
             "x = \"\"\"\n"
             "data\n"
             "\"\"\".strip()\n"
             "    # indented comment\n",
             1, 6, 8);
    //  Shell: # inside words and strings, here-documents, escapes
    s_check ("Bourne Shell",
             "#!/bin/sh\n"
             "# comment\n"
             "echo \"a # b\"  # trailing\n"
             "echo ${#x} a#b\n"
             "echo 'it''s # no'\n"
             "cat <<EOF\n"
             "# not a comment: here-document\n"
             "EOF\n"
             "cat <<-'END'\n"
             "\t# still text\n"
             "\tEND\n"
             "echo \\# escaped\n"
             "\n"
             "  # last\n",
             1, 2, 11);
    //  SQL: -- and /* */; a quoted --
    s_check ("SQL",
             "-- comment\n"
             "SELECT '--not' FROM t; -- trailing\n"
             "/* block\n"
             "   */\n"
             "INSERT INTO t VALUES ('a\n"
             "-- inside a string\n"
             "b');\n",
             0, 3, 4);
    //  Lua: --[[ ]] and --
    s_check ("Lua", "--[[ long\ncomment ]]\nlocal s = \"--x\" -- c\n-- c\n", 0, 3, 1);
    //  Markup: <!-- -->
    s_check ("XML", "<a>\n<!-- c\n c -->\n<b/> <!-- x -->\n\n", 1, 2, 2);
    s_check ("Markdown", "# Title\n\n<!-- hidden -->\ntext\n", 1, 1, 2);
    //  Semicolons, percent signs, dashes
    s_check ("Lisp", "; c\n(defun f () \"; no\")\n#| block\n|#\n", 0, 3, 1);
    s_check ("Erlang", "% c\nf() -> \"%\". % c\n", 0, 1, 1);
    s_check ("Haskell", "{- a {- nested -} still -}\nmain = print 1 -- c\n-- c\n", 0, 2, 1);
    //  Rust nests block comments
    s_check ("Rust", "/* a /* b */ c */\nfn main() {}\n", 0, 1, 1);
    //  Dockerfile: # only first on the line
    s_check ("Dockerfile", "# c\nFROM x\nRUN echo a # not a comment\n", 0, 1, 2);
    //  Perl POD and __END__, Ruby =begin
    s_check ("Perl", "print 1;\n=head1 NAME\n\nx\n=cut\nprint 2; # c\n__END__\nstuff\n", 1, 5, 2);
    s_check ("Ruby", "=begin\nx\n=end\nputs 1 # c\n# c\n", 0, 4, 1);
    //  YAML: # starts a word
    s_check ("YAML", "a: b#c\n# c\nd: \"#\"\n", 0, 1, 2);
    //  JSON has no comments; empty input has no lines; CR LF
    s_check ("JSON", "{\n  \"a\": \"//\"\n}\n", 0, 0, 3);
    s_check ("C", "", 0, 0, 0);
    s_check ("C", "int a;\r\n\r\n// c\r\n", 1, 1, 1);
    //  Go raw strings span lines; JavaScript template literals too
    s_check ("Go", "s := `\n// in a raw string\n`\n// c\n", 0, 1, 3);
    s_check ("JavaScript", "const s = `\n/* not */\n`;\n/* c */\n", 0, 1, 3);
    //  make: # comments, \# escaped
    s_check ("make", "# c\nA := 1 # c\nB := \\# x\n\tcmd\n", 0, 1, 3);
}
