"""Shared fixtures: real stdlib trees, real model, real chroma, real rg."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import pytest

from tests.harness import short_tmp

#: real code the tests index, not tests of ours (data/real_repo keeps scikit-learn's own
#: ``tests/test_*.py`` at their real paths, which pytest would otherwise collect)
collect_ignore_glob = ["data/*"]


@pytest.fixture(scope="session")
def scratch() -> Iterator[Path]:
    """A short /tmp directory for the whole session (sockets need short paths)."""
    path = short_tmp("rx-eng-")
    yield path
    shutil.rmtree(path, ignore_errors=True)
