#!/bin/sh
# Write Alertmanager's configuration from the template next to this script and the files of
# a secrets folder (docs/operations.md, "Alert delivery"):
#
#   render-config.sh SECRETS_DIR OUT_DIR
#
# SECRETS_DIR holds one value per file (a trailing newline is dropped):
#   smtp_smarthost    host:port of the mail relay                      (required)
#   smtp_from         the sender address                               (required)
#   smtp_to           the recipients, comma-separated                  (required)
#   smtp_username     SMTP AUTH user; with smtp_password               (optional)
#   smtp_password     read by Alertmanager itself (smtp_auth_password_file): never copied
#   smtp_require_tls  true (default) or false, for a relay on loopback without STARTTLS
#   smtp_hello        the name given in EHLO (default: localhost)
#   webhook_url       also POST every notification there (Alertmanager's webhook format)
#   runbook_base_url  prefix of the rules' runbook paths in the messages (e.g. the URL of
#                     this repository's tree on your forge, ending in /); default: none
#
# Timings (environment, with the shipped defaults) - shorter ones are for rehearsals and the
# end-to-end test only:
#   ALERT_GROUP_WAIT=30s ALERT_GROUP_INTERVAL=5m ALERT_CRITICAL_GROUP_WAIT=10s
#   ALERT_CRITICAL_REPEAT_INTERVAL=1h ALERT_WARNING_REPEAT_INTERVAL=12h
#
# OUT_DIR gets alertmanager.yml and templates/ (mode 0600/0700: the recipients and the
# webhook URL are not for everyone). Start Alertmanager with
# --config.file=OUT_DIR/alertmanager.yml.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
secrets=${1:?usage: render-config.sh SECRETS_DIR OUT_DIR}
out=${2:?usage: render-config.sh SECRETS_DIR OUT_DIR}
secrets=$(cd "$secrets" && pwd)

value() { # value NAME [DEFAULT]: the file's content, the default, or an error if required
    if [ -e "$secrets/$1" ]; then
        v=$(cat "$secrets/$1")
        case $v in
            *'"'* | *\\*) echo "render-config.sh: $secrets/$1 holds a quote or backslash" >&2; exit 1 ;;
        esac
        printf '%s' "$v"
    elif [ $# -ge 2 ]; then
        printf '%s' "$2"
    else
        echo "render-config.sh: $secrets/$1 is missing" >&2
        exit 1
    fi
}

umask 077
mkdir -p "$out/templates"
out=$(cd "$out" && pwd)

SMTP_SMARTHOST=$(value smtp_smarthost)
SMTP_FROM=$(value smtp_from)
SMTP_TO=$(value smtp_to)
SMTP_USERNAME=$(value smtp_username "")
SMTP_PASSWORD_FILE="$secrets/smtp_password"
SMTP_REQUIRE_TLS=$(value smtp_require_tls true)
SMTP_HELLO=$(value smtp_hello localhost)
WEBHOOK_URL=$(value webhook_url "")
RUNBOOK_BASE_URL=$(value runbook_base_url "")
TEMPLATES_DIR="$out/templates"
GROUP_WAIT=${ALERT_GROUP_WAIT:-30s}
GROUP_INTERVAL=${ALERT_GROUP_INTERVAL:-5m}
CRITICAL_GROUP_WAIT=${ALERT_CRITICAL_GROUP_WAIT:-10s}
CRITICAL_REPEAT_INTERVAL=${ALERT_CRITICAL_REPEAT_INTERVAL:-1h}
WARNING_REPEAT_INTERVAL=${ALERT_WARNING_REPEAT_INTERVAL:-12h}
case $SMTP_REQUIRE_TLS in
    true | false) ;;
    *) echo "render-config.sh: smtp_require_tls must be true or false" >&2; exit 1 ;;
esac
export SMTP_SMARTHOST SMTP_FROM SMTP_TO SMTP_USERNAME SMTP_PASSWORD_FILE SMTP_REQUIRE_TLS \
    SMTP_HELLO WEBHOOK_URL RUNBOOK_BASE_URL TEMPLATES_DIR GROUP_WAIT GROUP_INTERVAL \
    CRITICAL_GROUP_WAIT CRITICAL_REPEAT_INTERVAL WARNING_REPEAT_INTERVAL

# Replace every ${NAME} by the environment's NAME, literally (no sed escaping to get wrong).
substitute() {
    awk '{
        line = $0; result = ""
        while (match(line, /\$\{[A-Z_]+\}/)) {
            name = substr(line, RSTART + 2, RLENGTH - 3)
            result = result substr(line, 1, RSTART - 1) ENVIRON[name]
            line = substr(line, RSTART + RLENGTH)
        }
        print result line
    }'
}

drop_unused() {
    if [ -z "$WEBHOOK_URL" ]; then
        sed '/# webhook-begin/,/# webhook-end/d'
    else
        cat
    fi | if [ -e "$secrets/smtp_password" ]; then cat; else
        grep -v -e 'smtp_auth_username:' -e 'smtp_auth_password_file:'
    fi
}

drop_unused < "$here/alertmanager.yml" | substitute > "$out/alertmanager.yml.tmp"
mv "$out/alertmanager.yml.tmp" "$out/alertmanager.yml"
for template in "$here"/templates/*.tmpl; do
    # shellcheck disable=SC2094 # reads $here/templates, writes $out/templates: two folders
    substitute < "$template" > "$out/templates/$(basename "$template")"
done
