"""The production compose file (deploy/docker-compose.yml), checked without
running it: a compose implementation validates it (`docker compose config`,
else docker-compose, else podman-compose's dry run), and its content is checked
against what the deployment needs: every service, healthchecks on /health,
start order by health, scalable collectors (no fixed names, no host ports),
credentials from .env, and only configuration keys the daemons really have.
`make test-deploy` runs the stack for real."""
import os
import re
import shutil
import subprocess
import tempfile

import pytest
import yaml

from omni import BIN, ROOT

DEPLOY = os.path.join(ROOT, "deploy")
COMPOSE = os.path.join(DEPLOY, "docker-compose.yml")
OVERRIDE = os.path.join(DEPLOY, "podman", "compose.override.yml")
ENV_EXAMPLE = os.path.join(DEPLOY, ".env.example")

DAEMONS = {  # service -> (program, HTTP port of its /health)
    "ingestd": ("ingestd", 9100),
    "archiverd": ("archiverd", 9101),
    "relationald": ("relationald", 9102),
    "documentd": ("documentd", 9103),
    "metricsd": ("metricsd", 9104),
    "collector-git": ("collectord", 9105),
    "collector-junit": ("collectord", 9105),
    "collector-host": ("collectord", 9105),
}
WRITERS = ["archiverd", "relationald", "documentd", "metricsd"]
COLLECTORS = ["collector-git", "collector-junit", "collector-host"]
STORES = ["timescaledb", "mongodb"]


def env_example():
    values = {}
    for line in open(ENV_EXAMPLE, encoding="utf-8"):
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def _run(cmd, cwd=None, env=None):
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _has_docker_compose_v2():
    if not shutil.which("docker"):
        return False
    return _run(["docker", "compose", "version"]).returncode == 0


def validated_config(files):
    """The merged, interpolated configuration as a compose implementation
    prints it, with .env.example as the environment file; None when no
    implementation that prints it is installed."""
    args = []
    for f in files:
        args += ["-f", f]
    if _has_docker_compose_v2():
        cmd = ["docker", "compose", "--env-file", ENV_EXAMPLE] + args + ["config"]
    elif shutil.which("docker-compose"):
        cmd = ["docker-compose", "--env-file", ENV_EXAMPLE] + args + ["config"]
    else:
        return None
    r = _run(cmd)
    assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stderr}"
    return yaml.safe_load(r.stdout)


def raw():
    with open(COMPOSE, encoding="utf-8") as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def config():
    """The validated configuration when an implementation is here, else the
    file as YAML (anchors resolved) with .env.example's values substituted."""
    cfg = validated_config([COMPOSE])
    if cfg is not None:
        return cfg
    text = open(COMPOSE, encoding="utf-8").read()
    values = env_example()

    def sub(m):
        name, default = m.group(1), m.group(3)
        return values.get(name) or default or ""
    text = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?]([^}]*))?\}", sub, text)
    return yaml.safe_load(text.replace("$$", "$"))


def test_a_compose_implementation_accepts_the_file():
    if _has_docker_compose_v2() or shutil.which("docker-compose"):
        cfg = validated_config([COMPOSE])
        assert set(cfg["services"]) >= set(DAEMONS) | set(STORES)
        # and with the podman override, as the local run merges them
        merged = validated_config([COMPOSE, OVERRIDE])
        assert set(merged["services"]) == set(cfg["services"])
        return
    if not shutil.which("podman-compose") or not shutil.which("podman"):
        pytest.skip("no docker compose, docker-compose or podman-compose here")
    # podman-compose (1.0.3) has no `config`: its dry run parses, merges and
    # interpolates the files and prints the podman commands.
    with tempfile.TemporaryDirectory(prefix="omni-compose-") as d:
        shutil.copy(COMPOSE, d)
        shutil.copytree(os.path.join(DEPLOY, "postgres-init"), os.path.join(d, "postgres-init"))
        shutil.copy(ENV_EXAMPLE, os.path.join(d, ".env"))
        try:
            r = _run(["podman-compose", "--dry-run", "-p", "omniaudit-config-check",
                      "-f", os.path.join(d, "docker-compose.yml"), "-f", OVERRIDE, "up", "-d",
                      "--no-build"], cwd=d)
        finally:
            # the dry run still creates the project's network and volumes
            _run(["podman", "network", "rm", "-f", "omniaudit-config-check_default"])
            vols = _run(["podman", "volume", "ls", "-q", "--filter",
                         "label=io.podman.compose.project=omniaudit-config-check"]).stdout.split()
            if vols:
                _run(["podman", "volume", "rm", "-f"] + vols)
        assert r.returncode == 0, r.stdout + r.stderr
        for service in DAEMONS:
            assert f"omniaudit-config-check_{service}_1" in r.stdout


