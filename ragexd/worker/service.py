"""What a worker does with a request, independent of how the request arrived.

The ZeroMQ server (``server.py``) and the one-shot path (``oneshot.py``) share
this class, so ``ragexctl --no-daemon`` runs exactly the code the warm worker
runs; only the transport differs.  It maps protocol messages onto the engine
and engine errors onto protocol error codes.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

from .. import __version__
from ..filerules import GlobProblem, clean_globs
from ..proctree import tree_rss
from ..protocol import (ErrorCode, Hit, IndexArgs, Progress, RagexError, SearchArgs,
                        SearchResult, SimilarArgs, SnapshotArgs)

log = logging.getLogger("ragex.worker")

ProgressSink = Callable[[Progress], None]

#: Progress messages are throttled to this interval: a fast index must not
#: flood the client's terminal (or the wire) with thousands of updates.
PROGRESS_INTERVAL = 0.25
#: How long a search that starts (or finds) a project's first index waits for
#: it before answering from what is indexed so far (a symbol search stops
#: waiting as soon as every file is catalogued, a regex search never waits).
#: Half an agent's usual tool-call deadline (about a minute), and long enough
#: that a small project is complete by then, cold model load included.
FIRST_ANSWER_WAIT = 30.0
#: How long an INDEX request waits for an index already running in this worker
#: (the watcher's re-index of a save, another client's INDEX, a first index)
#: *while that run reports no progress* before it answers ``busy``: the user
#: asked for an up-to-date index, and a run that keeps reporting (a first index
#: of a large tree embeds for many minutes) is followed, its progress relayed,
#: however long it takes.
INDEX_WAIT = 300.0
#: After a first index failed for a full disk or a read-only index directory, how
#: long searches answer from what it catalogued before one tries it again: each
#: retry embeds a batch only to fail at the disk again (an agent searching every
#: few seconds kept a core busy doing that); freeing space and `ragexctl index`
#: retries at once.
UNWRITABLE_RETRY = 60.0
#: How long a regex search during a first index waits for cataloguing, which
#: names each match's enclosing definition (the matches themselves need no index).
REGEX_CATALOG_WAIT = 5.0

#: In every index directory: flock-ed by the one worker that owns the index.
INDEX_LOCK_FILE = "owner.lock"


def _to_ragex_error(exc: Exception) -> RagexError:
    """Engine errors carry protocol code values; anything else is a bug."""
    from ..engine.types import EngineError

    if isinstance(exc, RagexError):
        return exc
    if isinstance(exc, EngineError):
        return RagexError(exc.code, exc.message, **{k: _jsonable(v) for k, v in exc.detail.items()})
    log.exception("internal error")
    return RagexError(ErrorCode.INTERNAL, f"internal error in the worker: {type(exc).__name__}: {exc}")


def _store_config() -> Any:
    """``[store]`` of this user's configuration (None: local vectors only); a
    configuration that cannot be read is every request's error, in its words."""
    from ..config import ConfigError, load
    from ..engine.shared_store import StoreConfig

    try:
        return StoreConfig.from_config(load())
    except ConfigError as exc:
        raise RagexError(ErrorCode.BAD_REQUEST, f"ragex's configuration: {exc}") from None


def _jsonable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None), list, dict)) else str(value)


