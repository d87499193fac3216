"""The lines of project files as they are now, for search: hits' snippets, and the
short chunks declarations.py judges while ranking.

One query read a file twice (its short candidates judged while ranking, its hits'
snippets after), every query read it again, and a file that cannot become text
(gone, binary now, a FIFO, too large) was tried again on every query.  So each
file's answer, lines or "none", is kept under the file's identity (size, mtime,
ctime, inode, device): one ``lstat`` says whether it still holds, so a saved file is
read afresh at the next query and nothing changed is ever served.  What is kept is
bounded (``MAX_CACHED_BYTES``, least recently used first), not the whole tree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..textcodec import NotText, decode_text, text_lines
from . import discovery
from .lru import LRU

#: Source kept between queries, in bytes (plus a line's list overhead each): a
#: query's hits and short candidates come from a few hundred files at most.
MAX_CACHED_BYTES = 32 * 1024 * 1024
#: A file larger than this is not read for search at all (the indexer's limit is
#: a setting; this is the ceiling of any setting's worth).
MAX_READ_BYTES = 16 * 1024 * 1024
_LINE_OVERHEAD = 64


@dataclass(frozen=True)
class FileNow:
    """A file's lines now (None: it cannot be read as text now), and its size and
    mtime (None when it is gone), which say whether the index still matches it."""

    lines: list[str] | None
    size: int | None
    mtime_ns: int | None


def _cost(entry: tuple[tuple[int, ...], FileNow]) -> int:
    lines = entry[1].lines
    return 1 if lines is None else entry[0][0] + _LINE_OVERHEAD * len(lines) + 1


class FileLines:
    """``get(rel)``: a file's lines now, read once while the file stays the same."""

    def __init__(self, root: Path, max_bytes: int = MAX_CACHED_BYTES) -> None:
        self.root = root
        self._cache: LRU[str, tuple[tuple[int, ...], FileNow]] = LRU(max_bytes, _cost)
        self.reads = 0   # files actually read: what the tests count

    def get(self, rel: str) -> FileNow:
        path = self.root / rel
        try:
            st = os.lstat(path)
        except OSError:
            return FileNow(None, None, None)   # gone: nothing to read, nothing to keep
        ident = discovery.file_identity(st)
        cached = self._cache.get(rel)
        if cached is not None and cached[0] == ident:
            return cached[1]
        self.reads += 1
        try:
            data, st = discovery.read_bytes(path, MAX_READ_BYTES)
        except discovery.Unreadable:
            now = FileNow(None, st.st_size, st.st_mtime_ns)
        else:   # kept under the identity of what was read, should it have changed since
            ident = discovery.file_identity(st)
            try:
                now = FileNow(text_lines(decode_text(data)), st.st_size, st.st_mtime_ns)
            except NotText:
                now = FileNow(None, st.st_size, st.st_mtime_ns)
        self._cache.put(rel, (ident, now))
        return now
