"""Which files of a project are worth indexing.

Honours ``.gitignore``, ``.ignore``, ``.rgignore`` and ``.ragexignore`` at every
level (patterns relative to the directory holding them, deeper files and
``.ragexignore`` taking precedence, exactly like git's own precedence; a project
root below a repository's top also obeys the ``.gitignore`` files above it, and
every project git's ``info/exclude`` and global excludes file) plus defaults nobody wants searched
(VCS metadata, dependency folders, build output, lock files, minified code).
Matching is ``pathspec``'s GitIgnoreSpec, not a home-made glob engine (a long
ignore file is prefiltered by one regex of all its patterns: see IgnoreFile).

Never opens anything but regular files: a FIFO or socket in the tree must not
hang the indexer, so files are opened with O_NONBLOCK|O_NOFOLLOW and re-checked
with fstat.

No single file, name or ignore line may abort a project: an ignore line git
would not accept is skipped with a warning (as git does), a name that is not
valid UTF-8 and a file that looks minified or generated are skipped with a
reason the user sees in the index summary.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import pathspec

from ..filerules import (ALWAYS_SKIP_DIRS, DEFAULT_IGNORES, IGNORE_FILES,  # noqa: F401
                         MAX_FILE_BYTES, display_name, ignore_files_outside, too_large)
from ..filetypes import language_for
from ..textcodec import NotText, decode_text
from .lru import LRU
from .types import SkippedFile

log = logging.getLogger(__name__)

#: A file whose longest line is this long was not written by hand (a bundle, a
#: minified file, an embedded blob): chunking it by lines would give every chunk
#: the whole line, so indexing it costs quadratic time and space.
MAX_LINE_CHARS = 20_000
#: Above this size, an average line this long marks a minified or generated file
#: (hand-written code averages 30-60 characters a line).
GENERATED_MIN_BYTES = 4096
GENERATED_MEAN_LINE = 300


def _invalid_name(rel: str) -> bool:
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


BAD_NAME_REASON = "its name is not valid UTF-8; rename it to index it"


#: An ignore file with more patterns than this is matched through one combined
#: regex first: pathspec tries its patterns one by one in Python, so a generated
#: .gitignore of 20,000 lines cost 28 s to walk 2,000 files (files x patterns).
PREFILTER_PATTERNS = 64


class IgnoreFile:
    """One ignore file's patterns, and ``decide(path)``: True (ignored), False
    (re-included by a ``!`` pattern) or None (no pattern matches).

    A long file is first asked, through one regex of all its patterns (in C, at
    once), whether any pattern matches at all; only then does pathspec find which
    one wins.  Most paths match none, so the cost stops growing with the lines."""

    def __init__(self, spec: pathspec.GitIgnoreSpec) -> None:
        self.spec = spec
        self._any: re.Pattern[str] | None = None
        sources = [p.regex.pattern for p in spec.patterns
                   if p.include is not None and getattr(p, "regex", None) is not None]
        if len(sources) > PREFILTER_PATTERNS:
            try:   # pathspec's named groups would clash once joined: drop the names
                self._any = re.compile("|".join(
                    "(?:" + re.sub(r"\(\?P<\w+>", "(?:", src) + ")" for src in sources))
            except re.error:
                self._any = None

    def decide(self, path: str) -> bool | None:
        if self._any is not None and self._any.match(path) is None:
            return None
        return self.spec.check_file(path).include


def compile_ignore(lines: list[str], source: str) -> IgnoreFile:
    """The ignore file of every valid line; each line git would not accept
    either (``!`` alone, a lone ``\\``) is skipped with a warning naming it."""
    try:
        return IgnoreFile(pathspec.GitIgnoreSpec.from_lines(lines))
    except Exception:  # noqa: BLE001 - pathspec raises its own error types
        pass
    good: list[str] = []
    for number, line in enumerate(lines, 1):
        try:
            pathspec.GitIgnoreSpec.from_lines([line])
        except Exception as exc:  # noqa: BLE001
            log.warning("%s line %d: skipping invalid ignore pattern %r (%s)",
                        source, number, line, exc)
            continue
        good.append(line)
    return IgnoreFile(pathspec.GitIgnoreSpec.from_lines(good))


def looks_generated(text: str) -> str | None:
    """Why ``text`` looks minified or generated, or None when it looks written by hand."""
    if not text:
        return None
    lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    longest = max(len(line) for line in text.split("\n"))
    if longest > MAX_LINE_CHARS:
        return (f"looks minified or generated (a line of {longest} characters); "
                "searched by regex only")
    mean = len(text) / lines
    if len(text) >= GENERATED_MIN_BYTES and mean > GENERATED_MEAN_LINE:
        return (f"looks minified or generated ({lines} lines for {len(text)} characters); "
                "searched by regex only")
    return None


#: Compiled ignore files kept per process, in patterns (a line each): the rules are
#: built afresh per regex search and per save, so that an edited ignore file is
#: obeyed at once, and a 2,100-line .gitignore above a subproject cost 316 ms to
#: compile every time.  A stat per file says whether its compiled form still holds.
MAX_COMPILED_PATTERNS = 200_000
_compiled: "LRU[str, tuple[tuple[int, ...], IgnoreFile]]" = LRU(
    MAX_COMPILED_PATTERNS, lambda entry: 1 + len(entry[1].spec.patterns))


def file_identity(st: os.stat_result) -> tuple[int, ...]:
    """What changes when a file's content may have: its size, its mtime and its ctime
    (an edit that keeps the size and mtime still moves the ctime), and its inode (an
    editor's save renames a new file over the old).  Kept caches compare it."""
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def read_ignore_file(path: str) -> IgnoreFile | None:
    """One ignore file, or None when there is none (or it cannot be read: said in
    the log).  Only its first MAX_FILE_BYTES are read, cut at a line's end: a
    hostile 50 MB .gitignore must not cost minutes of pattern compiling and the
    memory of a million patterns (git itself refuses ignore files over 100 MB).
    Compiled once while the file stays the same (``_compiled``)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    cached = _compiled.get(path)
    if cached is not None and cached[0] == file_identity(st):
        return cached[1]
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())   # the identity of what is read
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        log.warning("cannot read %s: %s", path, exc)
        return None
    if len(data) > MAX_FILE_BYTES:
        data = data[:data.rfind(b"\n", 0, MAX_FILE_BYTES) + 1]
        log.warning("%s is larger than %d bytes: only its first %d lines are used",
                    path, MAX_FILE_BYTES, data.count(b"\n"))
    compiled = compile_ignore(data.decode("utf-8", "replace").splitlines(), path)
    _compiled.put(path, (file_identity(st), compiled))
    return compiled


@dataclass(frozen=True)
class FileInfo:
    rel: str            # '/'-separated, relative to the root
    size: int
    mtime_ns: int
    language: str


@functools.lru_cache(maxsize=1)
def _default_spec() -> IgnoreFile:
    """ragex's default ignores, compiled once per process: a regex search builds
    fresh IgnoreRules every time (the project's ignore files may have changed),
    and compiling these ~60 constant patterns cost it milliseconds per search."""
    return compile_ignore(DEFAULT_IGNORES, "ragex's default ignores")


def default_exclude(rel: str) -> str | None:
    """The line of ragex's default excludes that leaves ``rel`` out, matched as the
    walk matches them (one path component at a time), or None.  For a sentence, not
    the walk: a person told only "ignored" looks in their own .gitignore, never at
    ragex's list (``vendor/`` among it)."""
    parts = rel.split("/")
    for i, part in enumerate(parts):
        name = part + ("/" if i < len(parts) - 1 else "")
        if _default_spec().decide(name):
            return next(line for line in DEFAULT_IGNORES
                        if compile_ignore([line], line).decide(name))
    return None


class IgnoreRules:
    """Decides whether a path inside the root is ignored, caching each
    directory's ignore files.  Used by the walk and by the regex search, which
    filters ripgrep's output through the same rules."""

    def __init__(self, root: Path, extra_excluded: tuple[Path, ...] = ()) -> None:
        self.root = root
        self.defaults = _default_spec()
        self._specs: dict[str, list[IgnoreFile]] = {}
        self._excluded = tuple(os.path.realpath(p) for p in extra_excluded)
        self._above = _ignores_above(root)

    def specs_for(self, rel_dir: str) -> list[IgnoreFile]:
        """Ignore specs defined in one directory (``""`` is the root)."""
        cached = self._specs.get(rel_dir)
        if cached is not None:
            return cached
        specs: list[IgnoreFile] = []
        base = os.path.join(self.root, rel_dir) if rel_dir else str(self.root)
        for name in IGNORE_FILES:
            spec = read_ignore_file(os.path.join(base, name))
            if spec is not None:
                specs.append(spec)
        self._specs[rel_dir] = specs
        return specs

    def _decide(self, rel: str, is_dir: bool,
                holders: list[tuple[str, list[IgnoreFile]]]) -> bool:
        """Ignore state of ``rel`` itself, its ancestors assumed not ignored.

        ``holders``: the directories above ``rel`` that hold ignore files, with
        their specs, which callers build as they descend: a deep tree then costs
        time linear in its size, not in the cube of its depth."""
        name = rel.rsplit("/", 1)[-1]
        if name in ALWAYS_SKIP_DIRS:   # a submodule's or worktree's .git is a file
            return True
        suffix = "/" if is_dir else ""
        # The defaults each name one path component (no inner slash), so they are
        # matched against the name alone: no cost that grows with the depth.
        result = self.defaults.decide(name + suffix)
        for prefix, spec in self._above:   # git's ignore files outside the root, lowest first
            r = spec.decide(prefix + rel + suffix)
            if r is not None:
                result = r
        for rel_dir, specs in holders:
            sub = (rel[len(rel_dir) + 1:] if rel_dir else rel) + suffix
            for spec in specs:
                r = spec.decide(sub)
                if r is not None:
                    result = r
        if result:
            return True
        if self._excluded and is_dir:
            real = os.path.realpath(self.root / rel)
            if real in self._excluded:
                return True
        return False

    def is_ignored(self, rel: str, is_dir: bool = False) -> bool:
        """Whether ``rel`` or any directory above it is ignored."""
        parts = rel.split("/")
        own = self.specs_for("")
        holders = [("", own)] if own else []
        prefix = ""
        for part in parts[:-1]:
            prefix = f"{prefix}/{part}" if prefix else part
            if self._decide(prefix, True, holders):
                return True
            own = self.specs_for(prefix)
            if own:
                holders = holders + [(prefix, own)]
        return self._decide(rel, is_dir, holders)


def _ignores_above(root: Path) -> list[tuple[str, IgnoreFile]]:
    """The ignore files that apply to a project from outside it
    (``filerules.ignore_files_outside``: git's global and checkout excludes, the
    ``.gitignore`` files between the checkout's top and the root), compiled, each
    with the project root's path relative to the directory its patterns are
    relative to.  git and ripgrep apply them to the project's files, so the index
    must too (it did not read the excludes: a file listed there was found by symbol
    but never by regex)."""
    above: list[tuple[str, IgnoreFile]] = []
    for prefix, path in ignore_files_outside(os.path.realpath(root))[0]:
        spec = read_ignore_file(path)
        if spec is not None:
            above.append((prefix, spec))
    ignored = False
    for prefix, spec in above:
        r = spec.decide(prefix) if prefix else None
        ignored = r if r is not None else ignored
    # a project made of an ignored directory (a vendored checkout with a .ragexroot)
    # was asked for: index it, as ripgrep searches it from inside
    return [] if ignored else above


def walk(root: Path, rules: IgnoreRules, max_size: int = MAX_FILE_BYTES
         ) -> tuple[list[FileInfo], list[SkippedFile]]:
    """Every indexable file under ``root`` (sorted) and what was skipped, with why."""
    files: list[FileInfo] = []
    skipped: list[SkippedFile] = []
    root_real = os.path.realpath(root)
    stack: list[tuple[str, list[tuple[str, list[IgnoreFile]]]]] = [("", [])]
    while stack:
        rel_dir, above = stack.pop()
        own = rules.specs_for(rel_dir)
        holders = above + [(rel_dir, own)] if own else above
        absdir = os.path.join(root, rel_dir) if rel_dir else str(root)
        try:
            with os.scandir(absdir) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            reason = f"cannot read directory: {exc.strerror or exc}"
            log.warning("skipping %s: %s", rel_dir or ".", reason)
            skipped.append(SkippedFile(rel_dir or ".", reason))
            continue
        subdirs: list[str] = []
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                if entry.is_symlink():
                    target = os.path.realpath(entry.path)
                    if target != root_real and not target.startswith(root_real + os.sep):
                        if not rules._decide(rel, False, holders):
                            skipped.append(SkippedFile(display_name(rel),
                                                       "symlink to outside the project"))
                    elif not os.path.exists(entry.path) and not rules._decide(rel, False,
                                                                              holders):
                        skipped.append(SkippedFile(display_name(rel), "broken symlink (its "
                                                   "target is missing, or it loops)"))
                    # symlinks inside the project are indexed at their real path
                    continue
                if entry.is_dir(follow_symlinks=False):
                    if rules._decide(rel, True, holders):
                        continue
                    if _invalid_name(entry.name):
                        skipped.append(SkippedFile(
                            display_name(rel), "directory " + BAD_NAME_REASON
                            + " (nothing under it is indexed)"))
                        continue
                    subdirs.append(rel)
                    continue
                if rules._decide(rel, False, holders):
                    continue
                if _invalid_name(entry.name):
                    skipped.append(SkippedFile(display_name(rel), BAD_NAME_REASON))
                    continue
                if not entry.is_file(follow_symlinks=False):
                    skipped.append(SkippedFile(rel, "not a regular file (socket, FIFO or device)"))
                    continue
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                skipped.append(SkippedFile(rel, f"cannot stat: {exc.strerror or exc}"))
                continue
            if st.st_size > max_size:
                skipped.append(SkippedFile(rel, too_large(max_size, st.st_size)))
                continue
            files.append(FileInfo(rel, st.st_size, st.st_mtime_ns, language_for(rel)))
        stack.extend((sub, holders) for sub in reversed(subdirs))
    files.sort(key=lambda f: f.rel)
    return files, skipped


def stat_one(root: Path, rel: str, rules: IgnoreRules, max_size: int = MAX_FILE_BYTES
             ) -> FileInfo | SkippedFile | None:
    """One path, checked as the walk would: None when it is gone or ignored."""
    if rules.is_ignored(rel):
        return None
    if _invalid_name(rel):
        return SkippedFile(display_name(rel), BAD_NAME_REASON)
    path = root / rel
    if _through_symlink(root, rel):
        # The walk never descends into symlinked directories; an explicit path
        # (a watcher batch, INDEX paths=...) must not either, or `link/passwd`
        # would index a file outside the project.
        return None
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return SkippedFile(rel, f"cannot stat: {exc.strerror or exc}")
    if stat.S_ISLNK(st.st_mode):
        return None
    if not stat.S_ISREG(st.st_mode):
        return SkippedFile(rel, "not a regular file (socket, FIFO or device)")
    if st.st_size > max_size:
        return SkippedFile(rel, too_large(max_size, st.st_size))
    return FileInfo(rel, st.st_size, st.st_mtime_ns, language_for(rel))


def _through_symlink(root: Path, rel: str) -> bool:
    """Whether a directory on the way from ``root`` to ``rel`` is a symlink."""
    parent = os.path.dirname(rel)
    if not parent:
        return False
    real_root = os.path.realpath(root)
    return os.path.realpath(os.path.join(real_root, parent)) != os.path.join(real_root, parent)


class Unreadable(Exception):
    """A file that cannot become text; ``reason`` says why (for IndexSummary.skipped)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def read_bytes(path: Path, max_size: int = MAX_FILE_BYTES) -> tuple[bytes, os.stat_result]:
    """Read a regular file without ever blocking on a FIFO or following a symlink."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise Unreadable("vanished before it could be read") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Unreadable("became a symlink") from None
        raise Unreadable(f"cannot open: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Unreadable("not a regular file (socket, FIFO or device)")
        if st.st_size > max_size:
            raise Unreadable(too_large(max_size, st.st_size))
        chunks = []
        remaining = max_size + 1
        while remaining > 0:
            block = os.read(fd, min(remaining, 1 << 20))
            if not block:
                break
            chunks.append(block)
            remaining -= len(block)
        data = b"".join(chunks)
    except OSError as exc:
        raise Unreadable(f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > max_size:
        raise Unreadable(f"larger than {max_size} bytes")
    return data, st


def decode(data: bytes) -> str:
    """Text of a file (``textcodec.decode_text``: UTF-8, or UTF-16 by its byte-order
    mark, as ripgrep reads them; UTF-32 is binary to both), or Unreadable when it is
    binary."""
    try:
        return decode_text(data)
    except NotText as exc:
        raise Unreadable(str(exc)) from None
