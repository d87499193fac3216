"""Turning replies into text for people and JSON Lines for programs.

Pure functions over plain data (plus one small progress renderer that owns a
stream), shared by the daemon and the ``--no-daemon`` paths so both print
exactly the same thing.  Output follows ripgrep: ``path:line:text``, path in
magenta and line number in green, colour only on a terminal.
"""

from __future__ import annotations

import os
import stat
import sys
import time

from ragexd.textcodec import printable, printable_lines  # noqa: F401 - also render's API
from ragexd.vocabulary import Problem, context_problem

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - typing costs milliseconds at run time
    import re
    from collections.abc import Iterable
    from typing import Any, TextIO

#: json, re, textwrap and ragexd.config are imported by the functions that use
#: them: the direct regex path (ragexctl/direct.py) prints grep lines through
#: this module on every search, and those imports cost more than ripgrep's run.

# ripgrep's default colours.
PATH_COLOR = "\x1b[35m"     # magenta
LINE_COLOR = "\x1b[32m"     # green
NOTE_COLOR = "\x1b[33m"     # yellow
RESET = "\x1b[0m"


def use_color(choice: str, stream: TextIO) -> bool:
    """``auto`` means a terminal that is not dumb and no NO_COLOR (no-color.org)."""
    if choice == "always":
        return True
    if choice == "never":
        return False
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return is_terminal(stream)


def is_terminal(stream: TextIO) -> bool:
    """Whether a person (a terminal) reads ``stream``; False for a closed or odd stream."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def tolerate_unencodable_output() -> None:
    """Let stdout and stderr write what their encoding cannot (a file name's
    undecodable bytes, any text under a C or Latin-1 locale) as backslash escapes,
    instead of raising UnicodeEncodeError halfway through the output.  Every way
    into ragexctl (the direct regex path, the CLI) calls it first."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
        except (AttributeError, ValueError):
            pass


def current_dir() -> str:
    """The cwd as hit paths are made relative to it (``/`` when it was deleted)."""
    from ragexd import where

    cwd = where.current_dir()
    return os.path.realpath(cwd) if cwd is not None else "/"


def path_base(root: str, cwd: str) -> str | None:
    """Directory hit paths are shown relative to: the cwd when it lies inside the
    project (as ripgrep does), else None, meaning relative to the root."""
    if cwd == root or cwd.startswith(root.rstrip(os.sep) + os.sep):
        return cwd
    return None


def display_path(rel: str, root: str, base: str | None) -> str:
    if base is None or base == root:
        return rel
    return os.path.relpath(os.path.join(root, rel), base)


def first_line(text: str) -> str:
    from ragexd.textcodec import line_text

    return line_text(text.split("\n", 1)[0])


def hit_line(hit: dict[str, Any]) -> tuple[int, str]:
    """The line a hit is shown at and that line's text, from the snippet (a regex
    hit's snippet starts at its matching line, a symbol's at its definition)."""
    snippet = str(hit.get("text") or "")
    line = hit.get("line", 0)
    line = line if isinstance(line, int) else 0
    if hit.get("kind") != "match":
        # A definition's span starts at its decorators; `@property` says nothing, so
        # show the line that names it (and that line's number, to stay grep-true).
        # A line window (Markdown, text) often starts at a blank line: its first
        # line with text is shown, at its own number, never words that are not in
        # the file (was: `README.md:31:window Compatibility`).
        lines = snippet.split("\n")
        blank = not snippet.strip()   # all blank: nothing to skip to (named below)
        skip = 0
        while skip < len(lines) - 1 and (lines[skip].lstrip().startswith("@")
                                         or not (blank or lines[skip].strip())):
            skip += 1
        snippet = "\n".join(lines[skip:])
        line += skip
    text = first_line(snippet)
    if not text.strip():
        # An empty first line says nothing; name the symbol instead.
        text = " ".join(p for p in (str(hit.get("kind") or ""), str(hit.get("name") or "")) if p)
    return line, text


def format_hit(hit: dict[str, Any], path: str, color: bool) -> str:
    """``path:line:text`` with the snippet's first line."""
    line, text = hit_line(hit)
    return grep_line(path, line, text, color)


def grep_line(path: str, line: int, text: str, color: bool, sep: str = ":") -> str:
    """One line as grep prints it: ``path:12:text`` for a match, ``path-12-text``
    (``sep="-"``) for a context line."""
    path, text = printable(path), printable(text)
    if color:
        return f"{PATH_COLOR}{path}{RESET}{sep}{LINE_COLOR}{line}{RESET}{sep}{text}"
    return f"{path}{sep}{line}{sep}{text}"


