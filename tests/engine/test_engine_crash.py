"""kill -9 while indexing, then re-index: exactly the chunks of a clean index.

The child process is a real indexer on a real tree; it is killed (SIGKILL, no
cleanup) either at the worst moment — after chroma took a batch's vectors and
before the catalog transaction — or from outside at an arbitrary point.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from ragexd.engine import Engine, SearchQuery

from tests.harness import STDLIB, copy_stdlib

pytestmark = pytest.mark.slow  # three child processes each load the model and index

CHILD = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from ragexd.engine import Engine, indexer
    indexer.BATCH_CHUNKS = 16   # more batches, more places to die
    root, idx, kill_at = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    e = Engine(root, idx)
    batches = [0]
    def hook(n):
        batches[0] += 1
        print("batch", batches[0], flush=True)
        if kill_at and batches[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)   # after chroma, before sqlite
    e._fault_hook = hook
    e.index(progress=lambda p: print("progress", p.phase, p.files_done, flush=True))
    print("finished", flush=True)
""")


@pytest.fixture(scope="module")
def tree_and_clean():
    base = Path(tempfile.mkdtemp(prefix="rx-crash-"))
    root = copy_stdlib(base / "tree", "json")
    (root / "email").mkdir()
    for name in ("base64mime.py", "quoprimime.py", "charset.py"):
        (root / "email" / name).write_bytes((STDLIB / "email" / name).read_bytes())
    clean = Engine(root, base / "clean")
    clean.index()
    ids = (clean._catalog.chunk_ids(), clean._vectors.all_ids())
    clean.close()
    assert ids[0] == ids[1] and len(ids[0]) > 80
    yield base, root, ids[0]
    shutil.rmtree(base, ignore_errors=True)


def run_child(root: Path, idx: Path, kill_at: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, str(root), str(idx), str(kill_at)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def converge_and_compare(root: Path, idx: Path, expected: set[str]) -> None:
    e = Engine(root, idx)
    try:
        assert e.status().state == "partial"          # the interrupted run is visible
        assert e.search(SearchQuery("dumps", mode="symbol")).partial
        summary = e.index()
        cat, vec = e._catalog.chunk_ids(), e._vectors.all_ids()
        assert cat == expected, (len(cat - expected), len(expected - cat))   # 0 lost/extra
        assert vec == expected, (len(vec - expected), len(expected - vec))
        assert e._vectors.count() == len(expected)                         # 0 duplicated
        assert summary.chunks_total == len(expected)
        assert e.status().state == "ready"
    finally:
        e.close()


def test_kill_between_vector_and_catalog_writes(tree_and_clean) -> None:
    base, root, expected = tree_and_clean
    idx = base / "killed-inside"
    child = run_child(root, idx, kill_at=3)
    out, _ = child.communicate(timeout=600)
    assert child.returncode == -signal.SIGKILL, out
    assert "batch 3" in out and "finished" not in out
    converge_and_compare(root, idx, expected)


def test_kill_from_outside_mid_run(tree_and_clean) -> None:
    base, root, expected = tree_and_clean
    idx = base / "killed-outside"
    child = run_child(root, idx, kill_at=0)
    assert child.stdout is not None
    batches = 0
    deadline = time.monotonic() + 600
    for line in child.stdout:
        if line.startswith("batch"):
            batches += 1
            if batches == 2:
                time.sleep(0.3)  # somewhere inside the next batch
                os.kill(child.pid, signal.SIGKILL)
                break
        assert time.monotonic() < deadline
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    converge_and_compare(root, idx, expected)


def test_second_kill_during_recovery_still_converges(tree_and_clean) -> None:
    base, root, expected = tree_and_clean
    idx = base / "killed-twice"
    for kill_at in (2, 1):
        child = run_child(root, idx, kill_at=kill_at)
        child.communicate(timeout=600)
        assert child.returncode == -signal.SIGKILL
    converge_and_compare(root, idx, expected)
