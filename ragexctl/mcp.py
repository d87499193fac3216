"""``ragexctl mcp``: ragex as tools for coding agents, over the Model Context Protocol.

A coding agent (Claude Code, Cursor, Codex, VS Code...) starts one MCP server per
session, often several at once, and restarts them freely.  A server that loaded
the embedding model itself would pay seconds per session and a few hundred MiB
per copy.  This one is a thin stdio front: every tool call becomes one request to
ragexd over ZeroMQ (starting ragexd when needed), so all sessions on a project
share ONE warm worker, and a fresh session answers as fast as a warm
``ragexctl search``.  The engine is never imported here.

stdout carries the protocol and nothing else (the SDK's stdio transport diverts
fd 1 to stderr while it serves; our logs go to stderr).

Results are written for a model's context window: one header line, then per hit
``path:first-last kind name (score)`` and a short snippet, under a character
budget; ``detail=true`` gives whole snippets.  Bad arguments come back as tool
errors (``isError``) carrying ragex's own sentence, never as a dead server.
"""

import argparse
import json
import logging
import os
import shlex
import shutil
import sys
import sysconfig
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Callable

from ragexd import config as rconfig
from ragexd import exitcodes, paths, where
from ragexd.protocol import (SEARCH_MODES, ErrorCode, Op, Progress, RagexError, SearchArgs,
                             SimilarArgs)
from ragexd.logformat import PrintableFormatter
from ragexd.protocol.messages import MAX_LIMIT
from ragexd.textcodec import printable, printable_lines

from . import __version__
from .location import project_relative
from .render import (ProgressRenderer, answer_notes, file_of, format_coverage, format_duration,
                     format_summary, read_lines, skipped_total)
from .session import INDEX_SILENCE_TIMEOUT, ONESHOT_TIMEOUT, Session

log = logging.getLogger("ragex.mcp")

EXIT_OK = exitcodes.OK
EXIT_ERROR = exitcodes.ERROR

SERVER_NAME = "ragex"

#: Deadlines (longest silence), in seconds.  A search's is long because the
#: first search of a never-indexed project indexes it first (streaming progress,
#: relayed as MCP progress notifications); a hung worker is still caught by
#: ragexd's heartbeats within seconds.
SEARCH_TIMEOUT = 600.0
STATUS_TIMEOUT = 30.0

#: Output budgets, in characters (~4 characters a token).  Compact output keeps
#: a 10-hit answer around 1-2k tokens; detail allows whole functions.
COMPACT_BUDGET = 8_000
DETAIL_BUDGET = 40_000
SNIPPET_LINES = 3
LINE_WIDTH = 160
DETAIL_LINES = 200
DETAIL_HIT_CHARS = 10_000

CONFIG_TARGETS = ("claude", "cursor", "codex", "vscode", "generic")

INSTRUCTIONS = """\
ragex searches this project's code instantly, by meaning, regex or symbol name, \
from an index that follows saved edits within a second or two.
- search_code: natural-language questions ("where is the retry backoff computed"), \
regexes (mode="regex"), or identifiers. mode="auto" picks from the query's shape.
- find_symbol: where a function/class/method is defined, by name.
- find_similar: the code most like the chunk at a path and line (duplicates, look-alikes).
- index_status: is the index complete, pending changes, last update.
- reindex: force an update (normally unnecessary: saved files are re-indexed automatically).
Results are compact (path:lines, symbol, score, 3-line snippet); pass detail=true for whole snippets. \
Narrow with paths (gitignore-style globs, relative to the project root) and languages."""


# --- the bridge to ragexd ---------------------------------------------------------