def render_hits(hits: Iterable[dict[str, Any]], root: str, cwd: str, *, color: bool) -> str:
    base = path_base(root, cwd)
    lines = [format_hit(h, display_path(str(h.get("path", "")), root, base), color) for h in hits]
    return "".join(line + "\n" for line in lines)


def format_coverage(coverage: dict[str, Any] | None) -> str | None:
    """``coverage: 165/849 files indexed, 2300/14814 chunks embedded, ETA 4m``, or
    None when the index covers everything (nothing worth saying)."""
    if not isinstance(coverage, dict) or coverage.get("complete", True):
        return None
    total = coverage.get("files_total")
    files = f"{coverage.get('files_indexed', 0)}" + (f"/{total}" if total is not None else "")
    text = (f"coverage: {files} files indexed"
            + ("" if coverage.get("catalog_complete") else " so far")
            + f", {coverage.get('chunks_embedded', 0)}/{coverage.get('chunks_indexed', 0)} "
            "chunks embedded (semantic search sees those)")
    eta = coverage.get("eta_seconds")
    if eta is not None:
        text += f", ETA {format_duration(eta)}"
    return text


#: Said when an answer is partial and carries no coverage to say how (an older
#: worker, or a run that has not counted yet).
PARTIAL_NOTE = ("the index is still being built; results may be incomplete "
                "(see `ragexctl status`)")


def answer_notes(result: dict[str, Any], *, coverage: bool = True) -> list[str]:
    """The notes of a search or similar answer, each thing said once (CLI and MCP).

    The engine's notes say what happened to this query; how much of the project
    it saw is the answer's coverage, said in one sentence.  That sentence
    replaces the generic "still being built" note, which said the same less
    precisely (a first-index answer carried three notes saying it).
    ``coverage=False``: the caller says the coverage its own way (``--json``
    writes it as a record) and only the notes are wanted."""
    notes = [str(n) for n in result.get("notes") or []]
    said = format_coverage(result.get("coverage"))
    if said is not None:
        if coverage:
            notes.append(said)
    elif result.get("partial"):
        notes.append(PARTIAL_NOTE)
    return notes


def render_hits_json(hits: Iterable[dict[str, Any]]) -> str:
    """One Hit wire dict per line, paths relative to the project root (stable for
    programs whatever the cwd).  U+2028 and U+2029 (in JavaScript strings) are
    escaped: Python's ``str.splitlines`` and JavaScript split lines at them."""
    import json

    return "".join(json.dumps(h, ensure_ascii=False, separators=(",", ":"))
                   .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029") + "\n"
                   for h in hits)


# --- context lines (-A/-B/-C) ----------------------------------------------------------

#: A context line longer than this is cut (a minified file's one line may be megabytes):
#: reading context must cost a few lines per hit, never a whole file.
CONTEXT_LINE_BYTES = 4096


class Context:
    """How many lines to show before and after each hit (ripgrep's -B and -A).
    A plain class, not a dataclass, for the direct path's import cost."""

    __slots__ = ("before", "after")

    def __init__(self, before: int = 0, after: int = 0) -> None:
        self.before = before
        self.after = after

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Context) and (self.before, self.after) == \
            (other.before, other.after)

    def __repr__(self) -> str:
        return f"Context(before={self.before}, after={self.after})"

    def __bool__(self) -> bool:
        return bool(self.before or self.after)

    @classmethod
    def from_flags(cls, before: int | None, after: int | None, both: int | None
                   ) -> "Context | Problem":
        """-A/-B/-C as ripgrep reads them (-A and -B override -C), range-checked:
        the one reading for the CLI and the direct regex path."""
        before = before if before is not None else both
        after = after if after is not None else both
        for value in (before, after):
            problem = context_problem(0 if value is None else value)
            if problem is not None:
                return problem
        return cls(before or 0, after or 0)


#: ``--color`` choices, as ripgrep spells them.
COLOR_CHOICES = ("auto", "always", "never")


