"""Search vocabulary and limits: the one place they are defined.

The wire protocol (``ragexd.protocol``), the engine (``ragexd.engine``) and the
client (``ragexctl``) all speak of search modes, result limits and query sizes.
They used to keep their own copies, with a comment asking them to agree; now
they import this module.  It is stdlib only and imports nothing from ragex, so
the engine can use it without knowing of ZeroMQ and the thin client can use it
without paying for the engine.

The checks return a :class:`Problem` (a wire error code value, a sentence and
the field at fault) instead of raising, because each caller raises its own
error type: ``RagexError`` on the wire, ``EngineError`` in the engine.  The
sentences speak of fields (``'limit'``), never of a command-line flag: a
front-end that has flags translates the field to its flag (``--limit``).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - typing costs milliseconds at run time
    from typing import Any

#: Every search mode, ``auto`` (chosen from the query's shape) first.
SEARCH_MODES: tuple[str, ...] = ("auto", "semantic", "regex", "symbol", "hybrid")
DEFAULT_MODE = "auto"

#: Results per search: at least one, at most ``MAX_LIMIT``.
DEFAULT_LIMIT = 10
MAX_LIMIT = 1000

#: Longest query accepted, in bytes of UTF-8.  Longer ones are a clear
#: ``too_large`` error rather than a slow, useless embedding of a pasted file.
MAX_QUERY_BYTES = 8 * 1024

#: Most context lines shown on each side of a hit (``-A/-B/-C``).  ripgrep has no
#: limit, but it streams each file once; ragex reads context per hit from files
#: that may be huge, so ``-C 99999999`` is refused with a sentence instead of
#: reading (and printing) whole files around every hit.
MAX_CONTEXT_LINES = 1000


class CodedError(Exception):
    """An error that carries a protocol ErrorCode value (``code``), a sentence for
    people (``message``) and the facts behind it (``detail``): the one shape of
    every ragex error type (``RagexError`` on the wire, ``EngineError`` in the
    engine, ``RipgrepError``, ``GlobProblem``), so that one passes into another as
    ``Other(exc.code, exc.message, **exc.detail)`` unchanged."""

    def __init__(self, code: str, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail


class Problem:
    """Why a search argument cannot be served: ``code`` is a protocol ErrorCode value.

    A plain class, not a dataclass: the client's direct regex path imports this
    module on every search, and ``dataclasses`` costs more than ripgrep's run."""

    __slots__ = ("code", "message", "field", "detail")

    def __init__(self, code: str, message: str, field: str,
                 detail: dict[str, Any] | None = None) -> None:
        self.code = code
        self.message = message
        self.field = field
        self.detail: dict[str, Any] = {} if detail is None else detail

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Problem) and (self.code, self.message, self.field,
                                               self.detail) == (other.code, other.message,
                                                                other.field, other.detail)

    def __repr__(self) -> str:
        return (f"Problem(code={self.code!r}, message={self.message!r}, field={self.field!r}, "
                f"detail={self.detail!r})")


def query_problem(text: object) -> Problem | None:
    """An empty, oversized or NUL-holding query, or None when it is fine."""
    if not isinstance(text, str) or not text.strip():
        return Problem("bad_query", "the query is empty", "query")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_QUERY_BYTES:
        return Problem("too_large", f"the query is {size} bytes; the limit is {MAX_QUERY_BYTES} "
                       "bytes. Search for a distinctive part of it instead.", "query",
                       {"size": size, "limit": MAX_QUERY_BYTES})
    if "\0" in text:
        return Problem("bad_query", "the query contains a NUL byte", "query")
    return None


def mode_problem(mode: object) -> Problem | None:
    if mode not in SEARCH_MODES:
        return Problem("bad_query", f"unknown search mode {mode!r}; use one of "
                       + ", ".join(SEARCH_MODES), "mode")
    return None


def limit_problem(limit: object) -> Problem | None:
    # bool is an int in Python, but `"limit": true` is a mistake, not a 1.
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        return Problem("bad_query",
                       f"'limit' must be an integer between 1 and {MAX_LIMIT}, not {limit!r}",
                       "limit")
    return None


def context_problem(lines: object) -> Problem | None:
    """A number of context lines (``-A/-B/-C``) that is negative, not an integer, or
    over ``MAX_CONTEXT_LINES``; None when it is fine."""
    if isinstance(lines, bool) or not isinstance(lines, int) \
            or not 0 <= lines <= MAX_CONTEXT_LINES:
        return Problem("bad_query",
                       f"'context' must be a number of lines between 0 and {MAX_CONTEXT_LINES}, "
                       f"not {lines!r}", "context", {"limit": MAX_CONTEXT_LINES})
    return None
