#!/usr/bin/env bash
# make test-deploy: the production compose stack, for real, with podman and no
# registry (deploy/podman/). Builds the images, brings the stack up with
# podman-compose (writers first, ingestd and the stores last: any start order
# works), runs three replicas of collector-git on three repositories made here,
# waits for health, checks that PostgreSQL, the document store and the archive
# hold exactly the commits of the three repositories, taps the pipeline with
# omni-tap from the host, stops a writer, collects more, restarts it and checks
# that nothing was lost or duplicated, and brings everything down (also on
# failure or Ctrl-C) leaving no container.
#
# Then the profile "cluster" (the JetStream journal): three NATS nodes, two
# ingestd instances and two relationald instances sharing the consumer; two
# more repositories collected through both ingestd instances, stored by one
# relationald instance, then by the other, then by both with a NATS node and
# an ingestd instance killed; PostgreSQL holds every commit once, the stream
# ends empty.
#
# Parts whose programs are not built yet are skipped and said so: documentd
# (and then the document store), metricsd, relationald (and then the cluster).
#
# Environment: OMNI_BIN (host binaries for omni-tap, default build/bin),
# OMNI_DEPLOY_TIMEOUT (seconds to wait for each state, default 180),
# OMNI_DEPLOY_KEEP=1 (leave the run folder var/deploy/test-run for a look).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/podman/lib.sh"

export COMPOSE_PROJECT_NAME=omniaudit-test
RUN="$OMNI_VAR/test-run"
export OMNI_COMPOSE_DIR="$RUN"
BIN="${OMNI_BIN:-$OMNI_ROOT/build/bin}"
TIMEOUT="${OMNI_DEPLOY_TIMEOUT:-180}"
PY=/usr/bin/python3

# ---------------------------------------------------------------------------
# Bookkeeping: phases timed, checks counted, everything down on any exit.

T0=$SECONDS
PHASES=(); PHASE_NAME=""; PHASE_T=$SECONDS
PASSED=0; FAILED=0; SKIPPED=0
phase() {
    [ -n "$PHASE_NAME" ] && PHASES+=("$(printf '%-28s %4ss' "$PHASE_NAME" $((SECONDS - PHASE_T)))")
    PHASE_NAME=$1; PHASE_T=$SECONDS
    [ -n "$1" ] && log "== $1"
    return 0
}
pass() { PASSED=$((PASSED + 1)); log "ok: $*"; }
skip() { SKIPPED=$((SKIPPED + 1)); log "skipped: $*"; }
fail() { FAILED=$((FAILED + 1)); log "FAILED: $*"; exit 1; }

TAP_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ -n "$TAP_PID" ] && kill "$TAP_PID" 2>/dev/null && wait "$TAP_PID" 2>/dev/null
    phase "down"
    if [ $rc -ne 0 ] && [ -n "$(project_containers 2>/dev/null)" ]; then
        mkdir -p "$RUN/logs"
        for c in $(podman ps -a --format '{{.Names}}' --filter "label=io.podman.compose.project=$COMPOSE_PROJECT_NAME"); do
            podman logs "$c" >"$RUN/logs/$c.log" 2>&1 || true
        done
        log "container logs: $RUN/logs/"
    fi
    if "$OMNI_DEPLOY/podman/down.sh" -v; then
        [ $rc -eq 0 ] && pass "stack down, no container left"
    else
        rc=1; FAILED=$((FAILED + 1))
    fi
    phase ""
    log "timings:"
    for p in "${PHASES[@]}"; do log "  $p"; done
    log "  $(printf '%-28s %4ss' total $((SECONDS - T0)))"
    [ $rc -ne 0 ] && [ $FAILED -eq 0 ] && FAILED=1
    [ "${OMNI_DEPLOY_KEEP:-0}" = 1 ] || [ $rc -ne 0 ] || rm -rf "$RUN"
    echo "test-deploy: $PASSED passed, $FAILED failed, $SKIPPED skipped"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# A command failing under set -e says where, so that no failure is silent.
set -E
trap 'FAILED=$((FAILED + 1)); log "FAILED: line $LINENO: $BASH_COMMAND"' ERR

