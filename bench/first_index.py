#!/usr/bin/env python3
"""First index of a never-indexed tree: this checkout against a baseline revision.

Side by side in one run, the two interleaved run by run so both see the same
machine load, each in a fresh process on the same copy of a tree:

* catalog complete — seconds from the start of ``Engine.index()`` until every
  file is catalogued: from then on symbol and keyword answers are exact (the
  two-phase index reaches it before embedding ends; a one-phase index only when
  it is done);
* first index — seconds until ``Engine.index()`` returns (every vector stored),
  and chunks/s over it;
* semantic query latency while the index runs (median and worst of one
  query every 2 s once the model is loaded);
* worker RSS when it is done;
* index bytes on disk per chunk, by store (catalog, vectors, chroma);
* moved code: 20 lines inserted at the top of the ``--edit-files`` largest
  files, then an incremental index: chunks embedded (every chunk below the
  insertion has new lines, hence a new id) and its seconds.

Writes bench/results/first_index.md, or first_index-catalog.md with
``--catalog-only`` (``run_all.py`` puts both into BENCHMARKS.md).

The baseline is another revision of this repository (default ``main``),
exported with ``git archive``.  Prints medians and their ratios.

    python bench/first_index.py [--package email] [--site-package NAME [--max-files N]]
                                [--runs 3] [--baseline main] [--edit-files 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PY, REPO, RESULTS, machine_line, median, write_result  # noqa: E402
from tests.harness import copy_stdlib  # noqa: E402

CHILD = r"""
import json, os, sys, threading, time
from pathlib import Path
import ragexd
from ragexd.engine import Engine
root, idx, n_edit = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
catalog_only = sys.argv[4] == "1"   # stop once every file is catalogued
engine = Engine(root, idx)
seen = []          # (seconds, files catalogued)
stop = threading.Event()
cancel = threading.Event()
def watch(t0):
    from ragexd.engine.catalog import Catalog
    catalog = Catalog(idx / "catalog.sqlite")
    while not stop.is_set():
        seen.append((time.monotonic() - t0, catalog.stats()[0]))
        if catalog_only and engine._indexing and engine.coverage().catalog_complete:
            seen.append((time.monotonic() - t0, float("inf")))
            cancel.set()
        time.sleep(0.1)
lat = []           # semantic query latency while the index runs (model loaded)
def ask():
    from ragexd.engine import SearchQuery
    while not stop.is_set():
        if engine.model_loaded:
            q0 = time.monotonic()
            engine.search(SearchQuery("parse a header value", mode="semantic", limit=5))
            lat.append(time.monotonic() - q0)
        time.sleep(2.0)
t0 = time.monotonic()
th = threading.Thread(target=watch, args=(t0,), daemon=True)
th.start()
qt = threading.Thread(target=ask, daemon=True)
qt.start()
summary = engine.index(cancel=cancel)
wall = time.monotonic() - t0
stop.set(); th.join(); qt.join()
lat.sort()
files = engine._catalog.stats()[0]
complete = next((t for t, n in seen if n >= files), wall)
embedded = summary.chunks_total - engine._catalog.pending_count()
if catalog_only:
    print(json.dumps({"catalog": complete, "files": files, "chunks": summary.chunks_total,
                      "embedded": embedded}))
    sys.exit(0)
import psutil
rss = psutil.Process().memory_info().rss
engine.close()
disk = {}          # bytes on disk after a clean close, by store
for p in idx.rglob("*"):
    if p.is_file():
        top = p.relative_to(idx).parts[0]
        store = "chroma" if top == "chroma" else top.split(".")[0]
        disk[store] = disk.get(store, 0) + p.stat().st_size
# moved code: lines inserted at the top of the largest files move every chunk below
edited = sorted(root.rglob("*.py"), key=lambda p: -p.stat().st_size)[:n_edit]
for p in edited:
    p.write_text("".join(f"# inserted line {i}\n" for i in range(20)) + p.read_text())
engine = Engine(root, idx)   # after the disk figure: the edit's churn is not in it
again = engine.index()
for p in edited:   # the tree is shared by every run: put it back
    p.write_text(p.read_text().split("\n", 20)[20])
edit = {"files": len(edited), "chunks": sum(len(engine._catalog.chunks_of(
    p.relative_to(root).as_posix())) for p in edited), "embedded": again.chunks_embedded,
    "seconds": again.seconds}
