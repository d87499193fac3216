"""Where ragex keeps things and which project a directory belongs to, in plain strings.

The rules themselves (XDG directories, project ids, the project-root policy)
live here, and ``paths.py`` wraps them in ``pathlib`` types for everyone else.
They are here, apart, because the client's direct regex path
(``ragexctl/direct.py``) must follow them exactly on every search and cannot
afford what ``paths.py`` imports (pathlib, dataclasses, platformdirs, hashlib,
json): each costs milliseconds of a search that ripgrep finishes in ten.  So
this module imports nothing at load time beyond ``os``, ``stat`` and ``sys``,
which the interpreter has already loaded.

On Linux the XDG base directories are read here directly (what platformdirs
does there); elsewhere (macOS) platformdirs decides, imported only then.
"""

from __future__ import annotations

import os
import stat
import sys

APP = "ragex"
#: Written inside every index directory; its presence marks "an existing ragex index".
PROJECT_FILE = "project.json"
#: Where systemd-logind (and elogind) lay out each user's runtime directory.
SYSTEMD_RUNTIME_BASE = "/run/user"

#: Directories that mark the root of a version-controlled tree.
VCS_MARKERS = (".git", ".hg", ".svn", ".bzr", "_darcs", ".jj")
#: An empty file a user puts at the root they want, where there is no VCS root.
ROOT_MARKER = ".ragexroot"


def _home() -> str:
    """The user's home as platformdirs reads it: a relative or missing HOME is unset."""
    home = os.environ.get("HOME", "")
    if os.path.isabs(home):
        return home
    import pwd

    return pwd.getpwuid(os.getuid()).pw_dir


def _user_dir(override: str, xdg: str, default: str, platformdirs_name: str) -> str:
    """One rule for the data, state and config directories: ``RAGEX_*_DIR``
    wins; then, on Linux, ``$XDG_*_HOME`` when it is an absolute path, else the
    XDG default below the home; elsewhere platformdirs' answer."""
    over = os.environ.get(override)
    if over:
        return over
    if not sys.platform.startswith("linux"):
        import platformdirs

        return str(getattr(platformdirs, platformdirs_name)(APP, appauthor=False))
    base = os.environ.get(xdg, "")
    if not os.path.isabs(base):
        base = os.path.join(_home(), default)
    return os.path.join(base, APP)


def data_dir() -> str:
    return _user_dir("RAGEX_DATA_DIR", "XDG_DATA_HOME", ".local/share", "user_data_dir")


def state_dir() -> str:
    return _user_dir("RAGEX_STATE_DIR", "XDG_STATE_HOME", ".local/state", "user_state_dir")


def config_dir() -> str:
    return _user_dir("RAGEX_CONFIG_DIR", "XDG_CONFIG_HOME", ".config", "user_config_dir")


def config_file() -> str:
    return os.path.join(config_dir(), "config.toml")


def runtime_dir() -> str:
    """The directory of ragexd's socket: one per user whatever the environment.

    A process started with a stripped environment must find the same ragexd as
    the user's shell: the MCP SDK's stdio client starts ``ragexctl mcp`` with
    only HOME, PATH, SHELL, TERM, USER and LOGNAME, so without XDG_RUNTIME_DIR
    we look where systemd would have pointed it (``/run/user/<uid>``, when it
    exists and is ours and private) before falling back to ``/tmp``.
    """
    over = os.environ.get("RAGEX_RUNTIME_DIR")
    if over:
        return over
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg):
        return os.path.join(xdg, APP)
    systemd = systemd_runtime_dir()
    if os.path.isdir(systemd) and check_private_dir(systemd) is None:  # exists, ours, private
        return os.path.join(systemd, APP)
    return os.path.join("/tmp", f"{APP}-{os.getuid()}")


def systemd_runtime_dir() -> str:
    """``/run/user/<uid>``: this user's runtime directory as pam_systemd lays it
    out, where XDG_RUNTIME_DIR should point (unset under sudo, su, cron)."""
    return os.path.join(SYSTEMD_RUNTIME_BASE, str(os.getuid()))


def check_private_dir(path: str | os.PathLike[str]) -> str | None:
    """Return why ``path`` is unsafe as a private runtime dir, or None if it is fine.

    Like Watchman's state dir: it must be ours and closed to group and others,
    or another local user could connect to our socket or plant one.
    """
    try:
        st = os.lstat(path)
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


def daemon_runtime_file() -> str:
    """Where ragexd says which runtime it chose (``<pid> <runtime>``): the
    client's direct path runs ripgrep itself only where a worker would see the
    same files, i.e. not in a container."""
    return os.path.join(runtime_dir(), "ragexd.runtime")