class Backend:
    """Sends one request per tool call to ragexd (or a one-shot worker when the
    daemon is disabled in the configuration).

    A fresh DaemonClient per call: a ZeroMQ socket must not be shared between
    threads, tool calls run on a thread pool and may overlap, and connecting a
    DEALER to a local ipc socket costs well under a millisecond.
    """

    def __init__(self, root: Path, cfg: rconfig.Config) -> None:
        self.root = root
        self.cfg = cfg

    def refusal(self) -> str | None:
        """Why this root must not be indexed, or None.  An agent launched from the
        home directory (or /) without --project would otherwise index all of it."""
        unnameable = paths.unnameable_root(self.root)
        if unnameable is not None:
            return f"no project: {unnameable}."
        what = paths.forbidden_root(self.root)
        if what is not None:
            return (f"no project: the MCP server was started in {self.root}, {what}, and will "
                    "not index all of it. Start it with `ragexctl mcp --project PATH`, or "
                    "from inside the project's directory.")
        return None

    def session(self) -> Session:
        """The path to ragexd the CLI takes too (ragexctl/session.py): one per call,
        since tool calls run on a thread pool and a ZeroMQ socket must not be shared."""
        return Session(self.cfg, inform=log.info, warn=log.warning)

    def call(self, op: Op, args: dict[str, Any], *, timeout: float,
             on_progress: Callable[[Progress], None] | None = None) -> dict[str, Any]:
        """The result of one request to the project's worker; raises RagexError."""
        why = self.refusal()
        if why:
            raise RagexError(ErrorCode.NOT_FOUND, why)
        with self.session() as session:
            if not session.daemon_enabled:
                timeout = max(timeout, ONESHOT_TIMEOUT)  # each call loads the model
            reply = session.project_call(op, args, self.root, timeout=timeout,
                                         on_progress=on_progress)
        return reply.raise_for_error()

    def daemon_call(self, op: Op, args: dict[str, Any] | None = None, *,
                    timeout: float = 10.0) -> dict[str, Any]:
        """A ragexd-level request (START), starting ragexd when allowed."""
        with self.session() as session:
            return session.quick_call(op, args, project=str(self.root), timeout=timeout)

    def prewarm(self) -> None:
        """Start the project's worker now, so the model loads while the agent is
        still reading its tool list.  Best effort, never an error."""
        if self.refusal() or not self.cfg.enabled:
            return
        try:
            self.daemon_call(Op.START, timeout=15.0)
        except Exception as exc:  # noqa: BLE001 - the first real call reports problems
            log.info("could not pre-start the worker: %s", exc)


# --- rendering for a model's context window ---------------------------------------


def _shorten(line: str, width: int = LINE_WIDTH) -> str:
    line = line.rstrip()
    return line if len(line) <= width else line[: width - 1] + "…"


def _snippet(text: str, detail: bool) -> list[str]:
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if detail:
        shown = lines[:DETAIL_LINES]
        body = textwrap.dedent("\n".join(shown)).split("\n")
        out = ["    " + ln.rstrip() for ln in body]
        text_out = "\n".join(out)
        if len(text_out) > DETAIL_HIT_CHARS:
            out = text_out[:DETAIL_HIT_CHARS].split("\n")[:-1]
            out.append("    … (snippet truncated)")
        elif len(lines) > DETAIL_LINES:
            out.append(f"    … ({len(lines) - DETAIL_LINES} more lines)")
        return out
    # Compact: the first few non-blank lines, dedented and clipped.
    kept = [ln for ln in lines if ln.strip()]
    shown = kept[:SNIPPET_LINES]
    body = textwrap.dedent("\n".join(shown)).split("\n") if shown else []
    out = ["    " + _shorten(ln) for ln in body]
    if len(kept) > SNIPPET_LINES:
        out.append(f"    … (+{len(kept) - SNIPPET_LINES} lines)")
    return out


def _hit_head(hit: dict[str, Any]) -> str:
    path = str(hit.get("path", ""))
    line, end = int(hit.get("line") or 0), int(hit.get("end_line") or 0)
    where = f"{path}:{line}" if end <= line else f"{path}:{line}-{end}"
    kind = str(hit.get("kind") or "")
    name = str(hit.get("name") or "")
    parent = str(hit.get("parent") or "")
    if name:
        what = " ".join(p for p in (kind, f"{parent}.{name}" if parent else name) if p)
    else:  # a regex match: name the definition it falls in
        what = kind + (f" in {parent}" if parent else "")
    score = hit.get("score")
    parts = [where]
    if what:
        parts.append(what)
    if isinstance(score, (int, float)):
        parts.append(f"(score {score:.3f})")
    if hit.get("stale"):
        parts.append("[stale: file changed since it was indexed]")
    return " ".join(parts)


def full_text(root: str, hit: dict[str, Any]) -> str:
    """The hit's whole line range, read from the file now (the engine's snippet
    is capped at a few lines).  Falls back to the engine's snippet."""
    text = str(hit.get("text") or "")
    line, end = int(hit.get("line") or 0), int(hit.get("end_line") or 0)
    if line < 1 or end <= line:
        return text
    path = file_of(root, str(hit.get("path", "")))
    if path is None:
        return text
    got = read_lines(path, [(line, min(end, line + DETAIL_LINES))])
    picked = [got[n] for n in sorted(got)]
    return "\n".join(picked) if picked else text


