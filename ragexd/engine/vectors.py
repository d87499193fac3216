"""The vector store of one project's index: ``vectors.sqlite``, an exact copy in
memory, and chroma's HNSW only for very large indexes.

Its own module because it is a different store with different failure modes.
One vector per chunk id lives in ``vectors.sqlite`` (our own compact file: a
BLOB per row, no documents, no write-ahead copy of every vector), read whole
into an exact in-memory float32 matrix on the first query.  That cold path needs
neither chromadb (importing it took ~2.7 s of a 5.8 s cold start) nor its HNSW
files and SQLite log (~6 KB a chunk on disk, against ~0.9 KB here).

Rows are written as little-endian float16 (768 bytes for 384 values, half of
float32's 1536: issue #10's 3 KB a chunk).  A unit vector loses nothing a search
sees: cosine against the float32 original >= 0.99999 on real code, the same
top ten (``tests/engine/test_vector_precision.py``).  Each row is read by its
length, float16 or float32, so a file written before (all float32) or one
holding both reads as it is, with no format change; the next run's ``compact``
rewrites its float32 rows once (``VectorFile.narrow``).  Only the bytes on disk
are narrow: the matrix in memory and every product stay float32, and what a
search scores is exactly what a restart reads back (``as_stored``).  chromadb is
imported only above ``Vectors.EXACT_MAX`` vectors, where its HNSW graph answers
instead; it is then a mirror of the file, synced on first use.

An index made before this file existed keeps its vectors in ``chroma/``: they
are converted once, with a message, and chroma's files are removed (never a mix
of the two).  The store may briefly hold vectors the catalog (``catalog.py``)
does not know (a run killed between the two writes); ``Indexer`` reconciles that
at the start of each run, and a damaged file (truncated by a crash or a full
disk) is set aside there and what it held is embedded again.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from .store import (BEING_REPLACED, HEAVY_IMPORTS, REBUILD_HINT, give_back, is_unwritable,
                    on_read_only_fs, writable_dir)
from .types import EngineError

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

#: The vector file, beside ``catalog.sqlite`` in the index directory.
VECTORS_FILE = "vectors.sqlite"
#: Its layout: rows (id, path, language, BLOB of little-endian float16, or float32
#: as written before; each row's length says which).
VECTORS_FORMAT = "1"
#: How a vector is written: float16, read back as float32 (``as_stored``).
STORED = "<f2"
#: Both widths a row may have on disk, by bytes a value.
_WIDTHS = {2: "<f2", 4: "<f4"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS vec (
    id TEXT PRIMARY KEY, path TEXT NOT NULL, language TEXT NOT NULL, v BLOB NOT NULL);
"""
#: No index on ``vec.path``: it cost 57 bytes a chunk (3 % of the index) for the one
#: delete by path, a repair after a crash (``Indexer.reconcile``) that can scan.
#: A file made with it drops it when opened for writing; the next run's
#: ``compact`` gives the pages back.
_DROPPED = "DROP INDEX IF EXISTS vec_path;"


class Damaged(Exception):
    """The vector file is not what we wrote: truncated, overwritten, wrong sizes."""


#: Vector files whose one rewrite (``VectorFile.compact``'s VACUUM) a full disk or a
#: read-only directory refused: not tried again while this process lives, since every
#: run (each watcher save) would otherwise rewrite the whole file under the index's
#: lock only to fail at the disk again.  The next worker tries once more.
_VACUUM_REFUSED: set[str] = set()


