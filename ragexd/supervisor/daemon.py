"""ragexd's main loop: one thread, one poller, never blocked by a worker.

Everything arrives as an event on one ``zmq.Poller``: client requests on the
ROUTER, worker answers on one DEALER per worker incarnation, and completions
of runtime calls (start, poll, stop: they may take seconds with Docker, so they
run on a small thread pool and report back through a wake-up pipe).  The loop
therefore answers STATUS and PING at once even while a worker is loading a
model, indexing, hung or being killed, and a bug in handling one message is
logged and answered INTERNAL instead of taking the daemon down.

``Daemon`` is one object whose methods are grouped by responsibility in
modules, each a class it inherits from:

* this module: the reactor (bind, poll, timers, the thread pool, shutdown);
* ``frontend.py``: client requests, dispatch, STATUS/START/STOP;
* ``ondisk.py``: projects on disk (LIST, REMOVE, LOGS);
* ``forwarding.py``: requests to a worker and its answers back;
* ``lifecycle.py``: starting, watching and stopping workers (one
  ``Incarnation`` per start, see ``project.py``).

All of them run on the loop thread only, so none of the state needs a lock.
"""

from __future__ import annotations

import errno
import itertools
import logging
import math
import os
import signal
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

import psutil
import zmq

from .. import __version__, paths, projects
from ..config import Config, format_size
from ..protocol import MAX_MESSAGE_BYTES, ErrorCode, RagexError
from ..runtimes.base import Runtime, WorkerSpec
from . import project as st
from .forwarding import Forwarding
from .frontend import ClientFrontEnd, _StatusWaiter
from .lifecycle import CHECK_INTERVAL, CHECK_INTERVAL_FAST, MAX_IPC_PATH, STOP_TERM_TIMEOUT, \
    WorkerLifecycle
from .notify import Notifier
from .ondisk import OnDiskProjects
from .project import Project
from .recent import RecentProjects

log = logging.getLogger("ragexd")

#: ragexd exits within this many seconds of being asked to stop, whatever the workers do.
SHUTDOWN_DEADLINE = 25.0
#: Pre-starting at login is skipped below this much available memory.
PRESTART_MIN_AVAILABLE = 1536 * 1024**2
PRESTART_PER_WORKER = 512 * 1024**2


