"""What the index's on-disk stores share: how they fail, and how to say so.

The catalog (``catalog.py``, SQLite) and the vectors (``vectors.py``, chroma)
are separate ideas, but they sit on the same disk: both must tell a user's disk
problem (full, read-only, no permission) from a corrupt index, and both point
at the same rebuild command.  ``HEAVY_IMPORTS`` lives here too because opening
the vector store and loading the model (``engine.py``) must not import their
shared heavy modules at once.  These few helpers live here, once, so neither
store imports the other.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

#: What a search hears while a snapshot import or a rebuild swaps the index's stores.
BEING_REPLACED = ("the index is being replaced (a snapshot import or a rebuild); search "
                  "again in a moment")
REBUILD_HINT = "run `ragexctl index --rebuild` to rebuild it"

#: One heavy import at a time.  chromadb and the model's stack (torch or
#: onnxruntime, numpy...) share modules; imported from two threads at once (the
#: worker loading its model while an index run opens the vector store) one of
#: them found numpy partially initialised and the index failed as corrupt.
HEAVY_IMPORTS = threading.RLock()


def on_read_only_fs(path: Path) -> bool:
    """The filesystem holding ``path`` is mounted read-only."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def writable_dir(path: Path) -> bool:
    """New files can be created in directory ``path``."""
    return os.access(path, os.W_OK) and not on_read_only_fs(path)


def is_unwritable(exc: BaseException) -> bool:
    """Disk full, read-only or permission problems: the user's to fix."""
    import errno

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES,
                                                  errno.EPERM, errno.EDQUOT, errno.EFBIG):
        return True
    text = str(exc).lower()
    return any(s in text for s in ("disk is full", "database or disk is full", "readonly",
                                   "read-only", "no space left", "disk i/o error",
                                   "permission denied", "file too large", "quota",
                                   # chromadb's Rust sqlite layer, on a read-only or vanished dir
                                   "(code: 14)", "unable to open database file",
                                   "(code: 8)", "(code: 13)"))


def give_back(conn: sqlite3.Connection) -> int:
    """Return a store's spare bytes to the file system: the pages freed since the
    last call (when the file has incremental auto-vacuum) and its write-ahead log;
    returns the bytes of freed pages given back.

    Both SQLite stores need it after an index run.  A WAL is reset, not shrunk,
    by SQLite's checkpoints, so it keeps the largest size a run gave it (about
    8 MB for the vectors' 8 KiB pages: more than a whole 5k-chunk index) until the
    last connection closes, and a worker stays up between runs.  Cheap (it moves
    only what follows the free pages) and safe beside readers (an ordinary WAL
    write transaction), unlike a VACUUM, which rewrites the whole file.
    Truncating the WAL waits for readers on an older snapshot, so it gets a
    second, not the usual 30: a busy store keeps its WAL until next time."""
    page = int(conn.execute("PRAGMA page_size").fetchone()[0])
    free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    freed = 0
    if free and int(conn.execute("PRAGMA auto_vacuum").fetchone()[0]) == 2:
        # it frees one page per step, and execute() steps a row-less statement
        # only once: executescript() runs it to the end
        conn.executescript("PRAGMA incremental_vacuum;")
        freed = (free - int(conn.execute("PRAGMA freelist_count").fetchone()[0])) * page
    conn.execute("PRAGMA busy_timeout=1000")
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        conn.execute("PRAGMA busy_timeout=30000")
    return freed
