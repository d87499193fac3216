"""Talking to ragexd: one DEALER socket, lazy-pirate retries, hard deadlines.

The client must never hang: every wait has a deadline, progress messages
(a long index) push the deadline back, and a ragexd that died or was replaced
mid-request is noticed at once (ZeroMQ connection events, plus a liveness
check every second) instead of at the end of the timeout.  Requests that
change nothing (``IDEMPOTENT_OPS``) are resent on a fresh socket after a
timeout or a lost ragexd (the "lazy pirate" pattern of the ZeroMQ guide); an
INDEX is never resent, because running it twice is not harmless.
"""

from __future__ import annotations

import _socket  # the C module: socket.py's enum wrappers cost milliseconds per run
import errno
import os
import time
from typing import Callable

import zmq

from ragexd import paths
from ragexd.protocol import (MAX_MESSAGE_BYTES, WORKER_OPS, ErrorCode, Op, Progress,
                             RagexError, Reply, Request, decode, encode, split_envelope)

from . import __version__

ProgressCallback = Callable[[Progress], None]

#: How often a long wait checks that ragexd is still there.
LIVENESS_INTERVAL = 1.0
#: After losing the connection, how long a new ragexd may take to appear
#: before ours is declared dead (and, with auto-start, started again).
RESTART_GRACE = 1.0
#: A ragexd whose ZeroMQ handshake has not completed after this long is frozen
#: (stopped by a signal, or wedged below Python): ZeroMQ's I/O thread answers
#: handshakes even while ragexd's loop is busy, so a merely slow ragexd passes.
HANDSHAKE_GRACE = 5.0


def daemon_pid() -> int | None:
    """The pid ragexd wrote in its lock file, if that process still exists.

    Lets a message about an unanswered request name the process (and tell a
    frozen ragexd from a stopped one) without a round trip.
    """
    pid = paths.read_pid(paths.daemon_pid_path())
    if pid is None or pid <= 0:
        return None
    return pid if paths.process_running(pid) else None


def daemon_alive(socket_path: str | None = None) -> bool:
    """Is something accepting connections on ragexd's socket?

    A plain AF_UNIX connect, no protocol round trip: it costs ~0.1 ms, so every
    command can afford it, and it tells a live ragexd from a stale socket file
    left by a killed one (connection refused) — which ZeroMQ alone cannot: its
    connect "succeeds" and queues our request forever.
    """
    path = socket_path or str(paths.daemon_socket_path())
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(1.0)
        sock.connect(path)
        return True
    except OSError as exc:
        if exc.errno in (errno.EAGAIN,):  # backlog full: alive, just busy
            return True
        return False
    finally:
        sock.close()