def daemon_pid_file() -> str:
    """ragexd's flock-ed pid file (``pidlock.InstanceLock``)."""
    return os.path.join(runtime_dir(), "ragexd.pid")


def read_pid(path: str | os.PathLike[str]) -> int | None:
    """The pid written in a pid file (ragexd's lock file), or None.  Here, in
    plain ``os``, because the client's direct path reads it on every search."""
    try:
        with open(path, "rb") as fh:
            text = fh.read(64).strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def lock_free(path: str | os.PathLike[str]) -> bool:
    """Could a new holder take the ``pidlock`` lock at ``path`` now?  True when
    the file is gone (the last holder removed it on its way out) or nobody
    holds it.

    A ragexd closes its socket a moment before it lets go of the lock; whoever
    replaces it waits for this, or the new one would exit "already running".
    The probe takes a shared lock for an instant, so ``InstanceLock.acquire``
    retries briefly rather than mistake a prober for a running ragexd.
    """
    import errno
    import fcntl   # both built in: nothing for the direct path to pay

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


def record_daemon_runtime(name: str | None) -> None:
    """As the running ragexd, say which runtime it chose (``<pid> <name>``), or
    with None forget it.  Raises OSError; the one writer of what
    ``daemon_runtime`` reads."""
    path = daemon_runtime_file()
    if name is None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(f"{os.getpid()} {name}\n")
    os.replace(tmp, path)


def daemon_runtime() -> str | None:
    """The runtime the running ragexd chose (``"process"``, ``"docker"``), or
    None when no running ragexd vouches for a record.

    The record is believed only from a private runtime directory (nobody else
    could have planted it), and only if its pid is the one in ragexd's pid file
    and that file's lock is held: a pid alone may since belong to any process
    (a ragexd killed -9 leaves its record behind, and pids are reused)."""
    if check_private_dir(runtime_dir()) is not None:
        return None
    try:
        with open(daemon_runtime_file(), encoding="utf-8") as fh:
            pid_text, _, chosen = fh.read(256).strip().partition(" ")
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    pid_file = daemon_pid_file()
    if pid <= 0 or not chosen or read_pid(pid_file) != pid or lock_free(pid_file):
        return None
    return chosen


def process_running(pid: int) -> bool:
    """Does ``pid`` still run?  A zombie does not: it has exited (and released
    ragexd's lock); a daemonized ragexd is reaped by whatever init the machine
    has, and some containers' init never reaps.  Shared (``paths`` re-exports
    it beside ``read_pid``) because the client (to name a frozen ragexd, to wait
    for one to end, to trust ragexd's runtime record on the direct regex path)
    and ``ragexctl service`` (to hand over to the service manager) all ask."""
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


def projects_dir() -> str:
    return os.path.join(data_dir(), "projects")


def index_dir(project_id: str) -> str:
    return os.path.join(projects_dir(), project_id)


def _username() -> str:
    """``getpass.getuser()``'s answer (the login name from the environment, else
    the password database), without importing getpass and what it pulls in."""
    for var in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        user = os.environ.get(var)
        if user:
            return user
    try:
        import pwd

        return pwd.getpwuid(os.getuid())[0]
    except (ImportError, KeyError):  # no passwd entry (containers with a bare uid)
        return str(os.getuid())


def project_id_for(root: str | os.PathLike[str]) -> str:
    """Stable id of a project: hash of the user and the root's real path.

    Short (16 hex chars) because it appears in ipc:// socket paths, which the
    kernel limits to ~107 bytes.
    """
    try:
        from _sha256 import sha256   # built in; hashlib would load OpenSSL for the same digest
    except ImportError:  # pragma: no cover - an interpreter built without it
        from hashlib import sha256

    real = os.path.realpath(root)
    user = f"{os.getuid()}:{_username()}"
    return sha256(f"{user}\0{real}".encode("utf-8", "surrogateescape")).hexdigest()[:16]


#: what a command that needs the current directory says when it is gone
NO_CURRENT_DIR = ("the current directory no longer exists (it was deleted or moved after "
                  "this shell entered it): cd into the project, or name it with --project PATH")


def current_dir() -> str | None:
    """``os.getcwd()``, or None when the directory was deleted under the shell (a
    `git checkout` that removed it, an `rm -rf` from another terminal): every
    command that read it raised FileNotFoundError, a traceback and exit 1."""
    try:
        return os.getcwd()
    except OSError:
        return None


