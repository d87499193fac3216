"""The count of files the index leaves out stays exact through saves, and an
index summary names only the first SKIPPED_SHOWN of them (a reply must fit the
wire), with the total beside them."""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

import pytest

from ragexd.engine import Engine
from ragexd.engine.engine import SKIPPED_SHOWN
from ragexd.engine.types import EngineError

FIFOS = 300


def test_saves_of_skipped_files_beyond_the_named_ones_keep_the_count_exact() -> None:
    base = Path(tempfile.mkdtemp(prefix="rx-skc-"))
    root = base / "tree"
    root.mkdir()
    (root / "real.py").write_text("def kept_here():\n    return 1\n")
    fifos = [root / f"pipe_{i:03d}.py" for i in range(FIFOS)]
    for path in fifos:
        os.mkfifo(path)
    engine = Engine(root, base / "index")
    try:
        first = engine.index()
        assert first.skipped_total == FIFOS
        assert len(first.skipped) == SKIPPED_SHOWN < FIFOS
        assert engine.status().skipped == FIFOS

        # #250 sorts after the 200 a status names: each save used to count it again
        for _ in range(5):
            saved = engine.index(paths=[str(fifos[250])])
            assert [s.path for s in saved.skipped] == ["pipe_250.py"]
        assert engine.status().skipped == FIFOS

        fifos[299].unlink()
        fifos[299].write_text("def now_indexable():\n    return 2\n")
        engine.index(paths=[str(fifos[299])])
        status = engine.status()
        assert status.skipped == FIFOS - 1
        assert len(status.skipped_files) == SKIPPED_SHOWN
        assert "pipe_299.py" not in {f["path"] for f in status.skipped_files}

        assert engine.index().skipped_total == FIFOS - 1    # a full run agrees
        assert engine.status().skipped == FIFOS - 1
    finally:
        engine.close()
        shutil.rmtree(base, ignore_errors=True)


def test_a_first_index_with_skipped_files_compacts_once_and_leaves_no_wal(
        tmp_path: Path, monkeypatch) -> None:
    """The skipped-files record goes in before the run's compaction: written
    after it, it needed a second compaction (or left a WAL behind)."""
    from ragexd.engine.catalog import Catalog

    root = tmp_path / "tree"
    root.mkdir()
    (root / "real.py").write_text("def kept_here():\n    return 1\n")
    for i in range(3):
        os.mkfifo(root / f"pipe_{i}.py")
    compactions: list[int] = []
    real_compact = Catalog.compact

    def counted(self: Catalog) -> int:
        compactions.append(1)
        return real_compact(self)

    monkeypatch.setattr(Catalog, "compact", counted)
    engine = Engine(root, tmp_path / "index")
    try:
        assert engine.index().skipped_total == 3
        assert len(compactions) == 1
        wal = tmp_path / "index" / "catalog.sqlite-wal"
        assert not wal.exists() or wal.stat().st_size == 0
        assert engine.status().skipped == 3     # the record is there all the same
    finally:
        engine.close()


def test_a_failing_skipped_record_still_leaves_the_run_completed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run's completion is written before the skipped-files record: a record
    that fails to write (a full disk) costs the status its list of skipped files,
    not the index its "complete" (which would resume the run on every start)."""
    from ragexd.engine.catalog import Catalog
    from ragexd.engine.indexer import LAST_INDEXED, RUN_MARKER

    root = tmp_path / "tree"
    root.mkdir()
    (root / "real.py").write_text("def kept_here():\n    return 1\n")
    os.mkfifo(root / "pipe_0.py")

    def full_disk(self: Engine, *args: object) -> bool:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Engine, "_remember_skipped", full_disk)
    engine = Engine(root, tmp_path / "index")
    try:
        with pytest.raises(EngineError) as failed:
            engine.index()
        assert failed.value.code == "index_unwritable"
    finally:
        engine.close()
    catalog = Catalog(tmp_path / "index" / "catalog.sqlite")
    try:
        assert catalog.get_meta(RUN_MARKER) is None
        assert catalog.get_meta(LAST_INDEXED) is not None
    finally:
        catalog.close()
