#!/usr/bin/env bash
# omni-run: what `make run` runs once the build is done. Audits a repository
# (by default this one) with the whole pipeline on this machine:
#   ingestd, the writers whose stores answer (archive always; relational and
#   metrics when PostgreSQL answers; document when MongoDB answers), then
#   `collectord git --once` (and `collectord code --once` when built), waits
#   until every writer has stored everything, prints what was stored where and
#   how to look at it, writes an HTML and a PDF report of the repository
#   (omni-report, when relationald ran; reports/ beside the archive), and stops
#   everything. Ctrl-C stops everything too.
#
# Settings (environment; `make run VAR=value` works as well):
#   OMNI_BIN          binaries (default: build/bin of this tree)
#   OMNI_RUN_REPO     repository to audit (default: this tree)
#   OMNI_RUN_DIR      work directory (default: var/run of this tree)
#   OMNI_RUN_KEEP=1   keep the journal, archive and collector state of the last
#                     run (incremental); by default each run starts afresh
#   OMNI_RUN_HOLD=1   keep the pipeline up after the summary until Ctrl-C (to
#                     look with omni-tap, omnictl, psql while it runs)
#   OMNI_RUN_TIMEOUT  seconds to wait for the writers to catch up (600)
#   OMNI_RUN_PORT_BASE  first of 11 consecutive ports to use (intake, delivery,
#                     tap, the HTTP ports of ingestd, archiverd, relationald,
#                     documentd, metricsd and the collector, a private
#                     PostgreSQL, a private MongoDB-wire server); each must be
#                     free. Default: 5550-5552 and 9100-9105 when free, else free ones
#   OMNI_PG_DSN       PostgreSQL (postgresql://postgres@127.0.0.1:5432/omniaudit);
#                     the database is created when missing; "off" = do not use;
#                     "private" = a cluster of the run's own (initdb under
#                     OMNI_RUN_DIR), which is also what happens when the default
#                     server does not answer and PostgreSQL's server programs
#                     are installed
#   OMNI_MONGO_URI    MongoDB (mongodb://127.0.0.1:27017); "off" = do not use;
#                     "private" = a FerretDB of the run's own (tools/
#                     mongo-test-server.sh: built once when Go is there), which
#                     is also what happens when nothing answers at the default
#   OMNI_MONGO_DB     MongoDB database (omniaudit)
#   OMNI_PYTHON       the python3 used to count MongoDB documents with pymongo
#                     (/usr/bin/python3); without pymongo or mongosh, documentd's
#                     own count is shown
# The numbers of the summary are also written to $OMNI_RUN_DIR/summary.env.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${OMNI_BIN:-$ROOT/build/bin}
REPO=$(cd "${OMNI_RUN_REPO:-$ROOT}" 2>/dev/null && pwd) || { echo "omni-run: no directory ${OMNI_RUN_REPO:-}" >&2; exit 2; }
WORK=${OMNI_RUN_DIR:-$ROOT/var/run}
KEEP=${OMNI_RUN_KEEP:-0}
HOLD=${OMNI_RUN_HOLD:-0}
TIMEOUT=${OMNI_RUN_TIMEOUT:-600}
PG_DEFAULT=postgresql://postgres@127.0.0.1:5432/omniaudit
MONGO_DEFAULT=mongodb://127.0.0.1:27017
PG_DSN=${OMNI_PG_DSN:-$PG_DEFAULT}
MONGO_URI=${OMNI_MONGO_URI:-$MONGO_DEFAULT}
PYTHON=${OMNI_PYTHON:-/usr/bin/python3}
PORT_BASE=${OMNI_RUN_PORT_BASE:-}
MONGO_DB=${OMNI_MONGO_DB:-omniaudit}
export PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-3}

TTY=0; [ -t 1 ] && TTY=1
say()  { printf '%s\n' "$*"; }
step() { printf '\n== %s\n' "$*"; }
warn() { printf 'omni-run: %s\n' "$*" >&2; }

# ---------------------------------------------------------------------------
# Processes: every daemon started here is recorded, and stopped on any exit.

NAMES=(); PIDS=()
STOPPING=0
SETSID=$(command -v setsid || true)

