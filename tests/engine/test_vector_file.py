"""The vector file (``vectors.sqlite``): the cold path needs no chromadb, a crash
never leaves garbage, and an index made with chroma is converted once.

Real engine, real model, real SQLite, real chromadb (for the old layout and the
HNSW mirror), real SIGKILL.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ragexd.engine import Engine, EngineError, SearchQuery
from ragexd.engine.vectors import VECTORS_FILE, VectorFile, Vectors

from tests.harness import REPO, copy_stdlib

QUESTIONS = ("decode a JSON document", "escape a string for output", "encode floats")


@pytest.fixture(scope="module")
def indexed(scratch: Path):
    """A json package indexed once; each test copies the index it damages."""
    root = copy_stdlib(scratch / "vf-tree", "json")
    engine = Engine(root, scratch / "vf-index")
    engine.index()
    answers = {q: [h.path + ":" + str(h.line) for h in
                   engine.search(SearchQuery(q, mode="semantic", limit=10)).hits]
               for q in QUESTIONS}
    engine.close()
    yield root, scratch / "vf-index", answers
    shutil.rmtree(root, ignore_errors=True)


def _copy(index: Path, dest: Path) -> Path:
    shutil.copytree(index, dest)
    return dest


def _answers(engine: Engine) -> dict[str, list[str]]:
    return {q: [h.path + ":" + str(h.line) for h in
                engine.search(SearchQuery(q, mode="semantic", limit=10)).hits]
            for q in QUESTIONS}


_COLD = r"""
import json, sys, time
t0 = time.perf_counter()
from pathlib import Path
from ragexd.engine import Engine, SearchQuery
engine = Engine(Path(sys.argv[1]), Path(sys.argv[2]))
out = engine.search(SearchQuery(sys.argv[3], mode="semantic", limit=5))
took = time.perf_counter() - t0
print(json.dumps({"hits": [h.path for h in out.hits], "seconds": took,
                  "chromadb": "chromadb" in sys.modules, "torch": "torch" in sys.modules}))
engine.close()
"""


def _cold(root: Path, index: Path, question: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", _COLD, str(root), str(index), question],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_cold_engine_answers_by_meaning_without_importing_chromadb(indexed) -> None:
    root, index, answers = indexed
    assert (index / VECTORS_FILE).exists() and not (index / "chroma").exists()
    got = _cold(root, index, QUESTIONS[0])
    assert got["hits"] and got["hits"] == [p.split(":")[0] for p in answers[QUESTIONS[0]][:5]]
    assert got["chromadb"] is False and got["torch"] is False, got
    print(f"\ncold process to first semantic answer: {got['seconds']:.2f} s")


def test_a_truncated_vector_file_is_refused_then_embedded_again(indexed, tmp_path) -> None:
    root, index, answers = indexed
    index = _copy(index, tmp_path / "index")
    vf = index / VECTORS_FILE
    os.truncate(vf, vf.stat().st_size // 2)
    engine = Engine(root, index)
    try:
        assert engine.search(SearchQuery("JSONDecoder", mode="symbol")).hits
        with pytest.raises(EngineError) as err:
            engine.search(SearchQuery(QUESTIONS[0], mode="semantic"))
        assert err.value.code == "index_corrupt" and "damaged" in err.value.message
        assert "ragexctl index" in err.value.message
        summary = engine.index()     # no --rebuild: the reconcile step repairs it
        assert summary.chunks_embedded > 0
        assert engine._catalog.chunk_ids() == engine._vectors.all_ids()
        assert _answers(engine) == answers
        assert (index / (VECTORS_FILE + ".damaged")).exists()
    finally:
        engine.close()


_WRITER = r"""
import sys, numpy as np
from pathlib import Path
from ragexd.engine.vectors import Vectors
store = Vectors(Path(sys.argv[1]) / "chroma")
for b in range(10_000):
    ids = [f"b{b}-{i}" for i in range(500)]
    mat = np.full((500, 384), 0.04, dtype=np.float32)   # near unit length: kept as written
    mat[:, 0], mat[:, 1] = b / 8192, np.arange(500) / 512  # the row's batch and place
    store.upsert(ids, mat, [{"path": f"f{b}.py", "language": "python"}] * 500)
    if b % 3 == 2:
        store.delete_paths([f"f{b - 1}.py"])
    if b == 2:
        print("writing", flush=True)
