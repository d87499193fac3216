"""Rendering: grep-like lines, colours, JSON Lines, progress, tables (pure functions)."""

from __future__ import annotations

import io
import json

from ragexctl import render
from ragexd.protocol import Progress

HIT = {"path": "shop/upload.py", "line": 4, "end_line": 12, "kind": "function",
       "name": "retry_upload", "score": 0.83,
       "text": "def retry_upload(client, path, attempts=5):\n    \"\"\"Upload...\"\"\"\n",
       "language": "python", "parent": "", "stale": False}


def test_plain_line_is_path_line_first_line_of_snippet():
    out = render.render_hits([HIT], "/r", "/r", color=False)
    assert out == "shop/upload.py:4:def retry_upload(client, path, attempts=5):\n"


def test_color_matches_ripgrep_magenta_path_green_line():
    out = render.render_hits([HIT], "/r", "/r", color=True)
    assert out == ("\x1b[35mshop/upload.py\x1b[0m:\x1b[32m4\x1b[0m:"
                   "def retry_upload(client, path, attempts=5):\n")


def test_paths_relative_to_cwd_inside_project_else_to_root():
    assert render.render_hits([HIT], "/r", "/r/shop", color=False).startswith("upload.py:4:")
    other = dict(HIT, path="docs/x.md")
    assert render.render_hits([other], "/r", "/r/shop", color=False).startswith("../docs/x.md:")
    # cwd outside the project (--project elsewhere): relative to the root.
    assert render.render_hits([HIT], "/r", "/elsewhere", color=False).startswith("shop/upload.py:")
    # A sibling directory sharing a prefix is not "inside".
    assert render.path_base("/r", "/rx") is None


def test_empty_snippet_falls_back_to_kind_and_name_and_crlf_is_stripped():
    hit = dict(HIT, text="\n")
    assert render.render_hits([hit], "/r", "/r", color=False) == \
        "shop/upload.py:4:function retry_upload\n"
    hit = dict(HIT, text="x = 1\r\ny = 2\r\n")
    assert render.render_hits([hit], "/r", "/r", color=False) == "shop/upload.py:4:x = 1\n"


def test_json_lines_are_the_hit_wire_dicts_one_per_line():
    out = render.render_hits_json([HIT, dict(HIT, line=9)])
    lines = out.splitlines()
    assert len(lines) == 2
    assert json.loads(lines[0]) == HIT
    assert json.loads(lines[1])["line"] == 9
    assert render.render_hits_json([]) == ""


