"""The ONNX Runtime embedder: same vectors as the sentence-transformers reference,
no torch in the worker, and broken model files are a clear error with the fix.

Real model (the exported graph the install put in place), real onnxruntime, real
worker processes; the reference is the real sentence-transformers on torch.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from ragexd import modelfiles
from ragexd.engine import embedding
from ragexd.engine.chunking import chunk_file
from ragexd.engine.embedding import context_text
from ragexd.engine.languages import language_for
from ragexd.protocol import Op, Request

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "sentence_transformers", "transformers")


def _real_code_texts(limit: int = 120) -> list[str]:
    """Embedding texts of real chunks: the stdlib json package and this repo's engine."""
    texts: list[str] = []
    roots = [Path(sysconfig.get_paths()["stdlib"]) / "json", REPO / "ragexd" / "engine"]
    for root in roots:
        for p in sorted(root.glob("*.py")):
            rel = f"{root.name}/{p.name}"
            texts += [context_text(c) for c in chunk_file(rel, p.read_text(encoding="utf-8"),
                                                          language_for(rel))]
    # Short and long ones both: truncation at 256 word pieces must match too.
    texts.sort(key=len)
    step = max(1, len(texts) // limit)
    return texts[::step][:limit] + [texts[-1] * 3]


def _onnx(precision: str) -> "embedding._OnnxBackend":
    return embedding._OnnxBackend(modelfiles.locate(precision))


def test_onnx_fp32_vectors_match_sentence_transformers_on_real_code():
    if importlib.util.find_spec("torch") is None or \
            importlib.util.find_spec("sentence_transformers") is None:
        pytest.skip("the reference needs torch + sentence-transformers (the [export] extra)")
    texts = _real_code_texts()
    ref = embedding._TorchBackend().encode(texts)
    got = _onnx("fp32").encode(texts)
    assert got.shape == ref.shape == (len(texts), embedding.DIM)
    cos = (ref * got).sum(axis=1)
    assert cos.min() >= 0.999, f"worst cos {cos.min():.5f} at {texts[int(cos.argmin())][:80]!r}"
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_int8_vectors_are_close_but_never_share_the_fp32_embedder_id(monkeypatch):
    texts = _real_code_texts(40)
    fp32, int8 = _onnx("fp32").encode(texts), _onnx("int8").encode(texts)
    cos = (fp32 * int8).sum(axis=1)
    # Blockwise int8 (MatMulNBits): measured min 0.9995 on real chunk texts; the
    # per-tensor MatMulInteger recipe it replaced reached only 0.989 (and lost MRR).
    assert cos.min() >= 0.998, f"worst cos {cos.min():.5f}"   # the same model, quantised...
    assert cos.min() < 0.99999                                # ...but not the same vectors
    monkeypatch.delenv("RAGEX_EMBEDDER_PRECISION", raising=False)   # the default: fp32
    fp32_id = embedding.embedder_id()
    monkeypatch.setenv("RAGEX_EMBEDDER_PRECISION", "int8")
    int8_id = embedding.embedder_id()
    assert int8_id != fp32_id
    made_by = modelfiles.locate("int8", hashes=False).manifest["exporter_version"]
    assert f"-int8-e{made_by}/" in int8_id   # another quantisation recipe, another id
    monkeypatch.setenv("RAGEX_EMBEDDER", "torch")
    monkeypatch.setenv("RAGEX_EMBEDDER_PRECISION", "fp32")
    assert embedding.embedder_id() == fp32_id  # the torch reference: same vectors, same id


def test_the_shipped_graphs_are_prefused_fp32_and_blockwise_int8():
    """The worker loads the fusions done at export time (it does not redo them at each
    start) and the int8 graph is the blockwise recipe, not per-tensor MatMulInteger."""
    onnx = pytest.importorskip("onnx")   # the [export] extra
    ops = {}
    for precision in ("fp32", "int8"):
        files = modelfiles.locate(precision, hashes=False)
        if files.manifest.get("exporter_version") != modelfiles.EXPORTER_VERSION:
            pytest.skip(f"{files.directory} is an older export: run `make install`")
        graph = onnx.load(str(files.graph), load_external_data=False).graph
        ops[precision] = [n.op_type for n in graph.node]
    assert ops["fp32"].count("Attention") == 6 and "SkipLayerNormalization" in ops["fp32"]
    assert ops["int8"].count("MatMulNBits") == 36 and "MatMulInteger" not in ops["int8"]


def test_a_query_embeds_while_an_index_batch_holds_the_encoder_lock():
    """Queries do not queue behind indexing: they never take the batch lock."""
    emb = embedding.Embedder()
    emb.load()
    with embedding._encode_lock:   # an index batch in progress
        vec = emb.encode_query("parse a json document")
    assert vec.shape == (embedding.DIM,)


def _tree(base: Path) -> Path:
    tree = base / "proj"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "upload.py").write_text(
        "def retry_upload(client, path, attempts=5):\n"
        "    \"\"\"Upload a file, retrying with exponential backoff.\"\"\"\n"
        "    for i in range(attempts):\n"
        "        if client.put(path):\n"
        "            return True\n"
        "    return False\n")
    (tree / "pkg" / "cart.py").write_text(
        "class Cart:\n    def add_item(self, item):\n        self.items.append(item)\n")
    return tree


