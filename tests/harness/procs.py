"""Finding, waiting for and reaping the processes a test started.

A test may leave a ragexd or a worker behind when it fails half-way; teardown
finds them by what they carry (this environment's runtime dir in their
environment, or its base directory on their command line) and kills them, so
one failing test never leaks into the next.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any, Callable

import psutil


def poll(fn: Callable[[], Any], timeout: float, interval: float = 0.03,
         what: str = "condition") -> tuple[Any, float]:
    """Call ``fn`` until it returns something truthy; (value, seconds waited).
    Raises AssertionError with the last value when the time runs out."""
    t0 = time.monotonic()
    while True:
        last = fn()
        waited = time.monotonic() - t0
        if last:
            return last, waited
        if waited > timeout:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} "
                                 f"(last: {last!r})")
        time.sleep(interval)


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.1,
             what: str = "condition") -> Any:
    """``poll`` when only the value matters."""
    return poll(predicate, timeout, interval, what)[0]


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie has finished: it only waits to be reaped)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def kill_pids(pids: list[int]) -> list[int]:
    """SIGKILL each pid that still exists; returns ``pids``."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if pids:
        time.sleep(0.2)
    return pids


def pids_in_env(run_dir: Path, ragexd_only: bool = False) -> list[int]:
    """Live processes started with ``RAGEX_RUNTIME_DIR=run_dir`` (ragexd, workers,
    MCP servers, clients), this one excepted; with ``ragexd_only``, only ragexd and
    its workers (not a ragexctl still running)."""
    marker = f"RAGEX_RUNTIME_DIR={run_dir}".encode()
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                environ = fh.read().split(b"\0")
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmd = fh.read()
            with open(f"/proc/{entry}/stat", "rb") as fh:
                zombie = fh.read().rsplit(b")", 1)[-1].split()[0] == b"Z"
        except (OSError, IndexError):
            continue
        if marker not in environ or zombie:
            continue
        if ragexd_only and (b"ragexd" not in cmd or b"ragexctl" in cmd):
            continue
        out.append(int(entry))
    return out


def workers_under(base: Path, serving: bool = True) -> list[psutil.Process]:
    """Live worker processes whose command line names ``base``: serving workers,
    or with ``serving=False`` one-shot ones too."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmd = proc.info.get("cmdline") or []
        if "ragexd.worker" not in cmd or (serving and "serve" not in cmd):
            continue
        if any(str(base) in part for part in cmd) \
                and proc.info.get("status") != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


def kill_workers_under(base: Path) -> None:
    """Kill every worker whose command line names ``base`` (a test's leftovers)."""
    for proc in workers_under(base, serving=False):
        try:
            proc.kill()
        except psutil.Error:
            pass


def daemon_pid(run_dir: Path) -> int | None:
    """The pid ragexd wrote in ``run_dir``, if any."""
    try:
        text = (run_dir / "ragexd.pid").read_text().split()
        return int(text[0]) if text else None
    except (OSError, ValueError):
        return None


def stop_daemon_at(run_dir: Path, timeout: float = 40.0) -> None:
    """Stop a ragexd we did not start ourselves (auto-started by ragexctl):
    SIGTERM, then SIGKILL after ``timeout``."""
    pid = daemon_pid(run_dir)
    if pid is None or not pid_alive(pid):
        return
    try:
        cmd = psutil.Process(pid).cmdline()
    except psutil.Error:
        return
    if "ragexd" not in " ".join(cmd):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


def cleanup_base(base: Path) -> None:
    """Stop the ragexd of ``base/run`` and kill the workers naming ``base``."""
    stop_daemon_at(base / "run")
    kill_workers_under(base)