class VectorFile:
    """``vectors.sqlite``: one connection shared by every thread, under a lock
    (a write is one transaction of a batch, a read a few ms).

    SQLite, not a raw ``.npy``: a kill -9 mid-write leaves the last committed
    batch (its journal rolls the rest back), deletes by path are one statement,
    and 8 KiB pages pack nine ~0.85 KB float16 rows each (five of float32), so a
    chunk costs ~0.9 KB (1.7 KB).
    """

    PAGE_SIZE = 8192

    def __init__(self, path: Path | str, conn: sqlite3.Connection, read_only: bool) -> None:
        self.path = path
        self.read_only = read_only
        self._conn = conn
        self._lock = threading.Lock()
        self._narrowed = False   # set by ``narrow``: the next ``compact`` packs the pages
        self.dim = 0
        row = conn.execute("SELECT value FROM meta WHERE key='dim'").fetchone()
        if row is not None:
            self.dim = int(row[0])

    @classmethod
    def open(cls, path: Path | str) -> "VectorFile":
        """Open (or create) the file; raise ``Damaged`` for a file that is not ours
        and EngineError("index_unwritable") when a new one cannot be created.
        ``":memory:"`` holds a converted store that could not be written to disk."""
        memory = str(path) == ":memory:"
        exists = not memory and Path(path).exists()
        if exists:
            _check_length(Path(path))
        read_only = exists and not writable_dir(Path(path).parent)
        try:
            if read_only:
                conn = _connect_read_only(Path(path))
            else:
                conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False,
                                       isolation_level=None)
                conn.execute(f"PRAGMA page_size={cls.PAGE_SIZE}")  # before the first table
                # likewise only on a new file: the rows a re-index replaces leave
                # free pages that ``compact`` can then give back
                conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
                conn.executescript(_SCHEMA + _DROPPED)
                if not memory:
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute("PRAGMA synchronous=NORMAL")
                    conn.execute("PRAGMA busy_timeout=30000")
                if conn.execute("SELECT value FROM meta WHERE key='format'").fetchone() is None:
                    conn.execute("INSERT INTO meta VALUES ('format', ?)", (VECTORS_FORMAT,))
            row = conn.execute("SELECT value FROM meta WHERE key='format'").fetchone()
        except sqlite3.DatabaseError as exc:
            if not is_unwritable(exc):
                raise Damaged(str(exc)) from exc
            if not exists or read_only:
                raise EngineError("index_unwritable",
                                  f"cannot open the vector file {path}: {exc}") from exc
            # a full disk: opening for writing needs room, reading does not; the
            # engine refuses writes to a read-only store and searches keep working
            log.warning("cannot open %s for writing (%s): reading it read-only", path, exc)
            return cls.open_read_only(Path(path))
        if row is None or row[0] != VECTORS_FORMAT:
            conn.close()
            raise Damaged(f"format {row[0] if row else 'missing'}, expected {VECTORS_FORMAT}")
        return cls(path, conn, read_only)

    @classmethod
    def open_read_only(cls, path: Path) -> "VectorFile":
        """Read a store that cannot be opened for writing (a full disk): ``mode=ro``
        first, which reads the WAL (a first index that filled the disk has every
        vector there; ``immutable=1`` ignores it), immutable if the WAL's side
        files cannot be opened."""
        for immutable in (False, True):
            try:
                conn = _connect_read_only(path, immutable=immutable)
                row = conn.execute("SELECT value FROM meta WHERE key='format'").fetchone()
                break
            except sqlite3.DatabaseError as exc:
                if immutable:
                    raise EngineError("index_unwritable",
                                      f"cannot open the vector file {path}: {exc}") from exc
        if row is None or row[0] != VECTORS_FORMAT:
            conn.close()
            raise Damaged(f"format {row[0] if row else 'missing'}, expected {VECTORS_FORMAT}")
        return cls(path, conn, True)

    def close(self) -> None:
        with self._lock:
            try:
                self._conn.close()
            except Exception:  # pragma: no cover - closing a broken handle
                pass

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM vec").fetchone()[0])

    def ids(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._conn.execute("SELECT id FROM vec")}

    def rows(self) -> tuple[list[str], list[str], list[str], "np.ndarray"]:
        """Everything, as (ids, paths, languages, float32 matrix); ``Damaged`` when
        a page or a row is not what was written."""
        import numpy as np

        try:
            with self._lock:
                got = self._conn.execute("SELECT id, path, language, v FROM vec").fetchall()
        except sqlite3.DatabaseError as exc:
            if is_unwritable(exc):
                raise
            raise Damaged(str(exc)) from exc
        return ([r[0] for r in got], [r[1] for r in got], [r[2] for r in got],
                self._matrix([r[3] for r in got]))

    def get(self, ids: Sequence[str]) -> tuple[list[str], "np.ndarray"]:
        """The stored vectors of those of ``ids`` that have one."""
        out: list[tuple[str, bytes]] = []
        with self._lock:
            for i in range(0, len(ids), 500):
                part = list(ids[i:i + 500])
                out += self._conn.execute(
                    f"SELECT id, v FROM vec WHERE id IN ({','.join('?' * len(part))})", part)
        return [r[0] for r in out], self._matrix([r[1] for r in out])

    def meta_of(self, ids: Sequence[str]) -> list[tuple[str, str]]:
        """(path, language) of each of ``ids``, in order ("" for an unknown id)."""
        with self._lock:
            found: dict[str, tuple[str, str]] = {}
            for i in range(0, len(ids), 500):
                part = list(ids[i:i + 500])
                found.update((r[0], (r[1], r[2])) for r in self._conn.execute(
                    f"SELECT id, path, language FROM vec WHERE id IN "
                    f"({','.join('?' * len(part))})", part))
        return [found.get(i, ("", "")) for i in ids]

    def _matrix(self, blobs: list[bytes]) -> "np.ndarray":
        """Rows as one float32 matrix, each decoded by its length: ``dim`` float16
        values or ``dim`` float32 (a file written before float16, or partly)."""
        import numpy as np

        dim, n = self.dim, len(blobs)
        by_width: dict[int, list[int]] = {}
        for k, b in enumerate(blobs):
            by_width.setdefault(len(b) // dim if dim and len(b) % dim == 0 else 0, []).append(k)
        if n and (not dim or set(by_width) - set(_WIDTHS)):
            raise Damaged(f"a vector is neither {dim} float16 nor {dim} float32 values")
        if len(by_width) == 1:   # the usual case: one width, one join
            (width,) = by_width
            return np.frombuffer(b"".join(blobs), dtype=_WIDTHS[width]
                                 ).reshape(n, dim).astype(np.float32)
        out = np.empty((n, dim), dtype=np.float32)
        for width, rows in by_width.items():
            out[rows] = np.frombuffer(b"".join(blobs[k] for k in rows),
                                      dtype=_WIDTHS[width]).reshape(len(rows), dim)
        return out

    def put(self, ids: Sequence[str], vectors: "np.ndarray",
            metadatas: Sequence[dict[str, Any]]) -> None:
        """Write rows as ``STORED`` (give ``as_stored``'s output to keep a copy in
        memory that matches the file)."""
        vecs = as_stored(vectors)
        narrow = vecs.astype(STORED)
        rows = [(cid, str((metadatas[k] or {}).get("path", "")) if k < len(metadatas) else "",
                 str((metadatas[k] or {}).get("language", "")) if k < len(metadatas) else "",
                 narrow[k].tobytes()) for k, cid in enumerate(ids)]
        with self._lock, _transaction(self._conn):
            if not self.dim:
                self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('dim', ?)",
                                   (str(vecs.shape[1]),))
            elif vecs.shape[1] != self.dim:
                raise EngineError("index_corrupt",
                                  f"vectors of {vecs.shape[1]} values cannot join an index of "
                                  f"{self.dim}; {REBUILD_HINT}")
            self._conn.executemany("INSERT OR REPLACE INTO vec VALUES (?, ?, ?, ?)", rows)
        self.dim = self.dim or int(vecs.shape[1])

    def compact(self) -> int:
        """Give free pages and the write-ahead log back (``store.give_back``); a
        file made before it had incremental auto-vacuum is rewritten once, when it
        has free pages to give, and so is one whose rows ``narrow`` just halved
        (they stay on their pages, half empty, until a VACUUM packs them: a second
        or so for 20 MB, and room for a copy of the file, so a full disk leaves it
        as it was, its free room reused by later rows)."""
        if self.read_only:
            return 0
        with self._lock:
            conn = self._conn
            key = os.path.abspath(self.path)
            if self._narrowed or (key not in _VACUUM_REFUSED
                                  and int(conn.execute("PRAGMA auto_vacuum").fetchone()[0]) != 2
                                  and int(conn.execute("PRAGMA freelist_count").fetchone()[0])):
                self._narrowed = False   # once, as a refused VACUUM of an old file
                before = Path(self.path).stat().st_size
                try:
                    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
                    conn.execute("VACUUM")
                except sqlite3.DatabaseError as exc:
                    if not is_unwritable(exc):
                        raise
                    _VACUUM_REFUSED.add(key)
                    log.warning("cannot compact %s (%s): it keeps its free pages for reuse",
                                self.path, exc)
                give_back(conn)
                return max(0, before - Path(self.path).stat().st_size)
            return give_back(conn)

    def narrow(self) -> tuple[list[str], "np.ndarray"]:
        """Rewrite the float32 rows of a file written before float16 as float16,
        once (the next ``compact`` packs the pages they leave half empty); returns
        the ids rewritten and their vectors as now stored, for the copy in memory.

        Here, not only when chunks are embedded again: an index made last week
        would otherwise keep 1.5 KB a chunk more until every file changed, and
        converting is a read and a write of the file (~1 s for scikit-learn's
        13k chunks) against minutes of embedding for ``--rebuild``.  Finding
        none to rewrite is one scan of row lengths (SQLite reads a BLOB's length
        from its row header): ~4 ms for 14k rows."""
        import numpy as np

        if self.read_only or not self.dim or str(self.path) == ":memory:":
            return [], np.zeros((0, self.dim), dtype=np.float32)
        wide = 4 * self.dim
        with self._lock:
            got = self._conn.execute("SELECT id, v FROM vec WHERE length(v) = ?",
                                     (wide,)).fetchall()
            if not got:
                return [], np.zeros((0, self.dim), dtype=np.float32)
            vecs = as_stored(self._matrix([r[1] for r in got]))
            narrow = vecs.astype(STORED)
            with _transaction(self._conn):
                self._conn.executemany("UPDATE vec SET v = ? WHERE id = ?",
                                       [(narrow[k].tobytes(), r[0]) for k, r in enumerate(got)])
            self._narrowed = True
        log.info("rewrote %d float32 vectors of %s as float16", len(got), self.path)
        return [r[0] for r in got], vecs

    def delete(self, column: str, values: Sequence[str]) -> None:
        """Remove the rows whose ``column`` is one of ``values``; by path (no index)
        each batch of 500 is one scan of the table, not one a value."""
        assert column in ("id", "path")
        values = list(values)
        with self._lock, _transaction(self._conn):
            for i in range(0, len(values), 500):
                part = values[i:i + 500]
                self._conn.execute(f"DELETE FROM vec WHERE {column} IN "
                                   f"({','.join('?' * len(part))})", part)


