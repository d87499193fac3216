"""One way to reach ragexd, shared by every front-end (the CLI and the MCP server).

Both front-ends need the same things from a request's journey, and they drifted
apart while each had its own copy: find a running ragexd or start one, notice a
stale ragexd left running from before an upgrade and replace it (as Bazel's
client replaces a server of another version, instead of only warning), give
every wait a deadline, retry what is safe to retry (including a request that
met ragexd on its way out), and, with the daemon disabled, run the request in
a one-shot worker — recording the project on disk exactly as ragexd would, so
that ``ls``, ``rm`` and project-root discovery see the index.

A front-end only turns its arguments into a request and renders the reply.
How it speaks to people differs (a terminal line, a log record), so a Session
takes two callbacks: ``inform`` for news worth a line (ragexd was started or
restarted) and ``warn`` for what the user should act on.

Cheap to import: ZeroMQ and the start-up code load only when a request is made.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ragexd import config as rconfig
from ragexd import paths
from ragexd.protocol import ErrorCode, Op, Progress, RagexError, Reply, Request

from . import __version__

if TYPE_CHECKING:
    from .client import DaemonClient

#: Deadlines, in seconds.  A one-shot worker loads the model for every request,
#: so its silence allowance is longer than a warm ragexd's first answer.
ONESHOT_TIMEOUT = 180.0
QUICK_TIMEOUT = 10.0
STOP_TIMEOUT = 45.0
#: An index (CLI or MCP) fails only after this much *silence*: every progress
#: message restarts the clock, so a long first index never trips it, a hung one
#: does.  The worker's own waits (ragexd/engine/bulk.py) stay well inside it.
INDEX_SILENCE_TIMEOUT = 300.0
#: How long a ragexd on its way out (SHUTDOWN elsewhere) may take to be gone
#: before a new one is started for our request.
GONE_TIMEOUT = 30.0

Say = Callable[[str], None]


def quiet(_text: str) -> None:
    """The default ``inform``: say nothing."""


def wait_daemon_gone(timeout: float, pid: int | None = None) -> bool:
    """True once nothing accepts connections on ragexd's socket and its lock is
    free, and, given its ``pid``, that process has exited too (within ``timeout``).

    The socket closes a moment before ragexd lets go of its lock, and the lock a
    moment before the process ends: a new ragexd started in between would exit
    "already running", and a script that checks for the process right after
    ``stop --all`` would still find it.
    """
    from ragexd.pidlock import lock_free

    from .client import daemon_alive

    end = time.monotonic() + timeout
    while True:
        if (not daemon_alive() and lock_free(paths.daemon_pid_path())
                and (pid is None or not paths.process_running(pid))):
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(0.02)


def maybe_stale() -> bool:
    """Could the running ragexd predate the installed code?

    True when ragexd's socket was bound before ``ragexd/__init__.py`` (which
    holds the version) was last written — an upgrade (or an edited checkout)
    since ragexd started.  Two ``stat`` calls instead of a HELLO round trip, so
    the usual warm search still costs exactly one request; only after an
    upgrade does the session ask ragexd its version.
    """
    import ragexd

    try:
        bound = os.stat(paths.daemon_socket_path()).st_mtime
        installed = os.stat(ragexd.__file__).st_mtime
    except OSError:
        return False
    return bound < installed


class Session:
    """A front-end's way to ragexd (or to a one-shot worker) for one process.

    Holds at most one DaemonClient (a ZeroMQ socket must stay on one thread:
    a multi-threaded front-end makes one Session per call, which is cheap).
    """

    def __init__(self, cfg: rconfig.Config, *, use_daemon: bool = True,
                 inform: Say = quiet, warn: Say = quiet) -> None:
        self.cfg = cfg
        #: False for ``--no-daemon``; the configuration can also disable ragexd.
        self.use_daemon = use_daemon
        self.inform = inform
        self.warn = warn
        self._client: DaemonClient | None = None

    # --- which way ---------------------------------------------------------------

    @property
    def daemon_enabled(self) -> bool:
        return self.use_daemon and self.cfg.enabled

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reaching ragexd -----------------------------------------------------------

    def connect(self, *, auto_start: bool | None = None) -> "DaemonClient":
        """A client to a running ragexd of our version, starting (or replacing) it
        when ``auto_start`` (default: the configuration) allows."""
        from .autostart import ensure_daemon
        from .client import DaemonClient

        if self._client is None:
            allowed = self.cfg.auto_start if auto_start is None else auto_start
            hello = ensure_daemon(auto_start=allowed)
            if hello is not None:
                self.check_version(hello)
                self.inform(f"started ragexd (pid {hello.get('pid', '?')})")
            elif maybe_stale():
                self._replace_if_stale(allowed)
            self._client = DaemonClient(on_dead=self._restart if allowed else None)
        return self._client

    def running(self) -> "DaemonClient | None":
        """A client if ragexd is running; never starts it."""
        from .client import DaemonClient, daemon_alive

        if self._client is None:
            if not daemon_alive():
                return None
            self._client = DaemonClient()
        return self._client

    def check_version(self, hello: dict[str, Any]) -> None:
        """Warn when ragexd is another version than ours (and is not ours to replace)."""
        theirs = str(hello.get("version", ""))
        if theirs and theirs != __version__:
            self.warn(f"warning: ragexd is version {theirs} but ragexctl is {__version__}: "
                      "a stale ragexd from before an upgrade is running. Restart it with "
                      "`ragexctl stop --all` (the next command starts the new one).")

    def _replace_if_stale(self, allowed: bool) -> None:
        """The Bazel client's handshake: ask the version; if it is not ours, stop
        the old ragexd cleanly (its workers with it) and start ours."""
        from .autostart import start_daemon
        from .client import DaemonClient

        probe = DaemonClient()
        try:
            hello = probe.call(Op.HELLO, timeout=QUICK_TIMEOUT,
                               attempt_timeout=QUICK_TIMEOUT / 3).raise_for_error()
            theirs = str(hello.get("version", ""))
            if not theirs or theirs == __version__:
                # Same version (an edited checkout, a reinstall): remember that this
                # ragexd was checked, so the next commands skip the round trip.
                try:
                    os.utime(paths.daemon_socket_path())
                except OSError:
                    pass
                return
            if not allowed:
                self.check_version(hello)  # auto-start is off: not ours to replace
                return
            pid = hello.get("pid", "?")
            self.inform(f"ragexd {theirs} (pid {pid}) predates ragexctl {__version__}: "
                        "restarting it")
            try:
                probe.call(Op.SHUTDOWN, timeout=QUICK_TIMEOUT,
                           attempt_timeout=QUICK_TIMEOUT / 3).raise_for_error()
            except RagexError as exc:
                if exc.code not in (ErrorCode.SHUTTING_DOWN, ErrorCode.WORKER_UNAVAILABLE):
                    raise
        finally:
            probe.close()
        if not wait_daemon_gone(STOP_TIMEOUT):
            raise RagexError(ErrorCode.RUNTIME_ERROR,
                             f"the stale ragexd {theirs} (pid {pid}) did not stop within "
                             f"{STOP_TIMEOUT:g} s; end it with `kill {pid}` and try again",
                             pid=pid)
        hello = start_daemon()
        self.inform(f"started ragexd {hello.get('version', '?')} "
                    f"(pid {hello.get('pid', '?')})")

    def _restart(self) -> bool:
        """ragexd vanished mid-request: bring it back so the request can be resent."""
        from .autostart import start_daemon

        try:
            start_daemon()
            return True
        except RagexError:
            return False

    # --- requests ------------------------------------------------------------------

    def quick_call(self, op: Op, args: dict[str, Any] | None = None, *,
                   project: str | None = None, timeout: float = QUICK_TIMEOUT,
                   client: "DaemonClient | None" = None) -> dict[str, Any]:
        """A ragexd-level request (resent on silence: these ops are idempotent);
        returns the result or raises its error."""
        client = client or self.connect()
        reply = client.call(op, args or {}, project=project, timeout=timeout,
                            attempt_timeout=timeout / 3)
        return reply.raise_for_error()

    def project_call(self, op: Op, args: dict[str, Any], root: Path, *, timeout: float,
                     on_progress: Callable[[Progress], None] | None = None) -> Reply:
        """SEARCH / INDEX / WORKER_STATUS through ragexd, or a one-shot worker.

        ``timeout`` is the longest *silence* tolerated: every progress message
        restarts it.  No deadline goes to ragexd: its deadline is absolute, and
        a first search may index for minutes while reporting progress.  A hung
        worker is ragexd's to detect (heartbeats), not this deadline's.
        """
        if not self.daemon_enabled:
            return self._oneshot(op, args, root, timeout=timeout, on_progress=on_progress)
        reply = self.connect().call(op, args, project=str(root), timeout=timeout,
                                    server_deadline=False, on_progress=on_progress)
        if (not reply.ok and reply.error is not None
                and reply.error.code is ErrorCode.SHUTTING_DOWN and self.cfg.auto_start
                and wait_daemon_gone(GONE_TIMEOUT)):
            # We caught ragexd on its way out (`stop --all` elsewhere): the user
            # asked for a search, not for that race; start a new one.
            self.close()
            reply = self.connect().call(op, args, project=str(root), timeout=timeout,
                                        server_deadline=False, on_progress=on_progress)
        return reply

    def _oneshot(self, op: Op, args: dict[str, Any], root: Path, *, timeout: float,
                 on_progress: Callable[[Progress], None] | None) -> Reply:
        from .oneshot import call_oneshot

        # ragexd records projects it serves; without it, record this one ourselves
        # so that `ls`, `rm` and project-root discovery know the index exists.
        index_dir = paths.index_dir(paths.project_id_for(root))
        try:
            paths.ProjectRecord.touch(root)
        except OSError as exc:
            raise RagexError(ErrorCode.INDEX_UNWRITABLE,
                             f"cannot write to the index directory {index_dir}: "
                             f"{exc.strerror or exc}") from None
        request = Request(op=op, args=args, project=str(root), client_version=__version__,
                          timeout=timeout)
        return call_oneshot(request, str(root), str(index_dir), timeout=timeout,
                            on_progress=on_progress, base=self.cfg.index_base)
