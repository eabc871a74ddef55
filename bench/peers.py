#!/usr/bin/env python3
"""OmniAudit next to its peers into PostgreSQL, in one run, on one server
(`make bench` does not run it: it builds Telegraf first).

Time-series points: one generator (omni-loadgen's `metric` records, dumped
once) feeds
- Telegraf (built here with `go install` and the build tags its docs give for
  a small build: socket_listener, outputs.postgresql, parsers.influx): the
  points as influx lines over TCP, outputs.postgresql tuned to its best
  (batch 50,000, a buffer that holds every point), once with its default
  tables (no index) and once with a unique key on (tags, time);
- ingestd -> metricsd: the same records sent by omni-loadgen (same seed),
  journaled (fsync per round) and acknowledged only once committed; once
  per --metricsd-connections value (the best one counts in `ratios:`).

Test results (`ci.test`, about 213 bytes of JSON each): ingestd ->
relationald next to the Fluent Bit pgsql layout, a `(tag, time, data jsonb)`
table fed by COPY in chunks of 5,000 (plain, then with a unique and two
lookup indexes as relationald's table has). --suite-size N makes the
results builds of N results that run the same N tests, as a CI's suites do;
by default every result is a test of its own (what the totals of tests per
source find costliest: a new test each).

Each side gets a private database on the same server; a CHECKPOINT comes
before each. The clock runs from the first byte sent to the moment a
`count(*)` (polled the same way on every side) sees every row; row counts
must equal N exactly. CPU: the processes of each side and the PostgreSQL
backends of its database (/proc, sampled at the start and the end); WAL:
pg_current_wal_lsn before and after (server-wide: other sessions' writes
count too); size: every table and index of the database. Ends with

    ratios: metricsd/telegraf-keyed=X metricsd/telegraf-plain=Y relationald/jsonb=Z

PostgreSQL: $OMNI_TEST_PG_DSN's server or 127.0.0.1:5432. Not a test."""
import argparse
import io
import json
import os
import resource
import shutil
import statistics
import socket
import subprocess
import sys
import tempfile
import threading
import time

import msgpack
import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
import omni  # noqa: E402
from omni import Pipeline, binary, free_port, scratch_database, cpu_seconds as cpu_of  # noqa: E402

TELEGRAF_MODULE = "github.com/influxdata/telegraf/cmd/telegraf"
TELEGRAF_TAGS = "custom,inputs.socket_listener,outputs.postgresql,parsers.influx"
POLL_S = 0.2
#  Every side's connections alike: Telegraf's plugin is given this, and
#  libpq's default (sslmode=prefer) would put TLS on the other sides' data
#  only (about 2 % of PostgreSQL's CPU on the points side, measured)
NO_TLS = "?sslmode=disable"
#  metricsd's rows are counted in the table that holds them, as Telegraf's
#  are: the `points` view joins every point to its series (170 ms a count
#  at 1,000,000 points against 40 ms for points_data, measured), which
#  polled every POLL_S took a share of the cores from the side being timed
#  and added up to one such count to its clock
S_POINTS_COUNT = "SELECT count (*) FROM points_data"


# ---------------------------------------------------------------------------
# Measuring


def backends(admin, db):
    cur = admin.cursor()
    cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (db,))
    return [r[0] for r in cur.fetchall()]


