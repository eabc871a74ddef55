"""collectord code through the whole pipeline (collectord -> ingestd ->
archiverd and relationald), its numbers compared as stored, in the archive
and in PostgreSQL's code_stats, with cloc's (Debian's cloc, run on the same
files):

- a repository built here, counted exactly (numbers worked out by hand, and
  cloc's the same);
- a tree of every language collectord counts (tests/code_tree.py: each
  language's comment styles, and the cases cloc's regular expressions decide
  unlike a parser), per language files, blank, comment and code lines within
  1 % of cloc's, and no language one counts that the other does not;
- a clone of this repository, the same, and the system's C headers (a large
  real tree, code and blank within 2 %: cloc's C++ filter and ours part on
  a few unusual headers' comments)."""
import json
import os
import shutil
import subprocess

import pytest

from code_tree import EDGE_CASES, write_tree
from omni import ROOT, scalar
from test_collectors import MODES, archived, clean_env, drained, rows, run_collector, start

pytestmark = pytest.mark.skipif("code" not in MODES, reason="collectord without code")
# collectord's default --exclude-dir, for cloc
DEFAULT_EXCLUDE = ("vendor,node_modules,third_party,third-party,thirdparty,bower_components,"
                   "dist,build,.git,.hg,.svn,__pycache__,.venv,venv,.tox")


def _git(repo, *args):
    env = clean_env(GIT_CONFIG_NOSYSTEM="1", HOME=repo + ".home", GIT_AUTHOR_NAME="Ann",
                    GIT_AUTHOR_EMAIL="ann@example.com", GIT_COMMITTER_NAME="Cy",
                    GIT_COMMITTER_EMAIL="cy@example.com",
                    GIT_AUTHOR_DATE="@1700000000 +0000", GIT_COMMITTER_DATE="@1700000000 +0000")
    os.makedirs(repo + ".home", exist_ok=True)
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True,
                          text=True).stdout


# path -> (content, language, blank, comment, code), by cloc's rules
CODE_FILES = {
    "src/app.c": ("/*\n * header\n */\n#include <stdio.h>\n\nint main (void)\n{\n"
                  "    // comment\n    puts (\"/* no */ // no\");\n  \t\n    return 0; // c\n}\n",
                  "C", 2, 4, 6),
    "src/app.h": ("#pragma once\n/** doc */\nint f (void);\n", "C/C++ Header", 0, 1, 2),
    "tool.py": ("#!/usr/bin/env python3\n\"\"\"Doc.\n\nMore.\n\"\"\"\n# c\n"
                "s = '# no'  # c\n\ndef f():\n    '''x'''\n    return \"\"\"a\nb\"\"\"\n",
                "Python", 2, 6, 4),
    # a # line in a here-document is a comment to cloc
    "run.sh": ("#!/bin/sh\n# c\necho \"# no\" # c\ncat <<EOF\n# text\nEOF\n   \n",
               "Bourne Shell", 1, 2, 4),
    "db.sql": ("-- c\nSELECT '-- no', /* c */ 1;\n/*\n c\n*/\n", "SQL", 0, 4, 1),
    "Makefile": ("# c\nall:\n\techo hi # c\n", "make", 0, 1, 2),
    "page.html": ("<p>\n<!-- c\n -->\n</p>\n", "HTML", 0, 2, 2),
    "conf.yaml": ("# c\na: 1 # c\nb: \"#\"\n", "YAML", 0, 1, 2),
    "init.lua": ("--[[ c\n]]\nlocal s = \"--\" -- c\n", "Lua", 0, 2, 1),
    # block comments do not nest for cloc: " b */" is code
    "lib.rs": ("/* a /* nested */ b */\nfn f() {} // c\n", "Rust", 0, 0, 2),
    "doc/guide.adoc": ("= Guide\n\n////\nhidden\n////\n// c\ntext\n", "AsciiDoc", 1, 4, 2),
    "po/de.po": ("# translator\n#, fuzzy\nmsgid \"a\"\nmsgstr \"b\"\n", "PO File", 0, 1, 3),
    "fix.patch": ("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-old\n+new\n", "diff", 0, 2, 3),
    "App.csproj": ("<Project>\n  <!-- c -->\n</Project>\n", "MSBuild script", 0, 1, 2),
    "App.sln": ("# Visual Studio\nProject(\"x\")\nEndProject\n", "Visual Studio Solution", 0, 1, 2),
    "lib.def": ("; c\nEXPORTS\n  f\n", "Windows Module Definition", 0, 1, 2),
    "tool.perl": ("print 1; # c\n# c\n", "Perl", 0, 1, 1),
    "vendor/dep.c": ("int v;\n", None, 0, 0, 0),
    "web/node_modules/x.js": ("var x;\n", None, 0, 0, 0),
    "README": ("hello\n", None, 0, 0, 0),
    "empty.c": ("", None, 0, 0, 0),
}


def _code_repo(path):
    os.makedirs(path)
    _git(path, "init", "-q", "-b", "main")
    for name, (text, *_rest) in CODE_FILES.items():
        full = os.path.join(path, name)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)
    with open(os.path.join(path, "ignored.c"), "w") as f:
        f.write("int ignored;\n")
    with open(os.path.join(path, ".gitignore"), "w") as f:
        f.write("ignored.c\n")
    _git(path, "add", "-A")
    _git(path, "commit", "-q", "-m", "code")
    return _git(path, "rev-parse", "HEAD").strip()