stop_pid() {  # NAME PID: SIGTERM, wait for the drain, SIGKILL as a last resort
    local name=$1 pid=$2 waited=0
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    kill -TERM "$pid" 2>/dev/null
    while kill -0 "$pid" 2>/dev/null && [ $waited -lt 300 ]; do
        sleep 0.1; waited=$((waited + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
        warn "$name did not stop within 30s of SIGTERM: killed (see $LOGS/$name.log)"
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    local rc=$?
    [ $rc -eq 0 ] || [ $rc -eq 143 ] || warn "$name exited $rc (see $LOGS/$name.log)"
    return 0
}

# Private servers (started for this run): stopped after the daemons that use them.
PRIVATE_STOPS=()

stop_all() {
    [ $STOPPING -eq 1 ] && return
    STOPPING=1
    stop_daemons
    local s
    for s in "${PRIVATE_STOPS[@]}"; do $s; done
    PRIVATE_STOPS=()
}

stop_daemons() {
    [ ${#PIDS[@]} -eq 0 ] && return
    say ""
    say "stopping: ${NAMES[*]}"
    # Collectors and writers first (they drain into ingestd), ingestd last.
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${NAMES[$i]}" "${PIDS[$i]}"
    done
    PIDS=(); NAMES=()
}

DONE=0
on_signal() {
    trap - INT TERM
    say ""
    [ $DONE = 1 ] || say "interrupted: stopping everything"
    stop_all
    # After the summary (OMNI_RUN_HOLD), Ctrl-C is the normal way out.
    [ $DONE = 1 ] && exit 0
    exit 130
}
trap on_signal INT TERM
trap stop_all EXIT

die() {
    warn "$*"
    exit 1
}

# A log's last lines, to say why something failed.
log_tail() { [ -f "$LOGS/$1.log" ] && tail -n "${2:-15}" "$LOGS/$1.log" | sed 's/^/    /' >&2; }

start() {  # NAME ARGS...: runs $BIN/NAME in the background, logs to $LOGS/NAME.log
    local name=$1; shift
    local bin=$BIN/${name%%:*}
    # A session of its own: Ctrl-C reaches this script only, whose trap stops
    # the daemons one by one with one SIGTERM each. Also reached by the
    # terminal's SIGINT, a daemon would take the SIGTERM as a second signal
    # and exit at once, without draining (docs/operations.md).
    $SETSID "$bin" "$@" >>"$LOGS/${name//:/-}.log" 2>&1 &
    NAMES+=("$name"); PIDS+=($!)
}

pid_of() {
    local i
    for i in "${!NAMES[@]}"; do [ "${NAMES[$i]}" = "$1" ] && echo "${PIDS[$i]}"; done
}

# ---------------------------------------------------------------------------
# HTTP without a client program: bash's /dev/tcp, HTTP/1.0 (one request per
# connection, the server closes it). Prints the status code, then the body.
# No `timeout` wrapper: it would swallow Ctrl-C (bash runs the INT trap only
# when its child dies of SIGINT); reads time out by themselves.

http_get() {  # PORT PATH
    {
        printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
        local line first=1 body=0 fields
        while IFS= read -r -t 5 -u 3 line || [ -n "$line" ]; do
            line=${line%$'\r'}
            if [ $first = 1 ]; then
                read -r -a fields <<<"$line"; printf '%s\n' "${fields[1]:-}"; first=0
            elif [ $body = 1 ]; then
                printf '%s\n' "$line"
            elif [ -z "$line" ]; then
                body=1
            fi
            line=""
        done
    } 2>/dev/null 3<>"/dev/tcp/127.0.0.1/$1"
}

health_status() { http_get "$1" /health | head -n 1; }
health_text()   { http_get "$1" /health | sed -n 2p; }

# metric PORT NAME: the value of one series, e.g. name{writer="archive"}
metric() {
    http_get "$1" /metrics | awk -v name="$2" 'NR > 1 && $1 == name { print $2; exit }'
}

# health_field TEXT KEY: the value of KEY=VALUE in ingestd's health text
health_field() { printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }

wait_healthy() {  # NAME PORT: until /health answers 200; fails when the daemon exits
    local name=$1 port=$2 pid tries=0 status
    pid=$(pid_of "$name")
    while :; do
        status=$(health_status "$port")
        [ "$status" = 200 ] && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            warn "$name exited during start-up:"; log_tail "${name//:/-}"; exit 1
        fi
        tries=$((tries + 1))
        if [ $tries -ge 300 ]; then
            warn "$name not healthy after 30s: $(health_text "$port")"; log_tail "${name//:/-}"; exit 1
        fi
        sleep 0.1
    done
}

# ---------------------------------------------------------------------------
# Ports: with OMNI_RUN_PORT_BASE, base + a fixed offset each, which must be
# free; otherwise the defaults when free, else free ones. Listening sockets are
# read from /proc/net/tcp{,6} (state 0A), so nothing is bound to find out.

LISTENING=" "
for f in /proc/net/tcp /proc/net/tcp6; do
    [ -r "$f" ] || continue
    while read -r _ local _ state _; do
        [ "$state" = 0A ] && LISTENING+="$((16#${local##*:})) "
    done < <(tail -n +2 "$f")
done
TAKEN=$LISTENING

if [ -n "$PORT_BASE" ]; then
    [[ "$PORT_BASE" =~ ^[0-9]+$ ]] && [ "$PORT_BASE" -ge 1024 ] && [ "$PORT_BASE" -le 65524 ] ||
        { warn "OMNI_RUN_PORT_BASE=$PORT_BASE: give a port from 1024 to 65524 (11 ports from it are used)"; exit 2; }
fi

port() {  # VAR DEFAULT OFFSET: sets VAR to its port (see above); DEFAULT 0 = any free one
    local p=$2
    if [ -n "$PORT_BASE" ]; then
        p=$((PORT_BASE + $3))
        if [[ "$LISTENING" == *" $p "* ]]; then
            warn "port $p (OMNI_RUN_PORT_BASE=$PORT_BASE + $3) is in use: choose another base"
            exit 2
        fi
        printf -v "$1" '%s' "$p"
        return
    fi
    [ "$p" = 0 ] && p=$((20000 + RANDOM % 30000))
    while [[ "$TAKEN" == *" $p "* ]]; do p=$((20000 + RANDOM % 30000)); done
    TAKEN+="$p "
    printf -v "$1" '%s' "$p"
}

# ---------------------------------------------------------------------------
# Stores

psql_q() {  # DSN SQL...: one value or rows, unaligned, no headers
    local dsn=$1; shift
    psql "$dsn" -X -At -q -v ON_ERROR_STOP=1 "$@"
}

# The same server, the maintenance database: URI path or dbname= replaced.
pg_admin_dsn() {
    case $1 in
    postgres://* | postgresql://*)
        printf '%s\n' "$1" | sed -E 's#^(postgres(ql)?://[^/?]*)(/[^?]*)?#\1/postgres#' ;;
    *dbname=*) printf '%s\n' "$1" | sed -E 's/dbname=[^ ]*/dbname=postgres/' ;;
    *) printf '%s dbname=postgres\n' "$1" ;;
    esac
}

pg_dbname() {
    case $1 in
    postgres://* | postgresql://*)
        printf '%s\n' "$1" | sed -E 's#^postgres(ql)?://[^/?]*/?##; s#\?.*##' ;;
    *dbname=*) printf '%s\n' "$1" | sed -E 's/.*dbname=([^ ]*).*/\1/' ;;
    *) echo "" ;;
    esac
}

