#!/usr/bin/env bash
# `make compose-test`: request-net.yml, response-net.yml and transfer.yml started with
# podman-compose on the images `make images` built (PostgreSQL, Redis and Caddy stand-ins
# built from Debian's packages where the official images cannot be pulled), used through
# their published ports, then removed (deploy/images/compose_test.py has the phases).
#   AIRLOCK_GATEWAY_HTTPS_PORT / AIRLOCK_PROCESSOR_HTTPS_PORT  published ports (18443/18444)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

[ "$(engine)" = podman ] || die "compose-test drives podman (AIRLOCK_ENGINE=podman)"
need_podman
need openssl openssl
UV="${UV:-uv}"
# podman-compose from PyPI, pinned, in uv's tool cache (Debian's 1.0.3 is older).
export PODMAN_COMPOSE="$UV tool run --from podman-compose==1.6.0 podman-compose"

work="$(mktemp -d /var/tmp/airlock-compose-test.XXXXXX)"
trap 'rm -rf "$work"' EXIT
# A copy: init-secrets.sh writes the secrets beside the compose files, and the repository's
# deploy/compose/secrets stays as it is.
mkdir -p "$work/deploy"
cp -r deploy/compose deploy/transfer-agent "$work/deploy/"
rm -rf "$work/deploy/compose/secrets" "$work/deploy/compose/keys"
sh "$work/deploy/compose/init-secrets.sh" >/dev/null
bash "$IMAGES_DIR/standins.sh" "$work/standins-db.yml" "$work/standins-proxy.yml"
$UV run --frozen --no-sync python "$IMAGES_DIR/compose_test.py" \
    "$work" "$work/standins-db.yml" "$work/standins-proxy.yml"
