"""ragexd's main loop: one thread, one poller, never blocked by a worker.

Everything arrives as an event on one ``zmq.Poller``: client requests on the
ROUTER, worker answers on one DEALER per worker incarnation, and completions
of runtime calls (start, poll, stop: they may take seconds with Docker, so they
run on a small thread pool and report back through a wake-up pipe).  The loop
therefore answers STATUS and PING at once even while a worker is loading a
model, indexing, hung or being killed, and a bug in handling one message is
logged and answered INTERNAL instead of taking the daemon down.

Client request ids are never sent to workers: ragexd gives each forwarded
request its own id, so two clients that pick the same id cannot get each
other's answers, and a late answer to a request that already timed out (or
was retried on a new worker) is recognised and dropped.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import psutil
import zmq

from .. import __version__, paths, projects
from ..config import Config, as_dict, format_size
from ..protocol import (MAX_MESSAGE_BYTES, PROTOCOL_MAJOR, ErrorCode, Op, Progress, RagexError,
                        Reply, Request, SearchArgs, decode, encode, request_id_of)
from ..runtimes.base import ExitInfo, Runtime, WorkerHandle, WorkerSpec
from . import project as st
from .backoff import RestartTracker
from ..logfile import tail
from .notify import Notifier
from .project import Pending, Project
from .recent import RecentProjects

log = logging.getLogger("ragexd")

#: Max length of an AF_UNIX path (sun_path is 108 bytes with the NUL).
MAX_IPC_PATH = 107
#: A worker must answer HELLO within this long after being started.
START_TIMEOUT = 120.0
#: After SHUTDOWN, a worker gets this long to exit before SIGTERM (then SIGKILL).
STOP_GRACE = 5.0
STOP_TERM_TIMEOUT = 5.0
#: ragexd exits within this many seconds of being asked to stop, whatever the workers do.
SHUTDOWN_DEADLINE = 25.0
#: How often the runtime is asked whether a worker still lives (and its memory).
CHECK_INTERVAL = 1.0
CHECK_INTERVAL_FAST = 0.2     # while starting or stopping
#: STATUS waits at most this long for fresh worker answers, then uses the cache.
STATUS_WAIT = 0.4
STATUS_FRESH = 1.0
#: Pre-starting at login is skipped below this much available memory.
PRESTART_MIN_AVAILABLE = 1536 * 1024**2
PRESTART_PER_WORKER = 512 * 1024**2
MAX_BATCH = 500               # messages drained from one socket per loop iteration
LOG_LINES_MAX = 10_000


@dataclass
class _StatusWaiter:
    envelope: list[bytes]
    request: Request
    projects: list[Project]
    deadline: float
    target: Project | None


class Daemon:
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

    # ============================================================== lifecycle

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
        for pid, root in self.recent.most_recent(max(self.prestart, 10)):
            if os.path.isdir(root):
                try:
                    wanted[pid] = self._spec(pid, root)
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
            if p.handle is None:
                continue
            if not p.ready or p.stop_reason is not None or p.inflight or p.queue:
                timeout = min(timeout, CHECK_INTERVAL_FAST)   # deadlines, hung checks
                continue
            if not p.check_pending:   # else its result will wake us up
                timeout = min(timeout, p.next_check - now)
            timeout = min(timeout, p.next_ping - now)
            if self.cfg.idle_timeout > 0:
                timeout = min(timeout, p.last_activity + self.cfg.idle_timeout - now)
        wd = self.notifier.next_watchdog_in(now)
        if wd is not None:
            timeout = min(timeout, wd)
        return max(0.0, timeout)

    def _cleanup(self) -> None:
        log.info("ragexd stopping: closing sockets")
        for proj in self.projects.values():
            if proj.dealer is not None:
                self._close_dealer(proj)
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

    # ============================================================ async jobs

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

    # ============================================================== clients

    def _drain_frontend(self) -> None:
        assert self.frontend is not None
        for _ in range(MAX_BATCH):
            try:
                frames = self.frontend.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            envelope = frames[:1]
            body = frames[1:]
            if body and body[0] == b"":   # a REQ client's delimiter: keep it for the reply
                envelope.append(b"")
                body = body[1:]
            rid = ""
            try:
                rid = request_id_of(body) if body else ""
                message = decode(body)
                if not isinstance(message, Request):
                    raise RagexError(ErrorCode.BAD_REQUEST,
                                     "ragexd accepts requests only (got a "
                                     f"{type(message).__name__.lower()})")
                rid = message.id
                self._dispatch(envelope, message)
            except RagexError as exc:
                self._send(envelope, Reply.from_exception(rid, exc))
            except Exception as exc:  # noqa: BLE001 - answer, log, live on
                log.exception("internal error handling a request")
                self._send(envelope, Reply.failure(
                    rid, ErrorCode.INTERNAL,
                    f"internal error in ragexd: {type(exc).__name__}: {exc}. This is a bug; "
                    f"the details are in {paths.log_dir() / 'ragexd.log'}"))

    def _send(self, envelope: list[bytes], message: Reply | Progress) -> None:
        if not envelope or self.frontend is None:
            return
        try:
            self.frontend.send_multipart(envelope + encode(message), zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # client gone or not reading: its loss, not ours
            log.debug("dropping a message to a client: %s", exc)

    def _fail(self, pending: Pending, code: ErrorCode, message: str, **detail: Any) -> None:
        self._send(pending.envelope, Reply.failure(pending.request.id, code, message, **detail))

    def _dispatch(self, envelope: list[bytes], req: Request) -> None:
        op = req.op
        if self.shutting_down and op not in (Op.HELLO, Op.PING, Op.STATUS):
            raise RagexError(ErrorCode.SHUTTING_DOWN,
                             "ragexd is shutting down and takes no new work; "
                             "try again in a few seconds (it will be started again)")
        if op is Op.PING:
            self._send(envelope, Reply.success(req.id, {"pid": os.getpid()}))
        elif op is Op.HELLO:
            self._send(envelope, Reply.success(req.id, self._hello()))
        elif op is Op.STATUS:
            self._status(envelope, req)
        elif op in (Op.SEARCH, Op.INDEX, Op.WORKER_STATUS):
            self._forward(envelope, req)
        elif op is Op.START:
            self._start_op(envelope, req)
        elif op is Op.STOP:
            self._stop_op(envelope, req)
        elif op is Op.SHUTDOWN:
            self._send(envelope, Reply.success(req.id, {"stopping": True}))
            self.begin_shutdown("a SHUTDOWN request")
        elif op is Op.LIST:
            self._list_op(envelope, req)
        elif op is Op.REMOVE:
            self._remove_op(envelope, req)
        elif op is Op.LOGS:
            self._logs_op(envelope, req)
        else:  # pragma: no cover - every Op is handled above
            raise RagexError(ErrorCode.BAD_REQUEST, f"ragexd does not handle {op.value!r}")

    def _hello(self) -> dict[str, Any]:
        return {"version": __version__, "protocol": PROTOCOL_MAJOR, "pid": os.getpid(),
                "capabilities": [o.value for o in Op], "runtime": self._runtime_info(),
                "socket": str(self.socket_path)}

    def _runtime_info(self) -> dict[str, Any]:
        try:
            info = dict(self.runtime.describe())
        except Exception as exc:  # noqa: BLE001
            info = {"runtime": self.runtime.name, "error": str(exc)}
        info["reason"] = self.runtime_reason
        return info

    # ============================================================== projects

    def _spec(self, project_id: str, root: str) -> WorkerSpec:
        spec = WorkerSpec(project_id=project_id, root=Path(root),
                          index_dir=paths.index_dir(project_id),
                          socket_dir=paths.worker_socket_dir(project_id),
                          log_path=paths.log_dir() / f"{project_id}.log",
                          memory_limit=self.cfg.memory_limit, cpus=self.cfg.docker_cpus,
                          watch=self.cfg.watch)
        if len(str(spec.socket_path).encode()) > MAX_IPC_PATH:
            raise RagexError(ErrorCode.RUNTIME_ERROR,
                             f"the worker socket path {spec.socket_path} is longer than "
                             f"{MAX_IPC_PATH} bytes; set RAGEX_RUNTIME_DIR to a shorter path "
                             "and restart ragexd")
        return spec

    def _get_project(self, project_id: str, root: str, register: bool = True) -> Project:
        proj = self.projects.get(project_id)
        if proj is None:
            proj = Project(id=project_id, root=root, spec=self._spec(project_id, root),
                           restarts=RestartTracker())
            if register:
                self.projects[project_id] = proj
        return proj

    def _resolve_root(self, req: Request, must_exist: bool = True) -> tuple[str, str]:
        """(project id, real root) of ``req.project``, or a RagexError saying what is wrong."""
        raw = req.project
        if not raw:
            raise RagexError(ErrorCode.BAD_REQUEST,
                             f"'{req.op.value}' needs the project root (absolute path) in "
                             "'project'")
        if not os.path.isabs(raw):
            raise RagexError(ErrorCode.BAD_REQUEST,
                             f"the project root must be an absolute path, not {raw!r}")
        real = os.path.realpath(raw)
        if must_exist:
            if not os.path.exists(real):
                raise RagexError(ErrorCode.NOT_FOUND,
                                 f"the project directory {raw} does not exist", path=raw)
            if not os.path.isdir(real):
                raise RagexError(ErrorCode.NOT_FOUND,
                                 f"the project root {raw} is not a directory", path=raw)
        return paths.project_id_for(Path(real)), real

    def _project_for(self, req: Request, register: bool = True) -> Project:
        pid, real = self._resolve_root(req)
        return self._get_project(pid, real, register)

    def _touch(self, proj: Project, now: float) -> None:
        """Record the use (project.json, recent.json), at most once a minute per project."""
        if now - proj.last_touch < 60.0:
            return
        proj.last_touch = now
        try:
            paths.ProjectRecord.touch(Path(proj.root))
        except OSError as exc:
            log.warning("cannot update the project record of %s: %s", proj.root, exc)
        self.recent.touch(proj.id, proj.root)

    # ============================================================== forwarding

    def _forward(self, envelope: list[bytes], req: Request) -> None:
        now = time.monotonic()
        proj = self._project_for(req)
        if req.op is Op.SEARCH:
            SearchArgs.from_wire(req.args)  # refuse a bad query without starting a worker
        if proj.removing:
            raise RagexError(ErrorCode.WORKER_UNAVAILABLE,
                             f"the index of {proj.root} is being removed; try again")
        if proj.state == st.CRASH_LOOP:
            self._send(envelope, self._crash_loop_reply(proj, req.id))
            return
        if proj.load >= self.cfg.queue_size:
            raise RagexError(ErrorCode.BUSY,
                             f"the worker for {proj.root} already has {proj.load} requests "
                             f"queued or running (the limit is {self.cfg.queue_size}); "
                             "try again shortly", limit=self.cfg.queue_size)
        pending = Pending(envelope=envelope, request=req, received=now,
                          deadline=(now + float(req.timeout)) if req.timeout else None)
        self._touch(proj, now)
        if proj.ready and proj.stop_reason is None:
            self._send_to_worker(proj, pending)
        else:
            proj.queue.append(pending)
            self._ensure_started(proj)

    def _send_to_worker(self, proj: Project, pending: Pending) -> None:
        assert proj.dealer is not None
        wid = f"r{next(self._ids):x}"
        req = pending.request
        forwarded = Request(op=req.op, args=req.args, project=proj.root, id=wid,
                            client_version=req.client_version, timeout=req.timeout)
        try:
            proj.dealer.send_multipart(encode(forwarded), zmq.NOBLOCK)
        except zmq.Again:
            self._fail(pending, ErrorCode.BUSY,
                       f"the worker for {proj.root} is not keeping up; try again shortly")
            return
        pending.wid = wid
        proj.inflight[wid] = pending

    def _send_internal(self, proj: Project, op: Op, kind: str) -> None:
        if proj.dealer is None:
            return
        wid = f"i{next(self._ids):x}"
        try:
            proj.dealer.send_multipart(encode(Request(op=op, id=wid)), zmq.NOBLOCK)
        except zmq.Again:
            return
        proj.internal[wid] = (kind, time.monotonic())

    def _drain_worker(self, proj: Project, sock: zmq.Socket) -> None:
        for _ in range(MAX_BATCH):
            if proj.dealer is not sock:
                return  # detached while draining
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                message = decode(frames)
            except RagexError as exc:
                log.warning("undecodable message from the worker for %s: %s", proj.root,
                            exc.message)
                continue
            try:
                self._on_worker_message(proj, message)
            except Exception:  # noqa: BLE001
                log.exception("error handling a message from the worker for %s", proj.root)

    def _on_worker_message(self, proj: Project, message: Any) -> None:
        now = time.monotonic()
        proj.last_seen = now
        if isinstance(message, Progress):
            pending = proj.inflight.get(message.id)
            if pending is not None:
                # A request that reports progress is alive: its deadline means "silent
                # for this long", so a long index is never cut off mid-way.
                if pending.request.timeout:
                    pending.deadline = now + float(pending.request.timeout)
                message.id = pending.request.id
                self._send(pending.envelope, message)
            return
        if not isinstance(message, Reply):
            return
        internal = proj.internal.pop(message.id, None)
        if internal is not None:
            kind, sent_at = internal
            self._on_internal_reply(proj, kind, message, now, sent_at)
            return
        pending = proj.inflight.pop(message.id, None)
        if pending is None:
            return  # answered already (timed out) or from an earlier incarnation
        message.id = pending.request.id
        self._send(pending.envelope, message)
        proj.last_activity = now
        if pending.request.op is Op.INDEX:
            # The cached numbers predate the run: the next STATUS must wait for new ones.
            proj.status_at = -1e9
            self._refresh_status(proj, now, force=True)

    def _on_internal_reply(self, proj: Project, kind: str, reply: Reply, now: float,
                           sent_at: float) -> None:
        result = reply.result or {}
        if kind == "hello":
            if not reply.ok:
                log.warning("the worker for %s refused HELLO: %s", proj.root,
                            reply.error.message if reply.error else "?")
            proj.hello = result
            proj.ready = True
            proj.ready_after = now - proj.started_mono
            proj.next_ping = now + self.cfg.heartbeat_interval
            if proj.stop_reason is None:
                proj.state = st.READY
            log.info("worker %s for %s is ready (%.2f s after start)",
                     proj.handle.ident if proj.handle else "?", proj.root, proj.ready_after)
            self._flush_queue(proj)
            self._refresh_status(proj, now)
        elif kind == "ping":
            proj.ping_sent_at = None
            if reply.ok:
                proj.last_ping = result
                self._set_indexing(proj, result, sent_at)
        elif kind == "status":
            if proj.status_sent_at is not None and sent_at >= proj.status_sent_at:
                proj.status_sent_at = None
            # Answers may overtake each other (the worker runs them on a pool):
            # never replace a newer answer with an older one.
            if reply.ok and sent_at >= proj.status_cached_sent:
                proj.status_cached_sent = sent_at
                proj.last_status = result
                proj.status_at = now
                self._set_indexing(proj, result, sent_at)
                index = result.get("index")
                if isinstance(index, dict) and isinstance(index.get("size_bytes"), int):
                    proj.index_size = (now, index["size_bytes"])

    @staticmethod
    def _set_indexing(proj: Project, result: dict[str, Any], sent_at: float) -> None:
        if sent_at >= proj.indexing_sent:
            proj.indexing_sent = sent_at
            proj.indexing = bool(result.get("indexing"))

    def _flush_queue(self, proj: Project) -> None:
        while proj.queue and proj.ready and proj.stop_reason is None:
            self._send_to_worker(proj, proj.queue.popleft())

    def _refresh_status(self, proj: Project, now: float, force: bool = False) -> None:
        if proj.ready and proj.stop_reason is None and (
                force or proj.status_sent_at is None or now - proj.status_sent_at > 5.0):
            proj.status_sent_at = now
            self._send_internal(proj, Op.WORKER_STATUS, "status")

    # ============================================================== start / stop

    def _ensure_started(self, proj: Project) -> None:
        if proj.handle is not None or proj.start_pending or self.shutting_down:
            return
        if proj.state == st.CRASH_LOOP:
            return
        wait = proj.restarts.wait()
        if wait > 0:
            if proj.start_at is None:
                log.info("restarting the worker for %s in %.1f s (backoff)", proj.root, wait)
            proj.start_at = time.monotonic() + wait
            return
        self._start(proj)

    def _start(self, proj: Project) -> None:
        spec = proj.spec = self._spec(proj.id, proj.root)   # may raise: before any change
        proj.start_at = None
        proj.start_pending = True
        if proj.state in (st.CRASHED, st.MEMORY_LIMIT, st.CRASH_LOOP):
            proj.restart_count += 1
        proj.state = st.STARTING
        log.info("starting a %s worker for %s", self.runtime.name, proj.root)
        self._submit(lambda f: self._on_started(proj, f), self.runtime.start, spec)

    def _on_started(self, proj: Project, future: Future[Any]) -> None:
        proj.start_pending = False
        try:
            handle: WorkerHandle = future.result()
        except Exception as exc:  # noqa: BLE001 - RuntimeError sentences, or a bug
            message = str(exc) or type(exc).__name__
            log.error("cannot start a worker for %s: %s", proj.root, message)
            proj.last_error = f"could not start: {message}"
            proj.last_exit = ExitInfo(None, "crashed", proj.last_error)
            loop = proj.restarts.record_crash()
            proj.state = st.CRASH_LOOP if loop else st.CRASHED
            for pending in list(proj.queue):
                if loop:
                    self._send(pending.envelope, self._crash_loop_reply(proj, pending.request.id))
                else:
                    self._fail(pending, ErrorCode.RUNTIME_ERROR,
                               f"ragexd could not start a worker for {proj.root}: {message}")
            proj.queue.clear()
            self._notify_stopped(proj)
            return
        self._attach(proj, handle)
        reason = proj.stop_after_start or (st.STOP_SHUTDOWN if self.shutting_down else None)
        proj.stop_after_start = None
        if reason:
            self._stop(proj, reason)

    def _attach(self, proj: Project, handle: WorkerHandle) -> None:
        now = time.monotonic()
        if self.ctx is None:  # adopting before bind(): the context comes first
            self.ctx = zmq.Context()
        proj.handle = handle
        proj.incarnation += 1
        proj.ready = False
        proj.hello = None
        proj.started_mono = now
        proj.last_seen = now
        proj.last_activity = now
        proj.ping_sent_at = None
        proj.last_ping = None
        proj.indexing = False
        proj.last_status = None
        proj.status_sent_at = None
        proj.internal.clear()
        proj.check_pending = False
        proj.next_check = now + CHECK_INTERVAL_FAST
        proj.state = st.STARTING
        dealer = self.ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(handle.spec.endpoint)
        proj.dealer = dealer
        self._by_socket[dealer] = proj
        self.poller.register(dealer, zmq.POLLIN)
        proj.restarts.record_start()
        self._send_internal(proj, Op.HELLO, "hello")

    def _close_dealer(self, proj: Project) -> None:
        dealer = proj.dealer
        if dealer is None:
            return
        try:
            self.poller.unregister(dealer)
        except KeyError:
            pass
        self._by_socket.pop(dealer, None)
        dealer.close(linger=0)
        proj.dealer = None

    def _stop(self, proj: Project, reason: str,
              waiter: Callable[[Project], None] | None = None) -> None:
        """Ask a worker to stop: SHUTDOWN now, SIGTERM after STOP_GRACE, SIGKILL after that."""
        if waiter is not None:
            proj.stop_waiters.append(waiter)
        if proj.handle is None:
            if proj.start_pending:
                proj.stop_after_start = reason
                return
            proj.start_at = None
            self._notify_stopped(proj)
            return
        if proj.stop_reason is not None:
            if reason == st.STOP_SHUTDOWN:
                proj.stop_reason = reason
            return
        now = time.monotonic()
        proj.stop_reason = reason
        proj.state = st.STOPPING
        proj.stop_deadline = now + STOP_GRACE
        proj.next_check = now + 0.1
        log.info("stopping the worker for %s (%s)", proj.root, reason)
        self._send_internal(proj, Op.SHUTDOWN, "shutdown")

    def _force_stop(self, proj: Project, timeout: float) -> None:
        if proj.handle is None or proj.force_stop_pending:
            return
        proj.force_stop_pending = True
        incarnation = proj.incarnation
        self._submit(lambda f: self._on_force_stopped(proj, incarnation, f),
                     self.runtime.stop, proj.handle, timeout)

    def _on_force_stopped(self, proj: Project, incarnation: int, future: Future[Any]) -> None:
        proj.force_stop_pending = False
        if incarnation != proj.incarnation or proj.handle is None:
            return
        try:
            info = future.result()
        except Exception as exc:  # noqa: BLE001
            log.error("stopping the worker for %s failed: %s", proj.root, exc)
            info = ExitInfo(None, "stopped", f"could not be stopped cleanly: {exc}")
        self._on_exit(proj, info)

    def _kill_hung(self, proj: Project, sentence: str) -> None:
        log.error("the worker for %s is hung: %s; killing it", proj.root, sentence)
        proj.stop_reason = st.STOP_HUNG
        proj.hung_message = sentence
        self._force_stop(proj, 0.0)

    def _notify_stopped(self, proj: Project) -> None:
        waiters, proj.stop_waiters = proj.stop_waiters, []
        for waiter in waiters:
            try:
                waiter(proj)
            except Exception:  # noqa: BLE001
                log.exception("error in a stop callback")

    # ============================================================== exits

    def _check_job(self, handle: WorkerHandle) -> tuple[ExitInfo | None, int | None]:
        """Runs on the pool: is the worker alive (memory limit enforced), and its RSS."""
        info = self.runtime.poll(handle)
        return info, (None if info is not None else self.runtime.memory(handle))

    def _on_checked(self, proj: Project, incarnation: int, future: Future[Any]) -> None:
        proj.check_pending = False
        if incarnation != proj.incarnation or proj.handle is None:
            return
        now = time.monotonic()
        fast = not proj.ready or proj.stop_reason is not None
        proj.next_check = now + (CHECK_INTERVAL_FAST if fast else CHECK_INTERVAL)
        try:
            info, rss = future.result()
        except Exception:  # noqa: BLE001
            log.exception("checking the worker for %s failed", proj.root)
            return
        if info is None:
            proj.rss = rss
            return
        self._on_exit(proj, info)

    def _on_exit(self, proj: Project, info: ExitInfo) -> None:
        """The worker is gone, for whatever reason: account for it and answer its requests."""
        reason = proj.stop_reason
        proj.stop_reason = None
        proj.stop_deadline = None
        self._close_dealer(proj)
        proj.handle = None
        proj.ready = False
        proj.rss = None
        proj.indexing = False
        proj.internal.clear()
        proj.ping_sent_at = None
        proj.status_sent_at = None
        proj.last_exit = info
        inflight = list(proj.inflight.values())
        proj.inflight.clear()
        root = proj.root

        if reason is not None and reason != st.STOP_HUNG and not info.memory_limit_exceeded:
            proj.restarts.record_stop()
            proj.state = (st.IDLE_STOPPED if reason in (st.STOP_IDLE, st.STOP_BUDGET)
                          else st.STOPPED)
            log.info("the worker for %s stopped (%s): %s", root, reason, info.message)
            code = ErrorCode.SHUTTING_DOWN if reason == st.STOP_SHUTDOWN \
                else ErrorCode.WORKER_UNAVAILABLE
            for pending in inflight:
                self._fail(pending, code, f"the worker for {root} was stopped ({reason}) "
                                          "before it answered; try again")
        else:
            crash_loop = proj.restarts.record_crash()
            tail_lines = list(info.log_tail)
            if info.memory_limit_exceeded:
                proj.state = st.MEMORY_LIMIT
                proj.last_error = info.message
                log.warning("the worker for %s was %s", root, info.message)
            else:
                sentence = (f"hung: {proj.hung_message}; killed" if reason == st.STOP_HUNG
                            else f"crashed: {info.message}")
                proj.state = st.CRASHED
                proj.last_error = sentence
                log.warning("the worker for %s %s; last log lines:\n  %s", root, sentence,
                            "\n  ".join(tail_lines[-10:]) or "(none)")
            if crash_loop:
                proj.state = st.CRASH_LOOP
                log.error("the worker for %s crashed %d times within %.0f minutes: crash loop; "
                          "not restarting it until `ragexctl start %s`", root,
                          proj.restarts.recent_crashes(),
                          proj.restarts.policy.loop_window / 60, root)
            retry: list[Pending] = []
            for pending in inflight:
                if crash_loop:
                    self._send(pending.envelope, self._crash_loop_reply(proj, pending.request.id))
                elif info.memory_limit_exceeded:
                    self._fail(pending, ErrorCode.MEMORY_LIMIT,
                               f"the worker for {root} was {info.message} while handling this "
                               "request. Raise memory_limit in config.toml (or "
                               "RAGEX_DAEMON_MEMORY_LIMIT) if the project needs more.",
                               exit_code=info.exit_code, limit=proj.spec.memory_limit)
                elif pending.request.idempotent and not pending.retried and not self.shutting_down:
                    pending.retried = True
                    retry.append(pending)
                else:
                    self._fail(pending, ErrorCode.WORKER_CRASHED,
                               f"the worker for {root} died while handling this request "
                               f"({proj.last_error}). See `ragexctl logs {root}`.",
                               exit_code=info.exit_code, log_tail=tail_lines[-20:])
            if retry:
                log.info("retrying %d idempotent request(s) for %s on a new worker",
                         len(retry), root)
                proj.queue.extendleft(reversed(retry))
        self._notify_stopped(proj)
        if self.shutting_down:
            for pending in proj.queue:
                self._fail(pending, ErrorCode.SHUTTING_DOWN, "ragexd is shutting down")
            proj.queue.clear()
        elif proj.queue:
            if proj.state == st.CRASH_LOOP:
                for pending in proj.queue:
                    self._send(pending.envelope, self._crash_loop_reply(proj, pending.request.id))
                proj.queue.clear()
            elif not proj.removing:
                self._ensure_started(proj)

    def _crash_loop_reply(self, proj: Project, request_id: str) -> Reply:
        info = proj.last_exit
        tail_lines = list(info.log_tail)[-20:] if info else []
        code = info.exit_code if info else None
        shown = "\n  ".join(tail_lines[-5:])
        policy = proj.restarts.policy
        message = (f"the worker for {proj.root} crashed {len(proj.restarts.crashes)} times within "
                   f"{policy.loop_window / 60:.0f} minutes, so ragexd stopped restarting it "
                   f"(last: {proj.last_error or 'unknown'}; exit code "
                   f"{'unknown' if code is None else code}).")
        if shown:
            message += f" Last log lines:\n  {shown}\n"
        message += (f" See `ragexctl logs {proj.root}`; once the cause is fixed, run "
                    f"`ragexctl start {proj.root}`.")
        return Reply.failure(request_id, ErrorCode.CRASH_LOOP, message, exit_code=code,
                             log_tail=tail_lines, last_error=proj.last_error,
                             log_path=str(proj.spec.log_path), project_id=proj.id)

    # ============================================================== timers

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
                    if proj.handle is not None:
                        self._force_stop(proj, 1.0)
            else:
                self.begin_shutdown(name)
        if now - self._last_tick > max(5.0, self.cfg.heartbeat_timeout / 2):
            # ragexd itself was frozen (SIGSTOP, a debugger, swap storm): the workers'
            # silence is ours, not theirs; give them a fresh heartbeat window.
            log.warning("the main loop did not run for %.0f s", now - self._last_tick)
            for proj in self.projects.values():
                proj.last_seen = max(proj.last_seen, now)
        self._last_tick = now
        for proj in list(self.projects.values()):
            self._tick_project(proj, now)
        if self.notifier.enabled and not self.shutting_down:
            running = sum(1 for p in self.projects.values() if p.handle is not None)
            if running != self._notified_running:
                self._notified_running = running
                self.notifier.status(f"{running} worker{'s' if running != 1 else ''} running")
        self._check_status_waiters(now)
        if now - self._last_budget_check >= CHECK_INTERVAL:
            self._last_budget_check = now
            self._enforce_budget()
        if self.shutting_down:
            self._shutdown_progress(now)

    def _tick_project(self, proj: Project, now: float) -> None:
        if (proj.start_at is not None and now >= proj.start_at and proj.handle is None
                and not proj.start_pending and not self.shutting_down):
            self._start(proj)
        self._expire(proj, now)
        handle = proj.handle
        if handle is None:
            return
        if not proj.check_pending and now >= proj.next_check:
            proj.check_pending = True
            incarnation = proj.incarnation
            self._submit(lambda f: self._on_checked(proj, incarnation, f),
                         self._check_job, handle)
        if proj.stop_reason is not None:
            if (proj.stop_deadline is not None and now >= proj.stop_deadline
                    and not proj.force_stop_pending):
                self._force_stop(proj, STOP_TERM_TIMEOUT)
            return
        if not proj.ready:
            if now - proj.started_mono > START_TIMEOUT:
                self._kill_hung(proj, f"did not answer within {START_TIMEOUT:.0f} s of starting")
            return
        silent = now - proj.last_seen
        if silent > self.cfg.heartbeat_timeout:
            self._kill_hung(proj, f"no answer to heartbeats for {silent:.0f} s")
            return
        if now >= proj.next_ping and proj.ping_sent_at is None:
            proj.ping_sent_at = now
            proj.next_ping = now + self.cfg.heartbeat_interval
            self._send_internal(proj, Op.PING, "ping")
        elif now >= proj.next_ping:
            proj.next_ping = now + self.cfg.heartbeat_interval
            self._send_internal(proj, Op.PING, "ping")   # still waiting: ask again
        proj.restarts.note_healthy()
        idle = self.cfg.idle_timeout
        if (idle > 0 and not proj.inflight and not proj.queue
                and now - proj.last_activity >= idle):
            log.info("the worker for %s was idle for %.0f s", proj.root, now - proj.last_activity)
            self._stop(proj, st.STOP_IDLE)

    def _expire(self, proj: Project, now: float) -> None:
        """Answer TIMEOUT for requests past their deadline (late answers are then dropped)."""
        if proj.queue and any(p.deadline is not None and now >= p.deadline for p in proj.queue):
            keep: deque[Pending] = deque()
            for pending in proj.queue:
                if pending.deadline is not None and now >= pending.deadline:
                    self._fail(pending, ErrorCode.TIMEOUT,
                               f"the worker for {proj.root} was not ready within "
                               f"{pending.request.timeout:g} s; try again")
                else:
                    keep.append(pending)
            proj.queue = keep
        if proj.inflight:
            late = [wid for wid, p in proj.inflight.items()
                    if p.deadline is not None and now >= p.deadline]
            for wid in late:
                pending = proj.inflight.pop(wid)
                self._fail(pending, ErrorCode.TIMEOUT,
                           f"the worker for {proj.root} did not answer within "
                           f"{pending.request.timeout:g} s")
            if late:
                proj.last_activity = now

    def _enforce_budget(self) -> None:
        budget = self.cfg.memory_budget
        if budget <= 0:
            return
        running = [p for p in self.projects.values() if p.handle is not None and p.rss]
        total = sum(p.rss or 0 for p in running)
        if total <= budget:
            return
        idle = sorted((p for p in running if p.ready and p.stop_reason is None
                       and not p.inflight and not p.queue), key=lambda p: p.last_activity)
        for proj in idle:
            if total <= budget:
                break
            log.warning("workers use %s, over the memory budget of %s: stopping the least "
                        "recently used idle one (%s)", format_size(total), format_size(budget),
                        proj.root)
            proj.last_error = (f"stopped: memory budget {format_size(budget)} for all workers "
                               "exceeded (least recently used idle worker)")
            total -= proj.rss or 0
            self._stop(proj, st.STOP_BUDGET)

    # ============================================================== shutdown

    def begin_shutdown(self, why: str) -> None:
        if self.shutting_down:
            return
        log.info("shutting down (%s)", why)
        self.shutting_down = True
        self.shutdown_deadline = time.monotonic() + SHUTDOWN_DEADLINE
        self.notifier.stopping()
        for proj in self.projects.values():
            proj.start_at = None
            for pending in proj.queue:
                self._fail(pending, ErrorCode.SHUTTING_DOWN,
                           "ragexd is shutting down; try again in a few seconds")
            proj.queue.clear()
            if proj.handle is not None or proj.start_pending:
                self._stop(proj, st.STOP_SHUTDOWN)

    def _shutdown_progress(self, now: float) -> None:
        busy = [p for p in self.projects.values() if p.handle is not None or p.start_pending]
        if not busy:
            self._exit = True
            return
        if now < self.shutdown_deadline:
            return
        log.error("workers still running at the shutdown deadline: killing them")
        for proj in busy:
            if proj.handle is not None:
                try:
                    self.runtime.stop(proj.handle, 0.0)
                except Exception:  # noqa: BLE001
                    log.exception("could not kill the worker for %s", proj.root)
        self._exit = True

    # ============================================================== ops

    def _start_op(self, envelope: list[bytes], req: Request) -> None:
        proj = self._project_for(req)
        now = time.monotonic()
        if proj.removing:
            raise RagexError(ErrorCode.WORKER_UNAVAILABLE,
                             f"the index of {proj.root} is being removed; try again")
        if proj.state == st.CRASH_LOOP:
            log.info("crash loop of %s cleared by START", proj.root)
        proj.restarts.reset()
        if proj.state == st.CRASH_LOOP:
            proj.state = st.STOPPED
        self._touch(proj, now)
        proj.last_activity = now
        if proj.handle is None and not proj.start_pending:
            self._start(proj)
        self._send(envelope, Reply.success(req.id, {"project_id": proj.id, "root": proj.root,
                                                    "state": proj.display_state()}))

    def _stop_op(self, envelope: list[bytes], req: Request) -> None:
        if req.args.get("all"):
            targets = [p for p in self.projects.values()
                       if p.handle is not None or p.start_pending or p.start_at is not None]
        else:
            pid, _real = self._resolve_root(req, must_exist=False)
            proj = self.projects.get(pid)
            targets = [proj] if proj is not None and (
                proj.handle is not None or proj.start_pending or proj.start_at is not None) else []
        if not targets:
            self._send(envelope, Reply.success(req.id, {"stopped": []}))
            return
        remaining = {p.id for p in targets}
        stopped = sorted(remaining)

        def one_done(proj: Project) -> None:
            remaining.discard(proj.id)
            if not remaining:
                self._send(envelope, Reply.success(req.id, {"stopped": stopped}))

        for proj in targets:
            for pending in proj.queue:
                self._fail(pending, ErrorCode.WORKER_UNAVAILABLE,
                           f"the worker for {proj.root} was stopped (ragexctl stop)")
            proj.queue.clear()
            self._stop(proj, st.STOP_USER, one_done)

    def _status(self, envelope: list[bytes], req: Request) -> None:
        now = time.monotonic()
        target: Project | None = None
        if req.project:
            pid, real = self._resolve_root(req, must_exist=False)
            target = self.projects.get(pid) or self._get_project(pid, real, register=False)
        projects = [target] if target is not None else list(self.projects.values())
        waiting = []
        for proj in projects:
            if proj.ready and proj.stop_reason is None and now - proj.status_at > STATUS_FRESH:
                self._refresh_status(proj, now)
                if proj.status_pending:
                    waiting.append(proj)
        waiter = _StatusWaiter(envelope, req, waiting, now + STATUS_WAIT, target)
        if waiting:
            self._status_waiters.append(waiter)
        else:
            self._answer_status(waiter)

    def _check_status_waiters(self, now: float) -> None:
        if not self._status_waiters:
            return
        still = []
        for waiter in self._status_waiters:
            if now >= waiter.deadline or not any(
                    p.status_pending and p.handle is not None for p in waiter.projects):
                try:
                    self._answer_status(waiter)
                except Exception:  # noqa: BLE001
                    log.exception("error answering STATUS")
                    self._send(waiter.envelope, Reply.failure(
                        waiter.request.id, ErrorCode.INTERNAL, "internal error in ragexd "
                        "while building the status; see its log"))
            else:
                still.append(waiter)
        self._status_waiters = still

    def _answer_status(self, waiter: _StatusWaiter) -> None:
        projects = ([waiter.target] if waiter.target is not None
                    else sorted(self.projects.values(), key=lambda p: p.root))
        result = {"daemon": self._daemon_info(),
                  "workers": [self._worker_info(p) for p in projects]}
        self._send(waiter.envelope, Reply.success(waiter.request.id, result))

    def _daemon_info(self) -> dict[str, Any]:
        try:
            rss = self._proc.memory_info().rss
            cpu = self._proc.cpu_percent(None)
        except psutil.Error:
            rss, cpu = None, None
        config = as_dict(self.cfg)
        return {"pid": os.getpid(), "version": __version__,
                "uptime_s": round(time.monotonic() - self.started, 1),
                "started_at": self.started_wall, "rss": rss, "cpu_percent": cpu,
                "socket": str(self.socket_path), "runtime": self._runtime_info(),
                "config": config, "shutting_down": self.shutting_down,
                "log_path": str(paths.log_dir() / "ragexd.log")}

    def _index_size(self, proj: Project, now: float) -> int | None:
        at, size = proj.index_size
        if now - at < 30.0:
            return size
        directory = proj.spec.index_dir
        size = paths.dir_size(directory) if directory.exists() else None
        proj.index_size = (now, size)
        return size

    def _worker_info(self, proj: Project) -> dict[str, Any]:
        now = time.monotonic()
        handle = proj.handle
        index = (proj.last_status or {}).get("index") if handle is not None else None
        info: dict[str, Any] = {
            "project_id": proj.id, "root": proj.root, "state": proj.display_state(),
            "runtime": handle.runtime if handle else self.runtime.name,
            "ident": handle.ident if handle else None,
            "pid": handle.pid if handle else None,
            "rss": proj.rss if handle else None,
            "uptime_s": round(now - proj.started_mono, 1) if handle else None,
            "idle_s": (round(now - proj.last_activity, 1)
                       if handle and not proj.inflight else (0.0 if handle else None)),
            "index_size": self._index_size(proj, now),
            "last_error": proj.last_error,
            "restarts": proj.restart_count,
            "queue": proj.load,
            "inflight": len(proj.inflight),
            "index": index if isinstance(index, dict) else None,
            "model_loaded": bool((proj.last_ping or proj.last_status or {}).get("model_loaded")),
            "exit_code": proj.last_exit.exit_code if proj.last_exit else None,
            "recent_crashes": proj.restarts.recent_crashes(),
            "restart_in": (round(max(0.0, proj.start_at - now), 1)
                           if proj.start_at is not None else None),
            "log_path": str(proj.spec.log_path),
        }
        return info

    def _target_id(self, target: str) -> tuple[str, str | None]:
        """A project id or path (as given to rm/logs) → (project id, root if known)."""
        proj = self.projects.get(target)
        if proj is not None:
            return target, proj.root
        if not projects.is_project_id(target) and not os.path.isabs(target):
            # Our cwd is /: a relative path would mean something else to the user.
            raise RagexError(ErrorCode.BAD_REQUEST,
                             f"{target!r} is neither a project id nor an absolute path")
        return projects.resolve(target)

    def _list_op(self, envelope: list[bytes], req: Request) -> None:
        def done(future: Future[Any]) -> None:
            try:
                items = future.result()
            except Exception as exc:  # noqa: BLE001
                log.exception("listing projects failed")
                self._send(envelope, Reply.failure(req.id, ErrorCode.INTERNAL,
                                                   f"listing projects failed: {exc}"))
                return
            for item in items:
                proj = self.projects.get(item["id"])
                item["running"] = bool(proj and proj.handle is not None)
                item["state"] = proj.display_state() if proj else st.STOPPED
                item["exists"] = os.path.isdir(item["root"])
            items.sort(key=lambda i: -float(i["last_used"] or 0))
            self._send(envelope, Reply.success(req.id, {"projects": items}))

        self._submit(done, projects.list_projects)

    def _remove_op(self, envelope: list[bytes], req: Request) -> None:
        target = req.args.get("target") or req.project
        if not isinstance(target, str) or not target:
            raise RagexError(ErrorCode.BAD_REQUEST,
                             "'rm' needs a target: a project id or an absolute path")
        pid, _root = self._target_id(target)
        directory = paths.index_dir(pid)
        proj = self.projects.get(pid)
        if not directory.exists() and proj is None:
            raise RagexError(ErrorCode.NOT_FOUND, f"there is no index for {target}",
                             target=target)
        if proj is not None and proj.removing:
            raise RagexError(ErrorCode.BUSY, f"{target} is already being removed")

        def delete() -> int:
            return projects.remove(pid, target) if directory.exists() else 0

        def deleted(future: Future[Any]) -> None:
            if proj is not None:
                proj.removing = False
            try:
                freed = future.result()
            except RagexError as exc:
                self._send(envelope, Reply.from_exception(req.id, exc))
                return
            self.recent.remove(pid)
            current = self.projects.get(pid)
            if current is not None and current.handle is None and not current.start_pending \
                    and not current.queue:
                del self.projects[pid]
            log.info("removed the index %s (%s freed)", directory, format_size(freed))
            self._send(envelope, Reply.success(req.id, {"removed": pid, "freed_bytes": freed}))

        def stopped(_proj: Project) -> None:
            self._submit(deleted, delete)

        if proj is not None:
            proj.removing = True
            for pending in proj.queue:
                self._fail(pending, ErrorCode.WORKER_UNAVAILABLE,
                           f"the index of {proj.root} is being removed")
            proj.queue.clear()
            self._stop(proj, st.STOP_REMOVE, stopped)
        else:
            stopped(None)  # type: ignore[arg-type]

    def _logs_op(self, envelope: list[bytes], req: Request) -> None:
        target = req.args.get("target")
        try:
            lines = int(req.args.get("lines", 50))
        except (TypeError, ValueError):
            raise RagexError(ErrorCode.BAD_REQUEST, "'lines' must be a number") from None
        lines = max(0, min(lines, LOG_LINES_MAX))
        if target in (None, "", "ragexd"):
            path = paths.log_dir() / "ragexd.log"
            pid = None
        elif isinstance(target, str):
            pid, _root = self._target_id(target)
            path = paths.log_dir() / f"{pid}.log"
        else:
            raise RagexError(ErrorCode.BAD_REQUEST, "'target' must be a project id or path")
        result: dict[str, Any] = {"path": str(path), "lines": tail(path, lines),
                                  "project_id": pid, "exists": path.exists()}
        self._send(envelope, Reply.success(req.id, result))

    # ============================================================== prestart

    def _prestart(self) -> None:
        if self.prestart <= 0:
            return
        started = 0
        for pid, root in self.recent.most_recent(self.prestart * 3):
            if started >= self.prestart:
                break
            if not os.path.isdir(root):
                continue
            available = psutil.virtual_memory().available - started * PRESTART_PER_WORKER
            if available < PRESTART_MIN_AVAILABLE:
                log.info("not pre-starting more workers: only %s of memory available",
                         format_size(max(0, available)))
                break
            try:
                proj = self._get_project(pid, root)
            except RagexError as exc:
                log.warning("cannot pre-start %s: %s", root, exc.message)
                continue
            if proj.handle is None and not proj.start_pending:
                log.info("pre-starting the worker for %s", root)
                self._start(proj)
                started += 1