pg_create_db() {  # the database of PG_DSN, created on its server when only it is missing
    local admin db
    admin=$(pg_admin_dsn "$PG_DSN"); db=$(pg_dbname "$PG_DSN")
    [ -n "$db" ] && psql_q "$admin" -c 'SELECT 1' >/dev/null 2>&1 || return 2
    psql_q "$admin" -v db="$db" >/dev/null 2>&1 <<'SQL'
SELECT format('CREATE DATABASE %I', :'db') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SQL
}

# A PostgreSQL cluster of the run's own, from the installed server programs:
# initdb under the work directory (as the postgres user when root: initdb
# refuses root), its own port, stopped with the pipeline. Sets PG_DSN.
PRIVATE_PG_DIR=""; PRIVATE_PG_AS=(); PRIVATE_PG_BIN=""
private_pg() {
    local d
    for d in "$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/x)")" \
        $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then PRIVATE_PG_BIN=$d; break; fi
    done
    [ -n "$PRIVATE_PG_BIN" ] || { PG_WHY="PostgreSQL's server programs (initdb, pg_ctl) are not installed"; return 1; }
    PRIVATE_PG_DIR=$WORK/pg
    mkdir -p "$PRIVATE_PG_DIR"
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || { PG_WHY="running as root and there is no postgres user to run initdb as"; return 1; }
        PRIVATE_PG_AS=(runuser -u postgres --)
        chown postgres: "$PRIVATE_PG_DIR"
        # The work directory may sit where that user cannot reach (under /root).
        if ! runuser -u postgres -- test -w "$PRIVATE_PG_DIR"; then
            rm -rf "$PRIVATE_PG_DIR"
            PRIVATE_PG_DIR=$(mktemp -d /tmp/omni-run-pg-XXXXXX)
            chmod 755 "$PRIVATE_PG_DIR"; chown postgres: "$PRIVATE_PG_DIR"
        fi
    fi
    if [ ! -f "$PRIVATE_PG_DIR/data/PG_VERSION" ]; then
        "${PRIVATE_PG_AS[@]}" "$PRIVATE_PG_BIN/initdb" -D "$PRIVATE_PG_DIR/data" -U postgres \
            --auth=trust -E UTF8 --locale=C -N >"$PRIVATE_PG_DIR/initdb.log" 2>&1 ||
            { PG_WHY="initdb failed (see $PRIVATE_PG_DIR/initdb.log)"; return 1; }
    fi
    "${PRIVATE_PG_AS[@]}" "$PRIVATE_PG_BIN/pg_ctl" -D "$PRIVATE_PG_DIR/data" \
        -l "$PRIVATE_PG_DIR/server.log" -w -t 60 \
        -o "-p $PRIVATE_PG_PORT -c listen_addresses=127.0.0.1 -k $PRIVATE_PG_DIR" start >/dev/null 2>&1 ||
        { PG_WHY="it did not start (see $PRIVATE_PG_DIR/server.log)"; return 1; }
    PRIVATE_STOPS+=(stop_private_pg)
    PG_DSN=postgresql://postgres@127.0.0.1:$PRIVATE_PG_PORT/omniaudit
    pg_create_db || { PG_WHY="its database could not be created"; return 1; }
}

stop_private_pg() {
    "${PRIVATE_PG_AS[@]}" "$PRIVATE_PG_BIN/pg_ctl" -D "$PRIVATE_PG_DIR/data" -m fast -w stop >/dev/null 2>&1 ||
        warn "the private PostgreSQL did not stop (see $PRIVATE_PG_DIR/server.log)"
    case $PRIVATE_PG_DIR in /tmp/omni-run-pg-*) rm -rf "$PRIVATE_PG_DIR" ;; esac
}

