#!/usr/bin/python3
"""Benchmark of `collectord git`: commits/s on a generated repository against
`git log --all --numstat --no-renames` on the same repository.

The repository (default 10,000 commits) is made with `git fast-import`:
a few thousand text files in nested directories, each commit changing 1-6 of
them (a few lines each, sometimes a new or deleted file, sometimes a binary
file), a merge of a side branch every 50 commits, then `git gc` so that both
readers see one pack, as in a real clone.

collectord sends to a fake ingestd (a ZeroMQ ROUTER in this process that
acknowledges every batch at once and counts the records), so the figure is
the collector's own cost: walking, diffing, encoding, sending.

    bench/git_collector.py [--commits N] [--runs R] [--keep DIR] [--repo PATH]
                           [--small] [--no-gc] [--bin NAME=DIR ...] [--threads T ...]

--small makes files of 5-40 lines (200,000 commits in ~4 minutes), --no-gc
keeps fast-import's pack, --bin also runs another build (e.g. the one before
a change) in the same rounds: git, then each build, every round. Prints
one line per round (wall and CPU seconds, peak RSS and peak RssAnon of each
process, load average) and the medians of the rounds; exits 1 when
collectord's median wall time is more than 1.5 x git's or its peak RSS
(highest of the rounds) passes git's. On a busy machine, compare the CPU
seconds too: they depend less on what else runs."""
import argparse
import os
import random
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

import msgpack
import zmq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("OMNI_BIN") or os.path.join(ROOT, "build", "bin")
TARGET = 1.5


