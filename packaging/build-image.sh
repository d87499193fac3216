#!/usr/bin/env bash
# Build (or reuse) the ragex worker image with no registry and no network.
#
#   packaging/build-image.sh            # build ragex-worker:<version> unless an identical one exists
#   RAGEX_FORCE_BUILD=1 packaging/build-image.sh
#
# Steps, each skipped when its result is already there:
#   1. base image: BASE_IMAGE if present locally, else ragex-base:bookworm made by
#      packaging/make-base.sh (debootstrap + docker import; rootfs cached).
#   2. model + wheelhouse: the ONNX graph exported on the host into ragexd/_model
#      (python -m ragexd.engine.onnx_export; needs torch, which the dev venv has, and is
#      skipped when a sound export is there), so the ragex wheel carries it as package
#      data; `pip wheel` on the host of every run-time dependency (pinned by
#      packaging/constraints.txt; no torch: the worker runs onnxruntime), cached under
#      $RAGEX_BUILD_CACHE and rebuilt only when pyproject.toml or the constraints
#      change; plus the ragex wheel.
#   3. image: skipped when an image of this tag carries the same ragex.version and
#      ragex.source-hash labels (hash of ragexd/, ragexctl/, pyproject.toml, Dockerfile,
#      .dockerignore, constraints and the base image id).
#
# Env: RAGEX_BUILD_CACHE (default /var/cache/ragex-build), BASE_IMAGE, RAGEX_IMAGE
#      (default ragex-worker:<version>), DOCKER (default /usr/bin/docker: it has BuildKit),
#      PYTHON (default .venv/bin/python, else python3), RAGEX_FORCE_BUILD=1.
# Prints the image reference on stdout as its last line; progress goes to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -n "${RAGEX_BUILD_CACHE:-}" ]]; then
    CACHE="$RAGEX_BUILD_CACHE"
elif mkdir -p /var/cache/ragex-build 2>/dev/null && [[ -w /var/cache/ragex-build ]]; then
    CACHE=/var/cache/ragex-build
else
    CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/ragex-build"     # not root
