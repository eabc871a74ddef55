"""Misconfiguration is said at start-up, by the real programs: exit 2 and a
message that names the key, and the file and line when it came from a file.
Nothing runs on a value the operator did not mean (a duration without its
unit, a misspelled section, an endpoint libzmq would refuse later)."""
import os
import socket
import subprocess

from omni import binary

PROGRAMS = ["ingestd", "archiverd", "relationald", "documentd", "metricsd", "collectord",
            "omni-tap", "omni-loadgen", "omnictl"]


def run(args, env=None, timeout=30):
    full_env = dict(os.environ)
    for k in list(full_env):
        if k.startswith("OMNI_") and k not in ("OMNI_BIN",):
            full_env.pop(k)
    full_env.update(env or {})
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=full_env)


def test_every_program_says_its_version():
    versions = set()
    for name in PROGRAMS:
        out = run([binary(name), "--version"])
        assert out.returncode == 0, (name, out.stderr)
        words = out.stdout.split()
        assert words[0] == name and words[1][0].isdigit() and len(words) == 2, (name, out.stdout)
        versions.add(words[1])
    # A collector mode says it too
    out = run([binary("collectord"), "git", "--version"])
    assert out.returncode == 0 and out.stdout.split() == ["collectord", "git", versions.pop()], \
        out.stdout
    assert not versions, "every program is built from one version"


def test_durations_and_sizes_need_their_unit(tmp_path):
    out = run([binary("archiverd"), f"--archive-dir={tmp_path}/a", "--flush-interval", "5"])
    assert out.returncode == 2, out.stderr
    assert 'archiverd.flush_interval: bad value "5" (expected a duration with its unit' in out.stderr
    assert "[from flag --flush-interval]" in out.stderr

    config = tmp_path / "omni.yaml"
    config.write_text("common:\n  log_level: info\ningestd:\n  journal_max: 1000000\n")
    out = run([binary("ingestd"), f"--config={config}", f"--journal-dir={tmp_path}/j"])
    assert out.returncode == 2, out.stderr
    assert f'ingestd.journal_max: bad value "1000000" (expected a size with its unit: 512B' \
        in out.stderr and f"[from file {config}:4]" in out.stderr, out.stderr
    assert not os.path.exists(tmp_path / "j"), "ingestd ran on a value it refused"


def test_a_misspelled_section_is_an_error_with_file_and_line(tmp_path):
    config = tmp_path / "omni.yaml"
    config.write_text("common:\n  log_level: info\n\ningestdd:\n  journal_dir: /nonexistent\n")
    for name, args in (("ingestd", []), ("archiverd", [f"--archive-dir={tmp_path}/a"]),
                       ("omni-tap", [])):
        out = run([binary(name), f"--config={config}", *args])
        assert out.returncode == 2, (name, out.stderr)
        assert f'{config}:4: unknown section "ingestdd" (did you mean "ingestd"?)' in out.stderr, \
            (name, out.stderr)


def test_an_endpoint_without_its_transport_is_named(tmp_path):
    cases = [(["ingestd", f"--journal-dir={tmp_path}/j", "--intake=127.0.0.1:5550"],
              'ingestd.intake: bad value "127.0.0.1:5550" (expected an endpoint: tcp://HOST:PORT'),
             (["archiverd", f"--archive-dir={tmp_path}/a", "--delivery=localhost:5551"],
              'archiverd.delivery: bad value "localhost:5551"'),
             (["collectord", "git", "--intake=tcp://127.0.0.1", "."],
              'collectord.intake: bad value "tcp://127.0.0.1"'),
             (["omni-tap", "--endpoint=5552"], 'omni-tap.endpoint: bad value "5552"')]
    for args, message in cases:
        out = run([binary(args[0]), *args[1:]])
        assert out.returncode == 2, (args, out.stderr)
        assert message in out.stderr, (args, out.stderr)


def test_an_http_port_in_use_is_named_with_a_hint(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = run([binary("ingestd"), f"--journal-dir={tmp_path}/j", f"--http=127.0.0.1:{port}",
                   "--intake=tcp://127.0.0.1:0", "--delivery=tcp://127.0.0.1:0",
                   "--tap=tcp://127.0.0.1:0"])
    assert out.returncode != 0, out.stderr
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in out.stderr, out.stderr
    assert "give another with --http=HOST:PORT" in out.stderr
    assert "port 0" not in out.stderr


def test_collectord_mode_help_lists_that_mode(tmp_path):
    git_help = run([binary("collectord"), "git", "--help"]).stdout
    exec_help = run([binary("collectord"), "exec", "--help"]).stdout
    # Each mode shows its own keys and the shared ones, not the other modes'
    assert "--intake ENDPOINT" in git_help and "--intake ENDPOINT" in exec_help
    assert "--kind TEXT" in exec_help and "--kind TEXT" not in git_help
    assert "--cache-size" in git_help and "--cache-size" not in exec_help
    # ... while every mode still accepts every key (one collectord section
    # serves several collectors)
    config = tmp_path / "omni.yaml"
    config.write_text("collectord:\n  kind: x.deploy\n  cache_size: 64M\n")
    out = run([binary("collectord"), "exec", f"--config={config}", "--intake=tcp://127.0.0.1:1",
               "--give-up=1s", "--once", "--", "sh", "-c", "true"])
    assert "unknown key" not in out.stderr, out.stderr


def test_tap_environment_prefix(tmp_path):
    # omni-tap's keys are OMNI_TAP_<KEY> (they were OMNI_OMNI_TAP_<KEY>)
    out = run([binary("omni-tap"), "--help"])
    assert "OMNI_TAP_ENDPOINT" in out.stdout and "OMNI_OMNI_" not in out.stdout
    out = run([binary("omni-tap")], env={"OMNI_TAP_ENDPOINT": "nonsense"})
    assert out.returncode == 2 and 'omni-tap.endpoint: bad value "nonsense"' in out.stderr \
        and "[from env OMNI_TAP_ENDPOINT]" in out.stderr, out.stderr
