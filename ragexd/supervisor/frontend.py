"""The client front-end: requests from ragexctl (and any peer) on the ROUTER socket.

Each request is decoded and validated once (``protocol.decode``: typed
arguments, see ``protocol/args.py``), then dispatched by op: answered here
(HELLO, PING, STATUS, START, STOP, SHUTDOWN; LIST, REMOVE and LOGS in
``ondisk.py``) or forwarded to the project's worker (``forwarding.py``).  A
bad request gets a typed error reply; a bug in handling one is logged and
answered INTERNAL instead of taking the daemon down.  STATUS never waits on a
worker for more than ``STATUS_WAIT``: it answers from the cached
WORKER_STATUS after that.

A part of the one ``Daemon`` object (see ``daemon.py``): its methods run on
the daemon's loop thread only.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import zmq

from .. import __version__, paths, projects
from ..config import Config, as_dict
from ..protocol import (INDEXING_OPS, MAX_MESSAGE_BYTES, PROTOCOL_MAJOR, WORKER_OPS, ErrorCode,
                        Op, Progress, RagexError, Reply, Request, StopArgs, decode, encode,
                        request_id_of)
from ..runtimes.base import Runtime
from . import project as st
from .project import Pending, Project

log = logging.getLogger("ragexd")

MAX_BATCH = 500               # messages drained from one socket per loop iteration
#: STATUS waits at most this long for fresh worker answers, then uses the cache.
STATUS_WAIT = 0.4
STATUS_FRESH = 1.0


@dataclass
class _StatusWaiter:
    envelope: list[bytes]
    request: Request
    projects: list[Project]
    deadline: float
    target: Project | None


class ClientFrontEnd:
    cfg: Config
    runtime: Runtime
    runtime_reason: str
    projects: dict[str, Project]
    frontend: zmq.Socket | None
    socket_path: Path
    shutting_down: bool
    started: float
    started_wall: float
    _proc: psutil.Process
    _status_waiters: list[_StatusWaiter]

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
            frames = encode(message)
        except Exception as exc:  # noqa: BLE001 - a client waiting for an answer gets one
            log.exception("cannot encode a message to a client")
            frames = encode(Reply.failure(
                message.id if message.id.isascii() else "", ErrorCode.INTERNAL,
                f"ragexd could not encode its answer ({type(exc).__name__}); this is a bug"))
        if len(frames[-1]) > MAX_MESSAGE_BYTES:
            # The client's socket would drop it (ZMQ_MAXMSGSIZE) and the client wait out
            # its timeout: a coded error it can read instead.
            log.error("an answer of %d bytes to a client exceeds the limit", len(frames[-1]))
            frames = encode(Reply.failure(
                message.id if message.id.isascii() else "", ErrorCode.TOO_LARGE,
                f"ragexd's answer ({len(frames[-1])} bytes) exceeds the {MAX_MESSAGE_BYTES}-byte "
                "message limit; this is a bug in ragex, please report it",
                limit=MAX_MESSAGE_BYTES))
        try:
            self.frontend.send_multipart(envelope + frames, zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # client gone or not reading: its loss, not ours
            log.debug("dropping a message to a client: %s", exc)

    def _fail(self, pending: Pending, code: ErrorCode, message: str, **detail: Any) -> None:
        self._send(pending.envelope, Reply.failure(pending.request.id, code, message, **detail))

    def _fail_queue(self, proj: Project, code: ErrorCode, message: str) -> None:
        """Answer every request waiting for ``proj``'s worker with one error, and
        forget them: the worker they waited for is going (stop, rm, shutdown)."""
        for pending in proj.queue:
            self._fail(pending, code, message)
        proj.queue.clear()

    @staticmethod
    def _refuse_if_removing(proj: Project) -> None:
        """A project whose index is being removed takes no request until it is gone."""
        if proj.removing:
            raise RagexError(ErrorCode.WORKER_UNAVAILABLE,
                             f"the index of {proj.root} is being removed; try again")

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
        elif op in (Op.EXPORT, Op.IMPORT) and self.runtime.name == "docker":
            # The worker reads or writes the snapshot by its host path, which a
            # container does not see: say so, rather than "no such file".
            raise RagexError(ErrorCode.BAD_REQUEST,
                             "snapshots are read and written on the host, and this ragexd runs "
                             f"workers in Docker: run `ragexctl stop {req.project or 'PATH'}`, "
                             f"then the same command with --no-daemon")
        elif op in WORKER_OPS:
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
            if real == os.path.sep and not os.path.exists(
                    os.path.join(real, paths.ROOT_MARKER)):
                # Whoever sent it (a client's policy, a fuzzer, a script): a worker
                # for / would walk /proc, /sys and every user's files.
                raise RagexError(ErrorCode.BAD_REQUEST,
                                 "will not serve the root directory / as a project; put a "
                                 f"{paths.ROOT_MARKER} file in it if you really mean it",
                                 path=raw)
        return paths.project_id_for(Path(real)), real

    def _project_for(self, req: Request, register: bool = True) -> Project:
        project_id, real = self._resolve_root(req)
        return self._get_project(project_id, real, register)

    def _start_op(self, envelope: list[bytes], req: Request) -> None:
        proj = self._project_for(req)
        now = time.monotonic()
        self._refuse_if_removing(proj)
        if proj.state == st.CRASH_LOOP:
            log.info("crash loop of %s cleared by START", proj.root)
        proj.restarts.reset()
        if proj.outcome == st.CRASH_LOOP:
            proj.outcome = st.STOPPED
        self._touch(proj, now)
        proj.last_activity = now
        if not proj.busy:
            self._start(proj)
        self._send(envelope, Reply.success(req.id, {"project_id": proj.id, "root": proj.root,
                                                    "state": proj.display_state()}))

    def _stop_op(self, envelope: list[bytes], req: Request) -> None:
        args = req.args_as(StopArgs)
        if args.all:
            targets = [p for p in self.projects.values()
                       if p.busy or p.start_at is not None]
        else:
            project_id, _real = self._resolve_root(req, must_exist=False)
            proj = self.projects.get(project_id)
            targets = [proj] if proj is not None and (
                proj.busy or proj.start_at is not None) else []
            if targets and args.first_index_only and any(
                    p.request.op in INDEXING_OPS
                    for p in (*proj.queue, *proj.inflight.values())):
                # a Ctrl-C'd search must not end an index another client asked for
                self._send(envelope, Reply.success(req.id, {
                    "stopped": [], "kept": "another client asked for this project's index "
                    "and is waiting for it"}))
                return
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
            self._fail_queue(proj, ErrorCode.WORKER_UNAVAILABLE,
                             f"the worker for {proj.root} was stopped (ragexctl stop)")
            self._stop(proj, st.STOP_USER, one_done)

    def _status(self, envelope: list[bytes], req: Request) -> None:
        now = time.monotonic()
        target: Project | None = None
        if req.project:
            project_id, real = self._resolve_root(req, must_exist=False)
            target = (self.projects.get(project_id)
                      or self._get_project(project_id, real, register=False))
        projects = [target] if target is not None else list(self.projects.values())
        waiting = []
        for proj in projects:
            worker = proj.worker
            if worker is not None and worker.serving and now - worker.status_at > STATUS_FRESH:
                self._refresh_status(worker, now)
                if worker.status_pending:
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
                    p.worker is not None and p.worker.status_pending for p in waiter.projects):
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
        worker = proj.worker
        index = (worker.last_status or {}).get("index") if worker is not None else None
        answers = (worker.last_ping or worker.last_status or {}) if worker is not None else {}
        info: dict[str, Any] = {
            "project_id": proj.id, "root": proj.root, "state": proj.display_state(),
            "exists": projects.root_exists(proj.root),   # said as `ragexctl ls` says it
            "runtime": worker.handle.runtime if worker else self.runtime.name,
            "ident": worker.handle.ident if worker else None,
            "pid": worker.handle.pid if worker else None,
            "rss": worker.rss if worker else None,
            "uptime_s": round(now - worker.started_mono, 1) if worker else None,
            "idle_s": (round(now - proj.last_activity, 1)
                       if worker and not worker.inflight else (0.0 if worker else None)),
            "index_size": self._index_size(proj, now),
            # the worker's own failure (a failed index) when it did not crash
            "last_error": proj.last_error or (index.get("last_error", "") if isinstance(
                index, dict) else ""),
            "restarts": proj.restart_count,
            "queue": proj.load,
            "inflight": len(proj.inflight),
            "index": index if isinstance(index, dict) else None,
            "model_loaded": bool(answers.get("model_loaded")),
            "exit_code": proj.last_exit.exit_code if proj.last_exit else None,
            "recent_crashes": proj.restarts.recent_crashes(),
            "restart_in": (round(max(0.0, proj.start_at - now), 1)
                           if proj.start_at is not None else None),
            "log_path": str(proj.spec.log_path),
        }
        return info
