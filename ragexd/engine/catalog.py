"""The SQLite catalog of one project's index: ``catalog.sqlite`` (WAL).

It is the source of truth, and its own module because everything about it is
SQL: the file manifest, every chunk's location and metadata, an FTS5 lexical
index, the ``pending`` chunks still waiting for a vector, and a format version.
Search only ever returns chunk ids the catalog knows; the vectors beside it live
in ``vectors.py``.

* ``pending`` lists the chunks whose vector is not stored yet, with the text to
  embed: a first index catalogues every file (symbols, FTS) before it embeds
  anything, and a killed run resumes from this table.
* ``chunks.tkey`` is the key of the text a chunk's vector was made from
  (``shared_store.text_key``): chunk ids name their lines, so code that only
  moved gets new ids, and the indexer gives it the vector of the old chunk with
  the same key instead of embedding it again.  '' (chunks catalogued before the
  column existed) matches nothing.
* Opening copes with media it cannot write (read-only or full disk: served
  read-only) and with a worker's readers beside it (``reader=True``: ``mode=ro``).
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from .store import (BEING_REPLACED, REBUILD_HINT, give_back, is_unwritable, on_read_only_fs,
                    writable_dir)
from .types import EngineError

if TYPE_CHECKING:
    from .chunking import Chunk

log = logging.getLogger(__name__)

FORMAT_VERSION = "3"
#: formats this code still reads: an older one is served as it is when the
#: catalog cannot be written, and migrated in place when it can (``_migrate``)
READABLE_FORMATS = ("1", "2", FORMAT_VERSION)

_FTS_TOKENIZE = "tokenize = \"porter unicode61 tokenchars '_'\""
#: The lexical index (format 2): contentless, its texts kept in ``fts_src``.
_FTS = f"fts USING fts5(names, doc, body, content='', {_FTS_TOKENIZE})"

#: Format 3: each chunk's text key (see the module's docstring).
_TKEY = ", tkey TEXT NOT NULL DEFAULT ''"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL, language TEXT NOT NULL, indexed_at REAL NOT NULL,
    chunks INTEGER NOT NULL DEFAULT 0, note TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS chunks (
    rid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, path TEXT NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
    parent TEXT NOT NULL, signature TEXT NOT NULL, language TEXT NOT NULL,
    line INTEGER NOT NULL DEFAULT 0{_TKEY});
CREATE INDEX IF NOT EXISTS chunks_path ON chunks(path);
CREATE INDEX IF NOT EXISTS chunks_name ON chunks(name);
CREATE INDEX IF NOT EXISTS chunks_name_nocase ON chunks(name COLLATE NOCASE);
CREATE VIRTUAL TABLE IF NOT EXISTS {_FTS};
CREATE TABLE IF NOT EXISTS fts_src (rid INTEGER PRIMARY KEY, z BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS pending (
    rid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, priority INTEGER NOT NULL,
    text TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS pending_order ON pending(priority, rid);
"""
# An index written before ``pending`` existed simply has none: every chunk it
# catalogued has its vector, which is what an empty table says.
#
# Format 2: ``fts`` is contentless (``content=''``): nothing reads text back from
# it (bm25 needs only its index; snippets come from the files), and its own copy
# of the text was the largest thing in the catalog.  Removing a row from a
# contentless table needs the values it was indexed with (SQLite here is older
# than 3.43's ``contentless_delete``), so ``fts_src`` keeps them zlib-compressed,
# a third of the size, read only when a chunk is forgotten.

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


