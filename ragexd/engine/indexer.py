"""Incremental, crash-consistent indexing.

Change detection is size + mtime_ns first (a stat, no read), then sha256 for
files whose stat changed (a touched-but-identical file costs a read, never an
embedding).  Inside a changed file, chunks whose id (path, span, kind, name,
content hash) already has a vector keep it: editing one function of a large
file re-embeds only what moved.

Write order per batch of files, chosen so a kill -9 anywhere converges:
  1. delete the files' vectors from chroma, 2. upsert their new vectors,
  3. ONE sqlite transaction replacing their chunk, FTS and manifest rows.
A run sets an ``index_run`` marker first and clears it last.  At the start of a
run after an interrupted one (and of every full run) ``reconcile`` deletes chroma
ids the catalog does not know and forgets catalog files whose vectors are
missing, so the next pass re-indexes them: 0 lost, 0 duplicated.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from . import discovery
from .chunking import Chunk, chunk_file
from .embedding import Embedder, context_text
from .store import Catalog, FileRow, Vectors, is_unwritable
from .tokens import split_identifier, words_of
from .types import EngineError, IndexProgress, IndexSummary, SkippedFile

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

BATCH_CHUNKS = 64
BATCH_FILES = 200
RUN_MARKER = "index_run"
LAST_INDEXED = "last_indexed"


def fts_fields(chunk: Chunk) -> tuple[str, str, str]:
    """(names, doc, body) columns of the lexical index for one chunk."""
    pw = " ".join(split_identifier(chunk.path.rsplit("/", 1)[-1].rsplit(".", 1)[0]))
    names = " ".join(filter(None, [chunk.name, " ".join(split_identifier(chunk.name)),
                                   chunk.parent, " ".join(split_identifier(chunk.parent)),
                                   pw]))
    doc = chunk.doc + "\n" + " ".join(words_of(chunk.signature))
    if chunk.members:
        doc += "\n" + " ".join(words_of(" ".join(chunk.members)))
    body = " ".join(words_of(chunk.code))
    return names, doc, body


@dataclass
class _Pending:
    info: discovery.FileInfo
    old: FileRow | None


class Indexer:
    def __init__(self, root: Path, catalog: Catalog, vectors: Vectors, embedder: Embedder,
                 *, excluded: tuple[Path, ...] = (),
                 max_file_bytes: int = discovery.MAX_FILE_BYTES) -> None:
        self.root = root
        self.catalog = catalog
        self.vectors = vectors
        self.embedder = embedder
        self.excluded = excluded
        self.max_file_bytes = max_file_bytes
        self.pending_files = 0

    # -- entry point ---------------------------------------------------------------

    def run(self, *, paths: Sequence[str] | None = None,
            progress: Callable[[IndexProgress], None] | None = None,
            cancel: threading.Event | None = None,
            chunk_hook: Callable[[int], None] | None = None) -> IndexSummary:
        t0 = time.monotonic()
        summary = IndexSummary()
        emit = progress or (lambda p: None)
        interrupted = self.catalog.get_meta(RUN_MARKER) is not None
        self._write(lambda: self.catalog.set_meta(
            RUN_MARKER, json.dumps({"pid": os.getpid(), "started": time.time()})))
        emit(IndexProgress("scanning", message="reconciling" if interrupted else "scanning"))
        if paths is None or interrupted:
            self._write(self.reconcile)
        rules = discovery.IgnoreRules(self.root, self.excluded)
        manifest = self.catalog.files()
        if paths is None:
            files, skipped = discovery.walk(self.root, rules, self.max_file_bytes)
            seen = {f.rel for f in files}
            removed = sorted(p for p in manifest if p not in seen)
        else:
            files, skipped, removed = [], [], []
            for raw in paths:
                rel = self._relative(raw)
                if rel is None:
                    continue
                got = discovery.stat_one(self.root, rel, rules, self.max_file_bytes)
                if isinstance(got, discovery.FileInfo):
                    files.append(got)
                else:
                    if isinstance(got, SkippedFile):
                        skipped.append(got)
                    if rel in manifest:
                        removed.append(rel)
        summary.files_scanned = len(files)
        summary.skipped.extend(skipped)

        todo: list[_Pending] = []
        for f in files:
            old = manifest.get(f.rel)
            if old is not None and old.size == f.size and old.mtime_ns == f.mtime_ns:
                summary.files_unchanged += 1
            else:
                todo.append(_Pending(f, old))
        if removed:
            n_old = sum(manifest[p].chunks for p in removed if p in manifest)
            self._write(lambda: self.vectors.delete_paths(removed))
            self._write(lambda: self.catalog.forget_files(removed))
            summary.files_removed = len(removed)
            summary.chunks_removed += n_old

        self._process(todo, summary, emit, cancel, chunk_hook)
        cancelled = bool(cancel is not None and cancel.is_set())
        summary.cancelled = cancelled
        if not cancelled and (paths is None or not interrupted):
            # A run over a few paths completes only itself: after an interrupted
            # full run the index stays partial until a full run finishes.
            def finish() -> None:
                if paths is None:
                    self.catalog.set_meta(LAST_INDEXED, str(time.time()))
                self.catalog.set_meta(RUN_MARKER, None)
            self._write(finish)
        summary.chunks_total = self.catalog.stats()[1]
        summary.seconds = round(time.monotonic() - t0, 3)
        emit(IndexProgress("done", files_done=len(todo), files_total=len(todo),
                           chunks_embedded=summary.chunks_embedded, eta_seconds=0.0,
                           message="cancelled" if cancelled else "done"))
        self.pending_files = 0
        return summary

    def _relative(self, raw: str) -> str | None:
        p = Path(raw)
        if p.is_absolute():
            try:
                p = p.resolve().relative_to(self.root.resolve())
            except ValueError:
                return None
        rel = p.as_posix()
        while rel.startswith("./"):
            rel = rel[2:]
        if rel in ("", ".") or rel.startswith("../") or "/../" in rel:
            return None
        return rel

    # -- reconcile -----------------------------------------------------------------

    def reconcile(self) -> tuple[int, int]:
        """Make chroma and the catalog agree; returns (extra vectors deleted,
        files forgotten because their vectors were missing)."""
        vec_ids = self.vectors.all_ids()
        cat_ids = self.catalog.chunk_ids()
        extra = vec_ids - cat_ids
        if extra:
            log.info("reconcile: deleting %d vectors the catalog does not know", len(extra))
            self.vectors.delete_ids(sorted(extra))
        missing = cat_ids - vec_ids
        lost_paths: list[str] = []
        if missing:
            lost_paths = sorted(self.catalog.paths_of_ids(missing))
            log.info("reconcile: %d chunks lack vectors; re-indexing %d files",
                     len(missing), len(lost_paths))
            self.vectors.delete_paths(lost_paths)
            self.catalog.forget_files(lost_paths)
        return len(extra), len(lost_paths)

    # -- the work --------------------------------------------------------------------

    def _process(self, todo: list[_Pending], summary: IndexSummary,
                 emit: Callable[[IndexProgress], None], cancel: threading.Event | None,
                 chunk_hook: Callable[[int], None] | None) -> None:
        total_bytes = sum(p.info.size for p in todo) or 1
        done_bytes = 0
        files_done = 0
        self.pending_files = len(todo)
        t_start = time.monotonic()
        batch: list[tuple[FileRow, list[Chunk]]] = []
        batch_chunks = 0
        emit(IndexProgress("embedding", 0, len(todo), 0, None,
                           f"{len(todo)} files to index"))

        def flush() -> None:
            nonlocal batch, batch_chunks
            if batch:
                self._write_batch(batch, summary, chunk_hook)
                batch, batch_chunks = [], 0

        for item in todo:
            if cancel is not None and cancel.is_set():
                break
            row, chunks, touch_only = self._prepare(item, summary)
            files_done += 1
            done_bytes += item.info.size
            self.pending_files = len(todo) - files_done
            if touch_only is not None:
                self._write(lambda: self.catalog.touch_files([touch_only]))
                summary.files_unchanged += 1
                continue
            if row is None:
                continue
            batch.append((row, chunks))
            batch_chunks += len(chunks)
            if batch_chunks >= BATCH_CHUNKS or len(batch) >= BATCH_FILES:
                flush()
                elapsed = time.monotonic() - t_start
                rate = done_bytes / elapsed if elapsed > 0 else 0.0
                eta = (total_bytes - done_bytes) / rate if rate > 0 else None
                emit(IndexProgress("embedding", files_done, len(todo), summary.chunks_embedded,
                                   round(eta, 1) if eta is not None else None, item.info.rel))
        flush()

    def _prepare(self, item: _Pending, summary: IndexSummary
                 ) -> tuple[FileRow | None, list[Chunk], FileRow | None]:
        """Read and chunk one file: (manifest row, chunks, row-to-touch-only)."""
        info = item.info
        path = self.root / info.rel
        try:
            data, st = discovery.read_bytes(path, self.max_file_bytes)
        except discovery.Unreadable as exc:
            summary.skipped.append(SkippedFile(info.rel, exc.reason))
            if item.old is not None:  # it was indexed before: do not keep stale chunks
                return FileRow(info.rel, info.size, info.mtime_ns, "", info.language, 0,
                               exc.reason), [], None
            return None, [], None
        sha = hashlib.sha256(data).hexdigest()
        size, mtime = st.st_size, st.st_mtime_ns
        if item.old is not None and item.old.sha256 == sha:
            return None, [], FileRow(info.rel, size, mtime, sha, info.language)
        try:
            text = discovery.decode(data)
        except discovery.Unreadable as exc:
            summary.skipped.append(SkippedFile(info.rel, exc.reason))
            return FileRow(info.rel, size, mtime, sha, info.language, 0, exc.reason), [], None
        generated = discovery.looks_generated(text)
        if generated is not None:
            summary.skipped.append(SkippedFile(info.rel, generated))
            return FileRow(info.rel, size, mtime, sha, info.language, 0, generated), [], None
        chunks = chunk_file(info.rel, text, info.language)
        summary.files_indexed += 1
        return FileRow(info.rel, size, mtime, sha, info.language, len(chunks)), chunks, None

    def _write_batch(self, batch: list[tuple[FileRow, list[Chunk]]], summary: IndexSummary,
                     chunk_hook: Callable[[int], None] | None) -> None:
        import numpy as np

        rows = [r for r, _ in batch]
        chunks = [c for _, cs in batch for c in cs]
        paths = [r.path for r in rows]
        old_ids: set[str] = set()
        for p in paths:
            old_ids.update(c.id for c in self.catalog.chunks_of(p))
        ids = [c.id for c in chunks]
        reuse = [i for i in ids if i in old_ids]
        vectors = np.zeros((len(chunks), 384), dtype=np.float32)
        have: dict[str, "np.ndarray"] = {}
        if reuse:
            got = self.vectors.collection().get(ids=reuse, include=["embeddings"])
            for cid, emb in zip(got["ids"], got["embeddings"]):
                have[cid] = np.asarray(emb, dtype=np.float32)
        need = [k for k, c in enumerate(chunks) if c.id not in have]
        if need:
            enc = self.embedder.encode([context_text(chunks[k]) for k in need])
            for row_i, k in enumerate(need):
                vectors[k] = enc[row_i]
        for k, c in enumerate(chunks):
            if c.id in have:
                vectors[k] = have[c.id]
        metas = [{"path": c.path, "language": c.language, "kind": c.kind} for c in chunks]
        fts = [fts_fields(c) for c in chunks]

        def write() -> None:
            self.vectors.delete_paths(paths)
            self.vectors.upsert(ids, vectors, metas)
            if chunk_hook is not None:
                chunk_hook(len(chunks))  # tests: a kill between the two stores
            self.catalog.replace_files(rows, chunks, fts)
        self._write(write)
        summary.chunks_embedded += len(need)
        summary.chunks_added += sum(1 for i in ids if i not in old_ids)
        summary.chunks_removed += len(old_ids - set(ids))

    @staticmethod
    def _write(fn: Callable[[], object]) -> object:
        """Run a store write, turning disk-full/read-only into index_unwritable."""
        try:
            return fn()
        except EngineError:
            raise
        except Exception as exc:
            if is_unwritable(exc):
                raise EngineError(
                    "index_unwritable",
                    f"cannot write the index ({exc}); free some disk space or make the index "
                    "directory writable, then index again. The previous index is still "
                    "searchable.") from exc
            raise