def _connect_read_only(path: Path, *, immutable: bool = False) -> sqlite3.Connection:
    """Read without writing: ``immutable`` (not even SQLite's side files, and not
    the WAL) on read-only media or when asked; else ``mode=ro``, which reads the WAL."""
    mode = "immutable=1" if immutable or on_read_only_fs(path) else "mode=ro"
    return sqlite3.connect(f"file:{path}?{mode}", uri=True, timeout=30,
                           check_same_thread=False, isolation_level=None)


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error (the connection
    autocommits each statement otherwise)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: Any, *_: Any) -> None:
        self.conn.execute("ROLLBACK" if kind is not None else "COMMIT")


def _check_length(path: Path) -> None:
    """A file shorter than its own header says was truncated (a crash of the
    disk, a copy cut short): SQLite would read the missing pages as zeros.  Only
    checkable without a write-ahead log pending (a clean close leaves none)."""
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        return
    size = path.stat().st_size
    if size == 0:
        raise Damaged("the file is empty")
    with path.open("rb") as f:
        head = f.read(100)
    if len(head) < 100 or not head.startswith(b"SQLite format 3\0"):
        raise Damaged("not an SQLite file")
    page = int.from_bytes(head[16:18], "big")
    page = 65536 if page == 1 else page
    pages = int.from_bytes(head[28:32], "big")
    valid = head[24:28] == head[92:96]   # the header's page count is current
    if valid and pages and size < pages * page:
        raise Damaged(f"truncated: {size} bytes of {pages * page}")


