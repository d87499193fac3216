"""One real ragexd for a test: ``python -m ragexd --foreground`` in a private environment.

Parameterised by runtime (``process`` or ``docker``), as Watchman's integration
tests parameterise their instance: start it, wait until it answers PING, hand
out protocol clients, show its log when it fails, and on the way out stop it
with SIGTERM (SIGKILL after a deadline) and reap what it leaves: its worker
processes, and for Docker the containers labelled with this test's paths.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from ragexd.protocol import Op

from .client import Client
from .env import REPO, PrivateEnv
from .procs import kill_pids, kill_workers_under

#: Every instance started in this test process, newest last: tests/conftest.py puts
#: the log of each one still running, or started by the failing test, in its report.
STARTED: list["RagexInstance"] = []


class RagexInstance(PrivateEnv):
    """One ``python -m ragexd --foreground`` in a private environment under ``base``.

    ``env`` entries override the environment (``RAGEX_RUNTIME="docker"`` among
    them selects the Docker runtime, like the ``runtime`` argument).  The runtime
    dir is left for ragexd to create: how it does is under test."""

    def __init__(self, base: Path | None = None, args: tuple[str, ...] = (),
                 runtime: str = "process", **env: str) -> None:
        super().__init__(base, runtime, session=False, **env)
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.out_path = self.base / "ragexd.out"
        self.clients: list[Client] = []
        self._final_output = ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def popen(self, *args: str) -> subprocess.Popen[bytes]:
        """``python -m ragexd ARGS`` in this environment, its output appended to ``out_path``."""
        with open(self.out_path, "ab") as out:
            return subprocess.Popen([sys.executable, "-m", "ragexd", *args], env=self.env,
                                    stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, cwd=str(REPO))

    def start(self, timeout: float | None = None) -> "RagexInstance":
        """Start ragexd and return once it answers PING (its log in the failure if not).
        A container runtime gets longer by default: it probes the engine first."""
        if timeout is None:
            timeout = 60.0 if self.runtime == "docker" else 30.0
        self.proc = self.popen("--foreground", *self.args)
        STARTED.append(self)
        deadline = time.monotonic() + timeout
        probe = Client(self.endpoint)
        try:
            while True:
                if self.proc.poll() is not None:
                    raise AssertionError(f"ragexd exited {self.proc.returncode}:\n{self.output()}")
                if self.socket.exists():
                    try:
                        if probe.call(Op.PING, timeout=1.0).ok:
                            return self
                    except TimeoutError:
                        pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"ragexd did not come up:\n{self.output()}")
                time.sleep(0.05)
        finally:
            probe.close()

    def client(self) -> Client:
        """A protocol client, closed with this instance."""
        client = Client(self.endpoint)
        self.clients.append(client)
        return client

    def output(self) -> str:
        """The end of ragexd's stdout and stderr, for failure messages."""
        try:
            return self.out_path.read_text(errors="replace")[-6000:]
        except OSError:
            return self._final_output  # base removed by cleanup(): what it held last

    def worker_pids(self) -> list[int]:
        """Live worker processes started by this ragexd (children)."""
        try:
            children = psutil.Process(self.pid).children(recursive=True)
        except psutil.Error:
            return []
        return [c.pid for c in children if _is_worker(c)]

    def shutdown(self, timeout: float = 60.0) -> int:
        """Ask ragexd to stop (the SHUTDOWN request, as ``ragexctl stop`` does) and
        wait: its exit code (TimeoutExpired if it hangs)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            client = Client(self.endpoint)
            try:
                reply = client.call(Op.SHUTDOWN, timeout=10.0)
                assert reply.ok, reply.error
            finally:
                client.close()
        return self.proc.wait(timeout)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait: ragexd's exit code (TimeoutExpired if it hangs)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def close(self) -> int | None:
        """Close the clients, stop ragexd (SIGKILL after 35 s) and kill the worker
        processes it leaves; ragexd's exit code, None when it never started."""
        for client in self.clients:
            client.close()
        self.clients.clear()
        if self.proc is not None and self.proc.poll() is None:
            workers = self.worker_pids()
            try:
                self.terminate(35)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            kill_pids(workers)
        kill_workers_under(self.base)
        return None if self.proc is None else self.proc.returncode

    def cleanup(self) -> list[int]:
        """``close``, remove this test's containers (Docker runtime), then stop
        whatever is left in the environment and delete ``base``."""
        self.close()
        if self.runtime == "docker":
            from .containers import remove_containers_under

            remove_containers_under(self.base)
        self._final_output = self.output()
        return super().cleanup()


def _is_worker(proc: psutil.Process) -> bool:
    try:
        cmd = proc.cmdline()
    except psutil.Error:
        return False
    return "ragexd.worker" in cmd and "serve" in cmd
