"""Embedding runtimes and graph variants, side by side on the same token batches (issue #10).

    python bench/bench_runtimes.py                          # the default variants
    python bench/bench_runtimes.py --variants ort-fp32,ov-bf16 --sample 600 --rounds 3

Every variant embeds the same chunk texts of a third-party tree (scikit-learn copied
from site-packages, as bench_large.py does), tokenised once, batched exactly as
``Embedder.encode`` batches them (sorted by length, 16 a batch), in one process,
rounds interleaved so a change of load hits every variant alike.  For each: chunks/s
(median of the rounds, and its ratio to onnxruntime's fp32 session, the default),
and the cosine of its vectors to that session's on all the texts (mean and worst).
A variant below cos 0.999 needs the quality eval (bench/eval_quality.py) before it
may be offered.

Variants (``--variants``):

* ``ort-fp32``: the default, onnxruntime, the shipped fp32 graph, one session of
  ``embed_threads()`` intra-op threads;
* ``ort-2x1``: two sessions of one thread each, batches alternating between two
  threads;
* ``ort-int8-nbits``: the shipped optional int8 graph (blockwise MatMulNBits);
* ``ort-int8-dyn``: ``quantize_dynamic`` per channel, MatMulConstBOnly, on the traced
  graph (needs the [export] extra: torch, onnx); ``ort-int8-dyn-rr`` adds reduce_range;
* ``ov-f32``, ``ov-bf16``: OpenVINO on the shipped fp32 graph, with that inference
  precision, the latency hint (one stream); ``ov-bf16-2s``: the throughput hint with
  two streams, batches submitted two at a time.

Writes bench/results/runtimes.md (``run_all.py`` puts it into BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_large import chunk_texts, copy_tree  # noqa: E402
from bench.common import RESULTS, load_average, machine_line, median, write_result  # noqa: E402

DEFAULT_VARIANTS = "ort-fp32,ort-2x1,ort-int8-nbits,ort-int8-dyn,ov-f32,ov-bf16,ov-bf16-2s"
Run = Callable[[Any, Any], Any]


def _batches(texts: list[str], tokenizer: Path) -> list[tuple[list[int], Any, Any]]:
    """Token batches as ``Embedder.encode`` forms them: sorted by length, 16 a batch."""
    import numpy as np
    from tokenizers import Tokenizer

    from ragexd.engine.embedding import ENCODE_BATCH, MAX_TOKENS

    tok = Tokenizer.from_file(str(tokenizer))
    tok.enable_truncation(max_length=MAX_TOKENS)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = []
    for i in range(0, len(order), ENCODE_BATCH):
        idx = order[i:i + ENCODE_BATCH]
        encs = tok.encode_batch([texts[j] for j in idx])
        out.append((idx, np.array([e.ids for e in encs], dtype=np.int64),
                    np.array([e.attention_mask for e in encs], dtype=np.int64)))
    return out


def _ort(graph: Path, threads: int) -> Run:
    """An onnxruntime session with the embedder's own options."""
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.enable_cpu_mem_arena = False
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(graph), sess_options=opts,
                                   providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}

    def run(ids: Any, mask: Any) -> Any:
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return session.run(None, {k: v for k, v in feed.items() if k in names})[0]
    return run


def _ov(graph: Path, precision: str, streams: int, threads: int) -> Run:
    """OpenVINO on the same graph; one infer request per stream, borrowed per call."""
    import numpy as np
    import openvino as ov

    core = ov.Core()
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": precision,
                              "INFERENCE_NUM_THREADS": threads, "ENABLE_CPU_PINNING": False,
                              "PERFORMANCE_HINT": "LATENCY" if streams == 1 else "THROUGHPUT"}
    if streams > 1:
        config["NUM_STREAMS"] = streams
    compiled = core.compile_model(core.read_model(str(graph)), "CPU", config)
    free = [compiled.create_infer_request() for _ in range(streams)]
    lock = threading.Lock()
    names = {n for port in compiled.inputs for n in port.get_names()}

    def run(ids: Any, mask: Any) -> Any:
        with lock:
            req = free.pop()
        try:
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            res = req.infer({k: v for k, v in feed.items() if k in names})
            return np.array(res[compiled.outputs[0]])
        finally:
            with lock:
                free.append(req)
    return run


def _dynamic_int8(work: Path, reduce_range: bool) -> Path:
    """``quantize_dynamic`` per channel of the traced (unfused) graph."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from ragexd.engine import onnx_export

    traced = work / "traced.onnx"
    if not traced.exists():
        onnx_export._export_fp32(onnx_export._model_source(), traced)
    out = work / f"dyn{'-rr' if reduce_range else ''}.onnx"
    quantize_dynamic(str(traced), str(out), weight_type=QuantType.QInt8, per_channel=True,
                     reduce_range=reduce_range, op_types_to_quantize=["MatMul"],
                     extra_options={"MatMulConstBOnly": True})
    return out


def make(name: str, work: Path) -> tuple[Run, int]:
    """The variant's run function and how many batches it takes at once."""
    from ragexd import modelfiles
    from ragexd.engine.embedding import embed_threads

    fp32 = modelfiles.locate("fp32", hashes=False).graph
    threads = embed_threads()
    if name == "ort-fp32":
        return _ort(fp32, threads), 1
    if name == "ort-2x1":
        free, lock = [_ort(fp32, 1), _ort(fp32, 1)], threading.Lock()

        def run(ids: Any, mask: Any) -> Any:
            with lock:   # two pool threads, each borrows one of the two sessions
                session = free.pop()
            try:
                return session(ids, mask)
            finally:
                with lock:
                    free.append(session)
        return run, 2
    if name == "ort-int8-nbits":
        return _ort(modelfiles.locate("int8", hashes=False).graph, threads), 1
    if name in ("ort-int8-dyn", "ort-int8-dyn-rr"):
        return _ort(_dynamic_int8(work, name.endswith("-rr")), threads), 1
    if name in ("ov-f32", "ov-bf16"):
        return _ov(fp32, name[3:], 1, threads), 1
    if name == "ov-bf16-2s":
        return _ov(fp32, "bf16", 2, threads), 2
    raise SystemExit(f"unknown variant {name!r}; see --help")


