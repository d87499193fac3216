#!/usr/bin/env python3
"""What a context recipe costs a first index: the same chunks embedded under two recipes.

Why: the recipe decides how many word pieces the model reads per chunk, and the model is
a first index's cost (issue #10).  The sixth round of bench/QUALITY.md chose the default
recipe partly on this ratio.  The chunks are the installed scikit-learn's (the tree of
bench/bench_large.py), a random sample of them; both recipes' texts are sorted by length
(as ``Embedder.encode`` does) and embedded batch by batch interleaved, the order of the
pair alternating, so load on the shared machine falls on both alike.  Reported: the word
pieces per chunk over every chunk of the tree (the tokenizer only), and the CPU and wall
time of the sample under each recipe, with their ratio.

Usage:
    OMP_NUM_THREADS=1 python bench/bench_recipe_cost.py [--sample 2000]
        [--recipes context+path,head+tail+path] [--write bench/results/quality-recipe-cost.md]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import load_average, machine_line, write_result  # noqa: E402
from ragexd.modelfiles import stay_offline  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--package", default="sklearn")
    ap.add_argument("--sample", type=int, default=2000)
    ap.add_argument("--recipes", default="context+path,head+tail+path")
    ap.add_argument("--write", help="write the markdown section to this file")
    args = ap.parse_args()
    stay_offline()
    import importlib

    from ragexd.engine import embedding
    from ragexd.engine.chunking import chunk_file

    old, new = args.recipes.split(",")
    load_before = load_average()
    root = Path(importlib.import_module(args.package).__file__).parent
    chunks = []
    for path in sorted(root.rglob("*.py")):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        chunks += chunk_file(str(path.relative_to(root.parent)), text, "python")
    emb = embedding.Embedder()
    emb.encode(["warm up"])
    tokenizer = emb._model._tokenizers["index"]    # the one the index uses (truncated at 256)
    pieces = {r: sum(sum(e.attention_mask) for e in tokenizer.encode_batch(   # padding out
        [embedding.context_text(c, r) for c in chunks])) for r in (old, new)}
    random.seed(0)
    sample = random.sample(chunks, min(args.sample, len(chunks)))
    texts = {r: sorted((embedding.context_text(c, r) for c in sample), key=len)
             for r in (old, new)}
    cpu = {old: 0.0, new: 0.0}
    wall = {old: 0.0, new: 0.0}
    batch = embedding.ENCODE_BATCH
    for i in range(0, len(sample), batch):
        for r in ((old, new) if (i // batch) % 2 == 0 else (new, old)):
            c0, w0 = time.process_time(), time.perf_counter()
            emb.encode(texts[r][i:i + batch])
            cpu[r] += time.process_time() - c0
            wall[r] += time.perf_counter() - w0
    n = len(chunks)
    lines = [f"{machine_line(load_before)}.  {args.package} (installed copy): {n} chunks; "
             f"{len(sample)} of them, a random sample, embedded under both recipes batch by "
             f"batch interleaved (batches of {batch}, sorted by length), onnxruntime, "
             f"{embedding.embed_threads()} threads.", "",
             "| recipe | word pieces / chunk (every chunk) | CPU s (sample) | wall s (sample) |",
             "|---|---|---|---|"]
    for r in (old, new):
        lines.append(f"| `{r}` | {pieces[r] / n:.1f} | {cpu[r]:.1f} | {wall[r]:.1f} |")
    lines += ["", f"**`{new}` / `{old}`: word pieces {pieces[new] / pieces[old]:.3f}x, "
              f"CPU {cpu[new] / cpu[old]:.3f}x, wall {wall[new] / wall[old]:.3f}x.**"]
    command = " ".join(["OMP_NUM_THREADS=1 python bench/bench_recipe_cost.py", *sys.argv[1:]])
    section = ["## What a context recipe costs a first index (bench/bench_recipe_cost.py)", "",
               f"Command: `{command}`", "", *lines]
    if args.write:
        write_result(args.write, section)
    else:
        print("\n".join(section))
    return 0


if __name__ == "__main__":
    sys.exit(main())
