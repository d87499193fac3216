"""``ragexd``: the command line of the supervisor.

Start-up order matters and is the point of this module:

1. read the configuration (a bad setting is an error, not a silent default);
2. check the runtime directory is ours and private, or refuse, printing the fix;
3. take the single-instance lock — only then may the socket be touched, so a
   second ragexd can never steal the first one's socket;
4. daemonize unless ``--foreground`` (the parent waits until the daemon is
   listening, so ``ragexd && ragexctl ...`` works and start-up errors reach the
   terminal);
5. choose the runtime, reap orphans, bind, tell systemd READY=1.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import sys
import time

from .. import __version__, paths
from .. import exitcodes
from ..config import ConfigError, load
from ..pidlock import AlreadyRunning, InstanceLock

log = logging.getLogger("ragexd")

# One table for every ragex program (it was 1 here and 2 in ragexctl; 3 meant
# "already running" here and "not running" for `ragexctl status`).
EXIT_OK = exitcodes.OK
EXIT_ERROR = exitcodes.ERROR
EXIT_ALREADY_RUNNING = exitcodes.ALREADY_RUNNING
#: The parent of a daemonizing ragexd waits at most this long for "listening".
READY_WAIT = 60.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ragexd",
        description="The ragex supervisor: keeps per-project search workers warm. "
                    "Normally started by ragexctl or by the user's service manager.")
    parser.add_argument("--foreground", action="store_true",
                        help="stay in the foreground and log to stderr (service managers, tests)")
    parser.add_argument("--prestart", nargs="?", type=int, const=-1, default=None, metavar="N",
                        help="start the workers of the N most recently used projects at once "
                             "(default N: the 'prestart' setting); skipped when memory is low")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"],
                        help="override the log_level setting")
    parser.add_argument("--version", action="version", version=f"ragexd {__version__}")
    return parser


def _fail(message: str) -> int:
    print(f"ragexd: {message}", file=sys.stderr)
    return EXIT_ERROR


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = load()
    except ConfigError as exc:
        return _fail(f"bad configuration: {exc}")
    if args.log_level:
        cfg.log_level = args.log_level

    runtime_dir = paths.runtime_dir()
    try:
        paths.ensure_private_dir(runtime_dir)
    except PermissionError as exc:
        return _fail(f"refusing to start: {exc}")
    except OSError as exc:
        return _fail(f"cannot create the runtime directory {runtime_dir}: {exc}")

    lock = InstanceLock(paths.daemon_pid_path())
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_ALREADY_RUNNING
    except OSError as exc:
        return _fail(f"cannot take the lock {paths.daemon_pid_path()}: {exc}")

    ready_fd: int | None = None
    if not args.foreground:
        ready_fd = _daemonize(lock)   # returns only in the daemon
    code = EXIT_ERROR
    try:
        code = _serve(cfg, args, lock, ready_fd)
    finally:
        lock.release(remove=True)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    # Skip the interpreter's teardown: it would join runtime threads (a wedged
    # Docker call must not keep a stopping ragexd alive) and garbage-collect for
    # nothing.  Everything that matters is closed, removed and flushed above.
    os._exit(code)


def _serve(cfg: "object", args: argparse.Namespace, lock: InstanceLock,
           ready_fd: int | None) -> int:
    from ..config import Config
    from ..runtimes import RuntimeUnavailable, select_runtime
    from . import logs
    from .daemon import Daemon
    from .notify import Notifier

    assert isinstance(cfg, Config)
    logs.setup(paths.log_dir() / "ragexd.log", cfg.log_level, to_stderr=args.foreground)

    def report(message: str) -> None:
        """Tell the waiting launcher how start-up went.  On success the pipe is
        closed at once (the launcher returns); on failure it stays open until
        this process exits, so the launcher returns only after the clean-up
        (pid file, socket) is done."""
        nonlocal ready_fd
        if ready_fd is not None:
            try:
                os.write(ready_fd, message.encode())
                if message.startswith("ready"):
                    os.close(ready_fd)
            except OSError:
                pass
            ready_fd = None

    try:
        (paths.runtime_dir() / "workers").mkdir(mode=0o700, exist_ok=True)
        runtime, reason = select_runtime(cfg)
    except RuntimeUnavailable as exc:
        log.error("%s", exc)
        report(f"error: {exc}")
        return EXIT_ERROR
    except OSError as exc:
        log.error("cannot prepare %s: %s", paths.runtime_dir(), exc)
        report(f"error: cannot prepare {paths.runtime_dir()}: {exc}")
        return EXIT_ERROR

    _record_runtime(runtime.name)
    prestart = 0
    if args.prestart is not None:
        prestart = cfg.prestart if args.prestart < 0 else args.prestart

    daemon = Daemon(cfg, runtime, reason, notifier=Notifier(), prestart=prestart,
                    on_ready=lambda: report(f"ready {os.getpid()}"))
    try:
        return daemon.run()
    except Exception as exc:  # noqa: BLE001 - start-up failures (bind) end up here
        log.exception("ragexd failed")
        report(f"error: {exc}")
        return EXIT_ERROR
    finally:
        _record_runtime(None)
        report("error: ragexd exited before it was ready; see "
               f"{paths.log_dir() / 'ragexd.log'}")


def _record_runtime(name: str | None) -> None:
    """Say which runtime ``runtime = "auto"`` chose (``<pid> <name>``), or forget it:
    the client's direct regex path reads it (``ragexctl/direct.py``) to run
    ripgrep itself only where a worker would see the same files."""
    path = paths.daemon_runtime_path()
    try:
        if name is None:
            path.unlink(missing_ok=True)
            return
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(f"{os.getpid()} {name}\n")
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("cannot record the runtime in %s: %s", path, exc)


def _daemonize(lock: InstanceLock) -> int:
    """Double-fork into the background; returns the readiness pipe in the daemon.

    The original process stays until the daemon says it is listening (or
    failed), so its exit status and messages mean something.  The lock's open
    file is inherited, so the daemon keeps holding it after the parent exits.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid > 0:
        os.close(write_fd)
        message = _wait_ready(read_fd)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        if message.startswith("ready"):
            os._exit(EXIT_OK)
        text = message[len("error: "):] if message.startswith("error: ") else message
        print(f"ragexd: {text or 'failed to start (no details); see the log in ' + str(paths.log_dir())}",
              file=sys.stderr)
        sys.stderr.flush()
        os._exit(EXIT_ERROR)
    os.close(read_fd)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    lock.write_pid(os.getpid())
    return write_fd


def _wait_ready(fd: int) -> str:
    deadline = time.monotonic() + READY_WAIT
    chunks = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "error: ragexd did not become ready in time; see its log"
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        data = os.read(fd, 4096)
        if not data:
            break
        chunks.append(data)
    os.close(fd)
    return b"".join(chunks).decode(errors="replace").strip()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