def render_search(result: dict[str, Any], *, root: str, detail: bool,
                  what: str = "result") -> str:
    """The answer to search_code/find_symbol: compact, budgeted text."""
    hits = list(result.get("hits") or [])
    budget = DETAIL_BUDGET if detail else COMPACT_BUDGET
    mode = result.get("mode", "")
    took = float(result.get("took_ms") or 0.0)
    n = len(hits)
    head = f"{n} {what}{'' if n == 1 else 's'} (mode {mode}, {took:.0f} ms) in {root}"
    lines = [head]
    lines.extend(_note_lines(result))
    used = sum(len(x) + 1 for x in lines)
    for i, hit in enumerate(hits):
        text = full_text(root, hit) if detail else str(hit.get("text") or "")
        block = [_hit_head(hit), *_snippet(text, detail)]
        size = sum(len(x) + 1 for x in block)
        if used + size > budget and i > 0:
            lines.append(f"… {n - i} more not shown (output budget); lower limit, narrow "
                         "paths/languages, or ask for fewer with detail=false")
            break
        lines.extend(block)
        used += size
    return "\n".join(lines)


def render_no_definition(name: str, result: dict[str, Any], *, root: str) -> str:
    """find_symbol's empty answer.  While a first index is still cataloguing, the
    name may be in a file not read yet: say how much was searched, never that it
    does not exist."""
    cov = result.get("coverage") or {}
    yet = "" if cov.get("catalog_complete", True) else " yet"
    return "\n".join([f"no definition named {name!r} found{yet} in {root}",
                      *_note_lines(result), VALUES_ARE_NOT_DEFINITIONS])


#: find_symbol looks only at definitions; an agent asking it for a constant was
#: told the name does not exist and stopped looking.
VALUES_ARE_NOT_DEFINITIONS = ("constants and variables are not definitions: search_code with "
                              "the name finds the lines that assign and use it")


def _note_lines(result: dict[str, Any]) -> list[str]:
    """An answer's notes, each said once, as the CLI says them (render.answer_notes)."""
    return [f"note: {n}" for n in answer_notes(result)]


def render_status(status: dict[str, Any], *, root: str, now: float | None = None) -> str:
    now = time.time() if now is None else now
    index = status.get("index") or {}
    lines = [f"project: {root}"]
    if not index:
        lines.append("index: not open yet (the worker is starting)"
                     + (f"; {status['error']}" if status.get("error") else ""))
    else:
        state = str(index.get("state", "?"))
        meaning = {"ready": "complete", "partial": "partial (an index run was interrupted; "
                   "run reindex)", "empty": "never indexed (the first search indexes it)",
                   "indexing": "being updated now", "corrupt": "corrupt (run reindex with "
                   "rebuild=true)"}.get(state, state)
        size = index.get("size_bytes")
        size_text = f", {rconfig.format_size(int(size))}" if isinstance(size, int) else ""
        lines.append(f"index: {state} — {meaning}; {index.get('files', 0)} files, "
                     f"{index.get('chunks', 0)} chunks{size_text}")
        last = index.get("last_indexed")
        if last:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(last)))
            lines.append(f"last update: {stamp} ({format_duration(now - float(last))} ago)")
        else:
            lines.append("last update: never")
        coverage = format_coverage(index.get("coverage"))
        if coverage is not None:
            lines.append(coverage)
        pending = int(index.get("pending_files") or 0)
        # the engine counts files not yet catalogued and files still waiting for
        # vectors: during a first index these are not "changed" files (was: "10
        # changed files not yet re-indexed" on a tree nobody had touched)
        lines.append(f"pending: {pending} file{'' if pending == 1 else 's'} not yet fully "
                     "indexed (saved since the last run, or waiting for vectors)")
        skipped = int(index.get("skipped") or 0)
        if skipped:   # why a file an agent expects is never in an answer
            named = [f for f in index.get("skipped_files") or [] if isinstance(f, dict)]
            shown = "; ".join(f"{f.get('path')} ({f.get('reason')})" for f in named[:10])
            lines.append(f"left out of the index: {skipped} file{'' if skipped == 1 else 's'}"
                         + (f": {shown}" if shown else "")
                         + ("; …" if skipped > min(len(named), 10) else ""))
    watch = status.get("watch")
    lines.append("watching for changes: " + ("yes (saved files are re-indexed within ~2 s)"
                                             if watch else "no"))
    lines.append(f"indexing now: {'yes' if status.get('indexing') else 'no'}; model loaded: "
                 f"{'yes' if status.get('model_loaded') else 'no'}; worker pid "
                 f"{status.get('pid', '?')}")
    return "\n".join(lines)


