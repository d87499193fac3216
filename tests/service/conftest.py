"""Shared helpers for the service-unit tests (issue #5).

Every test gets a private HOME and ragex directories under a short /tmp path
(ipc:// socket paths are limited to ~107 bytes), and an environment *without*
XDG_RUNTIME_DIR / DBUS / NOTIFY_SOCKET, so nothing here can reach a real user
manager or the developer's own ragexd by accident.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: The console script of this installation (pip install -e . put it beside python).
RAGEXD = Path(sys.executable).parent / "ragexd"

_DROP = ("XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME",
         "DBUS_SESSION_BUS_ADDRESS", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
         "RAGEX_RUNTIME_DIR", "RAGEX_DATA_DIR", "RAGEX_STATE_DIR", "RAGEX_CONFIG_DIR",
         "RAGEX_SERVICE_MANAGER", "DOCKER_HOST")


@pytest.fixture
def rx_tmp():
    path = Path(tempfile.mkdtemp(prefix="rx-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def isolated_env(base: Path, **extra: str) -> dict[str, str]:
    """An environment whose HOME and ragex dirs are all inside ``base``."""
    env = {k: v for k, v in os.environ.items() if k not in _DROP}
    home = base / "home"
    home.mkdir(exist_ok=True)
    run = base / "run"
    run.mkdir(mode=0o700, exist_ok=True)
    env.update(HOME=str(home), RAGEX_RUNTIME_DIR=str(run), RAGEX_DATA_DIR=str(base / "data"),
               RAGEX_STATE_DIR=str(base / "state"), RAGEX_CONFIG_DIR=str(base / "config"),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               RAGEX_RUNTIME="process")
    env.update(extra)
    return env


def ragexctl(env: dict[str, str], *args: str, timeout: float = 120.0,
             prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real client as a subprocess, as a user would."""
    return subprocess.run([*(prefix or []), sys.executable, "-m", "ragexctl", *args],
                          env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=str(REPO), stdin=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def ragexd_script() -> Path:
    if not RAGEXD.exists():
        pytest.fail(f"{RAGEXD} is missing: run `{sys.executable} -m pip install --no-deps -e "
                    f"{REPO}` so the ragexd console script exists")
    return RAGEXD
