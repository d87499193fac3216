"""Jupyter notebooks: their cells' code and prose, on the lines of the .ipynb.

A notebook was JSON text to the index: no symbols, its outputs read into chunks
like code, and one with an image output (a base64 line of hundreds of kilobytes)
left out whole as "minified or generated".
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from ragexd.engine import Engine, SearchQuery
from ragexd.engine.chunking import chunk_file

OUTPUT_TOKEN = "secret_output_token"


def notebook(image_bytes: int = 300_000) -> str:
    """A notebook as nbformat writes it (sorted keys, indent 1): a markdown cell, a
    code cell with an image output and a source list, a code cell whose source is
    one string, a raw cell."""
    image = base64.b64encode(os.urandom(image_bytes)).decode()
    nb = {"cells": [
        {"cell_type": "markdown", "metadata": {},
         "source": ["# Loading data\n", "\n", "We read the quarterly sales table."]},
        {"cell_type": "code", "execution_count": 1, "metadata": {},
         "outputs": [{"output_type": "display_data", "metadata": {},
                      "data": {"image/png": image, "text/plain": ["<Figure>"]}}],
         "source": ["import pandas as pd\n", "\n", "def load_sales(path):\n",
                    "    \"\"\"Read the sales CSV.\"\"\"\n", "    return pd.read_csv(path)\n",
                    "\n", "df = load_sales('s.csv')"]},
        {"cell_type": "code", "execution_count": 2, "metadata": {},
         "outputs": [{"output_type": "stream", "name": "stdout",
                      "text": [f"{OUTPUT_TOKEN}\n"]}],
         "source": "class SalesModel:\n    def fit(self, frame):\n        return self\n"},
        {"cell_type": "raw", "metadata": {}, "source": ["raw_cell_text"]}],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                    "name": "python3"}},
        "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def test_code_cells_are_python_on_the_lines_of_the_ipynb_and_outputs_are_never_chunks() -> None:
    text = notebook()
    lines = text.split("\n")
    chunks = chunk_file("sales.ipynb", text, "jupyter")
    defs = {(c.kind, c.name, c.parent): c for c in chunks if c.kind not in ("block", "window")}
    assert set(defs) == {("function", "load_sales", ""), ("class", "SalesModel", ""),
                         ("method", "fit", "SalesModel")}
    # path:line opens the .ipynb where the definition's source string is written
    assert lines[defs["function", "load_sales", ""].line - 1].strip() == \
        '"def load_sales(path):\\n",'
    assert "def load_sales(path):\n    \"\"\"Read the sales CSV" in \
        defs["function", "load_sales", ""].code
    # a source given as one string is on one line of the file
    assert '"class SalesModel:' in lines[defs["class", "SalesModel", ""].line - 1]
    assert any("quarterly sales table" in c.code for c in chunks)   # markdown: prose
    for c in chunks:
        assert c.language == "jupyter"
        assert OUTPUT_TOKEN not in c.code and "image/png" not in c.code, c
        assert "raw_cell_text" not in c.code and len(c.code) < 1000, c


def test_a_notebook_with_an_image_output_is_indexed_and_found_where_regex_finds_it(
        tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "sales.ipynb").write_text(notebook())
    (root / "broken.ipynb").write_text('{"cells": [ {"cell_type": "code", "source": ["def x(')
    engine = Engine(root, tmp_path / "idx")
    try:
        summary = engine.index()
        assert [s for s in summary.skipped if s.path == "sales.ipynb"] == [], summary.skipped
        got = engine.search(SearchQuery("load_sales", mode="symbol")).hits
        grep = engine.search(SearchQuery(r"def load_sales", mode="regex")).hits
        assert [(h.path, h.line) for h in got] == [(h.path, h.line) for h in grep] != []
        assert engine.search(SearchQuery("SalesModel", mode="symbol")).hits[0].kind == "class"
        # a notebook that is no JSON is text, as before
        assert engine._catalog.file("broken.ipynb") is not None
    finally:
        engine.close()


def test_a_notebook_written_on_one_line_is_still_generated_since_a_hit_would_print_it_all(
        tmp_path: Path) -> None:
    """Only the lines a hit can print (those holding the cells' sources) decide
    whether a notebook looks generated: an indented one with a 400 kB image output
    is code, the same notebook minified to one line is not."""
    from ragexd.engine import discovery, notebooks

    indented = notebook()
    assert discovery.looks_generated(indented) is not None           # the raw JSON is
    assert discovery.looks_generated(notebooks.code_text(indented)) is None
    one_line = indented.replace("\n", "")
    assert discovery.looks_generated(notebooks.code_text(one_line)) is not None