fi
mkdir -p "$CACHE"
DOCKER="${DOCKER:-/usr/bin/docker}"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
DEFAULT_BASE="python:3.11-slim-bookworm"
FALLBACK_BASE="ragex-base:bookworm"

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
T0=$(now_ms)
# Seconds since a now_ms timestamp, one decimal, with shell arithmetic only.
elapsed() { local d=$(( $(now_ms) - $1 )); printf '%d.%d' $(( d / 1000 )) $(( d % 1000 / 100 )); }
log() { printf '[build-image %6ss] %s\n' "$(elapsed "$T0")" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

cd "$ROOT"
# The graph first: it is part of the sources the image is hashed from.  Exported on the
# host rather than in a Dockerfile stage: the host venv already has torch, and a torch
# install inside the build would cost minutes and ~1 GB of wheels for one 20 s export.
"$PYTHON" -m ragexd.engine.onnx_export --out ragexd/_model >&2 \
    || die "exporting the ONNX model failed (needs the [export] extra: make install)"
"$DOCKER" info >/dev/null 2>&1 || die "the Docker engine at $DOCKER does not answer (is dockerd running?)"
# One build at a time (CI setup and a test run may both ask): the second waits, then
# finds the image up to date.
exec 9>"$CACHE/build.lock"
flock 9

VERSION=$(sed -n 's/^__version__ *= *"\([^"]*\)".*/\1/p' ragexd/__init__.py)
[[ -n "$VERSION" ]] || die "cannot read __version__ from ragexd/__init__.py"
IMAGE="${RAGEX_IMAGE:-ragex-worker:$VERSION}"

# --- 1. base image --------------------------------------------------------------------
t=$(now_ms)
if [[ -n "${BASE_IMAGE:-}" ]]; then
    "$DOCKER" image inspect "$BASE_IMAGE" >/dev/null 2>&1 \
        || die "BASE_IMAGE=$BASE_IMAGE is not present locally (docker pull or docker load it first)"
elif "$DOCKER" image inspect "$DEFAULT_BASE" >/dev/null 2>&1; then
    BASE_IMAGE="$DEFAULT_BASE"
else
    BASE_IMAGE="$FALLBACK_BASE"
    RAGEX_BUILD_CACHE="$CACHE" DOCKER="$DOCKER" "$ROOT/packaging/make-base.sh" "$BASE_IMAGE"
fi
BASE_ID=$("$DOCKER" image inspect -f '{{.Id}}' "$BASE_IMAGE")
log "base image: $BASE_IMAGE (${BASE_ID:7:12}) [$(elapsed "$t") s]"

# --- source hash and reuse --------------------------------------------------------------
SOURCE_HASH=$( {
    find ragexd ragexctl -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 \
        | LC_ALL=C sort -z | xargs -0 sha256sum
    sha256sum pyproject.toml Dockerfile .dockerignore packaging/constraints.txt
    echo "base $BASE_ID"
} | sha256sum | cut -c1-16)

if [[ "${RAGEX_FORCE_BUILD:-0}" != "1" ]]; then
    have=$("$DOCKER" image inspect -f '{{index .Config.Labels "ragex.version"}} {{index .Config.Labels "ragex.source-hash"}}' "$IMAGE" 2>/dev/null || true)
    if [[ "$have" == "$VERSION $SOURCE_HASH" ]]; then
        log "image $IMAGE is up to date (version $VERSION, source hash $SOURCE_HASH): nothing to build"
        echo "$IMAGE"
        exit 0
    fi
    [[ -n "$have" ]] && log "image $IMAGE is stale (labels: $have; want: $VERSION $SOURCE_HASH)"
fi

# --- 2. wheelhouse ------------------------------------------------------------------------
# Dependencies: keyed by what decides them.  The ragex wheel itself is rebuilt every time
# (a second), into its own directory so the deps layer of the image stays cached.
t=$(now_ms)
WH="$CACHE/wheelhouse"
DEPS_KEY=$(cat pyproject.toml packaging/constraints.txt | sha256sum | cut -c1-16)
APP_DIR=$(mktemp -d)
CTX_WH="$ROOT/.cache/wheelhouse"
trap 'rm -rf "$APP_DIR" "$CTX_WH"' EXIT
# From a copy of the sources: an in-tree build would leave build/ and egg-info behind.
mkdir -p "$APP_DIR/src"
cp -r pyproject.toml ragexd ragexctl "$APP_DIR/src/"
for f in README.md LICENSE setup.cfg MANIFEST.in; do [[ -e "$f" ]] && cp "$f" "$APP_DIR/src/"; done
find "$APP_DIR/src" -name __pycache__ -prune -exec rm -rf {} +
# The image ships the default fp32 graph only: the optional int8 one would add 56 MiB to
# an image whose budget is 700 MB (a worker asked for int8 says the file is missing).
rm -f "$APP_DIR/src/ragexd/_model/model.int8.onnx"
"$PYTHON" -m pip wheel -q --no-deps --no-build-isolation -w "$APP_DIR" "$APP_DIR/src" >"$APP_DIR/build.log" 2>&1 \
    || { tail -n 30 "$APP_DIR/build.log" >&2; die "building the ragex wheel failed"; }
APP_WHEEL=$(ls "$APP_DIR"/ragex-*.whl)
if [[ "$(cat "$WH/deps.key" 2>/dev/null)" != "$DEPS_KEY" ]]; then
    log "building the dependency wheelhouse in $WH/deps (pip wheel, pinned by packaging/constraints.txt)"
    mkdir -p "$WH"
    rm -rf "$WH/deps.new"
    # --find-links to the previous wheelhouse: unchanged wheels are reused, not rebuilt.
    "$PYTHON" -m pip wheel -q --progress-bar off -w "$WH/deps.new" \
        --find-links "$WH/deps" --find-links /opt/wheels \
        -c packaging/constraints.txt "${APP_WHEEL}[engine]" >"$WH/pip-wheel.log" 2>&1 || {
        grep -v '^WARNING: Location' "$WH/pip-wheel.log" | tail -n 20 >&2
        die "pip wheel failed (log: $WH/pip-wheel.log)"
    }
    rm -f "$WH"/deps.new/ragex-*.whl
    if ls "$WH"/deps.new/ | grep -qiE '^(torch|sentence_transformers|transformers)-'; then
        die "the wheelhouse contains torch or transformers: the worker must not need them"
    fi
    if ls "$WH"/deps.new/ | grep -qi '^nvidia'; then die "the wheelhouse contains CUDA (nvidia-*) wheels"; fi
    rm -rf "$WH/deps" && mv "$WH/deps.new" "$WH/deps"
    echo "$DEPS_KEY" >"$WH/deps.key"
fi
# Into the build context (.cache/ is git-ignored; .dockerignore admits only these wheels).
# Hard links when the cache shares the filesystem: no copy of 450 MB of wheels.
rm -rf "$CTX_WH" && mkdir -p "$CTX_WH/app"
cp -al "$WH/deps" "$CTX_WH/deps" 2>/dev/null || cp -a "$WH/deps" "$CTX_WH/deps"
cp "$APP_WHEEL" "$CTX_WH/app/"
log "wheelhouse: $(ls "$CTX_WH/deps" | wc -l) dependency wheels ($(du -sh "$WH/deps" | cut -f1)) + $(basename "$APP_WHEEL") [$(elapsed "$t") s]"

# --- 3. image -----------------------------------------------------------------------------
t=$(now_ms)
log "docker build $IMAGE (base $BASE_IMAGE, source hash $SOURCE_HASH, no network)"
DOCKER_BUILDKIT=1 "$DOCKER" build --network none --progress plain \
    --build-arg BASE_IMAGE="$BASE_IMAGE" \
    --build-arg RAGEX_VERSION="$VERSION" \
    --build-arg RAGEX_SOURCE_HASH="$SOURCE_HASH" \
    -t "$IMAGE" -f Dockerfile . >"$CACHE/docker-build.log" 2>&1 || {
    tail -n 40 "$CACHE/docker-build.log" >&2
    die "docker build failed (log: $CACHE/docker-build.log)"
}
SIZE=$("$DOCKER" image inspect -f '{{.Size}}' "$IMAGE")
log "built $IMAGE: $((SIZE / 1024 / 1024)) MiB [$(elapsed "$t") s]"
# Drop dangling layers of earlier builds of this image (keeps /var/lib/docker bounded).
"$DOCKER" image prune -f --filter "label=ragex.version" >/dev/null 2>&1 || true
log "done in $(elapsed "$T0") s"
echo "$IMAGE"
