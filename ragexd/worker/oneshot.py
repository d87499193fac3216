"""One request, in this process, then exit: the ``--no-daemon`` path.

ragexctl spawns ``python -m ragexd.worker oneshot`` rather than importing the
engine itself, so the thin client stays thin even in one-shot mode.  The
request arrives as JSON on stdin and the answer leaves as protocol messages in
JSON Lines on stdout: the client renders them with the same code as replies
from the daemon.  This is also the honest baseline of the benchmarks: every
call pays the imports and the model load.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO

from ..protocol import (ErrorCode, IndexArgs, Op, Progress, RagexError, Reply, Request, SearchArgs,
                        SimilarArgs, SnapshotArgs)
from ..protocol.frames import encode_body
from .service import WorkerService


def _emit(out: IO[str], message: Reply | Progress) -> None:
    out.write(encode_body(message).decode("utf-8") + "\n")
    out.flush()


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

    # one request then exit: a background first index would die with the process
    service = WorkerService(root, index_dir, background_first_index=False, base=base)
    service.open_engine()  # the model loads lazily, only if the request needs it
    if request.op in (Op.SEARCH, Op.INDEX):
        service.adopt_base()

    def progress(p: Progress) -> None:
        _emit(out, p)

    try:
        if request.op is Op.SEARCH:
            result = service.search(request.id, request.args_as(SearchArgs), progress)
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
    finally:
        service.close()
    _emit(out, reply)
    return 0
