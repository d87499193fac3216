"""Docker tests run against the real engine and the real worker image, or are skipped
WITH the reason printed (in the skip reason, shown by ``pytest -ra``, and in a line of
the terminal summary), never silently passed.

When the image exists but was built from other sources (its ``ragex.source-hash``
label differs), ``packaging/build-image.sh`` rebuilds it first (seconds: only the
ragex layer changes), so the containers run the code under test.  Set
RAGEX_DOCKER_NO_BUILD=1 to test the image as it is.

The folder is ``docker_runtime``, not ``docker``: a package named ``docker`` would
shadow the Docker SDK that ragexd.runtimes.docker imports.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from tests.harness.containers import docker_problem, image_ref as _image_ref

_reported: list[str | None] = []


@pytest.fixture(scope="session")
def docker_available() -> str | None:
    if not _reported:
        _reported.append(docker_problem())
        if _reported[0]:
            print(f"\nDocker tests SKIPPED: {_reported[0]}", file=sys.stderr)
    return _reported[0]


@pytest.fixture(scope="session", autouse=True)
def _require_docker(docker_available: str | None) -> None:
    # Session scope: it must run before the module fixtures that start containers.
    if docker_available:
        pytest.skip(f"Docker unavailable: {docker_available}")


@pytest.fixture(scope="session")
def image_ref(docker_available: str | None) -> str:
    return _image_ref()


@pytest.fixture(scope="session")
def docker_client(docker_available: str | None) -> Iterator[object]:
    if docker_available:
        pytest.skip(f"Docker unavailable: {docker_available}")
    import docker

    client = docker.from_env(timeout=60)
    yield client
    client.close()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001
    if not _reported:
        return
    if _reported[0]:
        terminalreporter.write_line(f"Docker tests SKIPPED: {_reported[0]}", yellow=True)
    else:
        terminalreporter.write_line(f"Docker tests ran against the image {_image_ref()}")
