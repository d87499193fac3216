"""Fixtures for the ragexd tests (the helpers live in tests.harness)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import RagexInstance, kill_workers_under, short_tmp


@pytest.fixture
def rx_base() -> Iterator[Path]:
    """A short /tmp directory (ipc:// paths must stay under ~107 bytes)."""
    base = short_tmp()
    yield base
    kill_workers_under(base)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def daemon_factory() -> Iterator[list[RagexInstance]]:
    """Collects the ragexd instances a test starts and stops them all afterwards."""
    started: list[RagexInstance] = []
    yield started
    for daemon in started:
        daemon.cleanup()
