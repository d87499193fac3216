#!/usr/bin/env bash
# Build the ragex wheel into dist/.
#
#   packaging/build-wheel.sh              # dist/ragex-<version>-py3-none-any.whl
#   PYTHON=python3.11 packaging/build-wheel.sh
#   RAGEX_BUILD_ISOLATION=1 packaging/build-wheel.sh   # fresh build env from the index
#
# ragex is pure Python, so one wheel serves Linux and macOS.  By default the build
# runs without isolation, with the setuptools already installed next to PYTHON: it
# then needs no network, and the result does not depend on whatever setuptools the
# index serves today.  The wheel holds ragexd and ragexctl (the unit and the launchd
# agent templates ship as package data in ragexctl/units/) and, as package data, the
# exported ONNX graph + tokenizer (ragexd/_model, git-ignored), so a venv installed
# from it embeds with onnxruntime and needs no torch.  The export runs here when
# ragexd/_model is not already sound (it needs torch: the [export] extra).
# Prints the wheel's path as the last line of stdout.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
cd "$ROOT"

if ! "$PYTHON" -c 'import build' 2>/dev/null; then
    echo "build-wheel: the 'build' package is missing for $PYTHON (pip install build)" >&2
    exit 2
fi
args=(--wheel --outdir dist/)
if [[ "${RAGEX_BUILD_ISOLATION:-0}" != 1 ]]; then
    # setuptools >= 70.1 builds wheels by itself (no separate `wheel` package).
    if ! "$PYTHON" -c 'import setuptools.command.bdist_wheel' 2>/dev/null; then
        echo "build-wheel: setuptools>=70.1 is needed next to $PYTHON for a build without" \
             "isolation; install it, or set RAGEX_BUILD_ISOLATION=1 to fetch one from the index" >&2
        exit 2
    fi
    args+=(--no-isolation)
fi

version="$("$PYTHON" -c 'import tomllib; print(tomllib.load(open("pyproject.toml","rb"))["project"]["version"])')"
rm -f "dist/ragex-$version-"*.whl
# build writes an egg-info and build/ next to the sources (both git-ignored).  A stale
# build/lib would smuggle modules deleted from the sources into the wheel: start clean.
rm -rf build/lib build/bdist.*
"$PYTHON" -m ragexd.engine.onnx_export --out ragexd/_model >&2 || {
    echo "build-wheel: exporting the ONNX model failed (needs the [export] extra)" >&2
    exit 2
}
"$PYTHON" -m build "${args[@]}" . >&2
wheel="$(ls -t "dist/ragex-$version-"*.whl | head -n 1)"

# The wheel must carry both programs and the service package, and nothing else top-level.
"$PYTHON" - "$wheel" <<'PY' >&2
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
missing = [f for f in ("ragexd/__init__.py", "ragexd/supervisor/notify.py",
                       "ragexctl/cli.py", "ragexctl/service/__init__.py",
                       "ragexctl/service/systemd.py", "ragexctl/service/launchd.py",
                       "ragexd/_model/manifest.json",
                       "ragexd/_model/model.onnx", "ragexd/_model/model.int8.onnx",
                       "ragexd/_model/tokenizer.json") if f not in names]
entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
eps = zipfile.ZipFile(sys.argv[1]).read(entry).decode()
problems = missing + [f"unexpected top-level {t!r}" for t in tops - {"ragexd", "ragexctl"}]
problems += [f"no console script {s!r}" for s in ("ragexd =", "ragexctl =") if s not in eps]
if problems:
    sys.exit("build-wheel: bad wheel: " + "; ".join(problems))
print(f"build-wheel: {sys.argv[1]}: {len(names)} files, ragexd + ragexctl entry points, "
      "the ONNX model")
PY
echo "$ROOT/$wheel"
