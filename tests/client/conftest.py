"""Shared fixtures for the ragexctl tests.

Every test runs the real client as a subprocess (``python -m ragexctl``) in a
private environment (tests.harness.PrivateEnv: its own HOME and ragex
directories under a short /tmp path, unable to reach the developer's own
ragexd).  Whatever ragexd a test starts is stopped in teardown:
``ragexctl stop --all`` first, then a kill of anything left.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import PrivateEnv, make_tree


@pytest.fixture
def rx_env() -> Iterator[PrivateEnv]:
    # These tests are about the way to ragexd (real or fake): a regex search takes it
    # too, not the client's direct ripgrep path (tested in test_direct_regex.py).
    env = PrivateEnv(TERM="dumb", RAGEX_SEARCH_DIRECT_REGEX="false")
    yield env
    env.cleanup()


@pytest.fixture
def tree(rx_env: PrivateEnv) -> Path:
    return make_tree(rx_env.base / "proj")