class Side:
    """One side's clock, CPU, WAL and size, measured the same way for all."""

    def __init__(self, name, dsn, table_sql):
        self.name, self.dsn, self.table_sql = name, dsn, table_sql
        self.db = dsn.rsplit("/", 1)[1]
        self.admin = psycopg2.connect(dsn)
        self.admin.autocommit = True
        self.procs = {}  # name -> pid, the side's own processes
        self.extra_cpu = {}  # name -> seconds measured otherwise (exited children)
        self.waits = None

    def count(self):
        cur = self.admin.cursor()
        sql = self.table_sql
        if sql is None:  # every table of the database (Telegraf's: one per series name)
            cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            tables = [r[0] for r in cur.fetchall()]
            if not tables:
                return 0
            sql = "SELECT " + " + ".join(
                "(SELECT count (*) FROM \"%s\")" % t.replace('"', '""') for t in tables)
        cur.execute(sql)
        return cur.fetchone()[0] or 0

    def start(self):
        cur = self.admin.cursor()
        cur.execute("CHECKPOINT")
        cur.execute("SELECT pg_current_wal_lsn ()")
        self.lsn0 = cur.fetchone()[0]
        me = self.admin.get_backend_pid()
        self.pg0 = {pid: cpu_of(pid) for pid in backends(self.admin, self.db) if pid != me}
        self.restart()

    def restart(self):
        """The clock and the CPU counters start again (the backends those
        start() found): the input is ready now. From another thread."""
        self.pg0 = {pid: cpu_of(pid) for pid in self.pg0}
        self.cpu0 = {name: cpu_of(pid) for name, pid in self.procs.items()}
        self.t0 = time.monotonic()

    def watch(self, **more):
        """--waits: samples the side's threads and backends (and `more`,
        name=pid) from now to the end of the clock."""
        pids = dict(self.procs, **more)
        pids.update({f"postgres[{pid}]": pid for pid in self.pg0})
        self.waits = Waits(pids)
        self.waits.thread.start()

    def wait_rows(self, n, timeout, alive=None):
        """Polls count(*) until it reaches n; the end of the clock."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.count()
            if seen >= n:
                self.seconds = time.monotonic() - self.t0
                break
            if alive and not alive():
                raise SystemExit(f"{self.name}: a process died with {seen} of {n} rows")
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.name}: {seen} of {n} rows after {timeout} s")
            time.sleep(POLL_S)
        if self.waits:
            self.waits.end()
            self.waits.report(self.name)
        me = self.admin.get_backend_pid()
        self.pg_cpu = sum(cpu_of(pid) - self.pg0.get(pid, 0.0)
                          for pid in backends(self.admin, self.db) if pid != me)
        self.cpu = {name: cpu_of(pid) - self.cpu0.get(name, 0.0)
                    for name, pid in self.procs.items()}
        cur = self.admin.cursor()
        cur.execute("SELECT pg_current_wal_lsn () - %s::pg_lsn", (self.lsn0,))
        self.wal = int(cur.fetchone()[0])
        cur.execute("SELECT coalesce (sum (pg_total_relation_size (c.oid)), 0) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'm')")
        self.size = int(cur.fetchone()[0])
        #  metricsd's: points_data's index (its partitions'), whose leaves
        #  fill as the points come in key order or not (docs/performance.md)
        cur.execute("SELECT coalesce (sum (pg_relation_size (i.indexrelid)), 0) FROM pg_index i "
                    "WHERE to_regclass ('points_data') IS NOT NULL AND (i.indrelid = "
                    "to_regclass ('points_data') OR i.indrelid IN (SELECT inhrelid FROM "
                    "pg_inherits WHERE inhparent = to_regclass ('points_data')))")
        self.index = int(cur.fetchone()[0])
        self.rows = self.count()
        if self.rows != n:
            raise SystemExit(f"{self.name}: {self.rows} rows, expected exactly {n}")
        self.rate = n / self.seconds

    def close(self):
        self.admin.close()

    def line(self, unit):
        cpu = " ".join(f"{k}={v:.1f}" for k, v in {**self.cpu, **self.extra_cpu}.items())
        return (f"| {self.name} | {self.rate:,.0f} {unit}/s | {self.seconds:.2f} | {self.rows:,} "
                f"| {cpu} | {self.pg_cpu:.1f} | {self.wal / 2**20:,.0f} | "
                f"{self.size / 2**20:,.0f}"
                + (f" (points_data's index {self.index / 2**20:,.1f})" if self.index else "") + " |")


class Waits:
    """--waits: where a side's threads spend the clock. For every thread of
    the side's processes and of its PostgreSQL backends, the kernel's
    schedstat (time on a CPU, time runnable but waiting for one) between the
    generator's first send and the last row; the rest of the clock it slept.
    A sleeping thread's kernel function (wchan: a poll, a futex, an fsync's
    journal wait) is sampled every 25 ms to say what it slept on. On two
    cores, rate is CPU per record and how much of the clock the cores have
    work: the runnable column says whether the side ran out of cores, the
    sleeps whom it waited for."""

    def __init__(self, pids, interval=0.025):
        self.pids, self.interval = pids, interval  # name -> pid
        self.sleeps, self.samples = {}, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def tasks(self):
        for name, pid in list(self.pids.items()):
            try:
                tids = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in tids:
                try:
                    with open(f"/proc/{pid}/task/{tid}/comm") as f:
                        comm = f.read().strip()
                except OSError:
                    continue
                yield (name, f"{comm}:{tid}" if tid != str(pid) else "main"), f"/proc/{pid}/task/{tid}"

    def schedstat(self):
        out = {}
        for key, path in self.tasks():
            try:
                with open(path + "/schedstat") as f:
                    out[key] = [int(x) / 1e9 for x in f.read().split()[:2]]
            except (OSError, ValueError):
                pass
        return out

    @staticmethod
    def machine():
        with open("/proc/stat") as f:  # user nice system idle iowait irq softirq steal
            return [int(x) / os.sysconf("SC_CLK_TCK") for x in f.readline().split()[1:9]]

    def run(self):
        self.t0, self.at0, self.m0 = time.monotonic(), self.schedstat(), self.machine()
        while not self.stop.wait(self.interval):
            self.samples += 1
            for key, path in self.tasks():
                try:
                    with open(path + "/stat") as f:
                        if f.read().rsplit(")", 1)[1].split()[0] == "R":
                            continue
                    with open(path + "/wchan") as f:
                        where = f.read().strip() or "?"
                except (OSError, IndexError):
                    continue
                per = self.sleeps.setdefault(key, {})
                per[where] = per.get(where, 0) + 1
        self.clock, self.at1, self.m1 = time.monotonic() - self.t0, self.schedstat(), self.machine()

    def end(self):
        self.stop.set()
        if self.thread.ident:  # started (at the generator's first send)
            self.thread.join()

    def report(self, title):
        print(f"\n# where {title}'s threads were over {self.clock:.2f} s (on a CPU, runnable "
              "waiting for one, asleep: what on, sampled)")
        cores = [0.0, 0.0]
        for key in sorted(self.at1):
            run, queue = (self.at1[key][i] - self.at0.get(key, [0, 0])[i] for i in (0, 1))
            cores[0] += run
            cores[1] += queue
            if run < 0.02 * self.clock:
                continue  # an idle helper thread
            per = self.sleeps.get(key, {})
            n = sum(per.values()) or 1
            top = sorted(per.items(), key=lambda kv: -kv[1])[:3]
            print(f"#   {key[0]}/{key[1]}: cpu {run / self.clock:.0%}, runnable "
                  f"{queue / self.clock:.0%}, asleep on " + ", ".join(
                      f"{where} {k / n:.0%}" for where, k in top))
        print(f"#   all: {cores[0] / self.clock:.2f} cores busy, {cores[1] / self.clock:.2f} "
              "threads runnable on average")
        m = [(b - a) / self.clock for a, b in zip(self.m0, self.m1)]
        print(f"#   the machine (every process, in cores): user {m[0] + m[1]:.2f}, system "
              f"{m[2]:.2f}, interrupts {m[5] + m[6]:.2f}, steal {m[7]:.2f}, iowait {m[4]:.2f}, "
              f"idle {m[3]:.2f}")


def loadgen(args, kind, count, dump=None, intake=None, ready=None):
    """omni-loadgen, the one generator; returns its CPU seconds. With
    `ready` (and --preencode) it builds every record first and calls
    ready(cpu seconds spent building) when it is about to send the first:
    its side's clock starts there, as the other sides' input (influx lines,
    COPY text) is made before theirs."""
    pre = ready is not None and args.preencode
    cmd = [args.loadgen_bin, f"--kind={kind}", f"--count={count}", "--seed=1",
           "--src=bench", "--log-level=" + ("info" if pre else "warn"),
           f"--batch={args.loadgen_batch}"]
    cmd += [f"--size={args.size}"] if kind == "metric" else []
    cmd += [f"--suite-size={args.suite_size}"] if kind == "ci.test" else []
    cmd += [f"--dump={dump}"] if dump else [f"--intake={intake}"]
    cmd += ["--preencode"] if pre else []
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE if pre else None, text=True)
    built = 0.0
    if pre:
        for line in proc.stderr:
            if "loadgen.preencoded" in line and not built:
                built = cpu_of(proc.pid)
                ready(built)
            elif "loadgen.preencoded" not in line and "level=info" not in line:
                sys.stderr.write(line)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"omni-loadgen exited {proc.returncode}")
    if pre and not built:
        raise SystemExit("omni-loadgen did not pre-encode its records")
    return usage.ru_utime + usage.ru_stime - built


def loadgen_pid():
    """The running omni-loadgen (a child of this process), as Side.watch's
    argument."""
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if "(omni-loadgen)" in stat and int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
            return {"omni-loadgen": int(pid)}
    raise SystemExit("--waits: omni-loadgen not found")


def records(path):
    with open(path, "rb") as f:
        yield from msgpack.Unpacker(f, raw=False)


# ---------------------------------------------------------------------------
# Telegraf


def telegraf_binary(args):
    if args.telegraf:
        return args.telegraf
    gobin = os.path.join(os.path.expanduser("~"), ".cache", "omni-bench",
                         f"telegraf-{args.telegraf_version}")
    path = os.path.join(gobin, "telegraf")
    if not os.path.exists(path):
        shutil.which("go") or sys.exit("go is needed to build Telegraf (or pass --telegraf)")
        print(f"# go install {TELEGRAF_MODULE}@{args.telegraf_version} -tags {TELEGRAF_TAGS}",
              flush=True)
        subprocess.run(["go", "install", "-tags", TELEGRAF_TAGS,
                        f"{TELEGRAF_MODULE}@{args.telegraf_version}"],
                       env=dict(os.environ, GOBIN=gobin), check=True)
    return path


def influx_escape(text):
    return text.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def influx_lines(dump):
    """The points of the dumped metric records as influx lines: measurement =
    series name, tags = the record's tags and its source, field value."""
    out = io.BytesIO()
    for r in records(dump):
        tags = dict(r.get("tags") or {}, source=r["src"])
        tagtext = ",".join(f"{influx_escape(k)}={influx_escape(str(v))}"
                           for k, v in sorted(tags.items()))
        out.write(f"{influx_escape(r['body']['name'])},{tagtext} "
                  f"value={float(r['body']['value'])!r} {r['ts']}\n".encode())
    return out.getvalue()


