"""Large-tree benchmark: a real third-party tree, ONNX Runtime vs the torch reference.

    python bench/bench_large.py                       # scikit-learn, both embedders, full
    python bench/bench_large.py --index-embedders onnx --sample 1500

The tree is scikit-learn copied from the installed packages into a fresh git
repository (>= 300k lines; third-party code, not the stdlib).  For each embedder
(``onnx``: ONNX Runtime's fp32 graph, the default; ``int8``: its int8 graph; ``openvino``:
the fp32 graph on OpenVINO in the worker, ``[embedder] runtime = "openvino"``; ``auto``:
onnxruntime in the worker and the first index's backlog on OpenVINO in a child process,
``[embedder] runtime = "auto"``; ``torch``: sentence-transformers), in one run, side by side:

* raw throughput on the same chunk texts the indexer embeds (``--sample`` of them,
  spread over the length range), in a fresh process: chunks/s, start to first
  vector, RSS;
* a first index through a private ragexd (process runtime): wall time, time to the
  first regex and symbol answer after ``ragexctl index`` starts, time to 100 %
  semantic coverage (the end of the index run on a non-progressive engine), peak
  and settled worker RSS (the worker's and its child processes'), the child
  processes left 10 s after, index size on disk per chunk;
* cold worker (spawn -> first semantic answer), ``--no-daemon`` one-shot search
  and warm ``ragexctl search`` p50.

Writes bench/results/large.md, or large-<section>.md with ``--section`` (``run_all.py``
puts them into BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (PY, REPO, RESULTS, machine_line, median,  # noqa: E402
                          private_ragex_env, write_result)

QUERIES = ["check that an estimator is fitted", "compute pairwise distances between samples",
           "split data into train and test sets", "standardize features by removing the mean"]


def copy_tree(package: str, dest: Path, max_files: int) -> tuple[Path, int, int]:
    """Copy an installed package's .py files into a fresh git repo; (tree, files, lines)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{package} is not installed")
    src = Path(list(spec.submodule_search_locations)[0])
    tree = dest / "tree"
    files = sorted(p for p in src.rglob("*.py") if "__pycache__" not in p.parts)
    if max_files:
        files = files[:max_files]
    lines = 0
    for p in files:
        target = tree / package / p.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, target)
        lines += p.read_bytes().count(b"\n")
    git = ["git", "-C", str(tree), "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    subprocess.run(["git", "init", "-q", str(tree)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "import"], check=True)
    return tree, len(files), lines


def chunk_texts(tree: Path, sample: int) -> list[str]:
    """The texts the indexer would embed, ``sample`` of them spread over the lengths."""
    from ragexd.engine.chunking import chunk_file
    from ragexd.engine.embedding import context_text
    from ragexd.engine.languages import language_for

    texts: list[str] = []
    for p in sorted(tree.rglob("*.py")):
        rel = p.relative_to(tree).as_posix()
        texts += [context_text(c) for c in chunk_file(rel, p.read_text(encoding="utf-8",
                                                                        errors="replace"),
                                                      language_for(rel))]
    if sample and sample < len(texts):
        texts.sort(key=len)
        step = len(texts) / sample
        texts = [texts[int(i * step)] for i in range(sample)]
    return texts


def child_embed(texts_file: str) -> None:
    """In a fresh process: load, embed the texts, print JSON figures."""
    t0 = time.perf_counter()
    from ragexd.engine.embedding import Embedder

    texts = json.loads(Path(texts_file).read_text())
    emb = Embedder()
    emb.encode_query("warm up")
    first = time.perf_counter() - t0
    t = time.perf_counter()
    emb.encode(texts)
    dt = time.perf_counter() - t
    rss = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    print(json.dumps({"first_vector_s": first, "chunks_per_s": len(texts) / dt,
                      "rss_mib": rss / 2**20, "heavy": sorted(m for m in sys.modules
                                                              if m in ("torch", "onnxruntime", "openvino"))}))


def worker_pids(env: dict[str, str]) -> list[int]:
    import psutil

    out = []
    for proc in psutil.process_iter(["cmdline", "environ"]):
        cmd = proc.info.get("cmdline") or []
        if "ragexd.worker" in cmd and "serve" in cmd and \
                any(env["RAGEX_RUNTIME_DIR"] in c for c in cmd):
            out.append(proc.pid)
    return out


def tree_procs(pids: list[int]) -> list["psutil.Process"]:
    """The processes ``pids`` and all their descendants (a bulk-embedding child)."""
    import psutil

    out = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            out += [proc, *proc.children(recursive=True)]
        except psutil.Error:
            pass
    return out


def rss_mib(pids: list[int]) -> float:
    """RSS of the workers and their descendants: what ragexd's memory limit counts."""
    import psutil

    total = 0
    for proc in tree_procs(pids):
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def ctl(env: dict[str, str], *args: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "ragexctl", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def probe_name(tree: Path) -> str:
    """A function defined in the tree's last file in path order: a first index that
    is not progressive reaches it last, so its answer time is the honest worst case."""
    import re

    for p in sorted(tree.rglob("*.py"), reverse=True):
        m = re.search(r"^def ([A-Za-z_]\w*)", p.read_text(encoding="utf-8", errors="replace"), re.M)
        if m:
            return m.group(1)
    raise SystemExit(f"no top-level function in {tree}")


def semantic_searches(env: dict[str, str], tree: Path, queries: list[str], *,
                      before: tuple[str, ...] = (), flags: tuple[str, ...] = ()) -> float:
    """Median wall time of ``ragexctl search`` (semantic) over ``queries``; ``before``
    is a ragexctl command run, untimed, ahead of each one."""
    times = []
    for q in queries:
        if before:
            ctl(env, *before)
        t = time.perf_counter()
        r = ctl(env, "search", *flags, "--project", str(tree), "--mode", "semantic", q)
        times.append(time.perf_counter() - t)
        if r.returncode != 0:
            raise RuntimeError(f"search {q!r} exited {r.returncode}: {r.stderr[-1000:]}")
    return median(times)


EMBEDDERS = ("onnx", "torch", "int8", "openvino", "auto")


def embedder_env(name: str) -> dict[str, str]:
    """The settings that select embedder ``name`` (int8, onnx = fp32 on onnxruntime
    only, openvino, auto, torch)."""
    if name not in EMBEDDERS:
        raise SystemExit(f"unknown embedder {name!r}: one of {', '.join(EMBEDDERS)}")
    return {"RAGEX_EMBEDDER": "torch" if name == "torch" else "onnx",
            "RAGEX_EMBEDDER_PRECISION": "int8" if name == "int8" else "fp32",
            "RAGEX_EMBEDDER_RUNTIME": name if name in ("openvino", "auto") else "onnxruntime"}


def first_index(tree: Path, embedder: str) -> dict[str, float]:
    out: dict[str, float] = {}
    with private_ragex_env() as env:
        env = dict(env, **embedder_env(embedder))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH"))
                                            if p)
        ctl(env, "start")
        first: dict[str, float] = {}
        peak = [0.0]
        done = threading.Event()
        t0 = time.perf_counter()
        proc = subprocess.Popen([PY, "-m", "ragexctl", "index", str(tree)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

        name = probe_name(tree)

        def probe() -> None:
            while not done.is_set() and len(first) < 2:
                for mode, q in (("regex", f"def {name}\\b"), ("symbol", name)):
                    if mode not in first:
                        r = ctl(env, "search", "--project", str(tree), "--mode", mode, q,
                                "--json", timeout=120)
                        if r.returncode == 0 and r.stdout.strip():
                            first[mode] = time.perf_counter() - t0
                time.sleep(0.5)

        def sample_rss() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], rss_mib(worker_pids(env)))
                time.sleep(0.5)

        threads = [threading.Thread(target=probe, daemon=True),
                   threading.Thread(target=sample_rss, daemon=True)]
        for th in threads:
            th.start()
        stdout, _ = proc.communicate()
        out["index_s"] = time.perf_counter() - t0
        done.set()
        out["first_regex_s"] = first.get("regex", float("nan"))
        out["first_symbol_s"] = first.get("symbol", float("nan"))
        out["peak_rss_mib"] = peak[0]
        time.sleep(10)
        out["settled_rss_mib"] = rss_mib(worker_pids(env))
        out["children_after"] = len(tree_procs(worker_pids(env))) - len(worker_pids(env))
        chunks = [int(w) for w, nxt in zip(stdout.split(), stdout.split()[1:])
                  if w.isdigit() and nxt.startswith("chunks")]
        out["chunks"] = chunks[0] if chunks else float("nan")
        index_dirs = list((Path(env["RAGEX_DATA_DIR"]) / "projects").glob("*"))
        from ragexd.paths import dir_size

        out["disk_per_chunk_kb"] = (sum(dir_size(d) for d in index_dirs) / 1000
                                    / max(1, out["chunks"]))
        out["warm_search_p50_s"] = semantic_searches(env, tree, QUERIES * 3)
        # cold worker: stop it before each search (ragexd stays up)
        out["cold_worker_semantic_s"] = semantic_searches(env, tree, QUERIES[:3],
                                                          before=("stop", str(tree)))
        # one-shot: nothing else may own the index (a warm worker would), so ragexd goes
        ctl(env, "stop", "--all")
        out["oneshot_search_s"] = semantic_searches(env, tree, QUERIES[:3],
                                                    flags=("--no-daemon",))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child-embed", help=argparse.SUPPRESS)
    ap.add_argument("--package", default="sklearn")
    ap.add_argument("--max-files", type=int, default=0, help="0: the whole package")
    ap.add_argument("--sample", type=int, default=2000,
                    help="chunk texts for the raw throughput (0: all)")
    ap.add_argument("--embedders", default="onnx,torch,int8",
                    help="for the raw throughput; int8 = the optional int8 ONNX graph, "
                    "openvino = the fp32 graph on OpenVINO (the [openvino] extra)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved raw rounds (median)")
    ap.add_argument("--index-embedders", default="onnx,torch",
                    help="embedders that also run the full first index (auto: the "
                    "default runtime, OpenVINO in a child for the backlog where it pays)")
    ap.add_argument("--section", default="",
                    help="write bench/results/large-SECTION.md, beside the main run's")
    args = ap.parse_args()
    if args.child_embed:
        child_embed(args.child_embed)
        return 0
    work = Path(tempfile.mkdtemp(prefix="rx-large-"))
    try:
        tree, n_files, n_lines = copy_tree(args.package, work, args.max_files)
        texts = chunk_texts(tree, args.sample)
        (work / "texts.json").write_text(json.dumps(texts))
        raw: dict[str, dict] = {}
        idx: dict[str, dict] = {}
        runs: dict[str, list[dict]] = {}
        for _ in range(args.rounds):   # interleaved: a load change hits every embedder alike
            for name in filter(None, args.embedders.split(",")):
                env = dict(os.environ, **embedder_env(name))
                env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH"))
                                                    if p)
                r = subprocess.run([PY, __file__, "--child-embed", str(work / "texts.json")],
                                   env=env, capture_output=True, text=True, check=True)
                runs.setdefault(name, []).append(json.loads(r.stdout.strip().splitlines()[-1]))
                print(name, "raw", runs[name][-1], flush=True)
        raw = {name: {k: median([r[k] for r in rs]) for k in ("first_vector_s", "chunks_per_s",
                                                              "rss_mib")}
               for name, rs in runs.items()}
        for name in args.index_embedders.split(","):
            if name:
                idx[name] = first_index(tree, name)
                print(name, "index", idx[name], flush=True)
        write(args, n_files, n_lines, len(texts), raw, idx)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def write(args: argparse.Namespace, n_files: int, n_lines: int, n_texts: int,
          raw: dict[str, dict], idx: dict[str, dict]) -> None:
    # Columns: every embedder measured, each followed by its ratio to torch (the reference).
    shown = [n for n in EMBEDDERS if n in raw or n in idx]
    # The reference each column is divided by: torch where it ran, else onnxruntime.
    ref = "torch" if "torch" in shown else "onnx"
    labels = {"onnx": "onnxruntime only", "torch": "torch (reference)",
              "int8": "onnx int8 (option)", "openvino": "openvino in the worker (option)",
              "auto": "auto (default: OpenVINO child for the backlog)"}

    def row(label: str, key: str, fmt: str, table: dict[str, dict], target: str = "") -> str:
        cells = []
        for n in shown:
            cells.append(fmt.format(table[n][key]) if n in table else "—")
            if n != ref:
                cells.append(f"{table[n][key] / table[ref][key]:.2f}×"
                             if n in table and ref in table and table[ref][key] else "")
        return f"| {label} | {' | '.join(cells)} | {target} |"

    header = ["figure"] + [h for n in shown
                           for h in ([labels[n]] if n == ref else [labels[n], f"{n}/{ref}"])]
    cmd = " ".join(["python bench/bench_large.py"] + [f"--{k.replace('_', '-')} {v}" for k, v in
                                                      vars(args).items()
                                                      if k != "child_embed" and v]
                   + ([] if idx else ['--index-embedders ""']))
    title = (f"Large tree: {' vs '.join(labels[n] for n in shown)}" if args.section
             else "Large tree: ONNX Runtime vs torch") + ("" if idx else ", raw embedding only")
    lines = [f"## {title} (bench/bench_large.py)", "",
             f"{machine_line()}.  Tree: `{args.package}` copied from site-packages into a fresh "
             f"git repo, {n_files} files, {n_lines} lines.  Command: `{cmd}`.", "",
             "| " + " | ".join(header + ["target"]) + " |",
             "|" + "---|" * (len(header) + 1),
             row(f"raw chunks/s, same {n_texts} chunk texts", "chunks_per_s", "{:.1f}", raw),
             row("process start → first vector", "first_vector_s", "{:.2f} s", raw),
             row("RSS after embedding them", "rss_mib", "{:.0f} MiB", raw)]
    if idx:
        lines += [row("first index, wall", "index_s", "{:.0f} s", idx, "≤ 240 s"),
                  row("chunks indexed", "chunks", "{:.0f}", idx),
                  row("first regex answer after `index` starts", "first_regex_s", "{:.1f} s", idx,
                      "≤ 15 s"),
                  row("first symbol answer after `index` starts", "first_symbol_s", "{:.1f} s",
                      idx, "≤ 15 s"),
                  row("100 % semantic coverage (end of the index run)", "index_s", "{:.0f} s", idx),
                  row("worker RSS, peak while indexing (with its children)", "peak_rss_mib",
                      "{:.0f} MiB", idx),
                  row("worker RSS, settled 10 s after (with its children)", "settled_rss_mib",
                      "{:.0f} MiB", idx, "≤ 300 MiB"),
                  row("child processes left 10 s after", "children_after", "{:.0f}", idx),
                  row("index on disk per chunk", "disk_per_chunk_kb", "{:.1f} KB", idx, "≤ 3 KB"),
                  row("cold worker → first semantic answer", "cold_worker_semantic_s", "{:.2f} s",
                      idx, "≤ 1.5 s"),
                  row("`--no-daemon` one-shot search", "oneshot_search_s", "{:.2f} s", idx,
                      "≤ 2.5 s"),
                  row("warm `ragexctl search` p50", "warm_search_p50_s", "{:.3f} s", idx,
                      "≤ 0.09 s")]
    lines += ["", f"Raw rows: median of {args.rounds} interleaved rounds, each embedder in a fresh "
              "process.  Index rows: medians where repeated (3 cold starts, 3 one-shots, 12 warm "
              "searches).  The "
              "first index is one run per embedder: regex, symbol and lexical searches answer "
              "from its first seconds, semantic ones from what is embedded so far, and 100 % "
              "semantic coverage is reached when the run ends.  The one-shot searches run after "
              "`stop --all` (a warm worker would own the index).", ""]
    # Raw-only runs (--index-embedders "") keep the last full run's section beside them.
    write_result(RESULTS / (f"large-{args.section}.md" if args.section
                            else "large.md" if idx else "large-raw.md"), lines)


if __name__ == "__main__":
    raise SystemExit(main())
