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


def test_status_names_each_workers_shared_store_and_its_problem():
    worker = {"root": "/src/app", "state": "ready", "index": {"store": {
        "url": "http://chroma:8000", "collection": "ragex-abc-123", "role": "reader",
        "problem": "the shared vector store at http://chroma:8000 cannot be reached"}}}
    text = render.render_status({"daemon": {}, "workers": [worker]})
    assert ("shared store of /src/app: http://chroma:8000 ragex-abc-123 (reader): the shared "
            "vector store at http://chroma:8000 cannot be reached") in text


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
