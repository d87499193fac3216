"""Issues #2 and #3: the engine, the warm worker and the whole ragexctl → ragexd path.

Side by side in one run, on copies of real code (stdlib packages):

* index throughput (chunks/s) of ``Engine.index`` vs raw ``SentenceTransformer.encode``
  on the same chunk texts (what the indexer costs beyond the model itself);
* regex: the engine vs bare ``rg`` (in-process, then through the warm daemon);
* a warm ``ragexctl search`` (fresh client process each time, semantic mode) vs
  ``ragexctl search --no-daemon`` vs a bare ``python -c 'import zmq'``;
* the worker's own query latency per mode (round trip over ZeroMQ through ragexd);
* ragexd's idle RSS and CPU.

    python bench/bench_search.py [--runs N] [--out bench/results/search.md]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (PY, RESULTS, load_average, machine_line, median, ms,  # noqa: E402
                          pct, private_ragex_env, time_cmd, write_result)
from tests.harness import copy_stdlib  # noqa: E402

QUERIES = [
    "parse an email address into name and address",
    "send an HTTP request and read the response status",
    "decode a JSON document from a string",
    "quote a header value according to RFC 2047",
    "read cookies from a response",
]
REGEX = r"def \w+_header"


def engine_part(tree: Path, runs: int) -> dict[str, float]:
    from ragexd.engine import Engine, SearchQuery
    from ragexd.engine import discovery
    from ragexd.engine.chunking import chunk_file
    from ragexd.engine.embedding import Embedder, context_text
    from ragexd.engine.languages import language_for

    idx = Path(tempfile.mkdtemp(prefix="rxb-idx-"))
    engine = Engine(tree, idx)
    engine.load_model()
    t0 = time.perf_counter()
    summary = engine.index(rebuild=True)
    index_s = time.perf_counter() - t0
    chunks = summary.chunks_total

    # The same chunk texts, embedded bare: the model's own speed on this machine.
    texts: list[str] = []
    files, _ = discovery.walk(tree, discovery.IgnoreRules(tree, (idx,)))
    for f in files:
        text = discovery.decode((tree / f.rel).read_bytes())
        for c in chunk_file(f.rel, text, language_for(f.rel)):
            texts.append(context_text(c))
    emb = Embedder()
    emb.load()
    emb.encode(texts[:64])
    t0 = time.perf_counter()
    emb.encode(texts)
    raw_s = time.perf_counter() - t0

    lat: dict[str, list[float]] = {}
    for mode in ("semantic", "hybrid", "symbol", "regex"):
        q = {"symbol": "parseaddr", "regex": REGEX}.get(mode)
        xs = []
        for i in range(runs * 2):
            t0 = time.perf_counter()
            engine.search(SearchQuery(q or QUERIES[i % len(QUERIES)], mode=mode, limit=10))
            xs.append(time.perf_counter() - t0)
        lat[mode] = xs
    rg = str(Path(PY).parent / "rg")
    rg_times = time_cmd([rg, "--json", "-e", REGEX, str(tree)], runs=runs * 2, ok_codes=(0, 1))
    engine.close()
    return {"chunks": chunks, "texts": len(texts), "index_s": index_s, "raw_s": raw_s,
            **{f"engine_{m}": median(v) for m, v in lat.items()},
            "bare_rg": median(rg_times)}


def daemon_part(tree: Path, runs: int) -> dict[str, float]:
    import psutil

    out: dict[str, float] = {}
    with private_ragex_env() as env:
        ctl = [PY, "-m", "ragexctl"]
        t0 = time.perf_counter()
        subprocess.run(ctl + ["index", str(tree)], env=env, check=True,
                       capture_output=True, timeout=1800)
        out["cold_index_s"] = time.perf_counter() - t0
        # One search to make sure the model is loaded, then measure warm calls.
        search = ctl + ["search", "--project", str(tree), "--mode", "semantic", "--json"]
        subprocess.run(search + [QUERIES[0]], env=env, check=True, capture_output=True, timeout=300)
        warm = []
        for i in range(runs):
            warm += time_cmd(search + [QUERIES[i % len(QUERIES)]], env=env, runs=1)
        out["warm_p50"], out["warm_p90"] = median(warm), pct(warm, 90)
        regex = time_cmd(ctl + ["search", "--project", str(tree), "--mode", "regex", "--json",
                                "--", REGEX], env=env, runs=runs)
        out["warm_regex_p50"] = median(regex)
        zmq_only = time_cmd([PY, "-c", "import zmq"], runs=runs)
        out["import_zmq_p50"] = median(zmq_only)
        pid = int(Path(env["RAGEX_RUNTIME_DIR"], "ragexd.pid").read_text().split()[0])
        proc = psutil.Process(pid)
        subprocess.run(ctl + ["stop", str(tree)], env=env, capture_output=True)
        time.sleep(2)
        proc.cpu_percent(None)
        time.sleep(10)
        out["ragexd_idle_cpu_pct"] = proc.cpu_percent(None)
        out["ragexd_idle_rss_mib"] = proc.memory_info().rss / 2**20
        # After the stop: while the project's worker runs it owns the index, and a
        # one-shot worker would (rightly) be refused with index_locked.
        oneshot = time_cmd(search + ["--no-daemon", QUERIES[1]], env=env, runs=max(3, runs // 3))
        out["oneshot_p50"] = median(oneshot)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--packages", default="email,http,json")
    ap.add_argument("--out", default=str(RESULTS / "search.md"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rxb-tree-"))
    tree = work / "corpus"
    tree.mkdir()
    for pkg in args.packages.split(","):
        copy_stdlib(tree, pkg)

    load_before = load_average()
    e = engine_part(tree, args.runs)
    d = daemon_part(tree, args.runs)
    speedup = d["oneshot_p50"] / d["warm_p50"]
    lines = [
        "## Search: engine, warm worker and the ragexctl → ragexd path (issues #2, #3)",
        "",
        f"{machine_line(load_before)}. Corpus: stdlib `{args.packages}` "
        f"({e['chunks']:.0f} chunks). Medians of {args.runs} runs unless noted; "
        f"measured {time.strftime('%Y-%m-%d')}.",
        "",
        "| what | ragex | baseline | ratio |",
        "|---|---|---|---|",
        f"| index throughput | {e['chunks'] / e['index_s']:.1f} chunks/s (Engine.index, full) "
        f"| {e['texts'] / e['raw_s']:.1f} chunks/s (the same texts, bare `Embedder.encode`) "
        f"| {(e['chunks'] / e['index_s']) / (e['texts'] / e['raw_s']):.2f}× |",
        f"| warm `ragexctl search` (semantic, fresh process) | {ms(d['warm_p50'])} (p90 {ms(d['warm_p90'])}) "
        f"| {ms(d['oneshot_p50'])} (`--no-daemon`) | **{speedup:.0f}× faster** |",
        f"| warm `ragexctl search` vs bare `python -c 'import zmq'` | {ms(d['warm_p50'])} "
        f"| {ms(d['import_zmq_p50'])} | {d['warm_p50'] / d['import_zmq_p50']:.2f}× |",
        f"| regex, warm `ragexctl search --mode regex --json` (the daemon path: `--json` "
        f"names enclosing definitions from the index; plain regex takes the direct path, "
        f"next section) | {ms(d['warm_regex_p50'])} "
        f"| {ms(e['bare_rg'])} (bare `rg --json`) | {d['warm_regex_p50'] / e['bare_rg']:.2f}× |",
        f"| regex inside the engine | {ms(e['engine_regex'])} | {ms(e['bare_rg'])} (bare `rg`) "
        f"| {e['engine_regex'] / e['bare_rg']:.2f}× |",
        "",
        "Engine query latency in-process (median): " + ", ".join(
            f"{m} {ms(e['engine_' + m])}" for m in ("semantic", "hybrid", "symbol", "regex")) + ".",
        f"First index through ragexd (cold worker, model load included): {d['cold_index_s']:.1f} s.",
        f"ragexd idle (no workers): RSS {d['ragexd_idle_rss_mib']:.0f} MiB, "
        f"CPU {d['ragexd_idle_cpu_pct']:.2f} % over 10 s.",
        "",
    ]
    write_result(args.out, lines)
    print(json.dumps({**e, **d}, indent=1), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
