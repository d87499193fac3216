"""The two on-disk stores of one project's index.

* ``catalog.sqlite`` (WAL) is the source of truth: the file manifest, every
  chunk's location and metadata, an FTS5 lexical index and a format version.
  Search only ever returns chunk ids the catalog knows.
* ``chroma/`` holds one vector per chunk id (cosine space, our own vectors, no
  documents: snippets are read back from the files so they are never stale
  copies).  It may briefly hold vectors the catalog does not know (a run killed
  between the two writes); ``Indexer`` reconciles that at the start of each run.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from .types import EngineError

if TYPE_CHECKING:
    import numpy as np

    from .chunking import Chunk

log = logging.getLogger(__name__)

FORMAT_VERSION = "1"
REBUILD_HINT = "run `ragexctl index --rebuild` to rebuild it"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL, language TEXT NOT NULL, indexed_at REAL NOT NULL,
    chunks INTEGER NOT NULL DEFAULT 0, note TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS chunks (
    rid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, path TEXT NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
    parent TEXT NOT NULL, signature TEXT NOT NULL, language TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_path ON chunks(path);
CREATE INDEX IF NOT EXISTS chunks_name ON chunks(name);
CREATE INDEX IF NOT EXISTS chunks_name_nocase ON chunks(name COLLATE NOCASE);
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(
    names, doc, body, tokenize = "porter unicode61 tokenchars '_'");
"""

CHUNK_COLUMNS = 'id, path, start, "end", kind, name, parent, signature, language'


@dataclass(frozen=True)
class ChunkRow:
    id: str
    path: str
    start: int
    end: int
    kind: str
    name: str
    parent: str
    signature: str
    language: str


@dataclass(frozen=True)
class FileRow:
    path: str
    size: int
    mtime_ns: int
    sha256: str
    language: str
    chunks: int = 0
    note: str = ""


def _on_read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _writable_dir(path: Path) -> bool:
    return os.access(path, os.W_OK) and not _on_read_only_fs(path)


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


