"""The two on-disk stores of one project's index.

* ``catalog.sqlite`` (WAL) is the source of truth: the file manifest, every
  chunk's location and metadata, an FTS5 lexical index and a format version.
  Search only ever returns chunk ids the catalog knows.
* ``chroma/`` holds one vector per chunk id (cosine space, our own vectors, no
  documents: snippets are read back from the files so they are never stale
  copies).  It may briefly hold vectors the catalog does not know (a run killed
  between the two writes); ``Indexer`` reconciles that at the start of each run.
* ``pending`` (in the catalog) lists the chunks whose vector is not stored yet,
  with the text to embed: a first index catalogues every file (symbols, FTS)
  before it embeds anything, and a killed run resumes from this table.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

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
    parent TEXT NOT NULL, signature TEXT NOT NULL, language TEXT NOT NULL,
    line INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS chunks_path ON chunks(path);
CREATE INDEX IF NOT EXISTS chunks_name ON chunks(name);
CREATE INDEX IF NOT EXISTS chunks_name_nocase ON chunks(name COLLATE NOCASE);
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(
    names, doc, body, tokenize = "porter unicode61 tokenchars '_'");
CREATE TABLE IF NOT EXISTS pending (
    rid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, priority INTEGER NOT NULL,
    text TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS pending_order ON pending(priority, rid);
"""
# An index written before ``pending`` existed simply has none: every chunk it
# catalogued has its vector, which is what an empty table says.

CHUNK_COLUMNS = 'id, path, start, "end", kind, name, parent, signature, language, line'


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
    line: int = 0       # the definition's own line (after decorators); 0 = ``start``

    @property
    def def_line(self) -> int:
        return self.line or self.start


