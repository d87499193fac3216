"""Worker lifecycle: start, greet, watch, stop and account for each project's worker.

Each start makes a new ``Incarnation`` (``_attach``) and each exit drops it
(``_on_exit``), which then decides what the exit means: a requested stop, a
crash (restarted with backoff, its idempotent requests retried once), a
memory-limit kill or a crash loop.  Runtime calls (start, poll, stop) may take
seconds with Docker, so they run on the daemon's thread pool and report back
to the loop; a result for an incarnation that is no longer current is ignored.

A part of the one ``Daemon`` object (see ``daemon.py``): its methods run on
the daemon's loop thread only.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable

import zmq

from .. import paths
from ..config import Config, format_size
from ..protocol import ErrorCode, Op, RagexError, Reply
from ..runtimes.base import ExitInfo, Runtime, WorkerHandle, WorkerSpec
from . import project as st
from .backoff import RestartTracker
from .project import Incarnation, Pending, Project
from .recent import RecentProjects

log = logging.getLogger("ragexd")

#: Max length of an AF_UNIX path (sun_path is 108 bytes with the NUL).
MAX_IPC_PATH = 107
#: A worker must answer HELLO within this long after being started.
START_TIMEOUT = 120.0
#: After SHUTDOWN, a worker gets this long to exit before SIGTERM (then SIGKILL).
STOP_GRACE = 5.0
STOP_TERM_TIMEOUT = 5.0
#: How often the runtime is asked whether a worker still lives (and its memory).
CHECK_INTERVAL = 1.0
CHECK_INTERVAL_FAST = 0.2     # while starting or stopping


class WorkerLifecycle:
    cfg: Config
    runtime: Runtime
    projects: dict[str, Project]
    recent: RecentProjects
    shutting_down: bool
    ctx: zmq.Context | None
    poller: zmq.Poller
    _by_socket: dict[zmq.Socket, Project]

    def _spec(self, project_id: str, root: str) -> WorkerSpec:
        spec = WorkerSpec(project_id=project_id, root=Path(root),
                          index_dir=paths.index_dir(project_id),
                          socket_dir=paths.worker_socket_dir(project_id),
                          log_path=paths.log_dir() / f"{project_id}.log",
                          memory_limit=self.cfg.memory_limit, cpus=self.cfg.docker_cpus,
                          watch=self.cfg.watch, base=self.cfg.index_base)
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

    def _ensure_started(self, proj: Project) -> None:
        if proj.busy or self.shutting_down:
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
        if proj.state in (st.CRASHED, st.MEMORY_LIMIT, st.CRASH_LOOP):
            proj.restart_count += 1
        proj.start_pending = True
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
            proj.outcome = st.CRASH_LOOP if loop else st.CRASHED
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
        """A worker was started (or adopted): a new incarnation, greeted with HELLO."""
        now = time.monotonic()
        if self.ctx is None:  # adopting before bind(): the context comes first
            self.ctx = zmq.Context()
        dealer = self.ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(handle.spec.endpoint)
        worker = proj.worker = Incarnation(handle=handle, dealer=dealer, started_mono=now,
                                           last_seen=now,
                                           next_check=now + CHECK_INTERVAL_FAST)
        proj.last_activity = now
        self._by_socket[dealer] = proj
        self.poller.register(dealer, zmq.POLLIN)
        proj.restarts.record_start()
        self._send_internal(worker, Op.HELLO, "hello")

    def _close_dealer(self, worker: Incarnation) -> None:
        try:
            self.poller.unregister(worker.dealer)
        except KeyError:
            pass
        self._by_socket.pop(worker.dealer, None)
        worker.dealer.close(linger=0)

    def _stop(self, proj: Project, reason: str,
              waiter: Callable[[Project], None] | None = None) -> None:
        """Ask a worker to stop: SHUTDOWN now, SIGTERM after STOP_GRACE, SIGKILL after that."""
        if waiter is not None:
            proj.stop_waiters.append(waiter)
        worker = proj.worker
        if worker is None:
            if proj.start_pending:
                proj.stop_after_start = reason
                return
            proj.start_at = None
            self._notify_stopped(proj)
            return
        if worker.stop_reason is not None:
            if reason == st.STOP_SHUTDOWN:
                worker.stop_reason = reason
            return
        now = time.monotonic()
        worker.stop_reason = reason
        worker.stop_deadline = now + STOP_GRACE
        worker.next_check = now + 0.1
        log.info("stopping the worker for %s (%s)", proj.root, reason)
        self._send_internal(worker, Op.SHUTDOWN, "shutdown")

    def _force_stop(self, proj: Project, timeout: float) -> None:
        worker = proj.worker
        if worker is None or worker.force_stop_pending:
            return
        worker.force_stop_pending = True
        self._submit(lambda f: self._on_force_stopped(proj, worker, f),
                     self.runtime.stop, worker.handle, timeout)

    def _on_force_stopped(self, proj: Project, worker: Incarnation, future: Future[Any]) -> None:
        worker.force_stop_pending = False
        if proj.worker is not worker:
            return   # that incarnation is already accounted for
        try:
            info = future.result()
        except Exception as exc:  # noqa: BLE001
            log.error("stopping the worker for %s failed: %s", proj.root, exc)
            info = ExitInfo(None, "stopped", f"could not be stopped cleanly: {exc}")
        self._on_exit(proj, info)

    def _kill_hung(self, proj: Project, sentence: str) -> None:
        log.error("the worker for %s is hung: %s; killing it", proj.root, sentence)
        assert proj.worker is not None
        proj.worker.stop_reason = st.STOP_HUNG
        proj.worker.hung_message = sentence
        self._force_stop(proj, 0.0)

    def _notify_stopped(self, proj: Project) -> None:
        waiters, proj.stop_waiters = proj.stop_waiters, []
        for waiter in waiters:
            try:
                waiter(proj)
            except Exception:  # noqa: BLE001
                log.exception("error in a stop callback")

    def _check_job(self, handle: WorkerHandle) -> tuple[ExitInfo | None, int | None]:
        """Runs on the pool: is the worker alive (memory limit enforced), and its RSS."""
        info = self.runtime.poll(handle)
        return info, (None if info is not None else self.runtime.memory(handle))

    def _on_checked(self, proj: Project, worker: Incarnation, future: Future[Any]) -> None:
        worker.check_pending = False
        if proj.worker is not worker:
            return   # that incarnation is already accounted for
        now = time.monotonic()
        worker.next_check = now + (CHECK_INTERVAL if worker.serving else CHECK_INTERVAL_FAST)
        try:
            info, rss = future.result()
        except Exception:  # noqa: BLE001
            log.exception("checking the worker for %s failed", proj.root)
            return
        if info is None:
            worker.rss = rss
            return
        self._on_exit(proj, info)

    def _on_exit(self, proj: Project, info: ExitInfo) -> None:
        """The worker is gone, for whatever reason: account for it and answer its requests."""
        worker = proj.worker
        assert worker is not None
        proj.worker = None   # everything about that start goes with it
        self._close_dealer(worker)
        reason = worker.stop_reason
        proj.last_exit = info
        inflight = list(worker.inflight.values())
        root = proj.root

        if reason is not None and reason != st.STOP_HUNG and not info.memory_limit_exceeded:
            proj.restarts.record_stop()
            proj.outcome = (st.IDLE_STOPPED if reason in (st.STOP_IDLE, st.STOP_BUDGET)
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
                proj.outcome = st.MEMORY_LIMIT
                proj.last_error = info.message
                log.warning("the worker for %s was %s", root, info.message)
            else:
                sentence = (f"hung: {worker.hung_message}; killed" if reason == st.STOP_HUNG
                            else f"crashed: {info.message}")
                proj.outcome = st.CRASHED
                proj.last_error = sentence
                log.warning("the worker for %s %s; last log lines:\n  %s", root, sentence,
                            "\n  ".join(tail_lines[-10:]) or "(none)")
            if crash_loop:
                proj.outcome = st.CRASH_LOOP
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
            self._fail_queue(proj, ErrorCode.SHUTTING_DOWN, "ragexd is shutting down")
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

    def _tick_project(self, proj: Project, now: float) -> None:
        if (proj.start_at is not None and now >= proj.start_at and not proj.busy
                and not self.shutting_down):
            self._start(proj)
        self._expire(proj, now)
        worker = proj.worker
        if worker is None:
            return
        if not worker.check_pending and now >= worker.next_check:
            worker.check_pending = True
            self._submit(lambda f: self._on_checked(proj, worker, f),
                         self._check_job, worker.handle)
        if worker.stop_reason is not None:
            if (worker.stop_deadline is not None and now >= worker.stop_deadline
                    and not worker.force_stop_pending):
                self._force_stop(proj, STOP_TERM_TIMEOUT)
            return
        if not worker.ready:
            if now - worker.started_mono > START_TIMEOUT:
                self._kill_hung(proj, f"did not answer within {START_TIMEOUT:.0f} s of starting")
            return
        silent = now - worker.last_seen
        if silent > self.cfg.heartbeat_timeout:
            self._kill_hung(proj, f"no answer to heartbeats for {silent:.0f} s")
            return
        if now >= worker.next_ping:
            # Unanswered since the last one: ask again (the answer resets ping_sent_at).
            if worker.ping_sent_at is None:
                worker.ping_sent_at = now
            worker.next_ping = now + self.cfg.heartbeat_interval
            self._send_internal(worker, Op.PING, "ping")
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
        rss = {p.id: p.worker.rss for p in self.projects.values()
               if p.worker is not None and p.worker.rss}
        running = [self.projects[project_id] for project_id in rss]
        total = sum(rss.values())
        if total <= budget:
            return
        idle = sorted((p for p in running if p.worker is not None and p.worker.serving
                       and not p.inflight and not p.queue), key=lambda p: p.last_activity)
        for proj in idle:
            if total <= budget:
                break
            log.warning("workers use %s, over the memory budget of %s: stopping the least "
                        "recently used idle one (%s)", format_size(total), format_size(budget),
                        proj.root)
            proj.last_error = (f"stopped: memory budget {format_size(budget)} for all workers "
                               "exceeded (least recently used idle worker)")
            total -= rss[proj.id]
            self._stop(proj, st.STOP_BUDGET)
