"""ragexd/ripgrep.py reads rg's ``path NUL line:text`` lines the way its JSON said them.

The client's direct path and a worker run the same command; the client starts rg
with ``os.posix_spawn`` after a brief ``chdir`` (``alone``), a worker with
``subprocess``.  Both must give the very same matches, texts and notes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ragexd import ripgrep


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "t"
    root.mkdir()
    (root / "a.py").write_text("x = 'needle'\r\ny = 2\nneedle()\n")
    (root / "min.js").write_bytes(("var a='" + "é" * 3000 + "needle';\n").encode())
    (root / "latin1.txt").write_bytes(b"caf\xe9 needle\n")
    with open(os.path.join(os.fsencode(root), b"odd\xff name.py"), "wb") as fh:
        fh.write(b"needle = 1\n")
    (root / "colon:name.py").write_text("needle: int = 1\n")
    (root / "bin.dat").write_bytes(b"ab\0needle\n")
    (root / ".ragexignore").write_text("/skipped.py\n")   # anchored: relative to rg's cwd
    (root / "skipped.py").write_text("needle\n")
    return root


def _both(root: Path, **kw: object) -> tuple:
    alone = ripgrep.search(root, "needle", alone=True, **kw)  # type: ignore[arg-type]
    worker = ripgrep.search(root, "needle", alone=False, **kw)  # type: ignore[arg-type]
    assert alone == worker
    return alone


def test_both_ways_of_starting_rg_read_the_same_matches(tree: Path) -> None:
    matches, notes = _both(tree, limit=100)
    assert notes == []
    got = {(m.path, m.line): m.text for m in matches}
    assert got[("a.py", 1)] == "x = 'needle'"            # no \r left of a CRLF line
    assert got[("a.py", 3)] == "needle()"
    assert got[("colon:name.py", 1)] == "needle: int = 1"
    assert got[("odd\\xff name.py", 1)] == "needle = 1"   # named as the index names it
    assert got[("latin1.txt", 1)] == "caf\ufffd needle"
    # A minified line: rg cuts it at 2000 bytes, the hit shows its first 400 characters.
    assert got[("min.js", 1)] == ("var a='" + "é" * 3000)[:ripgrep.MAX_LINE_CHARS]
    assert "skipped.py" not in {m.path for m in matches}   # the root's anchored rule held
    assert "bin.dat" not in {m.path for m in matches}      # binary: skipped while walking
    assert [m.path for m in matches] == sorted(m.path for m in matches)


def test_the_cap_stops_rg_and_says_so_and_accept_is_asked_once_a_file(tree: Path) -> None:
    asked: list[str] = []

    def accept(path: str) -> bool:
        asked.append(path)
        return path != "colon:name.py"
    matches, notes = ripgrep.search(tree, "needle", limit=3, accept=accept, alone=True)
    assert [(m.path, m.line) for m in matches] == [("a.py", 1), ("a.py", 3), ("latin1.txt", 1)]
    assert notes == ["showing the first 3 matches"]
    assert asked == ["a.py", "colon:name.py", "latin1.txt"]


def test_an_invalid_pattern_is_a_sentence_both_ways(tree: Path) -> None:
    for alone in (True, False):
        with pytest.raises(ripgrep.RipgrepError) as err:
            ripgrep.search(tree, "needle(", limit=5, alone=alone)
        assert err.value.code == "invalid_regex"
        assert err.value.message.startswith("invalid regular expression: ")


def test_a_timeout_kills_rg_and_leaves_the_callers_directory_alone(tree: Path) -> None:
    big = tree / "big"
    big.mkdir()
    for i in range(200):
        (big / f"f{i}.txt").write_text("x" * 200_000 + "\n")
    here = os.getcwd()
    matches, notes = ripgrep.search(tree, r"(\w+\s*)+zzz", limit=5, timeout=0.001,
                                    alone=True)
    assert os.getcwd() == here
    assert notes == ["ripgrep stopped after 0.001 s; results are incomplete"]


def test_the_hit_of_a_match_has_the_wire_shape_of_a_search_hit() -> None:
    from dataclasses import fields

    from ragexd.engine.types import SearchHit

    hit = ripgrep.RgMatch("src/x.go", 7, "func main() {").hit()
    assert set(hit) == {f.name for f in fields(SearchHit)}
    assert hit["language"] == "go" and hit["kind"] == "match" and hit["start_line"] == 7
    assert SearchHit(**ripgrep.RgMatch("a.py", 1, "x").hit(language="python",
                                                             parent="f")).parent == "f"