@dataclass(frozen=True)
class PendingChunk:
    """A catalogued chunk still waiting for its vector, with what to embed."""

    id: str
    text: str
    path: str
    language: str
    kind: str


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
        self.chunk_columns = CHUNK_COLUMNS  # what SELECTs read (see _check_format)
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
            _add_line_column(conn)
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
        cols = {r[1] for r in conn.execute("PRAGMA table_info(chunks)")}
        if "line" not in cols:  # an older index served read-only: no definition lines
            self.chunk_columns = CHUNK_COLUMNS.replace(", line", ", 0 AS line")

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

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (the connections autocommit each statement, so
        ``with conn:`` alone would not group them).  IMMEDIATE takes the write
        lock up front: two writer threads (cataloguing, embedding) then wait
        for each other instead of failing to upgrade a read lock."""
        conn = self.conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def release_thread(self) -> None:
        """Close the calling thread's connection (a thread that ends must not
        leave its descriptors open until the catalog closes)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            return
        self._local.conn = None
        with self._all_lock:
            if conn in self._all:
                self._all.remove(conn)
        conn.close()

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
                      removed: Iterable[str] = (),
                      pending: Sequence[tuple[str, int, str]] = ()) -> None:
        """In ONE transaction: forget everything about the files in ``rows`` and
        ``removed``, then record ``rows`` with their ``chunks`` and the
        ``pending`` (chunk id, priority, text to embed) of those without a stored
        vector.  Either all of a batch is visible or none of it is, whatever
        kills the process."""
        now = time.time()
        paths = [r.path for r in rows] + list(removed)
        with self.transaction() as conn:
            self._forget(conn, paths)
            for c, fts in zip(chunks, fts_rows):
                cur = conn.execute(
                    f"INSERT OR REPLACE INTO chunks ({CHUNK_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (c.id, c.path, c.start, c.end, c.kind, c.name, c.parent, c.signature,
                     c.language, c.line))
                conn.execute("INSERT INTO fts (rowid, names, doc, body) VALUES (?,?,?,?)",
                             (cur.lastrowid, *fts))
            conn.executemany(
                "INSERT OR REPLACE INTO files (path, size, mtime_ns, sha256, language, "
                "indexed_at, chunks, note) VALUES (?,?,?,?,?,?,?,?)",
                [(r.path, r.size, r.mtime_ns, r.sha256, r.language, now, r.chunks, r.note)
                 for r in rows])
            conn.executemany("INSERT OR REPLACE INTO pending (id, priority, text) VALUES (?,?,?)",
                             pending)
        self.generation += 1

    def forget_files(self, paths: Sequence[str]) -> None:
        with self.transaction() as conn:
            self._forget(conn, paths)
        self.generation += 1

    @staticmethod
    def _forget(conn: sqlite3.Connection, paths: Sequence[str]) -> None:
        for i in range(0, len(paths), 500):
            part = list(paths[i:i + 500])
            marks = ",".join("?" * len(part))
            conn.execute(f"DELETE FROM fts WHERE rowid IN (SELECT rid FROM chunks "
                         f"WHERE path IN ({marks}))", part)
            conn.execute(f"DELETE FROM pending WHERE id IN (SELECT id FROM chunks "
                         f"WHERE path IN ({marks}))", part)
            conn.execute(f"DELETE FROM chunks WHERE path IN ({marks})", part)
            conn.execute(f"DELETE FROM files WHERE path IN ({marks})", part)

    # -- chunks ---------------------------------------------------------------------

    def chunk_ids(self) -> set[str]:
        return {r[0] for r in self.conn().execute("SELECT id FROM chunks")}

    # -- vectors still to compute -------------------------------------------------

    def pending_count(self) -> int:
        return int(self.conn().execute("SELECT count(*) FROM pending").fetchone()[0])

    def pending_files(self) -> int:
        """Files with at least one chunk still waiting for its vector."""
        return int(self.conn().execute(
            "SELECT count(DISTINCT c.path) FROM pending p JOIN chunks c ON c.id = p.id"
        ).fetchone()[0])

    def pending_ids(self) -> set[str]:
        return {r[0] for r in self.conn().execute("SELECT id FROM pending")}

    def next_pending(self, limit: int) -> list[PendingChunk]:
        """The next chunks to embed, most wanted first (lowest priority number,
        then the order they were catalogued in)."""
        return [PendingChunk(*r) for r in self.conn().execute(
            "SELECT p.id, p.text, c.path, c.language, c.kind FROM pending p "
            "JOIN chunks c ON c.id = p.id ORDER BY p.priority, p.rid LIMIT ?", (limit,))]

    def mark_embedded(self, ids: Sequence[str]) -> set[str]:
        """Record that ``ids`` have their vectors; returns those the catalog still
        had pending (the others were replaced meanwhile: their vectors are stale)."""
        done: set[str] = set()
        with self.transaction() as conn:
            for i in range(0, len(ids), 500):
                part = list(ids[i:i + 500])
                marks = ",".join("?" * len(part))
                done.update(r[0] for r in conn.execute(
                    f"SELECT id FROM pending WHERE id IN ({marks})", part))
                conn.execute(f"DELETE FROM pending WHERE id IN ({marks})", part)
        return done

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
                    f"SELECT {self.chunk_columns} FROM chunks WHERE id IN ({marks})", part):
                out[r[0]] = ChunkRow(*r)
        return out

    def chunks_of(self, path: str) -> list[ChunkRow]:
        return [ChunkRow(*r) for r in self.conn().execute(
            f"SELECT {self.chunk_columns} FROM chunks WHERE path=? ORDER BY start", (path,))]

    def query_chunks(self, where: str, params: Sequence[Any], limit: int) -> list[ChunkRow]:
        return [ChunkRow(*r) for r in self.conn().execute(
            f"SELECT {self.chunk_columns} FROM chunks WHERE {where} LIMIT ?", (*params, limit))]

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


#: One heavy import at a time.  chromadb and the model's stack (torch or
#: onnxruntime, numpy...) share modules; imported from two threads at once (the
#: worker loading its model while an index run opens the vector store) one of
#: them found numpy partially initialised and the index failed as corrupt.
HEAVY_IMPORTS = threading.RLock()


