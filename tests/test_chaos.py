"""The chaos run of bench/chaos.py at 100,000 records: kill -9 of a random
process every 2-5 s and an outage of PostgreSQL and of the MongoDB-wire
server, then every store must hold every record exactly once (the full
1,000,000-record run is `make chaos`; figures in docs/reliability.md)."""
import json
import os
import subprocess
import sys

from omni import BIN, ROOT


def test_chaos_100k(tmp_path):
    out_json = tmp_path / "chaos.json"
    env = dict(os.environ, OMNI_BIN=BIN)
    out = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "chaos.py"),
                          "--records=100000", "--outage=10", "--outage-after=5",
                          f"--json={out_json}"],
                         capture_output=True, text=True, timeout=900, env=env)
    log = out.stdout[-6000:] + out.stderr[-6000:]
    assert out.returncode == 0, log
    result = json.loads(out_json.read_text())
    assert result["problems"] == [], log
    assert result["outages"] == ["postgresql", "mongodb"], log
    assert sum(result["kills"].values()) >= 5, log
    # Every record is in every store it is routed to
    assert result["archive_rows"] == 100000, log
    assert result["mongodb_rows"] == 100000, log
    assert "every store holds every record exactly once" in out.stdout