def _cloc(path, repo, exclude=DEFAULT_EXCLUDE):
    """cloc's per language {files, blank, comment, code}."""
    out = subprocess.run(["cloc", "--json", "--quiet", *(["--vcs=git"] if repo else []),
                          "--skip-uniqueness", f"--exclude-dir={exclude}", "."], cwd=path,
                         capture_output=True, text=True, check=True)
    data = json.loads(out.stdout or "{}")
    return {k: {"files": v["nFiles"], "blank": v["blank"], "comment": v["comment"],
                "code": v["code"]} for k, v in data.items() if k not in ("header", "SUM")}


def _stored(p, src, dsn=None):
    """The per-language totals as stored: the archive's code.stats records
    of `src` and, with a database, code_stats' rows (which must agree)."""
    drained(p, timeout=600)
    mine = {s["body"]["language"]: {k: s["body"][k] for k in ("files", "blank", "comment", "code")}
            for s in archived(p, "code.stats") if s["src"] == src and "path" not in s["body"]}
    if dsn:
        table = {r[0]: dict(zip(("files", "blank", "comment", "code"), r[1:])) for r in rows(
            dsn, "SELECT language, files, blank, comment, code FROM code_stats c "
                 "JOIN sources s ON s.id = c.source_id "
                 f"WHERE c.path IS NULL AND s.name = '{src}'")}
        assert table == mine
    return mine


def _compare(mine, cloc, tolerance, keys=("blank", "comment", "code"), same_files=True):
    report = [f"{lang:26} " + " ".join(f"{k} {mine.get(lang, {}).get(k)}/{cloc.get(lang, {}).get(k)}"
                                      for k in ("files", "blank", "comment", "code"))
              for lang in sorted(set(mine) | set(cloc))]
    print("\n".join(report))
    assert set(mine) == set(cloc), "\n".join(report)
    for lang in cloc:
        m, c = mine[lang], cloc[lang]
        if same_files:
            assert m["files"] == c["files"], "\n".join(report)
        for k in keys:
            assert abs(m[k] - c[k]) <= tolerance * c[k], (lang, k, "\n".join(report))


def test_code_exact_counts_in_archive_and_postgres(pipeline, pg_database, workdir):
    repo = os.path.join(workdir, "repo")
    sha = _code_repo(repo)
    # named by its origin, as the git collector names it
    subprocess.run(["git", "-C", repo, "remote", "add", "origin",
                    "https://bot@Example.ORG:8443/acme/code.git"], check=True)
    p = start(pipeline, pg_database)
    run_collector(p, "code", "--per-file", repo)
    drained(p)
    expected = {}
    for name, (_text, lang, blank, comment, code) in CODE_FILES.items():
        if lang:
            t = expected.setdefault(lang, {"files": 0, "blank": 0, "comment": 0, "code": 0})
            for k, v in zip(("files", "blank", "comment", "code"), (1, blank, comment, code)):
                t[k] += v
    # The hand-made numbers are cloc's
    assert _cloc(repo, True, exclude="vendor,node_modules") == expected
    stats = archived(p, "code.stats")
    assert _stored(p, "example.org/acme/code", pg_database) == expected
    per_file = {s["body"]["path"] for s in stats if "path" in s["body"]}
    assert per_file == {n for n, v in CODE_FILES.items() if v[1]}
    assert {s["body"]["rev"] for s in stats} == {sha}
    assert {s["ts"] for s in stats} == {1_700_000_000 * 10**9}
    assert {s["src"] for s in stats} == {"example.org/acme/code"}
    assert scalar(pg_database, "SELECT count(*) FROM code_stats WHERE path IS NOT NULL") \
        == len(per_file)
    assert rows(pg_database, "SELECT blank, comment, code FROM code_stats "
                             "WHERE path = 'tool.py'") == [(2, 6, 4)]
    # The same revision again: no new rows; a new commit: a new set
    run_collector(p, "code", repo)
    drained(p)
    assert scalar(pg_database, "SELECT count(*) FROM code_stats") == len(stats)
    with open(os.path.join(repo, "src/more.c"), "w") as f:
        f.write("int more;\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "more")
    run_collector(p, "code", repo)
    drained(p)
    assert rows(pg_database, "SELECT files, code FROM code_stats c WHERE language = 'C' "
                             f"AND path IS NULL AND rev <> '{sha}'") == [(2, 7)]


@pytest.mark.skipif(not shutil.which("cloc"), reason="cloc not installed")
def test_code_every_language_within_1_percent_of_cloc(pipeline, pg_database, workdir):
    tree = os.path.join(workdir, "tree")
    written = write_tree(tree, size=3)
    assert len(written) >= 240, len(written)
    p = start(pipeline, pg_database)
    run_collector(p, "code", "--per-file", f"--source={tree}", tree)
    mine = _stored(p, tree, pg_database)
    cloc = _cloc(tree, False)
    _compare(mine, cloc, 0.01)
    # Every language written was counted, as the language cloc names
    assert set(written) <= set(mine)
    # The cases cloc's rules decide unlike a parser: per file, as stored
    files = {r[0]: r[1:] for r in rows(
        pg_database, "SELECT path, language, blank, comment, code FROM code_stats "
                     "WHERE path LIKE 'edge/%'")}
    assert files == {path: (lang, b, c, k) for path, (_t, lang, b, c, k) in EDGE_CASES.items()}


@pytest.mark.skipif(not shutil.which("cloc"), reason="cloc not installed")
def test_code_this_checkout_within_1_percent_of_cloc(pipeline, pg_database, workdir):
    clone = os.path.join(workdir, "clone")
    subprocess.run(["git", "clone", "-q", ROOT, clone], check=True, env=clean_env())
    p = start(pipeline, pg_database)
    run_collector(p, "code", f"--source={clone}", clone)
    _compare(_stored(p, clone, pg_database), _cloc(clone, True), 0.01)
