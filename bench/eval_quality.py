#!/usr/bin/env python3
"""Retrieval quality of the ragex engine on third-party code (doc comment -> code, MRR@10).

The corpora are pinned packages from PyPI, npm and Debian in Python, JavaScript
and Go (``bench/eval_corpora.py`` fetches them and blanks their doc comments).
Each tree is indexed by the real ``Engine`` and every query runs through
``Engine.search`` (or the searcher's ranked lists for diagnostics).  Two
baselines run beside it on the same blanked trees, in the same run:

* ``bm25-fn``:   Okapi BM25 (k1 1.5, b 0.75) over one document per function (its raw source);
* ``minilm-fn``: plain all-MiniLM-L6-v2 cosine over one raw chunk per function.

Weights are never chosen on the corpus they are scored on: ``--loo`` tries every
ranking configuration of ``GRID`` on all corpora, and for each corpus reports
the score of the configuration that was best on the *other* corpora
(leave-one-corpus-out).  That score, not the tuned one, is what QUALITY.md reports.

Embedding is the CPU cost, so vectors are cached on disk keyed by (model, text
hash) in ``OUT/_cache/vectors.sqlite``: a rerun, or another recipe that shares
texts, embeds only what it has not seen.

Usage:
    python bench/eval_quality.py [--corpora click,express,...] [--loo] [--out DIR]
                                 [--write bench/QUALITY.md.table]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import random
import shutil
import sqlite3
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import eval_corpora as corpora_mod  # noqa: E402
from bench.common import load_average, machine_line, write_result  # noqa: E402
from ragexd.modelfiles import stay_offline  # noqa: E402

#: Ranking configurations tried by --loo: overrides of search.Weights.  The first
#: is the shipped default (chosen by leave-one-corpus-out, see QUALITY.md).
GRID: list[dict[str, Any]] = [
    {},
    {"alpha": 0.7},
    {"alpha": 0.9},
    {"alpha": 0.6},
    {"block_prior": 1.0, "class_prior": 1.0},
    {"class_prior": 0.9},
    {"test_prior": 1.0},
    {"test_prior": 0.6},
    {"alpha": 0.7, "test_prior": 0.6},
    {"alpha": 0.85},
    {"bm25": (8.0, 2.0, 1.0)},
    {"bm25": (2.0, 2.0, 1.0)},
    {"alpha": 0.9, "bm25": (8.0, 2.0, 1.0)},
    {"depth": 200},
    {"fusion": "linear-norm"},
    {"fusion": "linear-norm", "alpha": 0.7},
    {"fusion": "linear-norm", "alpha": 0.6},
    {"fusion": "rrf", "alpha": 0.7},
    {"symbol_bonus": 0.1},
    {"symbol_bonus": 0.05},
    {"usage_prior": 1.0},
    {"stub_prior": 1.0},
    {"stub_prior": 0.6},
    # third round: the name-match signal (namematch.py); 0.0 is the second round's ranking
    {"name_weight": 0.0},
    {"name_weight": 0.1},
    {"name_weight": 0.15},
    {"name_weight": 0.25},
    {"name_weight": 0.3},
    {"name_weight": 0.25, "alpha": 0.7},
    {"name_class_weight": 1.0},
    {"name_class_weight": 0.0},
    {"name_class_weight": 1.0, "alpha": 0.7},
    # fourth round: body-less declarations (@overload, TS signatures) rank like stubs.
    # They were tried with a knob of their own (declaration_prior 1.0 and 0.6); 0.8, the
    # stub prior's value, was chosen on principle, and they now take stub_prior itself,
    # so the stub_prior rows above vary both
]


# --- embeddings, cached ---------------------------------------------------------------


class VectorCache:
    """float32 vectors on disk, keyed by sha1(model id + text)."""

    def __init__(self, path: Path, model_id: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # the indexer embeds on its own thread; the cache is only ever used by one at a time
        self.db = sqlite3.connect(str(path), check_same_thread=False)
        self.db.execute("CREATE TABLE IF NOT EXISTS v (k TEXT PRIMARY KEY, b BLOB)")
        self.model_id = model_id

    def key(self, text: str) -> str:
        return hashlib.sha1((self.model_id + "\0" + text).encode("utf-8", "surrogatepass")
                            ).hexdigest()

    def encode(self, texts: list[str], compute: Callable[[list[str]], Any]) -> Any:
        import numpy as np

        keys = [self.key(t) for t in texts]
        have: dict[str, Any] = {}
        for i in range(0, len(keys), 500):
            part = keys[i:i + 500]
            for k, b in self.db.execute(
                    f"SELECT k, b FROM v WHERE k IN ({','.join('?' * len(part))})", part):
                have[k] = np.frombuffer(b, dtype=np.float32)
        todo = sorted({k: t for k, t in zip(keys, texts) if k not in have}.items(),
                      key=lambda kt: len(kt[1]))
        for i in range(0, len(todo), 64):   # saved as it goes: an interrupted run resumes
            part = todo[i:i + 64]
            vecs = compute([t for _, t in part])
            self.db.executemany("INSERT OR REPLACE INTO v VALUES (?, ?)",
                                [(k, np.asarray(v, dtype=np.float32).tobytes())
                                 for (k, _), v in zip(part, vecs)])
            self.db.commit()
            for (k, _), v in zip(part, vecs):
                have[k] = np.asarray(v, dtype=np.float32)
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return np.vstack([have[k] for k in keys])


def install_cache(cache: VectorCache) -> None:
    """Route every Embedder.encode of this process through the cache."""
    from ragexd.engine import embedding

    original = embedding.Embedder.encode
    if getattr(original, "_cached", False):
        return

    def encode(self: Any, texts: Any) -> Any:
        return cache.encode(list(texts), lambda todo: original(self, todo))

    encode._cached = True  # type: ignore[attr-defined]
    embedding.Embedder.encode = encode  # type: ignore[method-assign]


# --- scoring (one relevant function per query) ------------------------------------------


def is_correct(hit: dict, q: dict) -> bool:
    """The hit's line lies in the function (its decorators/wrapper included)."""
    if hit["file"] != q["file"]:
        return False
    lo = min(int(q["start"]), int(q.get("deco_start", q["start"])))
    return lo <= int(hit["line"]) <= int(q["end"])