class DaemonClient:
    """A connection to ragexd.  Cheap to create; one per ragexctl process."""

    def __init__(self, endpoint: str | None = None, *,
                 socket_path: str | None = None,
                 on_dead: Callable[[], bool] | None = None) -> None:
        self.endpoint = endpoint or paths.daemon_endpoint()
        self.socket_path = socket_path or (self.endpoint[len("ipc://"):]
                                           if self.endpoint.startswith("ipc://") else None)
        #: Called when ragexd is found gone mid-request; returns True when it has
        #: been brought back (auto-start), so an idempotent request can be resent.
        self.on_dead = on_dead
        self.ctx = zmq.Context.instance()
        self.sock: zmq.Socket | None = None
        self.monitor: zmq.Socket | None = None
        self.connected = False
        #: The ZMTP handshake with ragexd completed: something is answering.
        self.handshaken = False

    # --- socket --------------------------------------------------------------------

    def _connect(self) -> zmq.Socket:
        if self.sock is None:
            sock = self.ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
            # Connection events tell us at once when ragexd goes away or is
            # replaced mid-request (our request then died with it), instead of
            # after a timeout; ZeroMQ would silently reconnect to a new ragexd.
            self.monitor = sock.get_monitor_socket(
                zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED)
            # A frozen ragexd never completes the handshake; ZeroMQ would drop
            # such a connection after 30 s and make it look like a ragexd that
            # went away.  We decide ourselves (HANDSHAKE_GRACE) and say "frozen".
            sock.setsockopt(zmq.HANDSHAKE_IVL, 0)
            sock.connect(self.endpoint)
            self.sock = sock
            self.connected = False
            self.handshaken = False
        return self.sock

    def _reset(self) -> None:
        """Lazy pirate: a socket that timed out may hold a half-sent request or
        a late reply; the only clean state is a new socket (new identity)."""
        if self.monitor is not None:
            if self.sock is not None:
                # Stop the events first: libzmq sends them from its I/O thread
                # without DONTWAIT, so an event for a closed monitor socket
                # (ragexd leaving just now) hangs that thread, and with it
                # every later connect in this process.
                try:
                    self.sock.disable_monitor()
                except zmq.ZMQError:
                    pass
            self.monitor.close(linger=0)
            self.monitor = None
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None

    def close(self) -> None:
        self._reset()

    def alive(self) -> bool:
        if self.socket_path is None:
            return True
        return daemon_alive(self.socket_path)

    def _lost_connection(self) -> bool:
        """Drain connection events; True when an established connection dropped."""
        lost = False
        while self.monitor is not None and self.monitor.poll(0):
            frames = self.monitor.recv_multipart()
            event = int.from_bytes(frames[0][:2], "little")
            if event == zmq.EVENT_CONNECTED:
                self.connected = True
            elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.handshaken = True
            elif event == zmq.EVENT_DISCONNECTED and self.connected:
                lost = True
                self.connected = False
        return lost

    # --- requests ------------------------------------------------------------------

    def call(self, op: Op, args: dict | None = None, project: str | None = None, *,
             timeout: float = 10.0, attempt_timeout: float | None = None,
             retries: int = 2, on_progress: ProgressCallback | None = None,
             server_deadline: bool = True, server_timeout: float | None = None) -> Reply:
        """Send one request; return its Reply (which may carry an error).

        ``timeout`` bounds the call (each Progress message restarts the clock, so
        a long index fails only when it goes silent).  With ``attempt_timeout``,
        an idempotent request is resent on a fresh socket after that much silence
        (lazy pirate) while the budget lasts.  Without it (searches), a silent
        but alive ragexd is simply waited for: resending to a worker that is
        merely busy loading its model would double its work.  In both cases a
        request that was certainly lost — ragexd gone, or replaced by a new
        ragexd — is resent at once (idempotent ops only).  Raises RagexError
        (TIMEOUT / WORKER_UNAVAILABLE) when no reply can be had.

        ``server_deadline`` sends the timeout to ragexd as the request's deadline
        (it then answers TIMEOUT itself; ``server_timeout`` sends another value).
        Requests that may stream progress for longer than any fixed deadline (an
        index, a first search that indexes) go without one: ragexd's deadline is
        absolute, while ours restarts with every progress message.
        """
        request = Request(op=op, args=args or {}, project=project,
                          client_version=__version__,
                          timeout=(server_timeout if server_timeout is not None
                                   else timeout if server_deadline else None))
        idempotent = request.idempotent
        attempts = 1 + (retries if idempotent else 0)
        if not idempotent:
            attempt_timeout = None  # never resent, so its one attempt gets the whole budget
        per_attempt = min(timeout, attempt_timeout) if attempt_timeout else timeout
        overall = time.monotonic() + timeout
        # Across attempts: every fresh socket to a frozen ragexd stalls the same way.
        grace = max(1.0, min(HANDSHAKE_GRACE, timeout / 2))
        handshake_by = time.monotonic() + grace
        outcome: Reply | str = "timeout"
        backoff = 0.1
        attempt = 0
        while attempt < attempts:
            attempt += 1
            sock = self._connect()
            sock.send_multipart(encode(request))
            outcome = self._await(request.id, sock, per_attempt, overall, on_progress,
                                  handshake_by)
            if isinstance(outcome, Reply):
                err = outcome.error
                if (idempotent and not outcome.ok and err is not None
                        and err.code is ErrorCode.WORKER_UNAVAILABLE
                        and time.monotonic() + backoff < overall):
                    # The worker is (re)starting: ragexd says so instead of waiting.
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                    attempts += 1  # not a lost request: does not use up a retry
                    continue
                return outcome
            # No reply: the request is lost, or still running somewhere.
            self._reset()
            if not idempotent:
                break
            if outcome == "frozen":
                break  # resending to a process that answers nothing cannot help
            if outcome == "timeout":
                if attempt_timeout is None or time.monotonic() >= overall:
                    break
                continue  # the same ragexd: its handshake grace runs on
            if outcome == "dead":
                if not (self.on_dead and self.on_dead()):
                    break
                # ragexd is back: the fresh attempt gets a full allowance.
                overall = max(overall, time.monotonic() + per_attempt)
            # "dead" and back, or "restarted" (a new ragexd already listens): resend;
            # the new process gets its own grace to complete the handshake.
            handshake_by = time.monotonic() + grace
        pid = daemon_pid()
        if outcome == "frozen":
            raise RagexError(ErrorCode.TIMEOUT, frozen_message(pid, grace),
                             timeout=grace, pid=pid, frozen=True)
        not_resent = ("" if idempotent else
                      " (not resent: repeating it is not harmless; run it again)")
        if outcome == "restarted":
            raise RagexError(ErrorCode.WORKER_UNAVAILABLE,
                             f"ragexd was replaced by another one while handling the "
                             f"{op.value} request{not_resent}. See `ragexctl logs`.", pid=pid)
        if outcome == "dead" and pid is None:
            raise RagexError(ErrorCode.WORKER_UNAVAILABLE,
                             f"ragexd stopped while handling the {op.value} request"
                             f"{not_resent}. See `ragexctl logs`.")
        if outcome == "dead":
            # Its process lives on: never say "stopped" about a ragexd that has not.
            raise RagexError(ErrorCode.WORKER_UNAVAILABLE,
                             f"ragexd (pid {pid}) no longer accepts connections on its socket "
                             f"but is still running; it was handling the {op.value} request"
                             f"{not_resent}. See `ragexctl doctor`.", pid=pid)
        what = "ragexd" if op not in WORKER_OPS else \
            "ragexd (or the project's worker)"
        if pid is not None:
            what = what.replace("ragexd", f"ragexd (pid {pid})", 1)
        raise RagexError(ErrorCode.TIMEOUT,
                         f"{what} did not answer the {op.value} request within "
                         f"{_fmt_s(per_attempt)}"
                         + (f" ({attempt} attempts)" if attempt > 1 else "")
                         + ". Try again with a larger --timeout, or see `ragexctl status`.",
                         timeout=per_attempt, attempts=attempt, pid=pid)

    def _await(self, request_id: str, sock: zmq.Socket, per_attempt: float, overall: float,
               on_progress: ProgressCallback | None, handshake_by: float) -> Reply | str:
        """Wait for our reply.  Returns the Reply, "timeout", "dead" (nothing
        listens on the socket any more), "restarted" (another ragexd does) or
        "frozen" (a process accepts connections but never completes the
        ZeroMQ handshake)."""
        deadline = min(time.monotonic() + per_attempt, overall)
        next_check = time.monotonic() + min(LIVENESS_INTERVAL,
                                            max(0.0, handshake_by - time.monotonic()))
        sent_to = daemon_pid()   # a different pid later: replaced, never "frozen"
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        if self.monitor is not None:
            poller.register(self.monitor, zmq.POLLIN)
        while True:
            now = time.monotonic()
            if now >= deadline:
                return "timeout"
            wait = min(deadline, next_check) - now
            events = dict(poller.poll(max(1, int(wait * 1000))))
            if sock in events:
                frames = sock.recv_multipart()
                _, body = split_envelope(frames)
                message = decode(body)  # RagexError (bad tag, version mismatch) propagates
                if isinstance(message, Progress):
                    if message.id == request_id:
                        # A sign of life: the clock restarts (past the overall budget
                        # too — a long index is fine as long as it keeps talking).
                        deadline = time.monotonic() + per_attempt
                        if on_progress is not None:
                            on_progress(message)
                    continue
                if isinstance(message, Reply):
                    if message.id == request_id or (not message.ok and message.id == ""):
                        # An id-less error is ragexd refusing a frame it could not
                        # parse — necessarily ours: we are its only peer on this socket.
                        return message
                continue  # a late reply to an earlier attempt, or noise: not ours
            if self.monitor is not None and self.monitor in events and self._lost_connection():
                return self._after_lost_connection()
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + LIVENESS_INTERVAL
                if not self.alive():
                    return "dead"
                if self.monitor is not None and not self.handshaken:
                    # drain: the handshake event (or a disconnect) may be queued
                    if self._lost_connection():
                        return self._after_lost_connection()
                    if not self.handshaken and time.monotonic() >= handshake_by:
                        now_pid = daemon_pid()
                        if sent_to is not None and now_pid != sent_to:
                            # The ragexd we asked died and another one is starting:
                            # our request went with the first, it is not frozen.
                            return "restarted"
                        return "frozen"

    def _after_lost_connection(self) -> str:
        """Whatever ragexd had of our request is gone with that connection.  A
        replacement may be binding right now: give it a moment before concluding
        that nobody is there ("dead") rather than "restarted"."""
        settle = time.monotonic() + RESTART_GRACE
        while not self.alive():
            if time.monotonic() >= settle:
                return "dead"
            time.sleep(0.02)
        return "restarted"