def _set_aside(path: Path) -> None:
    """Move a damaged file (and its side files) out of the way, keeping it for a
    post-mortem as ``<name>.damaged``: never read as vectors again."""
    for suffix in ("-wal", "-shm", "-journal"):
        side = path.with_name(path.name + suffix)
        side.unlink(missing_ok=True)
    if path.exists():
        os.replace(path, path.with_name(path.name + ".damaged"))


def as_stored(vectors: Any) -> "np.ndarray":
    """``vectors`` as the file keeps them and gives them back: float32 holding the
    float16 rounding of each row, so the copy in memory scores exactly what a
    restart will read.  Idempotent: a row read back is stored again unchanged.

    A row far from unit length (outside 0.5-2: not the embedder's, which are
    unit) is first scaled to unit length: cosine, all anything asks of a stored
    vector, does not change, and a unit vector's values (at most 1) neither
    overflow float16 (65504) nor sink into its subnormals, where it keeps fewer
    than its 11 bits."""
    import numpy as np

    vecs = np.asarray(vectors, dtype=np.float32)
    if vecs.ndim == 2 and len(vecs):
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        far = (norms < 0.5) | (norms > 2.0)
        if far.any():
            vecs = np.where(far, vecs / np.where(norms == 0, 1.0, norms), vecs)
    return np.ascontiguousarray(vecs.astype(STORED).astype(np.float32))


