"""Search over a real indexed tree (stdlib email + json + http), one index per module."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ragexd.engine import Engine, EngineError, SearchQuery
from ragexd.engine.search import compile_globs
from ragexd.ripgrep import find_rg

from tests.harness import copy_stdlib


@pytest.fixture(scope="module")
def indexed(scratch: Path):
    root = copy_stdlib(scratch / "search-tree", "email", "json", "http")
    engine = Engine(root, scratch / "search-index")
    summary = engine.index()
    assert summary.files_indexed == summary.files_scanned >= 40
    assert summary.chunks_total == summary.chunks_added > 1000
    yield engine, root
    engine.close()


def search(engine: Engine, text: str, mode: str = "auto", limit: int = 10, **kw):
    return engine.search(SearchQuery(text, mode=mode, limit=limit, **kw))


# Paraphrased questions (not the docstrings verbatim) -> (file, function name).
QUESTIONS = [
    ("format the whole email message as a string", "email/message.py", "as_string"),
    ("list the names of all header fields in a message", "email/message.py", "keys"),
    ("decode base64 text into bytes", "email/base64mime.py", "decode"),
    ("serialize a python object to a JSON formatted string", "json/__init__.py", "dumps"),
    ("quote a string so it can be used in a cookie header", "http/cookies.py", "_quote"),
    ("parse a JSON document from a file", "json/__init__.py", "load"),
    ("send an HTTP request to the server", "http/client.py", "request"),
]


@pytest.mark.parametrize("question,path,name", QUESTIONS)
def test_question_finds_its_function_in_top5(indexed, question, path, name) -> None:
    engine, _ = indexed
    out = search(engine, question, limit=5)
    assert out.mode == "hybrid"
    assert not out.partial
    found = [(h.path, h.name) for h in out.hits]
    assert (path, name) in found, found


def test_semantic_mode_alone_finds_most(indexed) -> None:
    engine, _ = indexed
    ok = 0
    for question, path, name in QUESTIONS:
        hits = search(engine, question, mode="semantic", limit=5).hits
        ok += any((h.path, h.name) == (path, name) for h in hits)
    assert ok >= len(QUESTIONS) - 2


def test_symbol_exact_and_method_knows_its_class(indexed) -> None:
    engine, root = indexed
    out = search(engine, "get_payload", mode="symbol")
    top = out.hits[0]
    assert (top.path, top.name, top.kind, top.parent) == \
        ("email/message.py", "get_payload", "method", "Message")
    lines = (root / top.path).read_text().splitlines()
    assert lines[top.line - 1].lstrip().startswith("def get_payload(")
    assert top.text.splitlines()[0] == lines[top.line - 1]
    assert top.end_line > top.line and not top.stale and top.language == "python"
    cls = search(engine, "JSONDecoder", mode="symbol").hits[0]
    assert (cls.path, cls.kind) == ("json/decoder.py", "class")


def test_symbol_qualified_case_insensitive_and_fuzzy(indexed) -> None:
    engine, _ = indexed
    q = search(engine, "HTTPConnection.request", mode="symbol").hits[0]
    assert (q.name, q.parent) == ("request", "HTTPConnection")
    assert search(engine, "jsondecoder", mode="symbol").hits[0].name == "JSONDecoder"
    fuzzy = search(engine, "get_paylod", mode="symbol").hits
    assert fuzzy and fuzzy[0].name == "get_payload"
    # definitions first: classes/functions/methods before anything else
    assert all(h.kind in ("class", "function", "method") for h in
               search(engine, "decode", mode="symbol").hits)


def test_regex_matches_bare_rg(indexed) -> None:
    engine, root = indexed
    for pattern in (r"def \w+_header\(", r"^class \w+Error", "charset"):
        out = search(engine, pattern, mode="regex", limit=1000)
        ours = {(h.path, h.line) for h in out.hits}
        proc = subprocess.run([find_rg(), "--json", "-e", pattern], cwd=root,
                              capture_output=True, text=True)
        theirs = set()
        for line in proc.stdout.splitlines():
            msg = json.loads(line)
            if msg["type"] == "match":
                theirs.add((msg["data"]["path"]["text"], msg["data"]["line_number"]))
        assert ours == theirs and len(ours) > 3, pattern
        assert all(h.kind == "match" and h.line == h.end_line for h in out.hits)


def test_regex_hit_shape_and_enclosing_symbol(indexed) -> None:
    engine, root = indexed
    hit = search(engine, r"def get_payload\(", mode="regex").hits[0]
    assert hit.path == "email/message.py"
    assert hit.text.strip().startswith("def get_payload(")
    assert hit.parent == "get_payload" and hit.language == "python"


def test_auto_mode_routes_by_query_shape(indexed) -> None:
    engine, _ = indexed
    assert search(engine, "get_payload").mode == "symbol"
    assert search(engine, "Message.get_payload").mode == "symbol"
    assert search(engine, r"def \w+_payload").mode == "regex"
    assert search(engine, "get_.*payload").mode == "regex"
    # a pattern that matches nothing is retried as a question, and says so
    out = search(engine, "zzqx.*unmatched")
    assert out.mode == "hybrid" and out.notes
    assert search(engine, "how are cookies parsed").mode == "hybrid"
    # an identifier that exists nowhere falls back to searching by meaning
    out = search(engine, "frobnicate_widgets")
    assert out.mode == "hybrid" and out.notes


def test_an_identifier_that_names_no_definition_finds_the_line_assigning_it_first(
        indexed) -> None:
    """`HTTP_PORT = 80` is a constant, not a definition the symbol table holds: auto
    said "no symbol by that name" and searched by meaning, which never showed it."""
    engine, _ = indexed
    out = search(engine, "HTTP_PORT")
    assert out.mode == "regex", out
    assert (out.hits[0].path, out.hits[0].line, out.hits[0].text.strip()) == \
        ("http/client.py", 92, "HTTP_PORT = 80")
    # every line uses it as a word (DEFAULT_HTTP_PORT is another name); uses follow
    assert {(h.path, h.line) for h in out.hits} == {
        ("http/client.py", 92), ("http/client.py", 803), ("http/cookiejar.py", 55)}
    assert any("no definition named HTTP_PORT" in n for n in out.notes), out.notes
    assert search(engine, "HTTP_PORT", limit=1).notes[-1] == "3 lines use it; showing 1"
    # a definition's name still answers with the definition
    assert search(engine, "HTTPConnection").mode == "symbol"


def test_keyword_candidates_are_found_inside_a_path_filter(indexed) -> None:
    """FTS ranked the whole tree and the filter came after: under json/ the keyword
    half of hybrid saw 0 of the 21 chunks holding "value" (email's came first)."""
    engine, root = indexed
    _globs, inside_json = compile_globs(root, ["json/**"])
    got = engine._searcher.lexical_ranked("value", 10, (), inside_json)
    assert len(got) == 10 and all(r.path.startswith("json/") for r, _ in got), got
    assert len(engine._searcher.lexical_ranked("value", 1000, (), inside_json)) > 10


def test_filters(indexed) -> None:
    engine, _ = indexed
    out = search(engine, "decode a string", mode="hybrid", path_globs=("json/**",), limit=20)
    assert out.hits and all(h.path.startswith("json/") for h in out.hits)
    out = search(engine, "decode a string", mode="semantic", path_globs=("*.py", "!email/**"))
    assert out.hits and not any(h.path.startswith("email/") for h in out.hits)
    out = search(engine, "charset", mode="regex", path_globs=("http",), limit=50)
    assert out.hits and all(h.path.startswith("http/") for h in out.hits)
    out = search(engine, "get_payload", mode="symbol", path_globs=("json/",))
    assert out.hits == []
    out = search(engine, "dumps", mode="symbol", languages=("py",))
    assert out.hits and out.hits[0].language == "python"
    assert search(engine, "dumps", mode="symbol", languages=("rust",)).hits == []
    assert search(engine, "import", mode="regex", languages=("go",)).hits == []


@pytest.mark.parametrize("mode,text", [("hybrid", "decode a string"),
                                       ("semantic", "decode a string"), ("symbol", "dumps")])
def test_filters_that_leave_no_indexed_file_say_so_not_that_the_query_is_noise(
        indexed, mode, text) -> None:
    """A good question narrowed to a folder the project does not have was told "it
    looks like noise; try other words", and a symbol search said nothing at all."""
    engine, _ = indexed
    out = search(engine, text, mode=mode, path_globs=("tests/**",))
    assert out.hits == [] and not any("noise" in n for n in out.notes), out.notes
    assert "no file indexed matches the path filter tests/**, so nothing was searched" \
        in out.notes, out.notes
    out = search(engine, text, mode=mode, languages=("go",), path_globs=("json/**",))
    assert any("matches the path filter json/** and the language filter go" in n
               for n in out.notes), out.notes
    # a filter that keeps files but finds nothing in them is not blamed
    out = search(engine, "zzqx_frobnicate", mode="symbol", path_globs=("json/**",))
    assert out.hits == [] and not any("filter" in n for n in out.notes), out.notes


@pytest.mark.parametrize("mode,text", [("symbol", "dumps"), ("regex", r"def dumps\("),
                                       ("hybrid", "serialize an object to JSON"),
                                       ("semantic", "serialize an object to JSON")])
def test_a_path_filter_of_exclusions_alone_keeps_every_other_file(indexed, mode, text) -> None:
    """`-g '!email/**'` is "everything but email/", as ripgrep reads it (README:
    `!GLOB` excludes); negations alone matched nothing, so every mode found nothing."""
    engine, _ = indexed
    out = search(engine, text, mode=mode, path_globs=("!email/**", "!http/**"), limit=20)
    assert out.hits and all(h.path.startswith("json/") for h in out.hits), out
    assert any(h.name == "dumps" or "def dumps(" in h.text for h in out.hits)


@pytest.mark.parametrize("text,mode,kw,code", [
    ("foo(", "regex", {}, "invalid_regex"),
    ("(?<=look)behind", "regex", {}, "invalid_regex"),
    ("x" * (1024 * 1024), "auto", {}, "too_large"),
    ("x" * (8 * 1024 + 1), "semantic", {}, "too_large"),
    ("   ", "auto", {}, "bad_query"),
    ("decode", "nope", {}, "bad_query"),
    ("decode", "symbol", {"limit": 0}, "bad_query"),
    ("decode", "symbol", {"languages": ("klingon",)}, "bad_query"),
    ("decode", "symbol", {"path_globs": ("../x",)}, "path_outside_project"),
    ("decode", "regex", {"path_globs": ("email/../../etc",)}, "path_outside_project"),
    ("decode", "semantic", {"path_globs": ("/etc/passwd",)}, "path_outside_project"),
])
def test_bad_inputs(indexed, text, mode, kw, code) -> None:
    engine, _ = indexed
    with pytest.raises(EngineError) as err:
        search(engine, text, mode=mode, **kw)
    assert err.value.code == code
    assert err.value.message


def test_flag_shaped_pattern_is_a_pattern(indexed, tmp_path: Path) -> None:
    engine, root = indexed
    marker = tmp_path / "pwned"
    for pattern in (f"--pre=touch {marker}", "--pre=sh", "-f/etc/passwd", "--files"):
        out = search(engine, pattern, mode="regex")
        assert out.hits == []
    assert not marker.exists()
    hits = search(engine, "--", mode="regex", limit=3).hits
    assert hits and "--" in hits[0].text


def test_absolute_glob_inside_root_is_accepted(indexed) -> None:
    engine, root = indexed
    out = search(engine, "dumps", mode="symbol", path_globs=(str(root / "json"),))
    assert out.hits and out.hits[0].path.startswith("json/")


def test_regex_and_symbol_answer_without_the_model(indexed, scratch: Path) -> None:
    engine, root = indexed
    fresh = Engine(root, scratch / "search-index")
    try:
        assert not fresh.model_loaded
        assert search(fresh, "get_payload", mode="symbol").hits
        assert search(fresh, "get_payload").mode == "symbol"
        assert search(fresh, r"def get_\w+", mode="regex").hits
        assert not fresh.model_loaded
        assert search(fresh, "serialize an object to JSON", mode="semantic").hits
        assert fresh.model_loaded
    finally:
        fresh.close()


def test_status(indexed) -> None:
    engine, _ = indexed
    st = engine.status()
    assert st.state == "ready" and st.files >= 40 and st.chunks > 1000
    assert st.size_bytes > 0 and st.last_indexed and st.model_loaded and st.pending_files == 0
