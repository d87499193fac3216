"""`ragexctl doctor`, run as a real subprocess against real directories and sockets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def _doctor(env_extra: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = Path(tempfile.mkdtemp(prefix="rx-doc-"))
    env = dict(os.environ, RAGEX_DATA_DIR=str(base / "data"), RAGEX_STATE_DIR=str(base / "state"),
               RAGEX_CONFIG_DIR=str(base / "config"), RAGEX_RUNTIME_DIR=str(base / "run"))
    env.update(env_extra)
    return subprocess.run([sys.executable, "-m", "ragexctl", "doctor", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_an_open_runtime_dir_is_a_problem_with_its_fix() -> None:
    open_dir = tempfile.mkdtemp(prefix="rx-open-")
    os.chmod(open_dir, 0o777)
    proc = _doctor({"RAGEX_RUNTIME_DIR": open_dir, "RAGEX_RUNTIME": "process"})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"chmod 700 {open_dir}" in proc.stdout
    assert "XX  runtime dir" in proc.stdout


def test_without_docker_the_process_runtime_is_fine_and_docker_is_optional() -> None:
    proc = _doctor({"RAGEX_RUNTIME": "auto", "DOCKER_HOST": "unix:///nonexistent/docker.sock"},
                   "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = {c["name"]: c for c in json.loads(proc.stdout)}
    assert checks["runtime dir"]["ok"] and checks["ripgrep"]["ok"]
    docker = checks["docker engine"]
    assert not docker["ok"] and docker["optional"], docker


def test_docker_required_but_absent_fails_with_the_fix() -> None:
    proc = _doctor({"RAGEX_RUNTIME": "docker", "DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert proc.returncode == 2, proc.stdout
    assert "docker engine" in proc.stdout and "fix:" in proc.stdout


def _model_copy() -> Path:
    """A private copy of the exported model, to damage."""
    import shutil

    from ragexd import modelfiles

    dst = Path(tempfile.mkdtemp(prefix="rx-model-")) / "model"
    shutil.copytree(modelfiles.locate("fp32", hashes=False).directory, dst)
    return dst


def test_a_sound_model_is_hashed_and_loaded() -> None:
    model = _model_copy()
    proc = _doctor({"RAGEX_MODEL_DIR": str(model), "RAGEX_RUNTIME": "process"}, "--json")
    checks = {c["name"]: c for c in json.loads(proc.stdout)}
    assert checks["model"]["ok"] and "sha256 matches" in checks["model"]["detail"], checks["model"]
    assert checks["model load"]["ok"], checks["model load"]


def test_a_model_from_an_older_exporter_is_flagged_with_the_re_export_command() -> None:
    from ragexd import modelfiles

    model = _model_copy()
    manifest = json.loads((model / "manifest.json").read_text())
    fresh = _doctor({"RAGEX_MODEL_DIR": str(model), "RAGEX_RUNTIME": "process"}, "--json")
    assert "model version" not in {c["name"] for c in json.loads(fresh.stdout)}
    manifest["exporter_version"] = "0"
    (model / "manifest.json").write_text(json.dumps(manifest))
    proc = _doctor({"RAGEX_MODEL_DIR": str(model), "RAGEX_RUNTIME": "process"}, "--json")
    checks = {c["name"]: c for c in json.loads(proc.stdout)}
    assert checks["model"]["ok"] and checks["model load"]["ok"]   # still usable...
    stale = checks["model version"]                              # ...but flagged
    assert not stale["ok"] and stale["optional"]
    assert f"version {modelfiles.EXPORTER_VERSION}" in stale["detail"]
    assert stale["fix"] == f"python -m ragexd.engine.onnx_export --force --out {model}"


def test_a_corrupted_model_file_is_caught_by_its_hash_with_the_fix() -> None:
    from ragexd import modelfiles

    model = _model_copy()
    graph = model / modelfiles.GRAPH_FILES[modelfiles.DEFAULT_PRECISION]   # the graph in use
    data = bytearray(graph.read_bytes())
    data[len(data) // 3] ^= 0xFF       # same size: only the sha256 can tell
    graph.write_bytes(bytes(data))
    proc = _doctor({"RAGEX_MODEL_DIR": str(model), "RAGEX_RUNTIME": "process"})
    assert proc.returncode == 2, proc.stdout
    assert "XX  model" in proc.stdout and "sha256" in proc.stdout
    assert ("fix: unset RAGEX_MODEL_DIR, or export into it: "
            f"python -m ragexd.engine.onnx_export --out {model}") in proc.stdout


def test_a_missing_model_is_optional_when_workers_run_only_in_docker() -> None:
    missing = tempfile.mkdtemp(prefix="rx-nomodel-") + "/none"
    proc = _doctor({"RAGEX_MODEL_DIR": missing, "RAGEX_RUNTIME": "process"}, "--json")
    (model,) = [c for c in json.loads(proc.stdout) if c["name"] == "model"]
    assert not model["ok"] and not model["optional"] and proc.returncode == 2
    assert f"no model directory at {missing}" in model["detail"]
    proc = _doctor({"RAGEX_MODEL_DIR": missing, "RAGEX_RUNTIME": "docker",
                    "DOCKER_HOST": "unix:///nonexistent/docker.sock"}, "--json")
    (model,) = [c for c in json.loads(proc.stdout) if c["name"] == "model"]
    assert not model["ok"] and model["optional"]


def test_every_grammar_loads_here_and_a_missing_one_is_named_with_its_fix(
        tmp_path: Path) -> None:
    from ragexd.engine.languages import SPECS

    proc = _doctor({"RAGEX_RUNTIME": "process"}, "--json")
    grammars = {c["name"]: c for c in json.loads(proc.stdout)}["grammars"]
    assert grammars["ok"] and f"all {len(SPECS)} " in grammars["detail"], grammars
    # a Zig grammar wheel that fails to import, ahead of the real one on the path
    (tmp_path / "tree_sitter_zig.py").write_text("raise ImportError('broken for the test')\n")
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    proc = _doctor({"RAGEX_RUNTIME": "process", "PYTHONPATH": path})
    assert proc.returncode == 0, proc.stdout + proc.stderr   # optional: zig becomes windows
    line = next(ln for ln in proc.stdout.splitlines() if "grammars" in ln)
    assert line.startswith("--") and f"{len(SPECS) - 1} of {len(SPECS)} load" in line, line
    assert "zig: ImportError: broken for the test" in line
    assert "tree-sitter grammar wheels" in proc.stdout


def _embedder_line(env_extra: dict[str, str]) -> dict:
    env = {"RAGEX_RUNTIME": "process", "RAGEX_EMBEDDER_RUNTIME": "auto",
           "RAGEX_DAEMON_MEMORY_LIMIT": "2GiB", "RAGEX_TEST_BULK_F32": "", **env_extra}
    proc = _doctor(env, "--json")
    checks = {c["name"]: c for c in json.loads(proc.stdout)}
    assert "embedder" in checks, proc.stdout + proc.stderr
    return checks["embedder"]


def test_doctor_says_a_first_index_goes_to_an_openvino_child_where_the_planner_would_start_one(
        ) -> None:
    """The test switch makes a CPU without bf16 plan the child too (as the bulk tests
    do), so the line is the planner's answer on any machine that has openvino."""
    import importlib.util

    import pytest

    if importlib.util.find_spec("openvino") is None:
        pytest.skip("openvino is not installed here: no child can be planned")
    line = _embedder_line({"RAGEX_TEST_BULK_F32": "1"})
    assert line["ok"] and "OpenVINO child process" in line["detail"], line
    assert "openvino is installed" in line["detail"] and "RAGEX_TEST_BULK_F32" in line["detail"]


