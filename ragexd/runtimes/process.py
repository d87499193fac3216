"""Workers as local child processes.

The default when Docker is absent, and the fastest to start.  Each worker runs
in its own session (``start_new_session``) so a signal aimed at its process
group also reaches whatever it spawned (ripgrep), and so Ctrl-C in the terminal
that started ragexd does not hit the workers behind ragexd's back.

The memory limit is enforced here by watching RSS (the worker plus its
children) whenever the supervisor polls, about once a second: there is no
cgroup to lean on without Docker or systemd, and a worker stopped for memory
must be reported as such, not as a crash.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from .. import paths
from ..config import format_size
from ..logfile import note, note_line
from ..modelfiles import OFFLINE_ENV
from ..proctree import tree_rss
from ..logfile import rotate as rotate_log
from ..logfile import tail as tail_file
from .base import ExitInfo, Runtime, WorkerHandle, WorkerSpec

if TYPE_CHECKING:  # pragma: no cover
    from ..config import Config

log = logging.getLogger("ragexd.runtime.process")

PID_FILE = "worker.pid"
#: A worker log above this size is moved aside (to ``.1``) when the worker starts.
LOG_TAIL_LINES = 20
WORKER_MODULE = "ragexd.worker"

#: Never forwarded to workers: they describe ragexd's own systemd unit.
_DROP_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID",
             "LISTEN_FDNAMES")


def describe_exit(code: int | None) -> tuple[str, str]:
    """(reason, sentence) for a return code as Popen reports it."""
    if code is None:
        return "exited", "exited (exit code unknown)"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return "killed", f"killed ({name})"
    if code == 0:
        return "exited", "exited with code 0"
    return "crashed", f"exited with code {code}"


def _is_worker_cmdline(cmdline: list[str]) -> bool:
    return WORKER_MODULE in cmdline and "serve" in cmdline


def _signal_group(pid: int, sig: int) -> None:
    """Signal the worker's whole process group (it leads its own session)."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
            return
    except (ProcessLookupError, PermissionError):
        pass
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class ProcessRuntime(Runtime):
    name = "process"

    def __init__(self, cfg: "Config | None" = None, *, python: str | None = None,
                 module: str = WORKER_MODULE, extra_env: dict[str, str] | None = None) -> None:
        self.cfg = cfg
        self.python = python or sys.executable
        #: The worker module; tests may point at a stand-in, production never does.
        self.module = module
        self.extra_env = dict(extra_env or {})
        interval = cfg.heartbeat_interval if cfg is not None else 2.0
        timeout = cfg.heartbeat_timeout if cfg is not None else 20.0
        #: The worker exits by itself after this long without a message from ragexd.
        self.orphan_timeout = max(60.0, 5 * interval, 2 * timeout)
        self._lock = threading.Lock()
        self._popen: dict[str, subprocess.Popen[bytes]] = {}
        self._ps: dict[str, psutil.Process] = {}
        self._exits: dict[str, ExitInfo] = {}
        self._rss: dict[str, tuple[float, int]] = {}   # ident -> (monotonic, bytes)

    # --- helpers -----------------------------------------------------------------

    def _env(self, spec: WorkerSpec) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _DROP_ENV}
        env.update(OFFLINE_ENV)
        # Import ragexd from where this ragexd comes from, whatever the cwd is:
        # the worker runs in "/" so that a project directory containing a
        # "ragexd" folder can never shadow the real package.
        package_parent = str(Path(__file__).resolve().parent.parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
        env.update(self.extra_env)
        env.update(dict(spec.env))
        env.update(spec.limit_env())
        return env

    def command(self, spec: WorkerSpec) -> list[str]:
        cmd = [self.python, "-m", self.module, "serve", "--root", str(spec.root),
               "--index-dir", str(spec.index_dir), "--endpoint", spec.endpoint,
               "--project-id", spec.project_id,
               "--orphan-timeout", f"{self.orphan_timeout:g}"]
        if not spec.watch:
            cmd.append("--no-watch")
        if spec.base:
            cmd += ["--base", spec.base]
        return cmd

    def _reap_recorded(self, socket_dir: Path, project_id: str | None = None) -> int | None:
        """Kill a live worker recorded in ``socket_dir/worker.pid`` (an orphan); returns its pid."""
        pid_path = socket_dir / PID_FILE
        try:
            pid = int(pid_path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        with self._lock:
            if any(h == str(pid) for h in self._popen):
                return None  # one of ours, still managed
        try:
            proc = psutil.Process(pid)
            cmdline = proc.cmdline()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return None
        if not _is_worker_cmdline(cmdline):
            return None
        if project_id and project_id not in cmdline:
            return None
        log.info("reaping orphan worker pid %d (%s)", pid, socket_dir.name)
        _signal_group(pid, signal.SIGTERM)
        return pid

    # --- Runtime -----------------------------------------------------------------

    def start(self, spec: WorkerSpec) -> WorkerHandle:
        try:
            spec.socket_dir.mkdir(parents=True, mode=0o700, exist_ok=True)
            os.chmod(spec.socket_dir, 0o700)
            orphan = self._reap_recorded(spec.socket_dir, spec.project_id)
            if orphan is not None:
                _wait_gone([orphan], 3.0)
            for stale in (spec.socket_path, spec.socket_dir / PID_FILE):
                try:
                    stale.unlink()
                except FileNotFoundError:
                    pass
            spec.index_dir.mkdir(parents=True, exist_ok=True)
            spec.log_path.parent.mkdir(parents=True, exist_ok=True)
            rotate_log(spec.log_path)
            logfh = open(spec.log_path, "ab")
        except OSError as exc:
            raise RuntimeError(f"cannot prepare the worker for {spec.root}: {exc}") from None
        try:
            logfh.write(note_line(f"ragexd (pid {os.getpid()}) starts a worker for {spec.root}"))
            logfh.flush()
            proc = subprocess.Popen(self.command(spec), stdin=subprocess.DEVNULL, stdout=logfh,
                                    stderr=subprocess.STDOUT, cwd="/", env=self._env(spec),
                                    start_new_session=True, close_fds=True)
        except OSError as exc:
            raise RuntimeError(f"cannot start a worker process ({self.python}): {exc}") from None
        finally:
            logfh.close()
        ident = str(proc.pid)
        try:
            (spec.socket_dir / PID_FILE).write_text(
                f"{proc.pid}\n{json.dumps({'project_id': spec.project_id, 'root': str(spec.root)})}\n")
        except OSError as exc:
            log.warning("cannot record the worker pid in %s: %s", spec.socket_dir, exc)
        with self._lock:
            self._popen[ident] = proc
            self._exits.pop(ident, None)
        return WorkerHandle(spec=spec, runtime=self.name, ident=ident, started_at=time.time(),
                            pid=proc.pid)

    def _ps_process(self, handle: WorkerHandle) -> psutil.Process | None:
        if handle.pid is None:
            return None
        with self._lock:
            proc = self._ps.get(handle.ident)
        if proc is None:
            try:
                proc = psutil.Process(handle.pid)
            except psutil.Error:
                return None
            with self._lock:
                self._ps[handle.ident] = proc
        return proc

    def _returncode(self, handle: WorkerHandle) -> tuple[bool, int | None]:
        """(exited, code) without blocking."""
        with self._lock:
            popen = self._popen.get(handle.ident)
        if popen is not None:
            code = popen.poll()
            return code is not None, code
        proc = self._ps_process(handle)
        if proc is None:
            return True, None
        try:
            alive = proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            alive = False
        return (not alive), None

    def _finish(self, handle: WorkerHandle, info: ExitInfo) -> ExitInfo:
        with self._lock:
            self._exits[handle.ident] = info
            self._popen.pop(handle.ident, None)
            self._ps.pop(handle.ident, None)
            self._rss.pop(handle.ident, None)
        pid_file = handle.spec.socket_dir / PID_FILE
        try:
            if pid_file.read_text().split()[0] == handle.ident:
                pid_file.unlink()
        except (OSError, IndexError):
            pass
        return info

    def poll(self, handle: WorkerHandle) -> ExitInfo | None:
        with self._lock:
            known = self._exits.get(handle.ident)
        if known is not None:
            return known
        exited, code = self._returncode(handle)
        if exited:
            if handle.pid is not None:
                _signal_group(handle.pid, signal.SIGKILL)  # leftovers of the group, if any
            reason, message = describe_exit(code)
            return self._finish(handle, ExitInfo(code, reason, message,
                                                 self.log_tail(handle, LOG_TAIL_LINES)))
        limit = handle.spec.memory_limit
        if limit > 0:
            rss = self.memory(handle)
            if rss is not None and rss > limit:
                log.warning("worker %s for %s uses %d bytes, over its %d-byte limit: stopping it",
                            handle.ident, handle.spec.root, rss, limit)
                code = self._kill(handle, signal.SIGKILL, 5.0)
                message = (f"stopped: memory limit {format_size(limit)} exceeded "
                           f"(it used {format_size(rss)})")
                note(handle.spec.log_path, f"ragexd: {message}")
                return self._finish(handle, ExitInfo(code, "memory_limit", message,
                                                     self.log_tail(handle, LOG_TAIL_LINES)))
        return None

    def _kill(self, handle: WorkerHandle, sig: int, wait: float) -> int | None:
        """Signal the group and wait up to ``wait`` seconds; returns the exit code if known."""
        if handle.pid is None:
            return None
        _signal_group(handle.pid, sig)
        with self._lock:
            popen = self._popen.get(handle.ident)
        if popen is not None:
            try:
                code = popen.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                return None
            _signal_group(handle.pid, signal.SIGKILL)
            return code
        proc = self._ps_process(handle)
        if proc is not None:
            try:
                proc.wait(timeout=wait)
            except psutil.TimeoutExpired:
                return None
            except psutil.Error:
                pass
        return None

    def _alive(self, handle: WorkerHandle) -> bool:
        return not self._returncode(handle)[0]

    def stop(self, handle: WorkerHandle, timeout: float = 10.0) -> ExitInfo:
        with self._lock:
            known = self._exits.get(handle.ident)
        if known is not None:
            return known
        if self._alive(handle):
            self._kill(handle, signal.SIGTERM, timeout)
        if self._alive(handle):
            log.warning("worker %s for %s ignored SIGTERM for %.0f s: killing it",
                        handle.ident, handle.spec.root, timeout)
            self._kill(handle, signal.SIGKILL, 5.0)
        exited, code = self._returncode(handle)
        if not exited:
            raise RuntimeError(f"worker {handle.ident} survived SIGKILL")
        if handle.pid is not None:
            _signal_group(handle.pid, signal.SIGKILL)
        _reason, sentence = describe_exit(code)
        return self._finish(handle, ExitInfo(code, "stopped", f"stopped ({sentence})",
                                             self.log_tail(handle, LOG_TAIL_LINES)))

    def memory(self, handle: WorkerHandle) -> int | None:
        """RSS of the worker and all its descendants (ripgrep, a bulk-embedding
        child), as ``proctree.tree_rss`` sums it: called about once a second per
        worker, so it must stay cheap."""
        now = time.monotonic()
        with self._lock:
            cached = self._rss.get(handle.ident)
        if cached is not None and now - cached[0] < 0.5:
            return cached[1]
        proc = self._ps_process(handle)
        if proc is None:
            return None
        total = tree_rss(proc.pid)
        if total is None:
            return None
        with self._lock:
            self._rss[handle.ident] = (now, int(total))
        return int(total)

    def log_tail(self, handle: WorkerHandle, lines: int = 20) -> list[str]:
        return tail_file(handle.spec.log_path, lines)

    def adopt_or_reap(self, wanted: dict[str, WorkerSpec]) -> list[WorkerHandle]:
        """Reap workers a previous ragexd left behind and clear their sockets.

        Local workers are not adopted: their stdout is tied to the old ragexd's
        log file handle and they are cheap to restart; reaping them is simpler
        and always correct.
        """
        base = paths.runtime_dir() / "workers"
        try:
            dirs = [d for d in base.iterdir() if d.is_dir()]
        except FileNotFoundError:
            return []
        reaped = []
        for directory in dirs:
            pid = self._reap_recorded(directory)
            if pid is not None:
                reaped.append(pid)
        if reaped:
            survivors = _wait_gone(reaped, 3.0)
            for pid in survivors:
                log.warning("orphan worker pid %d ignored SIGTERM: killing it", pid)
                _signal_group(pid, signal.SIGKILL)
            _wait_gone(survivors, 2.0)
        for directory in dirs:
            for name in ("worker.sock", PID_FILE):
                try:
                    (directory / name).unlink()
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    log.warning("cannot remove %s: %s", directory / name, exc)
        return []

    def describe(self) -> dict[str, object]:
        return {"runtime": self.name, "python": self.python}


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Wait for processes (not our children) to disappear; returns those still alive."""
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.Error:
            pass
    if not procs:
        return []
    _gone, alive = psutil.wait_procs(procs, timeout=timeout)
    return [p.pid for p in alive]
