# The ragex worker image: one long-lived `python -m ragexd.worker serve` per project,
# hosted by ragexd's Docker runtime (ragexd/runtimes/docker.py).
#
# Build it with packaging/build-image.sh: it needs no registry and no network.  The
# script builds the wheelhouse on the host (.cache/wheelhouse/deps = every dependency,
# .cache/wheelhouse/app = the ragex wheel), creates a Debian bookworm base with
# debootstrap when BASE_IMAGE cannot be found locally, and labels the image with the
# version and a hash of the sources so ragexd can tell a stale image.
#
# Any Debian bookworm base whose python3 is 3.11 works (the wheels are cp311).
# Needs BuildKit (RUN --mount; DOCKER_BUILDKIT=1, as the script sets), no `# syntax=`
# line: Docker >= 20.10's built-in frontend has everything used here.

ARG BASE_IMAGE=python:3.11-slim-bookworm

# --- deps: a venv with every dependency, installed from the host-built wheelhouse ----
# Kept apart from the ragex wheel so that a source change rebuilds only the ragex layer
# (its code and the exported ONNX graph), not the ~500 MB of chromadb and friends.
# No torch: embeddings run on onnxruntime (the graph is exported on the host by
# packaging/build-image.sh and ships inside the ragex wheel).
FROM ${BASE_IMAGE} AS deps
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
# The wheels are bind-mounted, not copied: 450 MB that no layer needs to keep.
RUN --mount=type=bind,source=.cache/wheelhouse/deps,target=/wheels set -eu; \
    python3 -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' ; \
    python3 -m venv /opt/venv; \
    /opt/venv/bin/python -m pip install --no-compile --no-index --find-links /wheels /wheels/*.whl; \
    sp=$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
    # Nothing below is used at run time: test suites of the numeric libraries;
    # setuptools (no builds happen in here); the kubernetes client, which chromadb
    # imports only for its distributed mode (its metadata stays, so `pip check` still
    # vouches for the rest); hf_xet, huggingface_hub's download backend (nothing is
    # downloaded at run time: HF_HUB_OFFLINE=1); uvloop, for chromadb's HTTP server,
    # which a worker never runs (it opens the store in-process); onnxruntime's
    # quantisation, model-conversion and profiling tools (the graph is built on the host).
    rm -rf "$sp"/kubernetes "$sp"/chromadb/test "$sp"/numpy/*/tests "$sp"/numpy/tests \
           "$sp"/hf_xet "$sp"/uvloop "$sp"/onnxruntime/transformers "$sp"/onnxruntime/tools \
           "$sp"/onnxruntime/quantization "$sp"/onnxruntime/datasets \
           "$sp"/setuptools "$sp"/_distutils_hack "$sp"/distutils-precedence.pth; \
    # Byte-code now, in parallel, for what is left: the root filesystem is read-only at
    # run time, so byte-code not compiled here would be recompiled by every worker start.
    # (A few files of some packages are templates, not Python 3; pip ignores those too.)
    /opt/venv/bin/python -m compileall -q -j 0 /opt/venv/lib >/dev/null || true; \
    test -x /opt/venv/bin/rg

# --- the worker image ------------------------------------------------------------------
FROM ${BASE_IMAGE}
COPY --from=deps /opt/venv /opt/venv
# The ragex wheel alone (byte-compiled by pip), then a consistency check of the whole
# venv and a smoke test that the worker, the engine's libraries, the baked-in model and
# rg are all there.
RUN --mount=type=bind,source=.cache/wheelhouse/app,target=/app set -eu; \
    /opt/venv/bin/python -m pip install --no-cache-dir --no-index --no-deps /app/*.whl; \
    /opt/venv/bin/python -m pip check; \
    rm -rf /root/.cache; \
    /opt/venv/bin/python -c 'import importlib.util as u, ragexd.worker, chromadb, zmq, tree_sitter_languages; \
from ragexd.engine.embedding import Embedder; assert Embedder().encode_query("x").shape == (384,); \
assert not any(u.find_spec(m) for m in ("torch", "transformers", "sentence_transformers"))'; \
    /opt/venv/bin/rg --version >/dev/null; \
    mkdir -p /workspace /index /run/ragex; \
    chmod 0777 /index /run/ragex

# Nothing is downloaded at run time: the ONNX graph ships in the ragex wheel.
# HOME and every cache point at /tmp, the only writable place (a small tmpfs).
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    HF_HOME=/tmp/.cache/huggingface \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    ANONYMIZED_TELEMETRY=False \
    TOKENIZERS_PARALLELISM=false \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# An unprivileged default; ragexd runs containers as the host user (--user uid:gid)
# so the index it writes belongs to that user in both runtimes.
USER 10001:10001
WORKDIR /workspace

ENTRYPOINT ["python", "-m", "ragexd.worker"]
CMD ["serve", "--root", "/workspace", "--index-dir", "/index", "--endpoint", "ipc:///run/ragex/worker.sock"]

# Last, so a new source hash only rewrites the image config.
ARG RAGEX_VERSION=dev
ARG RAGEX_SOURCE_HASH=unknown
LABEL org.opencontainers.image.title="ragex-worker" \
      org.opencontainers.image.description="ragex per-project search worker" \
      org.opencontainers.image.version="${RAGEX_VERSION}" \
      ragex.version="${RAGEX_VERSION}" \
      ragex.source-hash="${RAGEX_SOURCE_HASH}"
