#!/usr/bin/env python3
"""What a tap subscriber costs ingestd, old build against new, side by side in one run.

ingestd's tap moved to a thread of its own (the loop hands publications over an inproc pipe
instead of sending on the XPUB itself): this measures, for each build given, ingestd
journaling --records records (bench/run.py's journal_rate: omni-loadgen senders with
--preencode, an fsync per round) while a subscriber to everything reads the tap as fast as
it can (or to a --topic no record has: the tap's own cost), alternating the builds --runs times: records/s, ingestd's CPU seconds, and how many
records the subscriber received (the rest were dropped at its 10,000-message queue, or
counted in tap_messages_behind_total on the new build).

    tools/with-test-services.sh bench/tap.py --bin old=/path/to/old/build/bin \\
        --bin new=build/bin [--records 400000] [--runs 3]

Not a test: it measures."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# The subscriber: counts whole messages until told to stop, then prints the count
SUBSCRIBER = r"""
import sys, zmq
ctx = zmq.Context()
s = ctx.socket(zmq.SUB)
s.setsockopt(zmq.RCVHWM, 0)
s.setsockopt(zmq.SUBSCRIBE, sys.argv[3].encode())
s.connect(sys.argv[1])
stop = ctx.socket(zmq.PULL)
stop.bind(sys.argv[2])
print("ready", flush=True)
poller = zmq.Poller()
poller.register(s, zmq.POLLIN)
poller.register(stop, zmq.POLLIN)
n = 0
while True:
    ready = dict(poller.poll())
    if s in ready:
        while True:
            try:
                s.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            n += 1
    if stop in ready:
        stop.recv()
        break
print(n, flush=True)
"""


def side(args):
    """One run on OMNI_BIN's build; prints a JSON line."""
    sys.path.insert(0, HERE)
    sys.path.insert(0, os.path.join(HERE, "..", "tests"))
    import zmq
    from omni import Pipeline, wait_until
    from run import journal_rate
    work = tempfile.mkdtemp(prefix="omni-bench-tap-")
    p = Pipeline(work, writers=("archive",))
    try:
        p.ingestd.start()
        stop_at = f"ipc://{work}/stop"
        sub = subprocess.Popen([sys.executable, "-c", SUBSCRIBER, p.tap, stop_at, args.topic],
                               stdout=subprocess.PIPE, text=True)
        assert sub.stdout.readline().strip() == "ready"
        wait_until(lambda: p.ingestd.metrics().get("omni_ingestd_tap_subscriptions", 0) >= 1, 10,
                   "the subscription")
        total, elapsed, _, _, cpu, peak = journal_rate(p, args.records, args.senders, args.size)
        # What reached the subscriber: wait until its count stops growing
        metrics = p.ingestd.metrics()
        time.sleep(1.0)  # the subscriber drains its queue; there is no event for "done"
        ctx = zmq.Context.instance()
        s = ctx.socket(zmq.PUSH)
        s.connect(stop_at)
        s.send(b"stop")
        received = int(sub.stdout.readline())
        sub.wait(10)
        s.close(0)
        print(json.dumps({"rate": total / elapsed, "cpu": cpu, "peak_mib": peak,
                          "received": received, "records": total,
                          "behind": metrics.get("omni_ingestd_tap_messages_behind_total", 0)}))
    finally:
        p.stop()
        subprocess.run(["rm", "-rf", work])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", action="append", default=[], metavar="LABEL=DIR",
                    help="a build's bin directory (repeat: one per side)")
    ap.add_argument("--records", type=int, default=400_000)
    ap.add_argument("--senders", type=int, default=2)
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--topic", default="",
                    help="what the subscriber subscribes to ('' everything; a topic no record "
                         "has: the tap's own cost, nothing sent)")
    ap.add_argument("--side", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        return side(args)
    sides = [b.split("=", 1) for b in args.bin] or [["this", os.path.join(HERE, "..", "build",
                                                                           "bin")]]
    results = {label: [] for label, _ in sides}
    for run in range(args.runs):
        # alternated, reversed every other run: both sides see the same load
        for label, path in (sides if run % 2 == 0 else sides[::-1]):
            out = subprocess.run([sys.executable, __file__, "--side", f"--records={args.records}",
                                  f"--topic={args.topic}",
                                  f"--senders={args.senders}", f"--size={args.size}"],
                                 env=dict(os.environ, OMNI_BIN=os.path.abspath(path)),
                                 capture_output=True, text=True, check=True)
            results[label].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"run {run + 1} {label}: {results[label][-1]}", file=sys.stderr)
    print("| build | records/s journaled | ingestd CPU s | RssAnon peak MiB | "
          "received by the subscriber | tap_messages_behind |")
    print("|---|---|---|---|---|---|")
    for label, rs in results.items():
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        print(f"| {label} | {med['rate']:,.0f} | {med['cpu']:.2f} | {med['peak_mib']:.0f} | "
              f"{med['received']:,.0f} of {med['records']:,.0f} | {med['behind']:,.0f} |")


if __name__ == "__main__":
    main()
