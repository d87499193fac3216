"""Incremental, crash-consistent, two-phase indexing.

Change detection is size + mtime_ns first (a stat, no read), then sha256 for
files whose stat changed (a touched-but-identical file costs a read, never an
embedding), and for every file named by path (a watcher's event says the file
was written, even when its stat did not move).  Inside a changed file, a chunk
whose id (path, span, kind, name, content hash) already has a vector keeps it,
and a chunk whose id changed only
because it moved (lines inserted above it) takes the stored vector of the old
chunk that was embedded from the same text (``chunks.tkey``, the hash of
``context_text``): editing a large file re-embeds only the chunks whose text
changed.  The same holds when the chunker's rules change (``chunking.CHUNK_RULES``,
recorded in the catalog): the next full run chunks every file again, unchanged
or not, and embeds only the texts the new rules made.

A run has two phases:
  1. *catalogue* (this thread, no model): read and chunk every changed file, in
     priority order (priority.py), and commit its chunks, FTS rows, manifest row
     and the text of each chunk still lacking a vector (``pending``) in batches
     of files.  Regex, symbol and keyword search are exact for what is committed.
  2. *embed* (a second thread): take the most wanted pending chunks, encode them
     (the embedder sorts each batch by length), upsert their vectors into
     chroma, then drop them from ``pending``.  It starts at once and loads the
     model while phase 1 runs, but encodes only once phase 1 is over.

Why not encode beside phase 1: measured on scikit-learn (764 files, 13,830
chunks, 2 cores), the encoder's threads took the cataloguing thread's CPU and
phase 1 ran 2.5-3x longer (73-86 s against 22-30 s) for 256 chunks embedded
meanwhile, 2 % of the total.  Symbols and keywords exact within seconds are
worth more than those few early vectors; once phase 1 is over the encoder has
both cores to itself.

Where a backlog of ``[embedder] bulk_min_chunks`` or more is embedded
(``runtime = "auto"`` on a CPU with bf16 and openvino installed): by a child
process on OpenVINO (bulk.py), started when phase 1 ends and ended with phase 2.  This
thread still stores every vector (one writer per index); a child that fails is
noted once in the summary and the rest is embedded here.

Write order, chosen so a kill -9 anywhere converges: a file's catalog rows are
committed before its stale vectors are deleted (an extra vector is harmless,
reconcile drops it); a vector is stored before its chunk leaves ``pending`` (a
kill between them costs one re-embedding of that batch, never a lost vector).
A run sets an ``index_run`` marker first and clears it last.  At the start of a
run after an interrupted one (and of every full run) ``reconcile`` deletes
chroma ids the catalog does not know, marks pending chunks whose vector did get
stored, and forgets files whose vectors are missing without being pending, so
the next pass re-indexes them: 0 lost, 0 duplicated.  A killed first index thus
resumes: catalogued files are not read again, embedded chunks not re-embedded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

from . import bulk, discovery, notebooks
from .catalog import Catalog, FileRow
from .chunking import CHUNK_RULES, Chunk, chunk_file, chunk_rules_change
from .embedding import Embedder, context_text, release_memory
from .eta import WORK_CAP, Backlog, EmbedRate, work
from .priority import Priorities, classify
from .shared_store import SharedStore, text_key
from .store import is_unwritable
from .tokens import split_identifier, words_of
from .types import EngineError, IndexProgress, IndexSummary, SkippedFile
from .vectors import Vectors

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

#: Chunks per embedding step: one chroma upsert and one catalog commit.  They
#: are encoded in slices of ENCODE_SLICE, and queries go before each slice.
BATCH_CHUNKS = 128
#: Files / chunks per catalogue commit in phase 1.
BATCH_FILES = 200
CATALOG_BATCH_CHUNKS = 1000
RUN_MARKER = "index_run"
LAST_INDEXED = "last_indexed"
#: How many files the running (or interrupted) run will hold once catalogued.
RUN_FILES = "index_run_files"
#: The chunking rules (chunking.CHUNK_RULES) the catalogued files were cut by;
#: written when a full run ends, so an interrupted re-chunking is done again.
CHUNK_RULES_KEY = "chunk_rules"
#: How often the embedding thread, waiting for phase 1 to end, checks for a cancel.
FOLLOW_WAIT = 0.2
#: Texts per encode call of the embedding thread: between two calls it lets
#: waiting queries go first, so a query waits for one small encode at most.
ENCODE_SLICE = 16
#: The same for a bulk child (bulk.py), which pays a round trip and an inference
#: call per slice: 16-text slices made it ~1.3x slower than whole 128-text batches,
#: 32 and 64 as fast (512 chunks of the stdlib email package, OpenVINO bf16, 2 cores at
#: load ~5, medians of 4 rotated rounds); 32 keeps a query's wait at a quarter batch.
CHILD_ENCODE_SLICE = 32
#: The longest the embedding thread defers to queries before each slice (a
#: steady stream of queries slows an index down; it never stops it).
QUERY_YIELD_MAX = 0.5


class QueryGate:
    """Queries go before the index's next encode.

    A lock is not fair: the embedding thread, releasing the model between two
    batches and taking it again at once, kept a waiting query out for many
    batches (seconds).  Queries announce themselves here instead, and the
    embedding thread waits for them to finish before its next slice.
    """

    def __init__(self) -> None:
        self._active = 0
        self._cond = threading.Condition()

    @contextmanager
    def query(self) -> Iterator[None]:
        with self._cond:
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    def let_queries_pass(self, timeout: float = QUERY_YIELD_MAX) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._active == 0, timeout)


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
    priority: int = 0
    #: chunk it even if its bytes are the ones catalogued (other chunking rules)
    rechunk: bool = False


@dataclass
class LiveRun:
    """What a running index has done so far, read by other threads for coverage."""

    files_total: int = 0          # files the index will hold when phase 1 ends
    cataloguing: bool = True      # phase 1 still running
    was_complete: bool = False    # a full index had completed before this run
    embedded: int = 0             # vectors stored by this run
    embed_started: float | None = None
    #: the recent embedding rate and the work left, for the ETA (eta.py)
    rate: EmbedRate = field(default_factory=EmbedRate)
    backlog: Backlog = field(default_factory=Backlog)
    bytes_total: int = 0
    bytes_done: int = 0
    chunks_catalogued: int = 0    # by this run's phase 1
    files_todo: int = 0           # files phase 1 has to read
    files_done: int = 0
    #: the child process embedding this run's backlog (bulk.py), while it does
    bulk: "bulk.BulkChild | None" = None


class Indexer:
    def __init__(self, root: Path, catalog: Catalog, vectors: Vectors, embedder: Embedder,
                 *, excluded: tuple[Path, ...] = (),
                 max_file_bytes: int = discovery.MAX_FILE_BYTES,
                 gate: QueryGate | None = None,
                 load_model: Callable[[], None] | None = None,
                 shared: SharedStore | None = None) -> None:
        self.root = root
        #: a team's vectors on a Chroma server: asked before each batch is encoded
        self.shared = shared
        self.gate = gate or QueryGate()
        self.load_model = load_model or embedder.load
        self.catalog = catalog
        self.vectors = vectors
        self.embedder = embedder
        self.excluded = excluded
        self.max_file_bytes = max_file_bytes
        self.pending_files = 0
        self.live = LiveRun()

    # -- entry point ---------------------------------------------------------------

    def run(self, *, paths: Sequence[str] | None = None,
            progress: Callable[[IndexProgress], None] | None = None,
            cancel: threading.Event | None = None,
            chunk_hook: Callable[[int], None] | None = None,
            record: Callable[[IndexSummary], bool] | None = None) -> IndexSummary:
        """Index the whole tree, or only ``paths`` (saved files).  ``record`` writes
        the caller's own account of the run (the engine's skipped files) into the
        catalog before the run's one compaction, and says whether it wrote: a
        record written after it would need a second compaction for its WAL."""
        t0 = time.monotonic()
        summary = IndexSummary()
        emit = progress or (lambda p: None)
        cancel = cancel or threading.Event()
        interrupted = self.catalog.get_meta(RUN_MARKER) is not None
        self.live = LiveRun(was_complete=not interrupted
                            and self.catalog.get_meta(LAST_INDEXED) is not None)
        self._write(lambda: self.catalog.set_meta(
            RUN_MARKER, json.dumps({"pid": os.getpid(), "started": time.time()})))
        emit(IndexProgress("scanning", message="reconciling" if interrupted else "scanning"))
        if (paths is None or interrupted) and (self.vectors.exists()
                                               or self.catalog.stats()[1]):
            # (a brand-new index has nothing to reconcile: do not make the first
            # symbol answers wait for the vector store to open)
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
        cut_by = self.catalog.get_meta(CHUNK_RULES_KEY)
        rechunk = paths is None and bool(manifest) and cut_by != CHUNK_RULES
        if not manifest:
            # all this index will hold is cut by today's rules, even if this run
            # is killed: the run that resumes it must not chunk it all again
            self._write(lambda: self.catalog.set_meta(CHUNK_RULES_KEY, CHUNK_RULES))
        if rechunk:
            why = chunk_rules_change(cut_by)
            log.info("%s: chunking every file again", why)
            emit(IndexProgress("rechunking", message=f"{why}: chunking every file again once "
                               "(only chunk texts the new rules made are embedded)"))
            summary.notes.append(f"{why}, so every file was chunked again (only chunk texts "
                                 "the new rules made were embedded)")
        for f in files:
            old = manifest.get(f.rel)
            if rechunk and old is not None:
                todo.append(_Pending(f, old, rechunk=True))
            # A path named (a watcher's event, an INDEX request's paths; `ragexctl
            # index PATH` names the project, a full scan) is compared by
            # content: a save that kept the size within one mtime tick, or a tool
            # that keeps the mtime, leaves the stat as it was, not the text.
            elif (paths is None and old is not None and old.size == f.size
                    and old.mtime_ns == f.mtime_ns):
                summary.files_unchanged += 1
            else:
                todo.append(_Pending(f, old))
        if paths is None:
            self.live.files_total = len(files)
            self._write(lambda: self.catalog.set_meta(RUN_FILES, str(len(files))))
        else:
            self.live.files_total = len(set(manifest) - set(removed)
                                        | {f.rel for f in files})
        if removed:
            n_old = sum(manifest[p].chunks for p in removed if p in manifest)
            stale = [c.id for p in removed for c in self.catalog.chunks_of(p)]
            self._write(lambda: self.catalog.forget_files(removed))
            self._write(lambda: self.vectors.delete_ids(stale))
            summary.files_removed = len(removed)
            summary.chunks_removed += n_old
        if todo:
            # a few saved files need no git history to be ordered
            rank: Callable[[str, str], int] = Priorities(self.root) if paths is None \
                else classify
            for item in todo:
                item.priority = rank(item.info.rel, item.info.language)
            todo.sort(key=lambda p: (p.priority, p.info.rel))

        self._phases(todo, summary, emit, cancel, chunk_hook)
        cancelled = cancel.is_set()
        summary.cancelled = cancelled
        finished = not cancelled and (paths is None or not interrupted)
        if finished:
            # A run over a few paths completes only itself: after an interrupted
            # full run the index stays partial until a full run finishes.
            def finish() -> None:
                if paths is None:
                    self.catalog.set_meta(LAST_INDEXED, str(time.time()))
                    self.catalog.set_meta(CHUNK_RULES_KEY, CHUNK_RULES)
                self.catalog.set_meta(RUN_FILES, None)
                self.catalog.set_meta(RUN_MARKER, None)
            self._write(finish)
        # after the completion (a record that fails to write must not cost the run
        # its completion), before the one compaction
        recorded = record is not None and record(summary)
        if finished or recorded:
            # the texts ``pending`` held until embedded, rows of changed files, the
            # WAL this run's writes (the record's too) grew, and the vectors' WAL
            # (~8 MB at its high-water mark, more than a 5k-chunk index's vectors)
            self._write(self.catalog.compact)
            self._write(self.vectors.compact)
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
        pending = self.catalog.pending_ids()
        extra = vec_ids - cat_ids
        if extra:
            log.info("reconcile: deleting %d vectors the catalog does not know", len(extra))
            self.vectors.delete_ids(sorted(extra))
        stored = pending & vec_ids
        if stored:  # killed after chroma took them, before the catalog heard of it
            self.catalog.mark_embedded(sorted(stored))
        missing = cat_ids - vec_ids - pending
        lost_paths: list[str] = []
        if missing:
            lost_paths = sorted(self.catalog.paths_of_ids(missing))
            log.info("reconcile: %d chunks lack vectors; re-indexing %d files",
                     len(missing), len(lost_paths))
            self.catalog.forget_files(lost_paths)
            self.vectors.delete_paths(lost_paths)
        return len(extra), len(lost_paths)

    # -- the two phases ----------------------------------------------------------------

    def _phases(self, todo: list[_Pending], summary: IndexSummary,
                emit: Callable[[IndexProgress], None], cancel: threading.Event,
                chunk_hook: Callable[[int], None] | None) -> None:
        """Phase 1 here, phase 2 on a thread that loads the model meanwhile and
        encodes once phase 1 is over."""
        errors: list[BaseException] = []
        stop = threading.Event()   # phase 1 failed: the embedder must not wait for it
        catalogued = threading.Event()

        def embed_thread() -> None:
            try:
                self._embed_pending(summary, emit, cancel, stop, catalogued, chunk_hook)
            except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
                errors.append(exc)
            finally:
                self.catalog.release_thread()

        worker = threading.Thread(target=embed_thread, name="index-embed", daemon=True)
        worker.start()
        try:
            self._catalogue(todo, summary, emit, cancel)
        except BaseException:
            stop.set()   # the embedder stops after its current batch
            raise
        finally:
            self.live.cataloguing = False
            self.pending_files = 0
            catalogued.set()
            worker.join()
        if errors:
            raise errors[0]

    def _catalogue(self, todo: list[_Pending], summary: IndexSummary,
                   emit: Callable[[IndexProgress], None], cancel: threading.Event) -> None:
        """Phase 1: chunk and commit every changed file (no model needed)."""
        live = self.live
        live.bytes_total = sum(p.info.size for p in todo) or 1
        live.files_todo = len(todo)
        files_done = 0
        self.pending_files = len(todo)
        batch: list[tuple[FileRow, list[Chunk], int]] = []
        batch_chunks = 0
        emit(IndexProgress("cataloguing", 0, len(todo), 0, None,
                           f"{len(todo)} files to index"))

        def flush() -> None:
            nonlocal batch, batch_chunks
            if batch:
                self._commit_files(batch, summary)
                live.chunks_catalogued += batch_chunks
                batch, batch_chunks = [], 0

        for item in todo:
            if cancel.is_set():
                break
            row, chunks, touch_only = self._prepare(item, summary)
            files_done += 1
            live.files_done = files_done
            live.bytes_done += item.info.size
            if touch_only is not None:
                self._write(lambda: self.catalog.touch_files([touch_only]))
                summary.files_unchanged += 1
            elif row is not None:
                batch.append((row, chunks, item.priority))
                batch_chunks += len(chunks)
            if batch_chunks >= CATALOG_BATCH_CHUNKS or len(batch) >= BATCH_FILES:
                flush()
                self.pending_files = len(todo) - files_done
                emit(IndexProgress("cataloguing", files_done, len(todo),
                                   summary.chunks_embedded, self.eta(), item.info.rel))
        flush()
        self.pending_files = 0

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
        if item.old is not None and item.old.sha256 == sha and not item.rechunk:
            return None, [], FileRow(info.rel, size, mtime, sha, info.language)
        try:
            text = discovery.decode(data)
        except discovery.Unreadable as exc:
            summary.skipped.append(SkippedFile(info.rel, exc.reason))
            return FileRow(info.rel, size, mtime, sha, info.language, 0, exc.reason), [], None
        generated = discovery.looks_generated(
            notebooks.code_text(text) if info.language == notebooks.NOTEBOOK else text)
        if generated is not None:
            summary.skipped.append(SkippedFile(info.rel, generated))
            return FileRow(info.rel, size, mtime, sha, info.language, 0, generated), [], None
        chunks = chunk_file(info.rel, text, info.language)
        summary.files_indexed += 1
        return FileRow(info.rel, size, mtime, sha, info.language, len(chunks)), chunks, None

    def _commit_files(self, batch: list[tuple[FileRow, list[Chunk], int]],
                      summary: IndexSummary) -> None:
        """Catalogue a batch of files in one transaction.  A chunk that kept its
        id keeps its stored vector; one whose text was embedded before under
        another id (it moved) gets a copy of that vector, stored before the
        catalog says so (a kill in between leaves an extra vector, which
        reconcile drops); every other chunk becomes pending."""
        rows = [r for r, _, _ in batch]
        entries = [(c, prio) for _, cs, prio in batch for c in cs]
        chunks = [c for c, _ in entries]
        old = self.catalog.stored_chunks([r.path for r in rows])
        old_ids = {cid for cid, _, _ in old}
        had_vector = {cid for cid, _, stored in old if stored}
        by_key = {key: cid for cid, key, stored in old if stored and key}
        texts = [context_text(c) for c in chunks]
        keys = [text_key(t) for t in texts]
        reuse = {c.id: by_key[key] for c, key in zip(chunks, keys)
                 if c.id not in had_vector and key in by_key}
        copied = self._copy_vectors(reuse, {c.id: c for c in chunks}) if reuse else set()
        summary.chunks_reused += len(copied)
        pending = [(c.id, prio, text) for (c, prio), text in zip(entries, texts)
                   if c.id not in had_vector and c.id not in copied]
        fts = [fts_fields(c) for c in chunks]
        self._write(lambda: self.catalog.replace_files(rows, chunks, fts, pending=pending,
                                                       keys=keys))
        new_ids = {c.id for c in chunks}
        stale = sorted(old_ids - new_ids)
        if stale:   # after the catalog forgot them: a kill here leaves extras, never holes
            self._write(lambda: self.vectors.delete_ids(stale))
        summary.chunks_added += len(new_ids - old_ids)
        summary.chunks_removed += len(old_ids - new_ids)

    def _copy_vectors(self, reuse: dict[str, str], chunks: dict[str, Chunk]) -> set[str]:
        """Store under each new id of ``reuse`` the vector of its old id; returns
        the new ids that got one (an old vector the store lacks, after a crash,
        is left to reconcile: that chunk is embedded instead)."""
        have, mat = self.vectors.export_vectors(sorted(set(reuse.values())))
        row = {cid: i for i, cid in enumerate(have)}
        ids = [new for new, old in reuse.items() if old in row]
        if ids:
            metas = [{"path": chunks[i].path, "language": chunks[i].language,
                      "kind": chunks[i].kind} for i in ids]
            vecs = mat[[row[reuse[i]] for i in ids]]
            self._write(lambda: self.vectors.upsert(ids, vecs, metas))
        return set(ids)

    def _embed_pending(self, summary: IndexSummary, emit: Callable[[IndexProgress], None],
                       cancel: threading.Event, stop: threading.Event,
                       catalogued: threading.Event,
                       chunk_hook: Callable[[int], None] | None) -> None:
        """Phase 2: once phase 1 is over (``catalogued``), embed what the catalog
        lists as pending until nothing is left.  Stores each batch's vectors
        before it leaves ``pending``."""
        live = self.live
        loaded = False
        try:
            while not (cancel.is_set() or stop.is_set() or catalogued.is_set()):
                if not loaded and self.catalog.pending_count():
                    # something to embed: have the model ready when phase 1 ends
                    self.load_model()
                    loaded = True
                catalogued.wait(FOLLOW_WAIT)
            # The child starts once phase 1 is over, like the encoding: its import and
            # compile (seconds of both cores) beside phase 1 delayed the first symbol
            # answer on scikit-learn from 17 s to 30 s (load ~8), for ~2 s saved.
            # Planned only now, and only with a backlog: most runs (a watcher's save)
            # have little or nothing to embed, and the plan reads the settings.
            pending = 0 if cancel.is_set() or stop.is_set() else self.catalog.pending_count()
            plan = self._bulk_plan() if pending else None
            if plan is not None and pending >= plan[1]:
                live.bulk = bulk.start(plan[0])
                if live.bulk is not None:   # its load (up to LOAD_TIMEOUT) says nothing
                    emit(IndexProgress("embedding", live.files_done, live.files_todo,
                                       summary.chunks_embedded + summary.chunks_shared,
                                       self.eta(), f"starting the {plan[0]} child process"))
            self._embed_batches(summary, emit, cancel, stop, chunk_hook, loaded)
        finally:
            child, live.bulk = live.bulk, None
            if child is not None:
                child.close()   # waited for: its memory is the OS's again
                release_memory()   # and the frames' buffers in this worker

    def _bulk_plan(self) -> tuple[str, int] | None:
        """A bulk child's runtime and the backlog that pays for it (bulk.py); never
        with a shared store's vectors (its misses are few by design)."""
        if self.shared is not None:
            return None
        try:
            return bulk.bulk_plan()
        except EngineError:
            return None   # the in-process load reports a bad configuration

    def _embed_batches(self, summary: IndexSummary, emit: Callable[[IndexProgress], None],
                       cancel: threading.Event, stop: threading.Event,
                       chunk_hook: Callable[[int], None] | None, loaded: bool) -> None:
        """Phase 2's loop: the most wanted pending chunks, a batch at a time."""
        live = self.live
        while not (cancel.is_set() or stop.is_set()):
            batch = self.catalog.next_pending(BATCH_CHUNKS)
            if not batch:
                return
            if not loaded:
                self.load_model()
                loaded = True
            t0 = time.monotonic()
            if live.embed_started is None:
                live.embed_started = t0
            batch.sort(key=lambda p: len(p.text))   # each slice pads little
            got = self._vectors_for([p.text for p in batch], summary,
                                    lambda: cancel.is_set() or stop.is_set())
            if got is None:
                return   # the child was lost while this run was stopping
            vectors, computed = got
            ids = [p.id for p in batch]
            metas = [{"path": p.path, "language": p.language, "kind": p.kind} for p in batch]

            def store() -> None:
                self.vectors.upsert(ids, vectors, metas)
                if chunk_hook is not None:
                    chunk_hook(len(ids))  # tests: a kill between the two stores
                done = self.catalog.mark_embedded(ids)
                gone = [i for i in ids if i not in done]
                if gone:   # their file was re-catalogued meanwhile: vectors of old text
                    self.vectors.delete_ids(gone)
            self._write(store)
            live.embedded += len(ids)
            done = sum(work(p.text) for p in batch)
            live.rate.add(done, time.monotonic() - t0)
            live.backlog.embedded(len(ids), done)
            summary.chunks_embedded += computed
            summary.chunks_shared += len(ids) - computed
            emit(IndexProgress("embedding", live.files_done, live.files_todo,
                               summary.chunks_embedded + summary.chunks_shared, self.eta(),
                               batch[-1].path))

    def _vectors_for(self, texts: list[str], summary: IndexSummary,
                     halted: Callable[[], bool]) -> tuple["np.ndarray", int] | None:
        """The vectors of ``texts`` and how many the model computed: with a shared
        store, the ones it holds are taken from it and only the misses encoded
        (and, by a writer, published); with a bulk child, by the child.  None if
        the child was lost while the run is cancelled or stopping (``halted``):
        re-embedding its batch in-process then would only delay the stop (a worker
        slow to stop is SIGKILLed), and the batch stays pending for the next run."""
        child = self.live.bulk
        if child is not None:
            try:
                return self._encode(texts, child.encode, CHILD_ENCODE_SLICE), len(texts)
            except bulk.BulkFailed as exc:
                self.live.bulk = None
                child.close()
                if halted():
                    return None
                note = (f"the {child.runtime} child process stopped embedding ({exc}); "
                        "embedding the rest in this worker on onnxruntime")
                log.warning("%s", note)
                summary.notes.append(note)
                self.load_model()
        if self.shared is None:
            return self._encode(texts), len(texts)
        import numpy as np

        found = self.shared.fetch(texts)
        misses = [i for i in range(len(texts)) if i not in found]
        if not misses:
            return np.vstack([found[i] for i in range(len(texts))]), 0
        encoded = self._encode([texts[i] for i in misses])
        self.shared.publish([texts[i] for i in misses], encoded)
        if not found:
            return encoded, len(misses)
        out = np.empty((len(texts), encoded.shape[1]), dtype=np.float32)
        out[misses] = encoded
        for i, vec in found.items():
            out[i] = vec
        return out, len(misses)

    def _encode(self, texts: list[str],
                encode: Callable[[list[str]], "np.ndarray"] | None = None,
                size: int = ENCODE_SLICE) -> "np.ndarray":
        """Encode in small slices of ``size``, letting waiting queries go before each
        one; by the worker's embedder, or ``encode`` (a bulk child's: it shares the
        cores a query needs, so a whole batch in one frame kept a query waiting for
        all of it)."""
        import numpy as np

        encode = encode or self.embedder.encode
        parts = []
        for i in range(0, len(texts), size):
            self.gate.let_queries_pass()
            parts.append(encode(texts[i:i + size]))
        return np.vstack(parts)

    def eta(self) -> float | None:
        """Seconds until every chunk has its vector, from this run's recent
        embedding rate (eta.py; None until the first batch is stored).  While
        phase 1 runs, the chunks not catalogued yet are estimated from the bytes
        still to read, each costing what the pending ones do on average."""
        live = self.live
        if live.rate.per_second() is None:
            return None
        try:
            if not live.backlog.measured:   # once a run: a scan of the pending texts
                live.backlog.measure(*self.catalog.pending_work(WORK_CAP))
            left = live.backlog.work_left(self.catalog.pending_count())
        except Exception:  # noqa: BLE001 - an estimate is not worth a failure
            return None
        if live.cataloguing and live.bytes_done > 0:
            per_byte = live.chunks_catalogued / live.bytes_done
            left += per_byte * max(0, live.bytes_total - live.bytes_done) * live.backlog.mean()
        return live.rate.seconds_left(left)

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