def render_summary(summary: dict[str, Any]) -> str:
    """The CLI's summary line, plus which files were skipped and why (an agent
    cannot run `ragexctl logs` to find out)."""
    text = format_summary(summary)
    skipped = summary.get("skipped") or []
    if skipped:
        for item in skipped[:5]:
            text += f"\n  skipped {item.get('path')}: {item.get('reason')}"
        if skipped_total(summary) > min(len(skipped), 5):
            text += f"\n  … and {skipped_total(summary) - min(len(skipped), 5)} more"
    if summary.get("cancelled"):
        text += "\nthe run was cancelled: the index is partial"
    return text


# --- argument checks (before any round trip) ------------------------------------
#
# The tools' arguments become the protocol's typed arguments here, and those
# validate themselves (``ragexd/protocol/args.py``): one set of checks and one
# sentence for each mistake, whether it comes from the CLI, an agent or the wire.
# The sentences name fields (``'limit'``), which are also the tools' parameters.


def _globs(value: Any) -> Any:
    """``paths``/``languages`` as a list: a model often sends one string, or null."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else value


def search_args(query: Any, mode: Any, limit: Any, paths_: Any, languages: Any) -> SearchArgs:
    """Validated SearchArgs, or a RagexError with the sentence a model can act on."""
    args = SearchArgs(query=query, mode=mode, limit=limit, paths=_globs(paths_),
                      languages=_globs(languages), auto_index=True)
    args.validate()
    return args


def similar_args(path: Any, line: Any, limit: Any, paths_: Any, languages: Any, *,
                 root: str) -> SimilarArgs:
    """Validated SimilarArgs for find_similar, or a RagexError with the sentence a
    model can act on.  An agent may give the path absolute or relative to the
    project root; the wire wants it relative to the root, so a usable path is
    resolved first and anything else is left for ``SimilarArgs`` to refuse."""
    if isinstance(path, str) and path.strip():
        path = project_relative(path, root, root)
    args = SimilarArgs(path=path, line=line, limit=limit, paths=_globs(paths_),
                       languages=_globs(languages))
    args.validate()
    return args


# --- the MCP server -------------------------------------------------------------


def tool_error(exc: RagexError) -> Exception:
    from mcp.server.mcpserver.exceptions import ToolError

    return ToolError(f"ragex error [{exc.code.value}]: {exc.message}")


#: What an argument of each JSON type pydantic refuses must be, in the words of
#: the protocol's own checks (``'limit' must be an integer ...``).
_MUST_BE = {"string_type": "a string", "int_type": "an integer", "int_parsing": "an integer",
            "int_from_float": "an integer", "int_parsing_size": "an integer",
            "finite_number": "an integer", "bool_type": "true or false",
            "bool_parsing": "true or false", "list_type": "a list of strings"}


def argument_problem(errors: list[dict[str, Any]]) -> RagexError:
    """The tool-schema checks' refusal (pydantic's ``errors()``) as one sentence
    naming the argument, like every other refusal: an agent sending ``"limit":
    "many"`` got four lines of pydantic, its type codes and a documentation URL.
    A tool's arguments are flat, so the argument is the first step of a location;
    a deeper one (a list's item, a union's member) is said of the whole argument."""
    def arg(error: dict[str, Any]) -> str:
        return str((error.get("loc") or ("arguments",))[0])

    first = errors[0]
    name, nested = arg(first), len(first.get("loc", ())) > 1
    shown = _shorten(repr(first.get("input")), 60)
    if first.get("type") == "missing":
        sentence = f"'{name}' is required"
    elif name in ("paths", "languages"):
        sentence = f"'{name}' must be a list of strings (or one string), not {shown}"
    elif not nested and first.get("type") in _MUST_BE:
        sentence = f"'{name}' must be {_MUST_BE[first['type']]}, not {shown}"
    else:
        sentence = f"'{name}' is not valid ({first.get('msg', 'refused')}): {shown}"
    others = sorted({arg(e) for e in errors[1:]} - {name})
    if others:
        sentence += " (and " + ", ".join(f"'{o}'" for o in others) + ")"
    return RagexError(ErrorCode.BAD_QUERY, sentence, field=name)


def unreadable_answers(exc: Exception) -> list[tuple[Any, int, str]]:
    """(id, JSON-RPC code, sentence) for each answer a message the transport could
    not read is owed.  The SDK dropped such a line without a word, so a client that
    sent a malformed request (or a batch, which MCP no longer has) waited for its
    own timeout.  JSON-RPC 2.0 answers invalid JSON with id null (-32700), and a
    valid JSON value that is no message with its id when it has one (-32600); a
    batch gets one answer for each request in it."""
    from mcp_types import INVALID_REQUEST, PARSE_ERROR

    errors = exc.errors() if hasattr(exc, "errors") else []
    if not errors or errors[0].get("type") == "json_invalid":
        return [(None, PARSE_ERROR, "the message is not valid JSON")]
    # the message itself is the input of a union member's refusal as a whole
    # (not a dict or a list) or of a field missing from it
    value = next((e.get("input") for e in errors if e.get("type") in ("model_type", "missing")
                  and len(e.get("loc", ())) <= 2), None)

    def id_of(obj: Any) -> Any:
        got = obj.get("id") if isinstance(obj, dict) else None
        return got if isinstance(got, (str, int)) and not isinstance(got, bool) else None

    if isinstance(value, list):
        sentence = "batches are not supported: send each message on its own line"
        ids = [id_of(item) for item in value]
        return [(i, INVALID_REQUEST, sentence) for i in ids if i is not None] \
            or [(None, INVALID_REQUEST, sentence)]
    return [(id_of(value), INVALID_REQUEST,
             "the message is not a JSON-RPC 2.0 request, notification or response")]


class AnsweringReader:
    """The stdio transport's read stream, which answers what it cannot read
    (``unreadable_answers``) on the transport's own write stream, in order with
    every other answer, and passes the rest on.

    It also holds the end of its input back until every request it passed on
    has been answered (``AnsweredWriter`` tells it) or cancelled: the SDK ends
    the session, cancelling the calls still running, as soon as stdin closes,
    so ``printf '…requests…' | ragexctl mcp`` lost the answers of the slower
    ones.  Bounded by the longest deadline of a call."""

    def __init__(self, inner: Any, write: Any) -> None:
        self._inner, self._write = inner, write
        self.unanswered: set[Any] = set()   # ids of requests passed on, not yet answered

    @property
    def last_context(self) -> Any:   # the dispatcher's per-message contextvars
        return getattr(self._inner, "last_context", None)

    async def __aenter__(self) -> "AnsweringReader":
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        return await self._inner.__aexit__(*exc_info)

    def __aiter__(self) -> "AnsweringReader":
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except Exception as exc:
            import anyio

            if isinstance(exc, (anyio.EndOfStream, anyio.ClosedResourceError)):
                raise StopAsyncIteration from None
            raise

    async def receive(self) -> Any:
        import anyio
        from mcp.shared.message import SessionMessage
        from mcp_types import ErrorData, JSONRPCError, JSONRPCNotification, JSONRPCRequest

        while True:
            try:
                item = await self._inner.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                with anyio.move_on_after(SEARCH_TIMEOUT):
                    while self.unanswered:   # the answers still owed go out first
                        await anyio.sleep(0.05)
                raise
            if not isinstance(item, Exception):
                message = getattr(item, "message", None)
                if isinstance(message, JSONRPCRequest):
                    self.unanswered.add(message.id)
                elif isinstance(message, JSONRPCNotification) \
                        and message.method == "notifications/cancelled":
                    self.unanswered.discard((message.params or {}).get("requestId"))
                return item
            log.info("answered a message the transport could not read: %s",
                     str(item).splitlines()[0][:200])
            for ident, code, sentence in unreadable_answers(item):
                await self._write.send(SessionMessage(JSONRPCError(
                    jsonrpc="2.0", id=ident, error=ErrorData(code=code, message=sentence))))

    def close(self) -> None:
        self._inner.close()

    async def aclose(self) -> None:
        await self._inner.aclose()


class AnsweredWriter:
    """The stdio transport's write stream, which tells ``reader`` each request
    answered (a response or an error with its id)."""

    def __init__(self, inner: Any, reader: AnsweringReader) -> None:
        self._inner, self._reader = inner, reader

    def __getattr__(self, name: str) -> Any:   # everything but send is the stream's own
        return getattr(self._inner, name)

    async def __aenter__(self) -> "AnsweredWriter":
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        return await self._inner.__aexit__(*exc_info)

    async def send(self, item: Any) -> None:
        from mcp_types import JSONRPCError, JSONRPCResponse

        await self._inner.send(item)
        message = getattr(item, "message", None)
        if isinstance(message, (JSONRPCResponse, JSONRPCError)):
            self._reader.unanswered.discard(message.id)


def build_server(backend: Backend) -> Any:
    """The MCPServer with ragex's five tools, bound to ``backend``."""
    import anyio
    import anyio.from_thread
    import anyio.to_thread
    from mcp.server.mcpserver import Context, MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp_types import ToolAnnotations

    from pydantic import ValidationError

    class Server(MCPServer):   # type: ignore[misc]
        """MCPServer whose every refusal reads ``ragex error [code]: sentence``: its
        schema's refusal of an argument too, and without the SDK's prefix."""

        async def call_tool(self, name: str, arguments: dict[str, Any],
                            context: Any = None) -> Any:
            try:
                return await super().call_tool(name, arguments, context)
            except ToolError as exc:
                if isinstance(exc.__cause__, ValidationError):
                    raise tool_error(argument_problem(exc.__cause__.errors())) from None
                text = str(exc).removeprefix(f"Error executing tool {name}: ")
                if text.startswith("ragex error [") and text != str(exc):
                    raise ToolError(text) from None
                raise

        async def run_stdio_async(self) -> None:
            """The SDK's stdio serving, with a read stream that answers every line
            and ends only once every request read is answered."""
            from mcp.server.stdio import stdio_server

            async with stdio_server() as (read_stream, write_stream):
                reader = AnsweringReader(read_stream, write_stream)
                await self._lowlevel_server.run(
                    reader, AnsweredWriter(write_stream, reader),
                    self._lowlevel_server.create_initialization_options())

    server = Server(name=SERVER_NAME, version=__version__, instructions=INSTRUCTIONS,
                    log_level="WARNING")
    root = str(backend.root)

    async def forward(op: Op, args: dict[str, Any], timeout: float,
                      on_progress: Callable[[Progress], None] | None = None) -> dict[str, Any]:
        try:
            return await anyio.to_thread.run_sync(
                lambda: backend.call(op, args, timeout=timeout, on_progress=on_progress))
        except RagexError as exc:
            raise tool_error(exc) from None
        except ToolError:
            raise
        except Exception as exc:  # noqa: BLE001 - a tool error, never a dead server
            log.exception("%s failed", op.value)
            raise ToolError(f"ragex error [internal]: {type(exc).__name__}: {exc}") from None

    read_only = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)

    def relay(ctx: Context) -> Callable[[Progress], None]:
        """Progress messages (an index run) → MCP progress notifications, at most
        two a second, so an agent's client sees the call is alive."""
        last = [0.0]

        def on_progress(p: Progress) -> None:
            now = time.monotonic()
            if now - last[0] < 0.5 and p.phase != "done":
                return
            last[0] = now
            # embedding: the chunks, as the CLI's bar (the files are all catalogued)
            done, of = ((p.chunks_embedded, p.chunks_total)
                        if p.phase == "embedding" and p.chunks_total
                        else (p.files_done, p.files_total))
            message = "indexing: " + ProgressRenderer.describe(p)
            try:
                anyio.from_thread.run(ctx.report_progress, float(done),
                                      float(of) if of else None, message)
            except Exception:  # noqa: BLE001 - progress is a courtesy
                pass

        return on_progress

    @server.tool(
        description=(
            "Search this project's code. `query`: a natural-language description, a regex, or "
            "an identifier. `mode`: one of " + ", ".join(SEARCH_MODES) + " (auto: chosen from "
            "the query's shape; semantic: by meaning; regex: ripgrep over the live files; "
            "symbol: definitions by name; hybrid: meaning + keywords). `limit`: 1-"
            f"{MAX_LIMIT} (default 10). `paths`: gitignore-style globs relative to the project "
            "root, e.g. [\"src/**\", \"!**/tests/**\"]. `languages`: e.g. [\"python\", \"go\"]. "
            "`detail`: whole snippets instead of 3 lines."),
        annotations=read_only, structured_output=False)
    async def search_code(ctx: Context, query: str, mode: str = "auto", limit: int = 10,
                          paths: list[str] | str | None = None,
                          languages: list[str] | str | None = None,
                          detail: bool = False) -> str:
        try:
            args = search_args(query, mode, limit, paths, languages)
        except RagexError as exc:
            raise tool_error(exc) from None
        result = await forward(Op.SEARCH, args.to_wire(), SEARCH_TIMEOUT, relay(ctx))
        return render_search(result, root=root, detail=detail)

    @server.tool(
        description=(
            "Find where a function, method, class or other symbol is defined, by name "
            "(exact names rank first, then close matches). Returns path:lines, kind, and the "
            "definition's first lines (detail=true: the whole definition)."),
        annotations=read_only, structured_output=False)
    async def find_symbol(ctx: Context, name: str, limit: int = 10,
                          paths: list[str] | str | None = None,
                          languages: list[str] | str | None = None,
                          detail: bool = False) -> str:
        try:
            args = search_args(name, "symbol", limit, paths, languages)
        except RagexError as exc:
            if exc.code is ErrorCode.BAD_QUERY and not (isinstance(name, str) and name.strip()):
                exc = RagexError(ErrorCode.BAD_QUERY, "the symbol name is empty")
            raise tool_error(exc) from None
        result = await forward(Op.SEARCH, args.to_wire(), SEARCH_TIMEOUT, relay(ctx))
        if not result.get("hits"):
            return render_no_definition(name, result, root=root)
        return render_search(result, root=root, detail=detail, what="definition")

    @server.tool(
        description=(
            "Find the code most like the function/class/block holding `path`:`line` (near "
            "duplicates, look-alikes, other implementations of the same idea), by the index's "
            "stored vectors; the chunk itself is left out. `path`: relative to the project "
            "root (or absolute). `line`: 1-based. The file must be indexed and unchanged "
            f"since. `limit`: 1-{MAX_LIMIT} (default 10). `detail`: whole snippets."),
        annotations=read_only, structured_output=False)
    async def find_similar(path: str, line: int, limit: int = 10,
                           paths: list[str] | str | None = None,
                          languages: list[str] | str | None = None,
                           detail: bool = False) -> str:
        try:
            args = similar_args(path, line, limit, paths, languages, root=root)
        except RagexError as exc:
            raise tool_error(exc) from None
        result = await forward(Op.SIMILAR, args.to_wire(), SEARCH_TIMEOUT)
        return render_search(result, root=root, detail=detail, what="similar chunk")

    @server.tool(
        description=(
            "State of this project's index: complete / partial / being updated, number of "
            "files and chunks, last update, and changed files still waiting to be re-indexed."),
        annotations=read_only, structured_output=False)
    async def index_status() -> str:
        status = await forward(Op.WORKER_STATUS, {}, STATUS_TIMEOUT)
        return render_status(status, root=root)

    @server.tool(
        description=(
            "Update the index now (only changed files are re-embedded). Rarely needed: saved "
            "files are re-indexed automatically within ~2 s. `rebuild=true` discards the index "
            "and builds it from scratch (slow; for a corrupt index)."),
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False,
                                    idempotent_hint=True, open_world_hint=False),
        structured_output=False)
    async def reindex(ctx: Context, rebuild: bool = False) -> str:
        result = await forward(Op.INDEX, {"rebuild": bool(rebuild), "paths": None},
                               INDEX_SILENCE_TIMEOUT, relay(ctx))
        return render_summary(result.get("summary") or {})

    return server


