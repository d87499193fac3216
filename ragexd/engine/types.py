"""The engine's public vocabulary: what goes in, what comes out.

The engine knows nothing of ZeroMQ, Docker or the wire protocol; the worker
maps these types onto protocol messages.  Keep this module import-light (no
torch, no chromadb) so it can be imported anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class EngineError(Exception):
    """A failure the user can act on.  ``code`` matches a protocol ErrorCode value
    (``invalid_regex``, ``bad_query``, ``path_outside_project``, ``index_corrupt``,
    ``index_unwritable``, ``not_found``, ``too_large``, ``internal``) so the
    worker can pass it on without a translation table."""

    def __init__(self, code: str, message: str, **detail: object) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail


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
class SearchOutcome:
    hits: list[SearchHit]
    mode: str                 # the mode actually used
    partial: bool = False     # the index was incomplete (being built, or interrupted)
    notes: list[str] = field(default_factory=list)


@dataclass
class IndexProgress:
    phase: str                # scanning | embedding | writing | done
    files_done: int = 0
    files_total: int = 0
    chunks_embedded: int = 0
    eta_seconds: float | None = None
    message: str = ""


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
    skipped: list[SkippedFile] = field(default_factory=list)
    chunks_embedded: int = 0    # vectors computed this run (unchanged chunks keep theirs)
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
