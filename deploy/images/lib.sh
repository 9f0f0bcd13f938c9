# Shared by deploy/images/*.sh: the container engine, the host tools it needs, and logging.
# shellcheck shell=bash

IMAGES_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$IMAGES_DIR/../.." && pwd)"
# podman reads these settings (runc, ulimits) from here, also for its API socket.
export CONTAINERS_CONF="${CONTAINERS_CONF:-$IMAGES_DIR/containers.conf}"

say() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

# The engine: AIRLOCK_ENGINE if set; else docker when a daemon answers; else podman.
engine() {
    if [ -n "${AIRLOCK_ENGINE:-}" ]; then
        echo "$AIRLOCK_ENGINE"
    elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        echo docker
    else
        echo podman
    fi
}

# apt-get install the given packages when a command is missing (as root), else fail saying so.
need() {
    local cmd="$1"; shift
    command -v "$cmd" >/dev/null 2>&1 && return 0
    if [ "$(id -u)" != 0 ]; then
        die "$cmd is missing: install the Debian packages $* (as root: apt-get install $*)"
    fi
    say "installing $* (for $cmd)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

need_podman() {
    need podman podman runc fuse-overlayfs uidmap slirp4netns netavark aardvark-dns iptables
    # Each piece on its own: a podman installed without its recommended packages has no
    # network backend that resolves the compose services' names (containers.conf).
    need runc runc
    need iptables iptables
    need fuse-overlayfs fuse-overlayfs
    need slirp4netns slirp4netns
    need /usr/lib/podman/netavark netavark
    need /usr/lib/podman/aardvark-dns aardvark-dns
}