def serve(root: Path, cfg: rconfig.Config) -> int:
    backend = Backend(root, cfg)
    server = build_server(backend)
    threading.Thread(target=backend.prewarm, name="prewarm", daemon=True).start()
    log.info("ragex MCP server for %s (ragexctl %s)", root, __version__)
    server.run("stdio")
    # The session is over (stdin closed).  Skip the interpreter's teardown of
    # the SDK's many modules (~0.3 s): agents often wait for the process to exit.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_OK)


# --- `ragexctl mcp config TARGET` ------------------------------------------------


def ragexctl_executable() -> str:
    """Absolute real path of the ragexctl script that runs this, so the snippet
    works from an agent's environment (which rarely has our venv on PATH)."""
    argv0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(argv0).startswith("ragexctl") and os.path.isfile(argv0):
        return os.path.realpath(argv0)
    candidates = [os.path.join(os.path.dirname(sys.executable), "ragexctl"),
                  os.path.join(sysconfig.get_path("scripts") or "", "ragexctl")]
    for cand in candidates:
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return os.path.realpath(cand)
    found = shutil.which("ragexctl")
    return os.path.realpath(found) if found else ""


def server_command(project: str | None) -> tuple[str, list[str]]:
    exe = ragexctl_executable()
    args = ["mcp"] + (["--project", project] if project else [])
    if not exe:  # not installed as a script: run the module with this interpreter
        return os.path.realpath(sys.executable), ["-m", "ragexctl", *args]
    return exe, args


