#!/usr/bin/env python3
"""Retrieval quality at repository scale: questions as a user types them, on scikit-learn.

``bench/eval_quality.py`` asks doc-comment sentences of small blanked trees; a person
asks short, task-phrased questions ("fit a linear model with L1 regularization") of a
whole repository whose docstrings are intact and whose tests repeat every word of the
code.  This eval asks ``bench/repo_questions.json`` (questions written for it, each with
the definitions that answer it, ``path::Qualified.name``; several where several are
right) of the installed scikit-learn copied into a fresh git repository (the tree of
``bench/bench_large.py``), and runs, side by side in one run:

* ``ragex auto``: the real ``Engine``, ``auto`` mode, limit 10 (what ``ragexctl search
  --json --limit 10`` answers);
* ``minilm-fn+cls``: plain all-MiniLM-L6-v2 cosine over one raw chunk per function and
  per class (the model truncates each at 256 word pieces);
* ``bm25-fn``: Okapi BM25 over one document per function.

A hit is right when its line lies inside an answer's span (decorators included), so a
method of ``Lasso`` answers "Lasso".  Reported: MRR@10, Recall@5 and how many top hits
are in a test file, each with a 95% bootstrap interval, and per question the rank of
each system.  Vectors (the engine's and the baseline's) are cached on disk in
``OUT/_cache/vectors.sqlite``, and the index is kept in ``OUT/index``: a rerun embeds
only what it has not seen.

Usage:
    OMP_NUM_THREADS=1 python bench/eval_repo.py [--out /tmp/ragex-eval-repo]
                                                [--write bench/results/repo-quality.md]
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shlex
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_large import copy_tree  # noqa: E402
from bench.common import load_average, machine_line, write_result  # noqa: E402
from bench.eval_quality import (VectorCache, baseline_bm25, ci95, install_cache,  # noqa: E402
                                mrr, recall)

QUESTIONS = ROOT / "bench" / "repo_questions.json"
PACKAGE = "sklearn"


@dataclass(frozen=True)
class Definition:
    """A function or class of the tree: where it is, and its raw source."""

    path: str
    qual: str
    start: int      # its first decorator's line, or its def/class line
    end: int
    kind: str       # function | class
    text: str


def definitions(tree: Path) -> list[Definition]:
    """Every function, method and class of the tree's Python files, nested included."""
    out: list[Definition] = []
    for p in sorted(tree.rglob("*.py")):
        rel = p.relative_to(tree).as_posix()
        source = p.read_text(encoding="utf-8", errors="replace")
        try:
            module = ast.parse(source)
        except SyntaxError:
            continue
        lines = source.splitlines()

        def visit(node: ast.AST, prefix: str) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    start = min([d.lineno for d in child.decorator_list] + [child.lineno])
                    end = child.end_lineno or child.lineno
                    kind = "class" if isinstance(child, ast.ClassDef) else "function"
                    out.append(Definition(rel, prefix + child.name, start, end, kind,
                                          "\n".join(lines[start - 1:end])))
                    visit(child, prefix + child.name + ".")
                else:
                    visit(child, prefix)
        visit(module, "")
    return out


def load_questions(path: Path, defs: list[Definition]) -> list[dict]:
    """The questions, each answer resolved to its span; an answer that names nothing in
    the tree is an error in the questions file, not a miss."""
    spans = {f"{d.path}::{d.qual}": (d.path, d.start, d.end) for d in defs}
    qs = json.loads(path.read_text())
    bad = [a for q in qs for a in q["answers"] if a not in spans]
    if bad:
        raise SystemExit("answers naming nothing in the tree: " + ", ".join(bad))
    for n, q in enumerate(qs):
        q["id"] = str(n)
        q["query"] = q["q"]
        q["spans"] = [spans[a] for a in q["answers"]]
    return qs


def is_test_file(path: str) -> bool:
    """The measure's own rule, kept apart from the engine's ``is_test_path`` so a change
    to the engine cannot move the yardstick: scikit-learn keeps its tests in ``tests/``
    folders, as ``test_*.py`` and ``conftest.py``."""
    name = path.rsplit("/", 1)[-1]
    return "/tests/" in path or name.startswith("test_") or name == "conftest.py"


def rank_of(hits: list[dict], q: dict) -> int | None:
    for i, h in enumerate(hits[:10]):
        if any(h["file"] == f and a <= h["line"] <= b for f, a, b in q["spans"]):
            return i + 1
    return None


def baseline_minilm(defs: list[Definition], queries: list[dict], embedder: Any) -> dict:
    """Plain MiniLM over one raw chunk per function and per class."""
    import numpy as np

    doc = embedder.encode([d.text for d in defs])
    qv = embedder.encode([q["query"] for q in queries])
    sims = qv @ doc.T
    out = {}
    for n, q in enumerate(queries):
        best = np.argsort(-sims[n])[:10]
        out[q["id"]] = [{"file": defs[int(i)].path, "line": defs[int(i)].start} for i in best]
    return out


def engine_results(engine: Any, queries: list[dict]) -> tuple[dict, float]:
    from ragexd.engine import SearchQuery

    out = {}
    t0 = time.perf_counter()
    for q in queries:
        o = engine.search(SearchQuery(q["query"], mode="auto", limit=10))
        out[q["id"]] = [{"file": h.path, "line": h.line, "name": h.name, "parent": h.parent}
                        for h in o.hits]
    return out, (time.perf_counter() - t0) * 1000 / max(1, len(queries))


