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


def test_an_empty_answer_names_the_left_out_files_that_may_hold_it() -> None:
    """An agent told "no definition named X" stops looking; X was in a generated
    module over the size limit, which neither the index nor ripgrep reads.  An
    empty answer now says how many files were not searched and names one."""
    from ragexd.engine.types import SearchQuery

    base = Path(tempfile.mkdtemp(prefix="rx-skn-"))
    root = base / "tree"
    root.mkdir()
    (root / "real.py").write_text("def kept_here():\n    return 1\n")
    (root / "generated.py").write_text("def only_in_the_big_file():\n    return 1\n"
                                       + "".join(f"X{i} = {i}\n" for i in range(90_000)))
    engine = Engine(root, base / "index")
    try:
        assert engine.index().skipped_total == 1
        for mode in ("symbol", "regex"):
            empty = engine.search(SearchQuery(text="only_in_the_big_file", mode=mode, limit=5))
            assert empty.hits == [], (mode, empty.hits)
            said = [n for n in empty.notes if "not searched" in n]
            # regex: as ripgrep says it (it read this search's files, not the index)
            where = "; `ragexctl status` names them" if mode == "symbol" else ""
            assert said == ["1 file of the project is not searched and may hold it "
                            "(generated.py: larger than 1048576 bytes (1327821))"
                            + where], (mode, empty.notes)
            found = engine.search(SearchQuery(text="kept_here", mode=mode, limit=5))
            assert found.hits and not any("not searched" in n for n in found.notes), found
        (root / "generated.py").unlink()
        engine.index()
        gone = engine.search(SearchQuery(text="only_in_the_big_file", mode="symbol", limit=5))
        assert gone.hits == [] and not any("not searched" in n for n in gone.notes), gone.notes
    finally:
        engine.close()
        shutil.rmtree(base, ignore_errors=True)


def test_an_empty_answer_names_only_left_out_files_its_path_and_language_would_read() -> None:
    """`--path src/*` or `-t go` searches only some files; its empty answer said that a
    binary .sql file elsewhere "is not searched and may hold it": a pointer an agent
    follows to a file the search excludes itself.  Now only the files the filters
    would have read count, as a regex answer (ripgrep) counts them."""
    from ragexd.engine.types import SearchQuery

    base = Path(tempfile.mkdtemp(prefix="rx-skf-"))
    root = base / "tree"
    (root / "src").mkdir(parents=True)
    (root / "src" / "real.py").write_text("def kept_here():\n    return 1\n")
    (root / "dump.sql").write_bytes(b"\x00\x01SELECT 1;\x00")
    (root / "src" / "blob.py").write_bytes(b"\x7fELF\x00\x00def hidden():\x00")
    engine = Engine(root, base / "index")

    def said(**kw: object) -> list[str]:
        got = engine.search(SearchQuery(text="nowhere_at_all", mode="symbol", limit=5, **kw))
        assert got.hits == []
        return [n for n in got.notes if "not searched" in n]

    try:
        assert engine.index().skipped_total == 2
        assert said()[0].startswith("2 files of the project are not searched")
        assert said(languages=("go",)) == []
        assert said(path_globs=("docs/*",)) == []
        for kw in ({"languages": ("python",)}, {"path_globs": ("src/*",)}):
            assert said(**kw) == ["1 file of the project is not searched and may hold it "
                                  "(src/blob.py: binary file); `ragexctl status` names them"], kw
        assert said(languages=("sql",), path_globs=("src/*",)) == []
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


def test_an_index_that_found_nothing_to_read_does_not_advise_indexing_again(
        tmp_path: Path) -> None:
    """A project whose every file is ignored (`*` in .ragexignore) answered "the
    index is empty; run `ragexctl index` first" after `ragexctl index` had run:
    advice that changes nothing.  Before any index, the advice stands."""
    from ragexd.engine.types import SearchQuery

    root = tmp_path / "tree"
    root.mkdir()
    (root / "e.py").write_text("def eta_fn():\n    return 1\n")
    (root / ".ragexignore").write_text("*\n")
    engine = Engine(root, tmp_path / "index")
    try:
        before = engine.search(SearchQuery(text="eta_fn", mode="symbol", limit=5))
        assert "the index is empty; run `ragexctl index` first" in before.notes, before.notes
        assert engine.index().files_indexed == 0
        for mode in ("symbol", "hybrid"):
            after = engine.search(SearchQuery(text="eta_fn", mode=mode, limit=5))
            assert after.hits == [], after.hits
            said = " ".join(after.notes)
            assert "run `ragexctl index` first" not in said, said
            assert "the last index found no file to read" in said and ".ragexignore" in said
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


def test_a_left_out_file_past_the_first_shown_still_counts_for_a_narrowed_search(
        tmp_path: Path) -> None:
    """The filtered count read the walk's record, which names only the first
    SKIPPED_SHOWN files: a --path search whose one left-out file sorted after them
    was told nothing was left out."""
    from ragexd.engine.types import SearchQuery

    root = tmp_path / "tree"
    (root / "a").mkdir(parents=True)
    for i in range(SKIPPED_SHOWN + 5):
        (root / "a" / f"g{i:04}.py").write_text("x = 1\n" * 40)   # too large here
    (root / "z").mkdir()
    (root / "z" / "big.py").write_text("def only_in_big():\n    pass\n" + "#\n" * 200)
    (root / "z" / "small.py").write_text("def small():\n    pass\n")
    engine = Engine(root, tmp_path / "index", max_file_bytes=200)
    try:
        engine.index()
        got = engine.search(SearchQuery(text="only_in_big", mode="symbol", limit=5,
                                        path_globs=("z/*",)))
        assert [h.name for h in got.hits if h.name == "only_in_big"] == []
        assert any(n.startswith("1 file of the project is not searched") and "z/big.py" in n
                   for n in got.notes), got.notes
    finally:
        engine.close()