class Catalog:
    """SQLite catalog, one connection per thread (WAL lets readers run beside
    the single indexing writer)."""

    def __init__(self, path: Path, *, reader: bool = False) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        #: set by ``close``: a search still holding this object (the engine swapping
        #: in a snapshot or a rebuild meanwhile) must not reconnect by path, which
        #: would create a new empty catalog (and its WAL) in the middle of the swap
        self._closed = False
        self.generation = 0  # bumped on every write: invalidates read caches
        self.chunk_columns = CHUNK_COLUMNS  # what SELECTs read (see _check_format)
        #: a reader beside the worker that owns (and writes) this catalog: opened
        #: ``mode=ro`` (WAL readers see the owner's commits), never written
        self.reader = reader
        self.read_only = reader
        #: how a read-only catalog of ours is opened: ``immutable=1`` on read-only
        #: media (no side files can be made), ``mode=ro`` on a full disk (below)
        self._ro_mode = "immutable=1"
        if path.exists() and on_read_only_fs(path.parent):
            # Read-only media: SQLite cannot create its WAL side files, but an
            # immutable connection still reads the index, so searches keep working.
            self.read_only = True
        try:
            self._check_format()
        except sqlite3.DatabaseError as exc:
            self._disconnect()   # then read-only on the same object, or raise
            if not (path.exists() and (is_unwritable(exc) or not writable_dir(path.parent))):
                raise EngineError("index_corrupt",
                                  f"the index catalog {path} cannot be read ({exc}); "
                                  f"{REBUILD_HINT}") from exc
            # A full disk or a read-only directory: opening in WAL mode needs to
            # write, reading does not.  Serve the index read-only (searches work,
            # INDEX says index_unwritable) rather than refuse it or call it corrupt.
            log.warning("cannot open %s for writing (%s): serving it read-only", path, exc)
            self.read_only = True
            # ``mode=ro`` first: it reads the WAL, where every commit since the last
            # checkpoint lives; a first index that filled the disk has all of its
            # catalogue there, and ``immutable=1`` (which ignores the WAL) showed an
            # empty index: every symbol and semantic search failed.  immutable only
            # if the WAL's side files cannot be opened (read-only directory).
            for self._ro_mode in ("mode=ro", "immutable=1"):
                try:
                    self._check_format()
                    break
                except sqlite3.DatabaseError as exc2:
                    self._disconnect()
                    failed = exc2
            else:
                raise EngineError("index_unwritable",
                                  f"cannot open the index catalog {path}: {exc}") from failed

    def _check_format(self) -> None:
        """Create the schema (when writable), check the format version and
        migrate an older format in place."""
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
        elif row[0] not in READABLE_FORMATS:
            raise EngineError("index_corrupt",
                              f"the index at {self.path.parent} has format {row[0]}, this ragex "
                              f"reads format {FORMAT_VERSION}; {REBUILD_HINT}")
        elif row[0] != FORMAT_VERSION and not self.read_only:
            self._migrate(row[0])
        # An older format served read-only answers the same queries: only
        # writes (forgetting chunks) differ, and a read-only catalog makes none.
        cols = {r[1] for r in conn.execute("PRAGMA table_info(chunks)")}
        if "line" not in cols:  # an older index served read-only: no definition lines
            self.chunk_columns = CHUNK_COLUMNS.replace(", line", ", 0 AS line")

    def _migrate(self, old: str) -> None:
        """To format 3, in one transaction (a kill leaves the old format whole).
        From 1: move the FTS text out of ``fts`` into ``fts_src`` (compressed) and
        rebuild ``fts`` contentless from it, then VACUUM once to give the space
        back and switch the file to incremental auto-vacuum.  From 1 and 2: add
        ``chunks.tkey`` (empty: those chunks are embedded again if they move,
        until their file is re-catalogued).  Chunk rows and their ids do not
        change, so every stored vector stays valid: nothing is re-embedded or
        re-read from the project's files."""
        t0 = time.monotonic()
        conn = self.conn()
        n = 0
        with self.transaction():
            row = conn.execute("SELECT value FROM meta WHERE key='format'").fetchone()
            if row and row[0] == FORMAT_VERSION:
                return  # another opener migrated it while this one waited for the lock
            if old == "1":
                conn.execute("DELETE FROM fts_src")
                # renamed, not read into memory: a large index's texts stream across
                conn.execute("ALTER TABLE fts RENAME TO fts_v1")
                conn.execute(f"CREATE VIRTUAL TABLE {_FTS}")
                for rid, names, doc, body in conn.execute(
                        "SELECT rowid, names, doc, body FROM fts_v1"):
                    _fts_insert(conn, rid, (names, doc, body))
                    n += 1
                conn.execute("DROP TABLE fts_v1")
            if "tkey" not in {r[1] for r in conn.execute("PRAGMA table_info(chunks)")}:
                conn.execute(f"ALTER TABLE chunks ADD COLUMN {_TKEY.lstrip(', ')}")
            conn.execute("UPDATE meta SET value=? WHERE key='format'", (FORMAT_VERSION,))
        if old == "1":
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            conn.execute("VACUUM")
        log.info("index catalog %s: migrated format %s to %s (%d lexical rows moved, "
                 "vectors untouched) in %.1f s", self.path, old, FORMAT_VERSION, n,
                 time.monotonic() - t0)

    def compact(self) -> int:
        """Give the pages freed since the last call and the WAL back to the file
        system (``store.give_back``); returns the bytes of freed pages given back.
        A catalog made before incremental auto-vacuum keeps its free pages for reuse."""
        if self.read_only:
            return 0
        return give_back(self.conn())

    def conn(self) -> sqlite3.Connection:
        if self._closed:
            raise EngineError("busy", BEING_REPLACED)
        conn = getattr(self._local, "conn", None)
        if conn is None and self.read_only:
            mode = "mode=ro" if self.reader else self._ro_mode
            conn = sqlite3.connect(f"file:{self.path}?{mode}", uri=True, timeout=30,
                                   check_same_thread=False, isolation_level=None)
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False,
                                   isolation_level=None)
            # Takes effect only on a new, empty file, and only before the WAL
            # switch writes its header: pages freed later (the ``pending`` texts
            # once embedded) can then be given back (``compact``).
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        """For good: a closed catalog never reconnects (see ``_closed``)."""
        self._closed = True
        self._disconnect()

    def _disconnect(self) -> None:
        """Close every connection; the next ``conn()`` opens a new one."""
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

    def backup_to(self, dest: Path) -> None:
        """A consistent copy of the catalog at ``dest`` (SQLite's online backup:
        correct while the worker reads and writes, unlike copying the files)."""
        target = sqlite3.connect(dest)
        try:
            self.conn().backup(target)
        finally:
            target.close()

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

    def noted_files(self, limit: int) -> tuple[int, list[tuple[str, str]]]:
        """Files catalogued without chunks for a reason (binary, generated...):
        how many, and the first ``limit`` (path, reason) by path."""
        conn = self.conn()
        count = conn.execute("SELECT count(*) FROM files WHERE note != ''").fetchone()[0]
        rows = conn.execute("SELECT path, note FROM files WHERE note != '' ORDER BY path "
                            "LIMIT ?", (limit,)).fetchall()
        return int(count), [(str(p), str(n)) for p, n in rows]

    def stats(self) -> tuple[int, int]:
        conn = self.conn()
        files = conn.execute("SELECT count(*) FROM files").fetchone()[0]
        chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        return files, chunks

    def distrust_stats(self) -> None:
        """Make the next index run compare every file by content hash: the sizes and
        mtimes recorded came from another machine (a snapshot), where an equal
        mtime says nothing (checkouts that pin mtimes would hide an edit)."""
        conn = self.conn()
        with conn:
            conn.execute("UPDATE files SET mtime_ns = -1")
        self.generation += 1

    def touch_files(self, rows: Sequence[FileRow]) -> None:
        """Record new size/mtime for files whose content hash did not change."""
        conn = self.conn()
        with conn:
            conn.executemany("UPDATE files SET size=?, mtime_ns=? WHERE path=?",
                             [(r.size, r.mtime_ns, r.path) for r in rows])

    def replace_files(self, rows: Sequence[FileRow], chunks: Sequence["Chunk"],
                      fts_rows: Sequence[tuple[str, str, str]],
                      removed: Iterable[str] = (),
                      pending: Sequence[tuple[str, int, str]] = (),
                      keys: Sequence[str] = ()) -> None:
        """In ONE transaction: forget everything about the files in ``rows`` and
        ``removed``, then record ``rows`` with their ``chunks`` (``keys``: the
        text key of each, in order) and the ``pending`` (chunk id, priority, text
        to embed) of those without a stored vector.  Either all of a batch is
        visible or none of it is, whatever kills the process."""
        now = time.time()
        paths = [r.path for r in rows] + list(removed)
        with self.transaction() as conn:
            self._forget(conn, paths)
            for k, (c, fts) in enumerate(zip(chunks, fts_rows)):
                cur = conn.execute(
                    f"INSERT OR REPLACE INTO chunks ({CHUNK_COLUMNS}, tkey) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (c.id, c.path, c.start, c.end, c.kind, c.name, c.parent, c.signature,
                     c.language, c.line, keys[k] if k < len(keys) else ""))
                _fts_insert(conn, cur.lastrowid, fts)
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
            gone = conn.execute(f"SELECT s.rid, s.z FROM fts_src s JOIN chunks c "
                                f"ON c.rid = s.rid WHERE c.path IN ({marks})", part).fetchall()
            conn.executemany("INSERT INTO fts (fts, rowid, names, doc, body) "
                             "VALUES ('delete', ?, ?, ?, ?)",
                             [(rid, *_unpack(z)) for rid, z in gone])
            conn.execute(f"DELETE FROM fts_src WHERE rid IN (SELECT rid FROM chunks "
                         f"WHERE path IN ({marks}))", part)
            conn.execute(f"DELETE FROM pending WHERE id IN (SELECT id FROM chunks "
                         f"WHERE path IN ({marks}))", part)
            conn.execute(f"DELETE FROM chunks WHERE path IN ({marks})", part)
            conn.execute(f"DELETE FROM files WHERE path IN ({marks})", part)

    # -- chunks ---------------------------------------------------------------------

    def chunk_ids(self) -> set[str]:
        return {r[0] for r in self.conn().execute("SELECT id FROM chunks")}

    def stored_chunks(self, paths: Sequence[str]) -> list[tuple[str, str, bool]]:
        """(id, text key, has a stored vector) of every chunk of ``paths``: what a
        re-catalogued file had, so its unchanged chunks keep their vectors."""
        out: list[tuple[str, str, bool]] = []
        for i in range(0, len(paths), 500):
            part = list(paths[i:i + 500])
            out += [(r[0], r[1], bool(r[2])) for r in self.conn().execute(
                f"SELECT c.id, c.tkey, p.id IS NULL FROM chunks c LEFT JOIN pending p "
                f"ON p.id = c.id WHERE c.path IN ({','.join('?' * len(part))})", part)]
        return out

    # -- vectors still to compute -------------------------------------------------

    def pending_count(self) -> int:
        return int(self.conn().execute("SELECT count(*) FROM pending").fetchone()[0])

    def pending_work(self, cap: int) -> tuple[int, int]:
        """(chunks, characters) still to embed, each text's characters counted up
        to ``cap`` (what the model reads of it): the ETA's measure of what is left."""
        count, chars = self.conn().execute(
            "SELECT count(*), total(min(length(text), ?)) FROM pending", (cap,)).fetchone()
        return int(count), int(chars)

    def pending_files(self) -> int:
        """Files with at least one chunk still waiting for its vector."""
        return int(self.conn().execute(
            "SELECT count(DISTINCT c.path) FROM pending p JOIN chunks c ON c.id = p.id"
        ).fetchone()[0])

    def is_pending(self, chunk_id: str) -> bool:
        """Whether this chunk still waits for its vector."""
        return self.conn().execute("SELECT 1 FROM pending WHERE id=?",
                                   (chunk_id,)).fetchone() is not None

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


