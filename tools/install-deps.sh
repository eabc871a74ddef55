#!/usr/bin/env bash
# Installs the Debian packages the build and the tests need, only those missing,
# so that `make` and `make test` work on a fresh machine with no setup by hand.
set -euo pipefail
build_pkgs=(build-essential pkg-config libzmq3-dev libczmq-dev libmsgpack-dev liblmdb-dev
    libyaml-dev libmicrohttpd-dev libssl-dev libgit2-dev libpq-dev libmongoc-dev libbson-dev
    libxml2-dev libjansson-dev libcurl4-openssl-dev libcairo2-dev fonts-dejavu-core git libzstd-dev libnats-dev)
test_pkgs=(clang clang-format libclang-rt-14-dev python3 python3-pytest python3-pytest-xdist python3-msgpack python3-zmq
    python3-psycopg2 python3-pymongo python3-yaml python3-lmdb postgresql-15 valgrind cloc docker-compose
    chromium poppler-utils zstd cmake nats-server iproute2)
want=("${build_pkgs[@]}")
[ "${1:-}" = "--test" ] && want+=("${test_pkgs[@]}")
missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install-deps: installing ${missing[*]}" >&2
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
