#!/usr/bin/env python3
"""Core pipeline benchmark (`make bench`): records/s journaled by ingestd with
an fsync per round, records/s through to the archive, end-to-end latency
percentiles and ingestd's memory. Prints a Markdown table for
docs/performance.md. Not a test: it asserts nothing, it measures."""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from omni import Pipeline, archive_line_count, binary, cpu_seconds  # noqa: E402


def vm(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) // 1024
    return 0


class AnonPeak:
    """Peak anonymous memory (RssAnon) of processes, sampled every 20 ms in
    a thread: the daemons' own memory, without the pages of LMDB maps and
    files that the kernel holds for them and can take back (VmHWM counts
    those too)."""

    def __init__(self, *pids):
        self.pids, self.peak = pids, {pid: 0 for pid in pids}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.done.wait(0.02):
            for pid in self.pids:
                try:
                    self.peak[pid] = max(self.peak[pid], vm(pid, "RssAnon"))
                except OSError:
                    pass

    def stop(self):
        self.done.set()
        self.thread.join()
        return self.peak


def histogram_quantile(metrics, name, q, before=None):
    """Upper bucket bound under which a fraction q of the observations fall;
    with `before` (an earlier scrape), of the observations made since."""
    before = before or {}
    buckets = sorted((float(k.split('le="')[1].split('"')[0]), v - before.get(k, 0))
                     for k, v in metrics.items() if k.startswith(name + "_bucket") and 'le="+Inf"' not in k)
    count = next((k for k in metrics if k.startswith(name + "_count")), "")
    total = metrics.get(count, 0) - before.get(count, 0)
    if not total:
        return float("nan")
    for bound, count in buckets:
        if count >= q * total:
            return bound
    return float("inf")


def journal_rate(p, records, senders, size):
    """Records/s p's ingestd journals: `senders` omni-loadgen build their
    share of `records` first (--preencode) and then only send; the rate is
    over the sending, from the first sender's first record to the last
    sender's last acknowledgement. Returns (records, seconds, wall seconds
    from the launch, encode seconds, ingestd's CPU seconds, its RssAnon peak
    in MiB)."""
    per = records // senders
    cpu0 = cpu_seconds(p.ingestd.proc.pid)
    start = time.monotonic()
    procs = [subprocess.Popen([binary("omni-loadgen"), f"--intake={p.intake}", f"--count={per}",
                               f"--size={size}B", f"--seed={s}", "--kind=metric", "--batch=1000",
                               "--window=16", "--preencode"], stdout=subprocess.PIPE, text=True)
             for s in range(senders)]
    peak = 0
    while any(x.poll() is None for x in procs):
        peak = max(peak, vm(p.ingestd.proc.pid, "RssAnon"))
        time.sleep(0.05)
    wall = time.monotonic() - start
    assert all(x.returncode == 0 for x in procs), "omni-loadgen failed"
    res = [dict(kv.split("=", 1) for kv in x.stdout.read().split() if "=" in kv) for x in procs]
    first = min(float(r["started"]) for r in res)
    elapsed = max(float(r["started"]) + float(r["seconds"]) for r in res) - first
    encode = max(float(r["encode_seconds"]) for r in res)
    total = per * senders
    assert p.ingestd.metrics()["omni_ingestd_records_accepted_total"] == total
    return total, elapsed, wall, encode, cpu_seconds(p.ingestd.proc.pid) - cpu0, peak


def loadgen(p, count, size, seed, extra=()):
    out = subprocess.run([binary("omni-loadgen"), f"--intake={p.intake}", f"--count={count}",
                          f"--size={size}B", f"--seed={seed}", "--kind=metric", *extra],
                         capture_output=True, text=True, check=True)
    return dict(kv.split("=", 1) for kv in out.stdout.split() if "=" in kv)