pg_ready() {  # answers, creating the database when only it is missing
    [ "$PG_DSN" = off ] && { say "PostgreSQL: off (OMNI_PG_DSN=off)"; return 1; }
    command -v psql >/dev/null || { say "PostgreSQL: skipped (no psql client; install postgresql-client)"; return 1; }
    PG_WHY=""
    if [ "$PG_DSN" = private ]; then
        if private_pg; then
            say "PostgreSQL: a private cluster for this run, $PRIVATE_PG_DIR (port $PRIVATE_PG_PORT)"
            return 0
        fi
        say "PostgreSQL: no private cluster ($PG_WHY): skipped"
        return 1
    fi
    if psql_q "$PG_DSN" -c 'SELECT 1' >/dev/null 2>&1; then
        say "PostgreSQL: $(pg_display) answers"
        return 0
    fi
    local rc=0
    pg_create_db || rc=$?
    if [ $rc = 0 ]; then
        say "PostgreSQL: $(pg_display) answers (database $(pg_dbname "$PG_DSN") created)"
        return 0
    elif [ $rc = 1 ]; then
        say "PostgreSQL: the server answers but database $(pg_dbname "$PG_DSN") cannot be created: skipped"
        return 1
    fi
    # Nothing answers at the default: a cluster of our own, when possible.
    if [ -z "${OMNI_PG_DSN:-}" ]; then
        if private_pg; then
            say "PostgreSQL: nothing answers at $PG_DEFAULT: a private cluster for this run, $PRIVATE_PG_DIR (port $PRIVATE_PG_PORT)"
            return 0
        fi
        say "PostgreSQL: nothing answers at $PG_DEFAULT and no private cluster ($PG_WHY): skipped (set OMNI_PG_DSN to use one)"
        return 1
    fi
    say "PostgreSQL: $(pg_display) does not answer: skipped (set OMNI_PG_DSN to use one)"
    return 1
}

pg_display() { printf '%s\n' "$PG_DSN" | sed -E 's#(://[^:/@]*):[^@]*@#\1:***@#; s/password=[^ ]*/password=***/'; }

MONGO_TOOL=""
mongo_eval() {  # JS: prints the result, by mongosh or the legacy shell
    "$MONGO_TOOL" --quiet "$MONGO_URI" --eval "$1" 2>/dev/null
}
mongo_py() {  # PYTHON [SOURCES]: with `db` and `srcs` (a list) bound, by pymongo
    "$PYTHON" - "$MONGO_URI" "$MONGO_DB" "$1" "${2:-}" <<'PY' 2>/dev/null
import sys
from pymongo import MongoClient
client = MongoClient(sys.argv[1], serverSelectionTimeoutMS=3000)
db = client[sys.argv[2]]
srcs = [s for s in sys.argv[4].split("\t") if s]
exec(sys.argv[3])
PY
}

# Whether a TCP port accepts connections. The redirection runs in a subshell
# of its own: on a `{ ...; }` group a failed /dev/tcp redirection does not
# make the command fail, and a closed port read as an open one.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# A MongoDB-wire server of the run's own: the FerretDB the tests use
# (tools/mongo-test-server.sh), when a binary is there or Go can build one.
# Sets MONGO_URI.
PRIVATE_MONGO_DIR=""
private_mongo() {
    local have=0 c
    for c in "${OMNI_FERRETDB:-}" "$(command -v ferretdb 2>/dev/null)" "${GOPATH:-$HOME/go}/bin/ferretdb" \
        "$ROOT/var/deploy/ferretdb/ferretdb" "$ROOT/var/ferretdb/ferretdb"; do
        [ -n "$c" ] && [ -x "$c" ] && have=1
    done
    if [ $have = 0 ]; then
        if ! command -v go >/dev/null && [ ! -x /usr/local/go/bin/go ]; then
            MONGO_WHY="no FerretDB binary and no Go to build one"
            return 1
        fi
        say "MongoDB: building FerretDB once for a private server (var/ferretdb; a few minutes; OMNI_MONGO_URI=off skips MongoDB)"
    fi
    PRIVATE_MONGO_DIR=$WORK/mongo
    mkdir -p "$PRIVATE_MONGO_DIR"
    echo "$PRIVATE_MONGO_PORT" >"$PRIVATE_MONGO_DIR/port"
    if ! MONGO_URI=$(OMNI_TEST_MONGO_URI="" "$ROOT/tools/mongo-test-server.sh" start "$PRIVATE_MONGO_DIR" \
        2>"$PRIVATE_MONGO_DIR/start.log"); then
        "$ROOT/tools/mongo-test-server.sh" stop "$PRIVATE_MONGO_DIR" >/dev/null 2>&1
        MONGO_WHY="FerretDB did not start (see $PRIVATE_MONGO_DIR/start.log)"
        return 1
    fi
    MONGO_URI=${MONGO_URI%/}
    PRIVATE_STOPS+=(stop_private_mongo)
}

stop_private_mongo() { "$ROOT/tools/mongo-test-server.sh" stop "$PRIVATE_MONGO_DIR" >/dev/null 2>&1; }

