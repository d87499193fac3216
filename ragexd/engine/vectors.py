"""The vector store of one project's index: ``chroma/`` plus an exact copy in memory.

Its own module because it is a different store with different failure modes:
ChromaDB (imported lazily, it is heavy), one vector per chunk id (cosine space,
our own vectors, no documents: snippets are read back from the files so they
are never stale copies), exact in-memory neighbours below ``EXACT_MAX`` and
HNSW above, and a private read-only copy when chroma cannot open the store in
place.  It may briefly hold vectors the catalog (``catalog.py``) does not know
(a run killed between the two writes); ``Indexer`` reconciles that at the start
of each run.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from .store import HEAVY_IMPORTS, REBUILD_HINT, is_unwritable
from .types import EngineError

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)


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

    def export_vectors(self, ids: Sequence[str]) -> tuple[list[str], "np.ndarray"]:
        """The stored vectors of ``ids`` (those that have one), as read from the
        store, in ``ids``' order: what a snapshot carries, whatever the store keeps
        on disk."""
        import numpy as np

        col = self.collection()
        found: dict[str, Any] = {}
        ids = list(ids)
        for i in range(0, len(ids), 5000):
            got = col.get(ids=ids[i:i + 5000], include=["embeddings"])
            embs = got.get("embeddings")
            for cid, emb in zip(got["ids"], embs if embs is not None else []):
                found[cid] = emb
        have = [cid for cid in ids if cid in found]
        if not have:
            return [], np.zeros((0, 0), dtype=np.float32)
        return have, np.asarray([found[c] for c in have], dtype=np.float32)

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

    def vector_of(self, chunk_id: str) -> "np.ndarray | None":
        """The stored vector of one chunk (None: it has none yet), for ``similar``:
        neighbours of a chunk come from what was stored, never a re-embedding."""
        import numpy as np

        exact = self._exact_index()
        if exact is not None:
            return exact.vector_of(chunk_id)
        got = self.collection().get(ids=[chunk_id], include=["embeddings"])
        embs = got.get("embeddings")
        if embs is None or len(got["ids"]) == 0:
            return None
        return np.asarray(embs[0], dtype=np.float32)

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
