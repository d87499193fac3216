"""``Engine.similar``: the chunks most like the one at path:line, from the stored
vectors, on a real tree (the stdlib's json package, plus a copy of one of its
functions pasted elsewhere, as happens in real code) with the real model and chroma.
"""

from __future__ import annotations

import ast
import os
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from ragexd.engine import Engine
from ragexd.engine.types import EngineError

from tests.harness import copy_stdlib, short_tmp


def _function_source(path: Path, name: str) -> tuple[str, int]:
    """A top-level function's source and first line."""
    text = path.read_text()
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            lines = text.splitlines()[node.lineno - 1:node.end_lineno]
            return "\n".join(lines) + "\n", node.lineno
    raise AssertionError(f"no {name} in {path}")


@pytest.fixture(scope="module")
def indexed() -> Iterator[tuple[Path, Engine, int]]:
    base = short_tmp("rx-sim-")
    root = copy_stdlib(base / "tree", "json")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n\tbare = false\n")
    source, line = _function_source(root / "json" / "decoder.py", "JSONArray")
    # the twin: pasted into another module and renamed, as duplicated code is
    (root / "vendored").mkdir()
    (root / "vendored" / "arrays.py").write_text(
        "import re\n\n\n" + source.replace("def JSONArray(", "def parse_json_array("))
    (root / ".gitignore").write_text("ignored.py\n")
    (root / "ignored.py").write_text("def hidden():\n    return 1\n")
    (root / "vendor" / "lib").mkdir(parents=True)
    (root / "vendor" / "lib" / "dep.go").write_text("package lib\n\nfunc Dep() {}\n")
    (root / "blob.bin").write_bytes(b"\x00\x01\x02" * 100)
    (root / "changing.py").write_text("def soon_changed():\n    return 1\n")
    engine = Engine(root, base / "index")
    engine.index()
    yield root, engine, line
    engine.close()
    shutil.rmtree(base, ignore_errors=True)


def test_a_duplicated_function_is_its_twins_top_hit_both_ways(indexed) -> None:
    root, engine, line = indexed
    there = engine.similar("json/decoder.py", line + 3, 5)
    assert there.mode == "similar"
    top = there.hits[0]
    assert (top.path, top.name) == ("vendored/arrays.py", "parse_json_array"), there.hits
    assert top.score > 0.8 and top.score > there.hits[1].score + 0.05, \
        [(h.name, h.score) for h in there.hits]
    back = engine.similar("vendored/arrays.py", 5, 5)
    assert (back.hits[0].path, back.hits[0].name) == ("json/decoder.py", "JSONArray")


def test_the_chunk_itself_is_never_among_its_neighbours(indexed) -> None:
    _root, engine, line = indexed
    hits = engine.similar("json/decoder.py", line, 1000).hits
    assert len(hits) == engine.status().chunks - 1   # every other chunk, not itself
    assert ("json/decoder.py", "JSONArray") not in [(h.path, h.name) for h in hits]


def test_neighbours_come_from_stored_vectors_without_loading_the_model(indexed) -> None:
    root, engine, line = indexed
    fresh = Engine(root, engine.index_dir)   # a new worker over the same index
    try:
        hits = fresh.similar("json/decoder.py", line, 3).hits
        assert hits[0].name == "parse_json_array"
        assert not fresh.model_loaded
    finally:
        fresh.close()


def test_filters_and_limit_apply(indexed) -> None:
    _root, engine, line = indexed
    hits = engine.similar("json/decoder.py", line, 4, path_globs=("json/**",)).hits
    assert len(hits) == 4 and all(h.path.startswith("json/") for h in hits)


def test_a_line_between_definitions_compares_the_nearest_chunk_and_says_so(indexed) -> None:
    _root, engine, _line = indexed
    got = engine.similar("vendored/arrays.py", 2, 3)   # the blank line after `import re`
    assert got.hits and any("compared the nearest one" in n for n in got.notes), got.notes


