"""Docker tests run against the real engine and the real worker image, or are skipped
WITH the reason printed (in the skip reason, shown by ``pytest -ra``, and in a line of
the terminal summary), never silently passed.

When the image exists but was built from other sources (its ``ragex.source-hash``
label differs), ``packaging/build-image.sh`` rebuilds it first (seconds: only the
ragex layer changes), so the containers run the code under test.  Set
RAGEX_DOCKER_NO_BUILD=1 to test the image as it is.

This directory deliberately has NO ``__init__.py``: as a package it would be named
``docker`` (pytest puts ``tests/`` on sys.path for the sibling packages) and shadow the
Docker SDK that ragexd.runtimes.docker imports.  Hence also the unique module names
(``docker_support``, ``test_docker_*``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

_state: dict[str, str | None] = {"problem": None, "checked": None, "image": None}


def _config():
    from ragexd import config

    env = {}
    if os.environ.get("RAGEX_DOCKER_IMAGE"):
        env["RAGEX_DOCKER_IMAGE"] = os.environ["RAGEX_DOCKER_IMAGE"]
    return config.load(env=env, config_file=Path("/nonexistent/ragex-config.toml"))


def _check() -> str | None:
    """None when the Docker tests can run; else why not, as a sentence."""
    try:
        import docker  # noqa: F401
    except ImportError as exc:
        return f"the docker Python SDK is not installed ({exc})"
    from ragexd.runtimes.docker import DockerRuntime

    cfg = _config()
    _state["image"] = cfg.docker_image
    problem = DockerRuntime.probe(cfg)
    if problem and "engine" in problem:
        return problem
    image_present = problem is None or "is for ragex" in problem
    if image_present and os.environ.get("RAGEX_DOCKER_NO_BUILD") != "1":
        # Rebuild when stale (a no-op taking ~0.3 s when it is up to date).
        proc = subprocess.run(["bash", str(REPO / "packaging" / "build-image.sh")],
                              capture_output=True, text=True, timeout=1800,
                              env={**os.environ, "RAGEX_IMAGE": cfg.docker_image})
        if proc.returncode != 0:
            tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
            return f"the worker image {cfg.docker_image} is stale and rebuilding it failed: {tail}"
        problem = DockerRuntime.probe(cfg)
    return problem


@pytest.fixture(scope="session")
def docker_available() -> str | None:
    if _state["checked"] is None:
        _state["problem"] = _check()
        _state["checked"] = "yes"
        if _state["problem"]:
            print(f"\nDocker tests SKIPPED: {_state['problem']}", file=sys.stderr)
    return _state["problem"]


@pytest.fixture(scope="session", autouse=True)
def _require_docker(docker_available: str | None) -> None:
    # Session scope: it must run before the module fixtures that start containers.
    if docker_available:
        pytest.skip(f"Docker unavailable: {docker_available}")


@pytest.fixture(scope="session")
def image_ref(docker_available: str | None) -> str:
    return str(_state["image"])


@pytest.fixture(scope="session")
def docker_client(docker_available: str | None) -> Iterator[object]:
    if docker_available:
        pytest.skip(f"Docker unavailable: {docker_available}")
    import docker

    client = docker.from_env(timeout=60)
    yield client
    client.close()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001
    if _state["checked"] is None:
        return
    if _state["problem"]:
        terminalreporter.write_line(f"Docker tests SKIPPED: {_state['problem']}", yellow=True)
    else:
        terminalreporter.write_line(f"Docker tests ran against the image {_state['image']}")
