"""The messages ragexctl, ragexd and workers exchange, as dataclasses.

One request gets zero or more ``Progress`` messages and then exactly one
``Reply`` carrying the same ``id``.  Everything is plain JSON underneath so a
peer in another language (an editor plugin, a shell script with ``zmq``) can
speak it; the dataclasses only give Python code names and types.
"""

from __future__ import annotations

import enum
import os
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any, TypeVar

from ..vocabulary import MAX_LIMIT, MAX_QUERY_BYTES, SEARCH_MODES  # noqa: F401 - re-exported
from .args import (IndexArgs, LogsArgs, NoArgs, OpArgs, RemoveArgs, SearchArgs, SimilarArgs,
                   SnapshotArgs,
                   StopArgs, check_text, field_names)
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
    SIMILAR = "similar"    # the chunks most like the one at path:line (stored vectors)
    INDEX = "index"
    WORKER_STATUS = "worker_status"
    EXPORT = "export"      # write the project's index as a snapshot archive
    IMPORT = "import"      # make a snapshot archive the project's index, then catch up


#: Requests that may be retried transparently: repeating them changes nothing.
IDEMPOTENT_OPS = frozenset({Op.HELLO, Op.PING, Op.STATUS, Op.LIST, Op.LOGS,
                            Op.SEARCH, Op.SIMILAR, Op.WORKER_STATUS})

#: Ops that ragexd forwards to the project's worker.
WORKER_OPS = frozenset({Op.SEARCH, Op.SIMILAR, Op.INDEX, Op.WORKER_STATUS, Op.EXPORT, Op.IMPORT})

#: Ops that run on a worker's index thread, one after another: an index someone asked
#: for (a worker queues them behind a run going; a Ctrl-C'd search does not end them).
INDEXING_OPS = frozenset({Op.INDEX, Op.EXPORT, Op.IMPORT})

# SEARCH_MODES, MAX_LIMIT and MAX_QUERY_BYTES live in ``ragexd.vocabulary`` and are
# re-exported here (and by the package) because every front-end imports the protocol.


#: The shape of each operation's ``args``: decoded once, when a request is decoded.
ARGS_BY_OP: dict[Op, type[OpArgs]] = {
    Op.SEARCH: SearchArgs, Op.SIMILAR: SimilarArgs, Op.INDEX: IndexArgs, Op.STOP: StopArgs,
    Op.REMOVE: RemoveArgs, Op.LOGS: LogsArgs, Op.EXPORT: SnapshotArgs, Op.IMPORT: SnapshotArgs,
}

A = TypeVar("A", bound=OpArgs)


def new_request_id() -> str:
    return os.urandom(8).hex()  # cheaper to import than uuid; 64 random bits suffice


def _check_keys(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """Keep known keys only: newer peers may add fields we must ignore."""
    names = field_names(cls)
    return {k: v for k, v in data.items() if k in names}


def _text(name: str, value: Any, *, required: bool) -> None:
    """Check an envelope string: NUL bytes and lone surrogates make unusable paths and ids."""
    if value is None and not required:
        return
    if not isinstance(value, str) or (required and not value):
        raise RagexError(ErrorCode.BAD_REQUEST, f"'{name}' must be a "
                         f"{'non-empty ' if required else ''}string", field=name)
    check_text(name, value)


@dataclass
class Request:
    """The envelope every request travels in; ``args`` is its op's arguments as JSON.

    ``params`` is ``args`` decoded into the op's typed class (``ARGS_BY_OP``);
    ``from_wire`` decodes it, so a request that got past decoding is valid and
    the code serving it reads ``args_as(SearchArgs).limit``, never the dict.
    """

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
        return {"op": self.op.value, "args": self.args, "project": self.project, "id": self.id,
                "client_version": self.client_version, "timeout": self.timeout,
                "type": "request"}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> "Request":
        """Decode and validate the envelope and the op's arguments, once."""
        raw = dict(_check_keys(cls, data))
        try:
            raw["op"] = Op(raw.get("op"))
        except ValueError:
            raise RagexError(ErrorCode.BAD_REQUEST,
                             f"unknown operation {data.get('op')!r}",
                             known=[o.value for o in Op]) from None
        if not isinstance(raw.get("args", {}), dict):
            raise RagexError(ErrorCode.BAD_REQUEST, "'args' must be an object", field="args")
        _text("project", raw.get("project"), required=False)
        _text("id", raw.get("id"), required=True)
        _text("client_version", raw.get("client_version", ""), required=False)
        timeout = raw.get("timeout")
        if timeout is not None and (isinstance(timeout, bool)
                                    or not isinstance(timeout, (int, float))
                                    or not 0 <= timeout):
            raise RagexError(ErrorCode.BAD_REQUEST,
                             "'timeout' must be a number of seconds, 0 or more", field="timeout")
        request = cls(**raw)
        request.params  # noqa: B018 - decode the arguments now: bad ones fail here
        return request

    @cached_property
    def params(self) -> OpArgs:
        """``args`` decoded into the op's typed arguments (computed once)."""
        return ARGS_BY_OP.get(self.op, NoArgs).from_wire(self.args or {})

    def args_as(self, kind: type[A]) -> A:
        """The typed arguments, as the class the caller serves (a bug if it differs)."""
        params = self.params
        if not isinstance(params, kind):
            raise TypeError(f"{self.op.value!r} takes {type(params).__name__}, "
                            f"not {kind.__name__}")
        return params

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
    chunks_total: int = 0      # while embedding: the run's chunks to embed (0: unknown)

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
    #: What the answer covers (files/chunks indexed and embedded of the total, ETA):
    #: the engine's Coverage as a dict; None from a worker that predates it.
    coverage: dict[str, Any] | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"hits": [h.to_wire() for h in self.hits], "mode": self.mode,
                "partial": self.partial, "took_ms": self.took_ms, "notes": list(self.notes),
                "coverage": self.coverage}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> "SearchResult":
        coverage = data.get("coverage")
        return cls(hits=[Hit.from_wire(h) for h in data.get("hits", [])],
                   mode=str(data.get("mode", "")), partial=bool(data.get("partial")),
                   took_ms=float(data.get("took_ms", 0.0)),
                   notes=list(data.get("notes", [])),
                   coverage=coverage if isinstance(coverage, dict) else None)
