"""Where workers run: local processes or Docker containers.

``select_runtime`` turns the ``runtime`` setting into a Runtime plus the
sentence that explains the choice (shown by ``ragexctl status``), because
"auto" silently picking one or the other would make performance and isolation
differences impossible to diagnose.  The Docker runtime is imported lazily: it
pulls in docker-py, and a ragex without it must still work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import ExitInfo, Runtime, WorkerHandle, WorkerSpec

if TYPE_CHECKING:  # pragma: no cover
    from ..config import Config

__all__ = ["ExitInfo", "Runtime", "WorkerHandle", "WorkerSpec", "RuntimeUnavailable",
           "select_runtime"]


class RuntimeUnavailable(RuntimeError):
    """The configured runtime cannot be used; the message says why and what to do."""


def _docker(cfg: "Config") -> tuple[Runtime | None, str]:
    """(runtime, None-reason) when Docker is usable, else (None, why not)."""
    try:
        from .docker import DockerRuntime
    except ImportError as exc:
        return None, f"the Docker runtime is not available in this install ({exc})"
    try:
        problem = DockerRuntime.probe(cfg)
    except Exception as exc:  # noqa: BLE001 - a probe must not take ragexd down
        problem = f"probing Docker failed: {type(exc).__name__}: {exc}"
    if problem:
        return None, problem
    try:
        return DockerRuntime(cfg), ""
    except Exception as exc:  # noqa: BLE001
        return None, f"cannot use Docker: {type(exc).__name__}: {exc}"


def select_runtime(cfg: "Config") -> tuple[Runtime, str]:
    """The runtime ``cfg.runtime`` asks for, and a sentence saying why it was chosen.

    Raises RuntimeUnavailable when ``runtime = "docker"`` is configured but
    Docker cannot be used: an explicit choice must not silently degrade.
    """
    from .process import ProcessRuntime

    if cfg.runtime == "process":
        return ProcessRuntime(cfg), "runtime = process is configured"
    if cfg.runtime == "docker":
        runtime, problem = _docker(cfg)
        if runtime is None:
            raise RuntimeUnavailable(
                f"runtime = docker is configured but Docker cannot be used: {problem}. "
                "Start the Docker engine and build the worker image, or set "
                "runtime = \"process\" (or RAGEX_RUNTIME=process).")
        return runtime, "runtime = docker is configured"
    runtime, problem = _docker(cfg)
    if runtime is not None:
        return runtime, "runtime = auto: the Docker engine answers and the worker image is present"
    # Said by `ragexctl status` for as long as this ragexd runs: when the choice was
    # made, and how to make it again (Docker started later was taken for "not
    # running" now, beside `doctor` saying it answers).
    return ProcessRuntime(cfg), (f"runtime = auto fell back to local processes when ragexd "
                                 f"started: {problem}; `ragexctl stop --all` lets the next "
                                 "ragexd choose again")
