"""Shared fixtures for the service-unit tests (issue #5).

Every test gets a private HOME and ragex directories under a short /tmp path
(tests.harness.make_env), whose environment has no XDG_RUNTIME_DIR, DBUS or
NOTIFY_SOCKET, so nothing here can reach a real user manager or the
developer's own ragexd by accident.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import REPO, short_tmp

#: The console script of this installation (pip install -e . put it beside python).
RAGEXD = Path(sys.executable).parent / "ragexd"


@pytest.fixture
def rx_tmp() -> Iterator[Path]:
    path = short_tmp()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def ragexd_script() -> Path:
    if not RAGEXD.exists():
        pytest.fail(f"{RAGEXD} is missing: run `{sys.executable} -m pip install --no-deps -e "
                    f"{REPO}` so the ragexd console script exists")
    return RAGEXD