def test_every_service_is_there(config):
    services = config["services"]
    for name in list(DAEMONS) + STORES:
        assert name in services, f"service {name} missing"
    assert services["timescaledb"]["image"].startswith("timescale/timescaledb")
    assert services["mongodb"]["image"].startswith("mongo:")
    # one OmniAudit image for every daemon and collector, built by deploy/Dockerfile
    images = {services[s]["image"] for s in DAEMONS}
    assert len(images) == 1, images
    build = raw()["services"]["ingestd"]["build"]
    assert build["dockerfile"] == "deploy/Dockerfile"


def test_healthchecks_call_each_daemons_health(config):
    for name, service in config["services"].items():
        test = service.get("healthcheck", {}).get("test")
        assert test, f"{name} has no healthcheck"
        text = test if isinstance(test, str) else " ".join(test)
        if name in DAEMONS:
            program, port = DAEMONS[name]
            assert f"http://127.0.0.1:{port}/health" in text, (name, text)
            env = service["environment"]
            key = f"OMNI_{program.upper()}_HTTP"
            assert env[key] == f"0.0.0.0:{port}", (name, key, env.get(key))


def _depends(service):
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {d: "service_started" for d in deps}
    return {d: (v or {}).get("condition", "service_started") for d, v in deps.items()}


def test_start_order_by_health_not_by_sleep(config):
    services = config["services"]
    for name in WRITERS + COLLECTORS:
        assert _depends(services[name]).get("ingestd") == "service_healthy", name
    for name, store in [("relationald", "timescaledb"), ("metricsd", "timescaledb"),
                        ("documentd", "mongodb")]:
        assert _depends(services[name]).get(store) == "service_healthy", name
    for name, service in services.items():
        command = service.get("command") or []
        text = command if isinstance(command, str) else " ".join(command)
        assert "sleep" not in text, (name, text)


def test_collectors_scale(config):
    """`docker compose up --scale collector-git=4`: no fixed container name,
    no host port, nothing that two replicas would fight over."""
    for name in COLLECTORS:
        service = config["services"][name]
        assert "container_name" not in service, name
        assert not service.get("ports"), name
        for volume in service.get("volumes") or []:
            source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
            kind = volume.get("type") if isinstance(volume, dict) else None
            # a named volume shared by replicas would be shared state
            assert kind != "volume" and source not in (config.get("volumes") or {}), (name, volume)
        env = service["environment"]
        assert env["OMNI_COLLECTORD_INTAKE"] == "tcp://ingestd:5550", name
    # the git collector's repository comes from the environment / a mount
    git = config["services"]["collector-git"]
    assert "OMNI_GIT_REPO" in git["environment"]
    mounts = [v["target"] if isinstance(v, dict) else v.split(":")[1] for v in git["volumes"]]
    assert "/repos" in mounts
    for service in config["services"].values():
        assert "container_name" not in service


def test_state_on_named_volumes(config):
    services, volumes = config["services"], config.get("volumes") or {}

    def mounted(service, target):
        for v in services[service].get("volumes") or []:
            if isinstance(v, dict) and v["target"] == target:
                return v["source"]
            if isinstance(v, str) and v.split(":")[1] == target:
                return v.split(":")[0]
        return None

    journal = services["ingestd"]["environment"]["OMNI_INGESTD_JOURNAL_DIR"]
    archive = services["archiverd"]["environment"]["OMNI_ARCHIVERD_ARCHIVE_DIR"]
    assert mounted("ingestd", journal) == "journal"
    assert mounted("archiverd", archive) == "archive"
    assert mounted("timescaledb", "/var/lib/postgresql/data") == "pgdata"
    assert mounted("mongodb", "/data/db") == "mongodata"
    for name in ("journal", "archive", "pgdata", "mongodata"):
        assert name in volumes


