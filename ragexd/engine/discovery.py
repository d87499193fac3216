"""Which files of a project are worth indexing.

Honours ``.gitignore`` and ``.ragexignore`` at every level (patterns relative to
the directory holding them, deeper files and ``.ragexignore`` taking precedence,
exactly like git's own precedence) plus defaults nobody wants searched
(VCS metadata, dependency folders, build output, lock files, minified code).
Matching is ``pathspec``'s GitIgnoreSpec, not a home-made glob engine.

Never opens anything but regular files: a FIFO or socket in the tree must not
hang the indexer, so files are opened with O_NONBLOCK|O_NOFOLLOW and re-checked
with fstat.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import pathspec

from .languages import language_for
from .types import SkippedFile

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 1024 * 1024
BINARY_SNIFF = 8192
IGNORE_FILES = (".gitignore", ".ragexignore")
ALWAYS_SKIP_DIRS = frozenset({".git", ".hg", ".svn", ".bzr", "_darcs"})

DEFAULT_IGNORES = """
node_modules/
bower_components/
__pycache__/
.venv/
venv/
.env/
build/
dist/
target/
.tox/
.nox/
.mypy_cache/
.pytest_cache/
.ruff_cache/
.hypothesis/
.idea/
.gradle/
.next/
.cache/
*.egg-info/
*.min.js
*.min.css
*.map
*.lock
package-lock.json
npm-shrinkwrap.json
pnpm-lock.yaml
go.sum
*.pyc
*.pyo
*.so
*.o
*.a
*.dll
*.dylib
*.exe
*.class
*.jar
*.whl
*.zip
*.gz
*.tgz
*.xz
*.bz2
*.png
*.jpg
*.jpeg
*.gif
*.ico
*.pdf
*.svg
*.woff
*.woff2
*.ttf
*.sqlite
*.sqlite3
*.db
.DS_Store
""".split()


@dataclass(frozen=True)
class FileInfo:
    rel: str            # '/'-separated, relative to the root
    size: int
    mtime_ns: int
    language: str


class IgnoreRules:
    """Decides whether a path inside the root is ignored, caching each
    directory's ignore files.  Used by the walk and by the regex search, which
    filters ripgrep's output through the same rules."""

    def __init__(self, root: Path, extra_excluded: tuple[Path, ...] = ()) -> None:
        self.root = root
        self.defaults = pathspec.GitIgnoreSpec.from_lines(DEFAULT_IGNORES)
        self._specs: dict[str, list[pathspec.GitIgnoreSpec]] = {}
        self._excluded = tuple(os.path.realpath(p) for p in extra_excluded)

    def specs_for(self, rel_dir: str) -> list[pathspec.GitIgnoreSpec]:
        """Ignore specs defined in one directory (``""`` is the root)."""
        cached = self._specs.get(rel_dir)
        if cached is not None:
            return cached
        specs: list[pathspec.GitIgnoreSpec] = []
        base = self.root / rel_dir if rel_dir else self.root
        for name in IGNORE_FILES:
            path = base / name
            try:
                if not path.is_file():
                    continue
                with open(path, encoding="utf-8", errors="replace") as fh:
                    specs.append(pathspec.GitIgnoreSpec.from_lines(fh.read().splitlines()))
            except OSError as exc:
                log.warning("cannot read %s: %s", path, exc)
        self._specs[rel_dir] = specs
        return specs

    def _decide(self, rel: str, is_dir: bool) -> bool:
        """Ignore state of ``rel`` itself, its ancestors assumed not ignored."""
        parts = rel.split("/")
        if is_dir and parts[-1] in ALWAYS_SKIP_DIRS:
            return True
        suffix = "/" if is_dir else ""
        result = self.defaults.check_file(rel + suffix).include
        for depth in range(len(parts)):
            rel_dir = "/".join(parts[:depth])
            sub = "/".join(parts[depth:]) + suffix
            for spec in self.specs_for(rel_dir):
                r = spec.check_file(sub).include
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
        for i in range(1, len(parts)):
            if self._decide("/".join(parts[:i]), True):
                return True
        return self._decide(rel, is_dir)


def walk(root: Path, rules: IgnoreRules, max_size: int = MAX_FILE_BYTES
         ) -> tuple[list[FileInfo], list[SkippedFile]]:
    """Every indexable file under ``root`` (sorted) and what was skipped, with why."""
    files: list[FileInfo] = []
    skipped: list[SkippedFile] = []
    root_real = os.path.realpath(root)
    stack = [""]
    while stack:
        rel_dir = stack.pop()
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
                        if not rules._decide(rel, False):
                            skipped.append(SkippedFile(rel, "symlink to outside the project"))
                    # symlinks inside the project are indexed at their real path
                    continue
                if entry.is_dir(follow_symlinks=False):
                    if not rules._decide(rel, True):
                        subdirs.append(rel)
                    continue
                if rules._decide(rel, False):
                    continue
                if not entry.is_file(follow_symlinks=False):
                    skipped.append(SkippedFile(rel, "not a regular file (socket, FIFO or device)"))
                    continue
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                skipped.append(SkippedFile(rel, f"cannot stat: {exc.strerror or exc}"))
                continue
            if st.st_size > max_size:
                skipped.append(SkippedFile(rel, f"larger than {max_size} bytes ({st.st_size})"))
                continue
            files.append(FileInfo(rel, st.st_size, st.st_mtime_ns, language_for(rel)))
        stack.extend(reversed(subdirs))
    files.sort(key=lambda f: f.rel)
    return files, skipped


def stat_one(root: Path, rel: str, rules: IgnoreRules, max_size: int = MAX_FILE_BYTES
             ) -> FileInfo | SkippedFile | None:
    """One path, checked as the walk would: None when it is gone or ignored."""
    if rules.is_ignored(rel):
        return None
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
        return SkippedFile(rel, f"larger than {max_size} bytes ({st.st_size})")
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
            raise Unreadable(f"larger than {max_size} bytes ({st.st_size})")
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
    """Text of a file, or Unreadable when it looks binary.  Invalid UTF-8 is
    replaced rather than refused: a Latin-1 comment should not hide the code."""
    if b"\0" in data[:BINARY_SNIFF]:
        raise Unreadable("binary file")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return data.decode("utf-8", errors="replace")
