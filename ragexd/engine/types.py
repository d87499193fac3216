"""The engine's public vocabulary: what goes in, what comes out.

The engine knows nothing of ZeroMQ, Docker or the wire protocol; the worker
maps these types onto protocol messages.  Keep this module import-light (no
torch, no chromadb) so it can be imported anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..vocabulary import CodedError


class EngineError(CodedError):
    """A failure the user can act on.  ``code`` matches a protocol ErrorCode value
    (``invalid_regex``, ``bad_query``, ``path_outside_project``, ``index_corrupt``,
    ``index_unwritable``, ``not_found``, ``too_large``, ``internal``) so the
    worker can pass it on without a translation table."""


@dataclass(frozen=True)
class SearchQuery:
    text: str
    mode: str = "auto"                  # auto | semantic | regex | symbol | hybrid
    limit: int = 10
    path_globs: tuple[str, ...] = ()    # gitignore-style globs relative to the root
    languages: tuple[str, ...] = ()     # engine language names: python, javascript, ...


@dataclass
class SearchHit:
    path: str          # relative to the project root, '/'-separated
    line: int          # 1-based: a definition's own line (after its decorators)
    end_line: int      # 1-based, inclusive: the last line of the whole span
    kind: str          # function | method | class | match | window | ...
    name: str
    score: float
    text: str          # snippet read back from the file now
    language: str = ""
    parent: str = ""
    stale: bool = False  # file changed on disk since it was indexed
    start_line: int = 0  # 1-based first line of the whole span (decorators included)


@dataclass
class Coverage:
    """How much of the project an answer covers, so none claims more than it knows.

    A first index catalogues every file (names, keywords, definitions) before
    it has embedded them all: symbol and keyword answers are exact for the
    ``files_indexed`` catalogued files, semantic ones for ``chunks_embedded``.
    """

    files_indexed: int = 0          # files catalogued: regex/symbol/keyword search sees them
    files_total: int | None = None  # files the index holds when complete (None: not known)
    chunks_indexed: int = 0         # chunks catalogued
    chunks_embedded: int = 0        # chunks whose vector is stored: semantic search sees them
    catalog_complete: bool = True   # every file is catalogued: "not found" means absent
    complete: bool = True           # ... and every chunk is embedded
    eta_seconds: float | None = None  # until every chunk is embedded, while an index runs

    def files_note(self) -> str:
        """``the 165 of 849 files indexed so far`` (for answers that found nothing)."""
        total = f" of {self.files_total}" if self.files_total is not None else ""
        return f"the {self.files_indexed}{total} files indexed so far"

    def embedded_note(self) -> str:
        """Says which part of the project a ranking by meaning saw."""
        eta = (f"; all of them in about {self.eta_seconds:.0f} s"
               if self.eta_seconds is not None else "")
        return (f"ranked by meaning over the {self.chunks_embedded} of {self.chunks_indexed} "
                f"chunks embedded so far{eta}")


@dataclass
class SearchOutcome:
    hits: list[SearchHit]
    mode: str                 # the mode actually used
    partial: bool = False     # the index was incomplete (being built, or interrupted)
    notes: list[str] = field(default_factory=list)
    coverage: Coverage | None = None


@dataclass
class IndexProgress:
    phase: str                # scanning | cataloguing | embedding | done
    files_done: int = 0
    files_total: int = 0
    chunks_embedded: int = 0
    eta_seconds: float | None = None
    message: str = ""
    #: while embedding: this run's chunks to embed, done and left (0: not counted),
    #: so a progress bar can follow the embedding rather than stay full of files
    chunks_total: int = 0


@dataclass
class SkippedFile:
    path: str
    reason: str


@dataclass
class IndexSummary:
    files_scanned: int = 0
    files_indexed: int = 0      # (re)chunked and (re)embedded this run
    files_unchanged: int = 0
    files_removed: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    chunks_total: int = 0
    seconds: float = 0.0
    #: what this run left out, with why: the first SKIPPED_SHOWN only (a reply must stay
    #: under the wire's size limit; 40,000 FIFOs once made a 5 MB one), all counted below
    skipped: list[SkippedFile] = field(default_factory=list)
    skipped_total: int = 0      # how many this run left out (``skipped`` may name fewer)
    chunks_embedded: int = 0    # vectors computed this run (unchanged chunks keep theirs)
    chunks_shared: int = 0      # vectors taken from the shared store instead of computed
    chunks_reused: int = 0      # vectors of moved chunks (same embedded text, new lines) kept
    notes: list[str] = field(default_factory=list)  # e.g. the shared store was unreachable
    cancelled: bool = False     # stopped early by the cancel event: the index is partial


@dataclass
class IndexStatus:
    state: str                  # empty | partial | ready | indexing | corrupt
    files: int = 0
    chunks: int = 0
    size_bytes: int = 0
    last_indexed: float | None = None   # unix time of the last completed index run
    model_loaded: bool = False
    pending_files: int = 0      # known to have changed, not yet re-indexed
    last_error: str = ""        # why the last index run failed ("" when it did not)
    coverage: Coverage | None = None
    #: the shared vector store (`[store] backend = "chroma-http"`): where, role,
    #: vectors fetched/published, and its problem while unavailable; None: local only
    store: dict[str, object] | None = None
    #: files the last runs left out (too large, binary, generated, unreadable...):
    #: how many, and the first SKIPPED_SHOWN of them as {"path", "reason"}
    skipped: int = 0
    skipped_files: list[dict[str, str]] = field(default_factory=list)
    #: what embeds in this worker ({"runtime", "precision"}; None: not loaded yet) and,
    #: under "bulk", the child process embedding the running index's backlog
    embedder: dict[str, object] | None = None