class WorkerService:
    """One project's engine plus the bookkeeping the protocol needs.

    The engine is created in a background thread (``start_loading``) because
    loading the model takes a moment: the server must answer
    heartbeats, and regex/symbol searches, before that finishes.
    """

    def __init__(self, root: Path, index_dir: Path, project_id: str = "", *,
                 watch: bool = False, background_first_index: bool = True,
                 base: Path | None = None) -> None:
        self.root = root
        #: ``[index] base``: a snapshot file, or a directory of them CI refreshes
        self.base = base
        self.watch = watch
        self._watcher: Any = None
        self.index_dir = index_dir
        self.project_id = project_id
        self.started_at = time.time()
        self._engine: Any = None
        self._engine_ready = threading.Event()
        self._engine_error: RagexError | None = None
        self._model_ready = threading.Event()
        self._index_lock = threading.Lock()
        self.cancel_index = threading.Event()
        #: A warm worker builds a first index in the background and answers
        #: searches from what is there; a one-shot process, which exits after
        #: its answer, indexes first.
        self.background_first_index = background_first_index
        self._first_index: threading.Thread | None = None
        self._first_lock = threading.Lock()
        self._first_summary: Any = None
        self._first_error: RagexError | None = None
        self._first_failed_at = 0.0   # monotonic
        #: when the first search began waiting on the index run now going: the run's
        #: first answers are due FIRST_ANSWER_WAIT after it, not after each search
        self._first_wait_since: float | None = None
        self._broadcast_throttle = ProgressThrottle()
        #: requests following the index run now going (searches attached to a first
        #: index, INDEX/EXPORT/IMPORT requests waiting for their turn): request id ->
        #: progress sink; every run's progress goes to all of them
        self._listeners: dict[str, ProgressSink] = {}
        #: when the run now going last reported progress (monotonic): a waiting INDEX
        #: gives up on a run that has gone quiet, never on one that keeps working
        self._last_run_progress = time.monotonic()
        self._reopen_lock = threading.Lock()
        self._index_owner: Any = None  # the index directory's lock (pidlock.InstanceLock)

    # --- lifecycle -----------------------------------------------------------------

    def _own_index(self, wait: float = 0.0) -> None:
        """Take the index directory's own lock, or raise INDEX_LOCKED naming its holder.

        The lock lives in the index directory, not the runtime directory, so it
        holds whichever ragexd started this worker: two ragexd with different
        runtime directories (an MCP client strips XDG_RUNTIME_DIR), a
        ``--no-daemon`` run, or a container and a process, never write one
        index together.  The kernel drops it when the worker dies, however.
        ``wait``: seconds to wait for a holder that is on its way out (a one-shot
        worker that answered and is stopping its first index at a safe point).
        """
        from ..pidlock import AlreadyRunning, InstanceLock

        lock = InstanceLock(self.index_dir / INDEX_LOCK_FILE)
        end = time.monotonic() + wait
        try:
            self.index_dir.mkdir(parents=True, exist_ok=True)
            while True:
                try:
                    lock.acquire()
                    break
                except AlreadyRunning:
                    if time.monotonic() >= end:
                        raise
                    time.sleep(0.1)
        except AlreadyRunning as exc:
            who = f"pid {exc.pid}" if exc.pid else "another process"
            raise RagexError(
                ErrorCode.INDEX_LOCKED,
                f"the index {self.index_dir} is in use by another ragex worker ({who}), "
                "probably started by a second ragexd; stop that one (`ragexctl stop` in its "
                f"environment, or `kill {exc.pid or '<pid>'}`) and try again",
                holder_pid=exc.pid) from None
        except OSError as exc:
            # A read-only or full index directory: nothing can write it anyway, and
            # the engine reports that; the index is still searchable.
            log.warning("cannot lock the index directory %s: %s", self.index_dir, exc)
            return
        self._index_owner = lock

    def open_engine(self, lock_wait: float = 0.0) -> None:
        """Open the index (fast: SQLite only).  Errors are kept and reported
        to every request rather than killing the worker, so the user sees why."""
        try:
            from ..engine import Engine

            self._own_index(lock_wait)
            self._engine = Engine(self.root, self.index_dir, store=_store_config())
        except Exception as exc:  # noqa: BLE001 - reported to requests
            self._engine_error = _to_ragex_error(exc)
            log.error("cannot open the index: %s", self._engine_error.message)
        finally:
            self._engine_ready.set()

    def adopt_base(self) -> None:
        """Import the ``[index] base`` snapshot when this project has no complete
        index or one older than the snapshot, then catch up with the tree (only
        files whose content differs from the snapshot's are embedded).  A base
        that cannot serve (missing, corrupt, another model) is logged and the
        project is indexed as usual: a base only ever saves work."""
        with self._index_lock:
            self._adopt_base()

    def _adopt_base(self) -> None:
        """``adopt_base`` with this worker's index lock held by the caller."""
        engine = self._engine
        if self.base is None or engine is None:
            return
        from ..engine import snapshot

        archive: Path | None = None
        try:
            archive = snapshot.newest_snapshot(self.base)
            if archive is None:
                log.warning("the base snapshot %s does not exist (or holds no *.tar.gz)",
                            self.base)
                return
            manifest = engine.base_wanted(archive)
            if manifest is None:
                return
            _set_torch_threads(os.cpu_count() or 1)
            engine.import_snapshot(archive)
            summary = engine.index(cancel=self.cancel_index)
            log.info("started from the base snapshot %s (commit %s); re-indexed %d "
                     "changed files, %d unchanged", archive, manifest.commit or "-",
                     summary.files_indexed, summary.files_unchanged)
        except Exception as exc:  # noqa: BLE001 - the project indexes as usual
            log.warning("cannot use the base snapshot %s: %s", archive or self.base,
                        _to_ragex_error(exc).message)
        finally:
            _set_torch_threads(1)
            engine.release_thread()

    def load_model(self) -> None:
        engine = self._engine
        if engine is None:
            return
        try:
            t0 = time.monotonic()
            engine.load_model()
            engine.warm_model()
            _set_torch_threads(1)
            log.info("model loaded in %.1f s", time.monotonic() - t0)
        except Exception:  # noqa: BLE001 - semantic searches will retry and report it
            log.exception("model failed to load")
        finally:
            self._model_ready.set()

    def preload_vectors(self) -> None:
        """Read the index's vectors in a thread, beside the model's load."""
        if self._engine is not None:
            self._engine.preload_vectors()

    def start_loading(self) -> threading.Thread:
        def run() -> None:
            if self.base is None:
                self.open_engine()
            else:
                # Held from before the engine is ready: a first search must not start
                # a full index of the tree beside the base it is about to import.
                with self._index_lock:
                    self.open_engine()
                    self._adopt_base()
            self.preload_vectors()
            self.load_model()
            if self.watch and self._engine is not None:
                self.start_watching()

        thread = threading.Thread(target=run, name="engine-loader", daemon=True)
        thread.start()
        return thread

    def engine(self, timeout: float | None = None) -> Any:
        if not self._engine_ready.wait(timeout):
            raise RagexError(ErrorCode.WORKER_UNAVAILABLE,
                             "the worker is still opening the index; try again in a moment")
        if self._engine_error is not None and self._engine_error.code is ErrorCode.INDEX_LOCKED:
            with self._reopen_lock:  # the other owner may have gone: try again
                if self._engine_error is not None \
                        and self._engine_error.code is ErrorCode.INDEX_LOCKED:
                    self._engine_error = None
                    self.open_engine()
                    if self.watch and self._engine is not None and self._watcher is None:
                        self.start_watching()
        if self._engine_error is not None:
            raise self._engine_error
        return self._engine

    def start_watching(self) -> None:
        """Watch the tree, then catch up on what changed while no worker ran."""
        from .watcher import TreeWatcher

        self._watcher = TreeWatcher(self.root, self.reindex_changed,
                                    exclude=(self.index_dir,))
        if not self._watcher.start():
            self._watcher = None
            return
        try:
            if self._engine.status().state != "empty":
                # Through the flusher, not directly: if an INDEX request holds the
                # lock right now, the flusher retries instead of skipping the catch-up.
                self._watcher.request_full_scan()
        except Exception:  # noqa: BLE001
            log.exception("catch-up index failed")

    def reindex_changed(self, paths: list[str] | None) -> bool:
        """Re-index changed files for the watcher; False when an index already runs."""
        if self._engine.status().state == "empty" and not self.indexing:
            # Never indexed: a run over a few saved files would mark the index
            # complete with just those files, and the first search would then skip
            # its full auto-index.  That full index will see these files.  (Checked
            # before taking the lock, so a first search never finds it held.)
            log.debug("ignoring %s changed files: the project is not indexed yet",
                      "all" if paths is None else len(paths))
            return True
        if not self._index_lock.acquire(blocking=False):
            return False
        big = False
        try:
            state = self._engine.status().state
            if state == "empty":
                return True
            if state == "partial" and paths is not None:
                # An interrupted run left files unindexed; a run over just these
                # paths would clear the interrupted marker and hide that.
                paths = None
            # A burst or a full re-scan may embed many chunks: use every core
            # (queries go back to one thread afterwards, as after an INDEX).
            big = paths is None or len(paths) > 32
            t0 = time.monotonic()
            if big:
                _set_torch_threads(os.cpu_count() or 1)
            summary = self._engine.index(paths=paths, cancel=self.cancel_index, refresh=True,
                                         progress=self._broadcast)
            if summary.files_indexed or summary.files_removed:
                log.info("re-indexed %d changed and %d removed files in %.2f s",
                         summary.files_indexed, summary.files_removed, time.monotonic() - t0)
        except Exception as exc:  # noqa: BLE001
            log.warning("live re-index failed: %s", _to_ragex_error(exc).message)
        finally:
            if big:
                _set_torch_threads(1)
            self._index_lock.release()
        return True

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
        self.cancel_index.set()
        if self._engine is not None:
            with self._index_lock:  # let a running index stop at a safe point first
                try:
                    self._engine.close()
                except Exception:  # noqa: BLE001
                    log.exception("error while closing the engine")
        if self._index_owner is not None:
            self._index_owner.release(remove=False)  # unlinking a lock file races its next taker
            self._index_owner = None

    # --- state ---------------------------------------------------------------------

    @property
    def model_loaded(self) -> bool:
        return bool(self._engine is not None and self._engine.model_loaded)

    @property
    def indexing(self) -> bool:
        return self._index_lock.locked()

    def hello(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "version": __version__, "project_id": self.project_id,
                "root": str(self.root), "model_loaded": self.model_loaded,
                "capabilities": ["search", "similar", "index", "worker_status", "progress",
                                 "auto_index"]}

    def status(self) -> dict[str, Any]:
        index: dict[str, Any] | None = None
        error = None
        if self._engine_ready.is_set():
            try:
                index = dataclasses.asdict(self.engine().status())
                if self.indexing:
                    index["state"] = "indexing"
                if self._watcher is not None:
                    index["pending_files"] = index.get("pending_files", 0) + self._watcher.pending
            except RagexError as exc:
                error = exc.message
        return {"pid": os.getpid(), "rss": tree_rss(os.getpid()), "uptime_s": time.time() - self.started_at,
                "model_loaded": self.model_loaded, "index": index, "indexing": self.indexing,
                "watch": self._watcher is not None, "error": error,
                "heavy_modules": _heavy_modules()}

    # --- requests ------------------------------------------------------------------

    def search(self, request_id: str, args: SearchArgs,
               progress: ProgressSink | None = None,
               timeout: float | None = None) -> dict[str, Any]:
        """Serve a SEARCH whose arguments were validated when the request was decoded.

        With ``auto_index`` on a never-indexed (or interrupted first) index,
        start the index in the background — or attach to the one already
        running — wait for it at most ``FIRST_ANSWER_WAIT`` (half the caller's
        ``timeout`` if shorter), then answer from what is there, with its
        coverage."""
        from ..engine.types import SearchQuery

        if args.mode == "regex":
            try:
                engine = self.engine(timeout=120)
            except RagexError as exc:
                if exc.code is not ErrorCode.INDEX_LOCKED:
                    raise
                return self._grep_without_index(args)
        engine = self.engine(timeout=120)
        if args.paths:   # a bad glob is refused now, not after waiting for an index
            try:
                clean_globs(self.root, args.paths)
            except GlobProblem as exc:
                raise RagexError(exc.code, exc.message, **exc.detail) from None
        notes: list[str] = []
        if args.auto_index and self._wants_first_index(engine):
            if self.background_first_index:
                self._start_first_index(engine)
                budget = FIRST_ANSWER_WAIT if timeout is None else \
                    min(FIRST_ANSWER_WAIT, timeout / 2)
                if self._wait_first_index(engine, request_id, args.mode, budget, progress):
                    if self._first_error is not None:
                        if not self._answers_despite(engine, self._first_error):
                            raise self._first_error   # disk full, read-only...: say it
                        # else the engine's answer carries "the last index failed (…)"
                    summary = self._first_summary
                    if summary is not None:
                        notes.append(f"indexed {summary.files_indexed} files "
                                     f"({summary.chunks_total} chunks) first")
                elif args.mode == "regex":
                    notes.append("the project's first index is running in the background "
                                 "(a regex search reads the files themselves: this answer "
                                 "is complete)")
                else:
                    notes.append("the project's first index is running in the background; "
                                 "this answer covers what it has indexed so far")
            elif not self.indexing:
                summary = self.index(request_id, IndexArgs(), progress)
                notes.append("indexed {files_indexed} files ({chunks_total} chunks) first"
                             .format(**summary["summary"]))
        query = SearchQuery(text=args.query, mode=args.mode, limit=args.limit,
                            path_globs=tuple(args.paths), languages=tuple(args.languages))
        t0 = time.perf_counter()
        try:
            outcome = engine.search(query)
        except Exception as exc:  # noqa: BLE001
            raise _to_ragex_error(exc) from None
        took = (time.perf_counter() - t0) * 1000
        coverage = outcome.coverage
        return SearchResult(hits=[Hit(**dataclasses.asdict(h)) for h in outcome.hits],
                            mode=outcome.mode,
                            partial=outcome.partial,   # the engine knows what a run means
                            took_ms=round(took, 2), notes=notes + list(outcome.notes),
                            coverage=dataclasses.asdict(coverage) if coverage is not None
                            else None).to_wire()

    @staticmethod
    def _answers_despite(engine: Any, error: RagexError) -> bool:
        """Whether a search can still answer after its first index failed: a full
        disk or a read-only directory stops writing, not reading, and what was
        catalogued before is searchable (the sentence itself says so; was: every
        search failed with it, a symbol search of a tree catalogued in full too)."""
        if error.code is not ErrorCode.INDEX_UNWRITABLE:
            return False
        try:
            return bool(engine.status().files)
        except Exception:  # noqa: BLE001 - then the error is the answer
            return False

    def similar(self, args: SimilarArgs) -> dict[str, Any]:
        """Serve a SIMILAR: never starts an index (a location in a never-indexed
        project has no chunk to compare); the engine says why when it cannot."""
        engine = self.engine(timeout=120)
        t0 = time.perf_counter()
        try:
            outcome = engine.similar(args.clean_path, args.line, args.limit,
                                     tuple(args.paths), tuple(args.languages))
        except Exception as exc:  # noqa: BLE001
            raise _to_ragex_error(exc) from None
        coverage = outcome.coverage
        return SearchResult(hits=[Hit(**dataclasses.asdict(h)) for h in outcome.hits],
                            mode=outcome.mode, partial=outcome.partial,
                            took_ms=round((time.perf_counter() - t0) * 1000, 2),
                            notes=list(outcome.notes),
                            coverage=dataclasses.asdict(coverage) if coverage is not None
                            else None).to_wire()

    def _grep_without_index(self, args: SearchArgs) -> dict[str, Any]:
        """A regex search while another worker owns this index: ripgrep reads the
        live files, so the answer is as exact as the owner's would be."""
        from ..engine.engine import grep_without_index
        from ..engine.types import SearchQuery

        query = SearchQuery(text=args.query, mode="regex", limit=args.limit,
                            path_globs=tuple(args.paths), languages=tuple(args.languages))
        t0 = time.perf_counter()
        try:
            outcome = grep_without_index(self.root, self.index_dir, query)
        except Exception as exc:  # noqa: BLE001
            raise _to_ragex_error(exc) from None
        return SearchResult(hits=[Hit(**dataclasses.asdict(h)) for h in outcome.hits],
                            mode=outcome.mode, partial=False,
                            took_ms=round((time.perf_counter() - t0) * 1000, 2),
                            notes=list(outcome.notes), coverage=None).to_wire()

    # --- the first index, shared by every search that needs it ----------------------

    def _wants_first_index(self, engine: Any) -> bool:
        """Never indexed, or a first index that was interrupted (it resumes), or
        one running now (attach to it)."""
        thread = self._first_index
        if thread is not None and thread.is_alive():
            return True
        status = engine.status()
        # "indexing": another search's run (or an INDEX request) just got going
        return status.last_indexed is None and status.state in ("empty", "partial",
                                                                 "indexing")

    def _start_first_index(self, engine: Any) -> None:
        """Start the first index unless one runs: concurrent first searches all
        attach to the one run instead of racing for the index lock."""
        with self._first_lock:
            thread = self._first_index
            if thread is not None and thread.is_alive():
                return
            failed = self._first_error
            if failed is not None and failed.code is ErrorCode.INDEX_UNWRITABLE and \
                    time.monotonic() - self._first_failed_at < UNWRITABLE_RETRY:
                return   # searches answer from the catalogue, the note says why
            if not self._index_lock.acquire(blocking=False):
                return   # an INDEX request or the watcher is building it: wait on that
            self.cancel_index.clear()
            self._first_summary = self._first_error = None
            self._first_wait_since = None

            def run() -> None:
                try:
                    _set_torch_threads(os.cpu_count() or 1)
                    summary = engine.index(progress=self._broadcast, cancel=self.cancel_index)
                    self._first_summary = summary
                    log.info("first index: %d files, %d chunks in %.1f s%s",
                             summary.files_indexed, summary.chunks_total, summary.seconds,
                             " (cancelled)" if summary.cancelled else "")
                except Exception as exc:  # noqa: BLE001 - the waiting searches report it
                    self._first_failed_at = time.monotonic()
                    self._first_error = _to_ragex_error(exc)
                    log.warning("first index failed: %s", self._first_error.message)
                finally:
                    _set_torch_threads(1)
                    engine.release_thread()
                    self._index_lock.release()

            self._first_index = threading.Thread(target=run, name="first-index", daemon=True)
            self._first_index.start()

    def _broadcast(self, p: Any) -> None:
        """Index progress of the run now going → every request following it (throttled)."""
        self._last_run_progress = time.monotonic()
        if not self._broadcast_throttle.admit(p.phase):
            return
        with self._first_lock:
            listeners = list(self._listeners.items())
        for request_id, sink in listeners:
            try:
                sink(_progress(request_id, p))
            except Exception:  # noqa: BLE001 - a gone client must not stop the index
                log.debug("progress to %s failed", request_id, exc_info=True)

    def _wait_first_index(self, engine: Any, request_id: str, mode: str, budget: float,
                          progress: ProgressSink | None) -> bool:
        """Wait until what ``mode`` needs is indexed, or ``budget`` seconds after
        the first search that waited on this run; True if the run finished meanwhile.

        The budget is the run's, not each search's: a first index that embeds for
        forty minutes answers its first search after at most ``budget`` seconds and
        every later one at once, from what is there (waiting longer would add a few
        hundred vectors to answers that say what they cover anyway)."""
        if mode == "regex":
            # ripgrep reads the live files: exact without an index.  Only the names of
            # the enclosing definitions come from the catalog, so wait a moment for
            # cataloguing (fast: no model), never for the embedding.
            budget = min(budget, REGEX_CATALOG_WAIT)
        now = time.monotonic()
        with self._first_lock:
            if not self.indexing:
                self._first_wait_since = None
                return True
            if self._first_wait_since is None:
                self._first_wait_since = now
            end = min(now, self._first_wait_since) + budget
        if progress is not None:
            with self._first_lock:
                self._listeners[request_id] = progress
        try:
            while time.monotonic() < end and self.indexing:
                if mode in ("symbol", "regex") and engine.coverage().catalog_complete:
                    break
                time.sleep(0.1)
            return not self.indexing
        finally:
            with self._first_lock:
                self._listeners.pop(request_id, None)

    def export(self, request_id: str, args: SnapshotArgs,
               progress: ProgressSink | None = None) -> dict[str, Any]:
        """Serve an EXPORT: bring the index up to date, then write it as a snapshot."""
        summary = self.index(request_id, IndexArgs(), progress)
        engine = self.engine(timeout=120)
        if progress is not None:
            progress(Progress(id=request_id, phase="exporting",
                              message=f"exporting the index to {args.file}"))
        try:
            manifest = engine.export_snapshot(Path(args.file))
        except Exception as exc:  # noqa: BLE001
            raise _to_ragex_error(exc) from None
        return {**summary, "snapshot": manifest.summary(), "file": args.file}

    def import_snapshot(self, request_id: str, args: SnapshotArgs,
                        progress: ProgressSink | None = None) -> dict[str, Any]:
        """Serve an IMPORT: install the snapshot as this project's index (through
        this worker, which owns the index: no second writer, and searches never see
        half an index), then run the usual incremental index over the tree."""
        self._take_index_lock(request_id, progress)
        try:
            self.cancel_index.clear()
            engine = self.engine(timeout=120)
            try:
                manifest = engine.import_snapshot(
                    Path(args.file), None if progress is None
                    else lambda p: progress(_progress(request_id, p)))
            except Exception as exc:  # noqa: BLE001
                raise _to_ragex_error(exc) from None
        finally:
            self._index_lock.release()
        return {**self.index(request_id, IndexArgs(), progress), "snapshot": manifest.summary()}

    def follow_running_index(self, request_id: str, progress: ProgressSink) -> None:
        """An INDEX, EXPORT or IMPORT that must wait for the run now going (a first
        index a search started, the watcher's, another client's INDEX): say so, and
        relay that run's progress to it until its own turn comes (``_take_index_lock``
        stops following).  Its client's clock restarts with each message, so a
        first index that embeds for forty minutes is followed to its end, never
        refused ``busy`` (was: exit 2 "already being indexed" the moment a search
        had started it)."""
        progress(Progress(id=request_id, phase="waiting",
                          message="for the index already running; its progress follows"))
        with self._first_lock:
            self._listeners[request_id] = progress

    def _take_index_lock(self, request_id: str, progress: ProgressSink | None) -> float:
        """This worker's index lock: wait for a run already going (the watcher's,
        another client's, a first index), following its progress, then ours, rather
        than refuse.  Returns the seconds waited."""
        t0 = time.monotonic()
        try:
            if self._index_lock.acquire(blocking=False):
                return 0.0
            if progress is not None and request_id not in self._listeners:
                self.follow_running_index(request_id, progress)
            while not self._index_lock.acquire(timeout=1.0):
                quiet = time.monotonic() - max(t0, self._last_run_progress)
                if quiet > INDEX_WAIT:
                    raise RagexError(ErrorCode.BUSY, "the index already running in this "
                                     f"project has reported nothing for {quiet:.0f} s; see "
                                     "`ragexctl status` and `ragexctl logs`")
            return time.monotonic() - t0
        finally:
            with self._first_lock:
                self._listeners.pop(request_id, None)

    def index(self, request_id: str, args: IndexArgs,
              progress: ProgressSink | None = None) -> dict[str, Any]:
        """Serve an INDEX whose arguments were validated when the request was decoded."""
        waited = self._take_index_lock(request_id, progress)
        try:
            self.cancel_index.clear()
            engine = self.engine(timeout=120)
            if args.named is not None:
                try:
                    engine.refuse_if_left_out(args.named)
                except Exception as exc:  # noqa: BLE001
                    raise _to_ragex_error(exc) from None
            throttle = ProgressThrottle()

            def on_progress(p: Any) -> None:
                self._broadcast(p)   # to the requests queued behind this one
                if progress is not None and throttle.admit(p.phase):
                    progress(_progress(request_id, p))

            _set_torch_threads(os.cpu_count() or 1)
            try:
                summary = engine.index(rebuild=args.rebuild, paths=args.paths, progress=on_progress,
                                       cancel=self.cancel_index)
            except Exception as exc:  # noqa: BLE001
                raise _to_ragex_error(exc) from None
            finally:
                _set_torch_threads(1)
            result = dataclasses.asdict(summary)
            if waited >= 1.0:
                result["notes"] = [f"waited {waited:.0f} s for the index that was already "
                                   "running; this pass indexed what changed since",
                                   *(result.get("notes") or [])]
            return {"summary": result}
        finally:
            self._index_lock.release()