until_true() {  # WHAT COMMAND...: polls COMMAND every 0.5 s until it succeeds
    local what=$1 deadline=$((SECONDS + TIMEOUT)); shift
    until "$@"; do
        [ $SECONDS -lt $deadline ] || fail "timed out after ${TIMEOUT}s: $what"
        sleep 0.5
    done
}

# ---------------------------------------------------------------------------
phase "tools"
need_podman
missing=()
for p in python3-pymongo; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] || need_packages_force "${missing[@]}"
[ -x "$BIN/omni-tap" ] || make -C "$OMNI_ROOT" --no-print-directory programs >/dev/null
[ -x "$BIN/omni-tap" ] || fail "$BIN/omni-tap is not built"
# A run that died without its trap (kill -9) may have left its stack.
"$OMNI_DEPLOY/podman/down.sh" -v >/dev/null

phase "images"
"$OMNI_DEPLOY/podman/build-images.sh"
programs=" $(podman run --rm --entrypoint /bin/ls "$OMNI_IMAGE" /usr/local/bin | tr '\n' ' ') "
has() { [[ "$programs" == *" $1 "* ]]; }
log "programs in $OMNI_IMAGE:$programs"
has ingestd && has archiverd || fail "the image lacks ingestd or archiverd"

WRITER_DAEMONS=(archiverd); WRITER_NAMES=(archive)
has relationald && { WRITER_DAEMONS+=(relationald); WRITER_NAMES+=(relational); }
has documentd && { WRITER_DAEMONS+=(documentd); WRITER_NAMES+=(document); }
has metricsd && { WRITER_DAEMONS+=(metricsd); WRITER_NAMES+=(metrics); }
has relationald || skip "PostgreSQL checks: relationald is not built yet"
has documentd || skip "document store checks: documentd is not built yet"
has metricsd || skip "metricsd: not built yet"
STORES=()
{ has relationald || has metricsd; } && STORES+=(timescaledb)
has documentd && STORES+=(mongodb)
has collectord || fail "the image lacks collectord"

# ---------------------------------------------------------------------------
phase "prepare"
rm -rf "$RUN"; mkdir -p "$RUN/repos"
cp "$OMNI_DEPLOY/docker-compose.yml" "$RUN/"
cp -r "$OMNI_DEPLOY/postgres-init" "$RUN/"
cp -r "$OMNI_DEPLOY/nats" "$RUN/"

# Three repositories with known histories (different contents: different shas).
REPOS=(alpha beta gamma); declare -A COMMITS=([alpha]=5 [beta]=8 [gamma]=13)
make_commits() {  # REPO FROM TO
    local dir="$RUN/repos/$1" i
    for ((i = $2; i <= $3; i++)); do
        echo "$1 change $i" >>"$dir/history.txt"
        git -C "$dir" add history.txt
        GIT_AUTHOR_DATE="2024-01-$(printf %02d $((i % 28 + 1)))T12:00:00Z" \
            GIT_COMMITTER_DATE="2024-01-$(printf %02d $((i % 28 + 1)))T12:00:00Z" \
            git -C "$dir" -c user.name="Dev $1" -c user.email="$1@example.org" \
                commit -q -m "$1: change $i"
    done
}
for r in "${REPOS[@]}"; do
    git init -q -b main "$RUN/repos/$r"
    make_commits "$r" 1 "${COMMITS[$r]}"
done
chmod -R a+rX "$RUN/repos"

