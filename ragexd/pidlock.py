"""An flock-ed pid file: exactly one holder, named to whoever else asks.

Two owners use it: ragexd (exactly one per user, ``<runtime_dir>/ragexd.pid``)
and a worker (exactly one writer per index, ``<index_dir>/owner.lock``).  It
lives beside ``paths`` rather than in ``supervisor/`` because the worker needs
it too and must not import the supervisor.

The lock is an ``flock`` on the file with our pid written inside.  flock belongs to the open file, so the kernel drops it when ragexd
dies however it dies (kill -9 included): a stale pid file never blocks a new
ragexd, and the presence of a socket file proves nothing.  That is why only
the lock holder may touch the socket: a second ragexd that fails to lock
leaves everything alone and names the running one.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from .paths import read_pid


class AlreadyRunning(Exception):
    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        who = f"pid {pid}" if pid else "pid unknown"
        super().__init__(f"ragexd is already running ({who})")


class InstanceLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise AlreadyRunning.  Never truncates someone else's pid."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise AlreadyRunning(read_pid(self.path)) from None
            raise
        self._fd = fd
        self.write_pid(os.getpid())

    def write_pid(self, pid: int) -> None:
        """Record ``pid`` (called again in the daemonized grandchild)."""
        assert self._fd is not None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{pid}\n".encode(), 0)
        os.fsync(self._fd)

    def release(self, remove: bool = True) -> None:
        if self._fd is None:
            return
        if remove:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        os.close(self._fd)
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def lock_free(path: Path) -> bool:
    """Could a new holder take the lock at ``path`` now?  True when the file is
    gone (the last holder removed it on its way out) or nobody holds it.

    A ragexd closes its socket a moment before it lets go of the lock; whoever
    replaces it waits for this, or the new one would exit "already running".
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    finally:
        os.close(fd)   # drops our shared lock with it
