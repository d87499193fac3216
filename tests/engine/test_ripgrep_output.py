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
    # A minified line: rg cuts it at 2000 bytes, the hit shows its first 400
    # characters, the last of them "…" to say it is cut; a short line has none.
    assert got[("min.js", 1)] == ("var a='" + "é" * 3000)[:ripgrep.MAX_LINE_CHARS - 1] + "…"
    assert len(got[("min.js", 1)]) == ripgrep.MAX_LINE_CHARS
    assert not got[("a.py", 3)].endswith("…")
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
    assert asked == ["a.py", "colon:name.py", "latin1.txt", "min.js"]   # the one past the cap
    one, notes = ripgrep.search(tree, "needle", limit=1, alone=True)
    assert len(one) == 1 and notes == ["showing the first match"]   # not "first 1 matches"


def test_exactly_limit_matches_carry_no_cap_note(tree: Path) -> None:
    for alone in (True, False):
        matches, notes = ripgrep.search(tree, "needle: int", limit=1, alone=alone)
        assert [m.path for m in matches] == ["colon:name.py"] and notes == []


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


def test_a_name_with_a_newline_is_named_exactly_by_a_worker_and_handed_over_by_the_client(
        tmp_path: Path) -> None:
    root = tmp_path / "t"
    (root / "secret").mkdir(parents=True)
    (root / "secret" / "x\ntoken.py").write_text("needle=hunter2\n")
    (root / "a\n..").mkdir()
    (root / "a\n.." / "notes.txt").write_text("needle\n")
    asked: list[str] = []

    def accept(path: str) -> bool:
        asked.append(path)
        return True
    matches, notes = ripgrep.search(root, "needle", limit=10, accept=accept, alone=False)
    assert sorted(m.path for m in matches) == ["a\n../notes.txt", "secret/x\ntoken.py"]
    assert sorted(asked) == ["a\n../notes.txt", "secret/x\ntoken.py"]
    with pytest.raises(ripgrep.Ambiguous):
        ripgrep.search(root, "needle", limit=10, alone=True)


def test_a_named_binary_file_gives_its_match_before_the_nul_and_a_note(tmp_path: Path) -> None:
    root = tmp_path / "t"
    (root / "src").mkdir(parents=True)
    (root / "src" / "bin.dat").write_bytes(b"needle before\0after needle\n")
    matches, notes = ripgrep.search(root, "needle", limit=10, globs=["src/bin.dat"])
    assert [(m.path, m.line) for m in matches] == [("src/bin.dat", 1)]
    assert notes == ["src/bin.dat is binary: searched up to its first NUL byte (offset 13)"]
    with pytest.raises(ripgrep.Ambiguous):   # the client's format only says "binary"
        ripgrep.search(root, "needle", limit=10, globs=["src/bin.dat"], alone=True)


def test_accept_gets_the_real_name_of_a_file_that_is_not_utf8(tree: Path) -> None:
    for alone in (True, False):
        asked: list[str] = []

        def accept(path: str) -> bool:
            asked.append(path)
            return os.path.exists(os.path.join(tree, path))
        matches, _ = ripgrep.search(tree, "needle = 1", limit=10, accept=accept, alone=alone)
        assert asked == [os.fsdecode(b"odd\xff name.py")]
        assert [m.path for m in matches] == ["odd\\xff name.py"]


_CLOSED_STDIO = """
import os, sys
from ragexd import ripgrep
fd = int(sys.argv[2])
root = sys.argv[1]
os.close(fd)
matches, notes = ripgrep.search(root, "needle", limit=10, alone=sys.argv[3] == "alone")
os.write(int(sys.argv[4]), repr(sorted(m.path for m in matches)).encode())
"""


@pytest.mark.parametrize("alone", ["alone", "worker"])
@pytest.mark.parametrize("closed", [0, 1, 2])
def test_rg_runs_right_when_the_caller_has_a_standard_stream_closed(
        tree: Path, closed: int, alone: str) -> None:
    import subprocess
    import sys

    (tree / "build").mkdir()
    (tree / "build" / "out.py").write_text("needle\n")   # "build/" is a default ignore
    r, w = os.pipe()
    proc = subprocess.Popen([sys.executable, "-c", _CLOSED_STDIO, str(tree), str(closed), alone,
                             str(w)], pass_fds=(w,), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.close(w)
    try:
        _, err = proc.communicate(timeout=8)   # rg's own timeout is 10 s: no hang
    finally:
        proc.kill()
    with os.fdopen(r, "rb") as fh:
        got = fh.read().decode()
    assert proc.returncode == 0, err
    assert "build/out.py" not in got and "a.py" in got, got


def test_a_caller_with_threads_never_changes_its_directory_even_when_it_says_alone(
        tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``alone`` starts rg after a brief chdir, which another thread would see:
    with threads running, rg is started the worker's way (no chdir)."""
    import threading

    def no_chdir(path: object) -> None:
        raise AssertionError("chdir while another thread runs")
    monkeypatch.setattr(os, "chdir", no_chdir)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        with_thread = ripgrep.search(tree, "needle", limit=100, alone=True)
    finally:
        stop.set()
        other.join()
    monkeypatch.undo()
    assert with_thread == ripgrep.search(tree, "needle", limit=100, alone=True)
