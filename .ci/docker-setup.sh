#!/usr/bin/env bash
# Make Docker usable for the Docker tests (tests/docker_runtime, marked `docker`):
#   1. apt-get install docker.io + debootstrap when missing (root only);
#   2. start dockerd when no engine answers, and wait for it (with a deadline);
#   3. build the worker image, or reuse it when its labels match the sources
#      (packaging/build-image.sh: no registry, no network).
# Exit 0 when the engine answers and the image is ready.  Otherwise print why, write it to
# $RAGEX_DOCKER_STATUS (default /tmp/ragex-docker-setup.status) and exit 1: the caller
# tolerates that, and the Docker tests then SKIP with the reason printed by pytest.
set -uo pipefail
cd "$(dirname "$0")/.."

DOCKER=/usr/bin/docker
STATUS_FILE="${RAGEX_DOCKER_STATUS:-/tmp/ragex-docker-setup.status}"
DOCKERD_LOG="${RAGEX_DOCKERD_LOG:-/tmp/ragex-dockerd.log}"
DEADLINE="${RAGEX_DOCKERD_DEADLINE:-60}"
T0=$(date +%s)

say() { echo "docker-setup [$(( $(date +%s) - T0 ))s]: $*"; }
give_up() {
    say "Docker tests will be SKIPPED: $*"
    echo "$*" >"$STATUS_FILE" 2>/dev/null || true
    exit 1
}
engine_up() { timeout 10 "$DOCKER" info >/dev/null 2>&1; }

# --- 1. packages ------------------------------------------------------------------------
missing=()
[ -x "$DOCKER" ] && command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        give_up "${missing[*]} not installed and not root (cannot apt-get install)"
    fi
    say "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -q && apt-get install -y -q "${missing[@]}"; } >/tmp/ragex-docker-apt.log 2>&1; then
        tail -n 5 /tmp/ragex-docker-apt.log
        give_up "apt-get install ${missing[*]} failed (log: /tmp/ragex-docker-apt.log)"
    fi
    [ -x "$DOCKER" ] || give_up "docker.io installed but $DOCKER is missing"
fi

# --- 2. engine --------------------------------------------------------------------------
if engine_up; then
    say "the Docker engine answers ($("$DOCKER" version -f '{{.Server.Version}}' 2>/dev/null))"
else
    [ "$(id -u)" = 0 ] || give_up "no Docker engine answers and only root can start dockerd here"
    DOCKERD_PID=""
    start_dockerd() {
        say "starting dockerd $* (log: $DOCKERD_LOG)"
        # setsid + nohup: the engine must outlive this script (the tests run after it).
        setsid nohup dockerd "$@" >>"$DOCKERD_LOG" 2>&1 </dev/null &
        DOCKERD_PID=$!
        local waited=0
        while [ $waited -lt "$DEADLINE" ]; do
            engine_up && return 0
            # dockerd gave up (it exits on fatal errors): no point waiting longer.
            kill -0 "$DOCKERD_PID" 2>/dev/null || return 1
            sleep 1
            waited=$((waited + 1))
        done
        return 1
    }
    if ! start_dockerd; then
        tail -n 5 "$DOCKERD_LOG"
        # Sandboxes often lack iptables/bridge support; workers use --network none anyway.
        if kill -0 "$DOCKERD_PID" 2>/dev/null; then
            kill "$DOCKERD_PID"
            for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 1; done
        fi
        if ! start_dockerd --iptables=false --ip6tables=false --bridge=none; then
            tail -n 15 "$DOCKERD_LOG"
            give_up "dockerd did not answer within ${DEADLINE}s (log: $DOCKERD_LOG)"
        fi
    fi
    say "the Docker engine answers ($("$DOCKER" version -f '{{.Server.Version}}' 2>/dev/null))"
fi

# --- 3. image -----------------------------------------------------------------------------
say "building or reusing the worker image (packaging/build-image.sh)"
if ! image=$(bash packaging/build-image.sh); then
    give_up "packaging/build-image.sh failed (see the lines above)"
fi
size=$("$DOCKER" image inspect -f '{{.Size}}' "$image" 2>/dev/null || echo 0)
say "ready: $image ($((size / 1024 / 1024)) MiB) in $(( $(date +%s) - T0 )) s"
rm -f "$STATUS_FILE"
exit 0