engine.close()
print(json.dumps({"code": os.path.dirname(os.path.dirname(ragexd.__file__)), "wall": wall, "catalog": min(complete, wall), "chunks": summary.chunks_total,
                  "files": files, "rss": rss, "disk": disk, "edit": edit,
                  "query": lat[len(lat) // 2] if lat else None, "query_max": lat[-1] if lat else None}))
"""


def run_one(code: Path, tree: Path, work: Path, n_edit: int, catalog_only: bool) -> dict:
    idx = Path(tempfile.mkdtemp(prefix="idx-", dir=work))
    env = {**os.environ, "PYTHONPATH": str(code), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    # cwd outside any checkout: ``python -c`` puts the cwd first on sys.path
    out = subprocess.run([PY, "-c", CHILD, str(tree), str(idx), str(n_edit),
                          "1" if catalog_only else "0"], env=env,
                         capture_output=True,
                         text=True, check=True, timeout=7200, cwd=work)
    shutil.rmtree(idx, ignore_errors=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_catalog_only(name: str, args: argparse.Namespace,
                       results: dict[str, list[dict]]) -> None:
    """Seconds until every file is catalogued (symbol and keyword answers exact
    from then on), and the vectors stored by then, this checkout vs baseline."""
    first = results["this"][0]
    out = ["## Catalogue phase of a first index: this checkout vs " + args.baseline +
           " (bench/first_index.py --catalog-only)", "",
           f"{name} ({first['files']} files, {first['chunks']} chunks), medians of {args.runs} "
           f"interleaved runs, each stopped once every file is catalogued.  {machine_line()}.  "
           f"Command: `python bench/first_index.py "
           f"{' '.join(sys.argv[1:])}`.", "",
           "| | catalog complete (s) | vectors stored when stopped (the batch in flight ends) |", "|---|---|---|"]
    med = {}
    for label, rows in results.items():
        med[label] = median([r["catalog"] for r in rows])
        out.append(f"| {label} | {med[label]:.1f} | "
                   f"{median([r['embedded'] for r in rows]):.0f} |")
    out += ["", f"Ratio this/{args.baseline}: catalog complete "
            f"{med['this'] / med[args.baseline]:.2f}.  A symbol search during a first index "
            "answers when the catalogue is complete (the worker waits for it, at most 30 s, "
            "then answers from what is catalogued and says so), so this is also the time to "
            "the first exact symbol answer, less the client's start-up."]
    write_result(RESULTS / "first_index-catalog.md", out)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--package", default="email", help="stdlib package to copy")
    ap.add_argument("--site-package", help="an installed third-party package to copy instead")
    ap.add_argument("--max-files", type=int, default=0,
                    help="with --site-package: its first N .py files in path order (0: all)")
    ap.add_argument("--edit-files", type=int, default=5,
                    help="files that get 20 lines inserted at the top after the first index")
    ap.add_argument("--catalog-only", action="store_true",
                    help="stop each run once every file is catalogued (a large tree's "
                         "time to exact symbols without waiting for its every vector)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--baseline", default="main", help="git revision to compare with")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rx-first-"))
    try:
        if args.site_package:
            import importlib.util
            spec = importlib.util.find_spec(args.site_package)
            assert spec and spec.submodule_search_locations, args.site_package
            src = Path(list(spec.submodule_search_locations)[0])
            tree = work / "tree"
            if args.max_files:
                for p in sorted(p for p in src.rglob("*.py")
                                if "__pycache__" not in p.parts)[:args.max_files]:
                    target = tree / src.name / p.relative_to(src)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(p, target)
            else:
                shutil.copytree(src, tree / src.name,
                                ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyc"))
            name = args.site_package
        else:
            tree = copy_stdlib(work / "tree", args.package)
            name = f"stdlib {args.package}"
        base = work / "baseline"
        base.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", args.baseline],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        results: dict[str, list[dict]] = {"this": [], args.baseline: []}
        for i in range(args.runs):
            for label, code in (("this", REPO), (args.baseline, base)):
                got = run_one(code, tree, work, args.edit_files, args.catalog_only)
                results[label].append(got)
                print(f"run {i + 1} {label}: {got}", flush=True)
        if args.catalog_only:
            write_catalog_only(name, args, results)
            return 0
        out = ["## First index: this checkout vs " + args.baseline + " (bench/first_index.py)", "",
               f"First index of {name} ({results['this'][0]['files']} files, "
               f"{results['this'][0]['chunks']} chunks), medians of {args.runs} interleaved "
               f"runs.  {machine_line()}.  Command: `python bench/first_index.py "
               f"{' '.join(sys.argv[1:])}`.", "",
               "| | catalog complete (s) | first index (s) | chunks/s | query during index "
               "p50 / max (ms) | RSS after (MB) | index bytes/chunk (by store) |",
               "|---|---|---|---|---|---|---|"]
        med = {}
        for label, rows in results.items():
            m = {k: median([r[k] for r in rows]) for k in ("catalog", "wall", "rss")}
            m["rate"] = median([r["chunks"] / r["wall"] for r in rows])
            chunks = max(1, rows[0]["chunks"])
            disk = rows[0].get("disk", {})
            m["bpc"] = sum(disk.values()) / chunks
            stores = ", ".join(f"{k} {v / chunks:.0f}" for k, v in sorted(disk.items()))
            q = [r["query"] for r in rows if r["query"] is not None]
            qmax = max((r["query_max"] for r in rows if r["query_max"] is not None), default=0)
            med[label] = m
            out.append(f"| {label} | {m['catalog']:.1f} | {m['wall']:.1f} | {m['rate']:.1f} | "
                       f"{median(q) * 1000 if q else 0:.0f} / {qmax * 1000:.0f} | "
                       f"{m['rss'] / 2**20:.0f} | {m['bpc']:.0f} ({stores}) |")
        a, b = med["this"], med[args.baseline]
        out += ["", f"Ratios this/{args.baseline}: catalog complete "
                f"{a['catalog'] / b['catalog']:.2f}, first index {a['wall'] / b['wall']:.2f}, "
                f"chunks/s {a['rate'] / b['rate']:.2f}, bytes/chunk {a['bpc'] / b['bpc']:.2f}."]
        edits = {label: rows[0]["edit"] for label, rows in results.items()
                 if rows[0].get("edit")}
        if len(edits) == 2:
            e = edits["this"]
            out += ["", f"Moved code: 20 lines inserted at the top of the {e['files']} largest "
                    f"files ({e['chunks']} chunks, every one on new lines), then an incremental "
                    "index: " + "; ".join(
                        f"{label} embedded {median([r['edit']['embedded'] for r in rows])} "
                        f"chunks in {median([r['edit']['seconds'] for r in rows]):.1f} s"
                        for label, rows in results.items()) + "."]
        write_result(RESULTS / "first_index.md", out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
