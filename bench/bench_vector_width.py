"""The index's bytes a chunk with vectors stored as float32 (before) and float16
(now), side by side on one real index (issue #10: at most 3 KB a chunk).

A copy of an installed third-party package is indexed once by this code with
``vectors.STORED`` set to float32 (byte for byte what the previous ragex wrote);
the index is copied, and an engine on the copy runs the ordinary next index run,
which embeds nothing and rewrites the float32 rows as float16 (``VectorFile.narrow``).
Both are then measured the same way: bytes a chunk by file and by table, the
time to read the whole vector file into the in-memory matrix (what the first
query pays), the cosines between each vector and its float16 form, and whether
semantic searches give the same top ten.  Last, the float16 index is exported as a
snapshot (``ragexctl index --export``) in format 1 (float32 vectors, what the
previous ragex wrote) and format 2 (float16, now), side by side.

    python bench/bench_vector_width.py --package sklearn --max-files 150

writes ``bench/results/warm-vectors.md`` (assembled after the warm section).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from bench.bench_large import QUERIES, copy_tree  # noqa: E402
from bench.bench_warm import where_the_bytes_go  # noqa: E402
from bench.common import RESULTS, load_average, machine_line, median, write_result  # noqa: E402

QUESTIONS = QUERIES + ["fit a linear model with an l1 penalty", "load a dataset from a file",
                       "validate the shape of an input array", "cross validation scores"]


def top_tens(engine) -> list[list[tuple[str, int, float]]]:  # type: ignore[no-untyped-def]
    from ragexd.engine import SearchQuery

    return [[(h.path, h.line, h.score) for h in
             engine.search(SearchQuery(q, mode="semantic", limit=10)).hits] for q in QUESTIONS]


def load_ms(index: Path, rounds: int = 7) -> float:
    """Median ms to read every row into one float32 matrix (the first query's load)."""
    from ragexd.engine.vectors import VECTORS_FILE, VectorFile

    times = []
    for _ in range(rounds):
        vf = VectorFile.open_read_only(index / VECTORS_FILE)
        t = time.perf_counter()
        vf.rows()
        times.append(time.perf_counter() - t)
        vf.close()
    return median(times) * 1000


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--package", default="sklearn")
    ap.add_argument("--max-files", type=int, default=150, help="0: the whole package")
    args = ap.parse_args()
    import numpy as np

    from ragexd.engine import Engine
    from ragexd.engine import vectors as V

    work = Path(tempfile.mkdtemp(prefix="rx-width-"))
    try:
        load0 = load_average()
        tree, files, lines = copy_tree(args.package, work, args.max_files)
        wide, narrow = work / "index-f32", work / "index-f16"
        V.STORED = "<f4"
        t = time.perf_counter()
        engine = Engine(tree, wide)
        try:
            chunks = engine.index().chunks_total
            before = top_tens(engine)
        finally:
            engine.close()
        index_s = time.perf_counter() - t
        V.STORED = "<f2"
        shutil.copytree(wide, narrow)
        engine = Engine(tree, narrow)
        try:
            t = time.perf_counter()
            again = engine.index()
            narrow_s = time.perf_counter() - t
            assert again.chunks_embedded == 0
            after = top_tens(engine)
            snaps = {}
            for fmt in (1, 2):   # alternately, so load drifts alike on both
                for _ in range(3):
                    dest = work / f"snap-{fmt}.tar.gz"
                    t = time.perf_counter()
                    engine.export_snapshot(dest, fmt=fmt)
                    took = time.perf_counter() - t
                    size, best = snaps.get(fmt, (0, took))
                    snaps[fmt] = (dest.stat().st_size, min(best, took))
        finally:
            engine.close()
        # measured before anything opens the files again: a read-only open may leave
        # a -shm file behind, which is no part of the index
        bytes_ = {"float32": where_the_bytes_go(wide), "float16": where_the_bytes_go(narrow)}
        vf = V.VectorFile.open_read_only(wide / V.VECTORS_FILE)
        _, _, _, mat = vf.rows()
        vf.close()
        f16 = V.as_stored(mat)
        cos = np.einsum("ij,ij->i", mat, f16) / (np.linalg.norm(mat, axis=1)
                                                 * np.linalg.norm(f16, axis=1))
        same = sum(a == b for a, b in zip(
            [[(p, ln) for p, ln, _ in x] for x in before],
            [[(p, ln) for p, ln, _ in x] for x in after]))
        score_moved = max(abs(a[2] - b[2]) for x, y in zip(before, after) for a, b in zip(x, y))
        loads = {"float32": load_ms(wide), "float16": load_ms(narrow)}
        load1 = load_average()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def total(b: dict[str, int]) -> int:
        return sum(v for k, v in b.items() if k.startswith("file "))

    rows = sorted({k for b in bytes_.values() for k in b if k != "chunks"})
    out = [f"### Vectors as float16: bytes a chunk side by side (bench/bench_vector_width.py)", "",
           f"{machine_line(load0, load1)}.  Tree: `{args.package}` copied from site-packages, "
           f"{files} files, {lines} lines, {chunks} chunks, indexed once with float32 rows "
           f"({index_s:.0f} s), copied, and the copy's next run rewrote them as float16 "
           f"({narrow_s:.1f} s, nothing embedded).  Command: `python bench/bench_vector_width.py "
           f"--package {args.package} --max-files {args.max_files}`.", "",
           f"**{total(bytes_['float32']) / chunks:.0f} → {total(bytes_['float16']) / chunks:.0f} "
           f"bytes a chunk** on disk (ratio {total(bytes_['float16']) / total(bytes_['float32']):.2f}; "
           f"target ≤ 3000), after a clean close.", "",
           "| bytes a chunk | float32 rows (before) | float16 rows (now) |", "|---|---|---|"]
    for k in rows:
        a, b = bytes_["float32"].get(k, 0), bytes_["float16"].get(k, 0)
        if a or b:
            out.append(f"| {k} | {a / chunks:.0f} | {b / chunks:.0f} |")
    out.append(f"| **whole index** | **{total(bytes_['float32']) / chunks:.0f}** | "
               f"**{total(bytes_['float16']) / chunks:.0f}** |")
    out += ["",
            f"- Cosine of each stored vector to its float32 original over {len(cos)} chunks: "
            f"min {cos.min():.7f}, mean {cos.mean():.8f} (rule: ≥ 0.99999).",
            f"- Semantic top ten, {len(QUESTIONS)} questions: {same} of {len(QUESTIONS)} lists "
            f"identical, hit for hit; the largest change of a hit's score {score_moved:.1e}.",
            f"- Reading the whole vector file into the float32 matrix (the first query's load), "
            f"median of 7: {loads['float32']:.1f} ms as float32, {loads['float16']:.1f} ms as "
            f"float16 ({loads['float16'] / loads['float32']:.2f}×; half the bytes to read, "
            f"one conversion).",
            f"- A snapshot of this index (`ragexctl index --export`, gzip level 3): "
            f"{snaps[1][0] / 2**20:.2f} MiB with float32 vectors (format 1, before), "
            f"{snaps[2][0] / 2**20:.2f} MiB with float16 (format 2, now): "
            f"{snaps[1][0] / chunks:.0f} → {snaps[2][0] / chunks:.0f} bytes a chunk, ratio "
            f"{snaps[2][0] / snaps[1][0]:.2f}; export {snaps[1][1]:.2f} s vs {snaps[2][1]:.2f} s "
            f"(best of 3 each).  Less than half: float32 copies of float16 values end in 13 "
            f"zero bits a value, which gzip already squeezed, and the catalog is the rest."]
    write_result(RESULTS / "warm-vectors.md", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
