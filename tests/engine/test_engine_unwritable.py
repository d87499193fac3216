"""A full disk or a read-only index directory: a clear index_unwritable error,
and the previous index stays searchable.  Uses real tmpfs mounts (root only)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from ragexd.engine import Engine, EngineError, SearchQuery


def _mount(size: str) -> Path | None:
    mnt = Path(tempfile.mkdtemp(prefix="rx-mnt-"))
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                       capture_output=True)
    if r.returncode != 0:
        mnt.rmdir()
        return None
    return mnt


@pytest.fixture
def small_fs(request) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = _mount(request.param if hasattr(request, "param") else "4M")
    if mnt is None:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
        try:
            mnt.rmdir()
        except OSError:
            pass


def small_tree(root: Path, n: int = 5) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / f"f{i}.py").write_text(f"def small_func_{i}(x):\n    return x + {i}\n")


def assert_old_index_searchable(engine: Engine) -> None:
    hits = engine.search(SearchQuery("small_func_1", mode="symbol")).hits
    assert hits[0].name == "small_func_1" and hits[0].path == "f1.py"
    assert engine.search(SearchQuery("add a number to x", mode="semantic")).hits
    assert engine.search(SearchQuery("small_func_2", mode="regex")).hits


@pytest.mark.parametrize("small_fs", ["4M"], indirect=True)
def test_disk_full_is_unwritable_and_old_index_survives(small_fs: Path, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    small_tree(root)
    engine = Engine(root, small_fs / "index")
    try:
        assert engine.index().chunks_total == 5
        for i in range(1500):  # far more than 4 MiB of index
            (root / f"g{i}.py").write_text(
                f"def generated_function_{i}(x):\n    return x * {i} + len(str(x))\n" * 3)
        with pytest.raises(EngineError) as err:
            engine.index()
        assert err.value.code == "index_unwritable"
        assert "disk" in err.value.message and "searchable" in err.value.message
        assert_old_index_searchable(engine)
        assert engine.status().state == "partial"
        # once there is room again, the next run converges
        for i in range(1500):
            (root / f"g{i}.py").unlink()
        engine.index(rebuild=True)
        assert engine.status().state == "ready"
        assert engine._catalog.chunk_ids() == engine._vectors.all_ids()
    finally:
        engine.close()


@pytest.mark.parametrize("small_fs", ["64M"], indirect=True)
def _remount_read_only(fs: Path) -> None:
    """``mount -o remount,ro``, retried for a few seconds: the vector store's native
    side closes its files a moment after ``Engine.close()`` returns, and Linux
    refuses (EBUSY) while a file on the mount is still open for writing."""
    import gc
    import time

    deadline = time.monotonic() + 10
    while True:
        gc.collect()
        done = subprocess.run(["mount", "-o", "remount,ro", str(fs)], capture_output=True,
                              text=True)
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"cannot remount {fs} read-only: {done.stderr.strip()}")
        time.sleep(0.2)


def test_read_only_index_dir(small_fs: Path, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    small_tree(root)
    engine = Engine(root, small_fs / "index")
    engine.index()
    engine.close()  # Linux refuses to remount read-only while files are open for writing
    (root / "new.py").write_text("def fresh_function():\n    return 0\n")
    _remount_read_only(small_fs)
    try:
        engine = Engine(root, small_fs / "index")
        try:
            with pytest.raises(EngineError) as err:
                engine.index()
            assert err.value.code == "index_unwritable" and "read-only" in err.value.message
            hits = engine.search(SearchQuery("small_func_1", mode="symbol")).hits
            assert hits[0].name == "small_func_1"
            assert engine.search(SearchQuery("small_func_2", mode="regex")).hits
            out = engine.search(SearchQuery("small func 3 adds a number", mode="hybrid"))
            assert out.hits and out.notes  # keywords only: the vectors cannot be opened
            assert engine.status().state == "ready"
        finally:
            engine.close()
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_fs)], check=True)
    engine = Engine(root, small_fs / "index")
    try:
        engine.index()
        assert engine.search(SearchQuery("fresh_function", mode="symbol")).hits
    finally:
        engine.close()


def test_uncreatable_index_dir_is_unwritable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    engine = Engine(tmp_path, blocker / "index")
    with pytest.raises(EngineError) as err:
        engine.index()
    assert err.value.code == "index_unwritable"
    # a grep still works without any index
    assert engine.search(SearchQuery("not a directory", mode="regex")).hits


@pytest.mark.parametrize("small_fs", ["1500k"], indirect=True)
def test_a_first_index_that_fills_the_disk_leaves_what_it_catalogued_searchable(
        small_fs: Path, tmp_path: Path) -> None:
    """A first index commits its catalogue, then fills the disk with vectors.  All
    of it sits in SQLite's WAL (never checkpointed), and the read-only reopen used
    ``immutable=1``, which ignores the WAL: the index looked empty, and every
    symbol and semantic search failed "cannot open the index catalog", under a
    message saying "the existing index is still searchable".  Now ``mode=ro``."""
    from tests.harness import write_corpus

    root = write_corpus(tmp_path / "tree", files=20, funcs=30)
    engine = Engine(root, small_fs / "index")
    try:
        with pytest.raises(EngineError) as err:
            engine.index()
        assert err.value.code == "index_unwritable", err.value.message
        assert "searchable" in err.value.message
        names = ("resolve_thumbnail_3_4", "compute_route_19_29")   # an early and the last module
        for opened in (engine, Engine(root, small_fs / "index")):   # as a restarted worker
            for name in names:
                hits = opened.search(SearchQuery(name, mode="symbol", limit=3)).hits
                assert [h.name for h in hits[:1]] == [name], (name, hits)
            assert opened.search(SearchQuery("the thumbnail record", mode="hybrid")).hits
            assert opened.status().files == 20
            if opened is not engine:
                opened.close()
    finally:
        engine.close()
