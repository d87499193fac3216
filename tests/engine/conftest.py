"""Shared fixtures: real stdlib trees, real model, real chroma, real rg."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pytest


@pytest.fixture(scope="session")
def scratch() -> Iterator[Path]:
    """A short /tmp directory for the whole session (sockets need short paths)."""
    path = Path(tempfile.mkdtemp(prefix="rx-eng-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
