"""Where the embedding model's ONNX graph lives, and whether its files are sound.

Stdlib only: the worker's embedder (ragexd.engine.embedding), the exporter that
writes the files (ragexd.engine.onnx_export) and ``ragexctl doctor`` (which must
not import the engine) all need the same answer to "which directory, and is it
intact?", so it lives here, once.

A model directory holds ``model.onnx`` (fp32), optionally ``model.int8.onnx``,
the tokenizer (``tokenizer.json``), and ``manifest.json`` written last by the
exporter: model name, exporter version, the settings the embedder must apply
(max tokens, pooling) and the sha256 and size of every file.  A directory
without a manifest is an interrupted export, never used.

Where the graph is looked for, first match wins:

1. ``RAGEX_MODEL_DIR`` (explicit; an error if it is not sound, never skipped);
2. package data ``ragexd/_model/`` (the built wheel and the worker image carry it);
3. the cache ``<data dir>/models/<model>-<exporter version>/`` written by
   ``make install`` (``python -m ragexd.engine.onnx_export``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from . import paths

MODEL_NAME = "all-MiniLM-L6-v2"
#: Bump when the export recipe changes the graph (opset, inputs, outputs, fusions,
#: quantisation): an older cache directory is then ignored rather than loaded with
#: the wrong expectations, and quantised vectors get a new embedder id.
#: 2: fp32 graph pre-fused; int8 is blockwise MatMulNBits, not MatMulInteger.
EXPORTER_VERSION = "2"
MANIFEST = "manifest.json"
GRAPH_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
TOKENIZER = "tokenizer.json"
PRECISIONS = tuple(GRAPH_FILES)
#: The command that (re)creates the cache; printed with every problem.
EXPORT_FIX = "run `make install`, or `python -m ragexd.engine.onnx_export` (needs the [export] extra: torch)"
#: What to do when ``[embedder] runtime = "openvino"`` cannot be honoured (the worker
#: and ``ragexctl doctor`` both say it).
OPENVINO_FIX = ("pip install 'ragex[openvino]' (or `pip install openvino`), or set "
                "[embedder] runtime = \"onnxruntime\"")

#: The environment of every process that may load the model (a worker, as a process
#: or in a container; the exporter; the benchmarks): the model ships with ragex, so
#: nothing may download weights at run time, and nothing phones home (Hugging Face,
#: chromadb); no tokenizer thread pool beside ours, no progress bars in worker logs.
OFFLINE_ENV: dict[str, str] = {
    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
    "ANONYMIZED_TELEMETRY": "False", "TOKENIZERS_PARALLELISM": "false", "TQDM_DISABLE": "1",
}


def stay_offline() -> None:
    """Give this process ``OFFLINE_ENV`` wherever its environment says nothing else;
    called before anything imports huggingface, transformers or chromadb."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


class ModelFilesError(RuntimeError):
    """The model files are missing, truncated or do not match their manifest.

    ``fix`` is the sentence a person needs; the message says what is wrong."""

    def __init__(self, message: str, fix: str = EXPORT_FIX) -> None:
        super().__init__(f"{message}; fix: {fix}")
        self.problem = message
        self.fix = fix


def cache_dir() -> Path:
    """The per-user cache of exported graphs, keyed by model and exporter version."""
    return paths.data_dir() / "models" / f"{MODEL_NAME}-{EXPORTER_VERSION}"


def openvino_cache_dir() -> Path:
    """OpenVINO's cache of the graph compiled for this CPU (~90 MB): a worker start
    then loads in ~0.5 s instead of compiling for ~1.7 s.  OpenVINO keys its entries
    by graph, settings and device itself, so a new export or CPU never reuses a stale one."""
    return paths.data_dir() / "models" / "openvino-cache"


def package_dir() -> Path:
    """Package data: where build-wheel.sh puts the graph before building the wheel."""
    return Path(__file__).resolve().parent / "_model"


def candidate_dirs() -> list[tuple[str, Path]]:
    """Every place a graph may be, in the order they are tried, with a label."""
    found: list[tuple[str, Path]] = []
    explicit = os.environ.get("RAGEX_MODEL_DIR")
    if explicit:
        found.append(("RAGEX_MODEL_DIR", Path(explicit)))
    found.append(("package data", package_dir()))
    found.append(("cache", cache_dir()))
    return found


#: The graph a worker runs unless ``RAGEX_EMBEDDER_PRECISION`` says otherwise: fp32.
#: The blockwise int8 graph (exporter 2) passes the quality rule for a quantised default
#: (mean MRR@10 over the 9-corpus eval -0.002 auto, -0.004 semantic, 0.005 allowed), but
#: it embeds only 1.14-1.25x as fast as fp32 here: too little to re-embed every existing
#: index (fp32 shares its embedder id with the torch reference, int8 does not) and to
#: spend most of the quality margin.  int8 stays an option for memory-tight machines.
DEFAULT_PRECISION = "fp32"


