"""Fixtures for the ragexd tests (helpers live in support.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import Ragexd, short_tmp


@pytest.fixture
def rx_base() -> Iterator[Path]:
    """A short /tmp directory (ipc:// paths must stay under ~107 bytes)."""
    import shutil

    from .support import kill_workers_under

    base = short_tmp()
    yield base
    kill_workers_under(base)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def daemon_factory() -> Iterator[list[Ragexd]]:
    """Collects the ragexd instances a test starts and stops them all afterwards."""
    started: list[Ragexd] = []
    yield started
    for daemon in started:
        daemon.cleanup()