def test_doctor_says_a_first_index_stays_on_onnxruntime_and_why() -> None:
    """The reason is the planner's own (a memory limit with no room for the child, a
    configured runtime); Docker workers never have openvino.  The CPU's and openvino's
    reasons: tests/engine/test_bulk_embed.py, in-process."""
    line = _embedder_line({"RAGEX_TEST_BULK_F32": "1", "RAGEX_DAEMON_MEMORY_LIMIT": "600MiB"})
    assert line["detail"].startswith("onnxruntime in the worker, for a first index too: the "
                                     "memory limit (600 MiB)"), line
    line = _embedder_line({"RAGEX_EMBEDDER_RUNTIME": "onnxruntime"})
    assert 'onnxruntime in the worker' in line["detail"]
    assert '[embedder] runtime = "onnxruntime" is configured' in line["detail"], line
    line = _embedder_line({"RAGEX_RUNTIME": "docker",
                           "DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert line["detail"] == ("onnxruntime in the worker: workers run in Docker, whose "
                              "image has no openvino"), line


def test_doctor_into_a_pipe_its_reader_closed_ends_quietly() -> None:
    """`ragexctl doctor | head -1`: the plugins (doctor, service, mcp) did not end as
    every other command does when its reader is gone: a BrokenPipeError
    traceback, exit 1."""
    base = Path(tempfile.mkdtemp(prefix="rx-doc-"))
    env = dict(os.environ, RAGEX_DATA_DIR=str(base / "data"), RAGEX_STATE_DIR=str(base / "state"),
               RAGEX_CONFIG_DIR=str(base / "config"), RAGEX_RUNTIME_DIR=str(base / "run"),
               RAGEX_RUNTIME="process")
    read_end, write_end = os.pipe()
    os.close(read_end)   # the reader is gone before the first line
    try:
        proc = subprocess.run([sys.executable, "-m", "ragexctl", "doctor"], env=env,
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