def test_writers_connect_to_ingestd_by_service_name(config):
    services = config["services"]
    for name in WRITERS:
        program = DAEMONS[name][0]
        assert services[name]["environment"][f"OMNI_{program.upper()}_DELIVERY"] == \
            "tcp://ingestd:5551"
    env = services["ingestd"]["environment"]
    assert env["OMNI_INGESTD_DELIVERY"] == "tcp://*:5551"
    assert set(env["OMNI_INGESTD_WRITERS"].split(",")) == \
        {"archive", "relational", "document", "metrics"}


def test_credentials_come_from_env():
    text = open(COMPOSE, encoding="utf-8").read()
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    example = env_example()
    missing = used - set(example)
    assert not missing, f".env.example lacks {sorted(missing)}"
    services = raw()["services"]
    for name, key in [("timescaledb", "POSTGRES_PASSWORD"), ("relationald", "PGPASSWORD"),
                      ("metricsd", "PGPASSWORD"), ("mongodb", "MONGO_INITDB_ROOT_PASSWORD")]:
        value = services[name]["environment"][key]
        assert value.startswith("${") and ":?" in value, (name, key, value)
    assert "MONGO_PASSWORD:?" in services["documentd"]["environment"]["OMNI_DOCUMENTD_URI"]
    # .env itself is never committed
    ignored = subprocess.run(["git", "check-ignore", "-q", os.path.join(DEPLOY, ".env")],
                             cwd=ROOT)
    assert ignored.returncode == 0, "deploy/.env is not ignored by git"


def _help_keys(program):
    path = os.path.join(BIN, program)
    if not os.path.exists(path):
        return None
    args = [path, "git", "--help"] if program == "collectord" else [path, "--help"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=30).stdout
    return set(re.findall(r"env (OMNI_[A-Z0-9_]+)", out))


def test_every_omni_variable_is_a_real_key(config):
    """A misspelt OMNI_<DAEMON>_<KEY> would be silently ignored (the daemons
    read only the variables of their keys): each must be one `--help` lists."""
    checked = 0
    for name, (program, _) in DAEMONS.items():
        keys = _help_keys(program)
        if keys is None:
            continue
        prefix = f"OMNI_{program.upper()}_"
        for var in config["services"][name]["environment"]:
            if var.startswith(prefix):
                assert var in keys, f"{name}: {var} is not a key of {program} ({BIN})"
                checked += 1
    if not checked:
        pytest.skip(f"no daemon built in {BIN}")


def test_podman_override_publishes_on_loopback_only():
    with open(OVERRIDE, encoding="utf-8") as f:
        override = yaml.safe_load(f)
    production = raw()["services"]
    for name, service in override["services"].items():
        assert name in production, f"override adds service {name}"
        for port in service.get("ports") or []:
            assert str(port).startswith("127.0.0.1:"), (name, port)
        if name in COLLECTORS:
            assert not service.get("ports"), name
        # podman-compose 1.0.3 appends lists when merging: an override list
        # would extend, not replace, the production one (command, test)
        assert not isinstance(service.get("command"), list), name
        assert not isinstance((service.get("healthcheck") or {}).get("test"), list), name


def test_podman_engine_settings():
    import tomllib
    with open(os.path.join(DEPLOY, "podman", "containers.conf"), "rb") as f:
        conf = tomllib.load(f)
    assert conf["engine"]["runtime"] == "runc"
    assert "nofile=20000:20000" in conf["containers"]["default_ulimits"]
    assert "nproc=32768:32768" in conf["containers"]["default_ulimits"]


