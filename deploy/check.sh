#!/usr/bin/env bash
# `make check-deploy`: check the deployment files with the tools that can check them here.
#
#   promtool          check config (both Prometheus configurations), check rules, test rules
#   systemd-analyze   verify the units (in tests/deploy/test_systemd.py; skipped without it)
#   pytest            tests/deploy: compose files, Dockerfiles, .env examples, units, agent
#                     configurations, rules and dashboard against the code's metrics
#   caddy, shellcheck the TLS proxy's Caddyfile and init-secrets.sh, when they are installed
#
# No Docker engine is needed: the compose files and Dockerfiles are read, not run.
# promtool comes from Debian's prometheus package, installed here when it is missing and we
# are root; otherwise this stops and says what to install.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-python3 -m uv}
RUN="$UV run --frozen --no-sync"

step() { printf '\n== %s\n' "$*"; }

if ! command -v promtool >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        step "promtool is missing: installing Debian's prometheus package"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    else
        echo "error: promtool is missing. Install Debian's 'prometheus' package" \
             "(apt-get install prometheus, as root) or put promtool from a Prometheus" \
             "release on PATH, then run 'make check-deploy' again." >&2
        exit 1
    fi
fi

step "promtool check config"
promtool check config deploy/prometheus/prometheus.request-net.yml \
    deploy/prometheus/prometheus.response-net.yml deploy/prometheus/prometheus.local.yml
step "promtool check rules"
promtool check rules deploy/prometheus/rules/*.yml
step "promtool test rules"
promtool test rules deploy/prometheus/tests/*.yml

if command -v shellcheck >/dev/null 2>&1; then
    step "shellcheck"
    shellcheck deploy/compose/init-secrets.sh deploy/check.sh
fi

if command -v caddy >/dev/null 2>&1; then
    step "caddy validate (with test certificates from init-secrets.sh)"
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    sh deploy/compose/init-secrets.sh "$scratch" >/dev/null
    sed -e "s|/run/secrets/processor_tls_cert|$scratch/secrets/processor_tls_cert.pem|" \
        -e "s|/run/secrets/processor_tls_key|$scratch/secrets/processor_tls_key.pem|" \
        deploy/compose/caddy/Caddyfile > "$scratch/Caddyfile"
    caddy validate --adapter caddyfile --config "$scratch/Caddyfile" 2>&1 | grep -v '"level":"\(info\|warn\)"'
fi

if ! command -v systemd-analyze >/dev/null 2>&1; then
    step "systemd-analyze missing: the units are checked by parsing only"
fi

step "pytest tests/deploy"
# The database-backed test of the gateway's gauge runs in `make test`; this stays fast.
$RUN pytest -q tests/deploy --ignore=tests/deploy/test_oldest_pending_gauge.py
