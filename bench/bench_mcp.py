"""MCP benchmark: a fresh ``ragexctl mcp`` session vs a cold, self-contained MCP server.

Coding agents spawn an MCP server per session.  Measured side by side, runs
interleaved so both see the same machine load:

* ragex: warm ragexd; each run spawns ``ragexctl mcp``, initializes, calls
  ``search_code`` once and exits (the MCP SDK's own stdio client);
* baseline (bench/mcp_baseline_server.py): each run spawns a server that loads
  the model itself — with the chunk vectors cached on disk so only the query
  is embedded (the most favourable cold case), and, fewer times, embedding the
  whole tree at start (a server without a persistent index);
* freshness: time from saving a new file to the first semantic (and symbol)
  hit through the warm worker's watcher.

Writes bench/results/mcp.md (figures + machine).

    python bench/bench_mcp.py [--runs 7] [--tree-runs 1] [--save-runs 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.common import (PY, REPO, RESULTS, load_average, machine_line, median, ms,  # noqa: E402
                          pct, private_ragex_env, write_result)
from tests.harness import copy_stdlib  # noqa: E402

QUERY = "parse an email address into its display name and address"
#: The answer a reader wants: email.utils.parseaddr (checked in ragex's top 5).
EXPECT = ("email/utils.py:", " function parseaddr ")

FRESH = [
    ("celsius_to_fahrenheit", "Convert a temperature from degrees Celsius to Fahrenheit.",
     "convert a temperature in celsius to fahrenheit"),
    ("haversine_km", "Great-circle distance between two latitude/longitude points in km.",
     "distance between two GPS coordinates on the globe"),
    ("roman_to_int", "Convert a Roman numeral such as MCMXCIV to an integer.",
     "turn roman numerals into a number"),
    ("levenshtein", "Minimum number of single-character edits turning one string into another.",
     "edit distance between two strings"),
    ("is_leap_year", "True when a Gregorian calendar year has 366 days.",
     "check whether a year is a leap year"),
    ("luhn_valid", "Validate a credit card number with the Luhn checksum.",
     "credit card number checksum validation"),
    ("fibonacci_memo", "The nth Fibonacci number, computed with memoisation.",
     "compute fibonacci numbers with a cache"),
]


def children_peak_rss() -> int:
    """Peak RSS (VmHWM) of our direct children, in bytes: the MCP server process."""
    me = os.getpid()
    peak = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                ppid = int(fh.read().rsplit(b")", 1)[-1].split()[1])
            if ppid != me:
                continue
            with open(f"/proc/{entry}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]) * 1024)
        except (OSError, ValueError, IndexError):
            continue
    return peak


def mcp_session(command: list[str], env: dict[str, str], query: str) -> dict[str, Any]:
    """One agent session: spawn, initialize, one search_code call, exit."""
    import anyio
    from mcp.client import Client
    from mcp.client.stdio import StdioServerParameters

    params = StdioServerParameters(command=command[0], args=command[1:], env=env)
    out: dict[str, Any] = {}

    async def main() -> None:
        t0 = time.perf_counter()
        async with Client(params, mode="legacy", read_timeout_seconds=600) as client:
            out["init"] = time.perf_counter() - t0
            result = await client.call_tool("search_code", {"query": query, "limit": 10})
            out["answer"] = time.perf_counter() - t0
            out["rss"] = children_peak_rss()
            out["text"] = "\n".join(c.text for c in result.content if c.type == "text")
            out["error"] = result.is_error
        out["total"] = time.perf_counter() - t0

    anyio.run(main)
    if out["error"]:
        raise RuntimeError(f"{command[:3]}: tool error: {out['text'][:500]}")
    return out


def fresh_hits(corpus: Path, runs: int) -> tuple[list[float], list[float]]:
    """Save a new file; seconds until the first symbol hit and the first semantic hit."""
    from ragexd.protocol import Op
    from ragexctl.client import DaemonClient

    client = DaemonClient()

    def search(query: str, mode: str) -> list[dict[str, Any]]:
        reply = client.call(Op.SEARCH, {"query": query, "mode": mode, "limit": 5},
                            project=str(corpus), timeout=60)
        return reply.raise_for_error()["hits"]

    sem, sym = [], []
    try:
        for name, doc, query in FRESH[:runs]:
            rel = f"fresh_{name}.py"
            with open(corpus / rel, "w") as fh:
                fh.write(f'def {name}(value):\n    """{doc}"""\n    return value\n')
            t0 = time.perf_counter()
            got_sym = got_sem = None
            while time.perf_counter() - t0 < 30:
                if got_sym is None and any(h["path"] == rel and h["name"] == name
                                           for h in search(name, "symbol")):
                    got_sym = time.perf_counter() - t0
                if got_sem is None and any(h["path"] == rel
                                           for h in search(query, "semantic")):
                    got_sem = time.perf_counter() - t0
                if got_sym is not None and got_sem is not None:
                    break
                time.sleep(0.02)
            if got_sem is None or got_sym is None:
                raise RuntimeError(f"{rel} not found within 30 s (symbol {got_sym}, "
                                   f"semantic {got_sem})")
            sem.append(got_sem)
            sym.append(got_sym)
            time.sleep(1.0)  # let the watcher go quiet between runs
    finally:
        client.close()
    return sym, sem


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7, help="sessions per server (interleaved)")
    ap.add_argument("--tree-runs", type=int, default=1,
                    help="sessions of the baseline embedding the whole tree (0: skip)")
    ap.add_argument("--save-runs", type=int, default=5, help="save -> hit measurements")
    args = ap.parse_args()
    load_start = load_average()

    work = Path(tempfile.mkdtemp(prefix="rxb-mcp-"))
    corpus = work / "corpus"
    corpus.mkdir()
    copy_stdlib(corpus, "email")
    (corpus / ".git").mkdir()
    n_files = len(list(corpus.rglob("*.py")))
    cache = work / "baseline.npz"

    with private_ragex_env() as env:
        env["PYTHONPATH"] = str(REPO)
        os.environ.update(env)  # the in-process client (freshness) reads its socket from here
        t0 = time.perf_counter()
        subprocess.run([PY, "-m", "ragexctl", "index", str(corpus)], env=env, check=True,
                       capture_output=True, cwd=REPO, timeout=1800)
        index_s = time.perf_counter() - t0
        status = subprocess.run([PY, "-m", "ragexctl", "status", "--json"], env=env,
                                capture_output=True, text=True, cwd=REPO).stdout
        print(f"indexed {n_files} files in {index_s:.1f} s", file=sys.stderr)
        subprocess.run([PY, str(HERE / "mcp_baseline_server.py"), "--root", str(corpus),
                        "--cache", str(cache), "--build-cache"], env=env, check=True,
                       capture_output=True, timeout=1800)

        ragex_cmd = [PY, "-m", "ragexctl", "mcp", "--project", str(corpus)]
        base_cmd = [PY, str(HERE / "mcp_baseline_server.py"), "--root", str(corpus),
                    "--cache", str(cache)]
        tree_cmd = [PY, str(HERE / "mcp_baseline_server.py"), "--root", str(corpus),
                    "--embed-tree"]
        mcp_session(ragex_cmd, env, QUERY)  # warm-up: worker up, model loaded, caches hot

        ragex, base = [], []
        for i in range(args.runs):
            ragex.append(mcp_session(ragex_cmd, env, QUERY))
            base.append(mcp_session(base_cmd, env, QUERY))
            print(f"run {i + 1}: ragex {ragex[-1]['total']:.2f} s, baseline "
                  f"{base[-1]['total']:.2f} s", file=sys.stderr)
        tree = [mcp_session(tree_cmd, env, QUERY) for _ in range(args.tree_runs)]
        found = [r for r in ragex if any(h.startswith(EXPECT[0]) and EXPECT[1] in h
                                          for h in _hits(r["text"])[:5])]
        sym, sem = fresh_hits(corpus, args.save_runs)
        worker_rss = _worker_rss(status)

    load_end = load_average()
    r_tot = [r["total"] for r in ragex]
    b_tot = [r["total"] for r in base]
    t_tot = [r["total"] for r in tree]
    ratio = median(b_tot) / median(r_tot)
    mib = lambda b: f"{b / 1024 / 1024:.0f} MiB"  # noqa: E731
    rows = [
        ("ragex: fresh `ragexctl mcp` session → warm ragexd (spawn, initialize, search_code, "
         "exit)", r_tot),
        ("  of which: spawn + initialize", [r["init"] for r in ragex]),
        ("  of which: the search_code call", [r["answer"] - r["init"] for r in ragex]),
        ("cold MCP server, chunk vectors cached: loads the model, embeds the query", b_tot),
        ("  of which: spawn + initialize (model load)", [r["init"] for r in base]),
    ]
    if tree:
        rows.append(("cold MCP server, no cache: loads the model, embeds the whole tree", t_tot))
    rows += [("save → first symbol hit (ragex, watched project)", sym),
             ("save → first semantic hit (ragex, watched project)", sem)]
    lines = [
        "# MCP benchmark: `ragexctl mcp` vs a cold MCP server",
        "",
        f"{machine_line(load_start, load_end)} "
        "(other work was running: compare the ratios, measured interleaved).",
        f"Corpus: stdlib `email` ({n_files} Python files), query {QUERY!r}; "
        f"first ragex index {index_s:.1f} s. Client: the MCP SDK's stdio client "
        "(initialize handshake), a new server process per session.",
        "",
        "| what | median | p90 | runs |",
        "| --- | --- | --- | --- |",
    ]
    for label, xs in rows:
        lines.append(f"| {label} | {ms(median(xs))} | {ms(pct(xs, 90))} | {len(xs)} |")
    lines += [
        "",
        f"- fresh ragex MCP session vs cold MCP server (cached vectors): **{ratio:.0f}×** faster"
        + (f"; vs embedding the tree per session: **{median(t_tot) / median(r_tot):.0f}×**"
           if tree else ""),
        f"- `email.utils.parseaddr` was in ragex's top 5 in {len(found)}/{len(ragex)} sessions",
        f"- peak RSS per session: `ragexctl mcp` {mib(median([r['rss'] for r in ragex]))}, "
        f"cold server {mib(median([r['rss'] for r in base]))}"
        + (f" (embedding the tree: {mib(median([r['rss'] for r in tree]))})" if tree else "")
        + (f"; ragex's one shared worker for the project: {mib(worker_rss)}"
           if worker_rss else ""),
        f"- save → hit, median of {len(sem)}: symbol {ms(median(sym))}, semantic "
        f"{ms(median(sem))} (target: semantic within 2 s)",
        "",
    ]
    write_result(RESULTS / "mcp.md", lines)
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return 0


def _hits(text: str) -> list[str]:
    import re

    return [line for line in text.splitlines() if re.match(r"\S+:\d+(-\d+)? ", line)]


def _worker_rss(status_json: str) -> int:
    import json

    try:
        workers = json.loads(status_json).get("workers") or []
        return int(workers[0].get("rss") or 0)
    except (ValueError, IndexError, AttributeError, TypeError):
        return 0


if __name__ == "__main__":
    sys.exit(main())
