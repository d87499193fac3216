"""Helpers for the ragexd tests: a private environment, a ragexd process, a client.

Everything is real: ``python -m ragexd --foreground`` in its own process with
its ragex directories under a short /tmp path (ipc:// paths are limited to
~107 bytes), real worker processes, a real ZeroMQ DEALER speaking the
protocol.  Nothing here imports ragexctl: the tests must hold ragexd to its
contract, not to one client's habits.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil
import zmq

from ragexd.protocol import Op, Progress, Reply, Request, decode, encode

REPO = Path(__file__).resolve().parents[2]

_DROP = ("XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME",
         "RAGEX_RUNTIME_DIR", "RAGEX_DATA_DIR", "RAGEX_STATE_DIR", "RAGEX_CONFIG_DIR",
         "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "DOCKER_HOST")


def make_env(base: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in _DROP and not k.startswith("RAGEX_")}
    env.update(RAGEX_RUNTIME_DIR=str(base / "run"), RAGEX_DATA_DIR=str(base / "data"),
               RAGEX_STATE_DIR=str(base / "state"), RAGEX_CONFIG_DIR=str(base / "config"),
               RAGEX_RUNTIME="process", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONPATH=str(REPO))
    env.update(extra)
    return env


def short_tmp() -> Path:
    return Path(tempfile.mkdtemp(prefix="rx-"))


def write_tree(root: Path, files: int = 4) -> Path:
    """A small Python project with distinctive functions to search for."""
    root.mkdir(parents=True, exist_ok=True)
    (root / ".git").mkdir(exist_ok=True)
    (root / "billing.py").write_text(textwrap.dedent('''
        def compute_invoice_total(items, tax_rate):
            """Sum the line items of an invoice and add sales tax."""
            subtotal = sum(item.price * item.quantity for item in items)
            return round(subtotal * (1 + tax_rate), 2)


        class RefundPolicy:
            def refund_window_days(self, customer):
                return 60 if customer.is_premium else 30
    '''))
    (root / "network.py").write_text(textwrap.dedent('''
        import socket


        def open_tcp_connection(host, port, timeout=5.0):
            """Connect to a TCP server and return the socket."""
            sock = socket.create_connection((host, port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock


        def retry_with_backoff(fn, attempts=5):
            delay = 0.1
            for attempt in range(attempts):
                try:
                    return fn()
                except OSError:
                    delay *= 2
            raise RuntimeError("gave up")
    '''))
    (root / "text_utils.py").write_text(textwrap.dedent('''
        import re


        def slugify(title):
            """Turn a title into a lowercase URL slug."""
            return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


        def count_words(text):
            return len(text.split())
    '''))
    for i in range(max(0, files - 3)):
        (root / f"module_{i}.py").write_text(textwrap.dedent(f'''
            def helper_function_{i}(value):
                """Helper number {i}: scale a value."""
                return value * {i + 2}
        '''))
    return root


class Client:
    """A DEALER speaking the ragex protocol to ragexd."""

    def __init__(self, endpoint: str) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)

    def send(self, request: Request) -> str:
        self.sock.send_multipart(encode(request))
        return request.id

    def send_raw(self, frames: list[bytes]) -> None:
        self.sock.send_multipart(frames)

    def recv(self, timeout: float = 10.0) -> Reply | Progress:
        if not self.sock.poll(int(timeout * 1000)):
            raise TimeoutError(f"no message from ragexd within {timeout} s")
        message = decode(self.sock.recv_multipart())
        assert isinstance(message, (Reply, Progress)), message
        return message

    def reply_to(self, request_id: str, timeout: float = 10.0,
                 progress: list[Progress] | None = None) -> Reply:
        deadline = time.monotonic() + timeout
        while True:
            message = self.recv(max(0.01, deadline - time.monotonic()))
            if isinstance(message, Progress):
                if progress is not None:
                    progress.append(message)
                continue
            if message.id == request_id:
                return message

    def call(self, op: Op, project: str | Path | None = None, timeout: float = 10.0,
             **args: Any) -> Reply:
        request = Request(op=op, args=args, project=str(project) if project else None)
        self.send(request)
        return self.reply_to(request.id, timeout)

    def search(self, project: Path, query: str, mode: str = "auto", timeout: float = 180.0,
               **extra: Any) -> Reply:
        return self.call(Op.SEARCH, project, timeout, query=query, mode=mode, limit=5, **extra)

    def status(self, project: Path | None = None, timeout: float = 5.0) -> dict[str, Any]:
        reply = self.call(Op.STATUS, project, timeout)
        assert reply.ok, reply.error
        return reply.result or {}

    def worker(self, project: Path) -> dict[str, Any]:
        workers = self.status(project)["workers"]
        assert len(workers) == 1, workers
        return workers[0]

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


class Ragexd:
    """One ``python -m ragexd --foreground`` with its own directories."""

    def __init__(self, base: Path | None = None, args: tuple[str, ...] = (),
                 **env: str) -> None:
        self.base = base or short_tmp()
        self.env = make_env(self.base, **env)
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.out_path = self.base / "ragexd.out"
        self.clients: list[Client] = []

    @property
    def run_dir(self) -> Path:
        return Path(self.env["RAGEX_RUNTIME_DIR"])

    @property
    def state_dir(self) -> Path:
        return Path(self.env["RAGEX_STATE_DIR"])

    @property
    def socket(self) -> Path:
        return self.run_dir / "ragexd.sock"

    @property
    def endpoint(self) -> str:
        return "ipc://" + str(self.socket)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def popen(self, *args: str) -> subprocess.Popen[bytes]:
        out = open(self.out_path, "ab")
        try:
            return subprocess.Popen([sys.executable, "-m", "ragexd", *args], env=self.env,
                                    stdout=out, stderr=subprocess.STDOUT, cwd=str(REPO))
        finally:
            out.close()

    def start(self, timeout: float = 30.0) -> "Ragexd":
        self.proc = self.popen("--foreground", *self.args)
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
        client = Client(self.endpoint)
        self.clients.append(client)
        return client

    def output(self) -> str:
        try:
            return self.out_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def worker_pids(self) -> list[int]:
        """Live worker processes started by this ragexd (children)."""
        try:
            children = psutil.Process(self.pid).children(recursive=True)
        except psutil.Error:
            return []
        return [c.pid for c in children if _is_worker(c)]

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def close(self) -> None:
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
            for pid in workers:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        kill_workers_under(self.base)

    def cleanup(self) -> None:
        self.close()
        shutil.rmtree(self.base, ignore_errors=True)


def _is_worker(proc: psutil.Process) -> bool:
    try:
        cmd = proc.cmdline()
    except psutil.Error:
        return False
    return "ragexd.worker" in cmd and "serve" in cmd


def kill_workers_under(base: Path) -> None:
    """Kill any worker whose socket lives under ``base`` (a test's leftovers)."""
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if "ragexd.worker" in cmd and any(str(base) in part for part in cmd):
            try:
                proc.kill()
            except psutil.Error:
                pass


def wait_for(predicate: Any, timeout: float, interval: float = 0.1, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def pid_alive(pid: int) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def index_oneshot(env: dict[str, str], root: Path, timeout: float = 600) -> dict[str, Any]:
    """Index ``root`` without ragexd (the one-shot worker), so a later ragexd
    starts cold against an existing index, as after a login or a reboot."""
    import json

    from ragexd.paths import project_id_for

    index_dir = Path(env["RAGEX_DATA_DIR"]) / "projects" / project_id_for(root)
    request = Request(Op.INDEX, args={"rebuild": False, "paths": None}, project=str(root))
    out = subprocess.run([sys.executable, "-m", "ragexd.worker", "oneshot", "--root", str(root),
                          "--index-dir", str(index_dir)], input=json.dumps(request.to_wire()),
                         capture_output=True, text=True, env=env, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    reply = json.loads(out.stdout.strip().splitlines()[-1])
    assert reply["ok"], reply
    return reply["result"]