def telegraf_config(dsn, port, n, keyed):
    conn = dsn.replace("postgresql://", "postgres://") + NO_TLS
    templates = ["'''CREATE TABLE {{ .table }} ({{ .columns }})'''"]
    if keyed:
        templates.append("'''CREATE UNIQUE INDEX ON {{ .table }} "
                         "({{ .columns.Tags.Identifiers | join \", \" }}, time)'''")
    return f"""
[agent]
  interval = "10s"
  flush_interval = "1s"
  flush_jitter = "0s"
  metric_batch_size = 50000
  metric_buffer_limit = {max(n + 100000, 1000000)}
  omit_hostname = true
  quiet = true

[[inputs.socket_listener]]
  service_address = "tcp://127.0.0.1:{port}"
  data_format = "influx"

[[outputs.postgresql]]
  connection = "{conn}"
  create_templates = [{", ".join(templates)}]
"""


def telegraf_side(args, exe, lines, n, keyed, work):
    name = "telegraf, unique key (tags, time)" if keyed else "telegraf, default tables"
    with scratch_database("omni_peer_tg_") as dsn:
        port = free_port()
        conf = os.path.join(work, f"telegraf-{int(keyed)}.conf")
        with open(conf, "w") as f:
            f.write(telegraf_config(dsn, port, n, keyed))
        log = open(os.path.join(work, f"telegraf-{int(keyed)}.log"), "w")
        proc = subprocess.Popen([exe, "--config", conf], stdout=log, stderr=log)
        side = Side(name, dsn, None)
        try:
            sock = None
            deadline = time.monotonic() + 60
            while sock is None:
                try:
                    sock = socket.create_connection(("127.0.0.1", port), timeout=1)
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"telegraf did not listen: see {log.name}")
                    time.sleep(0.05)
            sock.settimeout(None)  # sendall waits for Telegraf to read
            side.procs["telegraf"] = proc.pid
            side.start()
            sender = {}

            def send():
                sock.sendall(lines)
                sock.close()
                sender["cpu"] = sum(resource.getrusage(resource.RUSAGE_THREAD)[:2])
            thread = threading.Thread(target=send)
            if args.waits:
                side.watch()
            thread.start()
            side.wait_rows(n, args.timeout, alive=lambda: proc.poll() is None)
            thread.join()
            side.extra_cpu["sender"] = sender["cpu"]
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()
            side.close()
        return side


