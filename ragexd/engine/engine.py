"""The facade the worker wraps: one Engine per project.

Opening is fast (SQLite only); the vectors are read on first need and the model is
loaded only by ``load_model`` (or the first semantic search / index run), so a
fresh worker answers regex and symbol queries while the model loads.

Thread-safety: one index run at a time (``index`` holds a lock) while any
number of threads call ``search``/``status``.  Readers see each committed batch
of the running index (SQLite WAL), flagged ``partial=True``, and every answer
carries its ``Coverage``: an empty symbol answer while the catalog is
incomplete says "not found in the N of M files indexed so far", never "absent".
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import sqlite3
import threading
from pathlib import Path
from typing import Callable, Sequence

from ..filerules import left_out_note
from ..filetypes import language_for
from ..paths import dir_size
from ..textcodec import text_lines
from ..vocabulary import limit_problem, mode_problem
from . import discovery, snapshot
from .catalog import Catalog
from .embedding import DIM, Embedder, embedder_change, embedder_id
from .indexer import LAST_INDEXED, RUN_FILES, RUN_MARKER, Indexer, LiveRun, QueryGate
from ..query_shape import shape
from .search import (AUTO_NATURAL, NOTHING_MEANINGFUL, Searcher, compile_globs,
                     normalise_languages, validate_text)
from .shared_store import SharedStore, StoreConfig
from .store import BEING_REPLACED, HEAVY_IMPORTS, REBUILD_HINT, is_unwritable
from .types import (Coverage, EngineError, IndexProgress, IndexStatus, IndexSummary,
                    SearchOutcome, SearchQuery, SkippedFile)
from .vectors import VECTORS_FILE, Vectors

log = logging.getLogger(__name__)

CATALOG_FILE = "catalog.sqlite"
CHROMA_DIR = "chroma"
EMBEDDER_KEY = "embedder"
#: catalog meta key: why the last index run failed (absent when it did not)
LAST_ERROR = "last_index_error"
#: catalog meta: how many files the walk leaves out and the first SKIPPED_SHOWN, with
#: why, for `ragexctl status` (small: read on every status)
SKIPPED_KEY = "skipped_files"
#: catalog meta: every file the walk leaves out, with why (read by index runs only)
SKIPPED_ALL_KEY = "skipped_files_all"
#: skipped files named in a status and an index summary (all are counted, and the
#: catalog keeps every one, so a save of any of them is counted exactly)
SKIPPED_SHOWN = 200


def is_store_entry(name: str) -> bool:
    """An entry of the index directory that belongs to the index's stores (the
    catalog and the vector file with their WAL files, an old index's chroma
    store): what a rebuild deletes and an import
    replaces.  Not the owner's lock, project.json or a staging directory."""
    return name.startswith((CATALOG_FILE, VECTORS_FILE)) or name == CHROMA_DIR


#: Where a search of an incomplete index looked.  The counts are the answer's
#: coverage, which every client renders once: notes do not repeat them.
SO_FAR = "the files indexed so far"

#: How long a query by meaning waits for a live re-index of saved files (the
#: freshness promise: a save is found by meaning within 2 s).
LIVE_RUN_WAIT = 2.0