"""


def test_a_vector_file_killed_mid_write_keeps_whole_batches_never_garbage(tmp_path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    child = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)], env=env,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "writing"
    time.sleep(1.5)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    store = Vectors(tmp_path / "chroma")
    try:
        ids = store.all_ids()
        assert len(ids) >= 1000
        batches: dict[int, int] = {}
        for cid in ids:
            b = int(cid[1:].split("-")[0])
            batches[b] = batches.get(b, 0) + 1
        assert set(batches.values()) == {500}         # never half a batch
        last = max(batches)
        for b in batches:                             # deletes applied whole, in order
            assert b % 3 != 1 or b + 1 >= last, b
        got, mat = VectorFile.open(tmp_path / VECTORS_FILE).get(sorted(ids))
        want = np.full((len(got), 384), np.float16(0.04), dtype=np.float32)
        want[:, 0] = [np.float16(int(c[1:].split("-")[0]) / 8192) for c in got]
        want[:, 1] = [int(c.split("-")[1]) / 512 for c in got]
        assert np.array_equal(mat, want)   # not garbage: each row as its batch wrote it
        assert not (tmp_path / (VECTORS_FILE + ".damaged")).exists()
    finally:
        store.close()


def _make_legacy(index: Path) -> int:
    """Turn an index into the layout of the code before the vector file: every
    vector in ``chroma/`` (written as that code wrote them), no vectors.sqlite."""
    vf = VectorFile.open(index / VECTORS_FILE)
    ids, paths, langs, mat = vf.rows()
    vf.close()
    old = Vectors(index / "chroma", index / "unused")
    client, col = old._open(index / "chroma")
    for i in range(0, len(ids), 2000):
        col.upsert(ids=ids[i:i + 2000], embeddings=mat[i:i + 2000],
                   metadatas=[{"path": p, "language": lg, "kind": "function"}
                              for p, lg in zip(paths[i:i + 2000], langs[i:i + 2000])])
    client.close()
    from ragexd.engine.vectors import _forget_broken_system
    _forget_broken_system(index / "chroma")
    for name in os.listdir(index):
        if name.startswith(VECTORS_FILE):
            (index / name).unlink()
    return len(ids)


def test_an_index_kept_in_chroma_is_converted_once_with_the_same_answers(
        indexed, tmp_path, caplog) -> None:
    root, index, answers = indexed
    index = _copy(index, tmp_path / "index")
    total = _make_legacy(index)
    assert (index / "chroma" / "chroma.sqlite3").exists()
    engine = Engine(root, index)
    try:
        with caplog.at_level("WARNING", logger="ragexd.engine.vectors"):
            assert _answers(engine) == answers
        assert any("converting the vectors" in r.getMessage() for r in caplog.records)
        assert not (index / "chroma").exists()        # never two stores side by side
        assert engine._vectors.count() == total
        summary = engine.index()                      # nothing to embed again
        assert summary.chunks_embedded == 0
    finally:
        engine.close()
    assert _cold(root, index, QUESTIONS[1])["chromadb"] is False


def test_above_exact_max_chroma_mirrors_the_file_for_hnsw(tmp_path, monkeypatch) -> None:
    rng = np.random.default_rng(3)
    mat = rng.normal(size=(300, 384)).astype(np.float32)
    ids = [f"c{i}" for i in range(300)]
    metas = [{"path": f"f{i % 10}.py", "language": "python"} for i in range(300)]
    store = Vectors(tmp_path / "chroma")
    monkeypatch.setattr(Vectors, "EXACT_MAX", 100)
    try:
        store.upsert(ids[:250], mat[:250], metas[:250])    # before chroma is open
        assert not (tmp_path / "chroma").exists()
        assert store.query(mat[7], 1)[0][0] == "c7"           # syncs the mirror
        store.upsert(ids[250:], mat[250:], metas[250:])    # mirrored as written
        store.delete_paths(["f3.py"])
        assert store.query(mat[299], 1)[0][0] == "c299"
        assert "c3" not in [i for i, _ in store.query(mat[3], 20)]
        assert store.collection().count() == store.count() == 270
    finally:
        store.close()


class _DiskFullOnVacuum:
    """The real connection, except that VACUUM meets a full disk (as SQLite says it)."""

    def __init__(self, conn) -> None:
        self.conn, self.vacuums = conn, 0

    def execute(self, sql: str, *args):
        if sql.strip().upper() == "VACUUM":
            self.vacuums += 1
            raise sqlite3.OperationalError("database or disk is full")
        return self.conn.execute(sql, *args)


def test_an_old_vector_file_a_full_disk_would_not_vacuum_is_not_retried_every_run(
        tmp_path) -> None:
    """Each run (every watcher save) ends with compact(): the once-only rewrite of a
    file from before incremental auto-vacuum must not be retried at every one."""
    path = tmp_path / VECTORS_FILE
    store = VectorFile.open(path)
    ids = [f"c{i}" for i in range(200)]
    store.put(ids, np.eye(200, 384, dtype=np.float32), [{"path": "a.py"}] * 200)
    store.delete("id", ids[:150])   # free pages to give back
    store._conn.execute("PRAGMA auto_vacuum=NONE")
    store._conn.execute("VACUUM")   # as files were made before incremental auto-vacuum
    store.delete("id", ids[150:180])
    conn = store._conn
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    assert conn.execute("PRAGMA freelist_count").fetchone()[0] > 0
    full = _DiskFullOnVacuum(conn)
    for _run in range(3):   # the same process, a later run: a fresh VectorFile
        VectorFile(path, full, read_only=False).compact()
    assert full.vacuums == 1
    assert conn.execute("SELECT count(*) FROM vec").fetchone()[0] == 20   # nothing lost
    conn.close()
