# shellcheck shell=bash
# Sourced, not run: picks the Compose command this machine has, v2 first.
# Users mostly have the `docker compose` plugin (v2); Debian 12 only packages the Python
# `docker-compose` 1.29. The compose file is written so that both accept it.
#
#   source scripts/lib/compose.sh
#   compose_detect || exit 1     # sets COMPOSE, e.g. (docker compose) or (docker-compose)
#   compose up -d                # same as "${COMPOSE[@]}" up -d

COMPOSE=()

compose_detect() {
    if [[ ${#COMPOSE[@]} -gt 0 ]]; then
        return 0
    fi
    if docker compose version >/dev/null 2>&1; then
        COMPOSE=(docker compose)
    elif command -v docker-compose >/dev/null 2>&1; then
        COMPOSE=(docker-compose)
    else
        echo "compose: neither 'docker compose' nor 'docker-compose' is installed" \
            "(run scripts/ensure-docker as root on Debian/Ubuntu, or install Docker Compose)" >&2
        return 1
    fi
}

compose() {
    compose_detect || return 1
    "${COMPOSE[@]}" "$@"
}