class Engine:
    def __init__(self, root: Path, index_dir: Path, *,
                 max_file_bytes: int = discovery.MAX_FILE_BYTES,
                 store: StoreConfig | None = None) -> None:
        self.root = Path(os.path.realpath(root))
        #: ``[store] backend = "chroma-http"``: the team's vectors, opened on first need
        self._store_conf = store
        self._shared: SharedStore | None = None
        self._shared_lock = threading.Lock()
        self.index_dir = Path(index_dir)
        self.max_file_bytes = max_file_bytes
        self._embedder = Embedder()
        self._index_lock = threading.Lock()
        self._indexing = False
        self._indexer: Indexer | None = None
        self._gate = QueryGate()   # queries go before the index's next encode
        #: clear while a run over a few given paths (a save, seen by the watcher) runs
        self._live_run_done = threading.Event()
        self._live_run_done.set()
        self._refreshing = False   # the running index only keeps a complete one fresh
        self._open_error: EngineError | None = None
        self._last_error: str | None = None  # None: not known in memory, read the catalog
        self._catalog: Catalog | None = None
        self._vectors: Vectors | None = None
        self._searcher: Searcher | None = None
        #: fault injection for tests: called between the chroma and sqlite writes
        self._fault_hook: Callable[[int], None] | None = None
        self._open()

    # -- stores -----------------------------------------------------------------------

    def _open(self) -> None:
        self._open_error = None
        try:
            self.index_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._open_error = EngineError(
                "index_unwritable", f"cannot create the index directory {self.index_dir}: "
                f"{exc.strerror or exc}")
            return
        try:
            snapshot.recover(self.index_dir)   # a kill mid-import: finish or undo it
        except OSError as exc:
            self._open_error = EngineError(
                "index_unwritable", f"cannot finish an interrupted snapshot import in "
                f"{self.index_dir}: {exc.strerror or exc}")
            return
        try:
            self._catalog = Catalog(self.index_dir / CATALOG_FILE)
        except EngineError as exc:
            self._catalog = None
            self._open_error = exc
            return
        self._vectors = Vectors(self.index_dir / CHROMA_DIR, self.index_dir / VECTORS_FILE)
        self._searcher = Searcher(self.root, self._catalog, self._vectors, self._embedder,
                                  self._rules)

    def _close_stores(self) -> None:
        if self._vectors is not None:
            self._vectors.close()
        if self._catalog is not None:
            self._catalog.close()
        self._catalog = self._vectors = self._searcher = None

    def _rules(self) -> discovery.IgnoreRules:
        # fresh per call: ignore files may have been edited since the last search
        return discovery.IgnoreRules(self.root, (self.index_dir,))

    def _require_open(self) -> tuple[Catalog, Vectors, Searcher]:
        if self._open_error is not None and self._open_error.code == "index_unwritable":
            self._open()  # space freed, or the directory writable again since?
        if self._open_error is not None:
            raise self._open_error
        if not (self._catalog and self._vectors and self._searcher):
            # between _close_stores and _open: a snapshot import or a rebuild swapping
            raise EngineError("busy", BEING_REPLACED)
        return self._catalog, self._vectors, self._searcher

    def _rebuild_stores(self) -> None:
        """Drop every file of the index (not project.json) and start empty."""
        self._close_stores()
        try:
            for name in os.listdir(self.index_dir) if self.index_dir.exists() else []:
                path = self.index_dir / name
                if is_store_entry(name):
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path)
                    else:
                        path.unlink()
        except OSError as exc:
            raise EngineError("index_unwritable",
                              f"cannot delete the old index in {self.index_dir}: "
                              f"{exc.strerror or exc}") from exc
        self._open()
        if self._open_error is not None:
            raise self._open_error

    def shared_store(self) -> SharedStore | None:
        """The shared vector store of this project (None: local only).  Made on
        first need: naming its collection asks git and the embedder's id."""
        if self._store_conf is not None and self._shared is None:
            with self._shared_lock:   # status (any thread) and the index may ask at once
                if self._shared is None:
                    self._shared = SharedStore(self._store_conf, self.root, embedder_id(), DIM)
        return self._shared

    def _store_notes(self) -> list[str]:
        """The shared store's problem, for answers (searches never wait on it)."""
        problem = self._shared.problem() if self._shared is not None else None
        return [f"shared vectors unavailable: {problem}"] if problem else []

    # -- model ------------------------------------------------------------------------

    def load_model(self) -> None:
        if not self._embedder.loaded:
            with HEAVY_IMPORTS:
                self._embedder.load()

    def preload_vectors(self) -> threading.Thread:
        """Read the vectors into memory now, in a thread: a cold worker does it
        beside its model's load, so its first query by meaning waits for the
        longer of the two, not their sum.  An error waits for that query, which
        reports it."""
        with HEAVY_IMPORTS:   # never imported beside the model's own numpy import
            import numpy  # noqa: F401

        def run() -> None:
            try:
                self._require_open()[1].count()
            except Exception:  # noqa: BLE001 - the first search says what is wrong
                log.debug("could not preload the vectors", exc_info=True)

        thread = threading.Thread(target=run, name="vectors-preload", daemon=True)
        thread.start()
        return thread

    def warm_model(self) -> None:
        """Run the model once on a short text: its first run allocates its buffers
        (~0.1-0.2 s), which a cold worker pays before anyone waits for it."""
        if self._embedder.loaded:
            self._embedder.encode_query("warm up")

    @property
    def model_loaded(self) -> bool:
        return self._embedder.loaded

    # -- indexing ---------------------------------------------------------------------

    def index(self, *, rebuild: bool = False, paths: Sequence[str] | None = None,
              progress: Callable[[IndexProgress], None] | None = None,
              cancel: threading.Event | None = None, refresh: bool = False) -> IndexSummary:
        """Index the tree (or ``paths``).  ``refresh``: the watcher keeping a complete
        index fresh (a save, a catch-up scan): searches meanwhile are not "partial"."""
        with self._index_lock:
            self._indexer = None   # coverage must not read the last run's progress
            self._indexing = True
            self._refreshing = refresh
            if paths is not None:
                self._live_run_done.clear()
            # why this run re-embeds everything, said again after it: on a terminal the
            # progress line that said it first is drawn over by the next one
            rebuilt_because = ""
            try:
                if not rebuild and self._catalog is not None and self._open_error is None:
                    made_with = self._catalog.get_meta(EMBEDDER_KEY)
                    if made_with is not None and made_with != embedder_id():
                        # The model first: if its files are missing or broken, fail
                        # before the rebuild below wipes vectors that could not be
                        # made again.  (Otherwise the indexer's embedding thread loads
                        # it while the first files are catalogued.)
                        if not self.model_loaded:
                            if progress is not None:
                                progress(IndexProgress("loading-model",
                                                       message="loading the model"))
                            self.load_model()
                        rebuilt_because = ("the index was embedded with "
                                           f"{embedder_change(made_with, embedder_id())}")
                        why = f"{rebuilt_because}: rebuilding it once (vectors are never mixed)"
                        log.warning("%s", why)
                        if progress is not None:
                            progress(IndexProgress("rebuilding", message=why))
                        rebuild, paths = True, None
                if rebuild:
                    self._rebuild_stores()
                catalog, vectors, _ = self._require_open()
                if catalog.read_only or vectors.read_only:
                    # opened read-only (full disk, read-only directory): maybe no longer
                    self._close_stores()
                    self._open()
                    catalog, vectors, _ = self._require_open()
                if catalog.read_only or vectors.read_only:
                    raise EngineError("index_unwritable",
                                      f"the index directory {self.index_dir} cannot be written "
                                      "(a read-only file system or a full disk); make it "
                                      "writable or free some space, then index again. The "
                                      "existing index is still searchable.")
                if catalog.get_meta(EMBEDDER_KEY) is None:
                    Indexer._write(lambda: catalog.set_meta(EMBEDDER_KEY, embedder_id()))
                # No model load here: cataloguing needs none, and the indexer's
                # embedding thread loads it while the first files are catalogued.
                self._indexer = Indexer(self.root, catalog, vectors, self._embedder,
                                        excluded=(self.index_dir,),
                                        max_file_bytes=self.max_file_bytes,
                                        gate=self._gate, load_model=self.load_model,
                                        shared=self.shared_store())
                try:
                    summary = self._indexer.run(
                        paths=paths, progress=progress, cancel=cancel,
                        chunk_hook=self._fault_hook,
                        record=lambda s: self._remember_skipped(catalog, s, paths))
                    if rebuilt_because:
                        summary.notes.insert(0, f"{rebuilt_because}, so it was rebuilt "
                                                "(vectors are never mixed)")
                    summary.notes.extend(self._store_notes())
                    self._note_failure(None)
                    summary.skipped_total = len(summary.skipped)
                    del summary.skipped[SKIPPED_SHOWN:]
                    return summary
                except sqlite3.DatabaseError as exc:
                    if is_unwritable(exc):
                        raise EngineError("index_unwritable",
                                          f"cannot write the index ({exc}); free disk space or "
                                          "make the index directory writable") from exc
                    raise EngineError("index_corrupt",
                                      f"the index catalog cannot be read ({exc}); "
                                      f"{REBUILD_HINT}") from exc
                except EngineError:
                    raise
                except Exception as exc:  # noqa: BLE001 - the vector store's own errors
                    # chromadb reports a full or read-only disk as its own InternalError;
                    # that is the user's to fix, not a bug, and the old index still serves.
                    if is_unwritable(exc):
                        raise EngineError("index_unwritable",
                                          f"cannot write the index ({exc}); free disk space or "
                                          "make the index directory writable, then index "
                                          "again. The previous index is still searchable.") from exc
                    raise
            except BaseException as exc:
                self._note_failure(exc)
                if isinstance(exc, EngineError) and exc.code == "index_unwritable":
                    self._reopen_after_failed_write()
                raise
            finally:
                self._indexing = self._refreshing = False
                self._live_run_done.set()

    def _remember_skipped(self, catalog: Catalog, summary: IndexSummary,
                          paths: Sequence[str] | None) -> bool:
        """Keep what this run left out, with why, for `ragexctl status`: a full run
        replaces the set, a run over some paths (a save) updates those paths only.
        The whole set is kept (SKIPPED_ALL_KEY), not only the names a status shows,
        so a save of a file that stays skipped is not counted twice, and one that
        becomes indexable is subtracted, wherever it sorts.  The indexer calls it
        before its compaction; returns whether it wrote (so the WAL it grew is
        truncated even by a run that would not compact)."""
        # files catalogued with a note (binary, generated) are counted from the catalog
        found = {s.path: s.reason for s in summary.skipped if catalog.file(s.path) is None}
        kept: dict[str, str] = {}
        unnamed = 0     # > 0 only after a record from before the whole set was kept
        if paths is not None or summary.cancelled:
            unnamed, kept = self._all_skipped(catalog)
            root = str(self.root).rstrip(os.sep) + os.sep
            for raw in paths or ():
                kept.pop(raw[len(root):] if raw.startswith(root) else raw, None)
        kept.update(found)
        every = dict(sorted(kept.items()))
        record = json.dumps({"count": unnamed + len(every),
                             "files": dict(itertools.islice(every.items(), SKIPPED_SHOWN))})
        full = json.dumps({"unnamed": unnamed, "files": every})
        changed = False
        for key, value in ((SKIPPED_ALL_KEY, full), (SKIPPED_KEY, record)):
            if value != catalog.get_meta(key):
                Indexer._write(lambda k=key, v=value: catalog.set_meta(k, v))
                changed = True
        return changed

    @staticmethod
    def _all_skipped(catalog: Catalog) -> tuple[int, dict[str, str]]:
        """Every file the walk left out, with why, and how many more it counted
        without names (an index written before ragex kept them all)."""
        try:
            data = json.loads(catalog.get_meta(SKIPPED_ALL_KEY) or "null")
            if isinstance(data, dict):
                return (int(data.get("unnamed") or 0),
                        {str(k): str(v) for k, v in dict(data.get("files") or {}).items()})
        except (ValueError, TypeError, AttributeError):
            pass
        count, named = Engine._walk_skipped(catalog)
        return count - len(named), named

    @staticmethod
    def _walk_skipped(catalog: Catalog) -> tuple[int, dict[str, str]]:
        """The files the walk left out, never catalogued (too large, not regular,
        unreadable, outside symlinks...): how many, the first SKIPPED_SHOWN."""
        try:
            data = json.loads(catalog.get_meta(SKIPPED_KEY) or "{}")
            files = {str(k): str(v) for k, v in dict(data.get("files") or {}).items()}
            return max(int(data.get("count") or 0), len(files)), files
        except (ValueError, TypeError, AttributeError):
            return 0, {}

    def _skipped(self, catalog: Catalog, keep: Callable[[str], bool] | None = None
                 ) -> tuple[int, dict[str, str]]:
        """Every file the index leaves out: the walk's, and those catalogued
        without chunks (binary, minified...): how many, the first SKIPPED_SHOWN.
        With ``keep``, only the files it keeps (a search's --path and --lang)."""
        if keep is not None:
            # every one, not the first SKIPPED_SHOWN: the kept ones may sort after them
            named = self._all_skipped(catalog)[1]
            named.update(catalog.noted_files(-1)[1])   # every one: SQLite's no-limit
            kept = sorted((p, why) for p, why in named.items() if keep(p))
            return len(kept), dict(kept[:SKIPPED_SHOWN])
        walked, named = self._walk_skipped(catalog)
        noted, rows = catalog.noted_files(SKIPPED_SHOWN)
        named.update(rows)
        return walked + noted, dict(sorted(named.items())[:SKIPPED_SHOWN])

    def _left_out_note(self, keep: Callable[[str], bool] | None = None) -> list[str]:
        """An empty answer must not read as "it does not exist" when files were left
        out (too large, binary, unreadable...): an agent told "no definition named X"
        stops looking, and X sat in a 1.2 MB generated module.  A regex answer asks
        ripgrep instead (Searcher.regex_hits): it reads some files the index leaves
        out (a name that is not UTF-8, minified text), which the index's count
        claimed were not searched."""
        catalog = self._catalog
        if catalog is None:
            return []
        try:
            count, named = self._skipped(catalog, keep)
        except sqlite3.Error:
            return []
        if not count:
            return []
        example = next(iter(sorted(named.items())), None)
        return [left_out_note(count, example, "; `ragexctl status` names them")]

    def _reopen_after_failed_write(self) -> None:
        """Never reuse a vector store whose write failed: after a full disk,
        chroma's next upsert on the same client could block forever holding the
        GIL (the worker froze until ragexd killed it as hung).  Close both stores
        (which drops chroma's cached system for the path) and open them afresh;
        searches meanwhile retry once on the swapped stores, as after a rebuild."""
        self._close_stores()
        self._open()

    def _note_failure(self, exc: BaseException | None) -> None:
        """Remember why the last index run failed (None: it did not), in memory
        and, when the catalog still takes writes, in it: a failed run must not
        look like one still being built, in this worker or the next."""
        if exc is None:
            message = None
        elif isinstance(exc, EngineError):
            message = exc.message
        elif isinstance(exc, (KeyboardInterrupt, SystemExit)):
            message = "interrupted"
        else:
            message = f"{type(exc).__name__}: {exc}"
        self._last_error = message or ""
        catalog = self._catalog
        if catalog is None or catalog.read_only:
            return
        try:
            if catalog.get_meta(LAST_ERROR) != message:
                catalog.set_meta(LAST_ERROR, message)
        except Exception:  # noqa: BLE001 - a full disk: the memory copy still tells
            log.debug("cannot record the index failure in the catalog", exc_info=True)

    def last_error(self) -> str:
        """Why the last index run failed, or "" (it succeeded, or none ran)."""
        if self._last_error is not None:
            return self._last_error
        try:
            return (self._catalog.get_meta(LAST_ERROR) or "") if self._catalog else ""
        except sqlite3.Error:
            return ""

    # -- snapshots --------------------------------------------------------------------

    def export_snapshot(self, dest: Path, fmt: int = snapshot.SNAPSHOT_FORMAT
                        ) -> snapshot.Manifest:
        """Write the index as a snapshot archive at ``dest`` (snapshot.py), in
        ``fmt`` (an older format: ``snapshot.export``).  Run it after a complete
        index: chunks still waiting for a vector go without one (the importer
        embeds them)."""
        with self._index_lock:
            catalog, vectors, _ = self._require_open()
            made_with = catalog.get_meta(EMBEDDER_KEY) or embedder_id()
            try:
                return snapshot.export(self.root, catalog, vectors, Path(dest),
                                       embedder=made_with, fmt=fmt)
            except OSError as exc:
                raise EngineError("index_unwritable",
                                  f"cannot write the snapshot {dest}: "
                                  f"{exc.strerror or exc}") from exc

    def import_snapshot(self, archive: Path, progress: Callable[[IndexProgress], None] | None = None
                        ) -> snapshot.Manifest:
        """Make the snapshot ``archive`` this project's index, atomically: it is
        checked and its stores built in ``.snapshot/`` inside the index directory,
        and only then swapped in.  Anything wrong with it raises ``bad_snapshot``
        and leaves the existing index as it was.  The caller then runs ``index``
        to catch up with the tree (only files whose content differs are read
        into new chunks)."""
        with self._index_lock:
            work = self.index_dir / snapshot.WORK_DIR
            snapshot.recover(self.index_dir)
            try:
                work.mkdir(mode=0o700)
                if progress is not None:
                    progress(IndexProgress("checking", message=f"checking {archive}"))
                manifest = snapshot.stage(Path(archive), work / "in", embedder_id())
                if progress is not None:
                    progress(IndexProgress(
                        "installing", files_total=len(manifest.files),
                        message=f"installing {len(manifest.files)} files, {manifest.chunks} "
                                f"vectors (commit {(manifest.commit or '-')[:12]})"))
                (work / "new").mkdir(mode=0o700)
                snapshot.build(work / "in", manifest, work / "new" / CATALOG_FILE,
                               work / "new" / CHROMA_DIR, work / "new" / VECTORS_FILE)
                shutil.rmtree(work / "in", ignore_errors=True)
            except BaseException as exc:
                shutil.rmtree(work, ignore_errors=True)
                if isinstance(exc, OSError):
                    raise EngineError("index_unwritable", f"cannot unpack the snapshot into "
                                      f"{self.index_dir}: {exc.strerror or exc}") from exc
                raise
            self._close_stores()
            try:
                snapshot.install(work, self.index_dir, is_store_entry)
            except OSError as exc:
                raise EngineError("index_unwritable", f"cannot install the snapshot into "
                                  f"{self.index_dir}: {exc.strerror or exc}") from exc
            finally:
                snapshot.recover(self.index_dir)   # a failed rename: undo or finish it
                self._last_error = None
                self._open()
            if self._open_error is not None:
                raise self._open_error
            log.info("imported the snapshot %s (commit %s, %d files, %d chunks)", archive,
                     manifest.commit or "-", len(manifest.files), manifest.chunks)
            return manifest

    def base_wanted(self, archive: Path) -> snapshot.Manifest | None:
        """The manifest of ``archive`` when it should become this index's base: no
        complete local index yet, or one older than the snapshot (and not made
        from this very snapshot).  None when the local index is at least as new,
        or the snapshot cannot serve (another embedder...: logged)."""
        try:
            manifest = snapshot.read_manifest(Path(archive), embedder_id())
        except EngineError as exc:
            log.warning("not using the base snapshot %s: %s", archive, exc.message)
            return None
        catalog = self._catalog
        if catalog is None or self._open_error is not None:
            return manifest
        last = catalog.get_meta(LAST_INDEXED)
        mine = catalog.get_meta(snapshot.SNAPSHOT_META)
        if mine is not None:
            try:
                if json.loads(mine).get("created_at") == manifest.created_at:
                    return None   # already installed from this one
            except (ValueError, AttributeError):
                pass
        if last is None or float(last) < manifest.created_at:
            return manifest
        return None

    # -- search -----------------------------------------------------------------------

    def search(self, query: SearchQuery) -> SearchOutcome:
        text = validate_text(query.text)
        for problem in (mode_problem(query.mode), limit_problem(query.limit)):
            if problem is not None:
                raise EngineError(problem.code, problem.message, **problem.detail)
        globs, match = compile_globs(self.root, query.path_globs)
        languages = normalise_languages(query.languages)
        for attempt in range(2):
            try:
                outcome = self._search(text, query.mode, query.limit, globs, match, languages)
                if not outcome.hits:
                    outcome.notes.extend(self._ignored_paths_note(globs))
                if not outcome.hits and outcome.mode != "regex":   # regex_hits says it
                    # only files the search would have read: a `-t go` search for a
                    # name must not point at a binary .sql file
                    outcome.notes.extend(self._left_out_note(
                        (lambda p: match(p) and (not languages or language_for(p) in languages))
                        if query.path_globs or languages else None))
                outcome.notes.extend(self._store_notes())
                failed = "" if self._indexing else self.last_error()
                if failed:
                    outcome.notes.append(f"the last index failed ({failed}); results may be "
                                         "incomplete: fix that, then run `ragexctl index`")
                return outcome
            except sqlite3.ProgrammingError:
                if attempt:  # the stores were swapped by a rebuild mid-query: retry once
                    raise EngineError("index_corrupt", "the index changed during the search; "
                                      "retry") from None
            except sqlite3.DatabaseError as exc:
                raise EngineError("index_corrupt", f"the index cannot be read ({exc}); "
                                  f"{REBUILD_HINT}") from exc
        raise AssertionError("unreachable")

    def _search(self, text: str, mode: str, limit: int, globs: list[str],
                match: Callable[[str], bool], languages: list[str]) -> SearchOutcome:
        notes: list[str] = []
        if mode == "regex" or (mode == "auto" and shape(text) == "regex"):
            searcher = self._searcher
            if searcher is None:  # a broken index must not stop a grep
                searcher = Searcher(self.root, _NullCatalog(), None,  # type: ignore[arg-type]
                                    self._embedder, self._rules)
            try:
                # ripgrep reads the live files: exact whatever the index holds
                hits, notes = searcher.regex_hits(text, limit, globs, languages, match,
                                                  final=mode == "regex"
                                                  or self._open_error is not None)
                if hits or mode == "regex" or self._open_error is not None:
                    # never partial, no coverage to report: ripgrep read every live
                    # file, whatever the index holds
                    return SearchOutcome(hits, "regex", False, notes, None)
                notes = ["no line matches it as a regex; searched by meaning instead"]
                mode = "hybrid"
            except EngineError as exc:
                if mode == "regex" or exc.code != "invalid_regex":
                    raise
                notes.append(f"not a valid regex ({exc.message.splitlines()[-1]}); "
                             "searched by meaning instead")
                mode = "hybrid"
        catalog, vectors, searcher = self._require_open()
        partial = self._partial()
        cov = self.coverage()
        # A symbol answer needs only the catalogue: once every file is catalogued it is
        # complete, however much embedding is left (was: "results may be incomplete"
        # on every symbol search while a first index embedded for minutes).  While a
        # run still catalogues, new files it has not read yet may hold the name, even
        # in an index that was complete before the run.
        symbol_partial = partial and (not cov.catalog_complete or self._cataloguing())
        if mode == "auto":
            if shape(text) == "symbol":
                ranked = searcher.symbol_ranked(text, limit, languages, match, fuzzy=False)
                if ranked:
                    return SearchOutcome(searcher.to_hits(ranked), "symbol", symbol_partial,
                                         notes, cov)
                notes.append("no symbol by that name" + (
                    "" if cov.catalog_complete else f" in {SO_FAR}")
                    + "; searched by meaning instead")
            mode = AUTO_NATURAL
        if mode == "symbol":
            ranked = searcher.symbol_ranked(text, limit, languages, match)
            if not ranked:
                notes.extend(self._not_found_note(cov, "no definition by that name"))
        elif mode == "semantic":
            self._await_live_run()
            self.load_model()
            with self._gate.query():   # the model is ours before the index's next slice
                ranked = searcher.semantic_ranked(text, limit, languages, match)
        elif self._indexing and not self.model_loaded:
            # A first index loads the model beside its cataloguing: do not make the
            # answer wait seconds for it when keywords and symbols can answer now.
            mode = "hybrid"
            notes.append("the model is still loading; ranked by keywords and symbols only")
            ranked = searcher.hybrid_ranked(text, limit, languages, match, semantic=False)
        else:
            self._await_live_run()
            self.load_model()
            mode = "hybrid"
            try:
                with self._gate.query():
                    ranked = searcher.hybrid_ranked(text, limit, languages, match)
            except EngineError as exc:
                if exc.code != "index_unwritable":
                    raise
                # vectors unreadable on read-only media: keywords and symbols still work
                notes.append("the vector store cannot be opened (read-only index directory); "
                             "ranked by keywords only")
                ranked = searcher.hybrid_ranked(text, limit, languages, match, semantic=False)
        # how much was embedded or catalogued is the answer's coverage, which every
        # client renders: a note restating it was said twice or three times
        if mode != "symbol" and not ranked:
            notes.extend(self._not_found_note(cov, "nothing found"))
        if not ranked and cov.chunks_indexed == 0 and not self._indexing:
            notes.append(
                "the index is empty; run `ragexctl index` first"
                if catalog.get_meta(LAST_INDEXED) is None else
                # indexing again would change nothing (was: the same advice)
                "the index is empty: the last index found no file to read as code or text "
                "(every file is ignored by .gitignore, .ragexignore or ragex's default "
                "excludes, or left out: `ragexctl status` names those)")
        elif not ranked and mode in ("semantic", "hybrid") and cov.catalog_complete:
            notes.append(NOTHING_MEANINGFUL)
        return SearchOutcome(searcher.to_hits(ranked), mode,
                             symbol_partial if mode == "symbol" else partial, notes, cov)

    # -- similar ----------------------------------------------------------------------

    def similar(self, path: str, line: int, limit: int, path_globs: Sequence[str] = (),
                languages: Sequence[str] = ()) -> SearchOutcome:
        """The chunks most like the one holding ``path:line`` (relative to the root),
        from the stored vectors: no model, no re-embedding, so it answers the same
        whatever the model's state.  Every reason it cannot is an EngineError with a
        sentence: not indexed (and why), changed since indexed, past the end, no
        vector yet."""
        problem = limit_problem(limit)
        if problem is not None:
            raise EngineError(problem.code, problem.message, **problem.detail)
        _globs, match = compile_globs(self.root, path_globs)
        langs = normalise_languages(languages)
        catalog, vectors, searcher = self._require_open()
        self._await_live_run()
        try:
            return self._similar(catalog, vectors, searcher, path, line, limit, langs, match)
        except sqlite3.DatabaseError as exc:
            raise EngineError("index_corrupt", f"the index cannot be read ({exc}); "
                              f"{REBUILD_HINT}") from exc

    def _similar(self, catalog: Catalog, vectors: Vectors, searcher: Searcher, rel: str,
                 line: int, limit: int, languages: list[str],
                 match: Callable[[str], bool]) -> SearchOutcome:
        cov = self.coverage()
        manifest = catalog.file(rel)
        if manifest is None:
            raise EngineError("not_found", self._why_not_indexed(rel, cov), path=rel)
        try:
            data, st = discovery.read_bytes(self.root / rel, self.max_file_bytes)
        except discovery.Unreadable as exc:
            raise EngineError("not_found", f"{rel} cannot be read now ({exc.reason}); run "
                              "`ragexctl index` to bring the index up to date",
                              path=rel) from None
        if st.st_size != manifest.size or st.st_mtime_ns != manifest.mtime_ns:
            raise EngineError("not_found", f"{rel} changed since it was indexed, so its stored "
                              "chunks no longer match its lines; run `ragexctl index` (saved "
                              "files are re-indexed within seconds by a running worker) and "
                              "ask again", path=rel, reason="stale")
        try:   # counted as the chunks' lines were (UTF-16 too)
            lines = len(text_lines(discovery.decode(data)))
        except discovery.Unreadable:
            lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
        if line > lines:
            raise EngineError("bad_query", f"line {line} is past the end of {rel} "
                              f"({lines} line{'s' if lines != 1 else ''})", path=rel,
                              line=line, lines=lines, field="line")
        chunks = catalog.chunks_of(rel)
        if not chunks:
            why = f" ({manifest.note})" if manifest.note else ""
            raise EngineError("not_found", f"{rel} is indexed without chunks{why}, so nothing "
                              "can be compared with it", path=rel)
        inside = [c for c in chunks if c.start <= line <= c.end]
        notes: list[str] = []
        if inside:
            source = min(inside, key=lambda c: (c.end - c.start, -c.start))
        else:   # a blank line between definitions: the nearest chunk is what was meant
            source = min(chunks, key=lambda c: (min(abs(c.start - line), abs(c.end - line)),
                                                c.start))
            notes.append(f"no chunk holds {rel}:{line}; compared the nearest one, "
                         f"{rel}:{source.start}-{source.end}")
        vec = None if catalog.is_pending(source.id) else vectors.vector_of(source.id)
        if vec is None:
            raise EngineError("not_found", f"{rel}:{line} has no stored vector yet: "
                              f"{cov.embedded_note()}; ask again once it is embedded (see "
                              "`ragexctl status`)", path=rel, reason="not_embedded",
                              chunks_embedded=cov.chunks_embedded,
                              chunks_indexed=cov.chunks_indexed)
        ranked = searcher.similar_ranked(source, vec, limit, languages, match)
        return SearchOutcome(searcher.to_hits(ranked), "similar", self._partial(), notes, cov)

    @staticmethod
    def _ignored_sentence(rel: str, what: str) -> str:
        """Why the ignored ``rel`` is not ``what`` (indexed, searched), naming a default
        exclude and the line that brings it back: a person told only "ignored" looks
        in their own .gitignore, never at ragex's list (``vendor/`` among it)."""
        vcs = next((part for part in rel.split("/") if part in discovery.ALWAYS_SKIP_DIRS), None)
        if vcs is not None:   # `.git/config` is nobody's ignore rule: naming them misled
            return (f"{rel} is inside {vcs}/, the version control system's own folder, so it "
                    f"is never {what}")
        default = discovery.default_exclude(rel)
        if default is not None:
            return (f"{rel} is left out by ragex's default excludes ({default}), so it is "
                    f"not {what}; a `!{default}` line in .ragexignore brings it back")
        return (f"{rel} is ignored (by .gitignore, .ignore, .rgignore, .ragexignore or "
                f"git's excludes), so it is not {what}")

    def refuse_if_left_out(self, rel: str) -> None:
        """An index asked for by naming ``rel`` (``ragexctl index PATH``), which the
        index leaves out by its ignore rules: refused with the sentence that says
        which rule and how to bring it back.  It used to index the project around
        it and say nothing, so the person looked for their file and never found it."""
        full = self.root / rel
        if os.path.lexists(full) and self._rules().is_ignored(rel, is_dir=full.is_dir()):
            raise EngineError("not_found", self._ignored_sentence(rel, "indexed"), path=rel,
                              reason="ignored")

    def _ignored_paths_note(self, globs: Sequence[str]) -> list[str]:
        """An empty answer to a search narrowed to a path the index leaves out
        (``--path vendor/x.go``) says so: it read as "not there"."""
        if not globs:
            return []
        rules, notes = self._rules(), []
        for rel in (g.rstrip("/") for g in globs):
            if rel.startswith("!") or any(ch in rel for ch in "*?[") or rel in ("", "**"):
                continue
            full = self.root / rel
            if os.path.lexists(full) and rules.is_ignored(rel, is_dir=full.is_dir()):
                notes.append(self._ignored_sentence(rel, "searched"))
        return notes

    def _why_not_indexed(self, rel: str, cov: Coverage) -> str:
        """Why a file has no entry in the catalog, as precisely as can be told."""
        full = self.root / rel
        if not os.path.lexists(full):
            return f"there is no file {rel} in the project {self.root}"
        if os.path.isdir(full):
            return f"{rel} is a directory; give a file and a line: PATH:LINE"
        if self._rules().is_ignored(rel):
            return self._ignored_sentence(rel, "indexed")
        checked = discovery.stat_one(self.root, rel, self._rules(), self.max_file_bytes)
        if isinstance(checked, SkippedFile):
            return f"{rel} is not indexed: {checked.reason}"
        if checked is None:
            return f"{rel} is not indexed (a symlink, or through one)"
        if cov.files_indexed == 0 and not self._indexing:
            return (f"the project {self.root} is not indexed yet: run `ragexctl index` (or any "
                    "search) first")
        if self._indexing or not cov.catalog_complete:
            return (f"{rel} is not indexed yet ({cov.files_note()}); ask again when the index "
                    "is complete (`ragexctl index` completes it)")
        return (f"{rel} is not in the index: it is binary or not text, or it was added after "
                "the last index (`ragexctl index` adds it)")

    def _not_found_note(self, cov: Coverage, what: str) -> list[str]:
        """Why an empty answer does not mean absent, when the catalog is incomplete."""
        if cov.catalog_complete or (cov.chunks_indexed == 0 and not self._indexing):
            return []   # complete: absent means absent; empty: the caller says so
        later = ("the index is still being built, so it may yet be found: ask again shortly"
                 if self._indexing else "the index is incomplete; `ragexctl index` "
                 "completes it")
        return [f"{what} in {SO_FAR}; {later}"]

    def _coverage_or_none(self) -> Coverage | None:
        try:
            return self.coverage()
        except (EngineError, sqlite3.Error):
            return None

    def coverage(self) -> Coverage:
        """What the index covers right now (cheap: three counts and two meta rows)."""
        catalog = self._catalog
        if catalog is None or self._open_error is not None:
            return Coverage(catalog_complete=False, complete=False)
        files, chunks = catalog.stats()
        embedded = max(0, chunks - catalog.pending_count())
        indexer = self._indexer if self._indexing else None
        # a run that has not started its indexer yet knows nothing: assume the worst
        live = (indexer.live if indexer is not None else LiveRun()) if self._indexing else None
        eta = None
        if live is not None:
            catalog_complete = live.was_complete or not live.cataloguing
            total: int | None = live.files_total if live.files_total or \
                not live.cataloguing else None
            eta = indexer.eta() if indexer is not None and embedded < chunks else None
        elif catalog.get_meta(RUN_MARKER) is not None:   # interrupted: resumes on next run
            catalog_complete = False
            raw = catalog.get_meta(RUN_FILES)
            total = int(raw) if raw and raw.isdigit() else None
        elif catalog.get_meta(LAST_INDEXED) is None:   # never fully indexed: unknown
            catalog_complete, total = False, None
        else:
            catalog_complete, total = True, files
        if catalog_complete and total is not None:
            total = max(total, files)
        return Coverage(files_indexed=files, files_total=total, chunks_indexed=chunks,
                        chunks_embedded=embedded, catalog_complete=catalog_complete,
                        complete=catalog_complete and embedded >= chunks, eta_seconds=eta)

    def _await_live_run(self) -> None:
        """Read your writes: a saved file re-indexed by the watcher is catalogued
        before its vectors are stored, so a query by meaning arriving in between
        would find neither the old code nor the new.  Such a query waits (briefly,
        and before it takes the model from the indexer) for that small run."""
        if not self._live_run_done.is_set():
            self._live_run_done.wait(LIVE_RUN_WAIT)

    def _cataloguing(self) -> bool:
        """Is a run reading files into the catalogue right now (its phase 1)?  A run
        whose indexer has not started yet is assumed to be."""
        if not self._indexing:
            return False
        indexer = self._indexer
        return indexer is None or indexer.live.cataloguing

    def _partial(self) -> bool:
        """Is the index still being built (answers may miss whole files)?  Not while
        the watcher only refreshes a complete index: the few files it re-reads are
        flagged ``stale`` in the hits instead."""
        if self._catalog is None:
            return self._indexing
        try:
            if self._indexing:
                return not (self._refreshing
                            and self._catalog.get_meta(LAST_INDEXED) is not None)
            if self._catalog.get_meta(RUN_MARKER) is not None:
                # unfinished: being built, or killed mid-run (the next run completes
                # it); a run that failed is not "being built", and search says why
                return not self.last_error()
            return self._catalog.get_meta(LAST_INDEXED) is None and \
                self._catalog.stats()[0] > 0
        except sqlite3.Error:
            return False

    # -- status -----------------------------------------------------------------------

    def status(self) -> IndexStatus:
        size = dir_size(self.index_dir)
        if self._open_error is not None:
            state = "corrupt" if self._open_error.code == "index_corrupt" else "empty"
            return IndexStatus(state=state, size_bytes=size, model_loaded=self.model_loaded)
        catalog = self._catalog
        if catalog is None:   # a snapshot import or a rebuild is swapping the stores
            return IndexStatus(state="indexing", size_bytes=size, model_loaded=self.model_loaded)
        try:
            files, chunks = catalog.stats()
            marker = catalog.get_meta(RUN_MARKER)
            last = catalog.get_meta(LAST_INDEXED)
            skipped, skipped_files = self._skipped(catalog)
        except sqlite3.DatabaseError:
            return IndexStatus(state="corrupt", size_bytes=size, model_loaded=self.model_loaded)
        except EngineError:   # closed under us by that swap
            return IndexStatus(state="indexing", size_bytes=size, model_loaded=self.model_loaded)
        if self._indexing:
            state = "indexing"
        elif marker is not None or (files and last is None):
            state = "partial"   # interrupted, or only some paths were ever indexed
        elif last is not None:
            state = "ready"
        else:
            state = "empty"
        pending = 0
        try:
            if self._indexing and self._indexer:
                # not catalogued yet, plus catalogued but not yet embedded
                pending = self._indexer.pending_files + catalog.pending_files()
            cov: Coverage | None = self.coverage()
        except (sqlite3.DatabaseError, EngineError):
            cov = None
        return IndexStatus(state=state, files=files, chunks=chunks, size_bytes=size,
                           last_indexed=float(last) if last else None,
                           model_loaded=self.model_loaded, pending_files=pending,
                           coverage=cov,
                           last_error="" if self._indexing else self.last_error(),
                           store=self._store_status(), skipped=skipped,
                           skipped_files=[{"path": p, "reason": r}
                                          for p, r in skipped_files.items()],
                           embedder=self._embedder_status())

    def _embedder_status(self) -> dict[str, object] | None:
        """The runtime embedding queries here and, while an index runs on a bulk child
        (bulk.py), that child's runtime and pid."""
        info: dict[str, object] | None = self._embedder.describe()
        indexer = self._indexer
        child = indexer.live.bulk if indexer is not None and self._indexing else None
        if child is not None:
            info = {**(info or {}), "bulk": child.describe()}
        return info

    def _store_status(self) -> dict[str, object] | None:
        try:
            shared = self.shared_store()
        except EngineError as exc:   # the model's files are broken: say so, do not fail
            return {"backend": "chroma-http", "problem": exc.message}
        return shared.describe() if shared is not None else None

    def release_thread(self) -> None:
        """Close the calling thread's catalog connection (for threads that end)."""
        if self._catalog is not None:
            self._catalog.release_thread()

    def close(self) -> None:
        with self._index_lock:
            self._close_stores()
            if self._shared is not None:
                self._shared.close()