class Daemon(ClientFrontEnd, OnDiskProjects, Forwarding, WorkerLifecycle):
    def __init__(self, cfg: Config, runtime: Runtime, runtime_reason: str, *,
                 notifier: Notifier | None = None, prestart: int = 0,
                 on_ready: Callable[[], None] | None = None) -> None:
        self.cfg = cfg
        self.runtime = runtime
        self.runtime_reason = runtime_reason
        self.notifier = notifier or Notifier()
        self.prestart = prestart
        self.on_ready = on_ready
        self.socket_path = paths.daemon_socket_path()
        self.endpoint = paths.daemon_endpoint()
        self.projects: dict[str, Project] = {}
        self.recent = RecentProjects(paths.state_dir() / "recent.json")
        self.started_wall = time.time()
        self.started = time.monotonic()
        self.shutting_down = False
        self.shutdown_deadline = 0.0
        self._exit = False
        self._signal: int | None = None
        self._ids = itertools.count(1)
        self._status_waiters: list[_StatusWaiter] = []
        self._done: deque[tuple[Callable[[Future[Any]], None], Future[Any]]] = deque()
        self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="runtime")
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._proc = psutil.Process()
        self._proc.cpu_percent(None)  # prime: the first call always says 0
        self.ctx: zmq.Context | None = None
        self.frontend: zmq.Socket | None = None
        self.poller = zmq.Poller()
        self._by_socket: dict[zmq.Socket, Project] = {}
        self._last_budget_check = 0.0
        self._notified_running = 0
        self._last_tick = time.monotonic()

    def bind(self) -> None:
        """Bind the client socket.  Only called while holding the instance lock."""
        if len(str(self.socket_path).encode()) > MAX_IPC_PATH:
            raise RuntimeError(f"the socket path {self.socket_path} is longer than "
                               f"{MAX_IPC_PATH} bytes; set RAGEX_RUNTIME_DIR to a shorter path")
        try:
            self.socket_path.unlink()   # stale: we hold the lock, so its owner is dead
            log.info("removed a stale socket %s", self.socket_path)
        except FileNotFoundError:
            pass
        if self.ctx is None:
            self.ctx = zmq.Context()
        self.frontend = self.ctx.socket(zmq.ROUTER)
        self.frontend.setsockopt(zmq.LINGER, 0)
        self.frontend.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        self.frontend.bind(self.endpoint)
        os.chmod(self.socket_path, 0o600)
        self.poller.register(self.frontend, zmq.POLLIN)
        self.poller.register(self._wake_r, zmq.POLLIN)

    def _install_signals(self) -> None:
        def handler(signum: int, _frame: Any) -> None:
            self._signal = signum

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)

    def adopt_or_reap(self) -> None:
        """Clear what a previous ragexd left behind; adopt what the runtime can adopt."""
        wanted: dict[str, WorkerSpec] = {}
        for project_id, root in self.recent.most_recent(max(self.prestart, 10)):
            if projects.root_exists(root):
                try:
                    wanted[project_id] = self._spec(project_id, root)
                except RagexError:
                    pass
        try:
            adopted = self.runtime.adopt_or_reap(wanted)
        except Exception:  # noqa: BLE001 - a failed cleanup must not stop ragexd
            log.exception("cleaning up workers of a previous ragexd failed")
            return
        for handle in adopted:
            proj = self._get_project(handle.spec.project_id, str(handle.spec.root))
            log.info("adopted the running worker %s for %s", handle.ident, proj.root)
            self._attach(proj, handle)

    def run(self) -> int:
        self._install_signals()
        self.adopt_or_reap()
        self.bind()
        log.info("ragexd %s (pid %d) listening on %s; workers run as %s (%s)", __version__,
                 os.getpid(), self.endpoint, self.runtime.name, self.runtime_reason)
        self.notifier.ready(f"listening on {self.socket_path}")
        if self.on_ready:
            self.on_ready()
        self._prestart()
        self._last_tick = time.monotonic()
        while not self._exit:
            try:
                self._iterate()
            except Exception:  # noqa: BLE001 - the loop must survive its own bugs
                log.exception("unexpected error in the main loop")
                time.sleep(0.05)
        self._cleanup()
        return 0

    def _iterate(self) -> None:
        timeout = self._poll_timeout()
        try:
            events = self.poller.poll(math.ceil(timeout * 1000))
        except zmq.ZMQError as exc:
            if exc.errno == errno.EINTR:
                events = []
            else:
                raise
        for sock, _ in events:
            try:
                if sock is self.frontend:
                    self._drain_frontend()
                elif sock == self._wake_r:
                    self._drain_wake()
                else:
                    proj = self._by_socket.get(sock)  # type: ignore[arg-type]
                    if proj is not None:
                        self._drain_worker(proj, sock)  # type: ignore[arg-type]
            except Exception:  # noqa: BLE001
                log.exception("error while handling socket events")
        self._run_done()
        self._tick()

    def _poll_timeout(self) -> float:
        """Sleep until the next timer is due: an idle ragexd wakes up rarely."""
        now = time.monotonic()
        timeout = 1.0
        if self.shutting_down:
            timeout = 0.1
        if self._status_waiters:
            timeout = min(timeout, 0.05)
        for p in self.projects.values():
            if p.start_at is not None:
                timeout = min(timeout, p.start_at - now)
            worker = p.worker
            if worker is None:
                continue
            if not worker.serving or worker.inflight or p.queue:
                timeout = min(timeout, CHECK_INTERVAL_FAST)   # deadlines, hung checks
                continue
            if not worker.check_pending:   # else its result will wake us up
                timeout = min(timeout, worker.next_check - now)
            timeout = min(timeout, worker.next_ping - now)
            if self.cfg.idle_timeout > 0:
                timeout = min(timeout, p.last_activity + self.cfg.idle_timeout - now)
        wd = self.notifier.next_watchdog_in(now)
        if wd is not None:
            timeout = min(timeout, wd)
        return max(0.0, timeout)

    def _cleanup(self) -> None:
        log.info("ragexd stopping: closing sockets")
        for proj in self.projects.values():
            if proj.worker is not None:
                self._close_dealer(proj.worker)
        if self.frontend is not None:
            try:
                self.frontend.close(linger=200)  # let the last replies (SHUTDOWN's) out
            except zmq.ZMQError:
                pass
        if self.ctx is not None:
            self.ctx.term()
        try:
            self.socket_path.unlink()
        except FileNotFoundError:
            pass
        self._executor.shutdown(wait=True, cancel_futures=True)
        try:
            self.runtime.close()
        except Exception:  # noqa: BLE001
            log.exception("closing the runtime failed")
        signal.set_wakeup_fd(-1)
        os.close(self._wake_r)
        os.close(self._wake_w)
        self.notifier.close()
        log.info("ragexd stopped")

    def _submit(self, on_done: Callable[[Future[Any]], None], fn: Callable[..., Any],
                *args: Any) -> None:
        """Run a blocking runtime call off the loop; ``on_done`` runs later in the loop."""
        future = self._executor.submit(fn, *args)

        def done(f: Future[Any]) -> None:
            self._done.append((on_done, f))
            try:
                os.write(self._wake_w, b"j")
            except OSError:
                pass

        future.add_done_callback(done)

    def _drain_wake(self) -> None:
        while True:
            try:
                if not os.read(self._wake_r, 4096):
                    break
            except (BlockingIOError, InterruptedError):
                break

    def _run_done(self) -> None:
        while self._done:
            on_done, future = self._done.popleft()
            try:
                on_done(future)
            except Exception:  # noqa: BLE001
                log.exception("error while handling a runtime result")

    def _tick(self) -> None:
        now = time.monotonic()
        self.notifier.watchdog(now)
        if self._signal is not None:
            signum, self._signal = self._signal, None
            name = signal.Signals(signum).name
            if self.shutting_down:
                log.warning("%s again: stopping workers now", name)
                self.shutdown_deadline = min(self.shutdown_deadline, now + STOP_TERM_TIMEOUT)
                for proj in self.projects.values():
                    if proj.worker is not None:
                        self._force_stop(proj, 1.0)
            else:
                self.begin_shutdown(name)
        if now - self._last_tick > max(5.0, self.cfg.heartbeat_timeout / 2):
            # ragexd itself was frozen (SIGSTOP, a debugger, swap storm): the workers'
            # silence is ours, not theirs; give them a fresh heartbeat window.
            log.warning("the main loop did not run for %.0f s", now - self._last_tick)
            for proj in self.projects.values():
                if proj.worker is not None:
                    proj.worker.last_seen = max(proj.worker.last_seen, now)
        self._last_tick = now
        for proj in list(self.projects.values()):
            self._tick_project(proj, now)
        if self.notifier.enabled and not self.shutting_down:
            running = sum(1 for p in self.projects.values() if p.worker is not None)
            if running != self._notified_running:
                self._notified_running = running
                self.notifier.status(f"{running} worker{'s' if running != 1 else ''} running")
        self._check_status_waiters(now)
        if now - self._last_budget_check >= CHECK_INTERVAL:
            self._last_budget_check = now
            self._enforce_budget()
        if self.shutting_down:
            self._shutdown_progress(now)

    def begin_shutdown(self, why: str) -> None:
        if self.shutting_down:
            return
        log.info("shutting down (%s)", why)
        self.shutting_down = True
        self.shutdown_deadline = time.monotonic() + SHUTDOWN_DEADLINE
        self.notifier.stopping()
        for proj in self.projects.values():
            proj.start_at = None
            self._fail_queue(proj, ErrorCode.SHUTTING_DOWN,
                             "ragexd is shutting down; try again in a few seconds")
            if proj.busy:
                self._stop(proj, st.STOP_SHUTDOWN)

    def _shutdown_progress(self, now: float) -> None:
        busy = [p for p in self.projects.values() if p.busy]
        if not busy:
            self._exit = True
            return
        if now < self.shutdown_deadline:
            return
        log.error("workers still running at the shutdown deadline: killing them")
        for proj in busy:
            if proj.worker is not None:
                try:
                    self.runtime.stop(proj.worker.handle, 0.0)
                except Exception:  # noqa: BLE001
                    log.exception("could not kill the worker for %s", proj.root)
        self._exit = True

    def _prestart(self) -> None:
        if self.prestart <= 0:
            return
        started = 0
        for project_id, root in self.recent.most_recent(self.prestart * 3):
            if started >= self.prestart:
                break
            if not projects.root_exists(root):
                continue
            available = psutil.virtual_memory().available - started * PRESTART_PER_WORKER
            if available < PRESTART_MIN_AVAILABLE:
                log.info("not pre-starting more workers: only %s of memory available",
                         format_size(max(0, available)))
                break
            try:
                proj = self._get_project(project_id, root)
            except RagexError as exc:
                log.warning("cannot pre-start %s: %s", root, exc.message)
                continue
            if not proj.busy:
                log.info("pre-starting the worker for %s", root)
                self._start(proj)
                started += 1
