"""Measure the client: import time, and a warm search in a fresh process against
``python -c 'import zmq'`` and ``--no-daemon``.

Not a test (pytest does not collect it): run it by hand on a quiet machine::

    .venv/bin/python tests/client/bench_client.py [--runs 10] [--oneshot-runs 5]

It builds a private ragex environment under /tmp, lets the first search start
ragexd and index a small tree, then times each command ``--runs`` times,
interleaved so that a load spike hits every command alike, and prints medians
and p90s.  It stops its ragexd at the end.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.harness import PrivateEnv, make_tree  # noqa: E402

QUERY = "retry failed uploads with backoff"


CPU: dict[str, list[float]] = {}


def timed(cmd: list[str], env: dict[str, str], cwd: Path, label: str = "") -> float:
    """Wall time in ms; the child's CPU time (user+sys) is kept in CPU[label]:
    on a shared machine it is steadier than the wall clock."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, cwd=str(cwd), stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    took = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr}")
    if label:
        CPU.setdefault(label, []).append(
            (r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) * 1000)
    return took * 1000


def importtime_ms(module: str, env: dict[str, str]) -> float:
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                         env=env, capture_output=True, text=True, check=True, cwd="/")
    for line in reversed(out.stderr.splitlines()):
        parts = line.split("|")
        if len(parts) == 3 and parts[2].strip() == module:
            return int(parts[1]) / 1000
    raise SystemExit(f"no importtime line for {module}")


def summary(label: str, values: list[float]) -> str:
    values = sorted(values)
    p90 = values[min(len(values) - 1, int(round(0.9 * (len(values) - 1))))]
    return (f"{label:44s} p50 {statistics.median(values):8.1f} ms   p90 {p90:8.1f} ms   "
            f"min {values[0]:8.1f} ms   (n={len(values)})")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--oneshot-runs", type=int, default=5)
    args = ap.parse_args()

    env = PrivateEnv(TERM="dumb")
    tree = make_tree(env.base / "proj")
    py = sys.executable
    try:
        first = timed([py, "-m", "ragexctl", "search", QUERY], env.env, tree)
        print(f"cold first search (starts ragexd + worker, loads the model, indexes): "
              f"{first:.0f} ms")
        # Warm the worker's semantic path and the bytecode caches.
        for _ in range(3):
            timed([py, "-m", "ragexctl", "search", "--mode", "semantic", QUERY], env.env, tree)

        imp = {m: [] for m in ("zmq", "ragexctl.cli", "ragexctl.client")}
        for _ in range(args.runs):
            for m in imp:
                imp[m].append(importtime_ms(m, env.env))
        print("\nimport time (python -X importtime, cumulative):")
        for m, v in imp.items():
            print(summary(f"  import {m}", v))

        cmds = {
            "python -c pass": [py, "-c", "pass"],
            "python -c 'import zmq'": [py, "-c", "import zmq"],
            "ragexctl --version (one HELLO)": [py, "-m", "ragexctl", "--version"],
            "ragexctl search --mode semantic (warm)": [py, "-m", "ragexctl", "search",
                                                       "--mode", "semantic", QUERY],
            "ragexctl search (auto, warm)": [py, "-m", "ragexctl", "search", QUERY],
            "ragexctl search --mode symbol (warm)": [py, "-m", "ragexctl", "search",
                                                     "--mode", "symbol", "parse_config"],
        }
        times: dict[str, list[float]] = {k: [] for k in cmds}
        for _ in range(args.runs):
            for k, cmd in cmds.items():
                times[k].append(timed(cmd, env.env, tree, k))
        oneshot = [timed([py, "-m", "ragexctl", "search", "--no-daemon", "--mode", "semantic",
                          QUERY], env.env, tree) for _ in range(args.oneshot_runs)]
        print("\nwall time of a fresh process:")
        for k, v in times.items():
            print(summary("  " + k, v))
        print(summary("  ragexctl search --no-daemon --mode semantic", oneshot))
        print("\nCPU time of the client process alone (user+sys):")
        for k, v in CPU.items():
            print(summary("  " + k, v))
        print(f"\nload average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        warm = statistics.median(times["ragexctl search --mode semantic (warm)"])
        print(f"\none-shot / warm (p50): {statistics.median(oneshot) / warm:.0f}x")
    finally:
        env.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
