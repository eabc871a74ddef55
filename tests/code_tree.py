"""Trees of source files for the code collector's tests and benchmark
(bench/code_stats.py): a file for every language collectord counts, read
from its language table (collectord/lang_table.inc, cloc's languages and
filters), each holding code, blank lines and a comment in every style the
language's filters know (line markers, block comments on one line and over
several, a comment after code), and files for the cases cloc's regular
expressions decide differently from a parser (shell and Tcl # lines inside
strings and here-documents, a Tcl \\" outside a string, a Python line with a
C comment marker, a C block comment between code on two lines)."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TABLE = os.path.join(ROOT, "collectord", "lang_table.inc")

_CSTR = r'"(?:[^"\\]|\\.)*"'


def _c_string(lit):
    """A C string literal's bytes, as text (latin-1: one char a byte)."""
    body, out, i = lit[1:-1], [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        d = body[i + 1]
        if d in "01234567":
            m = re.match(r"[0-7]{1,3}", body[i + 1:])
            out.append(chr(int(m.group(0), 8)))
            i += 1 + len(m.group(0))
        else:
            out.append({"n": "\n", "t": "\t"}.get(d, d))
            i += 2
    return "".join(out)


def _arg(tok):
    return None if tok == "NULL" else _c_string(tok)


def languages():
    """{name: {"filters": [(op, a, b, variant)], "script": bool,
    "names": [file names that are this language, by extension first]}}"""
    text = open(TABLE, encoding="latin-1").read()
    langs = {}
    lang_re = re.compile(r"^\s*\{(" + _CSTR + r"), CONT_\w+, -?\d+, (true|false), (\d+), \{(.*)\}\},$",
                         re.M)
    filt_re = re.compile(r"\{(F_\w+), -?\d+, -?\d+, (NULL|" + _CSTR + r"), (NULL|" + _CSTR
                         + r"), ('.'|0)\}")
    for m in lang_re.finditer(text):
        n = int(m.group(3))
        filters = [(f[0], _arg(f[1]), _arg(f[2]), f[3].strip("'") if f[3] != "0" else None)
                   for f in filt_re.findall(m.group(4))][:n]
        langs[_c_string(m.group(1))] = {"filters": filters, "script": m.group(2) == "true",
                                        "names": []}

    def section(name):
        body = text[text.index(name):]
        body = body[:body.index("};")]
        return re.findall(r"\{(" + _CSTR + r"), (" + _CSTR + r")\}", body)

    for ext, lang in section("s_extensions[]"):
        lang = _c_string(lang)
        if lang in langs:
            langs[lang]["names"].append("sample." + _c_string(ext))
    for name, lang in section("s_filenames[]"):
        lang = _c_string(lang)
        if lang in langs:
            langs[lang]["names"].append(_c_string(name))
    return langs


def styles(filters):
    """The comment styles of a language's filters: (line markers, block
    (open, close) pairs)."""
    line, block = [], []
    for op, a, b, v in filters:
        if op == "F_PREFIX" and a and a.strip():
            line.append(a)
        elif op == "F_COMMON":
            block += {"C": [("/*", "*/")], "+": [("/*", "*/")], "L": [("/*", "*/")],
                      "H": [("<!--", "-->")], "P": [("{", "}"), ("(*", "*)")],
                      "S": [('"', '"')]}[v]
            line += {"+": ["//"], "L": ["--"]}.get(v, [])
        elif op == "F_BETWEEN":
            block.append((a, b))
        elif op == "F_HTML":
            block.append(("<!--", "-->"))
        elif op == "F_HASKELL":
            line.append("--")
            block.append(("{-", "-}"))
        elif op == "F_OCAML":
            block.append(("(*", "*)"))
        elif op in ("F_F77", "F_F90"):
            line.append("!")
        elif op == "F_DOCSTRING":
            block.append(('"""', '"""'))
    return line, block


def sample(lang, info, size=1):
    """A file of `lang`: its #! line when a script, then `size` times code,
    blank lines and comments of each style."""
    line, block = styles(info["filters"])
    out = []
    if info["script"]:
        out.append("#!/usr/bin/env tool")
    for k in range(size):
        out += [f"value{k} = call(1, 2)", "", "    "]
        for m in line:
            out += [f"{m} a comment line {k}", f"    {m} an indented one"]
        for o, c in block:
            out += [f"{o} one line {c}", f"{o} first", "  inside", "", f"  last {c}",
                    f"result{k} = 3 {o} after code {c}"]
        out += [f"final{k} = value{k} + 1"]
    return "\n".join(out) + "\n"


# The cases where cloc's regular expressions and a parser disagree: the
# counts are cloc's (the test checks them against cloc too)
EDGE_CASES = {
    # a # line in a single-quoted test body and in a here-document: comment
    "edge/t0001-basic.sh": (
        "#!/bin/sh\n"
        "test_expect_success 'setup' '\n"
        "    # a comment inside the test body\n"
        "    git init &&\n"
        "    echo \"# not a comment\" >file\n"
        "'\n"
        "cat <<-EOF\n"
        "\t# in a here-document\n"
        "EOF\n"
        "echo a # trailing\n", "Bourne Shell", 0, 2, 8),
    # \" outside a string does not open one: the comments after stay comments
    "edge/quote.tcl": (
        "set q \\\"\n"
        "# comment one\n"
        "puts $q\n"
        "# comment two\n"
        "  # comment three\n", "Tcl/Tk", 0, 3, 2),
    # a Python line with a C comment marker is a comment (cloc's filter)
    "edge/marker.py": (
        "pattern = '/*'\n"
        "x = 1\n"
        "\"\"\"doc\n"
        "string\"\"\"\n", "Python", 0, 3, 1),
    # a block comment between code on two lines: one line of code
    "edge/join.c": (
        "int a; /* starts\n"
        "   middle\n"
        "ends */ int b;\n"
        "char *s = \"/* not closed in a string\";\n"
        "int c;\n", "C", 0, 2, 3),
}


# Languages cloc reaches only through an extension several share, by its
# rules on the content: a file name and a first line that decide it
DECIDED = {
    "C#": ("sample.cs", "using System;"),
    "Objective-C": ("sample.m", "#import <Foundation/Foundation.h>"),
    "MATLAB": ("matlab.m", "function y = f(x)\n% a MATLAB comment"),
    "Julia": ("sample.jl", "function f()\nend"),
    "D": ("sample.d", "import std.stdio;"),
    "Coq": ("sample.v", "Theorem t : True.\nProof.\nQed."),
    "Puppet": ("sample.pp", "class foo {\n  package { 'x': ensure => present }\n}"),
    "Qt Linguist": ("sample.ts", "<TS>\n<message>\n<source>a</source>\n</message>"),
    "Prolog": ("prolog.pl", "f(X) :- g(X).\ng(1)."),
    "Perl": ("perl.pl", "use strict;\nsub f { return 1; }"),
    "Fortran 77": ("sample.f", "      program main"),
    "Qt Project": ("sample.pro", "TEMPLATE = app\nTARGET = app\nQT += core\nCONFIG += c++17\n"
                   + "".join(f"SOURCES += f{i}.cpp\n" for i in range(12)) + "QT += gui"),
    "OpenCL": ("sample.cl", "int f(int x);"),
    "Maven": ("pom.xml", "<project xmlns=\"http://maven.apache.org/POM/4.0.0\">\n</project>"),
}


def write_tree(root, size=1, copies=1, only=None):
    """Writes a sample of every language (`copies` files of each, `size`
    blocks each; DECIDED's by their deciding name and first line) and
    EDGE_CASES under `root`; returns {language: files}."""
    langs = languages()
    written = {}
    for i, (lang, info) in enumerate(sorted(langs.items())):
        if only and lang not in only:
            continue
        text = sample(lang, info, size)
        if lang in DECIDED:
            name, first = DECIDED[lang]
            text = first + "\n" + text
        elif info["names"]:
            name = info["names"][0]
        else:
            continue
        for c in range(copies):
            path = os.path.join(root, f"l{i:03d}", f"c{c}", name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="latin-1") as f:
                f.write(text)
        written[lang] = copies
    for rel, (text, lang, *_counts) in EDGE_CASES.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        written[lang] = written.get(lang, 0) + 1
    return written