class Vectors:
    """The vector file, an exact copy of it in memory, and (only above
    ``EXACT_MAX``) chroma's HNSW index as a mirror.

    Semantic search scores *every* vector (a matrix product: 15k x 384 floats is
    23 MB and a few ms a query) because chroma's approximate HNSW graph misses
    neighbours, freshly added ones most of all (a distinctive new function at
    cosine 0.50 was not in the top 50 while HNSW's best was 0.23).  The matrix is
    read from the file once, on the first query, and then follows every upsert
    and delete made through this object, so a chunk is findable the moment it is
    written.  Above ``EXACT_MAX`` vectors (~300 MB) the HNSW index answers instead.

    ``path`` is chroma's directory (the HNSW mirror, or an old index's store to
    convert); the vector file is ``file``, by default beside it.
    """

    COLLECTION = "chunks"
    EXACT_MAX = 200_000

    def __init__(self, path: Path, file: Path | None = None) -> None:
        self.path = path
        self.file = file if file is not None else path.parent / VECTORS_FILE
        self._store: VectorFile | None = None
        self._store_lock = threading.RLock()
        #: set by ``close``: like a closed catalog, a closed store never reopens its
        #: file by path (mid-swap that would be the old file, or a new empty one)
        self._closed = False
        self._client: Any = None
        self._col: Any = None
        self._mirrored = False   # chroma holds exactly what the file holds
        self._lock = threading.Lock()
        self._exact = _ExactIndex()
        #: a private copy of chroma's store opened when ``path`` cannot be opened
        #: for writing (full disk, read-only directory): chroma cannot open read-only
        self._copy: Path | None = None

    # -- the file ------------------------------------------------------------------------

    def exists(self) -> bool:
        """Some vectors were ever stored (in the file, or in an old chroma store)."""
        return self.file.exists() or self._legacy()

    def _legacy(self) -> bool:
        return (self.path / "chroma.sqlite3").exists()

    @property
    def read_only(self) -> bool:
        """Serving a store that cannot be written: the engine refuses writes."""
        store = self._store
        return self._copy is not None or (store is not None and store.read_only)

    def _file(self, *, repair: bool = False) -> VectorFile:
        store = self._store
        if store is not None:
            return store
        if self._closed:
            raise EngineError("busy", BEING_REPLACED)
        with self._store_lock:
            if self._store is None:
                self._store = self._open_file(repair=repair)
            return self._store

    def _open_file(self, *, repair: bool) -> VectorFile:
        if not self.file.exists() and self._legacy():
            return self._convert_legacy()
        try:
            return VectorFile.open(self.file)
        except Damaged as exc:
            return self._damaged(exc, repair=repair)

    def _damaged(self, exc: Damaged, *, repair: bool) -> VectorFile:
        """A damaged file is never read as vectors.  A search says so; an index run
        (``repair``) sets it aside and starts an empty one, and its reconcile step
        embeds again every chunk that lost its vector."""
        if not repair:
            raise EngineError("index_corrupt",
                              f"the vector file {self.file} is damaged ({exc}); the next "
                              "`ragexctl index` embeds again what it lost (keyword, regex "
                              "and symbol search still work)")
        log.warning("the vector file %s is damaged (%s): setting it aside and embedding "
                    "its chunks again", self.file, exc)
        _set_aside(self.file)
        return VectorFile.open(self.file)

    def _drop_file(self) -> None:
        with self._store_lock:
            store, self._store = self._store, None
        if store is not None:
            store.close()

    def _convert_legacy(self) -> VectorFile:
        """Copy an old index's chroma store into the vector file, once, then remove
        chroma's files (below EXACT_MAX nothing reads them again).  Written to a
        temporary name and renamed: a conversion killed half-way starts over."""
        log.warning("converting the vectors of %s from chroma to %s (once; the index "
                    "keeps every vector)", self.path, self.file.name)
        col = self.collection()
        writable = not self.read_only and writable_dir(self.file.parent)
        tmp = self.file.with_name(self.file.name + ".converting")
        if writable:
            _set_aside(tmp)
            tmp.with_name(tmp.name + ".damaged").unlink(missing_ok=True)
        store = VectorFile.open(tmp if writable else ":memory:")
        offset, page = 0, 5000
        while True:
            got = col.get(include=["embeddings", "metadatas"], limit=page, offset=offset)
            if len(got["ids"]):
                store.put(got["ids"], got["embeddings"],
                          got.get("metadatas") or [{}] * len(got["ids"]))
            if len(got["ids"]) < page:
                break
            offset += page
        total = store.count()
        if not writable:
            store.read_only = True
            self._mirrored = True
            return store
        store.close()
        os.replace(tmp, self.file)
        if total > self.EXACT_MAX:
            self._mirrored = True           # chroma stays, as the HNSW mirror
        else:
            self._close_chroma()
            shutil.rmtree(self.path, ignore_errors=True)
        log.warning("converted %d vectors to %s", total, self.file)
        return VectorFile.open(self.file)

    # -- chroma: HNSW above EXACT_MAX, and old stores ----------------------------------

    def collection(self) -> Any:
        if self._col is not None:
            return self._col
        with self._lock:
            if self._col is None:
                try:
                    client, col = self._open(self.path)
                except EngineError:
                    raise
                except Exception as exc:
                    _forget_broken_system(self.path)
                    if is_unwritable(exc):
                        client, col = self._open_copy(exc)
                    else:
                        raise EngineError("index_corrupt",
                                          f"the vector store {self.path} cannot be read ({exc}); "
                                          f"{REBUILD_HINT}") from exc
                self._client, self._col = client, col
        return self._col

    def _open(self, path: Path) -> tuple[Any, Any]:
        with HEAVY_IMPORTS:
            import chromadb
            from chromadb.config import Settings

        path.mkdir(parents=True, exist_ok=True)
        client = chromadb.PersistentClient(
            path=str(path), settings=Settings(anonymized_telemetry=False, allow_reset=True))
        col = client.get_or_create_collection(
            self.COLLECTION, configuration={"hnsw": {"space": "cosine"}},
            embedding_function=None)
        col.count()
        return client, col

    def _open_copy(self, why: Exception) -> tuple[Any, Any]:
        """Open a private copy of a store that cannot be opened in place (chroma
        writes on open), so an old index on a full disk or a read-only directory
        can still be converted in memory; raise index_unwritable when even that fails."""
        import tempfile

        copy: Path | None = None
        try:
            if not (self.path / "chroma.sqlite3").exists():
                raise FileNotFoundError("no vector store yet")
            copy = Path(tempfile.mkdtemp(prefix="ragex-vectors-"))
            shutil.copytree(self.path, copy / "chroma")
            client, col = self._open(copy / "chroma")
        except Exception as exc:  # noqa: BLE001 - the original error is the one to report
            if copy is not None:
                _forget_broken_system(copy / "chroma")
                shutil.rmtree(copy, ignore_errors=True)
            raise EngineError("index_unwritable",
                              f"cannot open the vector store {self.path}: {why}") from exc
        log.warning("cannot open %s for writing (%s): searching a read-only copy", self.path, why)
        self._copy = copy
        return client, col

    def _hnsw(self) -> Any:
        """chroma's collection, holding exactly the file's vectors (synced once
        per process: chunk ids name their content, so equal ids are equal vectors)."""
        col = self.collection()
        if self._mirrored:
            return col
        with self._lock:
            if not self._mirrored:
                store = self._file()
                ours = store.ids()
                theirs: set[str] = set()
                offset, page = 0, 5000
                while True:
                    got = col.get(include=[], limit=page, offset=offset)["ids"]
                    theirs.update(got)
                    if len(got) < page:
                        break
                    offset += page
                extra = sorted(theirs - ours)
                for i in range(0, len(extra), 2000):
                    col.delete(ids=extra[i:i + 2000])
                missing = sorted(ours - theirs)
                for i in range(0, len(missing), 2000):
                    ids, mat = store.get(missing[i:i + 2000])
                    metas = [{"path": p, "language": lang} for p, lang in
                             store.meta_of(ids)]
                    col.upsert(ids=ids, embeddings=mat, metadatas=metas)
                self._mirrored = True
        return col

    def _close_chroma(self) -> None:
        with self._lock:
            client, self._client, self._col = self._client, None, None
            self._mirrored = False
        if client is not None:
            try:
                client.close()  # the last client of a path stops chroma's System for it
            except Exception:  # pragma: no cover - best effort
                pass
            # and the next client must get a fresh one, never a system whose write
            # failed (after a full disk its next upsert could block forever)
            _forget_broken_system(self.path)
        copy, self._copy = self._copy, None
        if copy is not None:
            shutil.rmtree(copy, ignore_errors=True)

    def close(self) -> None:
        self._closed = True
        self._drop_file()
        self._close_chroma()

    # -- the Vectors API -------------------------------------------------------------------

    def count(self) -> int:
        exact = self._exact_index()
        if exact is not None:
            return exact.count()
        return self._file().count()

    def _exact_index(self, *, repair: bool = False) -> "_ExactIndex | None":
        """The in-memory copy, read from the file on first use; None above EXACT_MAX."""
        ex = self._exact
        if ex.loaded:
            return ex if ex.count() <= self.EXACT_MAX else None
        with ex.lock:
            if not ex.loaded:
                store = self._file(repair=repair)
                if store.count() > self.EXACT_MAX:
                    return None
                try:
                    ids, paths, langs, mat = store.rows()
                except Damaged as exc:
                    self._drop_file()
                    store = self._damaged(exc, repair=repair)
                    with self._store_lock:
                        self._store = store
                    ids, paths, langs, mat = store.rows()
                if ids:
                    ex.put(ids, mat, [{"path": p, "language": lang}
                                      for p, lang in zip(paths, langs)])
                ex.loaded = True
        return ex

    def all_ids(self) -> set[str]:
        """Every stored id.  The indexer's reconcile calls this first: a damaged
        file is set aside here, and the chunks it held are embedded again."""
        exact = self._exact_index(repair=True)
        if exact is not None:
            with exact.lock:
                return set(exact.row)
        return self._file().ids()

    def export_vectors(self, ids: Sequence[str]) -> tuple[list[str], "np.ndarray"]:
        """The stored vectors of ``ids`` (those that have one), as read from the
        store, in ``ids``' order: what a snapshot carries, whatever the store keeps
        on disk."""
        import numpy as np

        got, mat = self._file().get(list(ids))
        if not got:
            return [], np.zeros((0, 0), dtype=np.float32)
        at = {cid: k for k, cid in enumerate(got)}
        have = [cid for cid in dict.fromkeys(ids) if cid in at]
        return have, np.ascontiguousarray(mat[[at[c] for c in have]], dtype=np.float32)

    def compact(self) -> int:
        """After an index run: float32 rows rewritten as float16 (``VectorFile.narrow``),
        the vector file's free pages and its write-ahead log back to the file
        system (``VectorFile.compact``).  A store not opened
        by this process has nothing of ours to give back."""
        store = self._store
        if store is None or self.read_only:
            return 0
        ids, vecs = store.narrow()
        if ids:
            with self._exact.lock:   # what a restart would read, and it is loaded
                if self._exact.loaded:
                    self._exact.put(ids, vecs, [{}] * len(ids))
        return store.compact()

    def delete_paths(self, paths: Sequence[str]) -> None:
        paths = list(paths)
        with self._exact.lock:   # never between a load's read and its ``loaded``
            self._file().delete("path", paths)
            if self._exact.loaded:
                self._exact.drop_paths(paths)
        if self._mirrored:
            col = self.collection()
            for i in range(0, len(paths), 200):
                part = paths[i:i + 200]
                col.delete(where={"path": {"$in": part}} if len(part) > 1
                           else {"path": part[0]})

    def delete_ids(self, ids: Sequence[str]) -> None:
        ids = list(ids)
        with self._exact.lock:
            self._file().delete("id", ids)
            if self._exact.loaded:
                self._exact.drop_ids(ids)
        if self._mirrored:
            col = self.collection()
            for i in range(0, len(ids), 2000):
                col.delete(ids=ids[i:i + 2000])

    def upsert(self, ids: Sequence[str], vectors: "np.ndarray",
               metadatas: Sequence[dict[str, Any]]) -> None:
        if not len(ids):
            return
        vectors = as_stored(vectors)   # the memory copy and the mirror match the file
        with self._exact.lock:   # a load reading the file meanwhile would miss these
            self._file().put(ids, vectors, metadatas)
            if self._exact.loaded:
                self._exact.put(ids, vectors, metadatas)
        if self._mirrored:
            col = self.collection()
            step = 2000
            for i in range(0, len(ids), step):
                col.upsert(ids=list(ids[i:i + step]), embeddings=vectors[i:i + step],
                           metadatas=list(metadatas[i:i + step]))

    def vector_of(self, chunk_id: str) -> "np.ndarray | None":
        """The stored vector of one chunk (None: it has none yet), for ``similar``:
        neighbours of a chunk come from what was stored, never a re-embedding."""
        import numpy as np

        exact = self._exact_index()
        if exact is not None:
            return exact.vector_of(chunk_id)
        got, mat = self._file().get([chunk_id])
        return np.array(mat[0], dtype=np.float32) if got else None

    def similarities(self, vector: "np.ndarray", ids: Sequence[str]) -> dict[str, float]:
        """Cosine similarity of ``vector`` to the stored vectors of ``ids``."""
        import numpy as np

        if not ids:
            return {}
        exact = self._exact_index()
        if exact is not None:
            return exact.similarities(vector, ids)
        got, mat = self._file().get(list(ids))
        if not got:
            return {}
        mat = mat.astype(np.float32)
        norms = np.linalg.norm(mat, axis=1) * (float(np.linalg.norm(vector)) or 1.0)
        sims = dots(mat, np.asarray(vector, dtype=np.float32)) / np.where(norms == 0, 1.0, norms)
        return {i: float(s) for i, s in zip(got, sims)}

    def query(self, vector: "np.ndarray", n: int, languages: Sequence[str] = ()
              ) -> list[tuple[str, float]]:
        """(id, cosine similarity), best first: exact up to EXACT_MAX vectors."""
        exact = self._exact_index()
        if exact is not None:
            return exact.query(vector, n, languages)
        col = self._hnsw()
        where: dict[str, Any] | None = None
        if languages:
            where = ({"language": {"$in": list(languages)}} if len(languages) > 1
                     else {"language": languages[0]})
        res = col.query(query_embeddings=[vector], n_results=max(1, n), where=where,
                        include=["distances"])
        ids = res["ids"][0] if res["ids"] else []
        dists = res["distances"][0] if res.get("distances") else [0.0] * len(ids)
        return [(i, 1.0 - float(d)) for i, d in zip(ids, dists)]


