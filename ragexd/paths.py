"""Where ragex keeps things, and which project a directory belongs to.

Shared by ragexctl and ragexd so both agree on the socket path and on project
identity without talking first.  Follows XDG through platformdirs:

* runtime (sockets, pid file): ``$XDG_RUNTIME_DIR/ragex`` (0700); without
  XDG_RUNTIME_DIR, ``/run/user/<uid>/ragex`` when systemd made that directory,
  else ``/tmp/ragex-<uid>`` (containers, cron);
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


#: Where systemd-logind (and elogind) lay out each user's runtime directory.
SYSTEMD_RUNTIME_BASE = Path("/run/user")


def runtime_dir() -> Path:
    """The directory of ragexd's socket: one per user whatever the environment.

    A process started with a stripped environment must find the same ragexd as
    the user's shell: the MCP SDK's stdio client starts ``ragexctl mcp`` with
    only HOME, PATH, SHELL, TERM, USER and LOGNAME, so without XDG_RUNTIME_DIR
    we look where systemd would have pointed it (``/run/user/<uid>``, when it
    exists and is ours and private) before falling back to ``/tmp``.
    """
    over = _override("RAGEX_RUNTIME_DIR")
    if over:
        return over
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg):
        return Path(xdg) / APP
    systemd = SYSTEMD_RUNTIME_BASE / str(os.getuid())
    if systemd.is_dir() and check_private_dir(systemd) is None:  # exists, ours, private
        return systemd / APP
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


def process_running(pid: int) -> bool:
    """Does ``pid`` still run?  A zombie does not: it has exited (and released
    ragexd's lock); a daemonized ragexd is reaped by whatever init the machine
    has, and some containers' init never reaps.  Here, beside ``read_pid``,
    because the client (to name a frozen ragexd, to wait for one to end) and
    ``ragexctl service`` (to hand over to the service manager) both ask."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[-1].split()[0] not in (b"Z", b"X")
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        pass  # no /proc (macOS): ask the kernel
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, it is just not ours to signal
    return True


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


#: Directories that mark the root of a version-controlled tree.
VCS_MARKERS = (".git", ".hg", ".svn", ".bzr", "_darcs", ".jj")
#: An empty file a user puts at the root they want, where there is no VCS root.
ROOT_MARKER = ".ragexroot"
#: A root chosen only because it is the current directory, holding more files
#: than this, is confirmed on a terminal and refused without one.
LARGE_TREE_FILES = 20_000
#: Never counted towards LARGE_TREE_FILES: VCS metadata and dependency trees.
_UNCOUNTED_DIRS = frozenset(VCS_MARKERS) | {"node_modules", "__pycache__", ".venv", "venv"}


@dataclass(frozen=True)
class RootChoice:
    """Which project a directory belongs to, and why: the policy users can predict.

    ``how`` is ``vcs`` (nearest version-control root), ``marker`` (nearest
    ``.ragexroot``), ``index`` (an ancestor already indexed: a subdirectory of
    an indexed project uses that project), ``explicit`` (a path given on the
    command line with nothing above it) or ``cwd`` (nothing above it at all).
    ``sentence`` says the choice out loud when it is not obvious; ``refusal``,
    when set, says why ragex will not index it and what to do instead.
    """

    root: Path
    how: str
    sentence: str | None = None
    refusal: str | None = None


def forbidden_root(root: Path) -> str | None:
    """What ``root`` is, when indexing it by accident would be harmful: ``/``,
    the home directory, or one of ragex's own directories (or inside one)."""
    real = os.path.realpath(root)
    if real == os.path.sep:
        return "the root directory"
    if real == os.path.realpath(os.path.expanduser("~")):
        return "your home directory"
    for what, own in (("data", data_dir()), ("state", state_dir()),
                      ("runtime", runtime_dir()), ("configuration", config_dir())):
        mine = os.path.realpath(own)
        if real == mine or real.startswith(mine + os.sep):
            return f"ragex's own {what} directory ({mine})"
    return None


def choose_project_root(start: Path, *, explicit: bool = False) -> RootChoice:
    """The project of ``start``: the nearest ancestor (``start`` included)
    holding ``.ragexroot``, a VCS root or an existing ragex index; else
    ``start`` itself, said out loud.  Refuses ``/``, the home directory and
    ragex's own directories unless ``explicit`` (a path given on the command
    line) or a ``.ragexroot`` marker chose them.

    A file's project is the one holding it; a file in no project does not make
    its directory explicit (``ragexctl index ~/notes.txt`` names a file, not the
    home directory), so that directory is chosen, and refused, as the current
    directory would be."""
    here = Path(os.path.realpath(start))
    if here.is_file():
        here = here.parent
        explicit = False
    for candidate in (here, *here.parents):
        if (candidate / ROOT_MARKER).exists():
            return RootChoice(candidate, "marker")
        if any((candidate / m).exists() for m in VCS_MARKERS):
            choice = RootChoice(candidate, "vcs")
            break
        if (index_dir(project_id_for(candidate)) / PROJECT_FILE).exists():
            choice = RootChoice(candidate, "index")
            break
    else:
        if explicit:
            return RootChoice(here, "explicit")
        choice = RootChoice(here, "cwd", sentence=(
            f"no version-control root or {ROOT_MARKER} file above {here}: using it as the "
            f"project root (put an empty {ROOT_MARKER} file where the project starts to "
            "choose another)"))
    what = None if explicit else forbidden_root(choice.root)
    if what is not None:
        return RootChoice(choice.root, choice.how, choice.sentence, refusal=(
            f"will not index {choice.root}, {what}, without being asked: give the project "
            f"with `--project PATH`, or put an empty {ROOT_MARKER} file at its root"))
    return choice


def count_files(root: Path, limit: int) -> int:
    """Files under ``root``, counting stops past ``limit`` (a guard, not a census):
    VCS metadata and dependency trees are not counted, symlinks not followed."""
    total = 0
    stack = [str(root)]
    while stack and total <= limit:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            if entry.name not in _UNCOUNTED_DIRS:
                                stack.append(entry.path)
                        elif entry.is_file(follow_symlinks=False):
                            total += 1
                    except OSError:
                        continue
        except OSError:
            continue
    return total


def large_tree_refusal(choice: RootChoice, *, limit: int = LARGE_TREE_FILES) -> str | None:
    """Why a first index of ``choice`` needs the user's yes, or None: only a root
    picked because it was the current directory, and only above ``limit`` files."""
    if choice.how != "cwd" or (index_dir(project_id_for(choice.root)) / PROJECT_FILE).exists():
        return None
    if count_files(choice.root, limit) <= limit:
        return None
    return (f"{choice.root} has more than {limit:,} files and no version-control root or "
            f"{ROOT_MARKER} file says it is a project")


def find_project_root(start: Path) -> Path:
    """The project root ``choose_project_root`` picks for ``start`` (whatever it refuses)."""
    return choose_project_root(start).root


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