#: Format 1's FTS table, which kept its own copy of the texts (``fts_content``);
#: format 2 keeps them compressed in ``fts_src`` (``_migrate``).
_FTS_FORMAT_1 = f"CREATE VIRTUAL TABLE fts USING fts5(names, doc, body, {_FTS_TOKENIZE})"


#: The tables FTS5 makes for a virtual table ``t`` (``t_data``, ...).
_FTS5_SHADOWS = ("data", "idx", "docsize", "config", "content")


def schema_of(conn: sqlite3.Connection) -> frozenset[tuple[str, str, str, str | None]]:
    """Every object of a catalog as (type, name, table, SQL), the SQL spelled one way
    (white space folded, none beside brackets and commas): the same schema gives the
    same set whichever way it was made (created here, a column added by ALTER TABLE,
    migrated from format 1), and a table with other columns or constraints does not.
    A virtual table's shadow tables count by name only: their SQL is written by
    the SQLite that made the catalog, not by us, and differs between versions."""
    out = set()
    rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
    shadows = {f"{name}_{suffix}" for kind, name, _t, sql in rows
               if kind == "table" and isinstance(sql, str)
               and sql.lstrip().upper().startswith("CREATE VIRTUAL TABLE")
               for suffix in _FTS5_SHADOWS}
    for kind, name, table, sql in rows:
        if name in shadows:
            sql = None
        elif isinstance(sql, str):
            sql = re.sub(r"\s*([(),])\s*", r"\1", re.sub(r"\s+", " ", sql).strip())
        out.add((kind, name, table, sql))
    return frozenset(out)


