"""Error codes that travel on the wire.

Errors are values, not tracebacks: every failure a peer can report has a stable
code (for programs, scripts and tests to branch on) and a sentence written for
the person at the terminal, ideally saying what to do next.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from ..vocabulary import CodedError


class ErrorCode(str, enum.Enum):
    """Stable, machine-readable error codes.  Never renumber or rename one."""

    # The request itself is wrong.
    BAD_REQUEST = "bad_request"          # malformed frame, unknown op, wrong types
    VERSION_MISMATCH = "version_mismatch"  # protocol major version differs
    TOO_LARGE = "too_large"              # message or query over the size limit
    INVALID_REGEX = "invalid_regex"      # ripgrep refused the pattern
    BAD_QUERY = "bad_query"              # empty query, bad mode, bad glob, limit out of range
    PATH_OUTSIDE_PROJECT = "path_outside_project"
    NOT_FOUND = "not_found"              # no such project / index
    BAD_SNAPSHOT = "bad_snapshot"        # an index snapshot refused: corrupt, hostile, other model

    # The service cannot serve it right now.
    BUSY = "busy"                        # per-project queue full: back-pressure
    TIMEOUT = "timeout"                  # the worker did not answer in time
    SHUTTING_DOWN = "shutting_down"      # ragexd is stopping and refuses new work
    WORKER_UNAVAILABLE = "worker_unavailable"  # worker is (re)starting; retry later

    # Something broke.
    WORKER_CRASHED = "worker_crashed"    # the worker died while handling the request
    CRASH_LOOP = "crash_loop"            # too many crashes: ragexd gave up on this project
    MEMORY_LIMIT = "memory_limit"        # the worker was stopped for exceeding its memory limit
    INDEX_CORRUPT = "index_corrupt"      # the on-disk index cannot be read; rebuild it
    INDEX_UNWRITABLE = "index_unwritable"  # disk full or read-only index directory
    INDEX_LOCKED = "index_locked"        # another worker (another ragexd) owns this index
    RUNTIME_ERROR = "runtime_error"      # the runtime (process/docker) could not start a worker
    MODEL_UNAVAILABLE = "model_unavailable"  # embedding model files missing or broken: ragexctl doctor
    INTERNAL = "internal"                # a bug: please report it

    @property
    def retryable(self) -> bool:
        """Whether a client may transparently retry an idempotent request."""
        return self in {ErrorCode.BUSY, ErrorCode.TIMEOUT, ErrorCode.WORKER_UNAVAILABLE,
                        ErrorCode.WORKER_CRASHED}


@dataclass(frozen=True)
class ErrorInfo:
    """An error as carried in a reply: a code, a sentence, optional details."""

    code: ErrorCode
    message: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        return {"code": self.code.value, "message": self.message, "detail": self.detail}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> "ErrorInfo":
        raw = data.get("code", ErrorCode.INTERNAL.value)
        try:
            code = ErrorCode(raw)
        except ValueError:
            # A newer peer may know codes we do not: keep the sentence, degrade the code.
            code = ErrorCode.INTERNAL
        return cls(code=code, message=str(data.get("message", "")),
                   detail=dict(data.get("detail") or {}))


class RagexError(CodedError):
    """An error that carries a wire code; raised inside ragex, sent as a value."""

    code: ErrorCode

    def __init__(self, code: ErrorCode | str, message: str, **detail: Any) -> None:
        """Takes another ragex error's str code as is (``RagexError(exc.code,
        exc.message, **exc.detail)``, vocabulary.CodedError) and converts it here,
        once: a str left in ``code`` broke ``to_wire``.  A code the protocol does not
        know is a bug, sent as ``internal`` with its sentence kept."""
        try:
            known = ErrorCode(code)
        except ValueError:
            known = ErrorCode.INTERNAL
        super().__init__(known, message, **detail)

    @property
    def info(self) -> ErrorInfo:
        return ErrorInfo(self.code, self.message, dict(self.detail))

    @classmethod
    def from_info(cls, info: ErrorInfo) -> "RagexError":
        return cls(info.code, info.message, **info.detail)

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message
