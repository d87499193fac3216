"""Where ragex keeps things, and which project a directory belongs to.

Shared by ragexctl and ragexd so both agree on the socket path and on project
identity without talking first.  Follows XDG through platformdirs:

* runtime (sockets, pid file): ``$XDG_RUNTIME_DIR/ragex`` (0700), falling back
  to ``/tmp/ragex-<uid>`` when there is no runtime dir (containers, cron);
* data (indexes): ``$XDG_DATA_HOME/ragex/projects/<project-id>/``;
* state (logs, recently-used list): ``$XDG_STATE_HOME/ragex/``;
* config: ``$XDG_CONFIG_HOME/ragex/config.toml``.

``RAGEX_RUNTIME_DIR``, ``RAGEX_DATA_DIR``, ``RAGEX_STATE_DIR`` and
``RAGEX_CONFIG_DIR`` override each one (tests, unusual setups).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP = "ragex"
#: Written inside every index directory; its presence marks "an existing ragex index".
PROJECT_FILE = "project.json"


def _override(var: str) -> Path | None:
    value = os.environ.get(var)
    return Path(value) if value else None


def runtime_dir() -> Path:
    over = _override("RAGEX_RUNTIME_DIR")
    if over:
        return over
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg):
        return Path(xdg) / APP
    return Path("/tmp") / f"{APP}-{os.getuid()}"


def data_dir() -> Path:
    return _override("RAGEX_DATA_DIR") or Path(platformdirs.user_data_dir(APP, appauthor=False))


def state_dir() -> Path:
    return _override("RAGEX_STATE_DIR") or Path(platformdirs.user_state_dir(APP, appauthor=False))


def config_dir() -> Path:
    return _override("RAGEX_CONFIG_DIR") or Path(platformdirs.user_config_dir(APP, appauthor=False))


def log_dir() -> Path:
    return state_dir() / "logs"


def daemon_socket_path() -> Path:
    return runtime_dir() / "ragexd.sock"


def daemon_endpoint() -> str:
    return "ipc://" + str(daemon_socket_path())


def daemon_pid_path() -> Path:
    return runtime_dir() / "ragexd.pid"


def read_pid(path: Path) -> int | None:
    """The pid written in a pid file (ragexd's lock file), or None.  Here, not in
    the supervisor, because ragexctl reads it too (to name a frozen ragexd)."""
    try:
        text = path.read_text().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def worker_socket_dir(project_id: str) -> Path:
    """Directory holding one worker's socket; bind-mounted into its container."""
    return runtime_dir() / "workers" / project_id


def projects_dir() -> Path:
    return data_dir() / "projects"


def index_dir(project_id: str) -> Path:
    return projects_dir() / project_id


def check_private_dir(path: Path) -> str | None:
    """Return why ``path`` is unsafe as a private runtime dir, or None if it is fine.

    Like Watchman's state dir: it must be ours and closed to group and others,
    or another local user could connect to our socket or plant one.
    """
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        return f"{path} is not a directory. Remove it and start ragexd again."
    if st.st_uid != os.getuid():
        return (f"{path} is owned by uid {st.st_uid}, not by you (uid {os.getuid()}). "
                f"Remove it (`sudo rm -rf {path}`) or set RAGEX_RUNTIME_DIR to a private directory.")
    if st.st_mode & 0o077:
        return (f"{path} is open to other users (mode {stat.S_IMODE(st.st_mode):o}). "
                f"Fix it with `chmod 700 {path}`.")
    return None


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` 0700 if missing; raise PermissionError saying the fix if unsafe."""
    if not path.exists():
        path.mkdir(parents=True, mode=0o700, exist_ok=True)
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
    problem = check_private_dir(path)
    if problem:
        raise PermissionError(problem)


# --- Projects ----------------------------------------------------------------------


def project_id_for(root: Path) -> str:
    """Stable id of a project: hash of the user and the root's real path.

    Short (16 hex chars) because it appears in ipc:// socket paths, which the
    kernel limits to ~107 bytes.
    """
    real = os.path.realpath(root)
    user = f"{os.getuid()}:{_username()}"
    return hashlib.sha256(f"{user}\0{real}".encode("utf-8", "surrogateescape")).hexdigest()[:16]


def _username() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers with a bare uid)
        return str(os.getuid())


def find_project_root(start: Path) -> Path:
    """The nearest ancestor of ``start`` holding ``.git`` or an existing ragex index.

    Falls back to ``start`` itself, so any directory can be searched.  Searching
    from a subdirectory therefore uses the project's own index.
    """
    here = Path(os.path.realpath(start))
    if here.is_file():
        here = here.parent
    for candidate in (here, *here.parents):
        if (candidate / ".git").exists():
            return candidate
        if (index_dir(project_id_for(candidate)) / PROJECT_FILE).exists():
            return candidate
    return here


@dataclass
class ProjectRecord:
    """What ``project.json`` in an index directory says about its project."""

    id: str
    root: str
    created: float
    last_used: float

    @classmethod
    def load(cls, directory: Path) -> "ProjectRecord | None":
        try:
            data = json.loads((directory / PROJECT_FILE).read_text())
            return cls(id=str(data["id"]), root=str(data["root"]),
                       created=float(data.get("created", 0)),
                       last_used=float(data.get("last_used", 0)))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / (PROJECT_FILE + ".tmp")
        tmp.write_text(json.dumps(self.__dict__, indent=2))
        os.replace(tmp, directory / PROJECT_FILE)

    @classmethod
    def touch(cls, root: Path) -> "ProjectRecord":
        """Create or update the record for ``root``, marking it used now."""
        pid = project_id_for(root)
        directory = index_dir(pid)
        now = time.time()
        record = cls.load(directory) or cls(id=pid, root=os.path.realpath(root),
                                            created=now, last_used=now)
        record.last_used = now
        record.save(directory)
        return record


def dir_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total
