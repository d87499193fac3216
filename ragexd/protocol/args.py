"""Typed arguments of each operation, decoded and validated once per process.

On the wire ``args`` is a plain JSON object (so any language can speak the
protocol).  Each receiving process turns it into one of these classes exactly
once, when it decodes the request (``Request.from_wire``); after that the
code that serves the request reads typed fields and never checks a dict by
hand.  Like sccache's typed request enum, every operation has one shape, and a
wrong shape is a ``bad_request`` (or ``bad_query``) naming the field at fault
in ``detail["field"]``: sentences speak of fields, and a front-end with flags
translates the field to its flag.

Unknown keys are ignored: a newer peer may send fields this version does not
know.  Stdlib only, like the rest of the protocol package.
"""

from __future__ import annotations

import functools
import math
import posixpath
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

from ..vocabulary import (DEFAULT_LIMIT, DEFAULT_MODE, Problem, limit_problem, mode_problem,
                          query_problem)
from .errors import ErrorCode, RagexError

#: LOGS returns at most this many lines, whatever is asked.
LOG_LINES_MAX = 10_000
LOG_LINES_DEFAULT = 50


@functools.cache
def field_names(cls: type) -> frozenset[str]:
    """The fields of a message class (cached: decoding runs for every request)."""
    return frozenset(f.name for f in fields(cls))


def field_error(name: str, message: str, code: ErrorCode = ErrorCode.BAD_REQUEST,
                **detail: Any) -> RagexError:
    """A wire error about one field of ``args``."""
    return RagexError(code, message, field=name, **detail)


def problem_error(problem: Problem) -> RagexError:
    """A vocabulary check's finding as a wire error naming the field at fault."""
    return field_error(problem.field, problem.message, ErrorCode(problem.code), **problem.detail)


def check_text(name: str, value: str) -> None:
    """Refuse a NUL byte or a string that is not Unicode text (a JSON ``"\\ud800"``
    escape): no path can hold one, and a lone surrogate could not even be
    echoed back in a reply.  A bad request up front, not a failure deep inside."""
    if "\0" in value:
        raise field_error(name, f"'{name}' contains a NUL byte")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise field_error(name, f"'{name}' is not valid Unicode text "
                              "(it holds a lone surrogate)") from None


def _strings(name: str, value: Any, code: ErrorCode) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise field_error(name, f"'{name}' must be a list of strings", code)
    for item in value:
        check_text(name, item)
    return list(value)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise field_error(name, f"'{name}' must be true or false, not {value!r}")
    return value


def _target(value: Any) -> str | None:
    """A project id or absolute path (rm, logs), or None for "not given"."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise field_error("target", "'target' must be a project id or an absolute path")
    check_text("target", value)
    return value


A = TypeVar("A", bound="OpArgs")


class OpArgs:
    """Base of every operation's arguments (each a dataclass: a value, compared by fields)."""

    @classmethod
    def from_wire(cls: type[A], data: dict[str, Any]) -> A:
        """Decode and validate ``args``; raise RagexError naming the field at fault."""
        known = field_names(cls)
        return cls._decode({k: v for k, v in data.items() if k in known})

    @classmethod
    def _decode(cls: type[A], data: dict[str, Any]) -> A:
        return cls(**data)

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class NoArgs(OpArgs):
    """HELLO, PING, STATUS, START, SHUTDOWN, WORKER_STATUS: nothing beyond the envelope."""


@dataclass
class SearchArgs(OpArgs):
    """``args`` of a SEARCH request."""

    query: str
    mode: str = DEFAULT_MODE
    limit: int = DEFAULT_LIMIT
    paths: list[str] = field(default_factory=list)      # path globs, relative to root
    languages: list[str] = field(default_factory=list)
    #: Index the project first when it has never been indexed, streaming
    #: progress, so a user's very first search just works.
    auto_index: bool = False

    def validate(self) -> None:
        """Raise a RagexError for arguments no engine could serve."""
        for problem in (query_problem(self.query), mode_problem(self.mode),
                        limit_problem(self.limit)):
            if problem is not None:
                raise problem_error(problem)
        check_text("query", self.query)
        _strings("paths", self.paths, ErrorCode.BAD_QUERY)
        _strings("languages", self.languages, ErrorCode.BAD_QUERY)
        _flag("auto_index", self.auto_index)

    @classmethod
    def _decode(cls, data: dict[str, Any]) -> "SearchArgs":
        if "query" not in data:
            raise field_error("query", "a search needs a 'query'", ErrorCode.BAD_QUERY)
        args = cls(**data)
        args.validate()
        return args


