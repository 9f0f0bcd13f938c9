#!/usr/bin/env bash
# Stand-ins for the third-party images the compose files name, where they cannot be pulled:
# PostgreSQL, Redis and Caddy from Debian's packages on the Python stand-in base. Prints a
# compose override file naming them (the compose files stay as they are).
#   AIRLOCK_STANDIN=1  use the stand-ins even where the official images can be pulled
set -euo pipefail
source "$(dirname "$0")/lib.sh"

eng="$(engine)"
[ "$eng" = podman ] && need_podman
override="${1:?usage: standins.sh OVERRIDE_FILE}"
declare -A official=(
    [postgres]="postgres:16-bookworm" [redis]="redis:7.4-bookworm" [caddy]="caddy:2.8-alpine"
)
declare -A image
base=""
for name in postgres redis caddy; do
    image[$name]="${official[$name]}"
    if [ "${AIRLOCK_STANDIN:-0}" != 1 ] && { "$eng" image inspect "${official[$name]}" \
        >/dev/null 2>&1 || timeout 60 "$eng" pull -q "${official[$name]}" >/dev/null 2>&1; }; then
        continue
    fi
    image[$name]="localhost/airlock/$name-standin:bookworm"
    if ! "$eng" image inspect "${image[$name]}" >/dev/null 2>&1; then
        [ -n "$base" ] || base="$(AIRLOCK_STANDIN=1 bash "$IMAGES_DIR/python-base.sh")"
        say "building ${image[$name]} (for ${official[$name]}) from Debian's packages"
        "$eng" build -q --format docker --build-arg "BASE_IMAGE=$base" \
            -f "$IMAGES_DIR/standins/$name.Dockerfile" -t "${image[$name]}" \
            "$IMAGES_DIR/standins" >/dev/null
    fi
done
cat > "$override" <<YAML
# Written by deploy/images/standins.sh: the third-party images to run.
services:
  postgres:
    image: ${image[postgres]}
  redis:
    image: ${image[redis]}
YAML
if [ -n "${2:-}" ]; then
    cat > "$2" <<YAML
# Written by deploy/images/standins.sh: the third-party images to run.
services:
  proxy:
    image: ${image[caddy]}
YAML
fi