def read_lines(path: str, wanted: Iterable[tuple[int, int]]) -> dict[int, str]:
    """The lines of ``path`` inside the 1-based inclusive ranges ``wanted``, read
    once, line by line, stopping after the last wanted line: memory is the wanted
    lines (each cut at CONTEXT_LINE_BYTES), whatever the size of the file.  An
    unreadable file gives no lines (the hit itself is still shown)."""
    ranges = sorted((max(1, lo), hi) for lo, hi in wanted if hi >= lo)
    if not ranges:
        return {}
    last = max(hi for _, hi in ranges)
    out: dict[int, str] = {}
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block us
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                return {}
            from ragexd.filerules import MAX_FILE_BYTES
            from ragexd.textcodec import codec_of, line_text

            codec, skip = codec_of(fh.read(4))
            fh.seek(skip)
            if codec != "utf-8":
                return _wide_lines(fh.read(MAX_FILE_BYTES), codec, ranges)
            k, n = 0, 0
            while n < last:
                raw = fh.readline(CONTEXT_LINE_BYTES)
                if not raw:
                    break
                n += 1
                if not raw.endswith(b"\n"):   # cut: skip the rest of this long line
                    rest = raw
                    while rest and not rest.endswith(b"\n"):
                        rest = fh.readline(1 << 16)
                while k < len(ranges) and ranges[k][1] < n:
                    k += 1
                if k < len(ranges) and ranges[k][0] <= n:
                    out[n] = line_text(raw.decode("utf-8", "replace"))
    except OSError:
        return out
    return out


def _wide_lines(data: bytes, codec: str, ranges: list[tuple[int, int]]) -> dict[int, str]:
    """``read_lines`` for a UTF-16 file (indexed only up to MAX_FILE_BYTES, so read
    whole): its lines are counted in characters, as ripgrep and the index count them."""
    from ragexd.textcodec import text_lines

    lines = text_lines(data.decode(codec, "replace"))
    return {n: lines[n - 1][:CONTEXT_LINE_BYTES]
            for lo, hi in ranges for n in range(lo, min(hi, len(lines)) + 1)}


def file_of(root: str, rel: str) -> str | None:
    """The hit's file on this machine (paths on the wire are relative to the project
    root, which is the same host path for every runtime), never outside the root."""
    base = os.path.realpath(root)
    full = os.path.realpath(os.path.join(base, rel))
    return full if full.startswith(base + os.sep) else None


def _context_lines(hits: list[dict[str, Any]], root: str, ctx: Context
                   ) -> dict[str, dict[int, str]]:
    """Every file's wanted lines, each file read once for all its hits."""
    wanted: dict[str, list[tuple[int, int]]] = {}
    for hit in hits:
        line, _ = hit_line(hit)
        wanted.setdefault(str(hit.get("path", "")), []).append(
            (line - ctx.before, line + ctx.after))
    out: dict[str, dict[int, str]] = {}
    for rel, ranges in wanted.items():
        full = file_of(root, rel)
        out[rel] = read_lines(full, ranges) if full else {}
    return out


def stale_notes(hits: Iterable[dict[str, Any]]) -> list[str]:
    """One sentence per file that changed since it was indexed: its context lines
    are read from the file as it is now and may not line up with the hit."""
    seen: list[str] = []
    for hit in hits:
        path = str(hit.get("path", ""))
        if hit.get("stale") and path not in seen:
            seen.append(path)
    return [f"{printable(path)} changed since it was indexed; its lines are shown as they are now "
            "and may not line up (`ragexctl index` updates it)" for path in seen]


def render_context(hits: Iterable[dict[str, Any]], root: str, cwd: str, ctx: Context, *,
                   color: bool) -> str:
    """Hits with context lines, as ``grep -C`` prints them: ``path:13:text`` for the
    hit's line, ``path-12-text`` around it, ``--`` between groups; consecutive hits
    in one file whose context overlaps or touches share one group."""
    hits = list(hits)
    base = path_base(root, cwd)
    lines_of = _context_lines(hits, root, ctx)
    groups: list[tuple[str, int, int, dict[int, str]]] = []   # path, lo, hi, hit lines
    for hit in hits:
        rel = str(hit.get("path", ""))
        line, text = hit_line(hit)
        known = lines_of.get(rel, {})
        lo = min(line, max(1, line - ctx.before))   # the hit's own line is always shown
        hi = line + ctx.after
        while hi > line and hi not in known:   # past the end of the file
            hi -= 1
        if groups and groups[-1][0] == rel and lo <= groups[-1][2] + 1 \
                and hi >= groups[-1][1] - 1:
            path, glo, ghi, marks = groups[-1]
            marks.setdefault(line, text)
            groups[-1] = (path, min(glo, lo), max(ghi, hi), marks)
        else:
            groups.append((rel, lo, hi, {line: text}))
    out: list[str] = []
    for i, (rel, lo, hi, marks) in enumerate(groups):
        if i:
            out.append(f"{NOTE_COLOR}--{RESET}" if color else "--")
        path = display_path(rel, root, base)
        known = lines_of.get(rel, {})
        for n in range(lo, hi + 1):
            if n in marks:
                out.append(grep_line(path, n, marks[n], color))
            elif n in known:
                out.append(grep_line(path, n, known[n], color, "-"))
    return "".join(line + "\n" for line in out)


