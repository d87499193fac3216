"""The index on disk stays small (issue #10: at most 3 KB a chunk) and its space
savings change nothing a user sees: deletes still leave the lexical index, an
index made by the previous catalog format is migrated without losing a chunk or
a vector and answers the same."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from ragexd.engine import Engine, SearchQuery
from ragexd.engine.catalog import Catalog

from tests.harness import copy_stdlib

#: issue #10's target for the whole index (catalog + vectors), bytes a chunk
MAX_BYTES_A_CHUNK = 3000


def index_bytes(idx: Path) -> int:
    return sum(p.stat().st_size for p in idx.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def email_index() -> Iterator[tuple[Path, Path, int]]:
    """stdlib ``email`` (~700 chunks) indexed once, then closed (its WAL folded
    back into the files, as a user's index is between sessions)."""
    base = Path(tempfile.mkdtemp(prefix="rx-size-"))
    root = copy_stdlib(base / "tree", "email")
    engine = Engine(root, base / "index")
    try:
        chunks = engine.index().chunks_total
    finally:
        engine.close()
    yield root, base / "index", chunks
    shutil.rmtree(base, ignore_errors=True)


def test_a_first_index_gives_back_the_pages_its_pending_texts_held(email_index) -> None:
    _, idx, _ = email_index
    conn = sqlite3.connect(idx / "catalog.sqlite")
    try:
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
        assert conn.execute("SELECT count(*) FROM pending").fetchone()[0] == 0
        assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0
    finally:
        conn.close()
