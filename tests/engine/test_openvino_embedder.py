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
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import numpy as np

from ragexd import modelfiles
from ragexd.engine import embedding
from ragexd.protocol import Op, Request
from tests.engine.test_onnx_embedder import REPO, _env, _oneshot, _real_code_texts, _tree

TEXTS = ["parse a json document", "function retry upload of client\nfor i in range(attempts):",
         "class Cart\nmembers: add_item, remove_item"]
#: A worker's model start, as a child process: its vectors of TEXTS as JSON, its log on stderr.
CHILD = """
import json, logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
from ragexd import modelfiles
from ragexd.engine import embedding
backend = embedding._OpenVinoBackend(modelfiles.locate("fp32", hashes=False))
print(json.dumps(backend.encode(json.loads(sys.argv[1])).tolist()))
"""


def _openvino_path() -> str:
    """Where openvino is importable from, for a worker's PYTHONPATH (skips without it)."""
    ov = pytest.importorskip("openvino")
    return str(Path(ov.__file__).resolve().parents[1])


def _ov_env(base: Path, **extra: str) -> dict[str, str]:
    env = _env(base, RAGEX_EMBEDDER_RUNTIME="openvino", **extra)
    env["PYTHONPATH"] = os.pathsep.join((str(REPO), _openvino_path()))
    return env


def test_openvino_vectors_match_onnxruntime_fp32_and_the_reference_on_real_code(monkeypatch,
                                                                                tmp_path):
    _openvino_path()
    monkeypatch.setenv("RAGEX_DATA_DIR", str(tmp_path / "data"))   # not the user's 90 MB cache
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
    assert list((tmp_path / "data" / "models" / "openvino-cache").glob("*/*.blob"))


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


def _reference() -> "np.ndarray":
    return embedding._OnnxBackend(modelfiles.locate("fp32", hashes=False)).encode(TEXTS)


def _start(base: Path) -> subprocess.Popen:
    env = _ov_env(base, RAGEX_EMBED_THREADS="1")
    return subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(TEXTS)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _vectors(proc: subprocess.Popen) -> tuple["np.ndarray", str]:
    import numpy as np

    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, f"exit {proc.returncode}: {err[-2000:]}"
    return np.asarray(json.loads(out), dtype=np.float32), err


def _cache(base: Path) -> Path:
    return base / "data" / "models" / "openvino-cache"


def test_workers_starting_at_once_on_an_empty_cache_all_give_the_reference_vectors(tmp_path):
    """Without the cache lock, the same starts (5 workers 0.3-0.8 s apart on an empty
    cache) died of SIGBUS in 2 of 15 (reproduced): a worker whose import of a
    half-written cache file failed rewrote the file in place while another one that
    had read it whole was still paging it in."""
    _openvino_path()
    ref = _reference()
    for attempt in ("first", "second"):
        base = tmp_path / attempt
        procs = []
        for delay in (0, 0.3, 0.5, 0.7, 0.8):
            time.sleep(delay)
            procs.append(_start(base))
        for proc in procs:
            got, _ = _vectors(proc)
            assert (got * ref).sum(axis=1).min() >= 0.9999
        [subdir] = [p for p in _cache(base).iterdir() if p.is_dir()]
        assert len(list(subdir.glob("*.blob"))) == 1


