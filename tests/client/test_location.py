"""``PATH:LINE`` as people type it, and as the wire carries it (relative to the root)."""

from __future__ import annotations

import os

import pytest

from ragexctl.location import parse_location, project_relative
from ragexd.protocol import ErrorCode, RagexError


@pytest.mark.parametrize("text, want", [
    ("src/app.py:42", ("src/app.py", 42)),
    ("src/app.py:42:def main():", ("src/app.py", 42)),   # pasted from grep output
    ("odd:name.py:7", ("odd:name.py", 7)),
    ("src/app.py:40-57", ("src/app.py", 40)),          # a ranked hit's span, pasted
])
def test_locations_people_type_are_understood(text, want):
    assert parse_location(text) == want


@pytest.mark.parametrize("name", ["a:12:b.py", "v1:2:3.py", "12:34.py", "a:1-2:b.py"])
def test_a_file_whose_name_holds_colon_digits_is_found_from_its_grep_line(tmp_path, name):
    # grep-like output prints `a:12:b.py:1:def f():`; pasted back, the line must
    # name that file (was: PATH 'a', line 12, "no such file: a")
    (tmp_path / name).write_text("def f():\n    pass\n")

    def on_disk(path: str) -> bool:
        return os.path.lexists(tmp_path / path)

    assert parse_location(f"{name}:1:def f():", on_disk) == (name, 1)
    assert parse_location(f"{name}:2", on_disk) == (name, 2)
    # with no such file the first split stands, and a plain path is unchanged
    assert parse_location("a:12:b.py:1")[0] == "a"
    assert parse_location("src/app.py:42", on_disk) == ("src/app.py", 42)


@pytest.mark.parametrize("text", ["src/app.py", "src/app.py:", "src/app.py:x", ":12",
                                  "src/app.py:0", "src/app.py:-3", "src/app.py:١٢",
                                  "src/app.py:4-", "src/app.py:-4-9", "src/app.py:0-9"])
def test_malformed_locations_are_a_sentence_not_a_traceback(text):
    with pytest.raises(RagexError) as info:
        parse_location(text)
    assert info.value.code is ErrorCode.BAD_QUERY
    assert "PATH:LINE" in info.value.message or "start at 1" in info.value.message


def test_paths_become_relative_to_the_root_and_outside_ones_are_refused(tmp_path):
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    assert project_relative("app.py", str(root), str(root / "src")) == "src/app.py"
    assert project_relative(str(root / "src" / "app.py"), str(root), "/") == "src/app.py"
    for outside in ("../x.py", "/etc/passwd", str(root)):
        with pytest.raises(RagexError) as info:
            project_relative(outside, str(root), str(root))
        assert info.value.code is ErrorCode.PATH_OUTSIDE_PROJECT
    os.symlink("/etc", root / "etc")   # a symlink out of the project is outside too
    with pytest.raises(RagexError):
        project_relative("etc/passwd", str(root), str(root))


@pytest.mark.parametrize("path", ["src/a\0.py", "src/\ud800.py"])
def test_a_path_no_file_can_have_is_the_wires_sentence_about_path(tmp_path, path):
    # an agent's JSON can carry a NUL or a lone surrogate; realpath would raise ValueError
    with pytest.raises(RagexError) as info:
        project_relative(path, str(tmp_path), str(tmp_path))
    assert info.value.code is ErrorCode.BAD_REQUEST and info.value.detail["field"] == "path"