def ranks(queries: list[dict], results: dict[str, list[dict]]) -> list[int | None]:
    out = []
    for q in queries:
        hits = results.get(q["id"], [])[:10]
        out.append(next((i + 1 for i, h in enumerate(hits) if is_correct(h, q)), None))
    return out


def mrr(rk: list[int | None]) -> float:
    return sum(1.0 / r for r in rk if r) / max(1, len(rk))


def recall(rk: list[int | None], k: int) -> float:
    return sum(1 for r in rk if r and r <= k) / max(1, len(rk))


def ci95(values: list[float], n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean."""
    if not values:
        return 0.0, 0.0
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(rng.choice(values) for _ in range(n)) / n for _ in range(n_boot))
    return means[int(0.025 * n_boot)], means[int(0.975 * n_boot) - 1]


def rr(rk: list[int | None]) -> list[float]:
    return [1.0 / r if r else 0.0 for r in rk]


# --- baselines ----------------------------------------------------------------------


def functions_of(tree: Path, language: str) -> list[tuple[str, int, str]]:
    """(file, first line, raw source) for every function/method, nested included."""
    return corpora_mod.functions(tree, language)


_BM25_TOKEN = __import__("re").compile(r"(?u)\b\w\w+\b")


def _bm25_tokens(text: str) -> list[str]:
    """bm25s's default tokenisation: words of 2+ characters, lower case, English stop
    words out (ragex's own list, so the baseline needs no extra package)."""
    from ragexd.engine.tokens import STOPWORDS

    return [t for t in _BM25_TOKEN.findall(text.lower()) if t not in STOPWORDS]


def baseline_bm25(funcs: list[tuple[str, int, str]], queries: list[dict],
                  k1: float = 1.5, b: float = 0.75) -> dict:
    """Okapi BM25 over one document per function (its raw source)."""
    import math
    from collections import Counter

    docs = [Counter(_bm25_tokens(f[2])) for f in funcs]
    lens = [sum(d.values()) for d in docs]
    avg = sum(lens) / max(1, len(lens))
    df: Counter = Counter()
    for d in docs:
        df.update(d.keys())
    n = len(docs)
    idf = {t: math.log(1 + (n - c + 0.5) / (c + 0.5)) for t, c in df.items()}
    out = {}
    for q in queries:
        terms = set(_bm25_tokens(q["query"]))
        scores = []
        for i, d in enumerate(docs):
            s = 0.0
            for t in terms:
                tf = d.get(t)
                if tf:
                    s += idf[t] * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lens[i] / avg))
            if s > 0:
                scores.append((s, i))
        scores.sort(reverse=True)
        out[q["id"]] = [{"file": funcs[i][0], "line": funcs[i][1]} for _, i in scores[:10]]
    return out


