"""Helpers for the Docker runtime tests: a private ragexd, a protocol client, docker CLI.

Everything is real: ``python -m ragexd --foreground`` with ``RAGEX_RUNTIME=docker``
and its ragex directories under a short /tmp path (ipc:// paths are limited to
~107 bytes), real containers of the real worker image, a real ZeroMQ DEALER.
"""

from __future__ import annotations

import json
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

import zmq

from ragexd.protocol import Op, Progress, Reply, Request, decode, encode

REPO = Path(__file__).resolve().parents[2]
DOCKER = shutil.which("docker", path="/usr/bin") or shutil.which("docker") or "docker"

_DROP = ("XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME",
         "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM")


def short_tmp() -> Path:
    return Path(tempfile.mkdtemp(prefix="rx-"))


def make_env(base: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in _DROP and not k.startswith("RAGEX_")}
    env.update(RAGEX_RUNTIME_DIR=str(base / "run"), RAGEX_DATA_DIR=str(base / "data"),
               RAGEX_STATE_DIR=str(base / "state"), RAGEX_CONFIG_DIR=str(base / "config"),
               RAGEX_RUNTIME="docker", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               RAGEX_DAEMON_PRESTART="0", PYTHONPATH=str(REPO))
    image = os.environ.get("RAGEX_DOCKER_IMAGE")
    if image:
        env["RAGEX_DOCKER_IMAGE"] = image
    env.update(extra)
    return env


def write_tree(root: Path) -> Path:
    """A small project with distinctive functions to search for."""
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
    '''))
    (root / "text_utils.py").write_text(textwrap.dedent('''
        import re


        def slugify(title):
            """Turn a title into a lowercase URL slug."""
            return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    '''))
    return root


class Client:
    """A DEALER speaking the ragex protocol."""

    def __init__(self, endpoint: str) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)

    def call(self, op: Op, project: str | Path | None = None, timeout: float = 10.0,
             progress: list[Progress] | None = None, **args: Any) -> Reply:
        request = Request(op=op, args=args, project=str(project) if project else None)
        self.sock.send_multipart(encode(request))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sock.poll(int(left * 1000)):
                raise TimeoutError(f"no reply to {op.value} within {timeout} s")
            message = decode(self.sock.recv_multipart())
            if isinstance(message, Progress):
                if progress is not None:
                    progress.append(message)
                continue
            if isinstance(message, Reply) and message.id == request.id:
                return message

    def search(self, project: Path, query: str, timeout: float = 180.0, **extra: Any) -> Reply:
        return self.call(Op.SEARCH, project, timeout, query=query, limit=5, **extra)

    def index(self, project: Path, timeout: float = 300.0) -> Reply:
        return self.call(Op.INDEX, project, timeout, rebuild=False, paths=None)

    def status(self, project: Path | None = None, timeout: float = 10.0) -> dict[str, Any]:
        reply = self.call(Op.STATUS, project, timeout)
        assert reply.ok, reply.error
        return reply.result or {}

    def worker(self, project: Path) -> dict[str, Any]:
        workers = [w for w in self.status(project)["workers"]
                   if os.path.realpath(w["root"]) == os.path.realpath(project)]
        assert len(workers) == 1, workers
        return workers[0]

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


class Ragexd:
    """One ``python -m ragexd --foreground`` with its own directories."""

    def __init__(self, base: Path, **env: str) -> None:
        self.base = base
        self.env = make_env(base, **env)
        self.proc: subprocess.Popen[bytes] | None = None
        self.out_path = base / "ragexd.out"
        self.clients: list[Client] = []

    @property
    def socket(self) -> Path:
        return Path(self.env["RAGEX_RUNTIME_DIR"]) / "ragexd.sock"

    @property
    def endpoint(self) -> str:
        return "ipc://" + str(self.socket)

    @property
    def state_dir(self) -> Path:
        return Path(self.env["RAGEX_STATE_DIR"])

    def start(self, timeout: float = 60.0) -> "Ragexd":
        with open(self.out_path, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "ragexd", "--foreground"],
                                         env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                         cwd=str(REPO))
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

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 40.0) -> int | None:
        for client in self.clients:
            client.close()
        self.clients.clear()
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def docker(*args: str, check: bool = True, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({proc.returncode}): "
                             f"{proc.stderr.strip()}")
    return proc


def inspect(ident: str) -> dict[str, Any]:
    return json.loads(docker("inspect", ident).stdout)[0]


def containers(**labels: str) -> list[str]:
    """Ids of all containers (running or not) carrying these labels."""
    args = ["ps", "-aq", "--no-trunc"]
    for key, value in labels.items():
        args += ["--filter", f"label={key}={value}"]
    return docker(*args).stdout.split()


def remove_containers_under(base: Path) -> None:
    """Remove every ragex container whose project or sockets live under ``base``."""
    for cid in containers(**{"ragex.managed": "1"}):
        try:
            labels = inspect(cid)["Config"]["Labels"] or {}
        except (AssertionError, IndexError, KeyError):
            continue
        if any(str(v).startswith(str(base)) for v in labels.values()):
            docker("rm", "-f", cid, check=False)


def wait_for(predicate: Any, timeout: float, interval: float = 0.2, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")