def embed_all(run: Run, batches: list, n: int, parallel: int) -> Any:
    """Vectors for all texts (pooled and normalised as the embedder does)."""
    import numpy as np

    out = np.zeros((n, 384), dtype=np.float32)

    def one(batch: tuple) -> None:
        idx, ids, mask = batch
        w = mask[:, :, None].astype(np.float32)
        pooled = (run(ids, mask) * w).sum(axis=1) / np.clip(w.sum(axis=1), 1e-9, None)
        out[idx] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    if parallel == 1:
        for b in batches:
            one(b)
    else:
        with ThreadPoolExecutor(parallel) as pool:
            list(pool.map(one, batches))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--package", default="sklearn")
    ap.add_argument("--max-files", type=int, default=80)
    ap.add_argument("--sample", type=int, default=600, help="chunk texts for the cosines")
    ap.add_argument("--timed", type=int, default=200,
                    help="of those, how many (spread over the lengths) each timed round embeds")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--variants", default=DEFAULT_VARIANTS)
    args = ap.parse_args()
    from ragexd import modelfiles

    with tempfile.TemporaryDirectory(prefix="rx-runtimes-") as tmp:
        work = Path(tmp)
        tree, n_files, n_lines = copy_tree(args.package, work, args.max_files)
        texts = chunk_texts(tree, args.sample)
        timed = texts[::max(1, len(texts) // args.timed)][:args.timed]
        tokenizer = modelfiles.locate("fp32", hashes=False).tokenizer
        all_batches, timed_batches = _batches(texts, tokenizer), _batches(timed, tokenizer)
        names = args.variants.split(",")
        runners = {n: make(n, work) for n in names}
        load0 = load_average()
        ref = None
        cos: dict[str, tuple[float, float]] = {}
        for n in names:
            vecs = embed_all(runners[n][0], all_batches, len(texts), runners[n][1])
            ref = vecs if ref is None else ref
            c = (vecs * ref).sum(axis=1)
            cos[n] = (float(c.mean()), float(c.min()))
        # Interleaved pair by pair of batches, not variant by variant: on a shared
        # machine the load changes within seconds, and a whole pass per variant let it
        # swing one variant's figure by 2x.  A pair is the unit so that the two-way
        # variants get their two batches at once, as they would in the embedder.
        pairs = [timed_batches[i:i + 2] for i in range(0, len(timed_batches), 2)]
        speed: dict[str, list[float]] = {n: [] for n in names}
        for _ in range(args.rounds):
            spent = dict.fromkeys(names, 0.0)
            for pair in pairs:
                for n in names:
                    t = time.perf_counter()
                    embed_all(runners[n][0], pair, len(timed), runners[n][1])
                    spent[n] += time.perf_counter() - t
            for n in names:
                speed[n].append(len(timed) / spent[n])
            print(" ".join(f"{n} {speed[n][-1]:.1f}" for n in names), "chunks/s", flush=True)
        load1 = load_average()
    write(args, n_files, n_lines, len(texts), len(timed), names, speed, cos, (load0, load1))
    return 0


def write(args: argparse.Namespace, n_files: int, n_lines: int, n_texts: int, n_timed: int,
          names: list[str], speed: dict[str, list[float]], cos: dict[str, tuple[float, float]],
          load: tuple[float, float]) -> None:
    base = median(speed[names[0]])
    lines = ["## Embedding runtimes side by side (bench/bench_runtimes.py)", "",
             f"{machine_line(*load)} (2 cores shared: absolute chunks/s are inflated by the "
             "load, read the ratios).  "
             f"Texts: {n_texts} chunk texts of `{args.package}` ({n_files} files, {n_lines} "
             f"lines) for the cosines, {n_timed} of them timed; one process, every variant "
             f"embeds each pair of batches in turn, {args.rounds} rounds, median.  Command: "
             "`python bench/bench_runtimes.py --variants "
             f"{','.join(names)} --sample {args.sample} --rounds {args.rounds}`.", "",
             f"| variant | chunks/s | vs {names[0]} | cos to {names[0]}: mean | worst | rounds |",
             "|---|---|---|---|---|---|"]
    for n in names:
        m = median(speed[n])
        lines.append(f"| {n} | {m:.1f} | {m / base:.2f}× | {cos[n][0]:.5f} | {cos[n][1]:.5f} "
                     f"| {', '.join(f'{x:.1f}' for x in speed[n])} |")
    lines.append("")
    write_result(RESULTS / "runtimes.md", lines)


if __name__ == "__main__":
    raise SystemExit(main())