def baseline_minilm(funcs: list[tuple[str, int, str]], queries: list[dict], embedder: Any
                    ) -> dict:
    """Plain MiniLM: the raw function text (the model truncates it at 256 word pieces)."""
    import numpy as np

    doc = embedder.encode([f[2] for f in funcs])
    qv = embedder.encode([q["query"] for q in queries])
    sims = qv @ doc.T
    out = {}
    for n, q in enumerate(queries):
        best = np.argsort(-sims[n])[:10]
        out[q["id"]] = [{"file": funcs[int(i)][0], "line": funcs[int(i)][1]} for i in best]
    return out


# --- the engine -----------------------------------------------------------------------


def engine_results(engine: Any, queries: list[dict], mode: str) -> tuple[dict, float]:
    from ragexd.engine import SearchQuery

    out = {}
    searcher = engine._searcher
    t0 = time.perf_counter()
    for q in queries:
        if mode == "lexical":
            ranked = searcher.lexical_ranked(q["query"], 10, [], lambda p: True)
            out[q["id"]] = [{"file": r.path, "line": r.start} for r, _ in ranked]
        else:
            o = engine.search(SearchQuery(q["query"], mode=mode, limit=10))
            out[q["id"]] = [{"file": h.path, "line": h.line} for h in o.hits]
    return out, (time.perf_counter() - t0) * 1000 / max(1, len(queries))


#: Queries that mean nothing: the noise floor must keep all of them out.
NOISE = ["aaaaaaaaaaaa", "zzzz zzzz zzzz zzzz", "\U0001F642\U0001F642\U0001F642",
         "\U0001F525 \U0001F680 \u2728", "qwertyuiop asdfghjkl", "!!!!! ?????",
         "xxxxxxxxxxxxxxxxxxx yyyyyyyy", "\u0167\u20ac\u00b6\u0167\u2190\u2193",
         "1234567890 0987654321", "hhhhhhh jjjjjjj kkkkkkk", "... --- ...", "ok ok ok ok"]


def best_cosines(engine: Any, texts: list[str]) -> list[float]:
    """The raw cosine of each text's nearest chunk (no priors, no filters)."""
    searcher = engine._searcher
    out = []
    for t in texts:
        got = searcher._semantic(searcher.embedder.encode_query(t), 1, [], lambda p: True)
        out.append(got[0][1] if got else 0.0)
    return out


def dropped(engine: Any, texts: list[str]) -> int:
    """How many of ``texts`` the engine answers with nothing (the noise floor)."""
    from ragexd.engine import SearchQuery

    return sum(not engine.search(SearchQuery(t, mode="semantic", limit=10)).hits for t in texts)


