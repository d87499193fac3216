"""Docker runtime benchmark: a warm search through a container vs what it replaces.

Side by side, in one run, on one corpus (a copy of the stdlib ``email`` package):

* warm   — ``ragexctl search`` (a fresh client process each time) through ragexd
           with RAGEX_RUNTIME=docker: the query crosses the ipc socket bind-mounted
           into the long-lived worker container;
* run    — the old way: ``docker run --rm <image> oneshot ...`` per command (a new
           container that loads the model, searches and exits);
* exec   — a bare ``docker exec <container> true``: the floor of any design that
           runs a command inside a running container per query.

Targets: warm faster than the bare docker exec, and >= 80x faster than docker run --rm.
Also reports the image size and the worker container's memory.  Prints medians and
ratios and writes them to bench/results/docker.md.

    .venv/bin/python bench/bench_docker.py [--runs 15] [--run-runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (PY, REPO, RESULTS, machine_line, median, ms, pct,  # noqa: E402
                          private_ragex_env, time_cmd, write_result)
from tests.harness import Client, copy_stdlib  # noqa: E402
from tests.harness.containers import DOCKER, docker_config  # noqa: E402

QUERY = "parse an email address into its display name and address"


def sh(*cmd: str, env: dict[str, str] | None = None, timeout: float = 600,
       input: str | None = None) -> str:
    proc = subprocess.run(list(cmd), env=env, capture_output=True, text=True, timeout=timeout,
                          input=input)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc.stdout


def docker_version() -> str:
    try:
        return sh(DOCKER, "version", "-f", "{{.Server.Version}} (API {{.Server.APIVersion}})").strip()
    except SystemExit:
        return "unknown"


def _roundtrip(env: dict[str, str], project: Path, runs: int, Op) -> list[float]:  # noqa: ANN001
    """Warm search round trips over the protocol (the first two untimed)."""
    client = Client("ipc://" + str(Path(env["RAGEX_RUNTIME_DIR"]) / "ragexd.sock"))
    out = []
    try:
        for i in range(runs + 2):
            t0 = time.perf_counter()
            reply = client.call(Op.SEARCH, project.resolve(), 60.0, query=QUERY, limit=10)
            if i >= 2:
                out.append(time.perf_counter() - t0)
            assert reply.ok, reply.error
    finally:
        client.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="timed warm searches / execs")
    parser.add_argument("--run-runs", type=int, default=5, help="timed docker run --rm")
    args = parser.parse_args()

    from ragexd.protocol import Op, Request
    from ragexd.runtimes.docker import DockerRuntime

    cfg = docker_config()
    problem = DockerRuntime.probe(cfg)
    if problem:
        print(f"bench_docker: cannot run: {problem}", file=sys.stderr)
        return 2
    image = cfg.docker_image
    image_size = int(sh(DOCKER, "image", "inspect", "-f", "{{.Size}}", image).strip())

    work = Path(tempfile.mkdtemp(prefix="rxbd-"))
    try:
        project = copy_stdlib(work, "email") / "email"
        (project / ".git").mkdir()
        files = sum(1 for p in project.rglob("*.py"))
        with private_ragex_env("docker") as env, private_ragex_env("process") as penv:
            ctl = [PY, "-m", "ragexctl"]
            t0 = time.perf_counter()
            sh(*ctl, "index", str(project), env=env, timeout=900)
            index_s = time.perf_counter() - t0
            status = json.loads(sh(*ctl, "status", "--json", env=env))
            workers = [w for w in status["workers"] if w["root"] == str(project.resolve())]
            assert workers and workers[0]["runtime"] == "docker", status
            container = workers[0]["ident"]
            project_id = workers[0]["project_id"]
            search = [*ctl, "search", "--project", str(project), "--color", "never", QUERY]
            first = sh(*search, env=env)
            print(f"first hit: {first.splitlines()[0] if first else '(none)'}")

            # A process-runtime ragexd beside it, on a copy of the very same index (the
            # on-disk format is the same in both runtimes), for a like-for-like comparison.
            shutil.copytree(env["RAGEX_DATA_DIR"], penv["RAGEX_DATA_DIR"], dirs_exist_ok=True)
            # The old way, `docker run --rm` per command, on another copy of the index.
            index_copy = work / "index-copy"
            shutil.copytree(Path(env["RAGEX_DATA_DIR"]) / "projects" / project_id, index_copy)
            request = json.dumps(Request(op=Op.SEARCH, args={"query": QUERY, "limit": 10})
                                 .to_wire())
            run_cmd = [DOCKER, "run", "--rm", "-i", "--network", "none", "--read-only",
                       "--tmpfs", "/tmp:size=64m,mode=1777", "--cap-drop", "ALL",
                       "--security-opt", "no-new-privileges", "--user",
                       f"{os.getuid()}:{os.getgid()}",
                       "-v", f"{project}:/workspace:ro", "-v", f"{index_copy}:/index",
                       image, "oneshot", "--root", "/workspace", "--index-dir", "/index"]
            out = sh(*run_cmd, input=request, timeout=300)
            last = json.loads(out.strip().splitlines()[-1])
            assert last.get("ok") and last["result"]["hits"], last

            # Interleave every measurement so that background load hits them all alike.
            exec_cmd = [DOCKER, "exec", container, "true"]
            py_cmd = [PY, "-c", "pass"]
            for cmd, e in ((search, env), (search, penv), (exec_cmd, None), (py_cmd, None)):
                time_cmd(cmd, env=e, runs=2)                  # warm-up (penv: starts ragexd)
            warm: list[float] = []
            warm_process: list[float] = []
            exec_: list[float] = []
            bare_py: list[float] = []
            run: list[float] = []
            every = max(1, args.runs // max(1, args.run_runs))
            for i in range(args.runs):
                warm += time_cmd(search, env=env, runs=1)
                exec_ += time_cmd(exec_cmd, runs=1)
                warm_process += time_cmd(search, env=penv, runs=1)
                bare_py += time_cmd(py_cmd, runs=1)
                if i % every == 0 and len(run) < args.run_runs:
                    run += time_cmd(run_cmd, runs=1, input=request)
            # The same request from a client that stays connected: what ragexd and the
            # container add, without a client process starting each time.
            roundtrip = _roundtrip(env, project, args.runs, Op)

            status = json.loads(sh(*ctl, "status", "--json", env=env))
            rss = next(w["rss"] for w in status["workers"] if w["project_id"] == project_id)
            stats = sh(DOCKER, "stats", "--no-stream", "--format", "{{.MemUsage}}", container).strip()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    w, e, r = median(warm), median(exec_), median(run)
    lines = [
        "# Docker runtime benchmark",
        "",
        f"{machine_line()}; Docker {docker_version()}.",
        f"Corpus: stdlib `email` ({files} Python files), query {QUERY!r}; first index through "
        f"the container {index_s:.1f} s.",
        "",
        "| what | median | p90 | runs |",
        "| --- | --- | --- | --- |",
        f"| warm `ragexctl search` via ragexd → container (fresh client each time) "
        f"| {ms(w)} | {ms(pct(warm, 90))} | {len(warm)} |",
        f"| bare `docker exec <container> true` | {ms(e)} | {ms(pct(exec_, 90))} | {len(exec_)} |",
        f"| `docker run --rm <image> oneshot` (per command) | {ms(r)} | {ms(pct(run, 90))} "
        f"| {len(run)} |",
        f"| for reference: the same search from a connected client (ragexd + container only) "
        f"| {ms(median(roundtrip))} | {ms(pct(roundtrip, 90))} | {len(roundtrip)} |",
        f"| for reference: warm `ragexctl search`, process runtime, same index "
        f"| {ms(median(warm_process))} | {ms(pct(warm_process, 90))} | {len(warm_process)} |",
        f"| for reference: `python -c pass` (interpreter start, the client's floor) "
        f"| {ms(median(bare_py))} | {ms(pct(bare_py, 90))} | {len(bare_py)} |",
        "",
        f"- warm search vs bare docker exec: **{e / w:.2f}×** "
        f"(target: > 1×, i.e. faster) — {'met' if w < e else 'NOT met'}",
        f"- warm search vs docker run --rm: **{r / w:.0f}×** faster "
        f"(target: ≥ 80×) — {'met' if r / w >= 80 else 'NOT met'}",
        f"- Docker vs process runtime, warm search: {w / median(warm_process):.2f}× the time",
        f"- where a warm search's time goes: ragexd + container {ms(median(roundtrip))}; the "
        f"client process {ms(w - median(roundtrip))}, of which the bare interpreter start "
        f"{ms(median(bare_py))}",
        f"- image {image}: {image_size / 1024**2:.0f} MiB",
        f"- worker container memory: {rss / 1024**2:.0f} MiB (ragexd status, from docker stats "
        f"minus page cache); `docker stats`: {stats}",
    ]
    out = write_result(RESULTS / "docker.md", lines)
    print(f"written to {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