class _ExactIndex:
    """Unit vectors in a growable float32 matrix, with their ids, paths and languages.

    Rows are never moved while they live: a deleted row is marked dead and its id
    forgotten; the matrix is compacted when the dead outnumber the living.  All
    access holds ``lock`` (a query is a few ms; writes come in batches).
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.loaded = False
        self.mat: Any = None      # numpy, imported on first use (opening an engine stays cheap)
        self.alive: Any = None
        self.ids: list[str] = []
        self.paths: list[str] = []
        self.langs: list[str] = []
        self.row: dict[str, int] = {}
        self.n = 0
        self.codes: Any = None    # numpy int32 per row: the language's code in lang_code
        self.lang_code: dict[str, int] = {}

    def count(self) -> int:
        return len(self.row)

    def put(self, ids: Sequence[str], vectors: Any, metadatas: Sequence[dict[str, Any]]
            ) -> None:
        import numpy as np

        vecs = np.asarray(vectors, dtype=np.float32)
        if vecs.ndim != 2 or len(vecs) != len(ids):
            return
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        vecs = vecs / np.where(norms == 0, 1.0, norms)
        with self.lock:
            if self.mat is None or self.mat.shape[1] != vecs.shape[1]:
                self.mat = np.zeros((0, vecs.shape[1]), dtype=np.float32)
                self.alive = np.zeros(0, dtype=bool)
                self.codes = np.zeros(0, dtype=np.int32)
                self.n, self.ids, self.paths, self.langs, self.row = 0, [], [], [], {}
            need = self.n + sum(1 for i in ids if i not in self.row)
            if need > len(self.mat):
                cap = max(need, 2 * len(self.mat), 1024)
                mat = np.zeros((cap, self.mat.shape[1]), dtype=np.float32)
                mat[:self.n] = self.mat[:self.n]
                alive = np.zeros(cap, dtype=bool)
                alive[:self.n] = self.alive[:self.n]
                codes = np.zeros(cap, dtype=np.int32)
                codes[:self.n] = self.codes[:self.n]
                self.mat, self.alive, self.codes = mat, alive, codes
            for k, cid in enumerate(ids):
                meta = metadatas[k] if k < len(metadatas) and metadatas[k] else {}
                r = self.row.get(cid)
                if r is None:
                    r = self.n
                    self.n += 1
                    self.row[cid] = r
                    self.ids.append(cid)
                    self.paths.append(str(meta.get("path", "")))
                    self.langs.append(str(meta.get("language", "")))
                else:
                    self.paths[r] = str(meta.get("path", self.paths[r]))
                    self.langs[r] = str(meta.get("language", self.langs[r]))
                self.mat[r] = vecs[k]
                self.alive[r] = True
                self.codes[r] = self.lang_code.setdefault(self.langs[r], len(self.lang_code))

    def drop_ids(self, ids: Iterable[str]) -> None:
        with self.lock:
            for cid in ids:
                r = self.row.pop(cid, None)
                if r is not None:
                    self.alive[r] = False
            self._maybe_compact()

    def drop_paths(self, paths: Iterable[str]) -> None:
        gone = set(paths)
        with self.lock:
            for r in range(self.n):
                if self.alive[r] and self.paths[r] in gone:
                    self.alive[r] = False
                    self.row.pop(self.ids[r], None)
            self._maybe_compact()

    def _maybe_compact(self) -> None:
        import numpy as np

        dead = self.n - len(self.row)
        if dead <= max(1024, len(self.row)):
            return
        keep = np.flatnonzero(self.alive[:self.n])
        self.mat = np.ascontiguousarray(self.mat[keep])
        self.alive = np.ones(len(keep), dtype=bool)
        self.codes = np.ascontiguousarray(self.codes[keep])
        self.ids = [self.ids[r] for r in keep]
        self.paths = [self.paths[r] for r in keep]
        self.langs = [self.langs[r] for r in keep]
        self.row = {cid: r for r, cid in enumerate(self.ids)}
        self.n = len(keep)

    def query(self, vector: Any, n: int, languages: Sequence[str] = ()
              ) -> list[tuple[str, float]]:
        import numpy as np

        v = np.asarray(vector, dtype=np.float32)
        v = v / (float(np.linalg.norm(v)) or 1.0)
        with self.lock:
            if not self.row or n <= 0:
                return []
            sims = dots(self.mat[:self.n], v)
            if languages or len(self.row) < self.n:   # filter: dead rows, other languages
                ok = self.alive[:self.n].copy()
                if languages:
                    ok &= np.isin(self.codes[:self.n],
                                  [self.lang_code.get(x, -1) for x in languages])
                sims[~ok] = -np.inf
                k = min(n, int(ok.sum()))
            else:
                k = min(n, self.n)
            if k <= 0:
                return []
            top = np.argpartition(-sims, k - 1)[:k] if k < self.n else np.arange(self.n)
            top = top[np.argsort(-sims[top], kind="stable")][:k]
            return [(self.ids[r], float(sims[r])) for r in top]

    def vector_of(self, chunk_id: str) -> Any:
        with self.lock:
            r = self.row.get(chunk_id)
            return None if r is None else self.mat[r].copy()

    def similarities(self, vector: Any, ids: Sequence[str]) -> dict[str, float]:
        import numpy as np

        v = np.asarray(vector, dtype=np.float32)
        v = v / (float(np.linalg.norm(v)) or 1.0)
        with self.lock:
            rows = [(cid, self.row[cid]) for cid in ids if cid in self.row]
            if not rows:
                return {}
            sims = dots(self.mat[[r for _, r in rows]], v)
            return {cid: float(s) for (cid, _), s in zip(rows, sims)}


def dots(mat: "np.ndarray", v: "np.ndarray") -> "np.ndarray":
    """Each row of ``mat`` dotted with ``v``: the exact scan of every query.

    ``einsum``'s own loop, not ``mat @ v``: from about 10k rows the product goes
    to OpenBLAS's threads (one a core, spinning), which cost more than they save,
    most of all on a busy machine.  Measured on 2 cores at load 5-12, median ms:
    13,126 x 384 einsum 1.1, OpenBLAS 9-21 (2.1 held to one thread); 50,000 rows
    8 against 16; 4,293 rows 0.3 against 0.07 (where both are nothing beside the
    query's encoding).  On a quieter machine (load 4.5) OpenBLAS won 0.9 ms against
    1.4 for 13,126 rows: half a millisecond at worst, against up to twenty, and no
    threads spinning beside the encoder.  The same cosines within 3e-7
    (bench/bench_warm.py measures both)."""
    import numpy as np

    return np.einsum("ij,j->i", mat, v)


def _forget_broken_system(path: Path) -> None:
    """chroma caches one System per path, even one whose start failed; drop it so
    a rebuild in this process opens the new store instead of the broken one."""
    try:
        from chromadb.api.shared_system_client import SharedSystemClient as S

        for key in (str(path), os.path.realpath(path)):
            if S._identifier_to_refcount.get(key, 0) <= 0:
                system = S._identifier_to_system.pop(key, None)
                if system is not None:
                    try:
                        system.stop()
                    except Exception:
                        pass
    except Exception:  # pragma: no cover - chroma internals moved
        log.debug("could not drop chroma's cached system for %s", path, exc_info=True)