def frozen_message(pid: int | None, waited: float) -> str:
    """The sentence for a ragexd that accepts connections but answers nothing:
    which process, since when it is silent, and how to end it."""
    if not pid:
        return (f"ragexd did not answer within {_fmt_s(waited)}: something accepts "
                "connections on its socket but completes no ZeroMQ handshake. "
                "See `ragexctl doctor`.")
    state = _process_state(pid)
    since = _silent_since()
    return (f"ragexd did not answer within {_fmt_s(waited)} (pid {pid}): it is running but "
            f"frozen{f', {state}' if state else ''}"
            f"{f'; silent since {since}' if since else ''}. "
            f"`kill -CONT {pid}` resumes a stopped process; `kill -9 {pid}` ends it "
            "(the next command starts a new ragexd).")


def _process_state(pid: int) -> str:
    """Why a process may not run, from Linux's /proc (empty elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError, UnicodeDecodeError):
        return ""
    return {"T": "stopped by a signal (SIGSTOP or Ctrl-Z)", "t": "stopped by a debugger",
            "D": "blocked in the kernel (disk or network I/O)", "Z": "a zombie"}.get(state, "")


def _silent_since() -> str:
    """When ragexd last wrote to its log: the best public sign of life."""
    try:
        mtime = os.stat(paths.log_dir() / "ragexd.log").st_mtime
    except OSError:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(mtime))


def _fmt_s(seconds: float) -> str:
    return f"{seconds:g} s"
