"""Stopping ragex while a first index's bulk child embeds (engine/bulk.py).

Real ragexd, real worker, real OpenVINO child, real signals: ``ragexctl stop PATH``
(the worker only), ``ragexctl stop --all`` (ragexd's SHUTDOWN) and SIGTERM to ragexd
each stop the worker while its child is mid-backlog.  The claims: no process of the
tree (worker, child) outlives the stop, and the index the next ragexd opens is
consistent (every stored vector has its chunk, every chunk has a vector or waits
for one), and the next ragexd completes it, keeping every vector stored before.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import psutil
import pytest

from ragexd import proctree
from ragexd.engine import Engine
from ragexd.protocol import Op, Progress, Reply, Request

from tests.harness import RagexInstance, copy_stdlib, wait_for

STOPS = ("ragexctl stop PATH", "ragexctl stop --all", "SIGTERM to ragexd")


def _bulk_child_of(daemon: RagexInstance) -> psutil.Process | None:
    for pid in proctree.descendants(daemon.pid):
        try:
            proc = psutil.Process(pid)
            if "ragexd.engine.bulk" in " ".join(proc.cmdline()):
                return proc
        except psutil.Error:
            pass
    return None


def _index_dir(daemon: RagexInstance) -> Path:
    (record,) = daemon.data.glob("**/project.json")
    return record.parent


def _stored(index_dir: Path, tree: Path) -> tuple[set[str], set[str], set[str]]:
    """(chunk ids, ids with a vector, ids waiting for one), read as the next worker
    opens the index (and finishes an interrupted write first)."""
    engine = Engine(tree, index_dir)
    try:
        return (engine._catalog.chunk_ids(), engine._vectors.all_ids(),
                engine._catalog.pending_ids())
    finally:
        engine.close()


@pytest.mark.parametrize("stop", STOPS)
def test_a_stop_while_the_bulk_child_embeds_leaves_no_process_and_a_consistent_index(
        stop: str, tmp_path: Path, daemon_factory: list[RagexInstance]) -> None:
    if importlib.util.find_spec("openvino") is None:
        pytest.skip("the [openvino] extra is not installed: no bulk child to stop")
    tree = copy_stdlib(tmp_path / "tree", "json", "email", "logging")
    env = {"RAGEX_EMBEDDER_RUNTIME": "auto", "RAGEX_EMBEDDER_BULK_MIN_CHUNKS": "1",
           "RAGEX_TEST_BULK_F32": "1",   # a CPU without bf16 starts the child too
           "RAGEX_DAEMON_MEMORY_LIMIT": "0"}
    if os.environ.get("RAGEX_MODEL_DIR"):
        env["RAGEX_MODEL_DIR"] = os.environ["RAGEX_MODEL_DIR"]
    daemon = RagexInstance(**env)
    daemon_factory.append(daemon)
    daemon.start()
    client = daemon.client()
    client.send(Request(Op.INDEX, {}, project=str(tree)))

    embedded = 0
    while embedded == 0:   # the child is up and has handed back at least one batch
        message = client.recv(timeout=300)
        assert not isinstance(message, Reply), f"the index ended before the stop: {message}"
        if isinstance(message, Progress):
            embedded = message.chunks_embedded
    child = _bulk_child_of(daemon)
    assert child is not None, "the worker embeds with no bulk child: nothing under test"
    tree_before = [psutil.Process(pid) for pid in proctree.descendants(daemon.pid)]
    assert len(tree_before) >= 2   # the worker and its child at least

    if stop == "ragexctl stop PATH":
        done = daemon.ctl("stop", str(tree), timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    elif stop == "ragexctl stop --all":
        done = daemon.ctl("stop", "--all", timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        daemon.proc.wait(60)
    else:
        assert daemon.terminate(60) == 0, daemon.output()

    _gone, alive = psutil.wait_procs(tree_before, timeout=30)
    assert not alive, f"left behind: {[(p.pid, p.cmdline()) for p in alive if p.is_running()]}"
    if stop == "ragexctl stop PATH":
        daemon.terminate(60)   # the worker alone was stopped; the index opens after ragexd

    index_dir = _index_dir(daemon)
    chunks, vectors, pending = _stored(index_dir, tree)
    assert vectors, "the stop came before any batch was stored: nothing under test"
    assert vectors <= chunks, "vectors stored for chunks the catalog does not have"
    assert chunks - vectors <= pending, "chunks with neither a vector nor a place in pending"
    assert not vectors & pending, "chunks both stored and waiting"

    # The next ragexd resumes: it completes the index and keeps what was stored.
    again = RagexInstance(daemon.base, **env)
    daemon_factory.append(again)
    again.start()
    reply = again.client().index(tree, timeout=600)
    assert reply.ok, reply.error
    assert again.terminate(60) == 0, again.output()
    after, after_vectors, after_pending = _stored(index_dir, tree)
    assert after_vectors == after and not after_pending
    assert vectors <= after_vectors, "vectors stored before the stop were lost"
    wait_for(lambda: not any(p.is_running() for p in tree_before), 5, what="no leftovers")
