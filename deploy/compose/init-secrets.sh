#!/bin/sh
# Make every secret the compose files read, once: database and Redis passwords (and the URLs
# and Redis configuration that carry them), JWT secrets, the processor's first admin password,
# both sides' Ed25519 signing keys, and self-signed TLS certificates to start with.
#
#   ./init-secrets.sh [FOLDER]     FOLDER defaults to this script's folder (deploy/compose)
#
# Writes FOLDER/secrets/ (private: the folder is 0700; git ignores everything in it) and
# FOLDER/keys/<network>/<network>.pub (the public halves). An existing file is never
# replaced, so running it again only fills in what is missing. Replace the test certificates
# with real ones (same file names), and on a two-host site copy only the *public* key of each
# side to the other (docs/deployment.md, "Secrets and keys"). Needs openssl and age-keygen
# (Debian: apt-get install age).
set -eu

for tool in openssl:openssl age-keygen:age; do
    if ! command -v "${tool%%:*}" >/dev/null 2>&1; then
        echo "init-secrets.sh: ${tool%%:*} is missing: install it (Debian: apt-get install ${tool#*:})" >&2
        exit 1
    fi
done

root=${1:-$(dirname "$0")}
secrets="$root/secrets"
keys="$root/keys"
umask 077
mkdir -p "$secrets" "$keys/request-net" "$keys/response-net"
chmod 0700 "$secrets"
# The key folders are mounted as they are: the services' user must be able to list them.
chmod 0755 "$keys" "$keys/request-net" "$keys/response-net"

# Inside the containers the files are read by other users than yours (postgres, redis and
# airlock, uid 10001): they are world-readable, and the 0700 folder keeps them private on
# this host.
publish() { chmod 0644 "$1"; }

random() { openssl rand -hex 32; }

# new FILE COMMAND...: run COMMAND (its output becomes FILE) unless FILE exists.
new() {
    file=$1
    shift
    if [ ! -e "$file" ]; then
        "$@" > "$file.tmp"
        mv "$file.tmp" "$file"
        publish "$file"
        echo "made $file"
    fi
}

for side in gateway processor; do
    db_password="$secrets/${side}_db_password.txt"
    redis_conf="$secrets/${side}_redis.conf"
    new "$db_password" random
    new "$secrets/${side}_database_url.txt" \
        printf 'postgresql://%s:%s@postgres:5432/%s\n' "$side" "$(cat "$db_password")" "$side"
    new "$redis_conf" printf 'requirepass %s\n' "$(random)"
    new "$secrets/${side}_redis_url.txt" \
        printf 'redis://:%s@redis:6379/0\n' "$(sed -n 's/^requirepass //p' "$redis_conf")"
    new "$secrets/${side}_jwt_secret.txt" random
    if [ ! -e "$secrets/${side}_tls_key.pem" ]; then
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
            -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
            -keyout "$secrets/${side}_tls_key.pem" -out "$secrets/${side}_tls_cert.pem" 2>/dev/null
        publish "$secrets/${side}_tls_key.pem"
        publish "$secrets/${side}_tls_cert.pem"
        echo "made $secrets/${side}_tls_cert.pem (self-signed, for localhost: replace it)"
    fi
done
new "$secrets/processor_admin_password.txt" random

# Signing keys: the file's name is the key id written into batches and looked up by readers.
for network in request-net response-net; do
    private="$secrets/$network.key"
    if [ ! -e "$private" ]; then
        openssl genpkey -algorithm ed25519 -out "$private"
        publish "$private"
        echo "made $private"
    fi
    new "$keys/$network/$network.pub" openssl pkey -in "$private" -pubout
done

# Batch encryption keys: FOLDER/secrets/decrypt-<network>/<network>.agekey (mode 600: the
# services refuse a decryption key others may read, so it is owned by the containers' user,
# uid 10001, when this runs as root) and its public half FOLDER/keys/<network>/<network>.agepub,
# which the *peer* encrypts to.
for network in request-net response-net; do
    folder="$secrets/decrypt-$network"
    identity="$folder/$network.agekey"
    mkdir -p "$folder"
    if [ ! -e "$identity" ]; then
        age-keygen -o "$identity" 2>/dev/null
        chmod 0600 "$identity"
        echo "made $identity"
    fi
    chmod 0700 "$folder"
    if [ "$(id -u)" = 0 ]; then
        chown 10001:10001 "$folder" "$identity"
    else
        echo "note: run as root, or chown 10001 $folder $identity, for the containers to read it"
    fi
    new "$keys/$network/$network.agepub" age-keygen -y "$identity"
done