def _oneshot(tree: Path, index: Path, env: dict[str, str], *extra: str,
             query: str = "retry uploads with backoff") -> tuple[list[dict], str]:
    req = Request(Op.SEARCH, {"query": query, "mode": "semantic", "limit": 3,
                              "auto_index": True},
                  project=str(tree))
    proc = subprocess.run([sys.executable, *extra, "-m", "ragexd.worker", "oneshot",
                           "--root", str(tree), "--index-dir", str(index)],
                          input=json.dumps(req.to_wire()), capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [json.loads(line) for line in proc.stdout.splitlines()], proc.stderr


def _env(base: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGEX_")}
    env.update(PYTHONPATH=str(REPO), HOME=str(base), RAGEX_DATA_DIR=str(base / "data"),
               XDG_DATA_HOME=str(base / "xdg"), **extra)
    return env


def test_a_one_shot_worker_indexes_and_answers_semantically_without_importing_torch(tmp_path):
    tree = _tree(tmp_path)
    # -X importtime: the interpreter itself lists every module the process imported.
    lines, stderr = _oneshot(tree, tmp_path / "index", _env(tmp_path), "-X", "importtime")
    reply = lines[-1]
    assert reply["ok"], reply
    assert reply["result"]["hits"][0]["path"] == "pkg/upload.py"
    imported = {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines()
                if line.startswith("import time:") and "|" in line}
    assert "onnxruntime" in imported and "tokenizers" in imported  # the semantic path ran
    heavy = sorted(m for m in imported if m.split(".")[0] in HEAVY)
    assert heavy == [], f"the worker imported {heavy[:5]}"


def _copy_model(dst: Path) -> Path:
    src = modelfiles.locate("fp32", hashes=False).directory
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("damage", ["truncated", "missing", "swapped", "no manifest"])
def test_broken_model_files_are_a_clear_error_naming_the_fix(tmp_path, damage):
    model = _copy_model(tmp_path / "model")
    graph = model / modelfiles.GRAPH_FILES[modelfiles.DEFAULT_PRECISION]   # the one a worker runs
    if damage == "truncated":
        with graph.open("r+b") as f:
            f.truncate(graph.stat().st_size // 2)
    elif damage == "missing":
        graph.unlink()
    elif damage == "swapped":   # same size, other bytes: only the hash can tell
        data = bytearray(graph.read_bytes())
        data[len(data) // 2] ^= 0xFF
        graph.write_bytes(bytes(data))
    else:
        (model / modelfiles.MANIFEST).unlink()
    with pytest.raises(modelfiles.ModelFilesError) as err:
        modelfiles.check_dir(model, modelfiles.DEFAULT_PRECISION, hashes=True)
    assert "fix:" in str(err.value) and "onnx_export" in err.value.fix
    if damage == "swapped":
        return  # the worker checks sizes only (hashing costs ~0.2 s a start); doctor hashes
    tree = _tree(tmp_path)
    index = tmp_path / "index"
    env = _env(tmp_path, RAGEX_MODEL_DIR=str(model))
    lines, _ = _oneshot(tree, index, env)
    reply = lines[-1]
    assert not reply["ok"]
    assert reply["error"]["code"] == "model_unavailable"
    assert "ragexctl doctor" in reply["error"]["message"]


def _index_run(tree: Path, index: Path, env: dict[str, str]) -> list[dict]:
    """The lines a one-shot worker answers an index request with (a search on an
    indexed project does not re-index)."""
    req = Request(Op.INDEX, {}, project=str(tree))
    proc = subprocess.run([sys.executable, "-m", "ragexd.worker", "oneshot", "--root",
                           str(tree), "--index-dir", str(index)],
                          input=json.dumps(req.to_wire()), capture_output=True, text=True,
                          env=env, timeout=300)
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_an_index_built_with_another_embedder_is_rebuilt_with_a_message_not_mixed(tmp_path):
    tree = _tree(tmp_path)
    index = tmp_path / "index"
    lines, _ = _oneshot(tree, index, _env(tmp_path))
    assert lines[-1]["ok"]
    lines, _ = _oneshot(tree, index, _env(tmp_path, RAGEX_EMBEDDER_PRECISION="int8"))
    assert lines[-1]["ok"], lines[-1]
    out = _index_run(tree, index, _env(tmp_path, RAGEX_EMBEDDER_PRECISION="int8"))
    rebuilding = [m for m in out if m.get("phase") == "rebuilding"]
    assert rebuilding and "never mixed" in rebuilding[0]["message"]
    assert out[-1]["ok"] and out[-1]["result"]["summary"]["files_indexed"] == 2


def test_an_index_of_the_recipe_before_is_re_embedded_once_saying_the_recipe_changed(tmp_path):
    """Upgrading ragex past a recipe change (``context+path``, the recipe to the fifth
    round, -> the default) re-embeds each index once; the message names the recipe,
    not a model change."""
    tree = _tree(tmp_path)
    index = tmp_path / "index"
    lines, _ = _oneshot(tree, index, _env(tmp_path, RAGEX_CONTEXT_VARIANT="context+path"))
    assert lines[-1]["ok"], lines[-1]
    out = _index_run(tree, index, _env(tmp_path))
    rebuilding = [m["message"] for m in out if m.get("phase") == "rebuilding"]
    assert rebuilding == [f"the index was embedded with another context recipe, "
                          f"context+path/{embedding.CONTEXT_VERSION} (this ragex's is "
                          f"{embedding.DEFAULT_VARIANT}/{embedding.CONTEXT_VERSION}, same model "
                          f"{embedding.MODEL_NAME}): rebuilding it once (vectors are never "
                          f"mixed)"]
    summary = out[-1]["result"]["summary"]
    assert out[-1]["ok"] and summary["files_indexed"] == 2 and summary["chunks_embedded"] > 0
    # said again in the summary: on a terminal the progress line is drawn over
    assert summary["notes"][0] == rebuilding[0].replace(
        ": rebuilding it once (vectors", ", so it was rebuilt (vectors")
    # once: the next run finds the index made with this recipe and embeds nothing
    again = _index_run(tree, index, _env(tmp_path))
    assert not [m for m in again if m.get("phase") == "rebuilding"]
    assert not again[-1]["result"]["summary"]["notes"]
    assert again[-1]["ok"] and again[-1]["result"]["summary"]["chunks_embedded"] == 0
