"""Task K: the ignore rules a regex search (and every save) builds afresh, with a
long ``.gitignore`` above a ``.ragexroot`` subproject.

The rules are rebuilt per search so that an edited ignore file is obeyed at once;
each ignore file's compiled form is now kept under its stat identity
(``discovery.read_ignore_file``), so a rebuild costs a stat per ignore file, not
the compile.  Side by side in one run, alternating: ``IgnoreRules(root)`` plus one
``is_ignored`` with the compiled files kept (now) and with them dropped before
every build (what every search paid before).  The load average is printed: read
the ratio, not the absolute times.

    python bench/bench_ignores.py [--lines 2100] [--runs 15] [--out bench/results/regex-ignores.md]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS, machine_line, median, ms, write_result  # noqa: E402
from ragexd.engine import discovery  # noqa: E402

#: The shapes of a generated monorepo .gitignore's lines.
SHAPES = ("build{i}/", "*.gen{i}", "/src/module{i}/cache/*.pyc", "!keep{i}.txt", "docs/**/tmp{i}")


def build(root: Path) -> None:
    discovery.IgnoreRules(root).is_ignored("src/app/main.py")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=2100)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--out", default=str(RESULTS / "regex-ignores.md"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "mono"
        (repo / ".git").mkdir(parents=True)
        (repo / "pkg").mkdir()
        (repo / "pkg" / ".ragexroot").touch()
        (repo / ".gitignore").write_text("".join(
            SHAPES[i % len(SHAPES)].format(i=i) + "\n" for i in range(args.lines)))
        root = repo / "pkg"
        kept: list[float] = []
        dropped: list[float] = []
        build(root)
        for _ in range(args.runs):
            t0 = time.perf_counter()
            build(root)
            kept.append(time.perf_counter() - t0)
            discovery._compiled.clear()
            t0 = time.perf_counter()
            build(root)
            dropped.append(time.perf_counter() - t0)
    k, d = median(kept), median(dropped)
    write_result(args.out, [
        "### Ignore rules per regex search: a long .gitignore above a subproject (task K)",
        "",
        f"{machine_line()}; median of {args.runs}, alternating.",
        f"A {args.lines}-line `.gitignore` at a repository's top, the project a `.ragexroot` "
        "below it; `IgnoreRules(root)` and one `is_ignored`, as each regex search and each "
        "save builds them (`python bench/bench_ignores.py`).",
        "",
        "| ignore files | per build |",
        "|---|---|",
        f"| compiled every time (before) | {ms(d)} |",
        f"| compiled once, a stat per file after (now) | {ms(k)} |",
        "",
        f"**{d / k:.0f}x less** per regex search and per save; an edited ignore file is "
        "compiled again at the next build (its size, mtime, ctime or inode changed).",
    ])
    return 0


if __name__ == "__main__":
    sys.exit(main())
