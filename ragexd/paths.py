"""Where ragex keeps things, and which project a directory belongs to.

Shared by ragexctl and ragexd so both agree on the socket path and on project
identity without talking first.  The rules are ``where.py``'s (plain strings,
cheap to import: the client's direct regex path follows them too); this module
gives them ``pathlib`` types and adds project records and pid files:

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

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from . import where
from .where import APP, PROJECT_FILE, ROOT_MARKER, VCS_MARKERS, check_private_dir, process_running

__all__ = ["APP", "PROJECT_FILE", "ROOT_MARKER", "VCS_MARKERS", "check_private_dir",
           "process_running"]


def runtime_dir() -> Path:
    """The directory of ragexd's socket (``where.runtime_dir``)."""
    return Path(where.runtime_dir())


def data_dir() -> Path:
    return Path(where.data_dir())


def state_dir() -> Path:
    return Path(where.state_dir())


def config_dir() -> Path:
    return Path(where.config_dir())


def log_dir() -> Path:
    return state_dir() / "logs"


def daemon_socket_path() -> Path:
    return runtime_dir() / "ragexd.sock"


def daemon_endpoint() -> str:
    return "ipc://" + str(daemon_socket_path())


def daemon_pid_path() -> Path:
    return Path(where.daemon_pid_file())


def read_pid(path: Path) -> int | None:
    """The pid written in a pid file (``where.read_pid``)."""
    return where.read_pid(path)


def worker_socket_dir(project_id: str) -> Path:
    """Directory holding one worker's socket; bind-mounted into its container."""
    return runtime_dir() / "workers" / project_id


def projects_dir() -> Path:
    return Path(where.projects_dir())


def index_dir(project_id: str) -> Path:
    return projects_dir() / project_id


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
    """Stable id of a project (``where.project_id_for``)."""
    return where.project_id_for(root)


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
    """What ``root`` is, when indexing it by accident would be harmful (``where.forbidden_root``)."""
    return where.forbidden_root(root)


def unnameable_root(root: Path) -> str | None:
    """Why no worker can serve ``root``, whoever asks (``where.unnameable_root``)."""
    return where.unnameable_root(root)


def choose_project_root(start: Path, *, explicit: bool = False) -> RootChoice:
    """The project of ``start``: the nearest ancestor (``start`` included)
    holding ``.ragexroot``, a VCS root or an existing ragex index; else
    ``start`` itself, said out loud.  Refuses ``/``, the home directory and
    ragex's own directories unless ``explicit`` (a path given on the command
    line) or a ``.ragexroot`` marker chose them.  The rule is
    ``where.choose_root``'s."""
    root, how, sentence, refusal = where.choose_root(start, explicit=explicit)
    return RootChoice(Path(root), how, sentence, refusal)


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
