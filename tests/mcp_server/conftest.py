"""Fixtures for the MCP tests: a private ragexd (the freshness suite's helper,
so both suites share one implementation) and a small project.

The folder is ``mcp_server``, not ``mcp``: a package named ``mcp`` would shadow
the MCP SDK itself.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.freshness.rx_live import LiveRagex, make_project


@pytest.fixture(scope="module")
def live():
    rx = LiveRagex().open()
    try:
        yield rx
    finally:
        left = rx.close()
    assert not left, f"processes left after SHUTDOWN: {left}"


@pytest.fixture(scope="module")
def proj(live: LiveRagex):
    root = make_project(Path(tempfile.mkdtemp(prefix="rx-proj-", dir="/tmp")))
    yield root
    shutil.rmtree(root, ignore_errors=True)
