"""One project as ragexd sees it: its worker, its queue, its history.

The daemon loop owns every ``Project`` and is the only code that mutates one,
so there are no locks here.  Everything about one running worker lives in an
``Incarnation``, made new at each start and dropped when that worker exits, so
nothing is reset by hand and a late callback for an earlier worker is told
apart by identity.  The state is derived, never stored twice: from the
incarnation while one exists, else from the outcome of the last one.  A
project moves through these states::

    stopped/idle-stopped/crashed/memory-limit --request--> starting --HELLO--> ready
    ready --idle timeout / stop / shutdown--> stopping --exit--> idle-stopped | stopped
    starting|ready --dies--> crashed (restart with backoff) | memory-limit | crash-loop

``indexing`` is not a state of its own: it is ``ready`` while the worker says
it is indexing (shown by ``display_state``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import zmq

from ..protocol import Request
from ..runtimes.base import ExitInfo, WorkerHandle, WorkerSpec
from .backoff import RestartTracker

STARTING = "starting"
READY = "ready"
INDEXING = "indexing"
STOPPING = "stopping"
IDLE_STOPPED = "idle-stopped"
STOPPED = "stopped"
CRASHED = "crashed"
CRASH_LOOP = "crash-loop"
MEMORY_LIMIT = "memory-limit"

#: Why ragexd itself stopped a worker (``Incarnation.stop_reason``).
STOP_IDLE = "idle"
STOP_BUDGET = "budget"
STOP_USER = "user"
STOP_SHUTDOWN = "shutdown"
STOP_REMOVE = "remove"
STOP_HUNG = "hung"          # killed for not answering heartbeats: counts as a crash


@dataclass
class Pending:
    """A client request ragexd has accepted for a worker and not yet answered."""

    envelope: list[bytes]     # the client's routing identity (and REQ delimiter, if any)
    request: Request
    deadline: float | None    # monotonic; from Request.timeout
    retried: bool = False     # already re-sent once after a worker crash
    wid: str = ""             # the id used on the worker socket


@dataclass
class Incarnation:
    """One start of a project's worker: created by ``attach``, dropped at its exit."""

    handle: WorkerHandle
    dealer: zmq.Socket
    started_mono: float                   # monotonic
    ready: bool = False                   # answered HELLO
    ready_after: float | None = None      # seconds from start to HELLO answered

    #: worker id -> the client request it forwards
    inflight: dict[str, Pending] = field(default_factory=dict)
    #: worker id -> (kind: "hello"|"ping"|"status"|"shutdown", monotonic time sent)
    internal: dict[str, tuple[str, float]] = field(default_factory=dict)

    # Health.
    last_seen: float = 0.0                # monotonic: last message from the worker
    next_ping: float = 0.0
    ping_sent_at: float | None = None
    last_ping: dict[str, Any] | None = None
    check_pending: bool = False           # a runtime.poll job is running
    next_check: float = 0.0
    rss: int | None = None
    indexing: bool = False                # from the newest PING / WORKER_STATUS answer
    indexing_sent: float = -1e9           # when the question behind ``indexing`` was sent

    # Cached WORKER_STATUS answer (for STATUS, which must never wait on a worker).
    last_status: dict[str, Any] | None = None
    status_at: float = -1e9
    status_sent_at: float | None = None   # the newest unanswered WORKER_STATUS
    status_cached_sent: float = -1e9      # when the question behind ``last_status`` was sent

    # Stopping.
    stop_reason: str | None = None
    stop_deadline: float | None = None
    force_stop_pending: bool = False
    hung_message: str = ""

    @property
    def serving(self) -> bool:
        """Ready and not being stopped: requests may be sent to it."""
        return self.ready and self.stop_reason is None

    @property
    def status_pending(self) -> bool:
        return self.status_sent_at is not None


@dataclass
class Project:
    id: str
    root: str
    spec: WorkerSpec
    restarts: RestartTracker
    #: The running worker, if any.
    worker: Incarnation | None = None
    #: How the last worker ended (or STOPPED): the state while none runs.
    outcome: str = STOPPED

    # Requests.
    queue: deque[Pending] = field(default_factory=deque)      # waiting for a ready worker
    last_activity: float = 0.0            # monotonic: last completed request (or start)
    last_touch: float = -1e9              # monotonic: last ProjectRecord/recent.json update
    index_size: tuple[float, int | None] = (-1e9, None)   # (monotonic time, bytes) cache

    # Starting.
    start_pending: bool = False           # a runtime.start job is running
    start_at: float | None = None         # a start is scheduled (backoff) at this time
    stop_after_start: str | None = None   # stop as soon as the pending start completes

    # Stopping.
    stop_waiters: list[Callable[["Project"], None]] = field(default_factory=list)
    removing: bool = False

    # History.
    last_error: str = ""
    last_exit: ExitInfo | None = None
    restart_count: int = 0

    @property
    def state(self) -> str:
        worker = self.worker
        if worker is not None:
            if worker.stop_reason is not None:
                return STOPPING
            return READY if worker.ready else STARTING
        return STARTING if self.start_pending else self.outcome

    @property
    def busy(self) -> bool:
        """A worker runs or is being started: there is something to stop."""
        return self.worker is not None or self.start_pending

    @property
    def inflight(self) -> dict[str, Pending]:
        return self.worker.inflight if self.worker is not None else {}

    @property
    def load(self) -> int:
        """In-flight plus queued client requests: what the queue bound counts."""
        return len(self.queue) + len(self.inflight)

    def display_state(self) -> str:
        if self.worker is not None and self.worker.serving and self.worker.indexing:
            return INDEXING
        return self.state