@dataclass
class IndexArgs(OpArgs):
    """``args`` of an INDEX request: everything again (rebuild), or some paths."""

    rebuild: bool = False
    #: Paths relative to the root to re-index; None means the whole tree.
    paths: list[str] | None = None
    #: The path below the root a person named (``ragexctl index PATH``), relative to
    #: the root: when the index leaves it out, the request is refused saying why,
    #: where it used to index the project around it without a word.
    named: str | None = None

    @classmethod
    def _decode(cls, data: dict[str, Any]) -> "IndexArgs":
        paths, named = data.get("paths"), data.get("named")
        if named is not None:
            if not isinstance(named, str) or not named or named.startswith("/") \
                    or ".." in named.split("/"):
                raise field_error("named", "'named' must be a path inside the project, "
                                  "relative to its root")
            check_text("named", named)
        return cls(rebuild=_flag("rebuild", data.get("rebuild", False)),
                   paths=None if paths is None else _strings("paths", paths,
                                                             ErrorCode.BAD_REQUEST),
                   named=named)


@dataclass
class SnapshotArgs(OpArgs):
    """``args`` of EXPORT and IMPORT: the snapshot archive, an absolute path as the
    worker sees it (the client resolves it against its own directory)."""

    file: str

    @classmethod
    def _decode(cls, data: dict[str, Any]) -> "SnapshotArgs":
        raw = data.get("file")
        if not isinstance(raw, str) or not raw.startswith("/"):
            raise field_error("file", "'file' must be the absolute path of a snapshot archive")
        check_text("file", raw)
        return cls(file=raw)


@dataclass
class StopArgs(OpArgs):
    """``args`` of STOP: every worker (``all``), or the request's project.

    ``first_index_only``: the stop a Ctrl-C'd search sends to end the first index
    it started, which must not end an index someone else asked for (an INDEX,
    EXPORT or IMPORT in flight or queued for the project): then nothing stops."""

    all: bool = False
    first_index_only: bool = False

    @classmethod
    def _decode(cls, data: dict[str, Any]) -> "StopArgs":
        return cls(all=_flag("all", data.get("all", False)),
                   first_index_only=_flag("first_index_only",
                                          data.get("first_index_only", False)))


@dataclass
class RemoveArgs(OpArgs):
    """``args`` of REMOVE: a project id or absolute path (else the request's project)."""

    target: str | None = None

    @classmethod
    def _decode(cls, data: dict[str, Any]) -> "RemoveArgs":
        return cls(target=_target(data.get("target")))


@dataclass
class LogsArgs(OpArgs):
    """``args`` of LOGS: whose log (None: ragexd's own) and how many lines of its end."""

    target: str | None = None
    lines: int = LOG_LINES_DEFAULT

    @classmethod
    def _decode(cls, data: dict[str, Any]) -> "LogsArgs":
        raw = data.get("lines", LOG_LINES_DEFAULT)
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
            raise field_error("lines", f"'lines' must be a number, not {raw!r}")
        target = _target(data.get("target"))
        return cls(target=None if target == "ragexd" else target,
                   lines=max(0, min(int(raw), LOG_LINES_MAX)))


@dataclass
class SimilarArgs(OpArgs):
    """``args`` of SIMILAR: the chunks most like the one holding ``path:line``.

    ``path`` is relative to the project root ('/'-separated): the client resolves
    what the user typed (relative to the cwd, or absolute) against the root it
    chose, so a worker in a container, which sees the tree elsewhere, gets the
    same path.  The answer is a SearchResult whose ``mode`` is ``similar``.
    """

    path: str
    line: int
    limit: int = DEFAULT_LIMIT
    paths: list[str] = field(default_factory=list)      # path globs, relative to root
    languages: list[str] = field(default_factory=list)

    def validate(self) -> None:
        if not isinstance(self.path, str) or not self.path.strip():
            raise field_error("path", "a similar search needs a 'path' inside the project",
                              ErrorCode.BAD_QUERY)
        check_text("path", self.path)
        parts = self.path.replace("\\", "/").split("/")
        if self.path.startswith("/") or ".." in parts:
            raise field_error("path", f"the path {self.path!r} is not inside the project: give "
                              "it relative to the project root", ErrorCode.PATH_OUTSIDE_PROJECT,
                              path=self.path)
        if isinstance(self.line, bool) or not isinstance(self.line, int) or self.line < 1:
            raise field_error("line", f"'line' must be a line number, 1 or more, not "
                              f"{self.line!r}", ErrorCode.BAD_QUERY)
        problem = limit_problem(self.limit)
        if problem is not None:
            raise problem_error(problem)
        _strings("paths", self.paths, ErrorCode.BAD_QUERY)
        _strings("languages", self.languages, ErrorCode.BAD_QUERY)

    @property
    def clean_path(self) -> str:
        """``./a//b.py`` as the catalog spells it: ``a/b.py``."""
        return posixpath.normpath(self.path.replace("\\", "/")).lstrip("/")

    @classmethod
    def _decode(cls, data: dict[str, Any]) -> "SimilarArgs":
        for name in ("path", "line"):
            if name not in data:
                raise field_error(name, f"a similar search needs a '{name}'",
                                  ErrorCode.BAD_QUERY)
        args = cls(**data)
        args.validate()
        return args