def main():
    ap = argparse.ArgumentParser()
    # 2 M: the archive phase then passes the first merge of recent ids (at
    # 1 Mi ids), so its rate includes what the id tree costs.
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--senders", type=int, default=2)
    ap.add_argument("--latency-rate", type=int, default=100_000,
                    help="records/s for the latency phase")
    ap.add_argument("--journal-only", action="store_true",
                    help="phase 1 only (intake: validation, id check, journal), e.g. to compare "
                         "two ingestd builds side by side with OMNI_BIN")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="omni-bench-")
    rows = []
    try:
        # 1. Journal only: no writer connected, so ingestd only validates and journals.
        # The senders build their records first (--preencode) and then only send:
        # the rate is over the sending, from the first sender's first record to
        # the last sender's last acknowledgement (each ACK follows an fsync).
        p = Pipeline(work, writers=("archive",), journal_max="8G")
        p.ingestd.start()
        total, elapsed, wall, encode, cpu, peak = journal_rate(p, args.records, args.senders,
                                                               args.size)
        m = p.ingestd.metrics()
        commits = m["omni_ingestd_journal_commits_total"]
        rows.append(("journaled (validate + LMDB append + fsync per round)",
                     f"{total / elapsed:,.0f} records/s",
                     f"{total} × {args.size} B from {args.senders} senders, sent and acknowledged in "
                     f"{elapsed:.2f} s (records built beforehand, up to {encode:.2f} s; "
                     f"{wall:.2f} s in all from the senders' launch = {total / wall:,.0f} records/s), "
                     f"{commits:.0f} fsynced commits; ingestd used {cpu:.2f} CPU s = "
                     f"{total / cpu:,.0f} records per CPU second; memory peak {peak} MiB own (RssAnon)"))
        if args.journal_only:
            p.stop()
            return print_rows(rows)
        # 2. Through to the archive: archiverd (default settings) drains the
        # journal. Timed by ingestd's acknowledged counter, which is cheap to
        # poll, from archiverd's first acknowledged batch; the archive's lines
        # are counted once at the end.
        icpu = cpu_seconds(p.ingestd.proc.pid)
        archiver = p.archiverd().start(wait=False)
        anon = AnonPeak(archiver.proc.pid)
        first, elapsed = p.time_drain("archive", total, timeout=900)
        archiver_anon = anon.stop()[archiver.proc.pid]
        lines = archive_line_count(p.archive_dir)
        assert lines == total, f"{lines} lines archived, expected {total}"
        acpu = cpu_seconds(archiver.proc.pid)
        icpu = cpu_seconds(p.ingestd.proc.pid) - icpu
        merges = archiver.metrics().get("omni_archiverd_archive_id_merges_total", 0)
        rows.append(("archived (delivery + JSON Lines + fsync + id index)",
                     f"{(total - first) / elapsed:,.0f} records/s",
                     f"{total - first:,.0f} records drained from the journal in {elapsed:.2f} s after "
                     f"the first batch of {first:,.0f}; ingestd (delivery) used {icpu:.2f} CPU s; "
                     f"archiverd used {acpu:.2f} CPU s in all = "
                     f"{total / acpu:,.0f} records per CPU second; {merges:.0f} merges of recent "
                     f"ids into the id tree; memory peak {archiver_anon} MiB own (RssAnon), "
                     f"{vm(archiver.proc.pid, 'VmHWM')} MiB with mapped files (VmHWM)"))
        # 3. Steady state, all together: loadgen -> ingestd -> archiverd, latency.
        start = time.monotonic()
        icpu = cpu_seconds(p.ingestd.proc.pid)
        anon = AnonPeak(p.ingestd.proc.pid, archiver.proc.pid)
        before = p.ingestd.metrics()
        res = loadgen(p, args.records // 2, args.size, 99, ("--batch=1000",))
        p.wait_acked("archive", total + args.records // 2, 900, 0.01)
        elapsed = time.monotonic() - start
        peaks = anon.stop()
        icpu = cpu_seconds(p.ingestd.proc.pid) - icpu
        m = p.ingestd.metrics()
        lat = "end_to_end p50 ≤ {:.4g} s, p99 ≤ {:.4g} s".format(
            histogram_quantile(m, "omni_ingestd_end_to_end_seconds", 0.5, before),
            histogram_quantile(m, "omni_ingestd_end_to_end_seconds", 0.99, before))
        rows.append(("steady state loadgen → ingestd → archive",
                     f"{(args.records // 2) / elapsed:,.0f} records/s",
                     f"{lat} (per ACK, bucket bounds), ingestd used {icpu:.2f} CPU s, "
                     f"memory peak (RssAnon) ingestd "
                     f"{peaks[p.ingestd.proc.pid]} MiB, archiverd {peaks[archiver.proc.pid]} MiB "
                     f"(ingestd VmHWM with its journal map {vm(p.ingestd.proc.pid, 'VmHWM')} MiB), "
                     f"loadgen rate {float(res.get('rate', 0)):,.0f}/s"))
        # 4. Latency under a load the pipeline keeps up with: a fixed rate.
        done = total + args.records // 2
        before = p.ingestd.metrics()
        count = args.latency_rate * 5
        loadgen(p, count, args.size, 7, ("--batch=1000", f"--rate={args.latency_rate}"))
        p.wait_acked("archive", done + count, 900, 0.01)
        m = p.ingestd.metrics()
        rows.append((f"latency at {args.latency_rate:,} records/s",
                     f"p50 ≤ {histogram_quantile(m, 'omni_ingestd_end_to_end_seconds', 0.5, before):.4g} s, "
                     f"p99 ≤ {histogram_quantile(m, 'omni_ingestd_end_to_end_seconds', 0.99, before):.4g} s",
                     f"{count:,} records sent at a fixed rate by one omni-loadgen (batches of 1000), "
                     f"received by ingestd → acknowledged by archiverd (fsynced), per ACK, as "
                     f"bucket bounds of ingestd's end_to_end_seconds histogram"))
        p.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_rows(rows)


def print_rows(rows):
    print("| measure | rate | details |\n|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