def config_snippet(target: str, project: str | None) -> str:
    """Text to register ragex with an agent.  Printed, never written: other tools'
    config files are theirs to edit."""
    exe, args = server_command(project)
    entry = {"command": exe, "args": args}
    argv_text = " ".join(shlex.quote(x) for x in [exe, *args])
    if target == "claude":
        scope = "local" if project else "user"
        return (
            "# Claude Code: run this once"
            + (" (in any directory):\n" if scope == "user" else ":\n")
            + f"claude mcp add --scope {scope} {SERVER_NAME} -- {argv_text}\n"
            + ("# ragex then serves whichever project Claude Code runs in.\n" if not project else "")
            + "\n# or put this in the project's .mcp.json:\n"
            + json.dumps({"mcpServers": {SERVER_NAME: entry}}, indent=2) + "\n")
    if target == "cursor":
        proj = project or str(paths.find_project_root(Path(where.current_dir() or "/")))
        exe2, args2 = server_command(proj)
        return ("// Cursor: add to <project>/.cursor/mcp.json (per project: Cursor does not "
                "start MCP servers in the project directory)\n"
                + json.dumps({"mcpServers": {SERVER_NAME: {"command": exe2, "args": args2}}},
                             indent=2) + "\n")
    if target == "vscode":
        proj_arg = project or "${workspaceFolder}"
        exe2, args2 = server_command(proj_arg)
        return ("// VS Code (Copilot agent mode): add to .vscode/mcp.json in the workspace\n"
                + json.dumps({"servers": {SERVER_NAME: {"type": "stdio", "command": exe2,
                                                        "args": args2}}}, indent=2) + "\n")
    if target == "codex":
        return ("# Codex CLI: add to ~/.codex/config.toml (ragex serves the directory codex "
                "runs in)\n"
                f"[mcp_servers.{SERVER_NAME}]\n"
                f"command = {json.dumps(exe)}\n"
                f"args = [{', '.join(json.dumps(a) for a in args)}]\n"
                f"\n# or run: codex mcp add {SERVER_NAME} -- {argv_text}\n")
    # generic
    return ("# Any MCP client: a stdio server; run it in the project directory"
            + (" (or keep --project)" if project else " or add --project PATH") + "\n"
            + f"# command line: {argv_text}\n"
            + json.dumps({"mcpServers": {SERVER_NAME: {"type": "stdio", **entry}}}, indent=2)
            + "\n")


