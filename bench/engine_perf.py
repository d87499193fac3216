#!/usr/bin/env python3
"""Engine speed on the stdlib ``email`` package: index throughput and query latency.

* index throughput: a full Engine.index() (discovery, chunking, embedding, chroma,
  sqlite) in chunks/s, next to plain ``SentenceTransformer.encode`` of the very
  same context texts — the floor the indexer cannot beat on this CPU;
* incremental: re-index with nothing changed, and after editing one function;
* query latency per mode (median and p95 over the queries, model warm).

Usage: python bench/engine_perf.py [--package email] [--queries 60] [--write FILE]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import machine_line, pct, write_result  # noqa: E402
from ragexd.modelfiles import stay_offline  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--package", default="email")
    ap.add_argument("--queries", type=int, default=60)
    ap.add_argument("--write")
    args = ap.parse_args()
    stay_offline()
    import logging
    logging.disable(logging.WARNING)

    from ragexd.engine import Engine, SearchQuery
    from ragexd.engine.chunking import chunk_file
    from ragexd.engine.embedding import Embedder, context_text
    from ragexd.engine.languages import language_for

    work = Path(tempfile.mkdtemp(prefix="rx-perf-"))
    src = Path(sysconfig.get_paths()["stdlib"]) / args.package
    tree = work / "tree"
    shutil.copytree(src, tree / args.package, ignore=shutil.ignore_patterns("__pycache__"))
    lines: list[str] = []

    def say(s: str) -> None:
        print(s, flush=True)
        lines.append(s)

    emb = Embedder()
    t = time.perf_counter()
    emb.load()
    say(f"model load: {time.perf_counter() - t:.1f} s")

    # raw encode of the same texts the indexer embeds
    chunks = []
    for p in sorted(tree.rglob("*.py")):
        rel = p.relative_to(tree).as_posix()
        chunks += chunk_file(rel, p.read_text(encoding="utf-8"), language_for(rel))
    texts = [context_text(c) for c in chunks]
    t = time.perf_counter()
    emb.encode(texts)
    raw_s = time.perf_counter() - t
    say(f"raw Embedder.encode ({os.environ.get('RAGEX_EMBEDDER', 'onnx')}): {len(texts)} "
        f"chunks in {raw_s:.1f} s = {len(texts) / raw_s:.1f} chunks/s")

    engine = Engine(tree, work / "index")
    t = time.perf_counter()
    s = engine.index()
    idx_s = time.perf_counter() - t
    say(f"Engine.index (full, cold index): {s.chunks_embedded} chunks, {s.files_indexed} files "
        f"in {idx_s:.1f} s = {s.chunks_embedded / idx_s:.1f} chunks/s "
        f"(throughput ratio engine/raw {(s.chunks_embedded / idx_s) / (len(texts) / raw_s):.2f})")
    t = time.perf_counter()
    s2 = engine.index()
    say(f"re-index, nothing changed: {time.perf_counter() - t:.2f} s "
        f"({s2.files_unchanged} files unchanged, {s2.chunks_embedded} embedded)")
    target = tree / args.package / "message.py"
    if target.exists():
        text = target.read_text()
        target.write_text(text.replace("def get_payload(", "def get_payload_edited(", 1))
        t = time.perf_counter()
        s3 = engine.index()
        say(f"re-index after editing one function: {time.perf_counter() - t:.2f} s "
            f"({s3.files_indexed} file re-chunked, {s3.chunks_embedded} chunks re-embedded "
            f"of {s3.chunks_total})")

    # query latency
    import json
    sys.path.insert(0, str(ROOT.parent / "shared" / "eval"))
    natural = []
    for c in chunks:
        if c.doc and c.kind in ("function", "method"):
            natural.append(c.doc.split(".")[0][:200])
    natural = natural[: args.queries]
    names = [c.name for c in chunks if c.kind in ("function", "method", "class")][: args.queries]
    patterns = [rf"def {n}\(" for n in names[: args.queries // 2]] + \
        [r"self\.\w+ = None", r"^class \w+\(", r"raise \w+Error", "charset"] * 3
    plan = [("symbol", names), ("regex", patterns), ("semantic", natural),
            ("hybrid", natural), ("auto", natural), ("auto", names)]
    say("")
    say("| mode | queries | median ms | p95 ms |")
    say("|---|---|---|---|")
    for mode, qs in plan:
        times = []
        for q in qs:
            t = time.perf_counter()
            engine.search(SearchQuery(q, mode=mode, limit=10))
            times.append((time.perf_counter() - t) * 1000)
        label = mode if mode != "auto" else ("auto (question)" if qs is natural else
                                              "auto (identifier)")
        say(f"| {label} | {len(qs)} | {statistics.median(times):.1f} | {pct(times, 95):.1f} |")
    engine.close()
    shutil.rmtree(work, ignore_errors=True)
    say("")
    say(f"{machine_line()}.")
    if args.write:
        write_result(args.write, lines, echo=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
