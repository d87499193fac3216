"""Forwarding: client requests to a project's worker, and the worker's answers back.

Client request ids are never sent to workers: ragexd gives each forwarded
request its own id, so two clients that pick the same id cannot get each
other's answers, and a late answer to a request that already timed out (or
was retried on a new worker) is recognised and dropped.  ragexd's own
questions to a worker (HELLO, PING, WORKER_STATUS, SHUTDOWN) travel on the
same socket under ids of their own (``Incarnation.internal``).

A part of the one ``Daemon`` object (see ``daemon.py``): its methods run on
the daemon's loop thread only.
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import Any

import zmq

from ..config import Config
from ..protocol import (MAX_MESSAGE_BYTES, ErrorCode, Op, Progress, RagexError, Reply, Request,
                        decode, encode, request_id_of)
from .frontend import MAX_BATCH
from . import project as st
from .project import Incarnation, Pending, Project

log = logging.getLogger("ragexd")


class Forwarding:
    cfg: Config
    _ids: itertools.count[int]

    def _forward(self, envelope: list[bytes], req: Request) -> None:
        now = time.monotonic()
        proj = self._project_for(req)
        self._refuse_if_removing(proj)
        if proj.state == st.CRASH_LOOP:
            self._send(envelope, self._crash_loop_reply(proj, req.id))
            return
        if proj.load >= self.cfg.queue_size:
            raise RagexError(ErrorCode.BUSY,
                             f"the worker for {proj.root} already has {proj.load} requests "
                             f"queued or running (the limit is {self.cfg.queue_size}); "
                             "try again shortly", limit=self.cfg.queue_size)
        pending = Pending(envelope=envelope, request=req,
                          deadline=(now + float(req.timeout)) if req.timeout else None)
        self._touch(proj, now)
        if proj.worker is not None and proj.worker.serving:
            self._send_to_worker(proj.worker, proj.root, pending)
        else:
            proj.queue.append(pending)
            self._ensure_started(proj)

    def _send_to_worker(self, worker: Incarnation, root: str, pending: Pending) -> None:
        wid = f"r{next(self._ids):x}"
        req = pending.request
        forwarded = Request(op=req.op, args=req.args, project=root, id=wid,
                            client_version=req.client_version, timeout=req.timeout)
        try:
            worker.dealer.send_multipart(encode(forwarded), zmq.NOBLOCK)
        except zmq.Again:
            self._fail(pending, ErrorCode.BUSY,
                       f"the worker for {root} is not keeping up; try again shortly")
            return
        pending.wid = wid
        worker.inflight[wid] = pending

    def _send_internal(self, worker: Incarnation, op: Op, kind: str) -> None:
        wid = f"i{next(self._ids):x}"
        try:
            worker.dealer.send_multipart(encode(Request(op=op, id=wid)), zmq.NOBLOCK)
        except zmq.Again:
            return
        worker.internal[wid] = (kind, time.monotonic())

    def _drain_worker(self, proj: Project, sock: zmq.Socket) -> None:
        for _ in range(MAX_BATCH):
            worker = proj.worker
            if worker is None or worker.dealer is not sock:
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
                self._on_undecodable(proj, worker, frames, exc)
                continue
            try:
                self._on_worker_message(proj, worker, message)
            except Exception:  # noqa: BLE001
                log.exception("error handling a message from the worker for %s", proj.root)

    def _on_undecodable(self, proj: Project, worker: Incarnation, frames: list[bytes],
                        exc: RagexError) -> None:
        """A worker answer ragexd cannot read (too large, not JSON) still ends the
        request it answered: the waiting client gets a coded error now instead of
        waiting out its timeout for a reply that was dropped."""
        wid = request_id_of(frames)
        worker.internal.pop(wid, None)
        pending = worker.inflight.pop(wid, None) if wid else None
        if pending is None:
            return
        proj.last_activity = time.monotonic()
        if exc.code == ErrorCode.TOO_LARGE:
            self._fail(pending, ErrorCode.TOO_LARGE,
                       f"the worker for {proj.root} answered with a message over the "
                       f"{MAX_MESSAGE_BYTES}-byte limit ({exc.message}); this is a bug in "
                       "ragex, please report it", limit=MAX_MESSAGE_BYTES)
        else:
            self._fail(pending, ErrorCode.INTERNAL,
                       f"the worker for {proj.root} sent an answer ragexd cannot read "
                       f"({exc.message}); this is a bug in ragex, please report it")

    def _on_worker_message(self, proj: Project, worker: Incarnation, message: Any) -> None:
        now = time.monotonic()
        worker.last_seen = now
        if isinstance(message, Progress):
            pending = worker.inflight.get(message.id)
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
        internal = worker.internal.pop(message.id, None)
        if internal is not None:
            kind, sent_at = internal
            self._on_internal_reply(proj, worker, kind, message, now, sent_at)
            return
        pending = worker.inflight.pop(message.id, None)
        if pending is None:
            return  # answered already (timed out)
        message.id = pending.request.id
        self._send(pending.envelope, message)
        proj.last_activity = now
        if pending.request.op in (Op.INDEX, Op.IMPORT):
            # The cached numbers predate the run: the next STATUS must wait for new ones.
            worker.status_at = -1e9
            self._refresh_status(worker, now, force=True)
        elif pending.request.op is Op.SEARCH:
            # A search may just have started the project's first index (or a catch-up
            # run): the cached status predates it, and `status` right after such a
            # search said "ready".  The next STATUS asks the worker again.
            worker.status_at = -1e9

    def _on_internal_reply(self, proj: Project, worker: Incarnation, kind: str, reply: Reply,
                           now: float, sent_at: float) -> None:
        result = reply.result or {}
        if kind == "hello":
            if not reply.ok:
                log.warning("the worker for %s refused HELLO: %s", proj.root,
                            reply.error.message if reply.error else "?")
            worker.ready = True
            worker.ready_after = now - worker.started_mono
            worker.next_ping = now + self.cfg.heartbeat_interval
            log.info("worker %s for %s is ready (%.2f s after start)",
                     worker.handle.ident, proj.root, worker.ready_after)
            self._flush_queue(proj)
            self._refresh_status(worker, now)
        elif kind == "ping":
            worker.ping_sent_at = None
            if reply.ok:
                worker.last_ping = result
                self._set_indexing(worker, result, sent_at)
        elif kind == "status":
            if worker.status_sent_at is not None and sent_at >= worker.status_sent_at:
                worker.status_sent_at = None
            # Answers may overtake each other (the worker runs them on a pool):
            # never replace a newer answer with an older one.
            if reply.ok and sent_at >= worker.status_cached_sent:
                worker.status_cached_sent = sent_at
                worker.last_status = result
                worker.status_at = now
                self._set_indexing(worker, result, sent_at)
                index = result.get("index")
                if isinstance(index, dict) and isinstance(index.get("size_bytes"), int):
                    proj.index_size = (now, index["size_bytes"])

    @staticmethod
    def _set_indexing(worker: Incarnation, result: dict[str, Any], sent_at: float) -> None:
        if sent_at >= worker.indexing_sent:
            worker.indexing_sent = sent_at
            worker.indexing = bool(result.get("indexing"))

    def _flush_queue(self, proj: Project) -> None:
        while proj.queue and proj.worker is not None and proj.worker.serving:
            self._send_to_worker(proj.worker, proj.root, proj.queue.popleft())

    def _refresh_status(self, worker: Incarnation, now: float, force: bool = False) -> None:
        if worker.serving and (
                force or worker.status_sent_at is None or now - worker.status_sent_at > 5.0):
            worker.status_sent_at = now
            self._send_internal(worker, Op.WORKER_STATUS, "status")