def _add_line_column(conn: sqlite3.Connection) -> None:
    """Indexes made before chunks knew their definition line gain the column (0:
    "use start") instead of needing a rebuild; re-indexed files fill it in."""
    cols = {r[1] for r in conn.execute("PRAGMA table_info(chunks)")}
    if "line" not in cols:
        with conn:
            conn.execute("ALTER TABLE chunks ADD COLUMN line INTEGER NOT NULL DEFAULT 0")
            # the next index run re-chunks every file (same chunk ids: no re-embedding)
            conn.execute("UPDATE files SET size = -1, sha256 = ''")


class Vectors:
    """The chroma collection, opened lazily (importing chromadb costs ~0.8 s and
    regex/symbol searches never need it), and an exact copy of its vectors in memory.

    Semantic search scores *every* vector (a matrix product: 15k x 384 floats is
    23 MB and a few ms a query) because chroma's approximate HNSW graph misses
    neighbours, freshly added ones most of all (a distinctive new function at
    cosine 0.50 was not in the top 50 while HNSW's best was 0.23).  The matrix is
    read from chroma once, on the first query, and then follows every upsert and
    delete made through this object, so a chunk is findable the moment it is
    written.  Above ``EXACT_MAX`` vectors (~300 MB) the HNSW index answers instead.
    """

    COLLECTION = "chunks"
    EXACT_MAX = 200_000

    def __init__(self, path: Path) -> None:
        self.path = path
        self._client: Any = None
        self._col: Any = None
        self._lock = threading.Lock()
        self._exact = _ExactIndex()
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
        exact = self._exact_index()
        if exact is not None:
            return exact.count()
        return int(self.collection().count())

    def _exact_index(self) -> "_ExactIndex | None":
        """The in-memory copy, read from chroma on first use; None above EXACT_MAX."""
        ex = self._exact
        if ex.loaded:
            return ex if ex.count() <= self.EXACT_MAX else None
        with ex.lock:
            if not ex.loaded:
                col = self.collection()
                if int(col.count()) > self.EXACT_MAX:
                    return None
                offset, page = 0, 5000
                while True:
                    got = col.get(include=["embeddings", "metadatas"], limit=page,
                                  offset=offset)
                    metas = got.get("metadatas") or [{}] * len(got["ids"])
                    embs = got.get("embeddings")
                    if len(got["ids"]):
                        ex.put(got["ids"], embs, metas)
                    if len(got["ids"]) < page:
                        break
                    offset += page
                ex.loaded = True
        return ex

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
        if self._exact.loaded:
            self._exact.drop_paths(paths)

    def delete_ids(self, ids: Sequence[str]) -> None:
        col = self.collection()
        ids = list(ids)
        for i in range(0, len(ids), 2000):
            col.delete(ids=ids[i:i + 2000])
        if self._exact.loaded:
            self._exact.drop_ids(ids)

    def upsert(self, ids: Sequence[str], vectors: "np.ndarray",
               metadatas: Sequence[dict[str, Any]]) -> None:
        if not ids:
            return
        col = self.collection()
        step = 2000
        for i in range(0, len(ids), step):
            col.upsert(ids=list(ids[i:i + step]), embeddings=vectors[i:i + step],
                       metadatas=list(metadatas[i:i + step]))
        if self._exact.loaded:
            self._exact.put(ids, vectors, metadatas)

    def similarities(self, vector: "np.ndarray", ids: Sequence[str]) -> dict[str, float]:
        """Cosine similarity of ``vector`` to the stored vectors of ``ids``."""
        import numpy as np

        if not ids:
            return {}
        exact = self._exact_index()
        if exact is not None:
            return exact.similarities(vector, ids)
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
        """(id, cosine similarity), best first: exact up to EXACT_MAX vectors."""
        exact = self._exact_index()
        if exact is not None:
            return exact.query(vector, n, languages)
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
            sims = self.mat[:self.n] @ v
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

    def similarities(self, vector: Any, ids: Sequence[str]) -> dict[str, float]:
        import numpy as np

        v = np.asarray(vector, dtype=np.float32)
        v = v / (float(np.linalg.norm(v)) or 1.0)
        with self.lock:
            rows = [(cid, self.row[cid]) for cid in ids if cid in self.row]
            if not rows:
                return {}
            sims = self.mat[[r for _, r in rows]] @ v
            return {cid: float(s) for (cid, _), s in zip(rows, sims)}


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
