"""Docker for the tests: the ``docker`` CLI, this test's containers, and whether
the Docker tests can run at all (engine answers, worker image present and built
from these sources: ``packaging/build-image.sh`` rebuilds a stale one first,
in seconds, unless RAGEX_DOCKER_NO_BUILD=1)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from .env import REPO

DOCKER = shutil.which("docker", path="/usr/bin") or shutil.which("docker") or "docker"


def docker(*args: str, check: bool = True, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI; fails the test with docker's stderr when ``check``."""
    proc = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({proc.returncode}): "
                             f"{proc.stderr.strip()}")
    return proc


def inspect(ident: str) -> dict[str, Any]:
    return json.loads(docker("inspect", ident).stdout)[0]


def containers(**labels: str) -> list[str]:
    """Ids of all containers (running or not) carrying these labels."""
    args = ["ps", "-aq", "--no-trunc"]
    for key, value in labels.items():
        args += ["--filter", f"label={key}={value}"]
    return docker(*args).stdout.split()


def remove_containers_under(base: Path) -> None:
    """Remove every ragex container whose project or sockets live under ``base``."""
    for cid in containers(**{"ragex.managed": "1"}):
        try:
            labels = inspect(cid)["Config"]["Labels"] or {}
        except (AssertionError, IndexError, KeyError):
            continue
        if any(str(v).startswith(str(base)) for v in labels.values()):
            docker("rm", "-f", cid, check=False)


def docker_config(**env: str) -> Any:
    """ragexd's configuration with the caller's RAGEX_DOCKER_IMAGE, no config file."""
    from ragexd import config

    base = {}
    if os.environ.get("RAGEX_DOCKER_IMAGE"):
        base["RAGEX_DOCKER_IMAGE"] = os.environ["RAGEX_DOCKER_IMAGE"]
    base.update(env)
    return config.load(env=base, config_file=Path("/nonexistent/ragex-config.toml"))


_checked: dict[str, str | None] = {}


def docker_problem() -> str | None:
    """None when the Docker tests can run; else why not, as a sentence (checked once
    per session: the first call may rebuild the worker image)."""
    if "problem" not in _checked:
        try:
            _checked["problem"] = _check()
        except Exception as exc:  # noqa: BLE001 - any failure means: skip, with the reason
            _checked["problem"] = f"checking Docker failed: {type(exc).__name__}: {exc}"
    return _checked["problem"]


def image_ref() -> str:
    """The worker image the Docker tests run (after ``docker_problem``)."""
    return str(_checked.get("image") or docker_config().docker_image)


def _check() -> str | None:
    try:
        import docker as sdk  # noqa: F401
    except ImportError as exc:
        return f"the docker Python SDK is not installed ({exc})"
    from ragexd.runtimes.docker import DockerRuntime

    cfg = docker_config()
    _checked["image"] = cfg.docker_image
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
