"""Vectors stored as float16 (issue #10: 3 KB a chunk) change nothing a search sees:
on real code embedded by the real model, each vector keeps cosine >= 0.99999 of
its float32 original and a semantic search gives the same top ten; a file written
as float32 before, or holding both widths, reads as it is, and the next run
rewrites it as float16 keeping every vector.

Real model, real engine, real SQLite.  The float32 index is made by this very
code with ``STORED`` set to float32: byte for byte what the previous ragex wrote.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from ragexd.engine import Engine, SearchQuery
from ragexd.engine import vectors as vectors_mod
from ragexd.engine.vectors import VECTORS_FILE, VectorFile, as_stored

from tests.harness import copy_stdlib

QUESTIONS = ("parse a header value", "encode a string in base64", "quoted printable decode",
             "split a message into parts", "format an address with a display name",
             "guess the charset of a body", "iterate over the attachments",
             "fold long header lines")

Answers = dict[str, list[tuple[str, int, float]]]


def semantic(engine: Engine) -> Answers:
    return {q: [(h.path, h.line, h.score) for h in
                engine.search(SearchQuery(q, mode="semantic", limit=10)).hits]
            for q in QUESTIONS}


def row_widths(index: Path) -> dict[int, int]:
    conn = sqlite3.connect(f"file:{index / VECTORS_FILE}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT length(v), count(*) FROM vec GROUP BY length(v)"))
    finally:
        conn.close()


@pytest.fixture(scope="module")
def wide_index() -> Iterator[tuple[Path, Path, Answers]]:
    """stdlib ``email`` (~700 chunks) indexed with float32 rows, as before, and its
    semantic answers read from that file by a fresh engine."""
    base = Path(tempfile.mkdtemp(prefix="rx-f16-"))
    root = copy_stdlib(base / "tree", "email")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(vectors_mod, "STORED", "<f4")
        engine = Engine(root, base / "index")
        try:
            engine.index()
        finally:
            engine.close()
        engine = Engine(root, base / "index")
        try:
            answers = semantic(engine)
        finally:
            engine.close()
    assert set(row_widths(base / "index")) == {4 * 384}
    yield root, base / "index", answers
    shutil.rmtree(base, ignore_errors=True)


def test_float16_rows_keep_cosine_at_least_0_99999_of_real_code_vectors(wide_index) -> None:
    _, index, _ = wide_index
    vf = VectorFile.open_read_only(index / VECTORS_FILE)
    try:
        _, _, _, wide = vf.rows()
    finally:
        vf.close()
    assert len(wide) > 500
    narrow = as_stored(wide)
    assert narrow.dtype == np.float32 and not np.array_equal(narrow, wide)
    cos = np.einsum("ij,ij->i", wide, narrow) / (
        np.linalg.norm(wide, axis=1) * np.linalg.norm(narrow, axis=1))
    print(f"\ncosine float16 vs float32 over {len(cos)} chunks: min {cos.min():.8f}, "
          f"mean {cos.mean():.8f}")
    assert cos.min() >= 0.99999
    assert np.array_equal(as_stored(narrow), narrow)   # stored again: unchanged


def same_but_ties(got: Answers, want: Answers, tie: float = 2e-4) -> int:
    """The same hits in the same order, except where two hits' float32 scores are
    within ``tie`` (float16's rounding moves a cosine by ~1e-5); returns how many
    places differ."""
    moved = 0
    for q in QUESTIONS:
        a, b = got[q], want[q]
        assert len(a) == len(b), q
        for k, ((pa, la, _), (pb, lb, sb)) in enumerate(zip(a, b)):
            if (pa, la) != (pb, lb):
                moved += 1
                near = [s for p, ln, s in b if (p, ln) == (pa, la)]
                assert near and abs(near[0] - sb) <= tie, (q, k, a, b)
        for (_, _, sa), (_, _, sb) in zip(a, b):
            assert abs(sa - sb) <= tie, q
    return moved


def test_a_float32_file_is_read_as_it_is_then_rewritten_as_float16_with_the_same_top_ten(
        wide_index, tmp_path: Path) -> None:
    root, wide, want = wide_index
    index = tmp_path / "index"
    shutil.copytree(wide, index)
    before = (index / VECTORS_FILE).stat().st_size
    engine = Engine(root, index)
    try:
        assert semantic(engine) == want            # read as it is: nothing changed yet
        ids = engine._vectors.all_ids()
        summary = engine.index()                    # nothing to embed; compaction narrows
        assert summary.chunks_embedded == 0
        assert set(row_widths(index)) == {2 * 384}
        assert engine._vectors.all_ids() == ids
        moved = same_but_ties(semantic(engine), want)   # the copy in memory was narrowed too
        print(f"\ntop-10 places that moved, {len(QUESTIONS)} questions: {moved}")
    finally:
        engine.close()
    after = (index / VECTORS_FILE).stat().st_size
    print(f"\nvector file: {before / len(ids):.0f} bytes a chunk as float32, "
          f"{after / len(ids):.0f} as float16")
    assert after < 0.6 * before
    engine = Engine(root, index)                   # a restart reads what was scored
    try:
        fresh = semantic(engine)
        assert fresh == semantic(engine)
        same_but_ties(fresh, want)
    finally:
        engine.close()


def test_a_file_holding_both_widths_reads_every_vector(wide_index, tmp_path: Path) -> None:
    root, wide, want = wide_index
    index = tmp_path / "index"
    shutil.copytree(wide, index)
    conn = sqlite3.connect(index / VECTORS_FILE, isolation_level=None)
    try:
        rows = conn.execute("SELECT id, v FROM vec ORDER BY id").fetchall()[::2]
        conn.execute("BEGIN")
        conn.executemany("UPDATE vec SET v = ? WHERE id = ?",
                         [(np.frombuffer(v, "<f4").astype("<f2").tobytes(), cid)
                          for cid, v in rows])
        conn.execute("COMMIT")
    finally:
        conn.close()
    assert set(row_widths(index)) == {2 * 384, 4 * 384}
    engine = Engine(root, index)
    try:
        same_but_ties(semantic(engine), want)
    finally:
        engine.close()


def test_a_new_index_is_written_as_float16_and_answers_what_it_scored(tmp_path: Path) -> None:
    """The copy in memory during the first run holds the float16 values, so the
    answers do not move when the worker restarts."""
    root = copy_stdlib(tmp_path / "tree", "json")
    engine = Engine(root, tmp_path / "index")
    try:
        engine.index()
        during = {q: [(h.path, h.line, h.score) for h in engine.search(
            SearchQuery(q, mode="semantic", limit=10)).hits] for q in QUESTIONS[:3]}
    finally:
        engine.close()
    assert set(row_widths(tmp_path / "index")) == {2 * 384}
    engine = Engine(root, tmp_path / "index")
    try:
        again = {q: [(h.path, h.line, h.score) for h in engine.search(
            SearchQuery(q, mode="semantic", limit=10)).hits] for q in QUESTIONS[:3]}
    finally:
        engine.close()
    assert again == during


def test_a_vector_float16_cannot_hold_is_stored_at_unit_length_never_as_infinity(
        tmp_path: Path) -> None:
    """A snapshot or a team's server may hand over vectors of any length: float16
    overflows past 65504 and keeps few bits below 6e-5, so those are scaled to
    unit length first (cosine, all a stored vector is used for, is unchanged)."""
    rng = np.random.default_rng(5)
    direction = rng.normal(size=(3, 384)).astype(np.float32)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    given = direction * np.array([[1e6], [1e-7], [1.0]], dtype=np.float32)
    vf = VectorFile.open(tmp_path / VECTORS_FILE)
    try:
        vf.put(["huge", "tiny", "unit"], given, [{"path": "a.py", "language": "python"}] * 3)
        _, got = vf.get(["huge", "tiny", "unit"])
    finally:
        vf.close()
    assert np.isfinite(got).all()
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-3)
    assert (np.einsum("ij,ij->i", got, direction) >= 0.99999).all()
