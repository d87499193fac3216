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
import sys
from pathlib import Path
from typing import IO

from ..protocol import ErrorCode, IndexArgs, Op, Progress, RagexError, Reply, Request, SearchArgs
from ..protocol.frames import encode_body
from .service import WorkerService


def _emit(out: IO[str], message: Reply | Progress) -> None:
    out.write(encode_body(message).decode("utf-8") + "\n")
    out.flush()


def run_oneshot(root: Path, index_dir: Path, raw: str, out: IO[str] = sys.stdout) -> int:
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
    service = WorkerService(root, index_dir)
    service.open_engine()  # the model loads lazily, only if the request needs it
    if request.op is Op.SEARCH and request.args_as(SearchArgs).mode != "regex":
        service.preload_vectors()

    def progress(p: Progress) -> None:
        _emit(out, p)

    try:
        if request.op is Op.SEARCH:
            result = service.search(request.id, request.args_as(SearchArgs), progress,
                                    timeout=request.timeout)
            if service.indexing:
                result["notes"] = list(result.get("notes") or []) + [
                    "the project's first index stops with this one-shot search; the next "
                    "search resumes it (`ragexctl index` completes it)"]
        elif request.op is Op.INDEX:
            result = service.index(request.id, request.args_as(IndexArgs), progress)
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
    finally:
        service.close()
    _emit(out, reply)
    return 0
