"""Builds a benchmark's C program (bench/<name>.c) against the project's
library (build/lib/libomni.a, made by `make`), with the packages every
daemon links and any the program needs besides."""
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CORE_PKGS = ["libzmq", "libczmq", "msgpack", "lmdb", "yaml-0.1", "libmicrohttpd", "libcrypto",
             "libpq"]


def build(work, name, sources=(), pkgs=()):
    """Compiles bench/<name>.c with `sources` (paths from the repository's
    root) into <work>/<name>; returns the program's path."""
    out = os.path.join(work, name)
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", *pkgs, *CORE_PKGS],
                           capture_output=True, text=True, check=True).stdout.split()
    includes = ["-I" + ROOT]
    # Sections and --gc-sections as the Makefile links programs: the classes'
    # self-tests (which call the test-support library) are dropped
    subprocess.run(["cc", "-std=c11", "-D_GNU_SOURCE", "-O2", "-ffunction-sections",
                    "-fdata-sections", "-Wl,--gc-sections", *includes, "-o", out,
                    os.path.join(HERE, name + ".c"), *(os.path.join(ROOT, s) for s in sources),
                    # the classes' self-tests use the test-support library
                    "-Wl,--start-group", os.path.join(ROOT, "build", "lib", "libomnitest.a"),
                    os.path.join(ROOT, "build", "lib", "libomni.a"), "-Wl,--end-group", *flags,
                    "-lpthread", "-lm"],
                   check=True)
    return out
