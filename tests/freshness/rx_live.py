"""A private, real ragexd for a test module, and a protocol client to it.

Shared by tests/freshness and tests/mcp_server (which loads this file by path).  Real
processes throughout: ``python -m ragexd --foreground`` started the way users
get it (ragexctl's auto-start), real workers with the real model and a real
inotify watcher.  The ragex directories live under a short /tmp path (ipc://
socket paths are limited to ~107 bytes).  Teardown sends SHUTDOWN, then kills
whatever process still carries this environment's runtime dir.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[2]
# The source tree first: an editable install made before ragexctl/ had an
# __init__ maps it as a namespace package, which would hide ragexctl.__version__.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from ragexd.protocol import Op, RagexError  # noqa: E402

_DROP_PREFIXES = ("RAGEX_", "XDG_")
_DROP = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "DOCKER_HOST")


def base_env(base: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_DROP_PREFIXES) and k not in _DROP}
    env.update(RAGEX_RUNTIME_DIR=str(base / "run"), RAGEX_DATA_DIR=str(base / "data"),
               RAGEX_STATE_DIR=str(base / "state"), RAGEX_CONFIG_DIR=str(base / "config"),
               RAGEX_RUNTIME="process", RAGEX_DAEMON_PRESTART="0",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               ANONYMIZED_TELEMETRY="False",
               PYTHONPATH=str(REPO) + (os.pathsep + os.environ["PYTHONPATH"]
                                       if os.environ.get("PYTHONPATH") else ""))
    env.update(extra)
    return env


class LiveRagex:
    """One ragexd for a test module.  While open, this process's environment
    points at it (ragexctl's client reads its socket path from there)."""

    def __init__(self, **extra_env: str) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="rx-", dir="/tmp"))
        (self.base / "run").mkdir(mode=0o700)
        self.env = base_env(self.base, **extra_env)
        self._saved: dict[str, str] | None = None
        self.daemon_pid: int | None = None

    # --- lifecycle -----------------------------------------------------------------

    def open(self) -> "LiveRagex":
        self._saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(self.env)
        from ragexctl.autostart import start_daemon

        try:
            hello = start_daemon(deadline=30.0)
        except BaseException:
            self.close()  # restore the environment, kill whatever started
            raise
        self.daemon_pid = int(hello.get("pid") or 0) or None
        return self

    def close(self) -> list[int]:
        """Stop ragexd and its workers; returns pids that had to be killed."""
        try:
            from ragexctl.client import daemon_alive

            if daemon_alive():
                try:
                    self.call(Op.SHUTDOWN, timeout=30.0)
                except RagexError:
                    pass
                deadline = time.monotonic() + 30.0
                while time.monotonic() < deadline and self.daemon_pid and _alive(self.daemon_pid):
                    time.sleep(0.1)
        finally:
            left = self.leftovers()
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if self._saved is not None:
                os.environ.clear()
                os.environ.update(self._saved)
                self._saved = None
            shutil.rmtree(self.base, ignore_errors=True)
        return left

    def leftovers(self) -> list[int]:
        """Processes (ragexd, workers, MCP servers) started with this runtime dir."""
        marker = f"RAGEX_RUNTIME_DIR={self.env['RAGEX_RUNTIME_DIR']}".encode()
        out = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as fh:
                    environ = fh.read().split(b"\0")
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    zombie = fh.read().rsplit(b")", 1)[-1].split()[0] == b"Z"
            except OSError:
                continue
            if marker in environ and not zombie:
                out.append(int(entry))
        return out

    # --- requests ------------------------------------------------------------------

    def call(self, op: Op, args: dict[str, Any] | None = None, project: Path | str | None = None,
             *, timeout: float = 60.0, on_progress: Callable[[Any], None] | None = None
             ) -> dict[str, Any]:
        from ragexctl.client import DaemonClient

        client = DaemonClient()
        try:
            reply = client.call(op, args or {}, project=str(project) if project else None,
                                timeout=timeout + 5, server_timeout=timeout,
                                on_progress=on_progress)
        finally:
            client.close()
        return reply.raise_for_error()

    def search(self, project: Path, query: str, mode: str = "auto", limit: int = 20,
               **more: Any) -> list[dict[str, Any]]:
        args = {"query": query, "mode": mode, "limit": limit, **more}
        return list(self.call(Op.SEARCH, args, project)["hits"])

    def index(self, project: Path, rebuild: bool = False) -> dict[str, Any]:
        return self.call(Op.INDEX, {"rebuild": rebuild, "paths": None}, project,
                         timeout=300.0)["summary"]

    def worker_status(self, project: Path) -> dict[str, Any]:
        return self.call(Op.WORKER_STATUS, {}, project)

    def workers(self, project: Path | None = None) -> list[dict[str, Any]]:
        return list(self.call(Op.STATUS, {}, project, timeout=10.0).get("workers") or [])

    def wait_watching(self, project: Path, timeout: float = 120.0) -> dict[str, Any]:
        """Until the project's worker watches the tree and has nothing pending."""
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.worker_status(project)
            index = status.get("index") or {}
            if status.get("watch") and not status.get("indexing") \
                    and not index.get("pending_files"):
                return status
            time.sleep(0.1)
        raise AssertionError(f"the worker never watched {project}: {status}")

    def wait_settled(self, project: Path, timeout: float = 60.0) -> dict[str, Any]:
        """Until nothing is pending or being indexed (checked twice in a row, across
        one debounce period, so a batch about to flush is not missed)."""
        deadline = time.monotonic() + timeout
        calm = 0
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.worker_status(project)
            index = status.get("index") or {}
            if not status.get("indexing") and not index.get("pending_files"):
                calm += 1
                if calm >= 2:
                    return status
            else:
                calm = 0
            time.sleep(0.4)
        raise AssertionError(f"{project} never settled: {status}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError:
        return False


def poll(fn: Callable[[], Any], timeout: float, interval: float = 0.03) -> tuple[Any, float]:
    """Call ``fn`` until it returns something truthy; (value, seconds waited).
    Raises AssertionError with the last value when the time runs out."""
    t0 = time.monotonic()
    last: Any = None
    while True:
        last = fn()
        waited = time.monotonic() - t0
        if last:
            return last, waited
        if waited > timeout:
            raise AssertionError(f"not seen within {timeout:g} s (last: {last!r})")
        time.sleep(interval)


def keys_of(hits: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(h["path"], h["line"], h["end_line"], h["kind"], h["name"]) for h in hits]


def assert_no_duplicates(hits: list[dict[str, Any]]) -> None:
    keys = keys_of(hits)
    dupes = {k for k in keys if keys.count(k) > 1}
    assert not dupes, f"duplicate results: {sorted(dupes)}"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def write(path: Path, text: str) -> float:
    """Write like an editor's save; returns the monotonic time the file was closed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(textwrap.dedent(text).lstrip("\n"))
    return time.monotonic()


def make_project(root: Path) -> Path:
    """A small real project with distinctive functions to search for."""
    (root / ".git").mkdir(parents=True)
    write(root / ".gitignore", "generated/\n")
    write(root / "billing.py", '''
        def compute_invoice_total(items, tax_rate):
            """Sum the line items of an invoice and add sales tax."""
            subtotal = sum(item.price * item.quantity for item in items)
            return round(subtotal * (1 + tax_rate), 2)
        ''')
    write(root / "net" / "retry.py", '''
        import time


        def retry_with_backoff(fn, attempts=5):
            """Call fn, retrying failures with exponential backoff between attempts."""
            delay = 0.5
            for _ in range(attempts):
                try:
                    return fn()
                except OSError:
                    time.sleep(delay)
                    delay *= 2
            raise RuntimeError("gave up")
        ''')
    write(root / "text" / "slug.py", '''
        import re


        def slugify_title(title):
            """Turn an article title into a lowercase URL slug with dashes."""
            return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
        ''')
    write(root / "shapes.py", '''
        import math


        class Circle:
            """A circle given by its radius."""

            def __init__(self, radius):
                self.radius = radius

            def area(self):
                """Area of the circle: pi times the radius squared."""
                return math.pi * self.radius ** 2
        ''')
    return root
