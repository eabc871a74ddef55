# Shared settings of the local (podman, no registry) OmniAudit stack.
# Sourced by the scripts beside it; sets no machine state, only this shell's.
# shellcheck shell=bash

OMNI_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OMNI_DEPLOY="$OMNI_ROOT/deploy"
# Caches (base image tarball, FerretDB binary, build context): gitignored var/.
OMNI_VAR="${OMNI_DEPLOY_VAR:-$OMNI_ROOT/var/deploy}"
OMNI_SUITE="${OMNI_DEBIAN_SUITE:-bookworm}"

export CONTAINERS_CONF="$OMNI_DEPLOY/podman/containers.conf"
# podman-compose names containers, networks and volumes after the project.
export COMPOSE_PROJECT_NAME="${COMPOSE_PROJECT_NAME:-omniaudit}"

OMNI_BASE_IMAGE="localhost/omniaudit-base:$OMNI_SUITE"
OMNI_IMAGE="localhost/omniaudit:${OMNI_TAG:-local}"
OMNI_BUILD_IMAGE="localhost/omniaudit-build:${OMNI_TAG:-local}"
OMNI_PG_IMAGE="localhost/omniaudit-postgres:15"
OMNI_FERRETDB_IMAGE="localhost/omniaudit-ferretdb:1.24.0"
OMNI_FERRETDB_VERSION="v1.24.0"
OMNI_NATS_IMAGE="localhost/omniaudit-nats:2.9"

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Installs the Debian packages named when their command is missing.
need_packages() {
    local missing=() pair cmd pkg
    for pair in "$@"; do
        cmd="${pair%%:*}"; pkg="${pair#*:}"
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >&2
}

# Everything the local stack needs: podman with runc, podman-compose, DNS by
# service name on podman's CNI bridge (dnsname), debootstrap for the base image.
need_podman() {
    need_packages podman:podman podman-compose:podman-compose runc:runc \
        debootstrap:debootstrap curl:curl git:git
    [ -x /usr/lib/cni/dnsname ] || [ -x /usr/libexec/cni/dnsname ] ||
        need_packages_force golang-github-containernetworking-plugin-dnsname
}

need_packages_force() {
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    log "installing $*"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >&2
}

# The URI this machine's apt uses for a suite (default: the release itself),
# read from its sources at run time: on a closed network apt's mirror is the
# only way out to Debian. OMNI_DEBIAN_MIRROR overrides the release's.
debian_mirror() {
    local suite="${1:-$OMNI_SUITE}"
    if [ -n "${OMNI_DEBIAN_MIRROR:-}" ] && [ "$suite" = "$OMNI_SUITE" ]; then
        echo "$OMNI_DEBIAN_MIRROR"; return
    fi
    local f uri
    # deb822 .sources: the URIs of a stanza whose Suites has the release itself
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        uri=$(awk -v suite="$suite" '
            BEGIN { RS = ""; FS = "\n" }
            {
                uris = ""; ok = 0
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", $i); split($i, u, /[ \t]+/); uris = u[1] }
                    if ($i ~ /^Suites:/) { n = split($i, s, /[ \t]+/); for (j = 2; j <= n; j++) if (s[j] == suite) ok = 1 }
                    if ($i ~ /^Enabled:[ \t]*no/) ok = 0
                }
                if (ok && uris != "") { print uris; exit }
            }' "$f")
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
    # one-line format: deb [options] URI SUITE COMPONENTS...
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        uri=$(awk -v suite="$suite" '
            $1 == "deb" {
                i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                if ($(i + 1) == suite) { print $i; exit }
            }' "$f")
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
    [ "$suite" = "$OMNI_SUITE" ] &&
        die "no apt source for $suite in /etc/apt/sources.list*; set OMNI_DEBIAN_MIRROR"
    return 0
}

image_exists() { podman image exists "$1"; }

# The folder of the compose run: docker-compose.yml, postgres-init/ and .env
# (podman-compose reads .env beside the first file, and lets it win over the
# environment). deploy/ itself by default; the test uses a copy of its own.
OMNI_COMPOSE_DIR="${OMNI_COMPOSE_DIR:-$OMNI_DEPLOY}"

# podman-compose on the production file and the local override, with this
# project's name (podman-compose 1.0.3 ignores COMPOSE_PROJECT_NAME: -p).
compose() {
    podman-compose --no-ansi -p "$COMPOSE_PROJECT_NAME" \
        -f "$OMNI_COMPOSE_DIR/docker-compose.yml" \
        -f "$OMNI_DEPLOY/podman/compose.override.yml" "$@"
}

# A value of the run's .env (after the environment's: as podman-compose does).
env_value() {  # NAME DEFAULT
    local v=""
    [ -f "$OMNI_COMPOSE_DIR/.env" ] &&
        v=$(sed -n "s/^$1=//p" "$OMNI_COMPOSE_DIR/.env" | tail -n 1)
    [ -n "$v" ] || v="${!1:-}"
    echo "${v:-$2}"
}

# The containers of the project, running or not (also those of `run`).
project_containers() {
    podman ps -a -q --filter "label=io.podman.compose.project=$COMPOSE_PROJECT_NAME"
}

# /health of a published daemon: until it answers 200 or the time is up.
wait_health() {  # NAME PORT TIMEOUT_SECONDS
    local name=$1 port=$2 deadline=$((SECONDS + $3)) body
    while :; do
        if body=$(curl -fsS --max-time 2 "http://127.0.0.1:$port/health" 2>/dev/null); then
            log "$name healthy: $body"
            return 0
        fi
        if [ $SECONDS -ge $deadline ]; then
            log "$name not healthy after $3s: $(curl -sS --max-time 2 "http://127.0.0.1:$port/health" 2>&1)"
            return 1
        fi
        sleep 0.5
    done
}

# Daemon -> its HTTP port variable in the override.
http_port_of() {
    case $1 in
    ingestd) env_value OMNI_LOCAL_HTTP_INGESTD 9100 ;;
    archiverd) env_value OMNI_LOCAL_HTTP_ARCHIVERD 9101 ;;
    relationald) env_value OMNI_LOCAL_HTTP_RELATIONALD 9102 ;;
    documentd) env_value OMNI_LOCAL_HTTP_DOCUMENTD 9103 ;;
    metricsd) env_value OMNI_LOCAL_HTTP_METRICSD 9104 ;;
    *) return 1 ;;
    esac
}
