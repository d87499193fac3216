"""Jupyter notebooks (``.ipynb``): the code and prose of their cells, on the file's lines.

A notebook is JSON: each cell's ``source`` is a list of strings, one per line of
the cell, which nbformat (and every editor that follows it) writes one to a
line of the file.  Indexed as JSON text, a notebook had no symbols, and its
outputs (tracebacks, tables, base64 images of hundreds of kilobytes on one
line) were read into chunks like code.  Here each code cell is chunked by its
kernel's language (Python for almost all) and each markdown cell as markdown,
and every chunk's lines are the lines of the ``.ipynb`` where its source
strings are written: ``path:line`` from a hit opens the file at the right
place, and ripgrep, which reads the JSON, numbers the same lines.  Outputs are
never decoded: only the ``source`` strings are.

The positions come from tree-sitter's JSON grammar (Python's ``json`` gives
none); a notebook that is no valid JSON, or not nbformat 4's shape, gets no
cells and is chunked as text by the caller.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from ..filetypes import normalise_language
from . import languages as L

log = logging.getLogger("ragex.engine.notebooks")

#: The language of a notebook's file (``filetypes.EXTENSIONS``).
NOTEBOOK = "jupyter"


@dataclass
class Cell:
    kind: str                   # "code" | "markdown"
    language: str               # what its text is chunked as
    text: str = ""              # the cell's source, joined
    #: the 1-based line of the .ipynb on which each line of ``text`` is written
    lines: list[int] = field(default_factory=list)


def cells(text: str) -> list[Cell] | None:
    """The code and markdown cells of a notebook, in order, or None when ``text``
    is not a notebook this module can read (the caller chunks it as text)."""
    parser = L.grammar_parser("json")
    if parser is None:
        return None
    src = text.encode("utf-8", "surrogatepass")
    try:
        root = parser.parse(src).root_node
    except Exception:  # noqa: BLE001 - a parser failure is "not readable", never a crash
        log.debug("cannot parse a notebook", exc_info=True)
        return None
    top = _pairs(next((c for c in root.named_children if c.type == "object"), None), src)
    if "cells" not in top or top["cells"].type != "array":
        return None
    language = _kernel_language(top.get("metadata"), src)
    out: list[Cell] = []
    for node in top["cells"].named_children:
        cell = _pairs(node, src)
        kind = _string(cell.get("cell_type"), src)
        if kind not in ("code", "markdown") or "source" not in cell:
            continue   # raw cells, and what no nbformat writes
        made = Cell(kind, language if kind == "code" else "markdown")
        source = cell["source"]
        pieces = source.named_children if source.type == "array" else [source]
        at_start, texts = True, []
        for piece in pieces:
            value = _string(piece, src)
            if value is None:
                continue
            line = piece.start_point[0] + 1
            parts = value.split("\n")
            for i, part in enumerate(parts):
                last = i == len(parts) - 1
                if at_start and (part or not last):
                    made.lines.append(line)
                    at_start = False
                if not last:
                    at_start = True
            texts.append(value)
        made.text = "".join(texts)
        if made.text.strip():
            out.append(made)
    return out


def code_text(text: str) -> str:
    """The lines of a notebook a hit can print: those its cells' sources are written
    on, as they stand in the file, for the checks that judge a file by its text
    (``discovery.looks_generated``).  A base64 image in an output is one line of
    500,000 characters that no hit points at, and must not make a notebook
    "generated"; a notebook written on one line still is, since every hit would
    print all of it."""
    found = cells(text)
    if found is None:
        return text
    lines = text.split("\n")
    held = sorted({n for c in found for n in c.lines})
    return "\n".join(lines[n - 1] for n in held if n <= len(lines))


def _pairs(node: Any, src: bytes) -> dict[str, Any]:
    """A JSON object's members: key -> value node (nothing for anything else)."""
    out: dict[str, Any] = {}
    if node is None or node.type != "object":
        return out
    for pair in node.named_children:
        if pair.type != "pair":
            continue
        key = _string(pair.child_by_field_name("key"), src)
        value = pair.child_by_field_name("value")
        if key is not None and value is not None:
            out[key] = value
    return out


def _string(node: Any, src: bytes) -> str | None:
    if node is None or node.type != "string":
        return None
    try:
        value = json.loads(src[node.start_byte:node.end_byte].decode("utf-8", "surrogatepass"))
    except ValueError:
        return None
    return value if isinstance(value, str) else None


def _kernel_language(metadata: Any, src: bytes) -> str:
    """The language of the code cells: the kernel's (``kernelspec.language``, else
    ``language_info.name``), by the engine's name for it; Python when unsaid."""
    meta = _pairs(metadata, src)
    for holder, key in (("kernelspec", "language"), ("language_info", "name")):
        name = _string(_pairs(meta.get(holder), src).get(key), src)
        if name:
            language = normalise_language(name)
            return language if language in L.SPECS else "text"
    return "python"