def test_use_color_auto_only_on_a_tty_and_never_with_no_color(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert render.use_color("auto", Tty()) is True
    assert render.use_color("auto", io.StringIO()) is False
    assert render.use_color("always", io.StringIO()) is True
    assert render.use_color("never", Tty()) is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert render.use_color("auto", Tty()) is False


def test_errors_plain_and_json():
    assert render.format_error("busy", "too busy", as_json=False) == "ragexctl: too busy\n"
    data = json.loads(render.format_error("busy", "too busy", as_json=True, detail={"q": 3}))
    assert data == {"error": {"code": "busy", "message": "too busy", "detail": {"q": 3}}}


def test_progress_on_a_tty_redraws_one_line_and_clears_it():
    out = io.StringIO()
    pr = render.ProgressRenderer(out, tty=True)
    pr.update(Progress(id="x", phase="embedding", files_done=5, files_total=10,
                       chunks_embedded=42, eta_seconds=75))
    pr.update(Progress(id="x", phase="embedding", files_done=10, files_total=10,
                       chunks_embedded=80, eta_seconds=0))
    text = out.getvalue()
    assert text.startswith("\rragexctl: embedding [##########----------] 5/10 files, "
                           "42 chunks, ETA 1m15s")
    assert "\n" not in text and text.count("\r") == 2
    pr.clear()
    assert out.getvalue().endswith("\r")


def test_an_embedding_bar_follows_the_chunks_not_the_files_all_catalogued_already():
    """Every file is catalogued before the embedding: a bar of files stood full for
    the minutes the vectors took, beside an ETA of minutes."""
    line = render.ProgressRenderer.describe(
        Progress(id="x", phase="embedding", files_done=47, files_total=47,
                 chunks_embedded=128, chunks_total=512, eta_seconds=31), bar_width=20)
    assert line == "embedding [#####---------------] 47/47 files, 128/512 chunks, ETA 31s"
    # an older worker does not count them: its files, as before
    line = render.ProgressRenderer.describe(
        Progress(id="x", phase="embedding", files_done=47, files_total=47,
                 chunks_embedded=128), bar_width=20)
    assert line == "embedding [####################] 47/47 files, 128 chunks"


def test_progress_off_a_tty_prints_plain_lines_on_phase_change_only():
    out = io.StringIO()
    pr = render.ProgressRenderer(out, tty=False, interval=3600)
    for i in range(5):
        pr.update(Progress(id="x", phase="embedding", files_done=i, files_total=5))
    pr.update(Progress(id="x", phase="done", files_done=5, files_total=5))
    lines = out.getvalue().splitlines()
    assert lines == ["ragexctl: embedding 0/5 files", "ragexctl: done 5/5 files"]
    assert "\r" not in out.getvalue()


def test_summary_line():
    s = {"files_indexed": 3, "files_unchanged": 2, "files_removed": 1, "chunks_total": 17,
         "seconds": 1.234, "skipped": [{"path": "a.bin", "reason": "binary"}]}
    assert render.format_summary(s) == ("indexed 3 files (2 unchanged, 1 removed), 17 chunks "
                                        "in 1.2 s; 1 files skipped")


def test_summary_line_says_how_many_vectors_came_from_the_shared_store():
    s = {"files_indexed": 3, "chunks_total": 17, "seconds": 1.0, "chunks_shared": 16,
         "chunks_embedded": 1}
    assert render.format_summary(s).endswith("17 chunks in 1.0 s; 16 vectors from the shared "
                                             "store, 1 embedded here")


def test_summary_line_says_how_many_moved_chunks_kept_their_vectors():
    s = {"files_indexed": 1, "chunks_total": 83, "seconds": 2.0, "chunks_embedded": 3,
         "chunks_reused": 35}
    assert render.format_summary(s).endswith("83 chunks in 2.0 s; 3 chunks embedded, 35 moved "
                                             "ones kept their vectors")


def test_status_names_each_workers_shared_store_and_its_problem():
    worker = {"root": "/src/app", "state": "ready", "index": {"store": {
        "url": "http://chroma:8000", "collection": "ragex-abc-123", "role": "reader",
        "problem": "the shared vector store at http://chroma:8000 cannot be reached"}}}
    text = render.render_status({"daemon": {}, "workers": [worker]})
    assert ("shared store of /src/app: http://chroma:8000 ragex-abc-123 (reader): the shared "
            "vector store at http://chroma:8000 cannot be reached") in text


def test_status_names_the_embedding_runtime_and_a_bulk_child_while_it_runs():
    worker = {"root": "/src/app", "state": "indexing", "index": {"embedder": {
        "runtime": "onnxruntime", "precision": "fp32",
        "bulk": {"runtime": "openvino", "precision": "bf16", "pid": 4242}}}}
    text = render.render_status({"daemon": {}, "workers": [worker]})
    assert ("embedder of /src/app: onnxruntime fp32; the index's backlog on openvino bf16 "
            "in child pid 4242") in text
    worker["index"]["embedder"].pop("bulk")
    text = render.render_status({"daemon": {}, "workers": [worker]})
    assert "embedder of /src/app: onnxruntime fp32\n" in text and "child" not in text


def test_durations_and_sizes():
    assert render.format_duration(5) == "5s"
    assert render.format_duration(125) == "2m05s"
    assert render.format_duration(3 * 3600 + 120) == "3h02m"
    assert render.format_duration(None) == "-"
    assert render.format_bytes(None) == "-"
    assert render.format_bytes(3 * 1024**2) == "3 MiB"


def test_status_table_has_every_column_and_the_last_error():
    result = {
        "daemon": {"pid": 10, "version": "0.1.0", "uptime_s": 65, "rss": 30 * 1024**2,
                   "cpu_percent": 0.5, "socket": "/run/x.sock",
                   "runtime": {"runtime": "process", "reason": "configured"}},
        "workers": [
            {"project_id": "a" * 16, "root": "/src/shop", "state": "ready", "runtime": "process",
             "ident": "123", "pid": 123, "rss": 400 * 1024**2, "uptime_s": 3600, "idle_s": 30,
             "index_size": 2 * 1024**2, "last_error": None,
             "index": {"files": 3, "chunks": 9}},
            {"project_id": "b" * 16, "root": "/src/big", "state": "memory-limit",
             "runtime": "process", "ident": "", "pid": None, "rss": None, "uptime_s": None,
             "idle_s": None, "index_size": 0,
             "last_error": "stopped: memory limit 2 GiB exceeded", "index": None},
        ]}
    text = render.render_status(result)
    assert "ragexd 0.1.0: running, pid 10, up 1m05s, RSS 30 MiB" in text
    assert "runtime: process (configured)" in text
    header = [ln for ln in text.splitlines() if ln.startswith("PROJECT")][0]
    for col in ("STATE", "RUNTIME", "PID/CONTAINER", "RSS", "UPTIME", "IDLE", "INDEX",
                "LAST ERROR"):
        assert col in header
    row = [ln for ln in text.splitlines() if ln.startswith("/src/shop")][0]
    assert "ready" in row and "123" in row and "400 MiB" in row and "1h00m" in row
    assert "2 MiB (3 files, 9 chunks)" in row
    assert "stopped: memory limit 2 GiB exceeded" in text
    assert "no workers" in render.render_status({"daemon": {}, "workers": []})


def test_projects_table():
    text = render.render_projects([{"id": "c" * 16, "root": "/src/shop", "size_bytes": 2048,
                                    "last_used": 1000.0, "running": True}], now=1060.0)
    assert "c" * 16 in text and "/src/shop" in text and "2 KiB" in text
    assert "1m00s ago" in text and "running" in text
    assert render.render_projects([]) == "no indexed projects\n"


def test_a_decorated_definition_shows_its_def_line_with_that_line_number() -> None:
    """`@property` says nothing about a hit: the line shown is the one naming it."""
    from ragexctl.render import format_hit

    hit = {"path": "a.py", "line": 10, "kind": "method", "name": "size",
           "text": "    @property\n    @cached\n    def size(self):\n        return 1"}
    assert format_hit(hit, "a.py", color=False) == "a.py:12:    def size(self):"
    match = {"path": "a.py", "line": 3, "kind": "match", "name": "", "text": "@app.route('/')"}
    assert format_hit(match, "a.py", color=False) == "a.py:3:@app.route('/')"


def test_a_window_that_starts_blank_shows_its_first_line_of_text_at_that_lines_number(
        tmp_path) -> None:
    """A Markdown window starting at a blank line printed `README.md:31:window
    Compatibility`: words that are not on line 31, nor anywhere in the file."""
    window = {"path": "README.md", "line": 31, "end_line": 70, "kind": "window",
              "name": "Compatibility", "text": "\n  \nThe [Rich API] makes it easy\n\nmore"}
    assert render.format_hit(window, "README.md", color=False) == \
        "README.md:33:The [Rich API] makes it easy"
    # context lines are centred on that same line
    (tmp_path / "README.md").write_text("".join(f"line {n}\n" for n in range(1, 41)))
    out = render.render_context([window], str(tmp_path), str(tmp_path),
                                render.Context(1, 1), color=False)
    assert out == ("README.md-32-line 32\nREADME.md:33:The [Rich API] makes it easy\n"
                   "README.md-34-line 34\n")
    assert render.with_context([window], str(tmp_path), render.Context(1, 0))[0]["before"] \
        == ["line 32"]


def test_coverage_line_says_what_is_indexed_and_embedded_and_nothing_when_complete() -> None:
    during = {"files_indexed": 165, "files_total": 849, "chunks_indexed": 3000,
              "chunks_embedded": 1200, "catalog_complete": False, "complete": False,
              "eta_seconds": 95.0}
    text = render.format_coverage(during)
    assert text is not None
    assert "165/849 files indexed so far" in text and "1200/3000 chunks embedded" in text
    assert "ETA 1m" in text
    embedding = dict(during, files_indexed=849, catalog_complete=True, eta_seconds=None)
    text = render.format_coverage(embedding)
    assert text is not None and "849/849 files indexed," in text and "ETA" not in text
    assert render.format_coverage(dict(during, complete=True)) is None
    assert render.format_coverage(None) is None   # a worker that predates coverage


# --- context lines (-A/-B/-C) ------------------------------------------------------

def _tree(tmp_path, text: str, name: str = "m.py"):
    (tmp_path / name).write_text(text)
    return str(tmp_path)


def _match(line: int, text: str, path: str = "m.py", **extra):
    return {"path": path, "line": line, "end_line": line, "kind": "match", "name": "",
            "score": 1.0, "text": text, "language": "python", "parent": "", "stale": False,
            "start_line": line, **extra}


TEN = "".join(f"line {n}\n" for n in range(1, 11))


def test_context_is_grep_style_dash_for_context_colon_for_the_hit(tmp_path):
    root = _tree(tmp_path, TEN)
    out = render.render_context([_match(5, "line 5")], root, root, render.Context(2, 1),
                                color=False)
    assert out == "m.py-3-line 3\nm.py-4-line 4\nm.py:5:line 5\nm.py-6-line 6\n"


def test_overlapping_groups_merge_and_distant_ones_are_separated_by_two_dashes(tmp_path):
    root = _tree(tmp_path, TEN)
    hits = [_match(2, "line 2"), _match(4, "line 4"), _match(9, "line 9")]
    out = render.render_context(hits, root, root, render.Context(1, 1), color=False)
    assert out.splitlines() == ["m.py-1-line 1", "m.py:2:line 2", "m.py-3-line 3",
                                "m.py:4:line 4", "m.py-5-line 5", "--",
                                "m.py-8-line 8", "m.py:9:line 9", "m.py-10-line 10"]


def test_context_stops_at_the_ends_of_the_file_and_at_other_files(tmp_path):
    root = _tree(tmp_path, TEN)
    (tmp_path / "n.py").write_text("only\n")
    hits = [_match(1, "line 1"), _match(1, "only", path="n.py"), _match(10, "line 10")]
    out = render.render_context(hits, root, root, render.Context(3, 3), color=False)
    assert out.splitlines() == ["m.py:1:line 1", "m.py-2-line 2", "m.py-3-line 3",
                                "m.py-4-line 4", "--", "n.py:1:only", "--",
                                "m.py-7-line 7", "m.py-8-line 8", "m.py-9-line 9",
                                "m.py:10:line 10"]


def test_a_definition_hit_has_context_around_its_def_line_not_its_decorator(tmp_path):
    root = _tree(tmp_path, "x = 1\n@cached\ndef f():\n    return 2\n")
    hit = dict(_match(2, "@cached\ndef f():\n    return 2"), kind="function", name="f",
               end_line=4)
    out = render.render_context([hit], root, root, render.Context(1, 1), color=False)
    assert out == "m.py-2-@cached\nm.py:3:def f():\nm.py-4-    return 2\n"


def test_context_colours_like_ripgrep(tmp_path):
    root = _tree(tmp_path, TEN)
    out = render.render_context([_match(2, "line 2"), _match(9, "line 9")], root, root,
                                render.Context(0, 1), color=True)
    assert "\x1b[35mm.py\x1b[0m-\x1b[32m3\x1b[0m-line 3" in out
    assert "\x1b[35mm.py\x1b[0m:\x1b[32m2\x1b[0m:line 2" in out


def test_json_hits_gain_before_and_after_and_keep_every_field(tmp_path):
    root = _tree(tmp_path, TEN)
    hit = _match(2, "line 2")
    got = render.with_context([hit], root, render.Context(3, 2))
    assert got == [{**hit, "before": ["line 1"], "after": ["line 3", "line 4"]}]


def test_an_unreadable_or_escaping_file_still_shows_its_hit(tmp_path):
    root = _tree(tmp_path, TEN)
    gone = _match(3, "was here", path="deleted.py")
    escaping = _match(1, "root:x:0:0", path="../../../../etc/passwd")
    out = render.render_context([gone, escaping], root, root, render.Context(2, 2),
                                color=False)
    assert out == "deleted.py:3:was here\n--\n../../../../etc/passwd:1:root:x:0:0\n"
    assert render.with_context([escaping], root, render.Context(1, 1))[0]["after"] == []


def test_context_of_a_huge_file_reads_only_up_to_the_wanted_lines(tmp_path):
    # 1 GB sparse file with no newline after line 3: reading it whole would take
    # seconds and a gigabyte; only the first lines are wanted.
    path = tmp_path / "big.txt"
    with open(path, "wb") as fh:
        fh.write(b"a\nb\nc\n")
        fh.truncate(1 << 30)
    got = render.read_lines(str(path), [(1, 2)])
    assert got == {1: "a", 2: "b"}
    # a wanted line that is itself enormous is cut, not read whole into memory
    got = render.read_lines(str(path), [(4, 4)])
    assert len(got[4]) == render.CONTEXT_LINE_BYTES


def test_stale_files_get_one_note_each():
    hits = [dict(HIT, stale=True), dict(HIT, stale=True, line=9), dict(HIT, path="b.py")]
    notes = render.stale_notes(hits)
    assert len(notes) == 1 and notes[0].startswith("shop/upload.py changed since it was indexed")


# --- compact blocks ----------------------------------------------------------------

METHOD = {"path": "shop/cart.py", "line": 12, "end_line": 20, "start_line": 11,
          "kind": "method", "name": "total_price", "parent": "Cart", "score": 0.7,
          "text": "@cached\n    def total_price(self, prices):\n\n"
                  "        \"\"\"Sum the price of every item in the cart.\"\"\"\n"
                  "        return sum(prices[s] * q for s, q in self.items.items())\n"
                  "        # a fourth line",
          "language": "python", "stale": False}


def test_block_shows_span_class_kind_name_and_three_lines_from_the_def():
    out = render.render_blocks([METHOD], "/r", "/r", query="cart prices", color=False,
                               width=80)
    assert out.splitlines() == [
        "shop/cart.py:11-20  method Cart.total_price",
        "    def total_price(self, prices):",
        "        \"\"\"Sum the price of every item in the cart.\"\"\"",
        "        return sum(prices[s] * q for s, q in self.items.items())",
    ]


def test_block_lines_are_cut_to_the_terminal_width_but_never_the_location():
    out = render.render_blocks([METHOD], "/r", "/r", query="x", color=False, width=30)
    head, *body = out.splitlines()
    assert head == "shop/cart.py:11-20  method Cart.total_price"
    assert all(len(line) <= 30 for line in body), out
    assert body[2].endswith("...")


def test_block_highlights_query_words_only_with_colour():
    out = render.render_blocks([METHOD], "/r", "/r", query="the total prices of carts",
                               color=True, width=120)
    assert f"{render.MATCH_COLOR}total{render.RESET}_{render.MATCH_COLOR}price" in out
    assert f"{render.MATCH_COLOR}cart{render.RESET}" in out
    assert f"{render.MATCH_COLOR}the{render.RESET}" not in out   # a stop word
    plain = render.render_blocks([METHOD], "/r", "/r", query="total", color=False, width=120)
    assert "\x1b" not in plain


def test_block_says_when_the_file_changed_since_it_was_indexed():
    out = render.render_blocks([dict(METHOD, stale=True)], "/r", "/r", query="", color=False,
                               width=80)
    assert out.splitlines()[0] == "shop/cart.py:11-20  method Cart.total_price  " \
                                  "[changed since indexed]"


def test_terminal_width_prefers_columns_then_the_terminal_then_80(monkeypatch):
    monkeypatch.setenv("COLUMNS", "123")
    assert render.terminal_width(io.StringIO()) == 123
    monkeypatch.delenv("COLUMNS")
    assert render.terminal_width(io.StringIO()) == 80



def test_no_character_printable_escapes_is_one_python_calls_printable():
    # printable() returns a str.isprintable() text untouched without looking at it
    from ragexd.textcodec import _UNPRINTABLE

    assert not [hex(c) for c in _UNPRINTABLE if chr(c).isprintable()]
    assert render.printable("plain caf\xe9 \u4e2d") == "plain caf\xe9 \u4e2d"


def test_a_message_of_several_lines_keeps_its_breaks_and_escapes_the_rest():
    text = "a\x1b[2J\nb\r\u202e\n\n\tc\x85"
    assert render.printable_lines(text) == "a\\x1b[2J\nb\\x0d\\u202e\n\n\tc\\x85"
    assert render.printable_lines(text) == "\n".join(render.printable(line)
                                                     for line in text.split("\n"))

def test_what_a_terminal_would_obey_is_shown_as_an_escape_and_text_stays_text():
    assert render.printable("a\x1b[2Jb\rc\x07\u202ed\u2028e\x85") == \
        "a\\x1b[2Jb\\x0dc\\x07\\u202ed\\u2028e\\x85"
    assert render.printable("caf\xe9 \u4e2d\t|") == "caf\xe9 \u4e2d\t|"
    hit = dict(HIT, path="a\nb.py", text="x = '\x1b]0;t\x07'\n")
    for out in (render.render_hits([hit], "/r", "/r", color=True),
                render.render_blocks([hit], "/r", "/r", query="x", color=True, width=80)):
        assert "\x1b]" not in out and "\x07" not in out and "a\\x0ab.py" in out, out
    drawn = io.StringIO()
    render.ProgressRenderer(drawn, tty=True).update(Progress(
        id="1", phase="cataloguing", files_done=1, files_total=2, message="x\n\x1b[2J.py"))
    assert drawn.getvalue().count("\n") == 0 and "\x1b[2J" not in drawn.getvalue(), drawn


def test_status_says_what_json_names_when_it_names_fewer_than_were_skipped():
    def status(total: int, named: int) -> str:
        files = [{"path": f"p{i:03d}", "reason": "not a regular file"} for i in range(named)]
        worker = {"project_id": "a" * 16, "root": "/src/shop", "state": "ready",
                  "index": {"files": 3, "chunks": 9, "skipped": total, "skipped_files": files}}
        return render.render_status({"daemon": {}, "workers": [worker]})

    assert "and 440 more (`ragexctl status --json` names the first 200)" in status(445, 200)
    assert "and 7 more (`ragexctl status --json` names them)" in status(12, 12)


def test_summary_counts_every_skipped_file_not_only_the_named_ones():
    summary = {"files_indexed": 1, "skipped": [{"path": "a", "reason": "r"}] * 200,
               "skipped_total": 40_000}
    assert "; 40000 files skipped" in render.format_summary(summary)
    # a worker from before skipped_total: what it names is all there is
    assert "; 2 files skipped" in render.format_summary({"skipped": [{}, {}]})


def test_context_lines_drop_one_cr_before_the_break_as_ripgrep_and_the_index_do(tmp_path):
    utf8 = tmp_path / "crs.txt"
    utf8.write_bytes(b"a\r\r\nb\r\nc\rd\n")
    wide = tmp_path / "wide.txt"
    wide.write_bytes("a\r\r\nb\r\nc\rd\n".encode("utf-16"))
    for path in (utf8, wide):
        assert render.read_lines(str(path), [(1, 3)]) == {1: "a\r", 2: "b", 3: "c\rd"}, path
    assert render.first_line("a\r\r\nb") == "a\r"


def test_an_answer_during_a_first_index_says_how_much_it_saw_once() -> None:
    """A search during a first index printed "still being built", then the
    coverage, (and the engine's own restatement): one sentence says it now."""
    during = {"files_indexed": 165, "files_total": 849, "chunks_indexed": 3000,
              "chunks_embedded": 1200, "catalog_complete": False, "complete": False,
              "eta_seconds": 95.0}
    answer = {"hits": [], "partial": True, "coverage": during,
              "notes": ["the model is still loading; ranked by keywords and symbols only"]}
    notes = render.answer_notes(answer)
    assert notes == [answer["notes"][0], render.format_coverage(during)]
    assert render.answer_notes(answer, coverage=False) == answer["notes"]   # --json's record
    # no coverage to say it (an older worker): the partial answer still says so
    older = dict(answer, coverage=None)
    assert render.answer_notes(older) == [answer["notes"][0], render.PARTIAL_NOTE]
    done = dict(answer, partial=False, coverage=dict(during, complete=True))
    assert render.answer_notes(done) == answer["notes"]