class _NullCatalog:
    """Stands in for a broken catalog so regex search still works."""

    def chunks_of(self, path: str) -> list:
        return []


def grep_without_index(root: Path, index_dir: Path, query: SearchQuery) -> SearchOutcome:
    """A regex search that opens no index: ripgrep reads the live files with the
    project's ignore rules.  Serves a worker whose index another worker owns
    (``index_locked``): a grep needs no index, so it is never refused for one."""
    text = validate_text(query.text)
    problem = limit_problem(query.limit)
    if problem is not None:
        raise EngineError(problem.code, problem.message, **problem.detail)
    real_root = Path(os.path.realpath(root))
    globs, match = compile_globs(real_root, query.path_globs)
    languages = normalise_languages(query.languages)
    catalog: Catalog | None = None
    try:  # read beside the owner, only to name each match's enclosing definition
        catalog = Catalog(Path(index_dir) / CATALOG_FILE, reader=True)
    except (EngineError, sqlite3.Error):
        catalog = None
    try:
        searcher = Searcher(real_root, catalog or _NullCatalog(),  # type: ignore[arg-type]
                            None, Embedder(),  # type: ignore[arg-type]
                            lambda: discovery.IgnoreRules(real_root, (Path(index_dir),)))
        hits, notes = searcher.regex_hits(text, query.limit, globs, languages, match)
    finally:
        if catalog is not None:
            catalog.close()
    return SearchOutcome(hits, "regex", False, notes, None)


__all__ = ["Engine", "grep_without_index"]
