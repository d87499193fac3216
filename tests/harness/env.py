"""A private ragex environment: every directory ragex touches, under one short path.

Every suite and benchmark runs ragexd, workers and ragexctl in an environment of
its own, so that nothing reaches the developer's ragexd, a real user manager
(systemd, launchd) or another test's sockets:

- ``base`` is a fresh directory directly under /tmp, short because ipc:// socket
  paths are limited to ~107 bytes, and 0700 like a real runtime directory;
- HOME is ``base/home``; the XDG variables are dropped, so every XDG directory
  falls back inside that HOME, and ragex's own directories are set explicitly
  (``RAGEX_RUNTIME_DIR`` and friends), which wins over XDG in ragex's paths;
- the variables of a service manager (NOTIFY_SOCKET, WATCHDOG_*, DBUS, the
  journal) and every other RAGEX_* setting of the caller are dropped;
- the model is offline (nothing may download weights) and the subprocesses
  import this checkout first (PYTHONPATH).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: Variables that would connect a child to something outside the test.
_DROP = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM",
         "DBUS_SESSION_BUS_ADDRESS", "NO_COLOR", "PYTHONDONTWRITEBYTECODE")
_DROP_PREFIXES = ("RAGEX_", "XDG_")
#: Kept from the caller for the Docker runtime only: which engine and which image.
_DOCKER_KEEP = ("DOCKER_HOST", "RAGEX_DOCKER_IMAGE")
#: Kept from the caller always: where the exported model is (read only, like the
#: model package), for a checkout whose own ragexd/_model was never exported.
_KEEP = ("RAGEX_MODEL_DIR",)


def short_tmp(prefix: str = "rx-") -> Path:
    """A new 0700 directory directly under /tmp (short enough for ipc:// paths)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def make_env(base: Path, runtime: str = "process", *, session: bool = False,
             **extra: str) -> dict[str, str]:
    """The environment of a private ragex under ``base`` (see the module docstring).

    Creates ``base/home``.  With ``session``, also the runtime directory
    ``base/run`` (0700), as a login session would; without, ragexd creates it,
    and how it does (modes, refusals) is under test.  The data, state and config
    directories are left for ragex to create.  ``RAGEX_RUNTIME`` among ``extra``
    overrides ``runtime``."""
    runtime = extra.get("RAGEX_RUNTIME", runtime)
    home = base / "home"
    home.mkdir(parents=True, exist_ok=True)
    if session:
        (base / "run").mkdir(mode=0o700, exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if k not in _DROP and k != "DOCKER_HOST" and not k.startswith(_DROP_PREFIXES)}
    keep = _KEEP + (_DOCKER_KEEP if runtime == "docker" else ())
    env.update({k: os.environ[k] for k in keep if os.environ.get(k)})
    outer = os.environ.get("PYTHONPATH")
    env.update(HOME=str(home), RAGEX_RUNTIME_DIR=str(base / "run"),
               RAGEX_DATA_DIR=str(base / "data"), RAGEX_STATE_DIR=str(base / "state"),
               RAGEX_CONFIG_DIR=str(base / "config"), RAGEX_RUNTIME=runtime,
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONPATH=str(REPO) + (os.pathsep + outer if outer else ""))
    env.update(extra)
    return env


class PrivateEnv:
    """A private ragex environment (see the module docstring); by default as a login
    session has it, its runtime dir made (0700) before any ragex command runs."""

    def __init__(self, base: Path | None = None, runtime: str = "process", *,
                 session: bool = True, **extra: str) -> None:
        self.base = base or short_tmp()
        self.env = make_env(self.base, runtime, session=session, **extra)
        self.runtime = self.env["RAGEX_RUNTIME"]
        self.home = Path(self.env["HOME"])

    @property
    def run_dir(self) -> Path:
        return Path(self.env["RAGEX_RUNTIME_DIR"])

    @property
    def data(self) -> Path:
        return Path(self.env["RAGEX_DATA_DIR"])

    @property
    def state(self) -> Path:
        return Path(self.env["RAGEX_STATE_DIR"])

    def fake_index(self, root: Path, last_used: float = 1000.0) -> str:
        """An index directory for ``root`` as ragexd leaves one (its project record
        and 5,000 bytes of data), with no worker ever started: for what lists,
        resolves and removes indexes.  Returns the project id."""
        import json

        from ragexd import paths

        old = os.environ.get("RAGEX_DATA_DIR")
        os.environ["RAGEX_DATA_DIR"] = str(self.data)
        try:
            pid = paths.project_id_for(root)
            d = paths.index_dir(pid)
        finally:
            if old is None:
                del os.environ["RAGEX_DATA_DIR"]
            else:
                os.environ["RAGEX_DATA_DIR"] = old
        d.mkdir(parents=True)
        (d / paths.PROJECT_FILE).write_text(json.dumps(
            {"id": pid, "root": os.path.realpath(root), "created": 1.0, "last_used": last_used}))
        (d / "vectors.bin").write_bytes(b"\0" * 5000)
        return pid

    @property
    def config(self) -> Path:
        return Path(self.env["RAGEX_CONFIG_DIR"])

    @property
    def socket(self) -> Path:
        return self.run_dir / "ragexd.sock"

    @property
    def endpoint(self) -> str:
        return "ipc://" + str(self.socket)

    def ctl(self, *args: str, cwd: Path | str | None = None, timeout: float = 300.0,
            input: str | None = None, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        """``python -m ragexctl ARGS`` in this environment, from ``base`` by default."""
        from .runners import ragexctl

        return ragexctl(env or self.env, *args, cwd=cwd or self.base, timeout=timeout,
                        input=input)

    def stop_everything(self) -> list[int]:
        """``ragexctl stop --all``, then SIGKILL whatever ragexd or worker is left
        in this environment; returns the pids that had to be killed."""
        from .procs import kill_pids, pids_in_env

        if self.socket.exists():
            try:
                self.ctl("stop", "--all", timeout=60)
            except subprocess.TimeoutExpired:
                pass
        return kill_pids(pids_in_env(self.run_dir, ragexd_only=True))

    def cleanup(self) -> list[int]:
        """Stop everything, then remove ``base``; returns the pids killed."""
        left = self.stop_everything()
        shutil.rmtree(self.base, ignore_errors=True)
        return left
