"""Fixtures for the MCP tests: a private ragexd auto-started by ragexctl
(tests.harness.live, shared with the freshness suite) and a small project.

The folder is ``mcp_server``, not ``mcp``: a package named ``mcp`` would shadow
the MCP SDK itself.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.harness import make_project, short_tmp
from tests.harness.live import LiveRagex, live_ragex


@pytest.fixture(scope="module")
def live() -> Iterator[LiveRagex]:
    with live_ragex() as rx:
        yield rx


@pytest.fixture(scope="module")
def proj(live: LiveRagex):
    root = make_project(short_tmp("rx-proj-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)
