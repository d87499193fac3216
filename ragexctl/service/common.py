"""What a ragexd login service needs, whichever manager runs it.

systemd and launchd differ in file format and tooling, but both run *this*
installation's ragexd (``find_ragexd``, ``--ragexd``) with the environment the
installing shell had (``service_environment``), report the same way
(``Console``: done, or announced under ``--dry-run``), run their manager's
command-line tool the same way (``run_tool``) and fall back to the same advice
when no manager runs.  Those shared pieces live here, once, so the two
backends cannot drift apart.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ragexd import config as rconfig
from ragexd import exitcodes

EXIT_OK = exitcodes.OK
EXIT_ERROR = exitcodes.ERROR

#: Environment copied from the installing shell into the unit/plist: where
#: ragexd's socket and indexes live must match what ragexctl computes in that
#: shell, or ragexctl would not find the service's ragexd and start a second one.
PASSTHROUGH_ENV = ("RAGEX_RUNTIME_DIR", "RAGEX_DATA_DIR", "RAGEX_STATE_DIR", "RAGEX_CONFIG_DIR",
                   "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CONFIG_HOME")


class ServiceError(Exception):
    """A problem the user can fix, reported as one sentence with exit code 2."""


# --- What to run, and with which environment ------------------------------------------


def find_ragexd() -> list[str]:
    """The command that runs this installation's ragexd.

    The console script next to ``sys.executable`` comes first: it belongs to the
    same installation (venv, pipx) as this ragexctl, hence speaks the same
    protocol; a ``ragexd`` found on PATH could be another version.  Without any
    console script, ``python -m ragexd`` with this interpreter still works.
    """
    beside = Path(sys.executable).parent / "ragexd"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside.absolute())]
    found = shutil.which("ragexd")
    if found:
        return [os.path.abspath(found)]
    return [os.path.abspath(sys.executable), "-m", "ragexd"]


def ragexd_command(args: argparse.Namespace) -> list[str]:
    """``--ragexd PATH`` (made absolute: a service has no working directory) or ours."""
    given = getattr(args, "ragexd", None)
    if not given:
        return find_ragexd()
    path = shutil.which(given) if os.sep not in given else given
    if not path or not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise ServiceError(f"--ragexd {given}: not an executable file")
    return [os.path.abspath(path)]


def docker_host(env: dict[str, str] | None = None, home: Path | None = None) -> str | None:
    """DOCKER_HOST for the service, or None when Docker's default socket applies.

    Taken from the environment when set; otherwise the first existing socket of
    the usual non-default engines (rootless Docker, Docker Desktop for Mac,
    Colima, OrbStack), because the service will not see the shell's settings.
    """
    env = dict(os.environ) if env is None else env
    if env.get("DOCKER_HOST"):
        return env["DOCKER_HOST"]
    if os.path.exists("/var/run/docker.sock"):
        return None
    home = Path(env.get("HOME") or Path.home()) if home is None else home
    candidates = []
    if env.get("XDG_RUNTIME_DIR"):
        candidates.append(Path(env["XDG_RUNTIME_DIR"]) / "docker.sock")
    candidates += [home / ".docker/run/docker.sock", home / ".colima/default/docker.sock",
                   home / ".orbstack/run/docker.sock"]
    for sock in candidates:
        if sock.exists():
            return f"unix://{sock}"
    return None


def service_environment(command: Sequence[str], env: dict[str, str] | None = None) -> dict[str, str]:
    """PATH (with ragexd's own bin directory first), ragex locations, DOCKER_HOST."""
    env = dict(os.environ) if env is None else env
    bindir = str(Path(command[0]).parent)
    path_items = [bindir] + [p for p in env.get("PATH", os.defpath).split(os.pathsep)
                             if p and p != bindir]
    out = {"PATH": os.pathsep.join(dict.fromkeys(path_items))}
    for name in PASSTHROUGH_ENV:
        if env.get(name):
            out[name] = env[name]
    host = docker_host(env)
    if host:
        out["DOCKER_HOST"] = host
    return out


# --- Doing (or announcing) things -----------------------------------------------------


@dataclass
class Outcome:
    code: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.code == 0

    @property
    def text(self) -> str:
        return (self.stderr.strip() or self.stdout.strip())


def run_tool(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 30.0) -> Outcome:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return Outcome(127, "", f"{cmd[0]}: command not found")
    except subprocess.TimeoutExpired:
        return Outcome(124, "", f"`{' '.join(cmd)}` did not finish within {timeout:g} s")
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


@dataclass
class Console:
    """Where messages go; in dry-run, actions are announced instead of done."""

    dry_run: bool = False
    out: Callable[[str], None] = field(default=lambda s: print(s, flush=True))
    err: Callable[[str], None] = field(default=lambda s: print(s, file=sys.stderr, flush=True))

    def step(self, text: str) -> None:
        """Announce an action: ``+ systemctl ...`` when done, ``would: ...`` in dry-run."""
        self.out(("would: " if self.dry_run else "+ ") + text)


def write_atomic(path: Path, data: bytes, con: Console) -> bool:
    if path.exists() and path.read_bytes() == data:
        con.out(f"{path} is up to date")
        return False
    con.step(f"write {path}")
    if con.dry_run:
        return True
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return True


def remove_file(path: Path, con: Console) -> bool:
    if not path.exists() and not path.is_symlink():
        return False
    con.step(f"remove {path}")
    if not con.dry_run:
        path.unlink()
    return True


def installed_not_started(con: Console, sentence: str, *, fallback: bool) -> int:
    """The end of an install that starts nothing now (no service manager here, or
    ``--no-start``): ``sentence`` says why, and with ``fallback`` what happens until
    one does.  A dry run has said all there is to say (what would be written)."""
    if con.dry_run:
        return EXIT_OK
    con.out(sentence)
    if fallback:
        con.out(fallback_note())
    return EXIT_OK


def fallback_note() -> str:
    try:
        auto = rconfig.load().auto_start
    except rconfig.ConfigError:
        auto = True
    if auto:
        return ("Until then nothing changes for searching: ragexctl starts ragexd on demand "
                "(daemon.auto_start = true), it just is not warm before the first request.")
    return ("Note: daemon.auto_start is off in your configuration, so until a service manager "
            "runs ragexd, start it yourself (`ragexd`) or turn auto_start on.")