# Free ports on 127.0.0.1 for what the override publishes.
read -r P_INTAKE P_TAP P_ING P_ARC P_REL P_DOC P_MET P_PG P_MONGO < <($PY - <<'PY'
import socket
socks = [socket.socket() for _ in range(9)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
)
MONGO_DB=omniaudit_test
WRITERS_CSV=$(IFS=,; echo "${WRITER_NAMES[*]}")
cat >"$RUN/.env" <<EOF
POSTGRES_USER=omniaudit
POSTGRES_PASSWORD=pg-$RANDOM$RANDOM
POSTGRES_DB=omniaudit
OMNI_METRICS_DB=omniaudit_metrics
MONGO_USER=omniaudit
MONGO_PASSWORD=mongo-$RANDOM$RANDOM
MONGO_DB=$MONGO_DB
OMNI_WRITERS=$WRITERS_CSV
OMNI_JOURNAL_MAX=256M
OMNI_INTAKE_PUBLISH=127.0.0.1:$P_INTAKE
OMNI_TAP_PUBLISH=127.0.0.1:$P_TAP
OMNI_LOCAL_HTTP_INGESTD=$P_ING
OMNI_LOCAL_HTTP_ARCHIVERD=$P_ARC
OMNI_LOCAL_HTTP_RELATIONALD=$P_REL
OMNI_LOCAL_HTTP_DOCUMENTD=$P_DOC
OMNI_LOCAL_HTTP_METRICSD=$P_MET
OMNI_LOCAL_PG_PORT=$P_PG
OMNI_LOCAL_MONGO_PORT=$P_MONGO
OMNI_LOCAL_IMAGE=$OMNI_IMAGE
OMNI_GIT_REPOS=$RUN/repos
OMNI_GIT_REPO=/repos
OMNI_GIT_INTERVAL=2s
OMNI_LOG_FORMAT=kv
EOF
pass "3 repositories (${COMMITS[alpha]}, ${COMMITS[beta]}, ${COMMITS[gamma]} commits), writers $WRITERS_CSV"

# ---------------------------------------------------------------------------
phase "up (writers first)"
cname() { echo "${COMPOSE_PROJECT_NAME}_$1_1"; }
# Created, not started (podman-compose 1.0.3: --no-start without -d), then
# started by hand in the order wanted. podman-compose exits 0 whatever podman
# said: the containers are checked.
# The profile "cluster" is created here too (started last, in its own phase).
CLUSTER=()
has relationald && CLUSTER=(nats-1 nats-2 nats-3 ingestd-js-1 ingestd-js-2 relationald-js-1 relationald-js-2)
compose up --no-build --no-start "${STORES[@]}" ingestd "${WRITER_DAEMONS[@]}" "${CLUSTER[@]}" \
    >"$RUN/compose-up.log" 2>&1 || true
for s in "${STORES[@]}" ingestd "${WRITER_DAEMONS[@]}" "${CLUSTER[@]}"; do
    podman container exists "$(cname "$s")" ||
        { grep -i -B2 "error" "$RUN/compose-up.log" | tail -n 20 >&2; fail "podman-compose up did not create $s"; }
done
for w in "${WRITER_DAEMONS[@]}"; do podman start "$(cname "$w")" >/dev/null 2>&1; done
# Each writer serves /health (unhealthy: no ingestd yet) before ingestd exists.
for w in "${WRITER_DAEMONS[@]}"; do
    port=$(http_port_of "$w")
    until_true "$w serving /health" curl -sS -o /dev/null --max-time 2 "http://127.0.0.1:$port/health"
done
pass "writers up before ingestd and the stores: ${WRITER_DAEMONS[*]}"
for s in ingestd "${STORES[@]}"; do podman start "$(cname "$s")" >/dev/null 2>&1; done

phase "health"
metric() {  # NAME{labels} from ingestd's /metrics
    curl -fsS --max-time 2 "http://127.0.0.1:$P_ING/metrics" 2>/dev/null |
        awk -v n="$1" '$1 == n { print $2; exit }'
}
wait_health ingestd "$P_ING" "$TIMEOUT" || fail "ingestd is not healthy"
writer_ready() {  # DAEMON WRITER
    local body code
    body=$(curl -sS --max-time 2 -w '\n%{http_code}' "http://127.0.0.1:$(http_port_of "$1")/health" 2>/dev/null) || return 1
    code=${body##*$'\n'}; body=${body%$'\n'*}; body=${body%$'\n'}
    [ "$code" = 200 ] && { log "$1 healthy: $body"; return 0; }
    # An idle writer says "not connected" a few seconds after WELCOME (it
    # hears nothing back from ingestd between deliveries): ingestd's own view
    # of the connection decides then, provided the store is fine.
    if [[ "$body" == "not connected"* ]] && [ "$(metric "omni_ingestd_writer_connected{writer=\"$2\"}")" = 1 ]; then
        log "$1 connected (ingestd: writer_connected=1; its /health says: $body)"
        return 0
    fi
    return 1
}
for i in "${!WRITER_DAEMONS[@]}"; do
    until_true "${WRITER_DAEMONS[$i]} ready" writer_ready "${WRITER_DAEMONS[$i]}" "${WRITER_NAMES[$i]}"
done
pass "ingestd and every writer healthy (/health from the host)"
# The compose healthchecks themselves, run by podman on demand (it runs none
# by itself without systemd).
for s in ingestd "${STORES[@]}"; do
    until_true "healthcheck of $s" podman healthcheck run "$(cname "$s")"
done
pass "compose healthchecks pass: ingestd ${STORES[*]}"

# omnictl in the image, inside the network: every daemon by service name.
declare -A INNER_PORT=([archiverd]=9101 [relationald]=9102 [documentd]=9103 [metricsd]=9104)
targets="ingestd=ingestd:9100"
for w in "${WRITER_DAEMONS[@]}"; do targets+=",$w=$w:${INNER_PORT[$w]}"; done
podman exec "$(cname ingestd)" omnictl status --sample=0 --targets="$targets" >"$RUN/omnictl.txt" 2>&1 ||
    { cat "$RUN/omnictl.txt" >&2; fail "omnictl status inside the network"; }
pass "omnictl status inside the network reaches every daemon by service name"

# ---------------------------------------------------------------------------
phase "tap + 3 collector-git replicas"
"$BIN/omni-tap" --endpoint="tcp://127.0.0.1:$P_TAP" --kind=git.commit --format=json \
    >"$RUN/tap.jsonl" 2>"$RUN/tap.log" &
TAP_PID=$!
tap_subscribed() { [ "$(metric omni_ingestd_tap_subscriptions)" != "" ] && [ "$(metric omni_ingestd_tap_subscriptions)" != 0 ]; }
until_true "omni-tap subscribed from the host" tap_subscribed

# Expected: every commit sha of every repository.
expected_all() { local r; for r in "${REPOS[@]}"; do git -C "$RUN/repos/$r" rev-list --all; done | sort; }
# One replica per repository: the service as it is, its repository from -e.
for r in "${REPOS[@]}"; do
    compose run -d -T --no-deps -e "OMNI_GIT_REPO=/repos/$r" collector-git >>"$RUN/compose-run.log" 2>&1
done
replicas() {
    podman ps -q --filter "label=io.podman.compose.project=$COMPOSE_PROJECT_NAME" \
        --filter "label=com.docker.compose.service=collector-git" | wc -l
}
[ "$(replicas)" = 3 ] || { tail -n 20 "$RUN/compose-run.log" >&2; fail "collector-git replicas running: $(replicas), not 3"; }
pass "3 replicas of collector-git running, one repository each"
for c in $(podman ps -q --filter "label=io.podman.compose.project=$COMPOSE_PROJECT_NAME" \
    --filter "label=com.docker.compose.service=collector-git"); do
    until_true "healthcheck of collector-git $c" podman healthcheck run "$c"
done
pass "collector-git healthchecks pass (their /health, no host port)"

# ---------------------------------------------------------------------------
# What each store holds: one sha a line (duplicates kept, to be caught).
shas_pg() {
    podman exec "$(cname timescaledb)" psql -U omniaudit -d omniaudit -XAtq \
        -c "SELECT c.sha FROM commits c JOIN sources s ON s.id = c.source_id" 2>/dev/null || true
}
ARCHIVE_DIR=""
shas_archive() {
    [ -n "$ARCHIVE_DIR" ] || ARCHIVE_DIR=$(podman volume inspect --format '{{.Mountpoint}}' \
        "${COMPOSE_PROJECT_NAME}_archive")
    find "$ARCHIVE_DIR" -path '*/.*' -prune -o -path '*git.commit*' -name '*.jsonl' -print0 |
        xargs -0 -r cat | $PY -c '
import json, sys
for line in sys.stdin:
    print(json.loads(line)["body"]["sha"])'
}
shas_mongo() {
    $PY - "$P_MONGO" "$MONGO_DB" <<'PY' 2>/dev/null
import sys
from pymongo import MongoClient
db = MongoClient("127.0.0.1", int(sys.argv[1]), serverSelectionTimeoutMS=3000)[sys.argv[2]]
for doc in db["git_commits"].find({}):
    body = doc.get("body") if isinstance(doc.get("body"), dict) else doc
    print(body.get("sha"))
PY
}
shas_tap() {
    $PY -c '
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    try:
        print(json.loads(line)["body"]["sha"])
    except (ValueError, KeyError):
        pass' "$RUN/tap.jsonl" | sort -u
}
STORE_CHECKS=(archive)
has relationald && STORE_CHECKS+=(pg)
has documentd && STORE_CHECKS+=(mongo)

holds_exactly() {  # STORE: its shas, duplicates included, are the expected ones
    local got
    got=$("shas_$1" | sort) || return 1
    [ -n "$got" ] && [ "$got" = "$(expected_all)" ]
}
all_stored() {
    local s
    for s in "${STORE_CHECKS[@]}"; do holds_exactly "$s" || return 1; done
}
report_stores() {
    local s
    for s in "${STORE_CHECKS[@]}"; do
        log "  $s: $("shas_$s" | wc -l) rows, $("shas_$s" | sort -u | wc -l) distinct; expected $(expected_all | wc -l)"
    done
    log "  ingestd journal records: $(metric omni_ingestd_journal_records)"
}

phase "stored exactly"
if ! (until_true "every store holding the commits" all_stored); then
    report_stores; fail "the stores do not hold exactly the commits of the three repositories"
fi
total=$(expected_all | wc -l)
pass "$total commits, exactly, in: ${STORE_CHECKS[*]}"
has relationald && [ "$(podman exec "$(cname timescaledb)" psql -U omniaudit -d omniaudit -XAtq \
    -c 'SELECT count(DISTINCT s.name) FROM commits c JOIN sources s ON s.id = c.source_id')" = 3 ] &&
    pass "PostgreSQL: 3 sources"
tap_complete() { [ "$(shas_tap)" = "$(expected_all)" ]; }
until_true "the tap showing every commit" tap_complete
pass "omni-tap on the host saw all $total commits go by"

# ---------------------------------------------------------------------------
phase "writer stop / collect / restart"
VICTIM=archiverd; VICTIM_NAME=archive
has relationald && { VICTIM=relationald; VICTIM_NAME=relational; }
podman stop -t 30 "$(cname "$VICTIM")" >/dev/null 2>&1
code=$(podman inspect --format '{{.State.ExitCode}}' "$(cname "$VICTIM")")
[ "$code" = 0 ] || fail "$VICTIM exited $code on SIGTERM (expected a drain and 0)"
pass "$VICTIM stopped by SIGTERM, drained, exit 0"
# New commits in alpha while the writer is down: alpha's replica, running,
# collects them on its next interval (incrementally).
NEW=4
make_commits alpha $((COMMITS[alpha] + 1)) $((COMMITS[alpha] + NEW))
chmod -R a+rX "$RUN/repos/alpha"
# (The commits, and the run and branch records around them: at least NEW.)
lag_at_least() {
    local lag; lag=$(metric "omni_ingestd_writer_lag_records{writer=\"$VICTIM_NAME\"}")
    [ -n "$lag" ] && [ "${lag%.*}" -ge "$1" ]
}
until_true "ingestd holding the new records for $VICTIM" lag_at_least "$NEW"
others_have_it() {
    local s
    for s in "${STORE_CHECKS[@]}"; do
        [ "$s" = pg ] && [ "$VICTIM" = relationald ] && continue
        [ "$s" = archive ] && [ "$VICTIM" = archiverd ] && continue
        holds_exactly "$s" || return 1
    done
}
until_true "the other writers storing the new commits" others_have_it
pass "while $VICTIM is down: the others stored the $NEW new commits, ingestd keeps them for it"
podman start "$(cname "$VICTIM")" >/dev/null 2>&1
until_true "$VICTIM ready again" writer_ready "$VICTIM" "$VICTIM_NAME"
if ! (until_true "every store holding every commit" all_stored); then
    report_stores; fail "after the restart of $VICTIM the stores do not hold exactly every commit"
fi
pass "$VICTIM restarted: nothing lost, nothing duplicated ($(expected_all | wc -l) commits in ${STORE_CHECKS[*]})"

# ---------------------------------------------------------------------------
phase "backups"
if has relationald; then
    podman exec "$(cname timescaledb)" pg_dump -U omniaudit -Fc omniaudit >"$RUN/relational.dump"
    n=$(podman exec -i "$(cname timescaledb)" pg_restore -f - <"$RUN/relational.dump" |
        grep -c '^COPY public.commits ')
    [ "$n" = 1 ] || fail "pg_dump of relationald's database holds no commits table"
    pass "pg_dump of relationald's database ($(du -h "$RUN/relational.dump" | cut -f1))"
fi
podman stop -t 30 "$(cname archiverd)" >/dev/null 2>&1
podman run --rm -v "${COMPOSE_PROJECT_NAME}_archive:/v:ro" -v "$RUN:/b" --user 0 "$OMNI_IMAGE" \
    tar -C /v -czf /b/archive.tgz . >/dev/null 2>&1
podman start "$(cname archiverd)" >/dev/null 2>&1
n=$(tar -xzOf "$RUN/archive.tgz" --wildcards '*git.commit*.jsonl' | wc -l)
[ "$n" = "$(expected_all | wc -l)" ] || fail "the archive backup holds $n commits"
tar -tzf "$RUN/archive.tgz" >"$RUN/archive.list"
grep -q '^\./\.[^/]' "$RUN/archive.list" || fail "the archive backup lacks archiverd's state"
pass "archive backed up with its state while archiverd was stopped ($n commits)"
until_true "archiverd ready again" writer_ready archiverd archive

# ---------------------------------------------------------------------------
# Profile "cluster": the JetStream journal on three NATS nodes, two ingestd
# instances, two relationald instances sharing the consumer `relational`.
[ ${#CLUSTER[@]} -gt 0 ] || { skip "profile cluster: relationald is not built yet"; exit 0; }
phase "cluster: NATS"
# (podman healthcheck run prints "unhealthy" each time it is polled too soon)
healthy() { podman healthcheck run "$(cname "$1")" >/dev/null 2>&1; }
for n in nats-1 nats-2 nats-3; do podman start "$(cname "$n")" >/dev/null 2>&1; done
for n in nats-1 nats-2 nats-3; do
    until_true "healthcheck of $n (JetStream on)" healthy "$n"
done
# The stream of three replicas can be made once the cluster elected its
# JetStream meta leader, seen by every node.
meta_leader() {  # NODE: prints the meta leader it knows
    podman exec "$(cname "$1")" curl -fsS --max-time 2 http://127.0.0.1:8222/jsz 2>/dev/null |
        $PY -c 'import json, sys; print(json.load(sys.stdin).get("meta_cluster", {}).get("leader", ""))'
}
cluster_formed() {
    local n l
    for n in nats-1 nats-2 nats-3; do
        l=$(meta_leader "$n") || return 1
        [ -n "$l" ] || return 1
    done
}
until_true "the NATS cluster electing a JetStream leader" cluster_formed
pass "3 NATS nodes clustered, JetStream meta leader $(meta_leader nats-1)"

phase "cluster: ingestd x2, relationald"
# /metrics and /health of a service of the profile (no host port): from inside.
inner() {  # SERVICE PORT PATH
    podman exec "$(cname "$1")" curl -fsS --max-time 2 "http://127.0.0.1:$2$3" 2>/dev/null
}
inner_metric() {  # SERVICE PORT NAME{labels}
    # (awk reads to the end: an early exit would make curl fail on SIGPIPE)
    inner "$1" "$2" /metrics | awk -v n="$3" '$1 == n && !found { print $2; found = 1 }'
}
for s in ingestd-js-1 ingestd-js-2; do podman start "$(cname "$s")" >/dev/null 2>&1; done
for s in ingestd-js-1 ingestd-js-2; do
    until_true "healthcheck of $s" healthy "$s"
done
inner ingestd-js-1 9100 /health >"$RUN/ingestd-js-1.health" || true
grep -q "^stream OMNI: .*replicas=3" "$RUN/ingestd-js-1.health" ||
    { cat "$RUN/ingestd-js-1.health" >&2; fail "ingestd-js-1's /health shows no stream of 3 replicas"; }
pass "2 ingestd instances healthy on the stream: $(grep '^stream ' "$RUN/ingestd-js-1.health")"
# One relationald instance first: it must store everything by itself.
podman start "$(cname relationald-js-1)" >/dev/null 2>&1
until_true "healthcheck of relationald-js-1" healthy relationald-js-1
pass "relationald-js-1 healthy on the consumer relational"

phase "cluster: collect, one writer"
CREPOS=(delta epsilon); declare -A CCOMMITS=([delta]=21 [epsilon]=34)
for r in "${CREPOS[@]}"; do
    git init -q -b main "$RUN/repos/$r"
    make_commits "$r" 1 "${CCOMMITS[$r]}"
done
chmod -R a+rX "$RUN/repos"
# Both ingestd instances in each collector's list, in opposite orders: each
# collector sends to its first while it answers, so both instances take records.
compose run -d -T --no-deps -e OMNI_GIT_REPO=/repos/delta \
    -e OMNI_COLLECTORD_INTAKE=tcp://ingestd-js-1:5550,tcp://ingestd-js-2:5550 \
    collector-git >>"$RUN/compose-run.log" 2>&1
DELTA_COLLECTOR=$(podman ps -q --latest)
compose run -d -T --no-deps -e OMNI_GIT_REPO=/repos/epsilon \
    -e OMNI_COLLECTORD_INTAKE=tcp://ingestd-js-2:5550,tcp://ingestd-js-1:5550 \
    collector-git >>"$RUN/compose-run.log" 2>&1
EPSILON_COLLECTOR=$(podman ps -q --latest)
expected_cluster() { { expected_all; local r; for r in "${CREPOS[@]}"; do git -C "$RUN/repos/$r" rev-list --all; done; } | sort; }
pg_exact() { local got; got=$(shas_pg | sort); [ "$got" = "$(expected_cluster)" ]; }
report_pg() {
    log "  pg: $(shas_pg | wc -l) rows, $(shas_pg | sort -u | wc -l) distinct; expected $(expected_cluster | wc -l)"
    local s
    for s in ingestd-js-1 ingestd-js-2; do
        log "  $s: accepted $(inner_metric "$s" 9100 omni_ingestd_records_accepted_total)," \
            "stream messages $(inner_metric "$s" 9100 omni_ingestd_stream_messages)," \
            "relational pending $(inner_metric "$s" 9100 'omni_ingestd_consumer_pending{writer="relational"}')"
    done
}
stored_by() {  # relationald-js-N: records it stored
    local v; v=$(inner_metric "$1" 9102 omni_relationald_records_stored_total); echo "${v%.*}"
}
pg_exact_or_fail() {  # WHAT
    if ! (until_true "$1" pg_exact); then report_pg; fail "$1: PostgreSQL does not hold every commit once"; fi
}
pg_exact_or_fail "PostgreSQL holding the cluster's commits"
for s in ingestd-js-1 ingestd-js-2; do
    n=$(inner_metric "$s" 9100 omni_ingestd_records_accepted_total)
    [ -n "$n" ] && [ "${n%.*}" -gt 0 ] || fail "$s accepted no record"
    log "$s accepted ${n%.*} records"
done
n1=$(stored_by relationald-js-1)
pass "$(expected_cluster | wc -l) commits once in PostgreSQL, through both ingestd instances, stored by relationald-js-1 ($n1 records)"

phase "cluster: the other writer"
# The second instance joins the consumer, the first stops (SIGTERM: hands
# back what it holds): new commits are the second's alone.
podman start "$(cname relationald-js-2)" >/dev/null 2>&1
until_true "healthcheck of relationald-js-2" healthy relationald-js-2
podman stop -t 30 "$(cname relationald-js-1)" >/dev/null 2>&1
code=$(podman inspect --format '{{.State.ExitCode}}' "$(cname relationald-js-1)")
[ "$code" = 0 ] || fail "relationald-js-1 exited $code on SIGTERM (expected a drain and 0)"
make_commits delta $((CCOMMITS[delta] + 1)) $((CCOMMITS[delta] + 6))
make_commits epsilon $((CCOMMITS[epsilon] + 1)) $((CCOMMITS[epsilon] + 6))
CCOMMITS[delta]=$((CCOMMITS[delta] + 6)); CCOMMITS[epsilon]=$((CCOMMITS[epsilon] + 6))
chmod -R a+rX "$RUN/repos"
pg_exact_or_fail "PostgreSQL holding the commits made while relationald-js-1 was stopped"
n2=$(stored_by relationald-js-2)
[ -n "$n2" ] && [ "$n2" -gt 0 ] || fail "relationald-js-2 stored nothing"
pass "relationald-js-1 drained (exit 0), relationald-js-2 stored the new commits ($n2 records), each once"

phase "cluster: both writers, a NATS node and an ingestd killed"
podman start "$(cname relationald-js-1)" >/dev/null 2>&1
until_true "healthcheck of relationald-js-1 again" healthy relationald-js-1
# What ingestd-js-1 acknowledged is in the stream: its collector (delta) moves
# to ingestd-js-2 and sends it what was not acknowledged.
podman kill "$(cname nats-3)" >/dev/null 2>&1
podman kill "$(cname ingestd-js-1)" >/dev/null 2>&1
make_commits delta $((CCOMMITS[delta] + 1)) $((CCOMMITS[delta] + 8))
make_commits epsilon $((CCOMMITS[epsilon] + 1)) $((CCOMMITS[epsilon] + 8))
CCOMMITS[delta]=$((CCOMMITS[delta] + 8)); CCOMMITS[epsilon]=$((CCOMMITS[epsilon] + 8))
chmod -R a+rX "$RUN/repos"
pg_exact_or_fail "PostgreSQL holding the commits made with nats-3 and ingestd-js-1 killed"
pass "nats-3 and ingestd-js-1 killed (SIGKILL), both relationald instances on the consumer: $(expected_cluster | wc -l) commits once" \
    "(records stored: relationald-js-1 $(stored_by relationald-js-1) since its restart, relationald-js-2 $(stored_by relationald-js-2))"
failovers=$(podman exec "$DELTA_COLLECTOR" curl -fsS --max-time 2 http://127.0.0.1:9105/metrics |
    awk '$1 == "omni_collectord_failovers_total" && !found { print $2; found = 1 }')
[ -n "$failovers" ] && [ "${failovers%.*}" -ge 1 ] ||
    fail "delta's collector counted no failover from ingestd-js-1 (failovers_total=$failovers)"
pass "delta's collector failed over from ingestd-js-1 to ingestd-js-2 (failovers_total=${failovers%.*})"
podman start "$(cname nats-3)" "$(cname ingestd-js-1)" >/dev/null 2>&1
until_true "healthcheck of ingestd-js-1 again" healthy ingestd-js-1
# The collectors stopped (each sends run records every interval): the stream
# must then empty.
podman stop -t 30 "$DELTA_COLLECTOR" "$EPSILON_COLLECTOR" >/dev/null 2>&1
stream_drained() {  # interest retention: gone from the stream once stored
    local s m p
    for s in ingestd-js-1 ingestd-js-2; do
        m=$(inner_metric "$s" 9100 omni_ingestd_stream_messages)
        p=$(inner_metric "$s" 9100 'omni_ingestd_consumer_pending{writer="relational"}')
        [ "${m%.*}" = 0 ] && [ "${p%.*}" = 0 ] || return 1
    done
}
until_true "the stream empty once every record was acknowledged" stream_drained
pass "the stream holds nothing once relational acknowledged it (messages 0, pending 0)"
current3() { local c; c=$(inner_metric ingestd-js-1 9100 omni_ingestd_stream_replicas_current); [ "${c%.*}" = 3 ]; }
until_true "nats-3 current again" current3
pass "nats-3 and ingestd-js-1 restarted, nats-3 current again (replicas current 3)"
podman exec "$(cname ingestd-js-1)" omnictl status --sample=0 \
    --targets=ingestd-js-1=ingestd-js-1:9100,ingestd-js-2=ingestd-js-2:9100,relationald-js-1=relationald-js-1:9102,relationald-js-2=relationald-js-2:9102 \
    >"$RUN/omnictl-cluster.txt" 2>&1 || { cat "$RUN/omnictl-cluster.txt" >&2; fail "omnictl status on the cluster"; }
grep -q "consumer relational: pending=" "$RUN/omnictl-cluster.txt" ||
    { cat "$RUN/omnictl-cluster.txt" >&2; fail "omnictl status shows no consumer state"; }
pass "omnictl status shows the stream and the consumer: $(grep -m1 '^stream ' "$RUN/omnictl-cluster.txt")"