class ProgressThrottle:
    """At most one progress message a ``PROGRESS_INTERVAL``, but a new phase and
    the last one ("done") always get through: a phase change may carry the one
    sentence that says why (a rebuild, a model load)."""

    def __init__(self) -> None:
        self._when = float("-inf")
        self._phase = ""

    def admit(self, phase: str) -> bool:
        now = time.monotonic()
        if now - self._when < PROGRESS_INTERVAL and phase == self._phase and phase != "done":
            return False
        self._when, self._phase = now, phase
        return True


def _progress(request_id: str, p: Any) -> Progress:
    """The engine's IndexProgress as the protocol's Progress for one request."""
    return Progress(id=request_id, phase=p.phase, files_done=p.files_done,
                    files_total=p.files_total, chunks_embedded=p.chunks_embedded,
                    eta_seconds=p.eta_seconds, message=p.message)


def _set_torch_threads(n: int) -> None:
    """Queries use one torch thread (low latency, no oversubscription with other
    requests); indexing uses every core.  Only touch torch if it is loaded."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            torch.set_num_threads(max(1, n))
        except Exception:  # noqa: BLE001
            pass


#: Imports that cost seconds and hundreds of MiB: which of them a worker holds is
#: the first question about its start time and its memory (chromadb only above
#: ``Vectors.EXACT_MAX`` vectors or to convert an old index; torch never).
HEAVY_MODULES = ("chromadb", "torch", "sentence_transformers", "onnxruntime", "tree_sitter")


def _heavy_modules() -> list[str]:
    import sys

    return [name for name in HEAVY_MODULES if name in sys.modules]
