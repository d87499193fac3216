"""A ZeroMQ DEALER speaking the ragex protocol, to ragexd or straight to a worker.

It imports nothing of ragexctl: the tests hold ragexd and the workers to their
wire contract, not to one client's habits.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import zmq

from ragexd.protocol import Op, Progress, Reply, Request, decode, encode


class Client:
    """One DEALER socket connected to ``endpoint`` (``ipc://…``)."""

    def __init__(self, endpoint: str) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)

    def send(self, request: Request) -> str:
        self.sock.send_multipart(encode(request))
        return request.id

    def send_raw(self, frames: list[bytes]) -> None:
        self.sock.send_multipart(frames)

    def recv(self, timeout: float = 10.0) -> Reply | Progress:
        if not self.sock.poll(int(timeout * 1000)):
            raise TimeoutError(f"no message from ragexd within {timeout} s")
        message = decode(self.sock.recv_multipart())
        assert isinstance(message, (Reply, Progress)), message
        return message

    def reply_to(self, request_id: str, timeout: float = 10.0,
                 progress: list[Progress] | None = None) -> Reply:
        """The reply to ``request_id``, collecting its progress messages on the way."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.recv(max(0.01, deadline - time.monotonic()))
            if isinstance(message, Progress):
                if progress is not None:
                    progress.append(message)
                continue
            if message.id == request_id:
                return message

    def call(self, op: Op, project: str | Path | None = None, timeout: float = 10.0,
             progress: list[Progress] | None = None, **args: Any) -> Reply:
        request = Request(op=op, args=args, project=str(project) if project else None)
        self.send(request)
        return self.reply_to(request.id, timeout, progress)

    def search(self, project: Path, query: str, mode: str = "auto", timeout: float = 180.0,
               **extra: Any) -> Reply:
        return self.call(Op.SEARCH, project, timeout, query=query, mode=mode, limit=5, **extra)

    def index(self, project: Path, timeout: float = 300.0) -> Reply:
        return self.call(Op.INDEX, project, timeout, rebuild=False, paths=None)

    def status(self, project: Path | None = None, timeout: float = 10.0) -> dict[str, Any]:
        reply = self.call(Op.STATUS, project, timeout)
        assert reply.ok, reply.error
        return reply.result or {}

    def worker(self, project: Path) -> dict[str, Any]:
        """The one worker serving ``project`` (fails when there is none, or two)."""
        workers = [w for w in self.status(project)["workers"]
                   if os.path.realpath(w["root"]) == os.path.realpath(project)]
        assert len(workers) == 1, workers
        return workers[0]

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()
