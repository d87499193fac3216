"""``[embedder] runtime = "auto"``: a backlog embedded on OpenVINO in a short-lived
child process while the worker keeps onnxruntime (ragexd/engine/bulk.py).

Real model, real OpenVINO, real child processes and signals.  The tests that need
OpenVINO to run the child skip cleanly where the [openvino] extra is missing; on a
CPU without bf16 they run the child in f32 (``bulk.TEST_F32_ENV``, tests only), so
its lifecycle is tested there too.  The fallback and the choice of runtime are
tested everywhere.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import psutil
import pytest

from ragexd import modelfiles
from ragexd.engine import Engine, IndexProgress, SearchQuery, bulk, embedding, indexer
from ragexd.engine.chunking import chunk_file
from ragexd.protocol import Op, Request

from tests.engine.test_onnx_embedder import REPO, _env, _real_code_texts
from tests.harness import copy_stdlib


def _needs_openvino() -> None:
    """Without bf16 the tests still run the child, in f32 (``bulk.TEST_F32_ENV``)."""
    if importlib.util.find_spec("openvino") is None:
        pytest.skip("the [openvino] extra is not installed")


def _child_precision() -> str:
    """What the child runs in here: bf16 where auto would start it, f32 in tests elsewhere."""
    return "bf16" if bulk.cpu_has_bf16() else "f32"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data directory for the module: OpenVINO's compiled-model cache is made once."""
    return tmp_path_factory.mktemp("bulk-data")


