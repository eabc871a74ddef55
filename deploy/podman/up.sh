#!/usr/bin/env bash
# Brings the OmniAudit stack up with podman, without a registry, and waits for
# every daemon's /health from the host (podman runs no healthchecks without
# systemd, so depends_on conditions are not waited for: the daemons retry).
#   deploy/podman/up.sh [SERVICE...]     (default: stores, ingestd, writers)
# Reads deploy/.env (made from .env.example when missing). OMNI_SKIP_BUILD=1
# uses the images as they are.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_podman
if [ ! -f "$OMNI_COMPOSE_DIR/.env" ]; then
    cp "$OMNI_DEPLOY/.env.example" "$OMNI_COMPOSE_DIR/.env"
    log "made $OMNI_COMPOSE_DIR/.env from .env.example: set its passwords"
fi
[ "${OMNI_SKIP_BUILD:-0}" = 1 ] || "$OMNI_DEPLOY/podman/build-images.sh"
services=("$@")
[ ${#services[@]} -eq 0 ] &&
    services=(timescaledb mongodb ingestd archiverd relationald documentd metricsd)
compose up -d --no-build "${services[@]}" >"$OMNI_VAR/compose-up.log" 2>&1 ||
    { tail -n 30 "$OMNI_VAR/compose-up.log" >&2; die "podman-compose up failed"; }
status=0
for s in "${services[@]}"; do
    port=$(http_port_of "$s") || continue
    wait_health "$s" "$port" "${OMNI_HEALTH_TIMEOUT:-120}" || status=1
done
[ $status = 0 ] || die "not every daemon is healthy: deploy/podman/compose.sh logs SERVICE"
log "up: $(project_containers | wc -l) containers in project $COMPOSE_PROJECT_NAME"
