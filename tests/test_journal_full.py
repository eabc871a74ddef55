"""ingestd's journal on a file system that fills up, and in an LMDB map that
fills up: /health says why (503), intake pauses (no ACKs: the collector
waits and resends), the fault metric is set, a probe every second finds out
when writes succeed again, and intake resumes without a restart; every
record ends up in the archive exactly once.

The disk-full case is a real file system: ingestd runs in a mount namespace
of its own (unshare, as root) with a 48 MiB tmpfs on its journal directory,
most of it taken by a ballast file, which the test removes (nsenter) to give
the space back. The namespace, and so the mount, ends with ingestd."""
import os
import re
import subprocess

from omni import archive_lines, binary, http_get, wait_until
from test_pipeline import assert_archive_exact, finish, loadgen_ids, start_loadgen

TMPFS_MB = 48
BALLAST_MB = 40  # leaves 8 MiB for the journal: ~12 MB of records do not fit


def fault_metric(p, cause):
    return p.ingestd.metrics().get(f'omni_ingestd_journal_fault{{cause="{cause}"}}')


def in_small_tmpfs(p):
    """Runs p's ingestd in a mount namespace with a small tmpfs on its
    journal directory, a ballast file in it."""
    os.makedirs(p.journal_dir, exist_ok=True)
    ballast = os.path.join(p.journal_dir, "ballast")
    script = (f'mount -t tmpfs -o size={TMPFS_MB}m omni-journal-test "$0" && '
              f'head -c {BALLAST_MB}M /dev/zero > "$0/ballast" && exec "$@"')
    p.ingestd.args = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                      p.journal_dir, *p.ingestd.args]
    return ballast


def error_lines(p, event):
    return [line for line in p.ingestd.log().splitlines()
            if f"event={event} " in line and "level=error" in line]


def test_disk_full_pauses_intake_and_recovers(pipeline, workdir):
    p = pipeline(writers=("archive",))
    ballast = in_small_tmpfs(p)
    p.ingestd.start()
    count = 60_000  # ~12 MB of metric records, no writer yet: the journal fills the disk
    gen, ids_path = start_loadgen(p, workdir, count, "--kind=metric", "--seed=5",
                                  "--ack-timeout=1s", "--give-up=300s")

    def faulted():
        status, text = p.ingestd.health()
        return (status, text) if status == 503 else None
    status, text = wait_until(faulted, 120, "ingestd /health 503 on the full disk")
    assert text.startswith(f"journal: no space left on device under {p.journal_dir} "), text
    assert "intake paused" in text and "free space" in text, text
    m = p.ingestd.metrics()
    assert m['omni_ingestd_journal_fault{cause="no_space"}'] == 1
    assert m["omni_ingestd_intake_paused"] == 1
    errors = m["omni_ingestd_journal_write_errors_total"]
    accepted = m["omni_ingestd_records_accepted_total"]
    assert 0 < accepted < count

    # Probes keep failing (each one counted) and nothing more is acknowledged.
    wait_until(lambda: p.ingestd.metrics()["omni_ingestd_journal_write_errors_total"]
               >= errors + 2, 30, "two more failed probes")
    m = p.ingestd.metrics()
    assert m["omni_ingestd_records_accepted_total"] == accepted
    assert m['omni_ingestd_journal_fault{cause="no_space"}'] == 1
    assert gen.poll() is None, "the generator finished although nothing is acknowledged"

    # A collector that gives up meanwhile says where to look.
    out = subprocess.run([binary("omni-loadgen"), f"--intake={p.intake}", "--count=10",
                          "--src=gives-up", "--give-up=2s", "--ack-timeout=500ms",
                          f"--ids-out={workdir}/gives-up.ids"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out.stderr
    assert "ingestd stopped acknowledging" in out.stderr and "/health" in out.stderr, out.stderr

    # One error line for the whole fault, however many writes failed.
    assert len(error_lines(p, "journal.fault")) == 1, p.ingestd.log()[-3000:]
    assert "journal.commit" not in p.ingestd.log()

    # Space comes back and a writer drains the journal: intake resumes by
    # itself, the collector finishes, nothing is lost or doubled.
    subprocess.run(["nsenter", f"--target={p.ingestd.proc.pid}", "--mount", "rm", ballast],
                   check=True)
    p.archiverd().start()
    finish(gen, workdir)
    wait_until(lambda: fault_metric(p, "no_space") == 0, 30, "the fault metric back to 0")
    ids = loadgen_ids(ids_path)
    # The give-up collector's batches may still have been read once intake
    # resumed (at-least-once); they are not part of the exact count.
    extra = set(loadgen_ids(f"{workdir}/gives-up.ids"))
    p.wait_archived(count)
    wait_until(lambda: p.acked("archive") >= p.ingestd.metrics()[
        "omni_ingestd_records_accepted_total"], 120, "the archive writer to catch up")
    lines = [line for line in archive_lines(p.archive_dir) if line["id"] not in extra]
    assert len(lines) == len(ids) and {line["id"] for line in lines} == set(ids)
    status, text = wait_until(lambda: (lambda r: r if r[0] == 200 else None)(p.ingestd.health()),
                              30, "ingestd /health 200")
    assert text.startswith("ok "), text
    m = p.ingestd.metrics()
    assert m["omni_ingestd_intake_paused"] == 0
    log = p.ingestd.log()
    assert len(re.findall(r"event=journal\.fault_cleared cause=no_space", log)) == 1, log[-3000:]
    assert len(error_lines(p, "journal.fault")) == 1


def test_map_full_pauses_intake_and_recovers(pipeline, workdir):
    # The LMDB map, not the disk: a 4 MiB map (journal_map_size, for tests)
    # against ~12 MB of records and a journal_max far above.
    p = pipeline(writers=("archive",), extra=("--journal-map-size=4M",))
    p.ingestd.start()
    count = 60_000
    gen, ids_path = start_loadgen(p, workdir, count, "--kind=metric", "--seed=6",
                                  "--ack-timeout=1s", "--give-up=300s")
    status, text = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(p.ingestd.health()),
                              120, "ingestd /health 503 on the full map")
    assert text.startswith(f"journal map full under {p.journal_dir} "), text
    assert "intake paused" in text and "journal_max" in text, text
    assert fault_metric(p, "map_full") == 1
    assert p.ingestd.metrics()["omni_ingestd_intake_paused"] == 1
    assert gen.poll() is None

    # The writer's acknowledgements trim the journal; its pages are reused.
    p.archiverd().start()
    finish(gen, workdir)
    p.wait_archived(count)
    assert_archive_exact(p.archive_dir, loadgen_ids(ids_path))
    wait_until(lambda: fault_metric(p, "map_full") == 0, 30, "the fault metric back to 0")
    assert http_get(p.ingestd.url("/health"))[0] == 200
    # A map this small may fill again while the writer drains it: one error
    # line and one info line per fault, not one per failed write.
    log = p.ingestd.log()
    cleared = re.findall(r"event=journal\.fault_cleared cause=map_full", log)
    assert len(error_lines(p, "journal.fault")) == len(cleared) >= 1, log[-3000:]