class Catalog:
    """SQLite catalog, one connection per thread (WAL lets readers run beside
    the single indexing writer)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self.generation = 0  # bumped on every write: invalidates read caches
        self.read_only = False
        if path.exists() and _on_read_only_fs(path.parent):
            # Read-only media: SQLite cannot create its WAL side files, but an
            # immutable connection still reads the index, so searches keep working.
            self.read_only = True
        try:
            self._check_format()
        except sqlite3.DatabaseError as exc:
            self.close()
            if not (path.exists() and (is_unwritable(exc) or not _writable_dir(path.parent))):
                raise EngineError("index_corrupt",
                                  f"the index catalog {path} cannot be read ({exc}); "
                                  f"{REBUILD_HINT}") from exc
            # A full disk or a read-only directory: opening in WAL mode needs to
            # write, reading does not.  Serve the index read-only (searches work,
            # INDEX says index_unwritable) rather than refuse it or call it corrupt.
            log.warning("cannot open %s for writing (%s): serving it read-only", path, exc)
            self.read_only = True
            try:
                self._check_format()
            except sqlite3.DatabaseError as exc2:
                self.close()
                raise EngineError("index_unwritable",
                                  f"cannot open the index catalog {path}: {exc}") from exc2

    def _check_format(self) -> None:
        """Create the schema (when writable) and check the format version."""
        conn = self.conn()
        if not self.read_only:
            conn.executescript(_SCHEMA)
        row = conn.execute("SELECT value FROM meta WHERE key='format'").fetchone()
        if row is None and self.read_only:
            raise sqlite3.DatabaseError("no format row")
        if row is None:
            with conn:
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('format', ?)",
                             (FORMAT_VERSION,))
        elif row[0] != FORMAT_VERSION:
            raise EngineError("index_corrupt",
                              f"the index at {self.path.parent} has format {row[0]}, this ragex "
                              f"reads format {FORMAT_VERSION}; {REBUILD_HINT}")

    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None and self.read_only:
            conn = sqlite3.connect(f"file:{self.path}?immutable=1", uri=True,
                                   check_same_thread=False, isolation_level=None)
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False,
                                   isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                try:
                    conn.close()
                except Exception:  # pragma: no cover - closing a broken handle
                    pass
            self._all.clear()
        self._local = threading.local()

    # -- meta -----------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.conn().execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str | None) -> None:
        conn = self.conn()
        with conn:
            if value is None:
                conn.execute("DELETE FROM meta WHERE key=?", (key,))
            else:
                conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- manifest -------------------------------------------------------------------

    def files(self) -> dict[str, FileRow]:
        rows = self.conn().execute(
            "SELECT path, size, mtime_ns, sha256, language, chunks, note FROM files")
        return {r[0]: FileRow(*r) for r in rows}

    def file(self, path: str) -> FileRow | None:
        r = self.conn().execute(
            "SELECT path, size, mtime_ns, sha256, language, chunks, note FROM files "
            "WHERE path=?", (path,)).fetchone()
        return FileRow(*r) if r else None

    def stats(self) -> tuple[int, int]:
        conn = self.conn()
        files = conn.execute("SELECT count(*) FROM files").fetchone()[0]
        chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        return files, chunks

    def touch_files(self, rows: Sequence[FileRow]) -> None:
        """Record new size/mtime for files whose content hash did not change."""
        conn = self.conn()
        with conn:
            conn.executemany("UPDATE files SET size=?, mtime_ns=? WHERE path=?",
                             [(r.size, r.mtime_ns, r.path) for r in rows])

    def replace_files(self, rows: Sequence[FileRow], chunks: Sequence["Chunk"],
                      fts_rows: Sequence[tuple[str, str, str]],
                      removed: Iterable[str] = ()) -> None:
        """In ONE transaction: forget everything about the files in ``rows`` and
        ``removed``, then record ``rows`` with their ``chunks``.  Either all of a
        batch is visible or none of it is, whatever kills the process."""
        now = time.time()
        conn = self.conn()
        paths = [r.path for r in rows] + list(removed)
        with conn:
            self._forget(conn, paths)
            for c, fts in zip(chunks, fts_rows):
                cur = conn.execute(
                    f"INSERT OR REPLACE INTO chunks ({CHUNK_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
                    (c.id, c.path, c.start, c.end, c.kind, c.name, c.parent, c.signature,
                     c.language))
                conn.execute("INSERT INTO fts (rowid, names, doc, body) VALUES (?,?,?,?)",
                             (cur.lastrowid, *fts))
            conn.executemany(
                "INSERT OR REPLACE INTO files (path, size, mtime_ns, sha256, language, "
                "indexed_at, chunks, note) VALUES (?,?,?,?,?,?,?,?)",
                [(r.path, r.size, r.mtime_ns, r.sha256, r.language, now, r.chunks, r.note)
                 for r in rows])
        self.generation += 1

    def forget_files(self, paths: Sequence[str]) -> None:
        conn = self.conn()
        with conn:
            self._forget(conn, paths)
        self.generation += 1

    @staticmethod
    def _forget(conn: sqlite3.Connection, paths: Sequence[str]) -> None:
        for i in range(0, len(paths), 500):
            part = list(paths[i:i + 500])
            marks = ",".join("?" * len(part))
            conn.execute(f"DELETE FROM fts WHERE rowid IN (SELECT rid FROM chunks "
                         f"WHERE path IN ({marks}))", part)
            conn.execute(f"DELETE FROM chunks WHERE path IN ({marks})", part)
            conn.execute(f"DELETE FROM files WHERE path IN ({marks})", part)

    # -- chunks ---------------------------------------------------------------------

    def chunk_ids(self) -> set[str]:
        return {r[0] for r in self.conn().execute("SELECT id FROM chunks")}

    def paths_of_ids(self, ids: Iterable[str]) -> set[str]:
        out: set[str] = set()
        ids = list(ids)
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            marks = ",".join("?" * len(part))
            out.update(r[0] for r in self.conn().execute(
                f"SELECT DISTINCT path FROM chunks WHERE id IN ({marks})", part))
        return out

    def chunks_by_id(self, ids: Sequence[str]) -> dict[str, ChunkRow]:
        out: dict[str, ChunkRow] = {}
        for i in range(0, len(ids), 500):
            part = list(ids[i:i + 500])
            marks = ",".join("?" * len(part))
            for r in self.conn().execute(
                    f"SELECT {CHUNK_COLUMNS} FROM chunks WHERE id IN ({marks})", part):
                out[r[0]] = ChunkRow(*r)
        return out

    def chunks_of(self, path: str) -> list[ChunkRow]:
        return [ChunkRow(*r) for r in self.conn().execute(
            f"SELECT {CHUNK_COLUMNS} FROM chunks WHERE path=? ORDER BY start", (path,))]

    def query_chunks(self, where: str, params: Sequence[Any], limit: int) -> list[ChunkRow]:
        return [ChunkRow(*r) for r in self.conn().execute(
            f"SELECT {CHUNK_COLUMNS} FROM chunks WHERE {where} LIMIT ?", (*params, limit))]

    def names(self) -> list[str]:
        return [r[0] for r in self.conn().execute(
            "SELECT DISTINCT name FROM chunks WHERE name != ''")]

    def fts_search(self, match: str, limit: int, weights: tuple[float, float, float],
                   languages: Sequence[str] = ()) -> list[tuple[str, float]]:
        """(chunk id, bm25 score — higher is better) for an FTS5 MATCH expression."""
        sql = ("SELECT c.id, -bm25(fts, ?, ?, ?) AS s FROM fts JOIN chunks c ON c.rid = fts.rowid "
               "WHERE fts MATCH ?")
        params: list[Any] = [*weights, match]
        if languages:
            sql += f" AND c.language IN ({','.join('?' * len(languages))})"
            params.extend(languages)
        sql += " ORDER BY s DESC LIMIT ?"
        params.append(limit)
        return [(r[0], float(r[1])) for r in self.conn().execute(sql, params)]


class Vectors:
    """The chroma collection, opened lazily (importing chromadb costs ~0.8 s and
    regex/symbol searches never need it)."""

    COLLECTION = "chunks"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._client: Any = None
        self._col: Any = None
        self._lock = threading.Lock()
        #: a private copy served when ``path`` cannot be opened for writing (full
        #: disk, read-only directory): chroma cannot open a store read-only
        self._copy: Path | None = None

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

    @property
    def read_only(self) -> bool:
        """Serving a private copy: writes would be lost, so the engine refuses them."""
        return self._copy is not None

    def _open(self, path: Path) -> tuple[Any, Any]:
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
        writes on open), so search by meaning survives a full disk or a read-only
        index directory; raise index_unwritable when even that fails."""
        import shutil
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

    def close(self) -> None:
        with self._lock:
            client, self._client, self._col = self._client, None, None
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
            import shutil

            shutil.rmtree(copy, ignore_errors=True)

    def count(self) -> int:
        return int(self.collection().count())

    def all_ids(self) -> set[str]:
        col = self.collection()
        out: set[str] = set()
        offset, page = 0, 5000
        while True:
            got = col.get(include=[], limit=page, offset=offset)["ids"]
            out.update(got)
            if len(got) < page:
                return out
            offset += page

    def delete_paths(self, paths: Sequence[str]) -> None:
        col = self.collection()
        for i in range(0, len(paths), 200):
            part = list(paths[i:i + 200])
            col.delete(where={"path": {"$in": part}} if len(part) > 1 else {"path": part[0]})

    def delete_ids(self, ids: Sequence[str]) -> None:
        col = self.collection()
        ids = list(ids)
        for i in range(0, len(ids), 2000):
            col.delete(ids=ids[i:i + 2000])

    def upsert(self, ids: Sequence[str], vectors: "np.ndarray",
               metadatas: Sequence[dict[str, Any]]) -> None:
        if not ids:
            return
        col = self.collection()
        step = 2000
        for i in range(0, len(ids), step):
            col.upsert(ids=list(ids[i:i + step]), embeddings=vectors[i:i + step],
                       metadatas=list(metadatas[i:i + step]))

    def similarities(self, vector: "np.ndarray", ids: Sequence[str]) -> dict[str, float]:
        """Cosine similarity of ``vector`` to the stored vectors of ``ids``."""
        import numpy as np

        if not ids:
            return {}
        got = self.collection().get(ids=list(ids), include=["embeddings"])
        embs = got.get("embeddings")
        if embs is None or len(got["ids"]) == 0:
            return {}
        mat = np.asarray(embs, dtype=np.float32)
        norms = np.linalg.norm(mat, axis=1) * (float(np.linalg.norm(vector)) or 1.0)
        sims = mat @ np.asarray(vector, dtype=np.float32) / np.where(norms == 0, 1.0, norms)
        return {i: float(s) for i, s in zip(got["ids"], sims)}

    def query(self, vector: "np.ndarray", n: int, languages: Sequence[str] = ()
              ) -> list[tuple[str, float]]:
        """(id, cosine similarity), best first."""
        col = self.collection()
        where: dict[str, Any] | None = None
        if languages:
            where = ({"language": {"$in": list(languages)}} if len(languages) > 1
                     else {"language": languages[0]})
        res = col.query(query_embeddings=[vector], n_results=max(1, n), where=where,
                        include=["distances"])
        ids = res["ids"][0] if res["ids"] else []
        dists = res["distances"][0] if res.get("distances") else [0.0] * len(ids)
        return [(i, 1.0 - float(d)) for i, d in zip(ids, dists)]


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
