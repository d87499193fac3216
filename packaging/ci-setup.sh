#!/usr/bin/env bash
# Start what the test suite needs beyond the venv: systemd-analyze (unit checks) and a
# Docker engine with the worker image.  Each step says what it does; a step that cannot
# be done leaves its tests to skip WITH the reason printed, never silently passed.
set -uo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
command -v dockerd >/dev/null 2>&1 || need_apt+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need_apt+=(debootstrap)
if [ ${#need_apt[@]} -gt 0 ] && [ "$(id -u)" = 0 ]; then
  echo "ci-setup: apt-get install ${need_apt[*]}"
  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends "${need_apt[@]}" >/tmp/ragex-apt.log 2>&1 \
    || { echo "ci-setup: apt-get failed (see /tmp/ragex-apt.log)"; tail -5 /tmp/ragex-apt.log; }
fi

if [ -x .ci/docker-setup.sh ] || [ -f .ci/docker-setup.sh ]; then
  if ! bash .ci/docker-setup.sh; then
    echo "ci-setup: Docker is not available; the Docker tests will be skipped with the reason."
  fi
fi
exit 0
