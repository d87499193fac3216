"""The ``--no-daemon`` path: one worker process per request, no ragexd.

ragexctl still never imports the engine: it spawns ``python -m ragexd.worker
oneshot``, writes the Request as JSON on its stdin and reads Progress/Reply
JSON Lines from its stdout.  The reply is the same protocol object the daemon
would send, so the same rendering code prints it.  The worker's log lines go to
a temporary file and are shown only when it fails.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import BinaryIO

from ragexd import logfile
from ragexd.protocol import ErrorCode, Progress, RagexError, Reply, Request

from .client import ProgressCallback


def call_oneshot(request: Request, root: str, index_dir: str, *, timeout: float,
                 on_progress: ProgressCallback | None = None, base: str = "") -> Reply:
    """Run one request in a fresh worker process.  ``timeout`` is the longest
    silence tolerated (each progress line restarts it)."""
    import selectors
    import subprocess
    import tempfile

    from .autostart import _child_env

    cmd = [sys.executable, "-m", "ragexd.worker", "oneshot", "--root", root,
           "--index-dir", index_dir] + (["--base", base] if base else [])
    debug = os.environ.get("RAGEX_LOG_LEVEL", "").lower() == "debug"
    errlog = None if debug else tempfile.TemporaryFile()
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=errlog, env=_child_env())
    except OSError as exc:
        raise RagexError(ErrorCode.RUNTIME_ERROR,
                         f"cannot run {sys.executable} -m ragexd.worker: {exc.strerror or exc}") \
            from None
    reply: Reply | None = None
    try:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps(request.to_wire(), ensure_ascii=False).encode("utf-8"))
            proc.stdin.close()
        except BrokenPipeError:
            pass  # it died at once; its exit code and log say why, below
        fd = proc.stdout.fileno()
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ)
        buf = b""
        deadline = time.monotonic() + timeout
        eof = False
        while not eof:
            left = deadline - time.monotonic()
            if left <= 0:
                proc.kill()
                raise RagexError(ErrorCode.TIMEOUT,
                                 f"the one-shot worker was silent for {timeout:g} s and was "
                                 "stopped; try a larger --timeout",
                                 timeout=timeout)
            if not sel.select(left):
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                eof = True
            buf += chunk
            *lines, buf = buf.split(b"\n")
            if eof and buf:
                lines.append(buf)
            for raw in lines:
                if not raw.strip():
                    continue
                try:
                    data = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    continue  # not a protocol line (a library printing): ignore it
                if not isinstance(data, dict):
                    continue
                kind = data.get("type")
                if kind == "progress":
                    deadline = time.monotonic() + timeout
                    if on_progress is not None:
                        on_progress(Progress.from_wire(data))
                elif kind == "reply":
                    reply = Reply.from_wire(data)
        sel.close()
        try:
            code = proc.wait(timeout=30 if reply is None else 2)
        except subprocess.TimeoutExpired:
            if reply is None:
                raise
            # Answered: it is stopping a first index at a safe point (nothing
            # committed is lost); the user need not wait for that.
            code = 0
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        raise
    finally:
        if proc.stdout is not None:
            proc.stdout.close()
    if reply is None:
        tail = _read_tail(errlog)
        last = tail[-1] if tail else ""
        raise RagexError(ErrorCode.WORKER_CRASHED,
                         f"the one-shot worker exited with code {code} without answering"
                         + (f": {last}" if last else ""),
                         exit_code=code, log_tail=tail)
    if errlog is not None:
        errlog.close()
    return reply


def _read_tail(errlog: BinaryIO | None, lines: int = 15) -> list[str]:
    """The end of the one-shot worker's stderr (a temporary file), then close it."""
    if errlog is None:
        return []
    try:
        return logfile.tail_of(errlog, lines, skip_blank=True)
    except (OSError, ValueError):
        return []
    finally:
        errlog.close()
