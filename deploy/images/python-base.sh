#!/usr/bin/env bash
# Prints the image to build Airlock's images FROM: the official Python image when it can be
# pulled (or is already present), else a local stand-in built from Debian bookworm's packages
# (Python 3.11, what python:3.11-slim-bookworm carries), cached under its name.
#   PYTHON_IMAGE       the official image (default python:3.11-slim-bookworm)
#   STANDIN_IMAGE      the stand-in's name (default localhost/airlock/python-standin:3.11-bookworm)
#   DEBIAN_MIRROR      debootstrap's mirror (default http://deb.debian.org/debian)
#   AIRLOCK_STANDIN=1  skip the pull and use the stand-in
set -euo pipefail
source "$(dirname "$0")/lib.sh"

official="${PYTHON_IMAGE:-python:3.11-slim-bookworm}"
standin="${STANDIN_IMAGE:-localhost/airlock/python-standin:3.11-bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
eng="$(engine)"

if [ "${AIRLOCK_STANDIN:-0}" != 1 ]; then
    if "$eng" image inspect "$official" >/dev/null 2>&1 \
        || timeout 60 "$eng" pull -q "$official" >/dev/null 2>&1; then
        echo "$official"
        exit 0
    fi
    say "$official cannot be pulled: using the stand-in $standin"
fi
if "$eng" image inspect "$standin" >/dev/null 2>&1; then
    echo "$standin"
    exit 0
fi

need debootstrap debootstrap
root="$(mktemp -d /var/tmp/airlock-standin.XXXXXX)"
trap 'rm -rf "$root"' EXIT
say "building $standin with debootstrap (bookworm, python3.11) from $mirror"
# python3-venv and pip for the builder stage (it installs uv with pip); passwd for
# groupadd/useradd in the runtime stage. What the official slim image has, roughly.
debootstrap --variant=minbase \
    --include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates,passwd \
    bookworm "$root" "$mirror" >/dev/null
# Smaller, as the official slim image: no downloaded .debs, apt lists, docs, man pages or
# translations (messages stay in English; the C.UTF-8 locale is in libc).
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin \
    "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
    "$root"/usr/share/info/* "$root"/usr/share/locale/* "$root"/var/log/*
# The official image's environment: its pip installs into the system Python (bookworm's
# refuses without PIP_BREAK_SYSTEM_PACKAGES), and LANG as there.
tar -C "$root" -c . | "$eng" import \
    --change 'ENV PIP_BREAK_SYSTEM_PACKAGES=1' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' \
    - "$standin" >/dev/null
echo "$standin"