def schema_of_format(fmt: str) -> frozenset[tuple[str, str, str, str | None]]:
    """The schema (``schema_of``) a catalog of format ``fmt`` has, as this module
    creates it, built in memory.  Lets a catalog from elsewhere (a snapshot) be
    held against it, including one made by the previous ragex, which is migrated
    when its worker opens it."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript(_SCHEMA if fmt == FORMAT_VERSION else _SCHEMA.replace(_TKEY, ""))
        if fmt == "1":
            conn.executescript(f"DROP TABLE fts_src; DROP TABLE fts; {_FTS_FORMAT_1};")
        return schema_of(conn)
    finally:
        conn.close()


def _fts_insert(conn: sqlite3.Connection, rid: int, fields: Sequence[str]) -> None:
    """Index one chunk's (names, doc, body) and keep them for its removal."""
    conn.execute("INSERT INTO fts (rowid, names, doc, body) VALUES (?,?,?,?)", (rid, *fields))
    conn.execute("INSERT OR REPLACE INTO fts_src (rid, z) VALUES (?, ?)", (rid, _pack(fields)))


def _pack(fields: Sequence[str]) -> bytes:
    return zlib.compress(json.dumps(list(fields), ensure_ascii=False).encode(
        "utf-8", "surrogatepass"), 6)


def _unpack(z: bytes) -> tuple[str, str, str]:
    names, doc, body = json.loads(zlib.decompress(z).decode("utf-8", "surrogatepass"))
    return names, doc, body


def _add_line_column(conn: sqlite3.Connection) -> None:
    """Indexes made before chunks knew their definition line gain the column (0:
    "use start") instead of needing a rebuild; re-indexed files fill it in."""
    cols = {r[1] for r in conn.execute("PRAGMA table_info(chunks)")}
    if "line" not in cols:
        with conn:
            conn.execute("ALTER TABLE chunks ADD COLUMN line INTEGER NOT NULL DEFAULT 0")
            # the next index run re-chunks every file (same chunk ids: no re-embedding)
            conn.execute("UPDATE files SET size = -1, sha256 = ''")

