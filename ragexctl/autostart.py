"""Starting ragexd on demand, so nobody has to manage a daemon by hand.

ragexctl runs ``python -m ragexd`` in a new session: ragexd daemonizes itself
and its first process exits only once the daemon listens (0), or with the
reason it cannot (2, the sentence on its stderr).  Using that readiness
handshake, rather than ``--foreground`` with our own polling, means failures
are reported at once and in ragexd's own words, and the daemon's logs go to
its rotated log file only — not, forever, to a start log nobody rotates.

Racing ragexctl processes are fine: each may start a ragexd, ragexd's lock
lets exactly one win, the losers exit "already running" (5), and every
client simply waits for the socket.  The start log keeps what ragexd printed
while starting: the end of it is shown when it fails.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from ragexd import exitcodes, logfile, paths
from ragexd.protocol import ErrorCode, Op, RagexError

from .client import DaemonClient, daemon_alive

START_DEADLINE = 15.0
POLL_INTERVAL = 0.05
START_LOG = "ragexd.start.log"
#: ragexd's exit code when another ragexd holds the lock.
EXIT_ALREADY_RUNNING = exitcodes.ALREADY_RUNNING
#: The start log is moved aside when it grows past this (it holds start-ups only).
START_LOG_MAX = 256 * 1024


def start_log_path() -> Path:
    return paths.log_dir() / START_LOG


def _child_env() -> dict[str, str]:
    """The environment for ragexd: ours, plus a PYTHONPATH entry when ragexd is
    importable only thanks to our cwd (running from a source checkout), because
    the daemon runs from ``/`` so that it never pins the user's directory."""
    import ragexd

    env = dict(os.environ)
    parent = os.path.dirname(os.path.dirname(os.path.abspath(ragexd.__file__)))
    try:
        cwd = os.getcwd()
    except OSError:  # our directory was deleted
        cwd = ""
    importable = any(p and os.path.abspath(p) == parent and os.path.abspath(p) != cwd
                     for p in sys.path)
    if not importable:
        env["PYTHONPATH"] = parent + (os.pathsep + env["PYTHONPATH"]
                                      if env.get("PYTHONPATH") else "")
    return env


def start_daemon(deadline: float = START_DEADLINE) -> dict[str, Any]:
    """Start ragexd and wait until it answers HELLO; return HELLO's result.

    Raises RagexError(RUNTIME_ERROR) with ragexd's exit code and the end of its
    output when it does not come up in time.
    """
    import subprocess

    log_path = start_log_path()
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        logfile.rotate(log_path, START_LOG_MAX)
        offset = log_path.stat().st_size if log_path.exists() else 0
        log = open(log_path, "ab")
    except OSError as exc:
        raise RagexError(ErrorCode.RUNTIME_ERROR,
                         f"cannot write ragexd's start log {log_path}: {exc.strerror or exc}") \
            from None
    cmd = [sys.executable, "-m", "ragexd"]
    with log:
        log.write(logfile.note_line(f"ragexctl (pid {os.getpid()}) starts: {' '.join(cmd)}"))
        log.flush()
        offset = log.tell()  # what ragexd prints comes after our header line
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    close_fds=True, cwd="/", env=_child_env())
        except OSError as exc:
            raise RagexError(ErrorCode.RUNTIME_ERROR,
                             f"cannot run {sys.executable} -m ragexd: {exc.strerror or exc}") \
                from None

    client = DaemonClient()
    t_end = time.monotonic() + deadline
    code: int | None = None
    try:
        while True:
            code = proc.poll()
            if code not in (None, 0, EXIT_ALREADY_RUNNING):
                break  # it said why it cannot start: no point waiting
            now = time.monotonic()
            if daemon_alive(client.socket_path):
                try:
                    reply = client.call(Op.HELLO, timeout=max(0.5, min(3.0, t_end - now)),
                                        retries=0)
                except RagexError:
                    reply = None
                if reply is not None:
                    # Even an error reply proves ragexd is up and speaking.
                    return (reply.result or {}) if reply.ok else {}
            if time.monotonic() >= t_end:
                break
            time.sleep(POLL_INTERVAL)
    finally:
        client.close()

    tail = logfile.tail(log_path, 15, offset=offset, skip_blank=True)
    if code is None:
        why = f"ragexd (pid {proc.pid}) did not answer within {deadline:g} s"
    elif code == EXIT_ALREADY_RUNNING:
        why = f"another ragexd holds the lock but did not answer within {deadline:g} s"
    else:
        why = f"ragexd exited with code {code}"
    last = tail[-1].strip() if tail else ""
    raise RagexError(ErrorCode.RUNTIME_ERROR,
                     f"could not start ragexd: {why}" + (f": {last}" if last else "")
                     + f" (full output in {log_path})",
                     exit_code=code, log_tail=tail, log=str(log_path))


def ensure_daemon(*, auto_start: bool) -> dict[str, Any] | None:
    """Make sure ragexd answers.  Returns HELLO's result when this call started it,
    None when it was already running.  Without auto-start, a clear error."""
    if daemon_alive():
        return None
    if not auto_start:
        raise RagexError(ErrorCode.WORKER_UNAVAILABLE,
                         "ragexd is not running and auto-start is off; start it with "
                         "`ragexctl start`, or search without it: --no-daemon")
    return start_daemon()
