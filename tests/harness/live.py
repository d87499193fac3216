"""A private ragexd started the way users get it, and called the way ragexctl calls it.

Where ``RagexInstance`` holds ragexd to its wire contract with a bare protocol
client, ``LiveRagex`` exercises the whole user path: ragexctl's auto-start,
ragexctl's own client (deadlines, progress), real workers with the real model
and a real inotify watcher.  The freshness and MCP suites use it.  While open,
this process's environment points at it (ragexctl's client reads its socket
path from there).  Teardown sends SHUTDOWN, then kills whatever process still
carries this environment's runtime dir.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

from ragexd.protocol import Op, RagexError

from .env import make_env, short_tmp
from .procs import kill_pids, pid_alive, pids_in_env


class LiveRagex:
    """One ragexd for a test module, auto-started by ragexctl."""

    def __init__(self, **extra_env: str) -> None:
        self.base = short_tmp()
        self.env = make_env(self.base, session=True, RAGEX_DAEMON_PRESTART="0",
                            TOKENIZERS_PARALLELISM="false", ANONYMIZED_TELEMETRY="False",
                            **extra_env)
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
                while time.monotonic() < deadline and self.daemon_pid \
                        and pid_alive(self.daemon_pid):
                    time.sleep(0.1)
        finally:
            left = kill_pids(self.leftovers())
            if self._saved is not None:
                os.environ.clear()
                os.environ.update(self._saved)
                self._saved = None
            shutil.rmtree(self.base, ignore_errors=True)
        return left

    def leftovers(self) -> list[int]:
        """Processes (ragexd, workers, MCP servers) started with this runtime dir."""
        return pids_in_env(Path(self.env["RAGEX_RUNTIME_DIR"]))

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


@contextlib.contextmanager
def live_ragex(**extra_env: str) -> Iterator[LiveRagex]:
    """A ``LiveRagex`` for the ``with`` block; afterwards no process of its
    environment may be left (SHUTDOWN must have stopped them all)."""
    rx = LiveRagex(**extra_env).open()
    try:
        yield rx
    finally:
        left = rx.close()
    assert not left, f"processes left after SHUTDOWN: {left}"
