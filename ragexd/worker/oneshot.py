"""One request, in this process, then exit: the ``--no-daemon`` path.

ragexctl spawns ``python -m ragexd.worker oneshot`` rather than importing the
engine itself, so the thin client stays thin even in one-shot mode.  The
request arrives as JSON on stdin and the answer leaves as protocol messages in
JSON Lines on stdout: the client renders them with the same code as replies
from the daemon.  This is also the honest baseline of the benchmarks: every
call pays the imports and the model load (never chromadb's, whose store is not
read below ``Vectors.EXACT_MAX``), and the vectors are read beside the model.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import IO

from ..protocol import (ErrorCode, IndexArgs, Op, Progress, RagexError, Reply, Request, SearchArgs,
                        SimilarArgs, SnapshotArgs)
from ..protocol.frames import encode_body
from .service import WorkerService


#: Seconds of silence after which the one-shot worker repeats its last progress
#: line: the client's ``--timeout`` is a silence timeout (ragexd's heartbeats play
#: this part for a daemon's worker), and loading the model or waiting for a first
#: index can be quiet for longer than that on a busy machine.
KEEPALIVE = 2.0

#: How long a one-shot worker waits for the index held by the previous one,
#: which answered and is stopping its first index at the end of a batch.
LOCK_WAIT = 60.0

_write_lock = threading.Lock()


def _emit(out: IO[str], message: Reply | Progress) -> None:
    line = encode_body(message).decode("utf-8") + "\n"
    with _write_lock:   # progress comes from the index thread too
        out.write(line)
        out.flush()


class _KeepAlive:
    """Repeats the last progress line every ``KEEPALIVE`` seconds of silence
    until the reply is written."""

    def __init__(self, out: IO[str], request_id: str) -> None:
        self.out = out
        self.last = Progress(id=request_id, phase="working", message="working")
        self.stamp = time.monotonic()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="oneshot-keepalive",
                                       daemon=True)
        self.thread.start()

    def progress(self, p: Progress) -> None:
        self.last, self.stamp = p, time.monotonic()
        _emit(self.out, p)

    def _run(self) -> None:
        while not self.done.wait(KEEPALIVE / 4):
            if time.monotonic() - self.stamp >= KEEPALIVE:
                self.progress(self.last)

    def stop(self) -> None:
        self.done.set()
        self.thread.join()


def run_oneshot(root: Path, index_dir: Path, raw: str, out: IO[str] = sys.stdout,
                base: Path | None = None) -> int:
    try:
        request = Request.from_wire(json.loads(raw))
    except (ValueError, TypeError, RecursionError) as exc:
        _emit(out, Reply.failure("", ErrorCode.BAD_REQUEST, f"request is not valid JSON: {exc}"))
        return 0
    except RagexError as exc:
        _emit(out, Reply.from_exception("", exc))
        return 0

    # Answer like a cold worker: a first index runs in the background while the
    # search waits for what its mode needs (regex and symbol: the catalog; by
    # meaning: what is embedded within the wait), then stops at a safe point
    # when this process exits; the next search or `ragexctl index` resumes it.
    alive = _KeepAlive(out, request.id)
    progress = alive.progress
    service = WorkerService(root, index_dir, base=base, oneshot=True)
    # (a regex search never waits: ripgrep needs no index, locked or not)
    needs_index = request.op is not Op.SEARCH or request.args_as(SearchArgs).mode != "regex"
    service.open_engine(lock_wait=LOCK_WAIT if needs_index else 0.0)
    if request.op in (Op.SEARCH, Op.INDEX):
        service.adopt_base()
    if request.op in (Op.SEARCH, Op.SIMILAR) and needs_index:
        service.preload_vectors()   # beside the model's load; never chromadb
    try:
        if request.op is Op.SEARCH:
            result = service.search(request.id, request.args_as(SearchArgs), progress,
                                    timeout=request.timeout)
            if service.indexing:
                result["notes"] = list(result.get("notes") or []) + [
                    "the project's first index stops with this one-shot search; the next "
                    "search resumes it (`ragexctl index` completes it)"]
        elif request.op is Op.SIMILAR:
            result = service.similar(request.args_as(SimilarArgs))
        elif request.op is Op.INDEX:
            result = service.index(request.id, request.args_as(IndexArgs), progress)
        elif request.op is Op.EXPORT:
            result = service.export(request.id, request.args_as(SnapshotArgs), progress)
        elif request.op is Op.IMPORT:
            result = service.import_snapshot(request.id, request.args_as(SnapshotArgs), progress)
        elif request.op in (Op.WORKER_STATUS, Op.STATUS):
            result = service.status()
        elif request.op in (Op.HELLO, Op.PING):
            result = service.hello()
        else:
            raise RagexError(ErrorCode.BAD_REQUEST,
                             f"{request.op.value!r} needs ragexd; it has no one-shot form")
        reply = Reply.success(request.id, result)
    except RagexError as exc:
        reply = Reply.from_exception(request.id, exc)
    except BaseException:
        alive.stop()
        service.close()
        raise
    alive.stop()
    _emit(out, reply)
    # The answer is out: end the stream so the client prints it now, while a first
    # index this search started stops at its next safe point (resumable).
    _end_stream(out)
    service.close()
    return 0


def _end_stream(out: IO[str]) -> None:
    """Close ``out`` so the reader sees the end of the stream.  ``sys.stdout``
    never closes its descriptor (closefd=False): point that at /dev/null instead,
    which releases the pipe and keeps descriptor 1 from being reused by a file."""
    try:
        fd: int | None = out.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None
    out.close()
    if fd is not None:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, fd)
        finally:
            os.close(null)