# --- ragexctl's plugin hooks ---------------------------------------------------------


def add_parser(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]"
               ) -> argparse.ArgumentParser:
    """Register ``mcp [--project PATH]`` and ``mcp config TARGET``."""
    parser = subparsers.add_parser(
        "mcp", help="serve ragex to AI coding agents over the Model Context Protocol (stdio)",
        description="Run a stdio MCP server whose tools (search_code, find_symbol, find_similar, "
                    "index_status, reindex) are answered by ragexd's warm worker for the "
                    "project. `ragexctl mcp config TARGET` prints how to register it.")
    parser.add_argument("--project", metavar="PATH",
                        help="the project to serve (default: the one containing the current "
                             "directory)")
    sub = parser.add_subparsers(dest="mcp_command", metavar="{config}")
    cfg = sub.add_parser("config", help="print the snippet that registers ragex with an agent",
                         description="Print (never write) the configuration that registers "
                                     "this ragexctl as an MCP server.")
    cfg.add_argument("target", choices=CONFIG_TARGETS, help="which agent")
    cfg.add_argument("--project", dest="config_project", metavar="PATH",
                     help="pin the server to this project instead of the agent's directory")
    return parser


def _setup_logging() -> None:
    level = os.environ.get("RAGEX_LOG_LEVEL", "warning").upper()
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(PrintableFormatter("%(asctime)s ragexctl-mcp[%(process)d] "
                                                "%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    try:
        root.setLevel(level)
    except ValueError:
        root.setLevel(logging.WARNING)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "mcp_command", None) == "config":
        project = getattr(args, "config_project", None) or getattr(args, "project", None)
        if project:
            if not os.path.isdir(project):
                sys.stderr.write(f"ragexctl: no such directory: {printable(project)}\n")
                return EXIT_ERROR
            project = str(paths.find_project_root(Path(project)))
        sys.stdout.write(config_snippet(args.target, project))
        sys.stdout.flush()
        return EXIT_OK
    _setup_logging()
    cwd = getattr(args, "project", None) or where.current_dir()
    if cwd is None:
        sys.stderr.write(f"ragexctl mcp: {where.NO_CURRENT_DIR}\n")
        return EXIT_ERROR
    start = Path(cwd)
    if not start.exists():
        sys.stderr.write(f"ragexctl mcp: no such file or directory: {printable(str(start))}\n")
        return EXIT_ERROR
    try:
        cfg = rconfig.load()
    except rconfig.ConfigError as exc:
        sys.stderr.write(f"ragexctl mcp: bad configuration: {printable_lines(str(exc))}\n")
        return EXIT_ERROR
    root = paths.find_project_root(start)
    try:
        return serve(root, cfg)
    except KeyboardInterrupt:
        return exitcodes.INTERRUPTED


def main(argv: list[str] | None = None) -> int:
    """``python -m ragexctl.mcp ...`` works without the full CLI."""
    parser = argparse.ArgumentParser(prog="ragexctl")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(["mcp", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(main())