def two_vectors(engine: Any, cache: VectorCache, weight: float, second: str = "") -> None:
    """Diagnostic: score each chunk by ``(1 - weight) * cos(context) + weight * cos(other)``.

    ``other`` is, by default, the raw function text the minilm-fn baseline cached (chunks
    without one keep their context cosine), so trying it costs no extra embedding; with
    ``second`` it is another context recipe of ``embedding.VARIANTS`` (or ``raw``, the
    chunk's code), embedded through the cache.  Shipping either doubles indexing time."""
    import numpy as np

    from ragexd.engine.chunking import chunk_file
    from ragexd.engine.embedding import context_text

    searcher = engine._searcher
    vectors = searcher.vectors
    exact = vectors._exact_index()
    raw = np.zeros_like(exact.mat[:exact.n])
    has = np.zeros(exact.n, dtype=bool)
    rows = engine._catalog.chunks_by_id(exact.ids[:exact.n])
    lines_of: dict[str, list[str]] = {}
    keys = {}
    if second:
        chunks = {}
        for path in {row.path for row in rows.values()}:
            text = (engine.root / path).read_text(encoding="utf-8")
            lang = next(row.language for row in rows.values() if row.path == path)
            chunks.update({c.id: c for c in chunk_file(path, text, lang)})
        order = [(r, context_text(chunks[cid], second))
                 for r, cid in enumerate(exact.ids[:exact.n]) if cid in chunks]
        got = cache.encode([t for _, t in order], lambda todo: searcher.embedder.encode(todo))
        for (r, _), v in zip(order, got):
            raw[r] = v
            has[r] = True
    else:
        for r, cid in enumerate(exact.ids[:exact.n]):
            row = rows.get(cid)
            if row is None or row.kind in ("block", "window", "class"):
                continue
            if row.path not in lines_of:
                lines_of[row.path] = (engine.root / row.path).read_text(
                    encoding="utf-8").splitlines()
            keys[r] = cache.key("\n".join(lines_of[row.path][row.start - 1:row.end]))
        for r, k in keys.items():
            got = cache.db.execute("SELECT b FROM v WHERE k=?", (k,)).fetchone()
            if got:
                raw[r] = np.frombuffer(got[0], dtype=np.float32)
                has[r] = True
    mixed = exact.mat[:exact.n].copy()
    mixed[has] = (1 - weight) * mixed[has] + weight * raw[has]   # cosine is linear in it
    exact.mat = mixed
    print(f"  two vectors: {int(has.sum())} of {exact.n} chunks have a second vector", flush=True)


def latency_vs(engine: Any, queries: list[dict], over: dict[str, Any], rounds: int = 5
               ) -> tuple[float, float]:
    """p50 CPU ms of hybrid with the shipped weights and with ``over``, query by
    query interleaved (a load change on a shared machine hits both alike, and each
    goes first on every other query).  CPU time, not wall time: on a machine whose
    cores are shared, wall-clock medians of a few ms moved by 2x between runs, the
    process's CPU time by a few percent.  Each query's
    vector is encoded once beforehand, so the figures are the ranking's own cost
    plus the lookups, not the model's."""
    from ragexd.engine import search

    searcher = engine._searcher
    base = search.WEIGHTS
    other = search.Weights(**{**base.__dict__, **over})
    vecs = {q["query"]: searcher.embedder.encode_query(q["query"]) for q in queries}
    encode = searcher.embedder.encode_query
    searcher.embedder.encode_query = vecs.__getitem__   # type: ignore[method-assign]
    times: dict[str, list[float]] = {"base": [], "other": []}
    try:
        pair = (("base", base), ("other", other))
        for _ in range(rounds):
            for k, q in enumerate(queries):
                # alternate who goes first: the second run of a query finds SQLite's
                # pages for its words warm
                for key, weights in (pair if k % 2 else pair[::-1]):
                    searcher.weights = weights
                    t0 = time.process_time()
                    searcher.hybrid_ranked(q["query"], 10, [], lambda p: True)
                    times[key].append((time.process_time() - t0) * 1000)
    finally:
        searcher.weights = base
        searcher.embedder.encode_query = encode   # type: ignore[method-assign]
    return statistics.median(times["base"]), statistics.median(times["other"])