def _damage(path: Path) -> None:
    """Overwrite 400 kB in the middle of ``path`` with noise, as a bad disk or a
    half-finished rewrite would."""
    with path.open("r+b") as f:
        f.seek(path.stat().st_size // 2)
        f.write(os.urandom(400_000))


def test_a_damaged_cache_file_is_removed_and_the_next_worker_rebuilds_it_with_right_vectors(
        tmp_path):
    _openvino_path()
    ref = _reference()
    _vectors(_start(tmp_path))                       # compiles and caches the graph
    [blob] = _cache(tmp_path).glob("*/*.blob")
    _damage(blob)
    got, log = _vectors(_start(tmp_path))
    assert "is damaged" in log and str(blob) in log, log
    assert (got * ref).sum(axis=1).min() >= 0.9999
    [rebuilt] = _cache(tmp_path).glob("*/*.blob")    # written afresh, and its sum recorded
    sums = json.loads((rebuilt.parent / embedding._SUMS_FILE).read_text())
    assert sums == {rebuilt.name: embedding._file_crc32(rebuilt)}
    got, log = _vectors(_start(tmp_path))           # ...and used as is by the next start
    assert "damaged" not in log and (got * ref).sum(axis=1).min() >= 0.9999


def test_a_cached_model_that_embeds_the_probe_unlike_onnxruntime_is_dropped_not_served(
        tmp_path):
    """A damaged file not yet verified (or damage a sum cannot see) is caught by the
    probe: here the cached model's probe vector is made to disagree by recording
    onnxruntime's reference negated."""
    _openvino_path()
    ref = _reference()
    _vectors(_start(tmp_path))
    [subdir] = [p for p in _cache(tmp_path).iterdir() if p.is_dir()]
    probe = subdir / embedding._PROBE_FILE
    data = json.loads(probe.read_text())
    probe.write_text(json.dumps({**data, "vector": [-x for x in data["vector"]]}))
    got, log = _vectors(_start(tmp_path))
    assert "gives wrong vectors" in log and "compiling the graph without it" in log, log
    assert (got * ref).sum(axis=1).min() >= 0.9999
    assert not subdir.exists()                       # the next start compiles and checks afresh


def test_caches_of_other_openvino_versions_are_removed_when_compiling(tmp_path):
    _openvino_path()
    old = _cache(tmp_path) / "2025.0.0-0123456789ab"
    old.mkdir(parents=True)
    (old / "1.blob").write_bytes(b"x" * 1000)
    (_cache(tmp_path) / "2.blob").write_bytes(b"x" * 1000)   # the layout before subdirectories
    _vectors(_start(tmp_path))
    left = sorted(p.name for p in _cache(tmp_path).iterdir())
    import openvino

    assert left == [".lock", embedding._openvino_cache_name(
        openvino.__version__, modelfiles.locate("fp32", hashes=False))], left


def test_a_start_that_cannot_get_the_cache_lock_compiles_without_the_cache_instead_of_hanging(
        monkeypatch, tmp_path, caplog):
    import fcntl

    _openvino_path()
    monkeypatch.setenv("RAGEX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(embedding, "_CACHE_LOCK_WAIT", 0.5)
    lock = _cache(tmp_path) / ".lock"
    lock.parent.mkdir(parents=True)
    with lock.open("w") as held:          # a stuck process holding the lock
        fcntl.flock(held, fcntl.LOCK_EX)
        caplog.set_level("INFO", logger=embedding.__name__)
        backend = embedding._OpenVinoBackend(modelfiles.locate("fp32", hashes=False))
    assert (backend.encode(TEXTS) * _reference()).sum(axis=1).min() >= 0.9999
    assert "held by another process" in caplog.text
    assert not list(_cache(tmp_path).glob("*/*.blob"))   # it did not touch the cache


class _NaNBackend:
    """A backend whose runtime went wrong for some texts: NaN for those about uploads."""

    def encode(self, texts, kind="index"):
        import numpy as np

        out = np.full((len(texts), embedding.DIM), 0.05, dtype=np.float32)
        out[["upload" in text for text in texts]] = np.nan
        return out


def test_a_nan_from_the_embedding_runtime_is_an_error_and_nothing_is_stored(monkeypatch,
                                                                            tmp_path):
    from ragexd.engine import Engine

    monkeypatch.setenv("RAGEX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(embedding, "_shared_backend", _NaNBackend())
    tree = _tree(tmp_path)
    engine = Engine(tree, tmp_path / "index")
    try:
        with pytest.raises(embedding.EngineError) as err:
            engine.index()
        assert err.value.code == "model_unavailable"
        assert "non-finite" in err.value.message and "nothing was stored" in err.value.message
        assert "openvino-cache" in err.value.message      # the fix names what to remove
        assert engine._vectors is None or not engine._vectors.all_ids()
        with pytest.raises(embedding.EngineError) as err:
            embedding.Embedder().encode_query("retry the upload")
        assert err.value.code == "model_unavailable"
    finally:
        engine.close()


_BROKEN = {
    "import": "raise OSError('libopenvino.so.2610: cannot open shared object file')\n",
    "core": "class Core:\n    def __init__(self):\n        raise RuntimeError('Check "
            "failed: plugins.xml')\n__version__ = '0'\n",
    "get_property": "class Core:\n    def get_property(self, *a):\n        raise "
                    "RuntimeError('CPU plugin: unsupported')\n__version__ = '0'\n",
}


@pytest.mark.parametrize("where", sorted(_BROKEN))
def test_a_broken_openvino_install_is_model_unavailable_with_the_fix_not_an_internal_error(
        tmp_path, where):
    fake = tmp_path / "broken-openvino" / "openvino"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(_BROKEN[where])
    env = _env(tmp_path, RAGEX_EMBEDDER_RUNTIME="openvino")
    env["PYTHONPATH"] = os.pathsep.join((str(fake.parent), str(REPO)))
    lines, _ = _oneshot(_tree(tmp_path), tmp_path / "index", env)
    reply = lines[-1]
    assert not reply["ok"] and reply["error"]["code"] == "model_unavailable", reply
    message = reply["error"]["message"]
    assert "openvino" in message and modelfiles.OPENVINO_FIX in message, message
