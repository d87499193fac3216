"""``[embedder] runtime = "openvino"``: the same fp32 graph on OpenVINO gives the same
vectors as onnxruntime (and the sentence-transformers reference), so an index built by
either is reused; asked for but not installed, it is a clear error with the fix.

Real model, real OpenVINO (skipped where the [openvino] extra is not installed: the
error paths below run everywhere), real worker processes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ragexd import modelfiles
from ragexd.engine import embedding
from ragexd.protocol import Op, Request
from tests.engine.test_onnx_embedder import REPO, _env, _oneshot, _real_code_texts, _tree


def _openvino_path() -> str:
    """Where openvino is importable from, for a worker's PYTHONPATH (skips without it)."""
    ov = pytest.importorskip("openvino")
    return str(Path(ov.__file__).resolve().parents[1])


def _ov_env(base: Path, **extra: str) -> dict[str, str]:
    env = _env(base, RAGEX_EMBEDDER_RUNTIME="openvino", **extra)
    env["PYTHONPATH"] = os.pathsep.join((str(REPO), _openvino_path()))
    return env


def test_openvino_vectors_match_onnxruntime_fp32_and_the_reference_on_real_code():
    _openvino_path()
    texts = _real_code_texts()
    files = modelfiles.locate("fp32")
    ort = embedding._OnnxBackend(files).encode(texts)
    ov_backend = embedding._OpenVinoBackend(files)
    got = ov_backend.encode(texts)
    assert got.shape == ort.shape == (len(texts), embedding.DIM)
    cos = (ort * got).sum(axis=1)
    # Measured on 600 scikit-learn chunk texts: bf16 min 0.99998, f32 1.00000.  Closer
    # than the torch reference is to onnxruntime: hence the one embedder id.
    assert cos.min() >= 0.9999, f"worst cos {cos.min():.6f} ({ov_backend.precision}) at " \
                                f"{texts[int(cos.argmin())][:80]!r}"
    query = ov_backend.encode(["parse a json document"], "query")[0]
    assert float(query @ embedding._OnnxBackend(files).encode(["parse a json document"])[0]) \
        >= 0.9999
    if importlib.util.find_spec("torch") and importlib.util.find_spec("sentence_transformers"):
        ref = embedding._TorchBackend().encode(texts)
        assert (ref * got).sum(axis=1).min() >= 0.999


def test_an_index_built_on_onnxruntime_is_reused_by_openvino_without_re_embedding(tmp_path):
    tree = _tree(tmp_path)
    index = tmp_path / "index"
    lines, _ = _oneshot(tree, index, _env(tmp_path))   # onnxruntime builds the index
    assert lines[-1]["ok"], lines[-1]
    req = Request(Op.INDEX, {}, project=str(tree))
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "ragexd.worker", "oneshot",
                           "--root", str(tree), "--index-dir", str(index)],
                          input=json.dumps(req.to_wire()), capture_output=True, text=True,
                          env=_ov_env(tmp_path), timeout=300)
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert out and out[-1]["ok"], proc.stderr[-2000:]
    assert not [m for m in out if m.get("phase") == "rebuilding"]   # same vectors: reused
    summary = out[-1]["result"]["summary"]
    assert summary["files_unchanged"] == 2 and summary["chunks_embedded"] == 0, summary
    # ...and a query embedded by OpenVINO finds what onnxruntime's vectors stored.
    lines, stderr = _oneshot(tree, index, _ov_env(tmp_path), "-X", "importtime")
    assert lines[-1]["ok"] and lines[-1]["result"]["hits"][0]["path"] == "pkg/upload.py"
    imported = {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines()
                if line.startswith("import time:") and "|" in line}
    assert "openvino" in imported   # the runtime asked for is the one that ran
    # the graph compiled for this CPU is cached in the data directory (faster next start)
    assert list((tmp_path / "data" / "models" / "openvino-cache").glob("*.blob"))


def _without_openvino(base: Path) -> str:
    """A PYTHONPATH entry whose ``openvino`` cannot be imported, as on a host
    without the extra (whether or not this one has it)."""
    blocker = base / "no-openvino" / "openvino"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text(
        "raise ImportError(\"No module named 'openvino' (hidden by the test)\")\n")
    return str(blocker.parent)


def test_openvino_asked_for_but_not_installed_is_a_clear_error_naming_the_fix(tmp_path):
    tree = _tree(tmp_path)
    env = _env(tmp_path, RAGEX_EMBEDDER_RUNTIME="openvino")
    env["PYTHONPATH"] = os.pathsep.join((_without_openvino(tmp_path), str(REPO)))
    lines, _ = _oneshot(tree, tmp_path / "index", env)
    reply = lines[-1]
    assert not reply["ok"], reply
    assert reply["error"]["code"] == "model_unavailable"
    message = reply["error"]["message"]
    assert "openvino" in message and "pip install 'ragex[openvino]'" in message, message
    assert 'runtime = "onnxruntime"' in message and "ragexctl doctor" in message


def test_doctor_names_openvino_and_its_fix_when_it_cannot_load(tmp_path):
    env = dict(os.environ, RAGEX_DATA_DIR=str(tmp_path / "data"),
               RAGEX_STATE_DIR=str(tmp_path / "state"), RAGEX_CONFIG_DIR=str(tmp_path / "config"),
               RAGEX_RUNTIME_DIR=str(tmp_path / "run"), RAGEX_RUNTIME="process",
               RAGEX_EMBEDDER_RUNTIME="openvino",
               PYTHONPATH=os.pathsep.join((_without_openvino(tmp_path), str(REPO))))
    proc = subprocess.run([sys.executable, "-m", "ragexctl", "doctor", "--json"], env=env,
                          capture_output=True, text=True, timeout=120)
    checks = {c["name"]: c for c in json.loads(proc.stdout)}
    load = checks["model load"]
    assert not load["ok"] and load["detail"].startswith("openvino cannot run it"), load
    assert load["fix"] == modelfiles.OPENVINO_FIX
    assert proc.returncode == 2


def test_openvino_refuses_the_int8_graph_rather_than_running_another_recipe():
    """The int8 graph is onnxruntime's MatMulNBits: asked for on OpenVINO, it is an
    error with the fix, never a quiet switch to fp32 under the int8 embedder id."""
    with pytest.raises(modelfiles.ModelFilesError) as err:
        embedding._OpenVinoBackend(modelfiles.locate("int8", hashes=False))
    assert "fp32 graph only" in err.value.problem and "RAGEX_EMBEDDER_PRECISION" in err.value.fix


def test_an_unknown_embedder_runtime_is_a_sentence_naming_the_choices(monkeypatch):
    monkeypatch.setenv("RAGEX_EMBEDDER_RUNTIME", "tensorrt")
    with pytest.raises(embedding.EngineError) as err:
        embedding.runtime_name()
    assert err.value.code == "model_unavailable"
    assert "RAGEX_EMBEDDER_RUNTIME" in err.value.message
    assert "onnxruntime, openvino" in err.value.message