def summary_rows(systems: dict[str, dict], queries: list[dict]) -> list[str]:
    lines = ["| system | MRR@10 [95% CI] | Recall@5 [95% CI] | top hit in a test file |",
             "|---|---|---|---|"]
    for name, res in systems.items():
        rk = [rank_of(res.get(q["id"], []), q) for q in queries]
        rr = [1.0 / r if r else 0.0 for r in rk]
        r5 = [1.0 if r and r <= 5 else 0.0 for r in rk]
        tops = [1.0 if res.get(q["id"]) and is_test_file(res[q["id"]][0]["file"]) else 0.0
                for q in queries]
        lo, hi = ci95(rr)
        lo5, hi5 = ci95(r5)
        lines.append(f"| {name} | {mrr(rk):.3f} [{lo:.3f}, {hi:.3f}] | {recall(rk, 5):.2f} "
                     f"[{lo5:.2f}, {hi5:.2f}] | {int(sum(tops))} of {len(queries)} |")
    return lines


def per_question_rows(systems: dict[str, dict], queries: list[dict]) -> list[str]:
    names = list(systems)
    lines = ["| question | " + " | ".join(names) + " | ragex's top hit |",
             "|---|" + "---|" * (len(names) + 1)]
    first = names[0]
    for q in queries:
        cells = []
        for name in names:
            r = rank_of(systems[name].get(q["id"], []), q)
            cells.append(str(r) if r else "-")
        hits = systems[first].get(q["id"], [])
        top = (f"`{hits[0]['file'].removeprefix(PACKAGE + '/')}::"
               f"{(hits[0]['parent'] + '.') if hits[0].get('parent') else ''}{hits[0]['name']}`"
               if hits else "(none)")
        lines.append(f"| {q['q']} | " + " | ".join(cells) + f" | {top} |")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="/tmp/ragex-eval-repo")
    ap.add_argument("--questions", default=str(QUESTIONS))
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--weights", action="append", default=[],
                    help="JSON overrides of search.Weights tried beside the shipped ones "
                    "(repeatable: each is one more system of the table)")
    ap.add_argument("--results", default="",
                    help="the hits of every system as JSON (default OUT/results.json)")
    ap.add_argument("--write", help="write the markdown section to this file")
    args = ap.parse_args()

    # the in-process embedder, so every vector goes through the cache (a bulk child's would not)
    os.environ.setdefault("RAGEX_EMBEDDER_RUNTIME", "onnxruntime")
    from ragexd.modelfiles import stay_offline
    stay_offline()
    import logging
    logging.disable(logging.WARNING)
    from ragexd.engine import Engine, embedding, search

    out = Path(args.out)
    load_before = load_average()
    cache = VectorCache(out / "_cache" / "vectors.sqlite", embedding.embedder_id().split("/")[0])
    install_cache(cache)
    tree = out / "tree"
    if not (tree / ".git").exists():
        shutil.rmtree(tree, ignore_errors=True)
        copy_tree(PACKAGE, out, 0)
    defs = definitions(tree)
    queries = load_questions(Path(args.questions), defs)
    print(f"{len(queries)} questions, {len(defs)} definitions", flush=True)

    systems: dict[str, dict] = {}
    engine = Engine(tree, out / "index")
    t0 = time.perf_counter()
    summary = engine.index()
    print(f"indexed {summary.chunks_total} chunks in {time.perf_counter() - t0:.0f} s", flush=True)
    systems["ragex auto"], ms = engine_results(engine, queries)
    for text in args.weights:
        over = json.loads(text)
        engine._searcher.weights = search.Weights(**{**search.WEIGHTS.__dict__, **over})
        label = ",".join(f"{k}={v}" for k, v in sorted(over.items()))
        systems[f"ragex auto [{label}]"], _ = engine_results(engine, queries)
        engine._searcher.weights = search.WEIGHTS
    chunks = summary.chunks_total
    engine.close()
    if not args.no_baselines:
        embedder = embedding.Embedder()
        systems["plain MiniLM, functions + classes"] = baseline_minilm(defs, queries, embedder)
        funcs = [(d.path, d.start, d.text) for d in defs if d.kind == "function"]
        systems["BM25, functions"] = baseline_bm25(funcs, queries)

    Path(args.results or out / "results.json").write_text(json.dumps(systems, indent=1))
    n_fn = sum(d.kind == "function" for d in defs)
    lines = [f"{machine_line(load_before)}.  scikit-learn {_version()} (the installed copy, "
             f"docstrings intact) in a fresh git repository: {chunks} ragex chunks; "
             f"{n_fn} functions and {len(defs) - n_fn} classes for the baselines.  "
             f"{len(queries)} questions of `bench/repo_questions.json`; ragex "
             f"{ms:.0f} ms a question on average, embedding included, in process.", "",
             *summary_rows(systems, queries), "", "Per question (rank of the first right "
             "hit in the top 10, - for none):", "", *per_question_rows(systems, queries)]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_result(args.write, ["## Quality at repository scale: questions as a user types "
                                  "them, on scikit-learn (bench/eval_repo.py)", "",
                                  f"Command: `OMP_NUM_THREADS=1 python bench/eval_repo.py "
                                  f"{' '.join(shlex.quote(a) for a in sys.argv[1:])}`; failure "
                                  "analysis and what was tried: bench/QUALITY.md, "
                                  "\"Repository-scale questions\".",
                                  "", text], echo=False)
    return 0


def _version() -> str:
    import importlib.metadata

    return importlib.metadata.version("scikit-learn")


if __name__ == "__main__":
    sys.exit(main())