# ---------------------------------------------------------------------------
# OmniAudit


def omni_side(args, name, writer, daemon, daemon_args, kind, n, table_sql, work, bindir=None):
    """bindir: the daemons of another build (--before), the generator stays."""
    if bindir:
        gen, omni.BIN = omni.BIN, bindir
        try:
            return omni_side(args, name, writer, daemon, daemon_args, kind, n, table_sql, work)
        finally:
            omni.BIN = gen
    with scratch_database("omni_peer_om_") as dsn, \
            Pipeline(os.path.join(work, writer), writers=(writer,), journal_max="16G") as p:
        os.makedirs(p.workdir, exist_ok=True)
        p.ingestd.start()
        w = p.writer(daemon, [f"--dsn={dsn}{NO_TLS}", "--log-level=warn", *daemon_args]).start()
        side = Side(name, dsn, table_sql)
        side.procs = {"ingestd": p.ingestd.proc.pid, daemon: w.proc.pid}
        try:
            side.start()
            done = {}

            def ready(_cpu):  # the generator's records are made: the clock starts
                side.restart()
                if args.waits:
                    side.watch(**loadgen_pid())
            thread = threading.Thread(target=lambda: done.update(cpu=loadgen(
                args, kind, n, intake=p.intake, ready=ready)))
            thread.daemon = True
            thread.start()
            side.wait_rows(n, args.timeout, alive=lambda: w.proc.poll() is None)
            thread.join()
            side.extra_cpu["omni-loadgen"] = done["cpu"]
        finally:
            side.close()
        return side