def with_context(hits: Iterable[dict[str, Any]], root: str, ctx: Context
                 ) -> list[dict[str, Any]]:
    """For ``--json``: each hit dict gains ``before`` (the lines just before its
    ``line``, oldest first) and ``after`` (the lines just after it); fewer at the
    ends of the file, none for a file that cannot be read."""
    hits = list(hits)
    lines_of = _context_lines(hits, root, ctx)
    out = []
    for hit in hits:
        line, _ = hit_line(hit)
        known = lines_of.get(str(hit.get("path", "")), {})
        before = [known[n] for n in range(max(1, line - ctx.before), line) if n in known]
        after = [known[n] for n in range(line + 1, line + ctx.after + 1) if n in known]
        out.append({**hit, "before": before, "after": after})
    return out


# --- compact blocks (semantic / hybrid / similar on a terminal) ------------------------

MATCH_COLOR = "\x1b[1;31m"   # ripgrep's match colour: bold red
#: Lines of the chunk shown under its head line.
BLOCK_LINES = 3
_STOPWORDS = frozenset({"the", "and", "for", "with", "that", "this", "from", "into", "are",
                        "how", "what", "where", "when", "which", "does", "its", "not", "all",
                        "any", "can", "use", "used", "using", "who", "why", "has", "have"})


def query_words(query: str) -> "re.Pattern[str] | None":
    """What to highlight of a question: its words of three letters or more, minus
    the commonest ones, roughly stemmed (``uploads`` lights up ``upload``), found
    inside identifiers too (``retry`` in ``retry_upload``), any case."""
    import re

    stems: set[str] = set()
    for word in re.findall(r"[A-Za-z0-9]+", query):
        w = word.lower()
        if len(w) < 3 or w in _STOPWORDS:
            continue
        stems.add(w)
        # every plausible stem: the longest alternative wins where several match
        # (``prices`` lights up ``price``, ``classes`` lights up ``class``)
        for suffix in ("ing", "ies", "es", "ed", "s"):
            if w.endswith(suffix) and len(w) - len(suffix) >= 4:
                stems.add(w[: -len(suffix)])
    if not stems:
        return None
    return re.compile("|".join(re.escape(w) for w in sorted(stems, key=len, reverse=True)),
                      re.IGNORECASE)