def label(over: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(over.items())) or "default"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpora", default=corpora_mod.DEFAULT)
    ap.add_argument("--modes", default="semantic,lexical,auto")
    ap.add_argument("--loo", action="store_true", help="leave-one-corpus-out over GRID")
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--reuse-index", action="store_true",
                    help="keep the indexes of an earlier run (an unchanged tree re-indexes in 0 s)")
    ap.add_argument("--two-vectors", type=float, default=0.0,
                    help="diagnostic: mix in this share of the raw-code cosine "
                    "(indexes of an earlier run)")
    ap.add_argument("--second", default="",
                    help="with --two-vectors: the second representation, a context recipe "
                    "of embedding.VARIANTS or 'raw' (embedded through the cache)")
    ap.add_argument("--noise", action="store_true",
                    help="only measure the noise floor on the indexes of an earlier run")
    ap.add_argument("--latency-vs", default="",
                    help="only time hybrid (CPU), shipped weights against these overrides (JSON, "
                    "e.g. '{\"name_weight\": 0.0}'), interleaved, on the indexes of an earlier run")
    ap.add_argument("--out", default="/tmp/ragex-eval3p")
    ap.add_argument("--write", help="write the markdown tables to this file")
    args = ap.parse_args()

    stay_offline()
    import logging
    logging.disable(logging.WARNING)
    from ragexd.engine import Engine, embedding, search

    out = Path(args.out)
    # keyed by model and precision: int8 vectors never stand in for fp32 ones
    cache = VectorCache(out / "_cache" / "vectors.sqlite", embedding.embedder_id().split("/")[0])
    install_cache(cache)
    embedder = embedding.Embedder()
    names = [c for c in args.corpora.split(",") if c]
    modes = [m for m in args.modes.split(",") if m]
    # per (corpus, system) the reciprocal ranks of each query
    per: dict[tuple[str, str], list[float]] = {}
    lat: dict[tuple[str, str], float] = {}
    nq: dict[str, int] = {}
    langs: dict[str, str] = {}

    def record(corpus: str, system: str, res: dict, queries: list[dict],
               ms: float | None = None) -> None:
        rk = ranks(queries, res)
        per[(corpus, system)] = rr(rk)
        if ms is not None:
            lat[(corpus, system)] = ms
        print(f"  {corpus:16s} {system:40s} MRR@10={mrr(rk):.3f} R@1={recall(rk, 1):.2f} "
              f"R@5={recall(rk, 5):.2f}" + (f" {ms:.1f} ms/q" if ms is not None else ""),
              flush=True)

    if args.two_vectors and not args.loo:
        for name in names:
            tree, queries = corpora_mod.build(corpora_mod.CORPORA[name], out, out / "_cache")
            nq[name], langs[name] = len(queries), corpora_mod.CORPORA[name].language
            engine = Engine(tree, out / name / "index")
            res, ms = engine_results(engine, queries, "auto")
            record(name, "ragex auto", res, queries, ms)
            two_vectors(engine, cache, args.two_vectors, args.second)
            res, ms = engine_results(engine, queries, "auto")
            record(name, f"auto, two vectors w={args.two_vectors}", res, queries, ms)
            engine.close()
        print(markdown(per, names, nq, langs))
        return 0
    if args.latency_vs:
        over = json.loads(args.latency_vs)
        for name in names:
            tree, queries = corpora_mod.build(corpora_mod.CORPORA[name], out, out / "_cache")
            engine = Engine(tree, out / name / "index")
            base_ms, other_ms = latency_vs(engine, queries, over)
            engine.close()
            print(f"  {name:16s} hybrid p50 CPU: shipped {base_ms:.2f} ms, {label(over)} "
                  f"{other_ms:.2f} ms, ratio {base_ms / other_ms:.2f}", flush=True)
        print(f"load average {load_average():.1f}")
        return 0
    if args.noise:
        real: list[float] = []
        noise: list[float] = []
        lost = kept = 0
        floors: list[float] = []
        for name in names:
            tree, queries = corpora_mod.build(corpora_mod.CORPORA[name], out, out / "_cache")
            engine = Engine(tree, out / name / "index")
            r = best_cosines(engine, [q["query"] for q in queries])
            z = best_cosines(engine, NOISE)
            floors.append(engine._searcher.noise_floor())
            lost += dropped(engine, [q["query"] for q in queries])
            kept += len(NOISE) - dropped(engine, NOISE)
            engine.close()
            real += r
            noise += z
            print(f"  {name:16s} floor {floors[-1]:.3f} real: min {min(r):.3f} "
                  f"median {statistics.median(r):.3f}   noise: max {max(z):.3f} "
                  f"({NOISE[z.index(max(z))]!r})", flush=True)
        real.sort()
        print(f"all: {len(real)} real queries, p1 {real[len(real) // 100]:.3f}, "
              f"min {real[0]:.3f}; noise max {max(noise):.3f}; "
              f"per-index floors {min(floors):.3f}-{max(floors):.3f}; the engine answers {lost} real queries with nothing and "
              f"{kept} of {len(noise)} noise queries with something")
        return 0
    for name in names:
        corpus = corpora_mod.CORPORA[name]
        tree, queries = corpora_mod.build(corpus, out, out / "_cache")
        nq[name] = len(queries)
        langs[name] = corpus.language
        print(f"{name} ({corpus.pin}): {len(queries)} queries", flush=True)
        if not args.no_baselines:
            funcs = functions_of(tree, corpus.language)
            record(name, "baseline bm25-fn", baseline_bm25(funcs, queries), queries)
            record(name, "baseline minilm-fn", baseline_minilm(funcs, queries, embedder),
                   queries)
        idx = out / name / "index"
        if not args.reuse_index:
            shutil.rmtree(idx, ignore_errors=True)
        engine = Engine(tree, idx)
        summary = engine.index()
        print(f"  indexed {summary.chunks_total} chunks in {summary.seconds:.1f}s", flush=True)
        if args.two_vectors:   # with --loo: the whole grid over the mixed vectors
            two_vectors(engine, cache, args.two_vectors, args.second)
        for mode in modes:
            res, ms = engine_results(engine, queries, mode)
            record(name, f"ragex {mode}", res, queries, ms)
        if args.loo:
            base = search.WEIGHTS
            for over in GRID[1:]:
                engine._searcher.weights = search.Weights(**{**base.__dict__, **over})
                res, ms = engine_results(engine, queries, "auto")
                record(name, f"auto [{label(over)}]", res, queries, ms)
            engine._searcher.weights = base
        engine.close()
    if args.loo:
        # GRID[0] ran as "ragex auto"
        for name in names:
            per[(name, "auto [default]")] = per[(name, "ragex auto")]
        configs = [f"auto [{label(o)}]" for o in GRID]
        for name in names:
            others = [c for c in names if c != name]
            best = max(configs, key=lambda s: statistics.mean(
                statistics.mean(per[(c, s)]) for c in others))
            per[(name, "ragex auto, leave-one-corpus-out")] = per[(name, best)]
            print(f"  LOO {name}: chose {best} on the other corpora", flush=True)
        chosen_all = max(configs, key=lambda s: statistics.mean(
            statistics.mean(per[(c, s)]) for c in names))
        print(f"  best on all corpora: {chosen_all}")
    rows = {f"{c}|{s}": v for (c, s), v in per.items()}
    (out / "summary.json").write_text(json.dumps({"rr": rows, "ms": {
        f"{c}|{s}": v for (c, s), v in lat.items()}, "n": nq}, indent=1))
    table = markdown(per, names, nq, langs)
    print()
    print(table)
    if args.write:
        write_result(args.write, [table], echo=False)
    return 0


