"""The warm worker's ZeroMQ server.

One ROUTER socket, served by one loop thread that never blocks on work:
heartbeats (PING, HELLO) are answered inline, searches run on a small thread
pool, an index runs on its own thread.  Those threads hand their messages back
through an inproc PUSH/PULL pipe because ZeroMQ sockets must not be shared
between threads.  That is what lets ragexd see a busy worker as alive, and lets
regex and symbol searches run while the model is still loading.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable

import zmq

from ..protocol import (INDEXING_OPS, MAX_MESSAGE_BYTES, ErrorCode, IndexArgs, Op, Progress,
                        RagexError, Reply, Request, SearchArgs, SimilarArgs, SnapshotArgs, decode,
                        encode, request_id_of, split_envelope)
from .service import WorkerService

log = logging.getLogger("ragex.worker")

OUTBOX = "inproc://worker-outbox"
SEARCH_THREADS = 2


class WorkerServer:
    def __init__(self, service: WorkerService, endpoint: str, *,
                 orphan_timeout: float = 60.0,
                 on_started: Callable[[], None] | None = None) -> None:
        self.service = service
        self.endpoint = endpoint
        self.orphan_timeout = orphan_timeout
        self.on_started = on_started
        self.ctx = zmq.Context.instance()
        self._stop = threading.Event()
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(SEARCH_THREADS, thread_name_prefix="search")
        # One long-lived index thread: the catalog keeps a SQLite connection per
        # thread, so a new thread per INDEX request leaked two descriptors each.
        self._index_pool = ThreadPoolExecutor(1, thread_name_prefix="index")
        self._index_future: Future[None] | None = None
        self._inflight = 0
        self._inflight_lock = threading.Lock()

    # --- plumbing ----------------------------------------------------------------

    def _outbox(self) -> zmq.Socket:
        """A PUSH socket private to the calling thread."""
        sock = getattr(self._local, "push", None)
        if sock is None:
            sock = self.ctx.socket(zmq.PUSH)
            sock.setsockopt(zmq.LINGER, 1000)
            sock.connect(OUTBOX)
            self._local.push = sock
        return sock

    def _send(self, envelope: list[bytes], message: Reply | Progress) -> None:
        self._outbox().send_multipart(envelope + encode(message))

    def request_stop(self, *_: Any) -> None:
        self._stop.set()

    # --- main loop -------------------------------------------------------------

    def serve(self) -> int:
        _remove_stale_socket(self.endpoint)
        router = self.ctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        router.setsockopt(zmq.ROUTER_MANDATORY, 0)
        router.bind(self.endpoint)
        pull = self.ctx.socket(zmq.PULL)
        pull.setsockopt(zmq.LINGER, 0)
        pull.bind(OUTBOX)
        log.info("worker %s serving %s on %s", os.getpid(), self.service.root, self.endpoint)
        if self.on_started:
            self.on_started()
        self.service.start_loading()

        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(pull, zmq.POLLIN)
        last_heard = time.monotonic()
        try:
            while not self._stop.is_set():
                events = dict(poller.poll(500))
                if pull in events:
                    while True:
                        try:
                            router.send_multipart(pull.recv_multipart(zmq.NOBLOCK))
                        except zmq.Again:
                            break
                if router in events:
                    while True:
                        try:
                            frames = router.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        last_heard = time.monotonic()
                        self._dispatch(router, frames)
                if self.orphan_timeout and time.monotonic() - last_heard > self.orphan_timeout:
                    log.warning("no message from ragexd for %.0f s: it is gone; exiting "
                                "so no orphan worker is left behind", self.orphan_timeout)
                    break
            # Flush replies produced while stopping (e.g. the SHUTDOWN answer).
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and pull.poll(50):
                router.send_multipart(pull.recv_multipart())
        finally:
            self.service.cancel_index.set()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._index_pool.shutdown(wait=False, cancel_futures=True)
            if self._index_future is not None:
                wait([self._index_future], timeout=10)
            self.service.close()
            router.close(0)
            pull.close(0)
            _remove_stale_socket(self.endpoint)
        log.info("worker %s stopped", os.getpid())
        return 0

    def _dispatch(self, router: zmq.Socket, frames: list[bytes]) -> None:
        envelope, body = split_envelope(frames)
        try:
            message = decode(body)
            if not isinstance(message, Request):
                raise RagexError(ErrorCode.BAD_REQUEST, "workers accept requests only")
        except RagexError as exc:
            if envelope:
                router.send_multipart(envelope + encode(
                    Reply.from_exception(request_id_of(body), exc)))
            return
        op = message.op
        if op in (Op.PING, Op.HELLO):
            result = self.service.hello() if op is Op.HELLO else {
                "pid": os.getpid(), "model_loaded": self.service.model_loaded,
                "indexing": self.service.indexing, "inflight": self._inflight}
            router.send_multipart(envelope + encode(Reply.success(message.id, result)))
        elif op is Op.SHUTDOWN:
            router.send_multipart(envelope + encode(Reply.success(message.id, {"stopping": True})))
            self._stop.set()
        elif op is Op.SEARCH:
            self._submit(envelope, message, lambda: self.service.search(
                message.id, message.args_as(SearchArgs), lambda p: self._send(envelope, p),
                timeout=message.timeout))
        elif op is Op.SIMILAR:
            self._submit(envelope, message,
                         lambda: self.service.similar(message.args_as(SimilarArgs)))
        elif op is Op.WORKER_STATUS:
            self._submit(envelope, message, self.service.status)
        elif op in INDEXING_OPS:
            # On the index thread, after any run going or queued before it: they wait
            # and follow that run's progress rather than refuse (the user asked for
            # an up-to-date index, and a search may just have started the first one).
            def sink(p: Progress, envelope: list[bytes] = envelope) -> None:
                self._send(envelope, p)

            if self.service.indexing or (self._index_future is not None
                                         and not self._index_future.done()):
                self.service.follow_running_index(message.id, sink)
            if op is Op.INDEX:
                serve: Callable[[], dict[str, Any]] = lambda: self.service.index(
                    message.id, message.args_as(IndexArgs), sink)
            elif op is Op.EXPORT:
                serve = lambda: self.service.export(message.id, message.args_as(SnapshotArgs), sink)
            else:
                serve = lambda: self.service.import_snapshot(
                    message.id, message.args_as(SnapshotArgs), sink)
            self._index_future = self._index_pool.submit(self._run, envelope, message, serve)
        else:
            router.send_multipart(envelope + encode(Reply.failure(
                message.id, ErrorCode.BAD_REQUEST,
                f"a worker does not handle {op.value!r}; send it to ragexd")))

    def _submit(self, envelope: list[bytes], request: Request,
                fn: Callable[[], dict[str, Any]]) -> None:
        self._pool.submit(self._run, envelope, request, fn)

    def _run(self, envelope: list[bytes], request: Request,
             fn: Callable[[], dict[str, Any]]) -> None:
        with self._inflight_lock:
            self._inflight += 1
        try:
            reply = Reply.success(request.id, fn())
        except RagexError as exc:
            reply = Reply.from_exception(request.id, exc)
        except Exception as exc:  # noqa: BLE001 - never kill the worker over one request
            log.exception("request %s (%s) failed", request.id, request.op.value)
            reply = Reply.failure(request.id, ErrorCode.INTERNAL,
                                  f"internal error in the worker: {type(exc).__name__}: {exc}")
        finally:
            with self._inflight_lock:
                self._inflight -= 1
        self._send(envelope, reply)


def _remove_stale_socket(endpoint: str) -> None:
    if endpoint.startswith("ipc://"):
        path = Path(endpoint[len("ipc://"):])
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def install_signal_handlers(server: WorkerServer) -> None:
    signal.signal(signal.SIGTERM, server.request_stop)
    signal.signal(signal.SIGINT, server.request_stop)
