#!/usr/bin/env bash
# Builds every image of the local stack with podman, without a registry:
#   localhost/omniaudit-base:bookworm     debootstrap (base-image.sh)
#   localhost/omniaudit:local             deploy/Dockerfile on that base
#   localhost/omniaudit-postgres:15       PostgreSQL 15 from Debian (stands for TimescaleDB)
#   localhost/omniaudit-ferretdb:1.24.0   FerretDB (stands for MongoDB)
#   localhost/omniaudit-nats:2.9          nats-server from Debian (profile cluster)
# Layers are cached by podman: a second run only rebuilds what changed.
#   deploy/podman/build-images.sh [omniaudit|postgres|ferretdb|nats ...]   (default: all)
# OMNI_DEPLOY_SOURCE=head (default) builds the committed sources (HEAD) with the
# working tree's deploy/; =worktree builds the working tree's tracked files.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

want=("$@"); [ ${#want[@]} -eq 0 ] && want=(omniaudit postgres ferretdb nats)
need_podman
"$OMNI_DEPLOY/podman/base-image.sh"

build() {  # IMAGE CONTAINERFILE CONTEXT [ARGS...]
    local image=$1 file=$2 context=$3 start=$SECONDS; shift 3
    local name=${image##*/}; local buildlog="$OMNI_VAR/build-${name%%:*}.log"
    log "building $image"
    if ! podman build --layers --build-arg BASE_IMAGE="$OMNI_BASE_IMAGE" \
        -f "$file" -t "$image" "$@" "$context" >"$buildlog" 2>&1; then
        tail -n 40 "$buildlog" >&2
        die "building $image failed (log: $buildlog)"
    fi
    log "built $image in $((SECONDS - start))s"
}

# The context: the sources as git has them (no build trees, no var/, no other
# engineer's files in progress), plus deploy/ as it is here.
source_context() {
    local context="$OMNI_VAR/context"
    rm -rf "$context"; mkdir -p "$context"
    if [ "${OMNI_DEPLOY_SOURCE:-head}" = worktree ]; then
        git -C "$OMNI_ROOT" ls-files -z | (cd "$OMNI_ROOT" && xargs -0 cp --parents -t "$context" 2>/dev/null || true)
    else
        git -C "$OMNI_ROOT" archive --format=tar HEAD | tar -x -C "$context"
    fi
    rm -rf "$context/deploy"
    cp -a "$OMNI_DEPLOY" "$context/deploy"
    rm -f "$context/deploy/.env"
    echo "$context"
}

ferretdb_binary() {  # builds FerretDB into var/deploy/ferretdb when missing
    local bin="$OMNI_VAR/ferretdb/ferretdb" candidate
    if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
        echo "$bin"; return
    fi
    # One that works already: given, the tests' (tools/mongo-test-server.sh), on PATH.
    for candidate in "${OMNI_FERRETDB:-}" "$OMNI_ROOT/var/ferretdb/ferretdb" \
        "$(command -v ferretdb || true)" "$(go env GOPATH 2>/dev/null || echo "$HOME/go")/bin/ferretdb"; do
        if [ -n "$candidate" ] && [ -x "$candidate" ] &&
            "$candidate" --version 2>/dev/null | grep -q "^version: $OMNI_FERRETDB_VERSION$"; then
            cp "$candidate" "$bin"; echo "$bin"; return
        fi
    done
    # `go install ...@version` gives a binary that panics at start (no
    # build/version/version.txt in the module); build from the module's source
    # with that file written, as FerretDB's own build does.
    local go; go=$(command -v go || echo /usr/local/go/bin/go)
    [ -x "$go" ] || need_packages go:golang-go
    go=$(command -v go || echo /usr/local/go/bin/go)
    log "building FerretDB $OMNI_FERRETDB_VERSION with $($go version | cut -d' ' -f3)"
    local dir src
    dir=$(cd /tmp && GOFLAGS=-mod=mod "$go" mod download -json \
        "github.com/FerretDB/FerretDB@$OMNI_FERRETDB_VERSION" |
        /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
    src="$OMNI_VAR/ferretdb/src"
    rm -rf "$src"; mkdir -p "$src"
    cp -r "$dir/." "$src"; chmod -R u+w "$src"
    echo "$OMNI_FERRETDB_VERSION" >"$src/build/version/version.txt"
    echo "omniaudit-local" >"$src/build/version/package.txt"
    (cd "$src" && CGO_ENABLED=0 "$go" build -trimpath -buildvcs=false -o "$bin.tmp" ./cmd/ferretdb) >&2
    mv "$bin.tmp" "$bin"
    rm -rf "$src"
    "$bin" --version >/dev/null
    echo "$bin"
}

mkdir -p "$OMNI_VAR"
for w in "${want[@]}"; do
    case $w in
    omniaudit)
        context=$(source_context)
        # The build stage tagged too: it anchors the cache of its layers (the
        # -dev packages above all) when stale images are pruned below.
        build "$OMNI_BUILD_IMAGE" "$OMNI_DEPLOY/Dockerfile" "$context" --target build \
            --ignorefile "$OMNI_DEPLOY/Dockerfile.dockerignore" --build-arg JOBS="$(nproc)"
        build "$OMNI_IMAGE" "$OMNI_DEPLOY/Dockerfile" "$context" \
            --ignorefile "$OMNI_DEPLOY/Dockerfile.dockerignore" --build-arg JOBS="$(nproc)"
        rm -rf "$context" ;;
    postgres)
        build "$OMNI_PG_IMAGE" "$OMNI_DEPLOY/podman/postgres.Containerfile" "$OMNI_DEPLOY/podman" ;;
    ferretdb)
        mkdir -p "$OMNI_VAR/ferretdb"
        bin=$(ferretdb_binary)
        cp "$OMNI_DEPLOY/podman/ferretdb.Containerfile" "$OMNI_VAR/ferretdb/Containerfile"
        build "$OMNI_FERRETDB_IMAGE" "$OMNI_VAR/ferretdb/Containerfile" "$OMNI_VAR/ferretdb" ;;
    nats)
        build "$OMNI_NATS_IMAGE" "$OMNI_DEPLOY/podman/nats.Containerfile" "$OMNI_DEPLOY/podman" ;;
    *) die "unknown image $w (omniaudit, postgres, ferretdb, nats)" ;;
    esac
done
# Earlier builds' layers that no tag uses any more: this project's only.
podman image prune -f --filter label=io.omniaudit.image >/dev/null 2>&1 || true
