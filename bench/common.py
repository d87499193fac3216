"""Shared helpers for the benchmarks: machine description, timing, a private ragexd.

Benchmarks compare side by side in one run (warm vs one-shot, ragex vs a plain
baseline) and report medians; absolute numbers move with the machine, ratios
measured together much less.  The private environment, the protocol client and
the stdlib copies are the tests' own (tests.harness): a benchmark measures what
the tests check.  Run a benchmark from the repository root (``python bench/X.py``):
each script puts that root first on sys.path.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

from tests.harness import REPO, PrivateEnv  # noqa: F401 - REPO: the scripts' too

PY = sys.executable
#: where each benchmark writes its section; ``run_all.py`` assembles them into BENCHMARKS.md
RESULTS = REPO / "bench" / "results"


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


def load_average() -> float:
    """The 1-minute load average, which every section states: on a shared machine
    absolute figures move with it, ratios measured side by side much less."""
    return os.getloadavg()[0]


def machine_line(load_before: float | None = None, load_after: float | None = None) -> str:
    """The sentence a section's figures are read against: the machine, and the load
    average before and after the measurements when the script took both, else when
    it ended (now, unless given).  Scripts add their own caveats after it."""
    after = load_average() if load_after is None else load_after
    load = (f"{load_before:.1f} before and {after:.1f} after" if load_before is not None
            else f"{after:.1f} when it ended")
    return f"Machine: {machine()}; load average {load}"


def write_result(path: Path | str, lines: Sequence[str], *, echo: bool = True) -> Path:
    """Print a benchmark's section (unless it printed each line as it went) and
    write it (usually ``RESULTS / "<name>.md"``, which ``run_all.py --assemble-only``
    picks up), ending in one newline."""
    text = "\n".join(lines).rstrip("\n") + "\n"
    if echo:
        print(text)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return out


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
    """The environment of one private ragexd (tests.harness.PrivateEnv); on exit
    ``ragexctl stop --all``, a kill of whatever is left, and its directories removed."""
    private = PrivateEnv(runtime=runtime)
    try:
        yield private.env
    finally:
        private.cleanup()

