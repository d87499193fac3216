"""Handing over from a ragexd started on demand to the service manager's own.

Two ragexd cannot run at once (the second fails its lock), so before a manager
starts ragexd, the one ragexctl started on demand must stop; and ``status``
tells when a ragexd runs outside the manager.  Finding that ragexd from its
pid file without trusting a recycled pid, and stopping it cleanly, is this
module's one job.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from ragexd import paths

from .common import Console


def ondemand_ragexd(exclude: int | None = None) -> int | None:
    """Pid of a live ragexd per its pid file (not ``exclude``), else None."""
    pid = paths.read_pid(paths.daemon_pid_path())
    if pid is None or pid <= 0 or pid == exclude or not paths.process_running(pid):
        return None
    try:
        os.kill(pid, 0)
    except PermissionError:
        return None  # not ours: a recycled pid
    except ProcessLookupError:
        return None
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        try:
            if b"ragexd" not in cmdline.read_bytes():
                return None
        except OSError:
            return None
    return pid


def stop_ondemand(exclude: int | None, con: Console, deadline: float = 35.0) -> None:
    """Stop a ragexd that ragexctl started on demand, so the service's own can bind.

    Two ragexd cannot run at once (the second fails its lock), so the service
    would otherwise fail to start.  SIGTERM is ragexd's clean shutdown; workers
    come back on the next request.
    """
    pid = ondemand_ragexd(exclude)
    if pid is None:
        return
    con.step(f"stop the ragexd started on demand (pid {pid}) so the service manager can "
             "run its own; its workers restart on the next request")
    if con.dry_run:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if not paths.process_running(pid):
            return
        time.sleep(0.05)
    con.err(f"warning: ragexd (pid {pid}) is still running {deadline:g} s after SIGTERM; "
            "the service may fail to start until it exits")
