"""What a search reads and keeps: each file once while it stays the same, a saved
file afresh, a file that cannot be read not again until it changes, and caches
that stay bounded for a worker's life."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragexd.engine import Engine, SearchQuery
from ragexd.engine.filelines import FileLines
from ragexd.engine.lru import LRU

from tests.harness import write

FILES = {
    "pkg/ctx.py": '''\
        import typing as t


        @t.overload
        def current_context(silent: t.Literal[False] = False) -> "Context": ...


        @t.overload
        def current_context(silent: bool = ...) -> "Context | None": ...


        def current_context(silent=False):
            """Return the current click context, or None when silent."""
            try:
                return _stack[-1]
            except IndexError:
                if not silent:
                    raise RuntimeError("there is no active click context")
            return None
        ''',
    "pkg/stack.py": '''\
        _stack = []


        def push_context(ctx):
            """Push a new context onto the stack of current contexts."""
            _stack.append(ctx)


        def pop_context():
            """Remove the top context from the stack."""
            _stack.pop()
        ''',
}


@pytest.fixture()
def engine(tmp_path: Path) -> Iterator[Engine]:
    root = tmp_path / "tree"
    for rel, text in FILES.items():
        write(root / rel, text)
    eng = Engine(root, tmp_path / "index")
    try:
        eng.index()
        yield eng
    finally:
        eng.close()


def reads(engine: Engine) -> int:
    assert engine._searcher is not None
    return engine._searcher.files.reads


QUESTION = SearchQuery("return the current context", mode="hybrid", limit=6)


def test_a_query_reads_each_file_once_and_the_next_query_none(engine: Engine) -> None:
    before = reads(engine)
    hits = engine.search(QUESTION).hits
    # the declarations were judged while ranking and the snippets taken after,
    # from the same read of each file
    assert {h.path for h in hits} == set(FILES)
    assert reads(engine) - before == len(FILES)
    assert engine.search(QUESTION).hits == hits
    assert reads(engine) - before == len(FILES)


def test_a_saved_file_is_read_afresh_at_the_next_query(engine: Engine) -> None:
    engine.search(QUESTION)
    path = engine.root / "pkg" / "stack.py"
    text = path.read_text().replace("Remove the top context", "Drop the newest context")
    path.write_text(text)
    hits = engine.search(QUESTION).hits
    stack = [h for h in hits if h.path == "pkg/stack.py" and h.name == "pop_context"]
    assert stack and "Drop the newest context" in stack[0].text and stack[0].stale


def test_a_file_that_cannot_be_read_is_not_tried_again_until_it_changes(
        engine: Engine) -> None:
    path = engine.root / "pkg" / "stack.py"
    path.write_bytes(b"\x00\x01binary now\x00" * 100)
    files = FileLines(engine.root)
    assert files.get("pkg/stack.py").lines is None
    assert files.get("pkg/stack.py").lines is None
    assert files.reads == 1
    path.write_text("def pop_context():\n    return 1\n")
    os.utime(path, ns=(1, 1))   # the same mtime as nothing else: the change is seen anyway
    assert files.get("pkg/stack.py").lines == ["def pop_context():", "    return 1"]
    assert files.reads == 2


def test_a_vanished_file_is_not_read_and_costs_nothing_kept(engine: Engine) -> None:
    files = FileLines(engine.root)
    (engine.root / "pkg" / "stack.py").unlink()
    assert files.get("pkg/stack.py").lines is None
    assert files.reads == 0 and len(files._cache) == 0


def test_the_declaration_answers_kept_are_bounded(engine: Engine) -> None:
    searcher = engine._searcher
    assert searcher is not None
    searcher._declarations = LRU(3)
    engine.search(QUESTION)
    # five short function chunks were judged; the three most recent are kept
    assert len(searcher._declarations) == 3


def test_lines_kept_between_queries_are_bounded_by_their_size(tmp_path: Path) -> None:
    for name in "abcd":
        (tmp_path / f"{name}.py").write_text("x = 1\n" * 100)   # 600 bytes, 100 lines
    files = FileLines(tmp_path, max_bytes=3 * (600 + 64 * 100 + 1))
    for name in "abcd":
        files.get(f"{name}.py")
    assert len(files._cache) == 3
    files.get("d.py")   # the most recent stays ...
    files.get("a.py")   # ... the least recent was dropped: read again
    assert files.reads == 5


def test_an_lru_drops_the_least_recently_used_first() -> None:
    lru: LRU[str, int] = LRU(10, cost=lambda v: v)
    lru.put("a", 4)
    lru.put("b", 4)
    assert lru.get("a") == 4        # "a" used: "b" is now the oldest
    lru.put("c", 4)
    assert lru.get("b") is None and lru.get("a") == 4 and lru.get("c") == 4
    lru.put("huge", 11)             # more than the whole budget: not kept, nothing dropped
    assert lru.get("huge") is None and lru.total_cost == 8
    lru.clear()
    assert len(lru) == 0 and lru.total_cost == 0 and lru.get("a") is None