# ---------------------------------------------------------------------------
# JSONB, the Fluent Bit pgsql layout


def jsonb_copy_text(dump, chunk):
    """(tag, time, data) rows as COPY text, in chunks of `chunk` rows."""
    chunks, out, rows = [], io.StringIO(), 0
    for r in records(dump):
        data = dict(r["body"], id=r["id"].hex(), src=r["src"], run=r["run"])
        ts = r["ts"]
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts // 10**9))
        stamp += ".%06d" % (ts % 10**9 // 1000)
        text = json.dumps(data, separators=(",", ":"))
        out.write(r["kind"] + "\t" + stamp + "\t" + text.replace("\\", "\\\\") + "\n")
        rows += 1
        if rows == chunk:
            chunks.append(out.getvalue())
            out, rows = io.StringIO(), 0
    if rows:
        chunks.append(out.getvalue())
    return chunks


def jsonb_side(args, chunks, n, keyed):
    name = ("jsonb (tag, time, data), unique id + 2 lookup indexes" if keyed
            else "jsonb (tag, time, data), no index")
    with scratch_database("omni_peer_js_") as dsn:
        db = psycopg2.connect(dsn + NO_TLS)
        db.autocommit = True
        cur = db.cursor()
        cur.execute("CREATE TABLE fluentbit (tag varchar, time timestamp, data jsonb)")
        if keyed:
            cur.execute("CREATE UNIQUE INDEX ON fluentbit ((data->>'id'))")
            cur.execute("CREATE INDEX ON fluentbit ((data->>'src'), (data->>'suite'), "
                        "(data->>'class'), (data->>'name'), time)")
            cur.execute("CREATE INDEX ON fluentbit ((data->>'src'), (data->>'pipeline'), "
                        "(data->>'build_id'))")
        side = Side(name, dsn, "SELECT count (*) FROM fluentbit")
        side.procs["client"] = os.getpid()
        try:
            side.start()
            for text in chunks:
                cur.copy_expert("COPY fluentbit (tag, time, data) FROM STDIN", io.StringIO(text))
            side.wait_rows(n, args.timeout)
        finally:
            db.close()
            side.close()
        return side


# ---------------------------------------------------------------------------


def table(title, unit, sides):
    print(f"\n{title}\n")
    print(f"| side | {unit}/s | seconds | rows | CPU s (processes) | CPU s (PostgreSQL "
          f"backends) | WAL MiB | size MiB |\n|---|---|---|---|---|---|---|---|")
    for s in sides:
        print(s.line(unit))
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=1_000_000, help="points (and test records)")
    ap.add_argument("--tests", type=int, default=None, help="ci.test records (default: --points)")
    ap.add_argument("--suite-size", type=int, default=0,
                    help="omni-loadgen --suite-size of the ci.test records: builds of N results, "
                    "the same N tests in each (0: every result a test of its own)")
    ap.add_argument("--size", default="0", help="omni-loadgen --size of the metric records")
    ap.add_argument("--loadgen-batch", type=int, default=500, help="omni-loadgen --batch")
    ap.add_argument("--metricsd-batch", type=int, default=10000,
                    help="metricsd --batch-size (10000: its default)")
    ap.add_argument("--metricsd-connections", default="1,2",
                    help="metricsd --connections, one run each (the best counts in ratios:)")
    ap.add_argument("--relationald-batch", default="5000",
                    help="relationald --batch-size, one run each (the best counts in ratios:)")
    ap.add_argument("--telegraf", help="a telegraf binary (default: go install it)")
    ap.add_argument("--telegraf-version", default="v1.37.0")
    ap.add_argument("--skip", action="append", default=[],
                    choices=["telegraf", "metricsd", "relationald", "jsonb", "jsonb-keyed"],
                    help="leave a side out; --skip telegraf --skip metricsd runs the ci.test "
                    "sides only (no Telegraf build)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run the ci.test sides this many times, alternating; ratios: from "
                    "the medians")
    ap.add_argument("--no-preencode", dest="preencode", action="store_false",
                    help="omni-loadgen makes each record as it sends it, on its side's clock "
                    "(by default it builds them all first and the clock starts at the first "
                    "sent, as for Telegraf's lines and the JSONB side's COPY text)")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--waits", action="store_true",
                    help="sample where each of our sides' threads and backends wait (/proc)")
    ap.add_argument("--before", metavar="DIR",
                    help="also run the metricsd and relationald sides with the daemons of "
                    "another build (e.g. the previous commit's build/bin)")
    args = ap.parse_args()
    args.loadgen_bin = binary("omni-loadgen")  # this build's, for every side
    n = args.points
    nt = args.tests if args.tests is not None else n
    batches = [int(b) for b in args.relationald_batch.split(",")]
    exe = telegraf_binary(args) if "telegraf" not in args.skip else None
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="omni-bench-peers-") as work:
        metric_dump = os.path.join(work, "metric.mp")
        if "telegraf" not in args.skip:  # Telegraf's input only
            loadgen(args, "metric", n, dump=metric_dump)
        point_sides = []
        if "telegraf" not in args.skip:
            lines = influx_lines(metric_dump)
            for keyed in (False, True):
                point_sides.append(telegraf_side(args, exe, lines, n, keyed, work))
            del lines
        for k in args.metricsd_connections.split(",") if "metricsd" not in args.skip else []:
            point_sides.append(omni_side(
                args, f"ingestd -> metricsd (batch {args.metricsd_batch}, {k} connections)",
                "metrics", "metricsd",
                [f"--batch-size={args.metricsd_batch}", f"--connections={k}", "--mode=native"],
                "metric", n, S_POINTS_COUNT, work))
        if args.before and "metricsd" not in args.skip:
            point_sides.append(omni_side(
                args, f"before: ingestd -> metricsd (batch {args.metricsd_batch})", "metrics",
                "metricsd", [f"--batch-size={args.metricsd_batch}", "--mode=native"],
                "metric", n, S_POINTS_COUNT, work + "/before", args.before))
        test_sides = []
        chunks = None
        if "jsonb" not in args.skip:
            test_dump = os.path.join(work, "test.mp")
            loadgen(args, "ci.test", nt, dump=test_dump)
            prep = time.process_time()
            chunks = jsonb_copy_text(test_dump, 5000)
            #  Not on the clock: the JSONB side's input is ready-made text,
            #  where ours is generated, journaled and decoded on the clock
            print(f"# jsonb: the COPY text of {nt:,} records took "
                  f"{time.process_time() - prep:.1f} CPU s to make (before its clock)", flush=True)
        #  --repeat: the test sides in turn, again and again (load drifts:
        #  alternating spreads it over every side alike); medians below
        for turn in range(args.repeat):
            if chunks:
                for keyed in (False, True) if "jsonb-keyed" not in args.skip else (False,):
                    test_sides.append(jsonb_side(args, chunks, nt, keyed))
            first = len(test_sides)
            for batch in batches if "relationald" not in args.skip else []:
                test_sides.append(omni_side(
                    args, f"ingestd -> relationald (batch {batch})",
                    "relational", "relationald", [f"--batch-size={batch}"],
                    "ci.test", nt, "SELECT count (*) FROM ci_tests", work + f"/{turn}-{batch}"))
            if args.before and "relationald" not in args.skip:
                test_sides.append(omni_side(
                    args, f"before: ingestd -> relationald (batch {batches[0]})",
                    "relational", "relationald", [f"--batch-size={batches[0]}"],
                    "ci.test", nt, "SELECT count (*) FROM ci_tests", work + f"/before{turn}",
                    args.before))
            if args.repeat > 1:
                print(f"# turn {turn + 1}: " + ", ".join(
                    f"{s.name}: {s.rate:,.0f}/s" for s in test_sides[first - 1:]), flush=True)
        del chunks
    print(f"\nload average at the start: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, "
          f"at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    if point_sides:
        table(f"{n:,} points (omni-loadgen metric records, seed 1)", "points", point_sides)
    if test_sides:
        table(f"{nt:,} ci.test records (omni-loadgen, seed 1, "
              + (f"suites of {args.suite_size:,} tests)" if args.suite_size else
                 "every result a test of its own)"), "records", test_sides)
    if args.repeat > 1 and test_sides:
        print(f"\nmedians of {args.repeat} turns (records/s; CPU s of PostgreSQL; WAL MiB)\n")
        print("| side | records/s | CPU s (PostgreSQL backends) | WAL MiB |\n|---|---|---|---|")
        names = list(dict.fromkeys(s.name for s in test_sides))
        for name in names:
            mine = [s for s in test_sides if s.name == name]
            print(f"| {name} | {statistics.median(s.rate for s in mine):,.0f} | "
                  f"{statistics.median(s.pg_cpu for s in mine):.1f} | "
                  f"{statistics.median(s.wal for s in mine) / 2**20:,.0f} |")
        medians = {name: statistics.median(s.rate for s in test_sides if s.name == name)
                   for name in names}
    else:
        medians = {}
    by = {s.name: s.rate for s in point_sides + test_sides}
    by.update(medians)

    def ratio(a, b):
        a = max((v for k, v in by.items() if k.startswith(a)), default=None)
        b = max((v for k, v in by.items() if k.startswith(b)), default=None)
        return f"{a / b:.2f}" if a and b else "n/a"
    print(f"\nratios: metricsd/telegraf-keyed={ratio('ingestd -> metricsd', 'telegraf, unique')} "
          f"metricsd/telegraf-plain={ratio('ingestd -> metricsd', 'telegraf, default')} "
          f"relationald/jsonb={ratio('ingestd -> relationald', 'jsonb (tag, time, data), no')}")


if __name__ == "__main__":
    main()
