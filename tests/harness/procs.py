"""Finding, waiting for and reaping the processes a test started.

A test may leave a ragexd or a worker behind when it fails half-way; teardown
finds them by what they carry (this environment's runtime dir in their
environment, or its base directory on their command line) and kills them, so
one failing test never leaks into the next.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import IO, Any, Callable

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


class StreamLines:
    """A child's text stream (its stdout or stderr pipe) read on a thread as it
    comes, so a test can act at the moment the child *says* it reached a state
    (its request is queued, its file is followed) instead of sleeping for a time
    a loaded machine may exceed, and still assert on everything it wrote.  The
    stream is this reader's alone: use ``text`` or ``until_closed``, not
    ``Popen.communicate``, for what it carried."""

    def __init__(self, stream: IO[str] | None) -> None:
        assert stream is not None, "the child's stream must be a pipe"
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        try:
            for line in stream:
                with self._cond:
                    self._lines.append(line)
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()

    def text(self) -> str:
        """Everything read so far."""
        with self._cond:
            return "".join(self._lines)

    def wait_for(self, wanted: str | Callable[[str], bool], timeout: float,
                 what: str | None = None) -> str:
        """The first line holding ``wanted`` (or that ``wanted`` accepts); raises
        AssertionError, with what was read, when the time runs out or the stream
        ends without one."""
        accepts = wanted if callable(wanted) else (lambda line: wanted in line)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self._lines[seen:]:
                    if accepts(line):
                        return line
                seen = len(self._lines)
                left = deadline - time.monotonic()
                if self._closed or left <= 0:
                    why = "the stream ended" if self._closed else f"timed out after {timeout:g} s"
                    raise AssertionError(f"{why} waiting for {what or repr(wanted)}; "
                                         f"read: {''.join(self._lines)[-3000:]!r}")
                self._cond.wait(left)

    def until_closed(self, timeout: float) -> str:
        """Everything, once the child closed the stream (it exited)."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the stream is still open after {timeout:g} s"
        return self.text()


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
