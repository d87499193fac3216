#!/usr/bin/env bash
# Create a Debian bookworm base image (python3 3.11 + venv) WITHOUT a registry.
#
# Why: the worker image needs a base with python3.11, and machines without
# registry access cannot `docker pull python:3.11-slim-bookworm`.  debootstrap
# fetches .deb packages from the Debian mirror apt already uses, and
# `docker import` turns the resulting root filesystem into an image.  The rootfs
# tarball is cached so a second run (or a rebuilt Docker engine) only re-imports.
#
# Usage: packaging/make-base.sh [IMAGE_TAG]   (default ragex-base:bookworm)
# Env:   RAGEX_BUILD_CACHE (default /var/cache/ragex-build), DOCKER (default /usr/bin/docker),
#        DEBIAN_MIRROR (default: the first deb.debian.org-style URI apt is configured with).
set -euo pipefail

TAG="${1:-ragex-base:bookworm}"
CACHE="${RAGEX_BUILD_CACHE:-/var/cache/ragex-build}"
DOCKER="${DOCKER:-/usr/bin/docker}"
TARBALL="$CACHE/base/bookworm-rootfs.tar"

log() { printf '[make-base] %s\n' "$*" >&2; }

if "$DOCKER" image inspect "$TAG" >/dev/null 2>&1; then
    log "base image $TAG already present"
    exit 0
fi

mkdir -p "$CACHE/base"

if [[ ! -s "$TARBALL" ]]; then
    command -v debootstrap >/dev/null || { log "debootstrap is not installed (apt-get install -y debootstrap)"; exit 1; }
    mirror="${DEBIAN_MIRROR:-}"
    if [[ -z "$mirror" ]]; then
        # Reuse the mirror apt is configured with (deb822 or one-line format).
        mirror=$(grep -rhoE '(URIs:|deb)[[:space:]]+https?://[^[:space:]]+/debian/?([[:space:]]|$)' \
                 /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
                 | grep -v security | head -n1 | awk '{print $2}') || true
        mirror="${mirror:-http://deb.debian.org/debian}"
    fi
    rootfs="$CACHE/base/rootfs.tmp"
    rm -rf "$rootfs"
    log "debootstrap bookworm from $mirror (takes a few minutes the first time)"
    start=$(date +%s)
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$rootfs" "$mirror" >"$CACHE/base/debootstrap.log" 2>&1 || {
        log "debootstrap failed; last lines of $CACHE/base/debootstrap.log:"
        tail -n 20 "$CACHE/base/debootstrap.log" >&2
        exit 1
    }
    # Trim what a container never needs: apt lists/caches, docs, man pages, locales.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
           "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
           "$rootfs"/usr/share/locale/* "$rootfs"/var/log/*.log "$rootfs"/debootstrap
    tar --numeric-owner -C "$rootfs" -cf "$TARBALL.tmp" .
    mv "$TARBALL.tmp" "$TARBALL"
    rm -rf "$rootfs"
    log "rootfs ready in $(( $(date +%s) - start )) s: $TARBALL ($(du -h "$TARBALL" | cut -f1))"
fi

log "importing $TARBALL as $TAG"
"$DOCKER" import \
    -c 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'CMD ["/bin/bash"]' \
    -m "debootstrap --variant=minbase bookworm + python3 (ragex)" \
    "$TARBALL" "$TAG" >/dev/null
log "base image $TAG ready"
