#!/usr/bin/env bash
# A MongoDB-wire server for the tests: FerretDB v1.24 on its SQLite backend.
#   tools/mongo-test-server.sh start DIR   prints the URI once the server answers
#   tools/mongo-test-server.sh stop DIR    stops the server started in DIR
#   tools/mongo-test-server.sh binary      prints the FerretDB binary (builds it)
# With OMNI_TEST_MONGO_URI set (e.g. a real mongod), start only prints it;
# stop stops only a server this script started in DIR (its pid file). DIR keeps the data, the log (ferretdb.log), the pid file
# and the port: a second start in the same DIR (after a stop or a kill) serves
# the same data on the same port, so an outage can be staged with one DIR.
#
# The binary: $OMNI_FERRETDB, else a working ferretdb on PATH, in $GOPATH/bin,
# var/deploy/ferretdb/ or var/ferretdb/, else it is built into var/ferretdb/.
# Why not the binary of `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.0`:
# the module ships an empty build/version/version.txt and that binary panics at
# start, so the module's source is built with the file written, as FerretDB's
# own build does (and as deploy/podman/build-images.sh does).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="v1.24.0"
MODULE="github.com/FerretDB/FerretDB"

die() { echo "mongo-test-server: $*" >&2; exit 1; }

works() { [ -n "$1" ] && [ -x "$1" ] && "$1" --version >/dev/null 2>&1; }

find_go() {
    local go minor
    go=$(command -v go || true)
    [ -n "$go" ] || { [ -x /usr/local/go/bin/go ] && go=/usr/local/go/bin/go; }
    if [ -z "$go" ]; then
        echo "mongo-test-server: installing golang-go to build FerretDB" >&2
        local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
        DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
            golang-go >&2
        go=$(command -v go) || die "no go toolchain"
    fi
    # FerretDB v1.24 needs Go 1.22. Go >= 1.21 fetches that toolchain by itself
    # (GOTOOLCHAIN=auto); for an older one (Debian 12 has 1.19) the same
    # toolchain module (golang.org/toolchain) is fetched from the Go module
    # proxy and unpacked into var/ferretdb/.
    minor=$("$go" env GOVERSION | sed -nE 's/^go1\.([0-9]+).*/\1/p')
    if [ -n "$minor" ] && [ "$minor" -lt 21 ]; then
        local want="go1.22.6" sdk="$ROOT/var/ferretdb/go1.22.6" dir
        if ! "$sdk/bin/go" version >/dev/null 2>&1; then
            echo "mongo-test-server: $("$go" version | cut -d' ' -f3) is too old, getting $want" >&2
            dir=$(cd /tmp && GOFLAGS=-mod=mod "$go" mod download -json \
                "golang.org/toolchain@v0.0.1-$want.$("$go" env GOOS)-$("$go" env GOARCH)" |
                /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin).get("Dir", ""))')
            [ -n "$dir" ] || die "could not fetch the $want toolchain"
            rm -rf "$sdk"
            mkdir -p "$(dirname "$sdk")"
            cp -r "$dir" "$sdk"
            chmod -R u+w "$sdk"
            # module zips keep no file modes
            chmod +x "$sdk"/bin/* "$sdk"/pkg/tool/*/*
        fi
        go="$sdk/bin/go"
    fi
    echo "$go"
}

build_ferretdb() {  # OUT: builds FerretDB $VERSION into OUT
    local out=$1 go dir src
    go=$(find_go)
    if [[ $go == "$ROOT/var/ferretdb/"* ]]; then
        export GOROOT="${go%/bin/go}" GOTOOLCHAIN=local
    fi
    echo "mongo-test-server: building FerretDB $VERSION with $("$go" version | cut -d' ' -f3)" >&2
    dir=$(cd /tmp && GOFLAGS=-mod=mod "$go" mod download -json "$MODULE@$VERSION" |
        /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin).get("Dir", ""))')
    [ -n "$dir" ] || die "could not fetch $MODULE@$VERSION"
    src=$(mktemp -d /tmp/omni-ferretdb-src-XXXXXX)
    cp -r "$dir/." "$src"
    chmod -R u+w "$src"
    echo "$VERSION" >"$src/build/version/version.txt"
    echo "omniaudit-test" >"$src/build/version/package.txt"
    if ! (cd "$src" && CGO_ENABLED=0 "$go" build -trimpath -buildvcs=false -o "$out.tmp" \
        ./cmd/ferretdb) >&2; then
        rm -rf "$src"
        die "building FerretDB failed"
    fi
    rm -rf "$src"
    mv "$out.tmp" "$out"
    works "$out" || die "the FerretDB just built does not run: $out"
}

