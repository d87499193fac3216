"""``PATH:LINE``: a place in a project, as a person types it and as the wire carries it.

People copy locations from grep-style output (``shop/upload.py:4:def ...``), so a
location is a path relative to the current directory (or absolute) and a line;
the wire carries it relative to the project root (``SimilarArgs``), the one
spelling every runtime shares.  Shared by the command line and the MCP server.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ragexd.protocol import ErrorCode, RagexError
from ragexd.protocol.args import check_text


def parse_location(text: str, exists: Callable[[str], bool] = lambda path: False
                   ) -> tuple[str, int]:
    """``src/app.py:42`` → (``src/app.py``, 42); a third field (``:42:def f``, pasted
    from grep output) is allowed and ignored, and so is a span's end: a ranked hit
    on a terminal reads ``src/app.py:40-57``, and people paste that too (its first
    line is the chunk's).  A sentence for anything else.

    A path may hold ':' and digits (``v1:2:3.py``), so ``v1:2:3.py:7`` splits more
    than one way: the first split whose path ``exists`` wins, else the first split
    (the line is the first all-digits field after the path): grep-like output
    names such a file, and pasting that line back must find it."""
    example = "give PATH:LINE, e.g. src/app.py:42"
    parts = text.split(":")
    splits: list[tuple[str, int]] = []
    for i in range(1, len(parts)):
        field = parts[i]   # not rewritten in place: a later split's path joins it
        first, dash, last = field.partition("-")
        if dash and first.isdigit() and last.isdigit() and field.isascii():
            field = first
        if field.isdigit() and field.isascii():
            path = ":".join(parts[:i])
            if not path.strip():
                break
            splits.append((path, int(field)))
    if not splits:
        raise RagexError(ErrorCode.BAD_QUERY, f"{text!r} is not a location: {example}",
                         field="location")
    path, line = next((s for s in splits if exists(s[0])), splits[0])
    if line < 1:
        raise RagexError(ErrorCode.BAD_QUERY, f"line numbers start at 1, not {line}: "
                         f"{example}", field="line")
    return path, line


def project_relative(path: str, root: str, cwd: str) -> str:
    """``path`` (relative to ``cwd``, or absolute) as a '/'-separated path relative
    to the project ``root``; PATH_OUTSIDE_PROJECT when it is not inside it.  A path
    no file can have (a NUL byte: an agent's JSON can hold one) is the wire's
    sentence about 'path', not a ValueError from the file system."""
    check_text("path", path)
    full = os.path.realpath(os.path.join(cwd, os.path.expanduser(path)))
    base = os.path.realpath(root)
    if full == base or not full.startswith(base.rstrip(os.sep) + os.sep):
        raise RagexError(ErrorCode.PATH_OUTSIDE_PROJECT,
                         f"{path} is not a file inside the project {base}"
                         + ("" if full != base else ": give a file and a line, PATH:LINE"),
                         path=path)
    return os.path.relpath(full, base).replace(os.sep, "/")
