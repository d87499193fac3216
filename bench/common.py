"""Shared helpers for the benchmarks: machine description, timing, a private ragexd.

Benchmarks compare side by side in one run (warm vs one-shot, ragex vs a plain
baseline) and report medians; absolute numbers move with the machine, ratios
measured together much less.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable


def machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (f"{os.cpu_count()} cores ({cpu or platform.processor()}), {mem}, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}")


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def time_cmd(cmd: list[str], *, env: dict[str, str] | None = None, runs: int = 10,
             cwd: Path | None = None, input: str | None = None,
             ok_codes: tuple[int, ...] = (0,)) -> list[float]:
    """Wall time of a whole command, ``runs`` times, in seconds."""
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, cwd=cwd, input=input, capture_output=True, text=True)
        out.append(time.perf_counter() - t0)
        if proc.returncode not in ok_codes:
            raise RuntimeError(f"{cmd!r} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return out


def time_fn(fn: Callable[[], object], runs: int = 20, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def ms(x: float) -> str:
    return f"{x * 1000:.1f} ms" if x < 10 else f"{x:.1f} s"


@contextmanager
def private_ragex_env(runtime: str = "process") -> Iterator[dict[str, str]]:
    """Temp dirs for one private ragexd; stops it (and its workers) on exit."""
    base = Path(tempfile.mkdtemp(prefix="rxb-"))
    env = dict(os.environ)
    env.update({
        "RAGEX_RUNTIME_DIR": str(base / "run"), "RAGEX_DATA_DIR": str(base / "data"),
        "RAGEX_STATE_DIR": str(base / "state"), "RAGEX_CONFIG_DIR": str(base / "config"),
        "RAGEX_RUNTIME": runtime, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
    })
    try:
        yield env
    finally:
        subprocess.run([PY, "-m", "ragexctl", "stop", "--all"], env=env, capture_output=True,
                       timeout=60)
        pidfile = base / "run" / "ragexd.pid"
        try:
            pid = int(pidfile.read_text().split()[0])
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass
        shutil.rmtree(base, ignore_errors=True)


def copy_stdlib_package(name: str, dest: Path) -> Path:
    import sysconfig

    src = Path(sysconfig.get_paths()["stdlib"]) / name
    target = dest / name
    shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "test", "tests"))
    return target