ferretdb_binary() {
    if [ -n "${OMNI_FERRETDB:-}" ]; then
        works "$OMNI_FERRETDB" || die "OMNI_FERRETDB=$OMNI_FERRETDB does not run"
        echo "$OMNI_FERRETDB"; return
    fi
    local gopath="${GOPATH:-$HOME/go}" candidate
    for candidate in "$(command -v ferretdb || true)" "$gopath/bin/ferretdb" \
        "$ROOT/var/deploy/ferretdb/ferretdb" "$ROOT/var/ferretdb/ferretdb"; do
        if works "$candidate"; then echo "$candidate"; return; fi
    done
    mkdir -p "$ROOT/var/ferretdb"
    # One build at a time: concurrent test runs wait for the first one.
    exec 9>"$ROOT/var/ferretdb/.build.lock"
    flock 9
    works "$ROOT/var/ferretdb/ferretdb" || build_ferretdb "$ROOT/var/ferretdb/ferretdb"
    exec 9>&-
    echo "$ROOT/var/ferretdb/ferretdb"
}

free_port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Answers once the server replies to a ping (pymongo when present, else the
# port accepting connections).
answers() {  # PORT
    /usr/bin/python3 - "$1" <<'EOF' 2>/dev/null
import socket, sys
port = int(sys.argv[1])
try:
    import pymongo
except ImportError:
    socket.create_connection(("127.0.0.1", port), timeout=1).close()
    sys.exit(0)
c = pymongo.MongoClient(f"mongodb://127.0.0.1:{port}/", serverSelectionTimeoutMS=1000,
                        connectTimeoutMS=1000)
try:
    c.admin.command("ping")
finally:
    c.close()
EOF
}

running() {  # DIR
    [ -f "$1/ferretdb.pid" ] && kill -0 "$(cat "$1/ferretdb.pid")" 2>/dev/null
}

start() {
    local dir=$1 bin port pid attempts=3
    mkdir -p "$dir/data"
    dir=$(cd "$dir" && pwd)
    if running "$dir"; then
        echo "mongodb://127.0.0.1:$(cat "$dir/port")/"
        return
    fi
    bin=$(ferretdb_binary)
    # A restart in the same DIR keeps its port, so that clients keep their URI.
    [ -f "$dir/port" ] && attempts=1
    for _ in $(seq $attempts); do
        if [ -f "$dir/port" ]; then port=$(cat "$dir/port"); else port=$(free_port); fi
        echo "---- start $(date -Is) port $port" >>"$dir/ferretdb.log"
        "$bin" --handler=sqlite --sqlite-url="file:$dir/data/" --state-dir="$dir" \
            --listen-addr="127.0.0.1:$port" --telemetry=disable --debug-addr=- \
            --log-level=error </dev/null >>"$dir/ferretdb.log" 2>&1 &
        pid=$!
        echo "$pid" >"$dir/ferretdb.pid"
        for _ in $(seq 300); do
            kill -0 "$pid" 2>/dev/null || break
            # Still alive after answering: it is ours that answered, not
            # another server that had the port.
            if answers "$port" && sleep 0.1 && kill -0 "$pid" 2>/dev/null; then
                echo "$port" >"$dir/port"
                echo "mongodb://127.0.0.1:$port/"
                return
            fi
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        rm -f "$dir/ferretdb.pid"
    done
    tail -n 20 "$dir/ferretdb.log" >&2
    die "FerretDB did not answer on 127.0.0.1:$port (log: $dir/ferretdb.log)"
}

stop() {
    local dir=$1 pid
    [ -f "$dir/ferretdb.pid" ] || return 0
    pid=$(cat "$dir/ferretdb.pid")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/ferretdb.pid"
}

case "${1:-}" in
start | stop)
    [ $# -eq 2 ] || die "usage: $0 start|stop DIR"
    if [ "$1" = start ] && [ -n "${OMNI_TEST_MONGO_URI:-}" ]; then
        echo "$OMNI_TEST_MONGO_URI"
        exit 0
    fi
    "$1" "$2" ;;
binary) ferretdb_binary ;;
*) die "usage: $0 start|stop DIR | binary" ;;
esac
