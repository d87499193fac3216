"""The messages ragexctl, ragexd and workers exchange, as dataclasses.

One request gets zero or more ``Progress`` messages and then exactly one
``Reply`` carrying the same ``id``.  Everything is plain JSON underneath so a
peer in another language (an editor plugin, a shell script with ``zmq``) can
speak it; the dataclasses only give Python code names and types.
"""

from __future__ import annotations

import enum
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .errors import ErrorCode, ErrorInfo, RagexError


class Op(str, enum.Enum):
    """Operations.  Ragexd handles some itself and forwards the rest to a worker."""

    # Answered by ragexd itself.
    HELLO = "hello"        # handshake: versions, capabilities, pid
    PING = "ping"          # liveness (ragexd <-> worker heartbeats use it too)
    STATUS = "status"      # ragexd and every worker (or one project's worker)
    START = "start"        # start a project's worker now
    STOP = "stop"          # stop one project's worker, or all (+ ragexd)
    LIST = "ls"            # indexed projects with size and last use
    REMOVE = "rm"          # stop a project's worker and delete its index
    LOGS = "logs"          # the end of a project's (or ragexd's) log
    SHUTDOWN = "shutdown"  # stop ragexd (what `stop --all` sends)

    # Forwarded to the project's worker.
    SEARCH = "search"
    INDEX = "index"
    WORKER_STATUS = "worker_status"


#: Requests that may be retried transparently: repeating them changes nothing.
IDEMPOTENT_OPS = frozenset({Op.HELLO, Op.PING, Op.STATUS, Op.LIST, Op.LOGS,
                            Op.SEARCH, Op.WORKER_STATUS})

#: Ops that ragexd forwards to the project's worker.
WORKER_OPS = frozenset({Op.SEARCH, Op.INDEX, Op.WORKER_STATUS})

SEARCH_MODES = ("auto", "semantic", "regex", "symbol", "hybrid")

#: Longest query accepted, in bytes of UTF-8.  Longer ones are a clear TOO_LARGE
#: error rather than a slow, useless embedding of a pasted file.
MAX_QUERY_BYTES = 8 * 1024
MAX_LIMIT = 1000


def new_request_id() -> str:
    return os.urandom(8).hex()  # cheaper to import than uuid; 64 random bits suffice