def git_directory_above(real: str) -> str | None:
    """The git directory (a bare repository, or a ``.git``) that ``real`` is or
    lies in, by git's own test of one: ``HEAD``, ``objects/`` and ``refs/``.

    The walk stops at a working tree's top (a directory holding ``.git``): what lies
    below one is a checkout, even inside a bare repository (``git clone --bare``
    then ``git worktree add main`` from inside it puts the checkout there, a common
    way to keep one worktree a branch, and that checkout was refused)."""
    here = real
    while True:
        if os.path.lexists(os.path.join(here, ".git")):
            return None   # (a checkout whose own files include HEAD, objects/, refs/ too)
        if (os.path.isfile(os.path.join(here, "HEAD"))
                and os.path.isdir(os.path.join(here, "objects"))
                and os.path.isdir(os.path.join(here, "refs"))):
            return here
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent


def forbidden_root(root: str | os.PathLike[str]) -> str | None:
    """What ``root`` is, when indexing it by accident would be harmful: ``/``,
    the home directory, one of ragex's own directories (or inside one), or a git
    directory with no working tree (a bare repository: its objects are binary, its
    hooks samples; a search there by mistake indexed git's own files)."""
    real = os.path.realpath(root)
    if real == os.path.sep:
        return "the root directory"
    if real == os.path.realpath(os.path.expanduser("~")):
        return "your home directory"
    git_dir = git_directory_above(real)
    if git_dir is not None:
        return (f"inside the bare git repository {git_dir} (git's own files, no working "
                "tree: search a checkout of it)" if git_dir != real else
                "a bare git repository (git's own files, no working tree: search a "
                "checkout of it)")
    for what, own in (("data", data_dir()), ("state", state_dir()),
                      ("runtime", runtime_dir()), ("configuration", config_dir())):
        mine = os.path.realpath(own)
        if real == mine or real.startswith(mine + os.sep):
            return f"ragex's own {what} directory ({mine})"
    return None


def unnameable_root(root: str | os.PathLike[str]) -> str | None:
    """Why ragex cannot serve ``root`` as a project, whoever asks: its path is not
    UTF-8 (a directory named in Latin-1, say).  Projects are named on the wire
    (JSON) and in their ``project.json`` as UTF-8 text, so such a root got
    "'project' is not valid Unicode text (it holds a lone surrogate)", a sentence
    about a field nobody typed.  ripgrep reads it fine, so the client's direct
    regex path still answers there; everything else says this before anything starts."""
    text = os.fspath(root)
    try:
        text.encode("utf-8")
        return None
    except UnicodeEncodeError:
        from .filerules import display_name   # lazy: the direct regex path never needs it

        return (f"cannot index or serve {display_name(text)}: its path is not valid UTF-8, and "
                "ragex names projects as UTF-8 text; rename the directory to a UTF-8 name")


def choose_root(start: str | os.PathLike[str], *, explicit: bool = False
                ) -> tuple[str, str, str | None, str | None]:
    """The project of ``start`` as (root, how, sentence, refusal): the nearest
    ancestor (``start`` included) holding ``.ragexroot``, a VCS root or an
    existing ragex index; else ``start`` itself, said out loud.  Refuses ``/``,
    the home directory and ragex's own directories unless ``explicit`` (a path
    given on the command line) or a ``.ragexroot`` marker chose them.
    ``paths.choose_project_root`` documents the fields (``RootChoice``).

    A file's project is the one holding it; a file in no project does not make
    its directory explicit (``ragexctl index ~/notes.txt`` names a file, not the
    home directory), so that directory is chosen, and refused, as the current
    directory would be."""
    here = os.path.realpath(start)
    if os.path.isfile(here):
        here = os.path.dirname(here)
        explicit = False
    candidate = here
    sentence = None
    while True:
        if os.path.exists(os.path.join(candidate, ROOT_MARKER)):
            return candidate, "marker", None, None
        if any(os.path.exists(os.path.join(candidate, m)) for m in VCS_MARKERS):
            how = "vcs"
            break
        if os.path.exists(os.path.join(index_dir(project_id_for(candidate)), PROJECT_FILE)):
            how = "index"
            break
        parent = os.path.dirname(candidate)
        if parent == candidate:
            if explicit:
                return here, "explicit", None, None
            candidate, how = here, "cwd"
            sentence = (
                f"no version-control root or {ROOT_MARKER} file above {here}: using it as the "
                f"project root (put an empty {ROOT_MARKER} file where the project starts to "
                "choose another)")
            break
        candidate = parent
    what = None if explicit else forbidden_root(candidate)
    if what is not None:
        return candidate, how, sentence, (
            f"will not index {candidate}, {what}, without being asked: give the project "
            f"with `--project PATH`, or put an empty {ROOT_MARKER} file at its root")
    return candidate, how, sentence, None