def precision() -> str:
    """The graph precision asked for (``RAGEX_EMBEDDER_PRECISION``, default fp32)."""
    value = (os.environ.get("RAGEX_EMBEDDER_PRECISION", DEFAULT_PRECISION).strip().lower()
             or DEFAULT_PRECISION)
    if value not in GRAPH_FILES:
        raise ModelFilesError(f"RAGEX_EMBEDDER_PRECISION={value!r} is not one of "
                              f"{', '.join(PRECISIONS)}", "unset it or choose fp32 or int8")
    return value


@dataclass(frozen=True)
class ModelFiles:
    """A sound model directory: the graph and tokenizer to load, and the manifest."""

    directory: Path
    graph: Path
    tokenizer: Path
    manifest: dict
    source: str


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(directory: Path) -> dict:
    """The manifest, or ModelFilesError saying why there is none usable."""
    path = directory / MANIFEST
    if not directory.is_dir():
        raise ModelFilesError(f"no model directory at {directory}")
    if not path.is_file():
        raise ModelFilesError(f"{directory} has no {MANIFEST} (an interrupted or foreign export)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFilesError(f"{path} is unreadable: {exc}") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ModelFilesError(f"{path} is not a ragex model manifest")
    if manifest.get("model") != MODEL_NAME:
        raise ModelFilesError(f"{directory} holds {manifest.get('model')!r}, not {MODEL_NAME}")
    return manifest


def check_dir(directory: Path, want: str = "fp32", *, hashes: bool = True,
              source: str = "") -> ModelFiles:
    """Verify ``directory`` for precision ``want``: the manifest, then each file it
    lists that this precision needs (present, the recorded size, and -- with
    ``hashes`` -- the recorded sha256).  Sizes alone catch a truncated copy in
    microseconds; the hash (~0.2 s for 90 MB) catches a corrupted or swapped one."""
    manifest = read_manifest(directory)
    needed = [GRAPH_FILES[want], TOKENIZER]
    for name in needed:
        entry = manifest["files"].get(name)
        path = directory / name
        if entry is None:
            raise ModelFilesError(f"{directory} was exported without {name} "
                                  f"({want} graph not requested at export time)",
                                  EXPORT_FIX)
        if not path.is_file():
            raise ModelFilesError(f"{path} is missing")
        size = path.stat().st_size
        if size != entry.get("size"):
            raise ModelFilesError(f"{path} is {size} bytes, the manifest says {entry.get('size')} "
                                  "(truncated or replaced)")
        if hashes and sha256_of(path) != entry.get("sha256"):
            raise ModelFilesError(f"{path} does not match the sha256 in its manifest "
                                  "(corrupted or replaced)")
    return ModelFiles(directory, directory / GRAPH_FILES[want], directory / TOKENIZER,
                      manifest, source or str(directory))


def locate(want: str | None = None, *, hashes: bool = True) -> ModelFiles:
    """The first sound model directory for precision ``want``.

    An explicit ``RAGEX_MODEL_DIR`` that is not sound is an error (the user asked
    for it); an absent package-data or cache directory is skipped; a present but
    broken one is an error too -- silently skipping to another copy would hide a
    corrupted install."""
    want = want or precision()
    tried: list[str] = []
    for source, directory in candidate_dirs():
        if source != "RAGEX_MODEL_DIR" and not (directory / MANIFEST).exists():
            tried.append(f"{source} {directory}")
            continue
        try:
            return check_dir(directory, want, hashes=hashes, source=source)
        except ModelFilesError as exc:
            if source != "RAGEX_MODEL_DIR":
                raise
            raise ModelFilesError(exc.problem, "unset RAGEX_MODEL_DIR, or export into it: "
                                  f"python -m ragexd.engine.onnx_export --out {directory}") from exc
    raise ModelFilesError("no exported ONNX model found (looked in " + "; ".join(tried) + ")")


def write_manifest(directory: Path, files: list[str], settings: dict) -> Path:
    """Record every file's size and sha256; written last, atomically, by the exporter."""
    manifest = {"model": MODEL_NAME, "exporter_version": EXPORTER_VERSION, **settings,
                "files": {name: {"size": (directory / name).stat().st_size,
                                 "sha256": sha256_of(directory / name)} for name in files}}
    tmp = directory / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, directory / MANIFEST)
    return directory / MANIFEST