def markdown(per: dict[tuple[str, str], list[float]], names: list[str], nq: dict[str, int],
             langs: dict[str, str]) -> str:
    systems: list[str] = []
    for (_, s) in per:
        if s not in systems:
            systems.append(s)
    lines = [f"Measured {_dt.date.today().isoformat()}.  {machine_line()}.", "",
             "MRR@10 per corpus (n = queries); mean = unweighted mean over corpora with its "
             "95% bootstrap interval (queries resampled within each corpus).", "",
             "| system | " + " | ".join(f"{c} ({langs[c][:2]}, n={nq[c]})" for c in names)
             + " | mean [95% CI] |",
             "|---|" + "---|" * (len(names) + 1)]
    for s in systems:
        cells, vals = [], []
        for c in names:
            v = per.get((c, s))
            cells.append(f"{statistics.mean(v):.3f}" if v else "")
            if v:
                vals.append(v)
        mean = ""
        if len(vals) == len(names):
            m = statistics.mean(statistics.mean(v) for v in vals)
            lo, hi = mean_ci(vals)
            mean = f"{m:.3f} [{lo:.3f}, {hi:.3f}]"
        lines.append(f"| {s} | " + " | ".join(cells) + f" | {mean} |")
    return "\n".join(lines) + "\n"


def mean_ci(groups: list[list[float]], n_boot: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval of the mean over corpora of per-corpus MRR."""
    rng = random.Random(seed)
    means = []
    for _ in range(n_boot):
        tot = 0.0
        for g in groups:
            tot += sum(rng.choice(g) for _ in range(len(g))) / len(g)
        means.append(tot / len(groups))
    means.sort()
    return means[int(0.025 * n_boot)], means[int(0.975 * n_boot) - 1]


if __name__ == "__main__":
    sys.exit(main())
