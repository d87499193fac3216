"""A scripted stand-in for ragexd on a real ZeroMQ ROUTER socket.

It lets the client's protocol behaviour (ids, progress, retries, error
replies, version handshake) be tested exactly and quickly, independent of the
real supervisor — which the end-to-end tests cover separately.  The socket,
the frames and the client process are all real; only ragexd's policy is
scripted: ``handler(request)`` returns what to do.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import zmq

from ragexd.protocol import (PROTOCOL_TAG, Progress, Reply, Request, decode, encode,
                             split_envelope)


@dataclass
class Raw:
    """Send these frames as they are (to test what the client does with garbage)."""

    frames: list[bytes]


@dataclass
class Sleep:
    seconds: float


class Restart:
    """Unbind, remove the socket file and bind a new one: "ragexd was replaced"."""


class Die:
    """Close the socket and leave a stale socket file behind: "ragexd was killed"."""


Action = Reply | Progress | Raw | Sleep | Restart | Die
Handler = Callable[[Request], list[Action] | None]


def hello_result(version: str = "0.1.0") -> dict[str, Any]:
    return {"version": version, "protocol": 1, "pid": os.getpid(), "capabilities": [],
            "runtime": {"runtime": "fake"}, "socket": ""}


class FakeDaemon:
    def __init__(self, endpoint: str, handler: Handler) -> None:
        self.endpoint = endpoint
        self.path = endpoint[len("ipc://"):]
        self.handler = handler
        self.requests: list[Request] = []
        self.binds = 0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.ctx = zmq.Context()

    def __enter__(self) -> "FakeDaemon":
        self._thread.start()
        assert self._ready.wait(5), "fake ragexd did not bind"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.ctx.term()
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def ops(self) -> list[str]:
        return [r.op.value for r in self.requests]

    def _bind(self) -> zmq.Socket:
        sock = self.ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(self.endpoint)
        self.binds += 1
        return sock

    def _run(self) -> None:
        sock: zmq.Socket | None = self._bind()
        self._ready.set()
        while not self._stop.is_set():
            if sock is None:
                time.sleep(0.05)
                continue
            if not sock.poll(50, zmq.POLLIN):
                continue
            frames = sock.recv_multipart()
            envelope, body = split_envelope(frames)
            message = decode(body)
            assert isinstance(message, Request)
            self.requests.append(message)
            actions = self.handler(message)
            for action in actions or []:
                if isinstance(action, (Reply, Progress)):
                    sock.send_multipart(envelope + encode(action))
                elif isinstance(action, Raw):
                    sock.send_multipart(envelope + action.frames)
                elif isinstance(action, Sleep):
                    time.sleep(action.seconds)
                elif isinstance(action, Restart):
                    sock.close(linger=0)
                    try:
                        os.unlink(self.path)
                    except OSError:
                        pass
                    sock = self._bind()
                elif isinstance(action, Die):
                    sock.close(linger=0)
                    sock = None
                    # A killed process leaves its socket file: recreate one nobody listens on.
                    import socket as pysocket

                    s = pysocket.socket(pysocket.AF_UNIX, pysocket.SOCK_STREAM)
                    try:
                        os.unlink(self.path)
                    except OSError:
                        pass
                    s.bind(self.path)
                    s.close()
        if sock is not None:
            sock.close(linger=0)


def tag_frames(body: bytes, tag: bytes = PROTOCOL_TAG) -> list[bytes]:
    return [tag, body]