def make_repo(repo, commits, seed=1, small=False, gc=True):
    """A repository of `commits` commits made by git fast-import, streamed
    to it as made. `small`: files of 5-40 lines instead of 20-400, so that a
    history of 200,000 commits is made in minutes (the cost measured is per
    commit and per changed file, not per line)."""
    rng = random.Random(seed)
    subprocess.run(["git", "init", "-q", "-b", "main", repo], check=True)
    fi = subprocess.Popen(["git", "-C", repo, "fast-import", "--quiet"], stdin=subprocess.PIPE)
    lo, hi = (5, 40) if small else (20, 400)
    words = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi "
             "omicron pi rho sigma tau upsilon phi chi psi omega").split()

    def line():
        return " ".join(rng.choice(words) for _ in range(rng.randint(2, 12)))

    dirs = [f"src/mod{i}/sub{j}" for i in range(20) for j in range(5)]
    files = {}          # path -> list of lines (main's state)
    for i in range(1500):
        files[f"{rng.choice(dirs)}/file{i}.c"] = [line() for _ in range(rng.randint(lo, hi))]

    out = []
    mark = [0]

    def emit(s):
        out.append(s if isinstance(s, bytes) else s.encode())
        if len(out) > 4096:
            fi.stdin.write(b"".join(out))
            out.clear()

    def blob_inline(path, data):
        emit(f"M 100644 inline {path}\ndata {len(data)}\n")
        emit(data)
        emit("\n")

    t = 1_600_000_000
    side_base = None
    side_files = {}
    for n in range(commits):
        t += rng.randint(60, 7200)
        mark[0] += 1
        merge = n > 0 and n % 50 == 0 and side_base is not None
        on_side = not merge and n % 50 >= 40 and n > 0
        ref = "refs/heads/side" if on_side else "refs/heads/main"
        if on_side and n % 50 == 40:
            # side starts from main's tip
            emit(f"reset refs/heads/side\nfrom :{mark[0] - 1}\n\n")
            side_base = mark[0] - 1
            side_files = {}
        emit(f"commit {ref}\nmark :{mark[0]}\n")
        emit(f"author Dev{rng.randint(1, 40)} <dev{rng.randint(1, 40)}@example.com> {t} +0100\n")
        emit(f"committer CI <ci@example.com> {t} +0000\n")
        msg = f"change {n}: {line()}\n\n{line()}\n"
        emit(f"data {len(msg.encode())}\n{msg}")
        if merge:
            emit(f"merge refs/heads/side\n")
            for path, lines in side_files.items():
                files[path] = lines
                blob_inline(path, ("\n".join(lines) + "\n").encode())
            side_files = {}
        elif n > 0:
            target = side_files if on_side else files
            for _ in range(rng.randint(1, 6)):
                r = rng.random()
                if r < 0.05:
                    path = f"{rng.choice(dirs)}/new{n}_{rng.randint(0, 999)}.c"
                    target[path] = [line() for _ in range(rng.randint(5, hi // 2))]
                elif r < 0.07 and not on_side and len(files) > 100:
                    path = rng.choice(list(files))
                    del files[path]
                    emit(f"D {path}\n")
                    continue
                elif r < 0.09:
                    path = f"assets/img{rng.randint(0, 50)}.bin"
                    data = bytes(rng.randint(0, 255) for _ in range(rng.randint(100, 3000)))
                    blob_inline(path, data)
                    continue
                else:
                    path = rng.choice(list(files))
                    lines = list(target.get(path, files[path]))
                    for _ in range(rng.randint(1, 8)):
                        k = rng.randrange(len(lines) + 1)
                        if rng.random() < 0.3 and lines:
                            del lines[min(k, len(lines) - 1)]
                        elif rng.random() < 0.5 and k < len(lines):
                            lines[k] = line()
                        else:
                            lines.insert(k, line())
                    target[path] = lines
                blob_inline(path, ("\n".join(target[path]) + "\n").encode())
        else:
            for path, lines in files.items():
                blob_inline(path, ("\n".join(lines) + "\n").encode())
        emit("\n")
    emit("tag v1.0\nfrom refs/heads/main\ntagger CI <ci@example.com> %d +0000\ndata 8\nrelease\n\n" % t)
    fi.stdin.write(b"".join(out))
    fi.stdin.close()
    if fi.wait() != 0:
        sys.exit("git fast-import failed")
    if gc:
        subprocess.run(["git", "-C", repo, "gc", "-q"], check=True)
    else:
        # fast-import's packs as they are; the commit-graph git gc would write
        subprocess.run(["git", "-C", repo, "commit-graph", "write", "--reachable"], check=True)
    subprocess.run(["git", "-C", repo, "reset", "-q", "--hard", "main"], check=True)


class FakeIngestd:
    """Acknowledges every BATCH at once; counts records by kind."""

    def __init__(self):
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.records = 0
        self.commits = 0
        self.stop = False
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stop:
            if not self.sock.poll(100):
                continue
            frames = self.sock.recv_multipart()
            peer, sig, cmd, seq, recs = frames[0], frames[1], frames[2], frames[3], frames[4:]
            self.records += len(recs)
            for r in recs:
                # cheap kind check without decoding everything
                if b"git.commit" in r[:80]:
                    self.commits += 1
            self.sock.send_multipart([peer, b"OI/1", b"ACK", seq, struct.pack(">I", len(recs)),
                                      struct.pack(">I", 0)])

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close(0)


def run_measured(cmd, **kw):
    """Runs `cmd`: (wall s, CPU s, peak RSS MiB, peak RssAnon MiB, returncode).
    Peak RSS is the kernel's VmHWM (ru_maxrss from wait4): it counts the pack
    files' mapped pages that were touched. RssAnon, the process's own heap
    and stacks, is sampled from /proc/PID/status every 10 ms."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, **kw)
    anon = [0]
    done = threading.Event()

    def sample():
        path = f"/proc/{proc.pid}/status"
        while not done.is_set():
            try:
                with open(path) as f:
                    for line in f:
                        if line.startswith("RssAnon:"):
                            anon[0] = max(anon[0], int(line.split()[1]))
                            break
            except (OSError, ValueError):
                pass
            done.wait(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    # Popen's own wait would reap without the rusage
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    done.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.stdout:
        proc.stdout.close()
    return (wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, anon[0] / 1024,
            proc.returncode)


def time_git(repo):
    """(wall, CPU, peak RSS, peak RssAnon) of git log --all --numstat --no-renames."""
    wall, cpu, rss, anon, rc = run_measured(
        ["git", "-C", repo, "log", "--all", "--numstat", "--no-renames"],
        stdout=subprocess.DEVNULL)
    if rc != 0:
        sys.exit(f"git log failed ({rc})")
    return wall, cpu, rss, anon


def time_collectord(repo, fake, state_dir, extra=(), mode="git"):
    """(wall, CPU, peak RSS, peak RssAnon, git.commit records) of one full
    collection (`collectord MODE`: any mode that reads a repository;
    fake.records counts what it sent)."""
    shutil.rmtree(state_dir, ignore_errors=True)
    before = fake.commits
    with tempfile.TemporaryFile() as err:
        wall, cpu, rss, anon, rc = run_measured(
            [os.path.join(BIN, "collectord"), mode, "--once", "--progress=off",
             f"--intake={fake.endpoint}", f"--state-dir={state_dir}", "--log-level=warn",
             *extra, repo], stdout=subprocess.DEVNULL, stderr=err)
        if rc != 0:
            err.seek(0)
            sys.exit(f"collectord failed ({rc}):\n{err.read().decode()[-3000:]}")
    return wall, cpu, rss, anon, fake.commits - before


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--commits", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", help="make (or reuse) the repository in this directory")
    ap.add_argument("--repo", help="benchmark this existing repository instead")
    ap.add_argument("--small", action="store_true",
                    help="small files (5-40 lines): for histories of 100,000+ commits")
    ap.add_argument("--no-gc", action="store_true",
                    help="keep fast-import's packs (git gc of 200,000 commits takes long)")
    ap.add_argument("--bin", action="append", default=[],
                    help="NAME=DIR: also run DIR/collectord as NAME (e.g. an older build)")
    ap.add_argument("--threads", type=int, nargs="*",
                    help="compare these --threads values (default: collectord's default)")
    args = ap.parse_args()
    global BIN

    tmp = tempfile.mkdtemp(prefix="bench-gitcol-")
    try:
        if args.repo:
            repo = args.repo
        else:
            repo = args.keep or os.path.join(tmp, "repo")
            if not os.path.isdir(os.path.join(repo, ".git")):
                t0 = time.monotonic()
                make_repo(repo, args.commits, small=args.small, gc=not args.no_gc)
                print(f"repository: {repo}, made in {time.monotonic() - t0:.1f}s")
        n = int(subprocess.run(["git", "-C", repo, "rev-list", "--all", "--count"],
                               capture_output=True, text=True, check=True).stdout)
        print(f"commits: {n} (git rev-list --all --count)")
        fake = FakeIngestd()
        state_dir = os.path.join(tmp, "state")
        builds = [("", BIN)] + [tuple(b.split("=", 1)) for b in args.bin]
        configs = []
        for label, bindir in builds:
            tag = f" [{label}]" if label else ""
            if args.threads:
                configs += [(f"collectord --threads={t}{tag}", bindir, [f"--threads={t}"])
                            for t in args.threads]
            else:
                configs.append((f"collectord{tag}", bindir, []))
        time_git(repo)  # warm the page cache for both
        load_before = os.getloadavg()
        # every round runs git and each build in turn (alternating), so that
        # load from elsewhere falls on all of them alike
        runs = {"git": []}
        for r in range(args.runs):
            g = time_git(repo)
            runs["git"].append(g)
            line = f"run {r + 1}: git log {g[0]:.2f}s (cpu {g[1]:.2f}s, {g[2]:.0f}/{g[3]:.0f} MiB)"
            for name, bindir, extra in configs:
                BIN = bindir
                wall, cpu, rss, anon, sent = time_collectord(repo, fake, state_dir, extra)
                assert sent == n, f"collectord sent {sent} git.commit records for {n} commits"
                runs.setdefault(name, []).append((wall, cpu, rss, anon))
                line += f" | {name} {wall:.2f}s (cpu {cpu:.2f}s, {rss:.0f}/{anon:.0f} MiB)"
            print(line + f" | load {os.getloadavg()[0]:.1f}", flush=True)
        fake.close()

        def summary(rows):
            """Median wall and CPU of the rounds, highest memory (it varies little)."""
            return (statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows),
                    max(r[2] for r in rows), max(r[3] for r in rows))

        g_wall, g_cpu, g_rss, g_anon = summary(runs["git"])
        print(f"median of {args.runs}, {n} commits, {os.cpu_count()} CPUs, load average "
              f"(1, 5, 15 min) {' '.join(f'{x:.1f}' for x in load_before)} before, "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} after; "
              f"memory: peak RSS (VmHWM) / peak RssAnon, MiB (highest of the rounds):")
        print(f"  git log --all --numstat --no-renames: {n / g_wall:8,.0f} commits/s "
              f"(wall {g_wall:.2f}s, cpu {g_cpu:.2f}s), memory {g_rss:.0f} / {g_anon:.0f}")
        ok = True
        for name, _, _ in configs:
            wall, cpu, rss, anon = summary(runs[name])
            ratio = wall / g_wall
            good = ratio <= TARGET and rss <= g_rss
            ok &= good
            print(f"  {name + ':':37} {n / wall:8,.0f} commits/s (wall {wall:.2f}s, cpu "
                  f"{cpu:.2f}s): {ratio:.2f}x git's time, {cpu / g_cpu:.2f}x its cpu "
                  f"(target <= {TARGET}x); memory {rss:.0f} / {anon:.0f} "
                  f"= {rss / g_rss:.2f}x git's peak (target <= 1x) {'PASS' if good else 'FAIL'}")
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
