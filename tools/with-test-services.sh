#!/usr/bin/env bash
# Runs a command with the servers the tests need: the PostgreSQL given by
# OMNI_TEST_PG_DSN, or the local one (started if it is installed but down),
# and the MongoDB-wire server given by OMNI_TEST_MONGO_URI, or a FerretDB of
# our own for the length of the command. Services we start, we stop.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMNI_REQUIRE_SERVICES=1

if [ -z "${OMNI_TEST_PG_DSN:-}" ]; then
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
        version=$(ls /etc/postgresql 2>/dev/null | sort -n | tail -1)
        if [ -z "$version" ]; then
            echo "with-test-services: no PostgreSQL cluster; install postgresql" >&2
            exit 1
        fi
        pg_ctlcluster --skip-systemctl-redirect "$version" main start
        for _ in $(seq 100); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.1; done
    fi
    export OMNI_TEST_PG_DSN="postgresql://postgres@127.0.0.1:5432/postgres"
fi

mongo_dir=""
cleanup() {
    if [ -n "$mongo_dir" ]; then
        tools/mongo-test-server.sh stop "$mongo_dir" >/dev/null 2>&1 || true
        rm -rf "$mongo_dir"
    fi
}
trap cleanup EXIT
if [ -z "${OMNI_TEST_MONGO_URI:-}" ] && [ -x tools/mongo-test-server.sh ]; then
    mongo_dir=$(mktemp -d /tmp/omni-mongo-XXXXXX)
    OMNI_TEST_MONGO_URI=$(tools/mongo-test-server.sh start "$mongo_dir")
    export OMNI_TEST_MONGO_URI
fi
"$@"