mongo_ready() {
    [ "$MONGO_URI" = off ] && { say "MongoDB: off (OMNI_MONGO_URI=off)"; return 1; }
    MONGO_WHY=""
    if [ "$MONGO_URI" = private ]; then
        if ! private_mongo; then
            say "MongoDB: no private server ($MONGO_WHY): skipped"
            return 1
        fi
        say "MongoDB: a private FerretDB for this run, $MONGO_URI ($PRIVATE_MONGO_DIR)"
    fi
    # On this machine a refused connection says it at once, where the clients
    # would wait for their server selection timeout. (Remote hosts are left to
    # the clients: bash's connect has no timeout.)
    local hostport host mport port_answers=0
    hostport=$(printf '%s\n' "$MONGO_URI" | sed -nE 's#^mongodb://([^@/]*@)?([^,/?]+).*#\2#p')
    if [ -n "$hostport" ]; then
        host=${hostport%:*}; mport=${hostport##*:}
        [ "$host" = "$hostport" ] && mport=27017
        host=${host#[}; host=${host%]}
        if [[ "$host" =~ ^(127\.0\.0\.1|localhost|::1)$ ]]; then
            if ! port_open "$host" "$mport"; then
                if [ -n "${OMNI_MONGO_URI:-}" ]; then
                    say "MongoDB: $MONGO_URI does not answer: skipped (set OMNI_MONGO_URI to use one)"
                    return 1
                fi
                if ! private_mongo; then
                    say "MongoDB: nothing answers at $MONGO_DEFAULT and no private server ($MONGO_WHY): skipped (set OMNI_MONGO_URI to use one)"
                    return 1
                fi
                say "MongoDB: nothing answers at $MONGO_DEFAULT: a private FerretDB for this run, $MONGO_URI ($PRIVATE_MONGO_DIR)"
            fi
            port_answers=1
        fi
    fi
    local tool
    for tool in mongosh mongo; do
        if command -v $tool >/dev/null; then
            MONGO_TOOL=$tool
            [ "$(mongo_eval 'db.runCommand({ping: 1}).ok')" = 1 ] && { say "MongoDB: $MONGO_URI answers"; return 0; }
        fi
    done
    MONGO_TOOL=""
    if [ -x "$PYTHON" ] && [ "$(mongo_py 'print(int(client.admin.command("ping")["ok"]))')" = 1 ]; then
        MONGO_TOOL=pymongo
        say "MongoDB: $MONGO_URI answers"
        return 0
    fi
    if [ $port_answers = 1 ] && ! command -v mongosh >/dev/null && ! command -v mongo >/dev/null \
        && ! "$PYTHON" -c "import pymongo" 2>/dev/null; then
        say "MongoDB: $MONGO_URI answers (no mongosh or pymongo here to count its documents)"
        return 0
    fi
    say "MongoDB: $MONGO_URI does not answer: skipped (set OMNI_MONGO_URI to use one)"
    return 1
}

# ---------------------------------------------------------------------------
# Start-up

[ -d "$REPO/.git" ] || git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1 || die "$REPO is not a git repository"
for b in ingestd collectord; do
    [ -x "$BIN/$b" ] || die "$BIN/$b is not built (run make)"
done

mkdir -p "$WORK"
exec 9>"$WORK/.lock"
flock -n 9 || die "another omni-run uses $WORK (set OMNI_RUN_DIR for a second one)"
if [ "$KEEP" != 1 ]; then
    rm -rf "$WORK/journal" "$WORK/archive" "$WORK/collector" "$WORK/logs" "$WORK/summary.env" \
        "$WORK/pg" "$WORK/mongo"
fi
LOGS=$WORK/logs
mkdir -p "$LOGS"

port INTAKE_PORT 5550 0; port DELIVERY_PORT 5551 1; port TAP_PORT 5552 2
INTAKE=tcp://127.0.0.1:$INTAKE_PORT
DELIVERY=tcp://127.0.0.1:$DELIVERY_PORT
TAP=tcp://127.0.0.1:$TAP_PORT
declare -A HTTP
port 'HTTP[ingestd]' 9100 3; port 'HTTP[archiverd]' 9101 4; port 'HTTP[relationald]' 9102 5
port 'HTTP[documentd]' 9103 6; port 'HTTP[metricsd]' 9104 7; port COLLECTOR_HTTP 9105 8
port PRIVATE_PG_PORT 0 9; port PRIVATE_MONGO_PORT 0 10
declare -A WRITER_OF=([archiverd]=archive [relationald]=relational [documentd]=document
                      [metricsd]=metrics)

step "stores"
WRITERS=()   # daemon names
want() {  # DAEMON: runs it when built
    if [ -x "$BIN/$1" ]; then WRITERS+=("$1"); return 0; fi
    say "$1: not built yet, skipped ($BIN/$1)"
    return 1
}
want archiverd && say "archive: $WORK/archive"
PG_OK=0; MONGO_OK=0
if pg_ready; then PG_OK=1; want relationald; fi
if mongo_ready; then MONGO_OK=1; want documentd; fi
[ $PG_OK = 1 ] && want metricsd
[ ${#WRITERS[@]} -gt 0 ] || die "no writer can run (archiverd is not built: run make)"
writer_names=()
for w in "${WRITERS[@]}"; do writer_names+=("${WRITER_OF[$w]}"); done
WRITER_LIST=$(IFS=,; echo "${writer_names[*]}")

step "pipeline"
start ingestd --intake="$INTAKE" --delivery="$DELIVERY" --tap="$TAP" \
    --journal-dir="$WORK/journal" --writers="$WRITER_LIST" --http="127.0.0.1:${HTTP[ingestd]}"
wait_healthy ingestd "${HTTP[ingestd]}"
say "ingestd      intake $INTAKE  delivery $DELIVERY  tap $TAP  http :${HTTP[ingestd]}  writers $WRITER_LIST"
for w in "${WRITERS[@]}"; do
    args=(--delivery="$DELIVERY" --http="127.0.0.1:${HTTP[$w]}")
    case $w in
    archiverd)   args+=(--archive-dir="$WORK/archive") ;;
    relationald) args+=(--dsn="$PG_DSN") ;;
    metricsd)    args+=(--dsn="$PG_DSN") ;;
    documentd)   args+=(--uri="$MONGO_URI" --database="$MONGO_DB") ;;
    esac
    start "$w" "${args[@]}"
