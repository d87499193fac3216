"""Live re-indexing: watch the project tree and re-index what was saved.

Editors save in bursts (write temp file, rename, touch) and checkouts change
thousands of files at once, so events are collected into a set of paths and
flushed after a short quiet period (``debounce``), or at the latest after
``max_delay`` while events keep coming.  A flush is one index run over just
those paths; a very large batch becomes one ordinary incremental index run,
which is cheaper than a long path list.  Watching is driven by inotify through
``watchdog`` and works inside a container on a read-only bind mount: the
kernel reports the host's writes.

Watching never keeps a worker alive: re-indexing is not a request, so
ragexd's idle timer does not see it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

from ..filerules import ALWAYS_SKIP_DIRS, IGNORE_FILES, ignore_sources_outside

log = logging.getLogger("ragex.worker.watch")

#: Directory names whose churn never matters to search (the engine's discovery
#: decides the rest; this only avoids waking up for build noise).
NOISE_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv",
                        ".mypy_cache", ".pytest_cache", ".tox", ".cache", ".idea"})

#: Past this many changed files a flush re-scans the tree instead of listing paths.
FULL_SCAN_THRESHOLD = 2000

#: Editing one of these changes which files are ignored anywhere below it, so the
#: whole tree is re-scanned: the very names discovery reads (``ragexd.filerules``).
IGNORE_FILE_NAMES = frozenset(IGNORE_FILES)


class TreeWatcher:
    """Collects changed paths (relative, '/'-separated) and hands batches to ``reindex``.

    ``reindex(paths)`` returns False when it could not run now (an index is
    already running); the batch then stays pending and is retried.  ``paths``
    is None for "re-scan everything".
    """

    def __init__(self, root: Path, reindex: Callable[[list[str] | None], bool], *,
                 debounce: float = 0.3, max_delay: float = 1.5,
                 exclude: tuple[Path, ...] = ()) -> None:
        self.root = root
        #: Directories whose writes are ours (an index directory inside the project):
        #: reacting to them would re-index forever.
        self._exclude = tuple(os.path.realpath(p) + os.sep for p in exclude)
        self.reindex = reindex
        self.debounce = debounce
        self.max_delay = max_delay
        self._pending: set[str] = set()
        self._overflow = False
        self._first_event = 0.0
        self._last_event = 0.0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._observer = None
        self._thread: threading.Thread | None = None
        self._rules: Any = None  # discovery.IgnoreRules, built on first need
        #: The ignore files outside the tree or in its .git (``filerules.
        #: ignore_sources_outside``), and the directory watches that see them.
        self._sources: frozenset[str] = frozenset()
        self._source_watches: dict[str, Any] = {}
        self._handler: Any = None

    # --- state ---------------------------------------------------------------------

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending) + (1 if self._overflow else 0)

    def note(self, abs_path: str, *, full_scan: bool = False) -> None:
        """Record a changed path (called from watchdog's thread).

        ``full_scan``: the change cannot be expressed as a list of files — a
        directory vanished (moved out of the tree: inotify names only the
        directory, not the files the index holds under it) or an ignore file
        changed — so the next flush re-scans the whole tree (a stat per file;
        only changed files are re-embedded).  An ignore file outside the tree or
        in its ``.git`` (``self._sources``: ``info/exclude``, the global excludes
        file, a ``.gitignore`` above the root) is one too.
        """
        parts: list[str] = []
        if abs_path in self._sources:
            full_scan = True
            self._rules = None
        else:
            try:
                rel = os.path.relpath(abs_path, self.root)
            except ValueError:
                return
            if rel.startswith("..") or rel == ".":
                return
            if self._exclude and (abs_path + os.sep).startswith(self._exclude):
                return
            parts = rel.split(os.sep)
            if any(p in NOISE_DIRS for p in parts):
                return
            if parts[-1] in IGNORE_FILE_NAMES:
                full_scan = True
                self._rules = None  # directories created from now on are judged by the new rules
        now = time.monotonic()
        with self._lock:
            if not self._pending and not self._overflow:
                self._first_event = now
            self._last_event = now
            if full_scan or len(self._pending) >= FULL_SCAN_THRESHOLD:
                self._overflow = True
                self._pending.clear()
            elif not self._overflow:
                self._pending.add("/".join(parts))
        self._wake.set()

    def request_full_scan(self) -> None:
        """Queue a re-scan of the whole tree through the flusher, which retries
        while another index runs (used for the catch-up when watching starts)."""
        now = time.monotonic()
        with self._lock:
            if not self._pending and not self._overflow:
                self._first_event = now
            self._last_event = now - self.debounce  # no need to wait for quiet
            self._overflow = True
            self._pending.clear()
        self._wake.set()

    # --- lifecycle -----------------------------------------------------------------

    def start(self) -> bool:
        try:
            from watchdog.events import FileSystemEvent, FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:  # pragma: no cover - watchdog is a dependency
            log.warning("watchdog is not installed: live re-indexing is off")
            return False

        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.event_type in ("opened", "closed_no_write"):
                    return
                if event.is_directory and event.event_type in ("modified", "attrib"):
                    return
                if event.is_directory and event.event_type == "deleted":
                    # A directory deleted, or moved out of the tree (inotify reports
                    # both alike): the files indexed under it must go.
                    watcher.note(os.fsdecode(event.src_path), full_scan=True)
                    return
                if event.is_directory and event.event_type == "moved":
                    # watchdog reports every file under it as moved too; the new
                    # directory is listed again at flush in case one was missed.
                    watcher.note(os.fsdecode(event.dest_path))
                    return
                watcher.note(os.fsdecode(event.src_path))
                dest = getattr(event, "dest_path", "")
                if dest:
                    watcher.note(os.fsdecode(dest))

        try:
            observer = _pruned_observer(self._skip_dir) or Observer()
            self._handler = Handler()
            observer.schedule(self._handler, str(self.root), recursive=True)
            observer.daemon = True
            observer.start()
        except OSError as exc:
            # e.g. inotify watch limit reached: search still works, just not live.
            log.warning("cannot watch %s (%s): live re-indexing is off", self.root, exc)
            return False
        self._observer = observer
        self._watch_sources()
        self._thread = threading.Thread(target=self._flusher, name="watch-flush", daemon=True)
        self._thread.start()
        log.info("watching %s for changes", self.root)
        return True

    def _watch_sources(self) -> None:
        """Watch the directories of the ignore files that live outside the tree or
        in its ``.git`` (which the tree's watch prunes): an edit of
        ``.git/info/exclude`` or of the global excludes file changes which files
        are ignored as much as a ``.gitignore`` does, and was seen only by the
        next full run.  Called again before each re-scan, since a changed git
        config can name another excludes file."""
        if self._observer is None:
            return
        try:
            sources = ignore_sources_outside(os.path.realpath(self.root))
        except Exception:  # noqa: BLE001 - the tree's own watch matters more
            log.debug("cannot list the ignore files outside %s", self.root, exc_info=True)
            return
        root = os.path.realpath(self.root)
        wanted, triggers = set(), set(sources)
        for path in sources:
            folder = os.path.dirname(path)
            # a folder not made yet (~/.config/git before the first global ignore
            # file): the nearest one that exists is watched, and the making of the
            # next one down re-scans, which watches it from then on
            while not os.path.isdir(folder):
                triggers.add(folder)
                if os.path.dirname(folder) == folder:
                    break
                folder = os.path.dirname(folder)
            inside = os.path.relpath(folder, root)
            if inside == "." or not (inside.startswith("..") or any(
                    p in NOISE_DIRS or p in ALWAYS_SKIP_DIRS for p in inside.split(os.sep))):
                continue   # the tree's own watch sees it
            if os.path.isdir(folder):
                wanted.add(folder)
        self._sources = frozenset(triggers)
        for folder in set(self._source_watches) - wanted:
            try:
                self._observer.unschedule(self._source_watches.pop(folder))
            except (KeyError, OSError):
                pass
        for folder in sorted(wanted - set(self._source_watches)):
            try:
                self._source_watches[folder] = self._observer.schedule(
                    self._handler, folder, recursive=False)
            except OSError as exc:
                log.warning("cannot watch %s (%s): an edit of an ignore file there is "
                            "obeyed at the next full index", folder, exc)

    def _skip_dir(self, abs_path: bytes) -> bool:
        """Whether a directory is not worth a watch: ignored by the project's
        rules (``node_modules/`` with 3,000 packages is thousands of watches),
        noise, or ours.  Rules are read fresh for a directory created later."""
        from ..engine.discovery import IgnoreRules

        path = os.fsdecode(abs_path)
        if self._exclude and (path + os.sep).startswith(self._exclude):
            return True
        rel = os.path.relpath(path, self.root)
        if rel == "." or rel.startswith(".."):
            return False
        rel = rel.replace(os.sep, "/")
        if self._rules is None:
            self._rules = IgnoreRules(self.root)
        try:
            return self._rules.is_ignored(rel, is_dir=True)
        except Exception:  # noqa: BLE001 - when in doubt, watch it
            log.debug("cannot decide whether to watch %s", rel, exc_info=True)
            return False

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _flusher(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            while not self._stop.is_set():
                with self._lock:
                    if not self._pending and not self._overflow:
                        break
                    now = time.monotonic()
                    quiet = now - self._last_event >= self.debounce
                    overdue = now - self._first_event >= self.max_delay
                    if not (quiet or overdue):
                        wait = min(self.debounce - (now - self._last_event),
                                   self.max_delay - (now - self._first_event))
                    else:
                        batch = None if self._overflow else sorted(self._pending)
                        self._pending.clear()
                        self._overflow = False
                        wait = -1.0
                if wait >= 0:
                    time.sleep(max(0.01, wait))
                    continue
                if batch is None:
                    self._watch_sources()
                if not self._run(batch):
                    with self._lock:  # an index is running: keep the batch, retry soon
                        if batch is None:
                            self._overflow = True
                        elif not self._overflow:
                            self._pending.update(batch)
                        self._first_event = self._last_event = time.monotonic()
                    time.sleep(0.5)

    def _expand(self, batch: list[str]) -> list[str] | None:
        """Replace directories in ``batch`` by the files under them.

        watchdog reports the files of a directory created or moved in, but a
        directory path itself means nothing to the index; expanding it here
        also covers files a racing watch could have missed.  None (re-scan the
        tree) when the expansion is too large to list.
        """
        out: set[str] = set()
        for rel in batch:
            path = os.path.join(self.root, rel)
            if not os.path.isdir(path) or os.path.islink(path):
                out.add(rel)
                continue
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames[:] = [d for d in dirnames if d not in NOISE_DIRS]
                base = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
                out.update(f"{base}/{name}" for name in filenames)
                if len(out) > FULL_SCAN_THRESHOLD:
                    return None
        return sorted(out)

    def _run(self, batch: list[str] | None) -> bool:
        try:
            if batch is not None:
                batch = self._expand(batch)
            return self.reindex(batch)
        except Exception:  # noqa: BLE001 - a bad batch must not stop watching
            log.exception("live re-index failed")
            return True


def _pruned_observer(skip_dir: Callable[[bytes], bool]) -> Any:
    """An inotify observer that never puts a watch on a directory ``skip_dir``
    refuses, or None where that is not possible (not Linux, another watchdog).

    watchdog's recursive inotify watch adds one watch per directory, ignored or
    not: a 2-file project whose ignored ``node_modules/`` held 3,000 packages
    took 8,013 watches, against a default limit of 8,192 to 65,536 per user.
    Other platforms watch a tree with one handle (FSEvents, ReadDirectoryChangesW),
    so there is nothing to prune there.
    """
    try:
        from watchdog.observers.inotify import (InotifyEmitter, InotifyObserver,
                                                InotifyWatchGroup)
    except ImportError:
        return None
    if not hasattr(InotifyWatchGroup, "_add_all_callbacks") \
            or not hasattr(InotifyWatchGroup, "_add_callback"):
        log.info("this watchdog cannot skip ignored directories: watching all of them")
        return None

    class PrunedGroup(InotifyWatchGroup):  # type: ignore[misc, valid-type]
        def _add_all_callbacks(self, path: bytes) -> None:
            if path != self.path and skip_dir(path):
                return
            self._add_callback(path)
            if not (self.is_recursive and os.path.isdir(path)):
                return
            for top, dirnames, _ in os.walk(path, followlinks=False):
                keep = []
                for name in dirnames:
                    full = os.path.join(top, name)
                    if os.path.islink(full) or skip_dir(full):
                        continue
                    keep.append(name)
                    self._add_callback(full)
                dirnames[:] = keep

    class PrunedEmitter(InotifyEmitter):  # type: ignore[misc, valid-type]
        def on_thread_start(self) -> None:
            self._inotify = PrunedGroup(
                self._inotify_fd, os.fsencode(self.watch.path),
                is_recursive=self.watch.is_recursive,
                event_mask=self.get_event_mask_from_filter(),
                follow_symlink=self.watch.follow_symlink)

    class PrunedObserver(InotifyObserver):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self._emitter_class = PrunedEmitter

    return PrunedObserver()