def highlight(text: str, words: "re.Pattern[str] | None", color: bool) -> str:
    if not color or words is None:
        return text
    return words.sub(lambda m: f"{MATCH_COLOR}{m.group(0)}{RESET}", text)


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` columns, marked with ``...`` when cut (ASCII:
    stdout may not be UTF-8)."""
    text = text.rstrip().expandtabs(4)
    return text if len(text) <= width else text[: max(0, width - 3)] + "..."


def block_head(hit: dict[str, Any], path: str, color: bool) -> str:
    """``path:start-end  kind Parent.name``: the whole span (decorators included),
    then what it is and the class it is in."""
    line = int(hit.get("line") or 0)
    start = int(hit.get("start_line") or 0) or line
    end = int(hit.get("end_line") or 0)
    span = f"{start}-{end}" if end > start else f"{start}"
    kind, name, parent = (str(hit.get(k) or "") for k in ("kind", "name", "parent"))
    what = " ".join(p for p in (kind, f"{parent}.{name}" if parent and name else name) if p)
    if parent and not name:
        what += f" in {parent}"
    stale = "  [changed since indexed]" if hit.get("stale") else ""
    path, what = printable(path), printable(what)
    if color:
        return (f"{PATH_COLOR}{path}{RESET}:{LINE_COLOR}{span}{RESET}  {what}"
                + (f"{NOTE_COLOR}{stale}{RESET}" if stale else ""))
    return f"{path}:{span}  {what}{stale}"


def render_blocks(hits: Iterable[dict[str, Any]], root: str, cwd: str, *, query: str,
                  color: bool, width: int) -> str:
    """For a person at a terminal: each hit as its span, kind, class and name, then
    the first lines of the chunk (from its definition line), cut to the terminal's
    width, with the query's words highlighted."""
    base = path_base(root, cwd)
    words = query_words(query)
    out: list[str] = []
    for hit in hits:
        out.append(block_head(hit, display_path(str(hit.get("path", "")), root, base), color))
        line, _ = hit_line(hit)
        lines = str(hit.get("text") or "").replace("\r\n", "\n").split("\n")
        lines = lines[max(0, line - int(hit.get("line") or line)):]   # from the def line
        body = [ln for ln in lines if ln.strip()][:BLOCK_LINES]
        if body:
            import textwrap

            body = textwrap.dedent("\n".join(body)).split("\n")
        out.extend("    " + highlight(clip(printable(ln), width - 4), words, color)
                   for ln in body)
    return "".join(line + "\n" for line in out)


def terminal_width(stream: TextIO) -> int:
    """Like shutil.get_terminal_size: $COLUMNS, else the terminal's, else 80 (a
    terminal may report 0 columns: a fresh pty, a serial console)."""
    try:
        cols = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        cols = 0
    if cols <= 0:
        try:
            cols = os.get_terminal_size(stream.fileno()).columns
        except (OSError, AttributeError, ValueError):
            cols = 0
    return cols if cols > 0 else 80


# --- errors ------------------------------------------------------------------------


def format_error(code: str, message: str, *, as_json: bool,
                 detail: dict[str, Any] | None = None) -> str:
    if as_json:
        import json

        return json.dumps({"error": {"code": code, "message": message, "detail": detail or {}}},
                          ensure_ascii=False) + "\n"
    return f"ragexctl: {printable_lines(message)}\n"


# --- humane numbers ---------------------------------------------------------------


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(max(0.0, float(seconds))))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def format_bytes(n: Any) -> str:
    if n is None:
        return "-"
    from ragexd.config import format_size

    try:
        return format_size(int(n))
    except (TypeError, ValueError):
        return "-"


def format_ago(timestamp: Any, now: float | None = None) -> str:
    if not timestamp:
        return "never"
    delta = (now if now is not None else time.time()) - float(timestamp)
    return format_duration(delta) + " ago"


# --- progress ---------------------------------------------------------------------


class ProgressRenderer:
    """Progress of an index on stderr.

    On a terminal: one line redrawn in place (``\\r``), files done/total, chunks
    embedded and ETA.  Otherwise (a log, a CI job): a plain line when the phase
    changes and at most every ``interval`` seconds, so logs stay short.
    """

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None,
                 interval: float = 5.0, prefix: str = "ragexctl: ") -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = is_terminal(self.stream) if tty is None else tty
        self.interval = interval
        self.prefix = prefix
        self._last_phase = ""
        self._last_time = 0.0
        self._drawn = 0
        self.updates = 0

    def _width(self) -> int:
        return max(20, terminal_width(self.stream) - 1)

    @staticmethod
    def describe(p: Any, bar_width: int = 0) -> str:
        """``cataloguing [#####---] 120/480 files``, ``embedding [##------] 480/480 files,
        1530/6120 chunks, ETA 42s`` (ASCII only: stderr may not be UTF-8)."""
        phase = getattr(p, "phase", "") or "working"
        done = int(getattr(p, "files_done", 0) or 0)
        total = int(getattr(p, "files_total", 0) or 0)
        chunks = int(getattr(p, "chunks_embedded", 0) or 0)
        # While embedding, every file is catalogued: a bar of files stayed full for
        # the minutes the vectors take, so it follows the chunks when they are counted.
        of = int(getattr(p, "chunks_total", 0) or 0) if phase == "embedding" else 0
        head = phase
        bar_done, bar_total = (chunks, of) if of else (done, total)
        if bar_width and bar_total:
            filled = int(bar_width * min(bar_done, bar_total) / bar_total)
            head += " [" + "#" * filled + "-" * (bar_width - filled) + "]"
        details = []
        if total:
            details.append(f"{done}/{total} files")
        if of:
            details.append(f"{chunks}/{of} chunks")
        elif chunks:
            details.append(f"{chunks} chunks")
        eta = getattr(p, "eta_seconds", None)
        if eta is not None and phase not in ("done", "scanning"):
            details.append(f"ETA {format_duration(eta)}")
        message = printable(str(getattr(p, "message", "") or "").strip())  # a file's name
        # "scanning"/"scanning", "loading-model"/"loading the model": say it once.
        if message and message.split()[0].lower() != phase.replace("-", " ").split()[0].lower():
            details.append(message)
        return head + (" " + ", ".join(details) if details else "")

    def update(self, p: Any) -> None:
        self.updates += 1
        now = time.monotonic()
        if self.tty:
            line = (self.prefix + self.describe(p, bar_width=20))[: self._width()]
            pad = " " * max(0, self._drawn - len(line))
            self.stream.write("\r" + line + pad)
            self.stream.flush()
            self._drawn = len(line)
            return
        phase = getattr(p, "phase", "")
        if phase != self._last_phase or now - self._last_time >= self.interval:
            self._last_phase, self._last_time = phase, now
            self.stream.write(self.prefix + self.describe(p) + "\n")
            self.stream.flush()

    def clear(self) -> None:
        """Erase the in-place line before other output is written."""
        if self.tty and self._drawn:
            self.stream.write("\r" + " " * self._drawn + "\r")
            self.stream.flush()
            self._drawn = 0


def format_summary(summary: dict[str, Any]) -> str:
    """``indexed 12 files (30 unchanged, 1 removed), 340 chunks in 4.2 s``."""
    g = lambda k: int(summary.get(k) or 0)  # noqa: E731
    text = (f"indexed {g('files_indexed')} files ({g('files_unchanged')} unchanged, "
            f"{g('files_removed')} removed), {g('chunks_total')} chunks in "
            f"{float(summary.get('seconds') or 0.0):.1f} s")
    if g("chunks_shared"):
        text += (f"; {g('chunks_shared')} vectors from the shared store, "
                 f"{g('chunks_embedded')} embedded here")
    if g("chunks_reused"):   # code that only moved keeps its vectors
        text += (f"; {g('chunks_embedded')} chunks embedded, {g('chunks_reused')} moved "
                 "ones kept their vectors")
    if skipped_total(summary):
        text += f"; {skipped_total(summary)} files skipped"
    return text


def skipped_total(summary: dict[str, Any]) -> int:
    """How many files an index run left out: ``skipped`` names the first 200 only
    (a worker from before the count was sent names them all)."""
    named = summary.get("skipped") or []
    total = summary.get("skipped_total")
    return max(total if isinstance(total, int) else 0, len(named))


def format_snapshot(snap: dict[str, Any], what: str) -> str:
    """``wrote ci.tar.gz: 120 files, 2300 chunks at commit 1a2b3c4 (dirty)``."""
    git = snap.get("git") if isinstance(snap.get("git"), dict) else {}
    commit = str(git.get("commit") or "")
    at = f" at commit {commit[:12]}" + (" (with uncommitted changes)" if git.get("dirty")
                                        else "") if commit else ""
    return (f"{what}: {int(snap.get('file_count') or 0)} files, "
            f"{int(snap.get('chunks') or 0)} chunks{at}")


# --- tables -----------------------------------------------------------------------


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns, two spaces apart, like ``docker ps``; the last column
    is not padded so long errors do not create trailing blanks."""
    rows = [[printable(cell) for cell in row] for row in rows]   # roots, errors: any text
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    out = []
    for row in [headers] + rows:
        cells = [cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out) + "\n"


def short_root(root: str, home: str | None = None) -> str:
    home = home if home is not None else os.path.expanduser("~")
    if home and home != "/" and (root == home or root.startswith(home.rstrip("/") + "/")):
        return "~" + root[len(home.rstrip("/")):]
    return root


def root_label(entry: dict[str, Any]) -> str:
    """A project's root as `ls` and `status` show it: marked "(deleted)" when
    ragexd found its directory gone (``exists`` false; unknown from an older
    ragexd is not marked)."""
    root = short_root(str(entry.get("root") or entry.get("project_id") or entry.get("id")
                          or "?"))
    return root + (" (deleted)" if entry.get("exists") is False else "")


#: skipped files ``ragexctl status`` names per project (``--json`` names up to 200)
SKIPPED_NAMED = 5


def render_status(result: dict[str, Any]) -> str:
    daemon = result.get("daemon") or {}
    runtime = daemon.get("runtime") or {}
    rt_name = runtime.get("runtime") or "-"
    reason = runtime.get("reason")
    lines = [
        f"ragexd {daemon.get('version', '?')}: running, pid {daemon.get('pid', '?')}, "
        f"up {format_duration(daemon.get('uptime_s'))}, RSS {format_bytes(daemon.get('rss'))}"
        + (f", CPU {float(daemon['cpu_percent']):.1f}%" if daemon.get("cpu_percent") is not None
           else ""),
        f"runtime: {rt_name}" + (f" ({reason})" if reason else ""),
        f"socket: {daemon.get('socket', '?')}",
    ]
    workers = result.get("workers") or []
    if not workers:
        lines.append("no workers")
        return "\n".join(lines) + "\n"
    rows = []
    for w in workers:
        ident = w.get("pid") or w.get("ident") or "-"
        if w.get("runtime") == "docker" and w.get("ident"):
            ident = str(w["ident"])[:12]
        index = w.get("index") or {}
        idx_text = format_bytes(w.get("index_size"))
        if index.get("files"):
            idx_text += f" ({index.get('files')} files, {index.get('chunks', 0)} chunks"
            cov = index.get("coverage") or {}
            if not cov.get("complete", True):
                idx_text += f", {cov.get('chunks_embedded', 0)} embedded"
            if index.get("skipped"):
                idx_text += f", {index['skipped']} skipped"
            idx_text += ")"
        rows.append([
            root_label(w),
            str(w.get("state") or "?"),
            str(w.get("runtime") or "-"),
            str(ident),
            format_bytes(w.get("rss")),
            format_duration(w.get("uptime_s")) if w.get("uptime_s") is not None else "-",
            format_duration(w.get("idle_s")) if w.get("idle_s") is not None else "-",
            idx_text,
            str(w.get("last_error") or "-"),
        ])
    lines.append("")
    body = table(["PROJECT", "STATE", "RUNTIME", "PID/CONTAINER", "RSS", "UPTIME", "IDLE",
                  "INDEX", "LAST ERROR"], rows)
    for w in workers:   # what embeds: the worker's runtime, and a bulk child's while it runs
        embedder = (w.get("index") or {}).get("embedder")
        if isinstance(embedder, dict):
            line = (f"embedder of {printable(short_root(str(w.get('root') or '?')))}: "
                    f"{embedder.get('runtime', '?')} {embedder.get('precision', '')}".rstrip())
            child = embedder.get("bulk")
            if isinstance(child, dict):
                line += (f"; the index's backlog on {child.get('runtime', '?')} "
                         f"{child.get('precision', '')} in child pid {child.get('pid', '?')}")
            body += line + "\n"
    for w in workers:   # [store] backend = "chroma-http": where, and whether it serves
        store = (w.get("index") or {}).get("store")
        if isinstance(store, dict):
            state = store.get("problem") or (f"{store.get('fetched', 0)} vectors fetched, "
                                             f"{store.get('published', 0)} published")
            body += (f"shared store of {short_root(str(w.get('root') or '?'))}: "
                     f"{store.get('url', '?')} {store.get('collection', '')} "
                     f"({store.get('role', '?')}): {state}\n")
    for w in workers:   # what the index leaves out, named: a file missing from answers
        index = w.get("index") or {}
        named = [f for f in index.get("skipped_files") or [] if isinstance(f, dict)]
        if index.get("skipped") and named:
            total = int(index["skipped"])
            more = total - min(len(named), SKIPPED_NAMED)
            json_names = ("names them" if len(named) >= total
                          else f"names the first {len(named)}")
            body += (f"skipped in {printable(short_root(str(w.get('root') or '?')))}: "
                     + "; ".join(f"{printable(str(f.get('path')))} "
                                 f"({printable(str(f.get('reason')))})"
                                 for f in named[:SKIPPED_NAMED])
                     + (f"; and {more} more (`ragexctl status --json` {json_names})"
                        if more > 0 else "")
                     + "\n")
    return "\n".join(lines) + "\n" + body


def render_projects(projects: list[dict[str, Any]], now: float | None = None) -> str:
    if not projects:
        return "no indexed projects\n"
    rows = [[str(p.get("id", "?")), root_label(p),
             format_bytes(p.get("size_bytes")), format_ago(p.get("last_used"), now),
             "running" if p.get("running") else "-"] for p in projects]
    return table(["ID", "ROOT", "SIZE", "LAST USED", "WORKER"], rows)
