#!/bin/sh
# Run once, when the PostgreSQL data volume is new (docker-entrypoint-initdb.d
# of the official images, and of deploy/podman's PostgreSQL image): creates
# metricsd's database beside relationald's ($POSTGRES_DB), owned by the same
# user. metricsd enables TimescaleDB in it by itself when the server has it.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v db="${OMNI_METRICS_DB:-omniaudit_metrics}" -v owner="$POSTGRES_USER" <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'owner')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SQL
