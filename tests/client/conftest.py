"""Shared fixtures for the ragexctl tests.

Every test runs the real client as a subprocess (``python -m ragexctl``) in an
environment whose ragex directories live under a short /tmp path (ipc://
socket paths are limited to ~107 bytes) and which cannot reach the
developer's own ragexd.  Whatever ragexd a test starts is stopped in teardown:
``ragexctl stop --all`` first, then a kill of anything left.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

_DROP = ("XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME",
         "RAGEX_RUNTIME_DIR", "RAGEX_DATA_DIR", "RAGEX_STATE_DIR", "RAGEX_CONFIG_DIR",
         "RAGEX_DAEMON_ENABLED", "RAGEX_DAEMON_AUTO_START", "NO_COLOR", "DOCKER_HOST",
         "PYTHONDONTWRITEBYTECODE")


class RxEnv:
    """Private ragex directories and the environment pointing at them."""

    def __init__(self, base: Path, **extra: str) -> None:
        self.base = base
        self.run_dir = base / "run"
        self.run_dir.mkdir(mode=0o700)
        self.data = base / "data"
        self.state = base / "state"
        self.config = base / "config"
        home = base / "home"
        home.mkdir()
        env = {k: v for k, v in os.environ.items() if k not in _DROP}
        env.update(HOME=str(home), RAGEX_RUNTIME_DIR=str(self.run_dir),
                   RAGEX_DATA_DIR=str(self.data), RAGEX_STATE_DIR=str(self.state),
                   RAGEX_CONFIG_DIR=str(self.config), RAGEX_RUNTIME="process",
                   HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TERM="dumb",
                   PYTHONPATH=str(REPO) + (os.pathsep + os.environ["PYTHONPATH"]
                                           if os.environ.get("PYTHONPATH") else ""))
        env.update(extra)
        self.env = env

    @property
    def socket(self) -> Path:
        return self.run_dir / "ragexd.sock"

    @property
    def endpoint(self) -> str:
        return "ipc://" + str(self.socket)

    def ctl(self, *args: str, cwd: Path | str | None = None, timeout: float = 300.0,
            input: str | None = None, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        """Run ``python -m ragexctl ARGS`` as a user would."""
        return subprocess.run([sys.executable, "-m", "ragexctl", *args],
                              env=env or self.env, capture_output=True, text=True,
                              timeout=timeout, cwd=str(cwd or self.base),
                              stdin=subprocess.DEVNULL if input is None else None,
                              input=input)


def make_tree(root: Path) -> Path:
    """A tiny real project: a git marker and a few Python files."""
    (root / ".git").mkdir(parents=True)
    pkg = root / "shop"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "upload.py").write_text(
        "import time\n\n\n"
        "def retry_upload(client, path, attempts=5):\n"
        "    \"\"\"Upload a file, retrying failed uploads with exponential backoff.\"\"\"\n"
        "    delay = 1.0\n"
        "    for _ in range(attempts):\n"
        "        if client.put(path):\n"
        "            return True\n"
        "        time.sleep(delay)\n"
        "        delay *= 2\n"
        "    return False\n")
    (pkg / "config.py").write_text(
        "import json\n\n\n"
        "class ConfigError(Exception):\n"
        "    \"\"\"Raised when the configuration file is invalid.\"\"\"\n\n\n"
        "def parse_config(text):\n"
        "    \"\"\"Parse the JSON configuration and check required keys.\"\"\"\n"
        "    data = json.loads(text)\n"
        "    if 'name' not in data:\n"
        "        raise ConfigError('missing name')\n"
        "    return data\n")
    (pkg / "cart.py").write_text(
        "class Cart:\n"
        "    \"\"\"A shopping cart holding items and their quantities.\"\"\"\n\n"
        "    def __init__(self):\n"
        "        self.items = {}\n\n"
        "    def add_item(self, sku, qty=1):\n"
        "        \"\"\"Add qty units of sku to the cart.\"\"\"\n"
        "        self.items[sku] = self.items.get(sku, 0) + qty\n\n"
        "    def total_price(self, prices):\n"
        "        \"\"\"Sum the price of every item in the cart.\"\"\"\n"
        "        return sum(prices[s] * q for s, q in self.items.items())\n")
    (root / "tools.sh").write_text("#!/bin/sh\n# run the linter\nexec rg --pre=sh \"$@\"\n")
    return root


def _pids_of_ragexd(env: RxEnv) -> list[int]:
    """ragexd and worker processes started with this environment's runtime dir."""
    out = []
    marker = f"RAGEX_RUNTIME_DIR={env.run_dir}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                environ = fh.read().split(b"\0")
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmd = fh.read()
        except OSError:
            continue
        if marker in environ and (b"ragexd" in cmd) and b"ragexctl" not in cmd:
            out.append(int(entry))
    return out


def cleanup_daemon(env: RxEnv) -> list[int]:
    """``ragexctl stop --all``, then SIGKILL whatever is left; returns the leftovers."""
    if env.socket.exists():
        try:
            env.ctl("stop", "--all", timeout=60)
        except subprocess.TimeoutExpired:
            pass
    left = _pids_of_ragexd(env)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if left:
        time.sleep(0.2)
    return left


@pytest.fixture
def rx_env():
    base = Path(tempfile.mkdtemp(prefix="rx-", dir="/tmp"))
    env = RxEnv(base)
    yield env
    cleanup_daemon(env)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def tree(rx_env: RxEnv) -> Path:
    return make_tree(rx_env.base / "proj")