# ---------------------------------------------------------------------------
# Profile "cluster" (docs/deploy.md, "Scale past one machine"): checked on the
# file itself (a compose implementation's `config` leaves profiles out).
CLUSTER_NATS = ["nats-1", "nats-2", "nats-3"]
CLUSTER_DAEMONS = {  # service -> (program, HTTP port)
    "ingestd-js-1": ("ingestd", 9100),
    "ingestd-js-2": ("ingestd", 9100),
    "relationald-js-1": ("relationald", 9102),
    "relationald-js-2": ("relationald", 9102),
}
NATS_URLS = "nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222"


def test_cluster_profile_is_opt_in():
    services = raw()["services"]
    default = {name for name, s in services.items() if not s.get("profiles")}
    # the default stack is the LMDB one, one of each, unchanged
    assert default == {"timescaledb", "mongodb", "ingestd", "archiverd", "relationald",
                       "documentd", "metricsd", "collector-git"}
    for name in CLUSTER_NATS + list(CLUSTER_DAEMONS):
        assert services[name]["profiles"] == ["cluster"], name


def test_cluster_nats_nodes_route_to_each_other():
    services = raw()["services"]
    with open(os.path.join(DEPLOY, "nats", "omni.conf"), encoding="utf-8") as f:
        conf = f.read()
    assert re.search(r"^jetstream\s*\{", conf, re.M)
    assert re.search(r"^\s*port:\s*6222", conf, re.M)
    # ingestd's max_record_size (4 MiB) and the headers must fit in a message
    payload = re.search(r"^max_payload:\s*(\d+)MB", conf, re.M)
    assert payload and int(payload.group(1)) * 1024 * 1024 >= 4 * 1024 * 1024 + 1024
    volumes = set()
    for name in CLUSTER_NATS:
        command = services[name]["command"]
        assert command[command.index("--name") + 1] == name
        routes = set(command[command.index("--routes") + 1].split(","))
        assert routes == {f"nats://{n}:6222" for n in CLUSTER_NATS if n != name}, name
        mounts = services[name]["volumes"]
        assert "./nats/omni.conf:/etc/nats/omni.conf:ro" in mounts
        data = [m.split(":")[0] for m in mounts if m.split(":")[1] == "/data"]
        assert len(data) == 1 and data[0] in raw()["volumes"], (name, mounts)
        volumes.add(data[0])
        assert "8222/healthz" in services[name]["healthcheck"]["test"]
    assert len(volumes) == 3, "each NATS node needs its own store"


def test_cluster_daemons_on_the_stream(config):
    services = config["services"] if "ingestd-js-1" in config["services"] else raw()["services"]
    journals = set()
    for name, (program, port) in CLUSTER_DAEMONS.items():
        env = services[name]["environment"]
        prefix = f"OMNI_{program.upper()}_"
        assert env[prefix + "NATS_URLS"] == NATS_URLS, name
        assert env[prefix + "HTTP"] == f"0.0.0.0:{port}", name
        assert f"http://127.0.0.1:{port}/health" in services[name]["healthcheck"]["test"]
        assert not any(k.endswith("_DELIVERY") for k in env), name
        keys = _help_keys(program)
        if keys is not None:
            for var in env:
                if var.startswith(prefix):
                    assert var in keys, f"{name}: {var} is not a key of {program}"
        if program == "ingestd":
            assert env["OMNI_INGESTD_JOURNAL"] == "jetstream"
            assert env["OMNI_INGESTD_REPLICAS"] == "3"
            journals.add(services[name]["volumes"][0].split(":")[0])
    assert len(journals) == 2, "each ingestd instance keeps its own dead letters"


def test_cluster_profile_in_the_local_run():
    with open(OVERRIDE, encoding="utf-8") as f:
        override = yaml.safe_load(f)["services"]
    for name in CLUSTER_NATS + list(CLUSTER_DAEMONS):
        assert override[name]["image"].startswith("${OMNI_LOCAL_"), name
    # make test-deploy creates and starts every service of the profile
    script = open(os.path.join(DEPLOY, "test-deploy.sh"), encoding="utf-8").read()
    listed = re.search(r"CLUSTER=\(([^)]*)\)", script.split("CLUSTER=()", 1)[1]).group(1).split()
    assert sorted(listed) == sorted(CLUSTER_NATS + list(CLUSTER_DAEMONS))
