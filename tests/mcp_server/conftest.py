"""Fixtures for the MCP tests: a private ragexd (the freshness suite's helper,
loaded by path so both suites share one implementation) and a small project.

This directory has no __init__.py on purpose: as a package it would be named
``mcp`` and could shadow the MCP SDK itself.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

_HELPER = Path(__file__).resolve().parents[1] / "freshness" / "rx_live.py"
if "rx_live" not in sys.modules:
    spec = importlib.util.spec_from_file_location("rx_live", _HELPER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["rx_live"] = module
    spec.loader.exec_module(module)

from rx_live import LiveRagex, make_project  # noqa: E402


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
