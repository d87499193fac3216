"""The runtime interface: how ragexd starts, watches and stops a worker.

A runtime hosts workers (local processes, Docker containers); the supervisor
owns policy (when to start, backoff, crash loops, idle timeouts) and speaks to
workers only through the protocol on their socket.  A runtime therefore never
sees a request: it starts a worker bound to ``spec.endpoint``, reports when it
has exited and why, and stops it.
"""

from __future__ import annotations

import abc
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..settings import SETTINGS

WORKER_SOCKET_NAME = "worker.sock"
#: The worker reads the limit it is held to as its own ``[daemon] memory_limit``.
MEMORY_LIMIT_ENV = next(s.env for s in SETTINGS if s.field == "memory_limit")


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a runtime needs to start one project's worker."""

    project_id: str
    root: Path                 # project root on the host (real path)
    index_dir: Path            # the project's index directory on the host (read-write)
    socket_dir: Path           # host directory for the worker's ipc socket (0700, ours)
    log_path: Path             # where the worker's stdout/stderr go (process runtime)
    memory_limit: int          # bytes; 0 = unlimited
    cpus: float = 0.0          # 0 = unlimited
    watch: bool = True         # live re-indexing on file changes
    base: str = ""             # [index] base: a snapshot (or directory) to start from; "" = none
    env: tuple[tuple[str, str], ...] = ()   # extra environment for the worker

    @property
    def socket_path(self) -> Path:
        return self.socket_dir / WORKER_SOCKET_NAME

    @property
    def endpoint(self) -> str:
        """The endpoint ragexd connects to (host side)."""
        return "ipc://" + str(self.socket_path)

    def limit_env(self) -> dict[str, str]:
        """The limits the runtime holds this worker to, in the worker's own settings,
        for every runtime alike: the worker plans a bulk-embedding child
        (engine/bulk.py) only if the child fits under them, whether ragexd counts its
        process tree (process runtime) or the kernel's cgroup does (Docker).  Applied
        last, over ``env``: the limit is the runtime's, not a setting to override."""
        return {MEMORY_LIMIT_ENV: str(self.memory_limit)}

    def config_hash(self, extra: str = "") -> str:
        """Hash of everything that, changed, requires a new worker (Docker adoption)."""
        data = json.dumps({"root": str(self.root), "index": str(self.index_dir),
                           "sock": str(self.socket_dir), "mem": self.memory_limit,
                           "cpus": self.cpus, "watch": self.watch, "env": list(self.env),
                           "extra": extra}, sort_keys=True)
        return hashlib.sha256(data.encode()).hexdigest()[:16]


@dataclass
class ExitInfo:
    """Why a worker is gone."""

    exit_code: int | None          # None when unknown (adopted worker, vanished container)
    reason: str                    # "exited" | "crashed" | "killed" | "memory_limit" | "stopped"
    message: str                   # a sentence for `status` and error replies
    log_tail: list[str] = field(default_factory=list)

    @property
    def memory_limit_exceeded(self) -> bool:
        return self.reason == "memory_limit"


@dataclass
class WorkerHandle:
    """A running (or recently running) worker, as a runtime knows it."""

    spec: WorkerSpec
    runtime: str                   # "process" | "docker"
    ident: str                     # pid for processes, container id for Docker
    started_at: float
    pid: int | None = None         # host pid of the worker's main process, when known
    adopted: bool = False          # found running when ragexd started


class Runtime(abc.ABC):
    """Hosts workers.  Implementations must be safe to call from ragexd's main loop:
    every method returns promptly (no method may block for more than a few seconds,
    except ``stop``, bounded by its timeout)."""

    name: str = "abstract"

    @abc.abstractmethod
    def start(self, spec: WorkerSpec) -> WorkerHandle:
        """Start a worker that binds ``spec.endpoint``.  Removes a stale socket first.
        Raises RuntimeError with a clear sentence when it cannot."""

    @abc.abstractmethod
    def poll(self, handle: WorkerHandle) -> ExitInfo | None:
        """None while the worker runs; why it stopped once it has.  The process
        runtime also enforces the memory limit here (stopping the worker and
        answering reason="memory_limit")."""

    @abc.abstractmethod
    def stop(self, handle: WorkerHandle, timeout: float = 10.0) -> ExitInfo:
        """Stop the worker: SIGTERM, then SIGKILL after ``timeout``.  Idempotent."""

    @abc.abstractmethod
    def memory(self, handle: WorkerHandle) -> int | None:
        """Resident memory in bytes, or None when unknown."""

    @abc.abstractmethod
    def log_tail(self, handle: WorkerHandle, lines: int = 20) -> list[str]:
        """The last lines the worker wrote, for crash reports and `ragexctl logs`."""

    def adopt_or_reap(self, wanted: dict[str, WorkerSpec]) -> list[WorkerHandle]:
        """At ragexd start: adopt workers left by a previous ragexd whose spec still
        matches ``wanted`` (project id → spec), stop and remove every other one.
        Returns the adopted handles.  Default: nothing to adopt."""
        return []

    def describe(self) -> dict[str, object]:
        """For `ragexctl status`: which runtime, and why it was chosen."""
        return {"runtime": self.name}

    def close(self) -> None:
        """Release runtime resources (event threads, clients)."""