def _check_keys(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """Keep known keys only: newer peers may add fields we must ignore."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass
class Request:
    op: Op
    args: dict[str, Any] = field(default_factory=dict)
    #: Absolute real path of the project root (None for ragexd-level ops).
    project: str | None = None
    id: str = field(default_factory=new_request_id)
    #: Version of the sending program, for diagnostics (compatibility is by frame tag).
    client_version: str = ""
    #: Deadline hint in seconds; ragexd answers TIMEOUT rather than hang past it.
    timeout: float | None = None

    def to_wire(self) -> dict[str, Any]:
        data = asdict(self)
        data["op"] = self.op.value
        data["type"] = "request"
        return data

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> "Request":
        raw = dict(_check_keys(cls, data))
        try:
            raw["op"] = Op(raw.get("op"))
        except ValueError:
            raise RagexError(ErrorCode.BAD_REQUEST,
                             f"unknown operation {data.get('op')!r}",
                             known=[o.value for o in Op]) from None
        if not isinstance(raw.get("args", {}), dict):
            raise RagexError(ErrorCode.BAD_REQUEST, "'args' must be an object")
        if raw.get("project") is not None and not isinstance(raw["project"], str):
            raise RagexError(ErrorCode.BAD_REQUEST, "'project' must be a path string")
        if not isinstance(raw.get("id", ""), str) or not raw.get("id"):
            raise RagexError(ErrorCode.BAD_REQUEST, "'id' must be a non-empty string")
        timeout = raw.get("timeout")
        if timeout is not None and not isinstance(timeout, (int, float)):
            raise RagexError(ErrorCode.BAD_REQUEST, "'timeout' must be a number")
        return cls(**raw)

    @property
    def idempotent(self) -> bool:
        return self.op in IDEMPOTENT_OPS


@dataclass
class Progress:
    """Streamed while a long request (indexing) runs."""

    id: str
    phase: str                 # "scanning" | "loading-model" | "embedding" | "writing" | ...
    files_done: int = 0
    files_total: int = 0
    chunks_embedded: int = 0
    eta_seconds: float | None = None
    message: str = ""

    def to_wire(self) -> dict[str, Any]:
        data = asdict(self)
        data["type"] = "progress"
        return data

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> "Progress":
        return cls(**_check_keys(cls, data))


@dataclass
class Reply:
    """The single final answer to a request."""

    id: str
    ok: bool
    result: dict[str, Any] | None = None
    error: ErrorInfo | None = None

    @classmethod
    def success(cls, request_id: str, result: dict[str, Any] | None = None) -> "Reply":
        return cls(id=request_id, ok=True, result=result or {})

    @classmethod
    def failure(cls, request_id: str, code: ErrorCode, message: str,
                **detail: Any) -> "Reply":
        return cls(id=request_id, ok=False, error=ErrorInfo(code, message, detail))

    @classmethod
    def from_exception(cls, request_id: str, exc: RagexError) -> "Reply":
        return cls(id=request_id, ok=False, error=exc.info)

    def to_wire(self) -> dict[str, Any]:
        return {"type": "reply", "id": self.id, "ok": self.ok, "result": self.result,
                "error": self.error.to_wire() if self.error else None}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> "Reply":
        err = data.get("error")
        return cls(id=str(data.get("id", "")), ok=bool(data.get("ok")),
                   result=data.get("result"),
                   error=ErrorInfo.from_wire(err) if isinstance(err, dict) else None)

    def raise_for_error(self) -> dict[str, Any]:
        """Return the result, or raise the carried error as a RagexError."""
        if not self.ok:
            raise RagexError.from_info(self.error or ErrorInfo(ErrorCode.INTERNAL,
                                                               "error reply without details"))
        return self.result or {}


# --- Search payloads -------------------------------------------------------------


@dataclass
class SearchArgs:
    """``args`` of a SEARCH request."""

    query: str
    mode: str = "auto"
    limit: int = 10
    paths: list[str] = field(default_factory=list)      # path globs, relative to root
    languages: list[str] = field(default_factory=list)
    #: Index the project first when it has never been indexed, streaming
    #: progress, so a user's very first search just works.
    auto_index: bool = False

    def validate(self) -> None:
        """Raise a RagexError for arguments no engine could serve."""
        if not isinstance(self.query, str) or not self.query.strip():
            raise RagexError(ErrorCode.BAD_QUERY, "the query is empty")
        size = len(self.query.encode("utf-8", "surrogatepass"))
        if size > MAX_QUERY_BYTES:
            raise RagexError(ErrorCode.TOO_LARGE,
                             f"the query is {size} bytes; the limit is {MAX_QUERY_BYTES} bytes. "
                             "Search for a distinctive part of it instead.",
                             size=size, limit=MAX_QUERY_BYTES)
        if self.mode not in SEARCH_MODES:
            raise RagexError(ErrorCode.BAD_QUERY,
                             f"unknown search mode {self.mode!r}; use one of "
                             + ", ".join(SEARCH_MODES))
        if not isinstance(self.limit, int) or not 1 <= self.limit <= MAX_LIMIT:
            raise RagexError(ErrorCode.BAD_QUERY,
                             f"--limit must be between 1 and {MAX_LIMIT}, not {self.limit!r}")
        for name, value in (("paths", self.paths), ("languages", self.languages)):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise RagexError(ErrorCode.BAD_QUERY, f"'{name}' must be a list of strings")

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> "SearchArgs":
        args = cls(**_check_keys(cls, data)) if "query" in data else None
        if args is None:
            raise RagexError(ErrorCode.BAD_QUERY, "a search needs a 'query'")
        args.validate()
        return args

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Hit:
    """One search result as shown to users and machines (``--json``)."""

    path: str            # relative to the project root, '/'-separated
    line: int            # 1-based: a definition's own line (after decorators), or the match
    end_line: int        # 1-based last line of the span (inclusive)
    kind: str            # function | method | class | match | window | ...
    name: str            # symbol name ('' for regex matches and windows)
    score: float
    text: str            # snippet read back from the file
    language: str = ""
    parent: str = ""     # enclosing class for methods
    stale: bool = False  # the file changed after it was indexed
    start_line: int = 0  # 1-based first line of the span (decorators included); 0 = line

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> "Hit":
        return cls(**_check_keys(cls, data))


@dataclass
class SearchResult:
    """``result`` of a successful SEARCH reply."""

    hits: list[Hit]
    mode: str                  # the mode actually used (auto resolves to one)
    partial: bool = False      # the index was still being built
    took_ms: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_wire(self) -> dict[str, Any]:
        return {"hits": [h.to_wire() for h in self.hits], "mode": self.mode,
                "partial": self.partial, "took_ms": self.took_ms, "notes": list(self.notes)}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> "SearchResult":
        return cls(hits=[Hit.from_wire(h) for h in data.get("hits", [])],
                   mode=str(data.get("mode", "")), partial=bool(data.get("partial")),
                   took_ms=float(data.get("took_ms", 0.0)),
                   notes=list(data.get("notes", [])))
