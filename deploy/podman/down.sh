#!/usr/bin/env bash
# Stops and removes every container of the local stack (also those started
# with `compose.sh run`) and its network; -v removes the volumes too.
#   deploy/podman/down.sh [-v]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
command -v podman >/dev/null || exit 0
# SIGTERM first, in the order of the flow: collectors, writers, ingestd, the
# stores (each drains into the next); then removal.
of_services() {
    local s
    for s in "$@"; do
        podman ps -q --filter "label=io.podman.compose.project=$COMPOSE_PROJECT_NAME" \
            --filter "label=com.docker.compose.service=$s"
    done
}
for group in "collector-git collector-junit collector-host" \
    "archiverd relationald documentd metricsd relationald-js-1 relationald-js-2" \
    "ingestd ingestd-js-1 ingestd-js-2" "nats-1 nats-2 nats-3" "timescaledb mongodb"; do
    # shellcheck disable=SC2086
    ids=$(of_services $group)
    [ -z "$ids" ] || podman stop -t "${OMNI_STOP_TIMEOUT:-30}" $ids >/dev/null 2>&1 || true
done
ids=$(project_containers)
[ -z "$ids" ] || podman rm -f -t 5 $ids >/dev/null 2>&1 || true
podman network rm -f "${COMPOSE_PROJECT_NAME}_default" >/dev/null 2>&1 || true
if [ "${1:-}" = "-v" ]; then
    vols=$(podman volume ls -q --filter "label=io.podman.compose.project=$COMPOSE_PROJECT_NAME")
    [ -z "$vols" ] || podman volume rm -f $vols >/dev/null
fi
left=$(project_containers)
[ -z "$left" ] || die "containers left in project $COMPOSE_PROJECT_NAME: $left"
log "down: no container left in project $COMPOSE_PROJECT_NAME"
