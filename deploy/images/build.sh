#!/usr/bin/env bash
# `make images`: builds airlock/request-gateway, airlock/response-processor and
# airlock/transfer-agent from deploy/docker/ (docs/deployment.md, "Building the images").
#   AIRLOCK_ENGINE     podman or docker (default: docker when a daemon answers, else podman)
#   AIRLOCK_TAG        the images' tag (default: the version in services/*/pyproject.toml)
#   PYTHON_IMAGE       the base image (default python:3.11-slim-bookworm; a local stand-in is
#                      built from Debian's packages when it cannot be pulled: python-base.sh)
#   AIRLOCK_BUILD_CA   a CA bundle the build trusts while it downloads (a TLS-inspecting
#                      proxy's); default: the host's /etc/ssl/certs/ca-certificates.crt when
#                      present. Handed over as a build secret: in no layer. "none" to skip.
#   IMAGES             which to build (default: all three)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

eng="$(engine)"
[ "$eng" = podman ] && need_podman
base="$(bash "$IMAGES_DIR/python-base.sh")"
ca="${AIRLOCK_BUILD_CA:-/etc/ssl/certs/ca-certificates.crt}"
args=(--build-arg "PYTHON_IMAGE=$base")
if [ "$ca" != none ] && [ -s "$ca" ]; then
    args+=(--secret "id=build-ca,src=$ca")
fi
# HEALTHCHECK is part of the docker image format only (OCI drops it).
[ "$eng" = podman ] && args+=(--format docker)

for image in ${IMAGES:-request-gateway response-processor transfer-agent}; do
    version="$(sed -n 's/^version = "\(.*\)"/\1/p' "services/$image/pyproject.toml" | head -1)"
    tag="airlock/$image:${AIRLOCK_TAG:-$version}"
    start=$SECONDS
    say "building $tag on $base"
    if ! "$eng" build "${args[@]}" -f "deploy/docker/$image.Dockerfile" -t "$tag" . \
        >"${TMPDIR:-/tmp}/airlock-build-$image.log" 2>&1; then
        tail -40 "${TMPDIR:-/tmp}/airlock-build-$image.log" >&2
        die "building $tag failed (whole log: ${TMPDIR:-/tmp}/airlock-build-$image.log)"
    fi
    say "built $tag in $((SECONDS - start)) s"
done
