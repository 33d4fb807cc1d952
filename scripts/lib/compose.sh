# shellcheck shell=bash
# Sourced, not run: picks the Compose command this machine has, v2 first.
# Users mostly have the `docker compose` plugin (v2); Debian 12 only packages the Python
# `docker-compose` 1.29 (scripts/ensure-docker adds v2 as a CLI plugin where it is missing).
# The compose file is written so that both accept it.
# FEDJOURNEY_COMPOSE="docker compose" or "docker-compose" forces one generation (the tests
# use it to run under each); the same rule as compose_command() in src/fedjourney/host/logs.py.
#
#   source scripts/lib/compose.sh
#   compose_detect || exit 1     # sets COMPOSE, e.g. (docker compose) or (docker-compose)
#   compose up -d                # same as "${COMPOSE[@]}" up -d

COMPOSE=()

# Whether a Compose command answers: `docker compose version` succeeds; for docker-compose
# (1.29), being on PATH is enough (its `version` costs a Python start).
compose_answers() {
    command -v "$1" >/dev/null 2>&1 || return 1
    [[ $# -eq 1 ]] || "$@" version >/dev/null 2>&1
}

compose_detect() {
    if [[ ${#COMPOSE[@]} -gt 0 ]]; then
        return 0
    fi
    local -a words
    local forced candidate
    read -r -a words <<<"${FEDJOURNEY_COMPOSE:-}"
    forced=${words[*]}  # "docker  compose" and " docker compose " count as "docker compose"
    if [[ -n $forced ]]; then
        if [[ $forced != "docker compose" && $forced != docker-compose ]]; then
            echo "compose: FEDJOURNEY_COMPOSE='$forced': use 'docker compose' (v2) or" \
                "'docker-compose' (1.29), or unset it" >&2
            return 1
        fi
        if ! compose_answers "${words[@]}"; then
            echo "compose: FEDJOURNEY_COMPOSE='$forced' but '$forced version' fails: install" \
                "it (scripts/ensure-docker, as root) or unset FEDJOURNEY_COMPOSE" >&2
            return 1
        fi
        COMPOSE=("${words[@]}")
        return 0
    fi
    for candidate in "docker compose" docker-compose; do
        read -r -a words <<<"$candidate"
        if compose_answers "${words[@]}"; then
            COMPOSE=("${words[@]}")
            return 0
        fi
    done
    echo "compose: neither 'docker compose' nor 'docker-compose' is installed" \
        "(run scripts/ensure-docker as root on Debian/Ubuntu, or install Docker Compose)" >&2
    return 1
}

compose() {
    compose_detect || return 1
    "${COMPOSE[@]}" "$@"
}