done
for w in "${WRITERS[@]}"; do
    wait_healthy "$w" "${HTTP[$w]}"
    printf '%-12s writer %-10s http :%s\n' "$w" "${WRITER_OF[$w]}" "${HTTP[$w]}"
done
targets="ingestd=127.0.0.1:${HTTP[ingestd]}"
for w in "${WRITERS[@]}"; do targets+=",$w=127.0.0.1:${HTTP[$w]}"; done
# The tools that show it at work, when they are built.
look_live() {  # PREFIX
    local prefix=$1
    if [ -x "$BIN/omnictl" ]; then
        say "${prefix}$BIN/omnictl status --watch --targets=$targets"; prefix=${prefix//?/ }
    fi
    if [ -x "$BIN/omni-tap" ]; then
        say "${prefix}$BIN/omni-tap --endpoint=$TAP --kind=git. --format=pretty"
    fi
}
look_live "watch it:    "

# ---------------------------------------------------------------------------
# Collection

progress() {  # one line: what ingestd took in, and what each writer has stored
    local h m line w n
    h=$(health_text "${HTTP[ingestd]}")
    # Counters, not the lag gauges: those are refreshed on ingestd's 250 ms tick.
    m=$(http_get "${HTTP[ingestd]}" /metrics)
    line="accepted $(health_field "$h" accepted) rejected $(health_field "$h" rejected) in journal $(health_field "$h" in_journal) | stored:"
    for w in "${WRITERS[@]}"; do
        n=$(awk -v name="omni_ingestd_records_acked_total{writer=\"${WRITER_OF[$w]}\"}" \
            '$1 == name { print $2; exit }' <<<"$m")
        line+=" ${WRITER_OF[$w]} ${n:-?}"
    done
    if [ $TTY = 1 ]; then printf '\r  %s\033[K' "$line"; else printf '  %s\n' "$line"; fi
}

collect() {  # MODE: collectord MODE --once on the repository, with progress
    local mode=$1 pid rc ticks=0 args help
    args=(--intake="$INTAKE" --once)
    help=$("$BIN/collectord" "$mode" --help 2>&1)
    # Its state (what was sent already) under the work directory, and its own
    # /metrics on a free port, when it has these options.
    [[ "$help" == *--state-dir* ]] && args+=(--state-dir="$WORK/collector")
    [[ "$help" == *--http* ]] && args+=(--http="127.0.0.1:$COLLECTOR_HTTP")
    say "collectord $mode --once $REPO"
    start "collectord:$mode" "$mode" "${args[@]}" "$REPO"
    pid=$(pid_of "collectord:$mode")
    while kill -0 "$pid" 2>/dev/null; do
        # On a terminal every 0.5 s, in a log every 5 s.
        if [ $TTY = 1 ] || [ $((ticks % 10)) = 0 ]; then progress; fi
        ticks=$((ticks + 1))
        sleep 0.5
    done
    wait "$pid"; rc=$?
    # Forget it: it has exited, there is nothing to stop.
    local i
    for i in "${!PIDS[@]}"; do
        [ "${PIDS[$i]}" = "$pid" ] && { unset 'PIDS[i]' 'NAMES[i]'; }
    done
    PIDS=("${PIDS[@]}"); NAMES=("${NAMES[@]}")
    progress; [ $TTY = 1 ] && printf '\n'
    if [ $rc -ne 0 ]; then
        warn "collectord $mode exited $rc:"; log_tail "collectord-$mode"; exit 1
    fi
}

step "collection"
collect git
if "$BIN/collectord" code --help >/dev/null 2>&1; then
    collect code
else
    say "collectord code: not available yet, skipped"
fi

# Every writer has stored everything when ingestd's journal is empty: a
# record leaves it once every configured writer has acknowledged it.
step "waiting for the writers"
deadline=$((SECONDS + TIMEOUT))
while :; do
    h=$(health_text "${HTTP[ingestd]}")
    [ "$(health_field "$h" in_journal)" = 0 ] && break
    if [ $SECONDS -ge $deadline ]; then
        progress; printf '\n'
        "$BIN/omnictl" status --sample=0 --targets="$targets" 2>/dev/null
        die "the writers did not catch up within ${TIMEOUT}s (OMNI_RUN_TIMEOUT)"
    fi
    for w in "${WRITERS[@]}"; do
        kill -0 "$(pid_of "$w")" 2>/dev/null || { warn "$w exited:"; log_tail "$w"; exit 1; }
    done
    progress
    sleep 0.5
done
progress; [ $TTY = 1 ] && printf '\n'
say "every writer has acknowledged every record"

# ---------------------------------------------------------------------------
# Summary

SUMMARY=$WORK/summary.env
: >"$SUMMARY"
record() { printf '%s=%s\n' "$1" "$2" >>"$SUMMARY"; }

step "summary"
commits=$(git -C "$REPO" rev-list --all | wc -l)
h=$(health_text "${HTTP[ingestd]}")
say "repository   $REPO: $commits commits (git rev-list --all)"
say "ingestd      received $(health_field "$h" received), accepted $(health_field "$h" accepted), rejected $(health_field "$h" rejected)"
record repo "$REPO"
record commits "$commits"
for k in received accepted rejected; do record "ingestd_$k" "$(health_field "$h" $k)"; done
for w in "${WRITERS[@]}"; do
    n=$(metric "${HTTP[$w]}" "omni_${w}_records_stored_total")
    record "${w}_stored" "${n:-0}"
done

# The record sources of this run, from the archive (the records' src).
SOURCES=()
if [ -d "$WORK/archive" ]; then
    while IFS= read -r s; do SOURCES+=("$s"); done < <(
        find "$WORK/archive" -path '*/.*' -prune -o -name '*.jsonl' -print0 |
            xargs -0 -r cat | grep -o '"src":"[^"]*"' | sort -u | sed 's/^"src":"//; s/"$//')
fi

if [ -d "$WORK/archive" ]; then
    say ""
    say "archive      $WORK/archive  (JSON Lines, one file per kind and day)"
    for d in "$WORK/archive"/*/; do
        [ -d "$d" ] || continue
        kind=$(basename "$d")
        n=$(find "$d" -name '*.jsonl' -print0 | xargs -0 -r cat | wc -l)
        printf '  %-14s %8s lines\n' "$kind" "$n"
        record "archive_${kind//[^a-zA-Z0-9]/_}" "$n"
    done
fi

# Without an archive: the sources whose runs targeted this repository.
if [ ${#SOURCES[@]} -eq 0 ] && [ $PG_OK = 1 ] && [[ " ${WRITERS[*]} " == *" relationald "* ]]; then
    while IFS= read -r s; do [ -n "$s" ] && SOURCES+=("$s"); done < <(
        psql_q "$PG_DSN" -v repo="$REPO" 2>/dev/null <<'SQL'
SELECT DISTINCT s.name FROM runs r JOIN sources s ON s.id = r.source_id WHERE r.target = :'repo';
SQL
    )
fi

PG_TABLES=(runs commits commit_files branches tags ci_builds ci_tests code_stats rejected_records)
if [ $PG_OK = 1 ] && [[ " ${WRITERS[*]} " == *" relationald "* ]]; then
    say ""
    say "PostgreSQL   $(pg_display)  (rows of source(s): ${SOURCES[*]:-all})"
    for t in "${PG_TABLES[@]}"; do
        exists=$(psql_q "$PG_DSN" -v t="$t" 2>/dev/null <<'SQL'
SELECT to_regclass(:'t') IS NOT NULL;
SQL
        )
        [ "$exists" = t ] || continue
        srcs=$(printf '%s\n' "${SOURCES[@]}" | paste -sd '\t' -)
        if [ ${#SOURCES[@]} -eq 0 ] || [ "$t" = rejected_records ]; then
            n=$(psql_q "$PG_DSN" -v t="$t" 2>/dev/null <<<'SELECT count(*) FROM :"t";')
        elif [ "$t" = commit_files ]; then
            n=$(psql_q "$PG_DSN" -v srcs="$srcs" 2>/dev/null <<'SQL'
SELECT count(*) FROM commit_files f JOIN commits c ON c.id = f.commit_id
    JOIN sources s ON s.id = c.source_id WHERE s.name = ANY (string_to_array(:'srcs', E'\t'));
SQL
            )
        else
            n=$(psql_q "$PG_DSN" -v t="$t" -v srcs="$srcs" 2>/dev/null <<'SQL'
SELECT count(*) FROM :"t" x JOIN sources s ON s.id = x.source_id
    WHERE s.name = ANY (string_to_array(:'srcs', E'\t'));
SQL
            )
        fi
        printf '  %-16s %8s rows\n' "$t" "${n:-?}"
        record "pg_$t" "${n:-}"
    done
fi

if [ $MONGO_OK = 1 ] && [[ " ${WRITERS[*]} " == *" documentd "* ]]; then
    say ""
    say "MongoDB      $MONGO_URI database $MONGO_DB  (documents of source(s): ${SOURCES[*]:-all})"
    srcs=$(printf '%s\n' "${SOURCES[@]}" | paste -sd '\t' -)
    case $MONGO_TOOL in
    pymongo)
        out=$(mongo_py 'q = {"src": {"$in": srcs}} if srcs else {}
for c in sorted(db.list_collection_names()): print(c, db[c].count_documents(q))' "$srcs") ;;
    mongosh)
        out=$(OMNI_SRCS=$srcs mongo_eval "const s = (process.env.OMNI_SRCS || '').split('\t').filter(x => x);
            const q = s.length ? {src: {\$in: s}} : {}; const d = db.getSiblingDB('$MONGO_DB');
            d.getCollectionNames().sort().forEach(c => print(c + ' ' + d.getCollection(c).countDocuments(q)))") ;;
    mongo)
        out=$(mongo_eval "var d = db.getSiblingDB('$MONGO_DB'); d.getCollectionNames().sort().forEach(function (c) { print(c + ' ' + d.getCollection(c).count()); })") ;;
    *) out="" ;;
    esac
    [ -z "$out" ] && say "  (no mongosh or pymongo to count; documentd stored $(metric "${HTTP[documentd]}" omni_documentd_records_stored_total) records)"
    while read -r c n; do
        [ -n "$c" ] || continue
        printf '  %-16s %8s documents\n' "$c" "$n"
        record "mongo_$c" "$n"
    done <<<"$out"
fi

if [[ " ${WRITERS[*]} " == *" metricsd "* ]]; then
    say ""
    say "time series  $(pg_display)  table points (metricsd), per series of source(s): ${SOURCES[*]:-all}"
    srcs=$(printf '%s\n' "${SOURCES[@]}" | paste -sd '\t' -)
    while IFS='|' read -r name n; do
        [ -n "$name" ] || continue
        printf '  %-24s %8s points\n' "$name" "$n"
        record "ts_${name//[^a-zA-Z0-9]/_}" "$n"
    done < <(psql_q "$PG_DSN" -v srcs="$srcs" 2>/dev/null <<'SQL'
SELECT name, count(*) FROM points
    WHERE :'srcs' = '' OR source = ANY (string_to_array(:'srcs', E'\t'))
    GROUP BY name ORDER BY name;
SQL
    )
fi

say ""
say "how to look"
[ -d "$WORK/archive" ] && say "  archive:    ls $WORK/archive/*/ ; head -n 3 $WORK/archive/git.commit/*.jsonl"
if [ $PG_OK = 1 ] && [[ " ${WRITERS[*]} " == *" relationald "* ]]; then
    say "  PostgreSQL: psql '$(pg_display)'${PRIVATE_PG_DIR:+   (private: up only while the pipeline is, see OMNI_RUN_HOLD)}"
    say "      SELECT s.name, count(*) FROM commits c JOIN sources s ON s.id = c.source_id GROUP BY 1;"
    say "      SELECT author_email, count(*) FROM commits GROUP BY 1 ORDER BY 2 DESC LIMIT 10;"
    say "      SELECT * FROM contributors LIMIT 10;   -- and the other views: \\dv"
fi
if [[ " ${WRITERS[*]} " == *" metricsd "* ]]; then
    say "  series:     SELECT name, count(*), min(time), max(time) FROM points GROUP BY name;"
fi
if [ $MONGO_OK = 1 ] && [[ " ${WRITERS[*]} " == *" documentd "* ]]; then
    say "  MongoDB:    mongosh '$MONGO_URI' --eval 'db.getSiblingDB(\"$MONGO_DB\").git_commits.findOne()'${PRIVATE_MONGO_DIR:+   (private: up only while the pipeline is)}"
fi
say "  live:       OMNI_RUN_HOLD=1 make run   keeps the pipeline up after this summary; meanwhile:"
look_live "              "
say "  logs:       $LOGS/"
say "  numbers:    $SUMMARY"

# Reports of the audited repository (omni-report), written while the stores
# are up: reports/ beside the archive, one HTML and one PDF.
if [ $PG_OK = 1 ] && [[ " ${WRITERS[*]} " == *" relationald "* ]] && [ -x "$BIN/omni-report" ]; then
    step "reports"
    src=""
    for s in "${SOURCES[@]}"; do case $s in *"$REPO"*) src=$s; break ;; esac; done
    [ -n "$src" ] || src=${SOURCES[0]:-}
    # The name as a LIKE pattern that matches it alone (a path may hold _ or %).
    pattern=$(printf '%s' "${src:-%}" | sed 's/[\\%_]/\\&/g')
    [ -n "$src" ] || pattern=%
    for kind in html pdf; do
        if out=$("$BIN/omni-report" "$kind" --dsn="$PG_DSN" --source="$pattern" \
            --project="${src:-all sources}" --archive-dir="$WORK/archive" \
            2>"$LOGS/omni-report-$kind.log"); then
            printf '%-12s %s\n' "$kind report" "$out"
            record "report_$kind" "$out"
        else
            warn "omni-report $kind failed (see $LOGS/omni-report-$kind.log):"
            tail -n 5 "$LOGS/omni-report-$kind.log" >&2
        fi
    done
    say "dashboard    $BIN/omni-report serve --dsn='$(pg_display)' --http=127.0.0.1:8180"
fi

DONE=1
if [ "$HOLD" = 1 ]; then
    say ""
    say "holding the pipeline up (OMNI_RUN_HOLD=1): Ctrl-C to stop"
    while :; do sleep 1; done
fi
stop_all
say "stopped"