@pytest.fixture
def auto_env(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> Iterator[None]:
    """runtime = auto, and every backlog (however small) goes to the child."""
    monkeypatch.setenv("RAGEX_DATA_DIR", str(data_dir))
    monkeypatch.setenv("RAGEX_EMBEDDER_RUNTIME", "auto")
    monkeypatch.setenv("RAGEX_EMBEDDER_BULK_MIN_CHUNKS", "1")
    monkeypatch.setenv(bulk.TEST_F32_ENV, "1")   # a CPU without bf16 runs the child too
    monkeypatch.setattr(indexer, "BATCH_CHUNKS", 16)   # several batches on a small tree
    yield


#: A stand-in for the child (no model, no OpenVINO): says ``ready`` as its first
#: frame, then waits for end of file on its input, as the real one does.
_STAND_IN = ("import struct, sys; ready = {ready!r}; "
             "sys.stdout.buffer.write(struct.pack('>I', len(ready)) + ready); "
             "sys.stdout.buffer.flush(); sys.stdin.buffer.read()")


def _bulk_children(pid: int | None = None) -> list[psutil.Process]:
    """The bulk children below ``pid`` (this process): one listed a moment ago may be
    gone (a short git, a child just closed) by the time its command line is read."""
    found = []
    for proc in psutil.Process(pid).children(recursive=True):
        try:
            if "ragexd.engine.bulk" in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.Error:
            pass
    return found


def test_the_child_gives_the_vectors_of_in_process_onnxruntime_on_real_code(auto_env) -> None:
    _needs_openvino()
    texts = _real_code_texts()
    ort = embedding._OnnxBackend(modelfiles.locate("fp32")).encode(texts)
    child = bulk.BulkChild("openvino")
    try:
        got = child.encode(texts)
        assert child.describe()["precision"] == _child_precision()
    finally:
        child.close()
    assert got.shape == ort.shape == (len(texts), embedding.DIM)
    cos = (ort * got).sum(axis=1)
    assert cos.min() >= 0.999, f"worst cos {cos.min():.6f} at {texts[int(cos.argmin())][:80]!r}"
    assert not psutil.pid_exists(child.pid)   # closed means waited for: no zombie


def test_the_child_is_gone_once_the_backlog_is_embedded_and_status_names_it_meanwhile(
        auto_env, tmp_path: Path) -> None:
    _needs_openvino()
    tree = copy_stdlib(tmp_path / "tree", "json")
    engine = Engine(tree, tmp_path / "idx")
    seen: list[dict[str, Any]] = []

    def progress(p: IndexProgress) -> None:
        if p.phase == "embedding" and p.chunks_embedded and not seen:   # a batch stored
            seen.append(dict(engine.status().embedder or {}))

    try:
        summary = engine.index(progress=progress)
        assert not summary.notes, summary.notes
        child = seen[0]["bulk"]
        assert child["runtime"] == "openvino" and child["precision"] == _child_precision(), seen
        assert seen[0]["runtime"] == "onnxruntime"   # queries: the worker's own session
        # The backlog is done: the child has exited (and been reaped), so its memory
        # is the OS's again; the worker reports onnxruntime alone.
        assert not psutil.pid_exists(child["pid"])
        assert _bulk_children() == []
        assert engine.status().embedder == {"runtime": "onnxruntime", "precision": "fp32"}
        # what the child stored is what onnxruntime in the worker computes
        chunks = {c.id: c for path, row in engine._catalog.files().items()
                  for c in chunk_file(path, (tree / path).read_text(encoding="utf-8"),
                                      row.language)}
        assert chunks and engine._vectors.all_ids() == set(chunks)
        ids, stored = engine._vectors.export_vectors(sorted(chunks))
        ort = embedding._OnnxBackend(modelfiles.locate("fp32")).encode(
            [embedding.context_text(chunks[i]) for i in ids])
        assert (ort * stored).sum(axis=1).min() >= 0.999
    finally:
        engine.close()


def test_a_query_is_answered_on_onnxruntime_while_the_child_embeds_one_long_batch(
        auto_env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The whole backlog is one batch: an answer before the index ends came while the
    child was loading or embedding it, not after (the worker's own session serves it)."""
    _needs_openvino()
    monkeypatch.setattr(indexer, "BATCH_CHUNKS", 100_000)
    tree = copy_stdlib(tmp_path / "tree", "json")
    engine = Engine(tree, tmp_path / "idx")
    engine.index()
    copy_stdlib(tree, "email")   # the backlog: email's chunks, in one batch
    done = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            engine.index()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        deadline = time.monotonic() + 300
        while not (engine.status().embedder or {}).get("bulk") and not done.is_set():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert not done.is_set(), "the index ended before its child was seen"
        outcome = engine.search(SearchQuery("parse a json document", mode="semantic"))
        assert not done.is_set(), "the query waited for the child's batch"
        assert outcome.hits and outcome.hits[0].path.startswith("json/"), outcome
        thread.join(600)
        assert not errors, errors
    finally:
        thread.join(600)
        engine.close()


def test_queries_may_go_before_each_small_slice_the_child_embeds_not_once_a_batch(
        auto_env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The child shares the cores a query needs: like the in-process path, it is sent
    a slice at a time (CHILD_ENCODE_SLICE texts) and waiting queries go first before each."""
    _needs_openvino()
    monkeypatch.setattr(indexer, "BATCH_CHUNKS", 128)
    tree = copy_stdlib(tmp_path / "tree", "json")
    engine = Engine(tree, tmp_path / "idx")
    events: list[Any] = []
    encode = bulk.BulkChild.encode
    let_pass = indexer.QueryGate.let_queries_pass

    def child_encode(self: bulk.BulkChild, texts: Any) -> np.ndarray:
        events.append(len(texts))
        return encode(self, texts)

    def gate(self: indexer.QueryGate, *args: Any) -> None:
        events.append("gate")
        let_pass(self, *args)

    monkeypatch.setattr(bulk.BulkChild, "encode", child_encode)
    monkeypatch.setattr(indexer.QueryGate, "let_queries_pass", gate)
    try:
        summary = engine.index()
        assert not summary.notes, summary.notes
        sizes = [e for e in events if e != "gate"]
        assert sum(sizes) == summary.chunks_embedded > indexer.CHILD_ENCODE_SLICE, sizes
        assert max(sizes) <= indexer.CHILD_ENCODE_SLICE < indexer.BATCH_CHUNKS, sizes
        assert all(events[i - 1] == "gate" for i, e in enumerate(events) if e != "gate")
    finally:
        engine.close()


def test_the_index_speaks_before_it_waits_for_the_child_so_a_client_never_gives_up_first(
        auto_env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A client gives up on an index silent for INDEX_SILENCE_TIMEOUT: the child's load
    and one stuck slice, then the in-process fallback, must fit in it after a word."""
    from ragexctl.session import INDEX_SILENCE_TIMEOUT   # the CLI's and the MCP server's

    assert bulk.LOAD_TIMEOUT + bulk.BATCH_TIMEOUT <= 0.8 * INDEX_SILENCE_TIMEOUT
    _needs_openvino()
    events: list[str] = []
    wait_ready = bulk.BulkChild.wait_ready

    def waited(self: bulk.BulkChild) -> None:
        events.append("wait")
        wait_ready(self)

    monkeypatch.setattr(bulk.BulkChild, "wait_ready", waited)
    tree = copy_stdlib(tmp_path / "tree", "json")
    engine = Engine(tree, tmp_path / "idx")
    try:
        engine.index(progress=lambda p: events.append(f"{p.phase}: {p.message}"))
        first = events.index("wait")
        assert "embedding: starting the openvino child process" in events[:first], events
    finally:
        engine.close()


def test_a_child_killed_mid_index_leaves_a_complete_index_embedded_in_process_with_one_notice(
        auto_env, tmp_path: Path) -> None:
    _needs_openvino()
    tree = copy_stdlib(tmp_path / "tree", "json")
    engine = Engine(tree, tmp_path / "idx")
    killed: list[int] = []

    def progress(p: IndexProgress) -> None:
        if p.phase == "embedding" and not killed:   # one batch stored by the child
            for proc in _bulk_children():
                proc.kill()
                proc.wait(10)
                killed.append(proc.pid)

    try:
        summary = engine.index(progress=progress)
        assert killed, "no bulk child was running during the index"
        assert len(summary.notes) == 1 and "child process" in summary.notes[0], summary.notes
        assert "in this worker on onnxruntime" in summary.notes[0]
        ids = engine._catalog.chunk_ids()
        assert engine._vectors.all_ids() == ids and engine._catalog.pending_count() == 0
        stored, vecs = engine._vectors.export_vectors(sorted(ids))
        assert len(stored) == len(ids) and np.isfinite(vecs).all()
        assert engine.status().state == "ready"
    finally:
        engine.close()


def test_a_child_outlives_the_sigterm_ragexd_sends_the_workers_process_group(auto_env) -> None:
    """ragexd stops a worker by SIGTERM to its whole group: the child must not die of
    it mid-batch (the worker would re-embed that batch in-process while stopping)."""
    _needs_openvino()
    texts = _real_code_texts()[:8]
    child = bulk.BulkChild("openvino")
    try:
        child.wait_ready()
        os.kill(child.pid, signal.SIGTERM)
        time.sleep(0.5)
        assert child.encode(texts).shape == (len(texts), embedding.DIM)
    finally:
        child.close()
    assert not psutil.pid_exists(child.pid)   # end of file on its input still ends it


def test_a_child_lost_while_the_index_is_cancelled_is_not_replaced_by_in_process_embedding(
        auto_env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A stop (cancel) that also ends the child: the batch it held stays pending for
    the next run, with no note of a failure and no in-process encode meanwhile."""
    _needs_openvino()
    tree = copy_stdlib(tmp_path / "tree", "json")
    engine = Engine(tree, tmp_path / "idx")
    cancel = threading.Event()
    encode = bulk.BulkChild.encode

    def stopped_mid_batch(self: bulk.BulkChild, texts: Any) -> np.ndarray:
        self.wait_ready()
        cancel.set()   # the worker's stop ...
        self._proc.kill()   # ... and the signal to its group, in the same moment
        self._proc.wait(10)
        return encode(self, texts)

    monkeypatch.setattr(bulk.BulkChild, "encode", stopped_mid_batch)
    try:
        summary = engine.index(cancel=cancel)
        assert summary.cancelled and not summary.notes, summary.notes
        assert summary.chunks_embedded == 0 and engine._catalog.pending_count() > 0
        assert _bulk_children() == []
    finally:
        engine.close()


@pytest.mark.parametrize("ready", [b"R\xff\xfe", b"R{not json", b"R[1, 2]"])
def test_a_garbled_ready_frame_is_a_child_failure_not_a_failed_index(
        monkeypatch: pytest.MonkeyPatch, ready: bytes) -> None:
    monkeypatch.setattr(bulk, "_CHILD_MAIN", _STAND_IN.format(ready=ready))
    child = bulk.BulkChild("openvino")
    try:
        with pytest.raises(bulk.BulkFailed, match="when it was ready"):
            child.wait_ready()
    finally:
        child.close()
    assert not psutil.pid_exists(child.pid)


def test_frames_are_read_from_a_pipe_numbered_above_1023() -> None:
    """select() refuses descriptors >= FD_SETSIZE; a busy worker's pipe may be one."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"at most {hard} open files here")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    r, w = os.pipe()
    high = os.dup2(r, 1100)
    try:
        os.write(w, b"\0\0\0\3abc")
        assert bulk._read_frame(high, time.monotonic() + 5) == b"abc"
        with pytest.raises(TimeoutError):
            bulk._read_frame(high, time.monotonic() + 0.2)
        os.close(w)
        with pytest.raises(EOFError):
            bulk._read_frame(high, time.monotonic() + 5)
    finally:
        for fd in (r, high):
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_child_that_cannot_load_openvino_leaves_the_index_to_onnxruntime_with_one_notice(
        auto_env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Runs everywhere: the child finds a broken openvino (as a half-installed extra
    would be), so the worker embeds in-process as onnxruntime alone did."""
    broken = tmp_path / "broken" / "openvino"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise OSError('libopenvino.so: cannot open shared "
                                        "object file (planted by the test)')\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join((str(broken.parent), str(REPO))))
    monkeypatch.setattr(bulk, "openvino_installed", lambda: True)   # as auto would see it
    monkeypatch.setattr(bulk, "cpu_has_bf16", lambda cpuinfo="": True)
    tree = copy_stdlib(tmp_path / "tree", "json")
    engine = Engine(tree, tmp_path / "idx")
    try:
        summary = engine.index()
        assert len(summary.notes) == 1, summary.notes
        assert "planted by the test" in summary.notes[0] and "onnxruntime" in summary.notes[0]
        ids = engine._catalog.chunk_ids()
        assert ids and engine._vectors.all_ids() == ids
        assert _bulk_children() == []
    finally:
        engine.close()


def test_killing_the_worker_kills_its_bulk_child(tmp_path: Path, data_dir: Path) -> None:
    _needs_openvino()
    tree = copy_stdlib(tmp_path / "tree", "json", "email")
    env = _env(tmp_path, RAGEX_EMBEDDER_RUNTIME="auto", RAGEX_EMBEDDER_BULK_MIN_CHUNKS="1")
    env["RAGEX_DATA_DIR"] = str(data_dir)
    env[bulk.TEST_F32_ENV] = "1"
    if "RAGEX_MODEL_DIR" in os.environ:
        env["RAGEX_MODEL_DIR"] = os.environ["RAGEX_MODEL_DIR"]
    req = Request(Op.INDEX, {}, project=str(tree))
    worker = subprocess.Popen([sys.executable, "-m", "ragexd.worker", "oneshot", "--root",
                               str(tree), "--index-dir", str(tmp_path / "idx")],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, env=env)
    assert worker.stdin is not None
    worker.stdin.write(json.dumps(req.to_wire()).encode())
    worker.stdin.close()
    try:
        deadline = time.monotonic() + 300
        children: list[psutil.Process] = []
        while not children and worker.poll() is None and time.monotonic() < deadline:
            children = _bulk_children(worker.pid)
            time.sleep(0.1)
        assert children, "the worker started no bulk child"
        worker.send_signal(signal.SIGKILL)
        worker.wait(30)
        # PR_SET_PDEATHSIG: at once (end of file on its input alone would wait for its load)
        gone, alive = psutil.wait_procs(children, timeout=5)
        assert not alive, f"orphaned bulk child {[p.pid for p in alive]}"
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        assert worker.stderr is not None
        worker.stderr.close()
    # Nothing committed is lost: the next worker resumes and completes the index.
    again = subprocess.run([sys.executable, "-m", "ragexd.worker", "oneshot", "--root",
                            str(tree), "--index-dir", str(tmp_path / "idx")],
                           input=json.dumps(req.to_wire()), capture_output=True, text=True,
                           env=env, timeout=900)
    replies = [json.loads(line) for line in again.stdout.splitlines()]
    assert replies and replies[-1]["ok"], again.stderr[-2000:]
    engine = Engine(tree, tmp_path / "idx")
    try:
        ids = engine._catalog.chunk_ids()
        assert ids and engine._vectors.all_ids() == ids and engine._catalog.pending_count() == 0
    finally:
        engine.close()


def test_auto_keeps_everything_in_the_worker_without_openvino_or_bf16(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Where the child would not pay, auto is exactly onnxruntime: no child is planned."""
    monkeypatch.setenv("RAGEX_EMBEDDER_RUNTIME", "auto")
    no_bf16 = tmp_path / "cpuinfo"
    no_bf16.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n\n")
    with_bf16 = tmp_path / "cpuinfo-bf16"
    with_bf16.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16\n\n")
    assert not bulk.cpu_has_bf16(str(no_bf16)) and bulk.cpu_has_bf16(str(with_bf16))
    assert not bulk.cpu_has_bf16(str(tmp_path / "missing"))
    monkeypatch.setattr(bulk, "cpu_has_bf16", lambda cpuinfo="": False)
    assert bulk.bulk_plan() is None
    monkeypatch.setenv(bulk.TEST_F32_ENV, "1")   # tests only: the child's lifecycle in f32
    assert bulk.bulk_plan() is not None or not bulk.openvino_installed()
    monkeypatch.delenv(bulk.TEST_F32_ENV)
    monkeypatch.setattr(bulk, "cpu_has_bf16", lambda cpuinfo="": True)
    monkeypatch.setattr(bulk, "openvino_installed", lambda: False)
    assert bulk.bulk_plan() is None
    monkeypatch.undo()
    for runtime in ("onnxruntime", "openvino"):   # they keep their meaning: no child
        monkeypatch.setenv("RAGEX_EMBEDDER_RUNTIME", runtime)
        assert bulk.bulk_plan() is None
    monkeypatch.setenv("RAGEX_EMBEDDER_RUNTIME", "auto")
    monkeypatch.setenv("RAGEX_EMBEDDER_PRECISION", "int8")   # other vectors: never mixed
    assert bulk.bulk_plan() is None


def test_the_plan_says_why_a_first_index_stays_on_onnxruntime_in_a_sentence_doctor_prints(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``explain_plan`` is where ``bulk_plan`` decides, so doctor's line cannot drift
    from what a worker does."""
    monkeypatch.setenv("RAGEX_EMBEDDER_RUNTIME", "auto")
    monkeypatch.setenv("RAGEX_DAEMON_MEMORY_LIMIT", "0")
    monkeypatch.delenv(bulk.TEST_F32_ENV, raising=False)
    monkeypatch.setattr(bulk, "openvino_installed", lambda: True)
    monkeypatch.setattr(bulk, "cpu_has_bf16", lambda cpuinfo="": False)
    plan, why = bulk.explain_plan()
    assert plan is None and "neither AVX-512 BF16 nor AMX" in why, why
    monkeypatch.setattr(bulk, "cpu_has_bf16", lambda cpuinfo="": True)
    plan, why = bulk.explain_plan()
    assert plan == bulk.bulk_plan() == ("openvino", 500), plan
    assert why == "openvino is installed and this CPU has AVX-512 BF16 or AMX (OpenVINO runs in bf16)"
    monkeypatch.setattr(bulk, "openvino_installed", lambda: False)
    plan, why = bulk.explain_plan()
    assert plan is None and why.startswith("openvino is not installed"), why
    monkeypatch.setenv("RAGEX_EMBEDDER_PRECISION", "int8")
    assert "int8 graph" in bulk.explain_plan()[1]


def test_a_run_with_nothing_to_embed_never_plans_a_child(
        auto_env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The plan reads the settings, the model files and the CPU: a watcher's save
    with nothing to embed (most runs) must not pay for it."""
    plans: list[object] = []

    def counted() -> tuple[str, int] | None:
        plans.append(1)
        return None   # in-process: this test is about when the plan is asked for

    monkeypatch.setattr(bulk, "bulk_plan", counted)
    tree = copy_stdlib(tmp_path / "tree", "json")
    engine = Engine(tree, tmp_path / "idx")
    try:
        assert engine.index().chunks_embedded > 0 and len(plans) == 1
        again = engine.index()
        assert again.chunks_embedded == 0 and len(plans) == 1, again
    finally:
        engine.close()


def test_no_child_is_planned_when_the_workers_memory_limit_leaves_no_room_for_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """ragexd counts the child in the worker's memory: a limit that cannot hold it
    means in-process embedding, not a worker stopped for memory mid-index."""
    from ragexd import proctree
    from ragexd.runtimes.base import WorkerSpec
    from ragexd.runtimes.process import ProcessRuntime

    monkeypatch.setenv("RAGEX_EMBEDDER_RUNTIME", "auto")
    monkeypatch.setattr(bulk, "cpu_has_bf16", lambda cpuinfo="": True)
    monkeypatch.setattr(bulk, "openvino_installed", lambda: True)
    used = proctree.tree_rss(os.getpid()) or 0
    for room, planned in ((bulk.CHILD_MEMORY - (50 << 20), False),
                          (bulk.CHILD_MEMORY + (200 << 20), True)):
        # as the process runtime that starts the worker sets it
        spec = WorkerSpec("0" * 16, Path("/r"), Path("/i"), Path("/s"), Path("/l.log"),
                          used + room)
        limit = ProcessRuntime()._env(spec)["RAGEX_DAEMON_MEMORY_LIMIT"]
        monkeypatch.setenv("RAGEX_DAEMON_MEMORY_LIMIT", limit)
        assert (bulk.bulk_plan() is not None) is planned, (limit, used)
    monkeypatch.setenv("RAGEX_DAEMON_MEMORY_LIMIT", "0")   # 0: unlimited
    assert bulk.bulk_plan() is not None


def test_the_memory_ragexd_holds_a_worker_to_counts_a_child_started_by_its_index_thread(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The process runtime sums the RSS of the worker's descendants, found through each
    thread's children: a child started by the indexing thread (as bulk.py's is) counts.
    The stand-in child: no OpenVINO compile into the user's real data directory."""
    from ragexd.proctree import descendants

    monkeypatch.setattr(bulk, "_CHILD_MAIN", _STAND_IN.format(ready=b"R{}"))

    started: list[bulk.BulkChild] = []
    seen, release = threading.Event(), threading.Event()

    def index_thread() -> None:   # the child's death signal is tied to this thread
        child = bulk.BulkChild("openvino")
        started.append(child)
        seen.set()
        release.wait(60)
        child.close()

    thread = threading.Thread(target=index_thread)
    thread.start()
    try:
        assert seen.wait(60)
        assert started[0].pid in descendants(os.getpid())
    finally:
        release.set()
        thread.join(60)
    assert not psutil.pid_exists(started[0].pid)
