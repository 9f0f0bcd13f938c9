#!/usr/bin/env bash
# `make check-deploy`: check the deployment files with the tools that can check them here.
#
#   promtool          check config (both Prometheus configurations), check rules, test rules
#   amtool            check-config of deploy/alertmanager/alertmanager.yml, rendered by
#                     render-config.sh with example settings (with and without a webhook)
#   systemd-analyze   verify the units (in tests/deploy/test_systemd.py)
#   pytest            tests/deploy: compose files, Dockerfiles, .env examples, units, agent
#                     configurations, rules and dashboard against the code's metrics
#   caddy, shellcheck the TLS proxy's Caddyfile and the shell scripts
#
# No Docker engine is needed: the compose files and Dockerfiles are read, not run.
# Every tool comes from a Debian package (promtool: prometheus, amtool:
# prometheus-alertmanager, caddy, shellcheck, age-keygen: age, systemd-analyze: systemd),
# installed here when they are missing and we are root; otherwise this stops and says what
# to install.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-python3 -m uv}
RUN="$UV run --frozen --no-sync"

step() { printf '\n== %s\n' "$*"; }

need() { # need COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 && return
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        step "$1 is missing: installing Debian's $2 package"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq --no-install-recommends "$2" >/dev/null
    else
        echo "error: $1 is missing. Install Debian's '$2' package" \
             "(apt-get install $2, as root) or put $1 on PATH," \
             "then run 'make check-deploy' again." >&2
        exit 1
    fi
}
need promtool prometheus
need amtool prometheus-alertmanager
need shellcheck shellcheck
need caddy caddy
need age-keygen age
need systemd-analyze systemd

step "promtool check config"
promtool check config deploy/prometheus/prometheus.request-net.yml \
    deploy/prometheus/prometheus.response-net.yml deploy/prometheus/prometheus.local.yml
step "promtool check rules"
promtool check rules deploy/prometheus/rules/*.yml
step "promtool test rules"
promtool test rules deploy/prometheus/tests/*.yml

step "amtool check-config (rendered with example settings)"
alerting=$(mktemp -d)
printf 'smtp.example.org:587\n' > "$alerting/smtp_smarthost"
printf 'airlock-alerts@example.org\n' > "$alerting/smtp_from"
printf 'ops@example.org, oncall@example.org\n' > "$alerting/smtp_to"
printf 'airlock-alerts\n' > "$alerting/smtp_username"
printf 'example-password\n' > "$alerting/smtp_password"
sh deploy/alertmanager/render-config.sh "$alerting" "$alerting/without-webhook"
printf 'https://hooks.example.org/airlock\n' > "$alerting/webhook_url"
sh deploy/alertmanager/render-config.sh "$alerting" "$alerting/with-webhook"
amtool check-config "$alerting/without-webhook/alertmanager.yml" \
    "$alerting/with-webhook/alertmanager.yml"
rm -rf "$alerting"

step "shellcheck"
shellcheck deploy/compose/init-secrets.sh deploy/check.sh deploy/alertmanager/render-config.sh

step "caddy validate (with test certificates from init-secrets.sh)"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
sh deploy/compose/init-secrets.sh "$scratch" >/dev/null
sed -e "s|/run/secrets/processor_tls_cert|$scratch/secrets/processor_tls_cert.pem|" \
    -e "s|/run/secrets/processor_tls_key|$scratch/secrets/processor_tls_key.pem|" \
    deploy/compose/caddy/Caddyfile > "$scratch/Caddyfile"
caddy validate --adapter caddyfile --config "$scratch/Caddyfile" 2>&1 | grep -v '"level":"\(info\|warn\)"'

step "pytest tests/deploy"
# The database-backed test of the gateway's gauge runs in `make test`; this stays fast.
$RUN pytest -q tests/deploy --ignore=tests/deploy/test_oldest_pending_gauge.py