@pytest.mark.parametrize("path, line, code, words", [
    ("nowhere.py", 1, "not_found", "there is no file nowhere.py"),
    ("ignored.py", 1, "not_found", "is ignored (by .gitignore, .ignore,"),
    # a default exclude is named, with the line that brings it back
    ("vendor/lib/dep.go", 3, "not_found", "default excludes (vendor/), so it is not "
     "indexed; a `!vendor/` line in .ragexignore brings it back"),
    # git's own folder is not an ignore rule of anyone's
    (".git/config", 1, "not_found", ".git/config is inside .git/, the version control "
     "system's own folder, so it is never indexed"),
    ("blob.bin", 1, "not_found", "binary"),
    ("json", 1, "not_found", "is a directory"),
    ("json/decoder.py", 100_000, "bad_query", "past the end of json/decoder.py"),
])
def test_locations_it_cannot_serve_are_errors_with_a_sentence(indexed, path, line, code,
                                                              words) -> None:
    _root, engine, _line = indexed
    with pytest.raises(EngineError) as info:
        engine.similar(path, line, 5)
    assert info.value.code == code and words in info.value.message, info.value.message


def test_a_chunk_without_a_stored_vector_says_so_with_coverage(indexed) -> None:
    root, engine, _line = indexed
    (root / "late.py").write_text("def arrived_late(x):\n    return x * 2\n")
    engine.index(paths=["late.py"])
    ids = [c.id for c in engine._catalog.chunks_of("late.py")]
    engine._vectors.delete_ids(ids)   # as if its embedding had not run yet
    with pytest.raises(EngineError) as info:
        engine.similar("late.py", 1, 5)
    assert info.value.code == "not_found"
    assert "no stored vector yet" in info.value.message
    assert "chunks embedded so far" in info.value.message


def test_a_never_indexed_project_says_to_index_it(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("def f():\n    return 1\n")
    engine = Engine(tmp_path, tmp_path / ".index")
    try:
        with pytest.raises(EngineError) as info:
            engine.similar("a.py", 1, 5)
        assert info.value.code == "not_found"
        assert "is not indexed yet: run `ragexctl index`" in info.value.message
    finally:
        engine.close()


def test_a_file_changed_since_indexing_asks_for_an_index(indexed) -> None:
    root, engine, _line = indexed
    path = root / "changing.py"
    path.write_text("def soon_changed():\n    return 2  # edited\n")
    os.utime(path, ns=(1, 1))
    with pytest.raises(EngineError) as info:
        engine.similar("changing.py", 1, 5)
    assert info.value.code == "not_found" and info.value.detail["reason"] == "stale"
    assert "ragexctl index" in info.value.message


@pytest.mark.parametrize("mode", ["regex", "symbol"])
def test_an_empty_answer_narrowed_to_an_ignored_path_says_why_it_is_not_searched(
        indexed, mode: str) -> None:
    """`--path vendor/lib/dep.go` (a Go dependency, a default exclude since today)
    answered nothing and said nothing, which reads as "no such code there"."""
    from ragexd.engine import SearchQuery

    _root, engine, _line = indexed

    def notes(path: str) -> list[str]:
        got = engine.search(SearchQuery(text="Dep", mode=mode, limit=5, path_globs=(path,)))
        assert got.hits == []
        return got.notes

    assert ("vendor/lib/dep.go is left out by ragex's default excludes (vendor/), so it is "
            "not searched; a `!vendor/` line in .ragexignore brings it back"
            ) in notes("vendor/lib/dep.go")
    assert any(n.startswith("vendor/lib is left out") for n in notes("vendor/lib/"))
    assert any(n.startswith("ignored.py is ignored (by .gitignore") for n in notes("ignored.py"))
    assert not [n for n in notes("json/decoder.py") if "not searched;" in n or "is ignored" in n]
