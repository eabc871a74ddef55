#!/usr/bin/env bash
# podman-compose on the OmniAudit stack with the local override, the project's
# containers.conf and name: any podman-compose command, e.g.
#   deploy/podman/compose.sh ps
#   deploy/podman/compose.sh logs ingestd
#   deploy/podman/compose.sh run -d --no-deps -e OMNI_GIT_REPO=/repos/b collector-git
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
compose "$@"
