"""Run every benchmark and assemble BENCHMARKS.md from their result sections.

Each benchmark writes its own section to bench/results/<name>.md (with the
machine it ran on); this script runs them in turn and concatenates the
sections, so one benchmark can be re-run alone and the file rebuilt.

    python bench/run_all.py [--only search,docker,mcp,quality,repo-quality,first_index,large,warm,runtimes,team] [--assemble-only]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.common import REPO, RESULTS  # noqa: E402 - the one place of both paths

BENCHES = {
    "search": [sys.executable, str(HERE / "bench_search.py")],
    "regex": [sys.executable, str(HERE / "bench_regex.py")],
    "docker": [sys.executable, str(HERE / "bench_docker.py")],
    "mcp": [sys.executable, str(HERE / "bench_mcp.py")],
    "quality": [sys.executable, str(HERE / "eval_quality.py"), "--loo"],
    "repo-quality": [sys.executable, str(HERE / "eval_repo.py"), "--write",
                     "bench/results/repo-quality.md", "--weights", '{"test_prior": 1.0}',
                     "--weights", '{"class_prior": 1.0}'],
    "large": [sys.executable, str(HERE / "bench_large.py")],
    "warm": [sys.executable, str(HERE / "bench_warm.py")],
    "runtimes": [sys.executable, str(HERE / "bench_runtimes.py")],
    "first_index": [sys.executable, str(HERE / "first_index.py")],
    "team": [sys.executable, str(HERE / "bench_team.py")],
}
ORDER = ["search", "regex", "quality", "repo-quality", "docker", "mcp", "first_index", "large", "warm",
         "runtimes", "team"]


def assemble() -> None:
    parts = ["# Benchmarks", "",
             "Produced by `make bench` (`bench/run_all.py`); every figure is a median measured side by "
             "side with its baseline in the same run, on the machine named in its section. "
             "Re-run one benchmark alone and `python bench/run_all.py --assemble-only` to rebuild this file.",
             ""]
    for name in ORDER:
        f = RESULTS / f"{name}.md"
        if name == "quality" and not f.exists():
            f = HERE / "QUALITY.md"  # eval_quality.py's own output file
        if f.exists():
            parts += [f.read_text().strip(), ""]
            # a benchmark's other sections: bench_large.py's raw-only reruns,
            # bench_team.py's shared-store half, first_index.py --catalog-only, the
            # hand-written conclusions beside a generated table (runtimes-notes.md)
            for extra in sorted(RESULTS.glob(f"{name}-*.md")):
                parts += [extra.read_text().strip(), ""]
        else:
            parts += [f"## {name}", "", "_not run yet_", ""]
    (REPO / "BENCHMARKS.md").write_text("\n".join(parts))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default=",".join(ORDER))
    ap.add_argument("--assemble-only", action="store_true")
    args = ap.parse_args()
    failed = []
    if not args.assemble_only:
        for name in args.only.split(","):
            cmd = BENCHES[name]
            if not Path(cmd[1]).exists():
                print(f"skipping {name}: {cmd[1]} does not exist")
                continue
            t0 = time.time()
            print(f"== {name}", flush=True)
            if subprocess.run(cmd, cwd=REPO).returncode != 0:
                failed.append(name)
            print(f"== {name} took {time.time() - t0:.0f} s", flush=True)
    assemble()
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
