"""Fixtures of the fault suite: Docker availability, a throw-away local user."""

from __future__ import annotations

import os
import pwd
import secrets
import subprocess
from collections.abc import Iterator

import pytest

from tests.harness.containers import docker_problem


@pytest.fixture(scope="session")
def need_root() -> None:
    """Mounts (tmpfs, read-only binds) and useradd need root; so does this suite."""
    if os.geteuid() != 0:
        pytest.skip("needs root (mount, useradd): run the fault suite as root, as CI does")


@pytest.fixture(scope="session")
def need_docker() -> None:
    problem = docker_problem()
    if problem:
        pytest.skip(f"Docker unavailable: {problem}")


@pytest.fixture
def other_user(need_root: None) -> Iterator[pwd.struct_passwd]:
    """A fresh local user with no home and no shell, removed afterwards."""
    name = "rxf" + secrets.token_hex(3)
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True, timeout=30)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], capture_output=True, timeout=30)
