"""What a hit says and where it ranks: definition lines, tests below the code they test, and
the definition whose name the question says above its siblings."""

from __future__ import annotations

import shutil
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragexd.engine import Engine, SearchHit, SearchQuery
from ragexd.engine import embedding
from ragexd.engine import search as search_mod
from ragexd.engine.declarations import is_declaration
from ragexd.engine.namematch import MAX_PREFIX, QuestionWords, stem
from ragexd.engine.search import asks_for_tests, is_stub_path, is_test_path

from ragexd.vocabulary import MAX_QUERY_BYTES
from tests.harness import write


def indexed_engine(factory: pytest.TempPathFactory, name: str,
                   files: dict[str, str | Path]) -> Iterator[Engine]:
    """An engine over a tree of ``files``, fully indexed: each path maps to a
    dedented text, or to a real file copied byte for byte (published code kept
    exactly as its authors wrote it)."""
    root = factory.mktemp(f"{name}-tree")
    for rel, text in files.items():
        if isinstance(text, Path):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(text, root / rel)
        else:
            write(root / rel, text)
    eng = Engine(root, factory.mktemp(f"{name}-index"))
    try:
        eng.index()
        yield eng
    finally:
        eng.close()


def search_with(engine: Engine, query: SearchQuery, **weights: float) -> list[SearchHit]:
    """The hits ``engine`` gives with some ranking weights overridden: what a weight
    changes is the difference from an ordinary search."""
    searcher = engine._searcher
    saved = searcher.weights
    try:
        searcher.weights = search_mod.Weights(**{**saved.__dict__, **weights})
        return engine.search(query).hits
    finally:
        searcher.weights = saved


def search_without(engine: Engine, prior: str, query: SearchQuery,
                   **weights: float) -> list[SearchHit]:
    """The hits with one ranking prior switched off (its factor 1.0)."""
    return search_with(engine, query, **{prior: 1.0, **weights})


FILES = {
    "pkg/split.py": '''\
        import functools


        @functools.lru_cache(
            maxsize=None,
        )
        def shuffle_split(rows, ratio):
            cut = int(len(rows) * ratio)
            head, tail = rows[:cut], rows[cut:]
            return head, tail


        def merge_runs(left, right):
            """Merge two ordered runs into one ordered list."""
            out, i, j = [], 0, 0
            while i < len(left) and j < len(right):
                if left[i] <= right[j]:
                    out.append(left[i]); i += 1
                else:
                    out.append(right[j]); j += 1
            return out + left[i:] + right[j:]
        ''',
    "tests/test_merge.py": '''\
        from pkg.split import merge_runs


        def test_merge_sorted_lists():
            merged = merge_runs([1, 3, 5], [2, 4, 6])
            assert merged == sorted(merged)
            assert merge_runs([], [1]) == [1]
        ''',
}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    yield from indexed_engine(tmp_path_factory, "rank", FILES)


@pytest.mark.parametrize("mode", ["symbol", "semantic", "hybrid"])
def test_hit_line_is_the_def_line_and_the_span_starts_at_the_decorator(engine: Engine,
                                                                       mode: str) -> None:
    text = "shuffle_split" if mode == "symbol" else "cut rows into a head and a tail"
    hit = next(h for h in engine.search(SearchQuery(text, mode=mode, limit=5)).hits
               if h.name == "shuffle_split")
    assert (hit.start_line, hit.line, hit.end_line) == (4, 7, 10)
    assert hit.text.startswith("def shuffle_split(rows, ratio):")


def test_tests_rank_below_the_code_they_test(engine: Engine) -> None:
    question = "merge two sorted runs"
    # by meaning and words: the name signal off, since the function's name says the
    # question's words too, which is a different claim
    query = SearchQuery(question, mode="hybrid", limit=3)
    without = search_without(engine, "test_prior", query, name_weight=0.0)
    with_prior = search_with(engine, query, name_weight=0.0)
    # the test repeats the question's words: without the prior it wins ...
    assert without[0].path == "tests/test_merge.py"
    # ... with it, the implementation comes first
    assert (with_prior[0].path, with_prior[0].name) == ("pkg/split.py", "merge_runs")
    hits = engine.search(SearchQuery(question, mode="hybrid", limit=3)).hits
    assert (hits[0].path, hits[0].name) == ("pkg/split.py", "merge_runs")


def test_a_question_about_tests_ranks_tests_as_usual(engine: Engine) -> None:
    hits = engine.search(SearchQuery("where is merging two sorted lists tested", mode="hybrid",
                                     limit=3)).hits
    assert hits[0].path == "tests/test_merge.py"


@pytest.mark.parametrize("path,expected", [
    ("tests/test_split.py", True), ("pkg/tests/helpers.py", True), ("conftest.py", True),
    ("sklearn/model_selection/tests/test_split.py", True), ("cobra/command_test.go", True),
    ("src/app.test.ts", True), ("lib/app.spec.js", True), ("examples/demo.py", True),
    ("src/test/java/FooTest.java", True), ("pkg/split.py", False), ("src/testing_utils.py", False),
    ("lib/contest.py", False), ("cobra/command.go", False), ("src/latest.js", False),
])
def test_test_paths(path: str, expected: bool) -> None:
    assert is_test_path(path) is expected


@pytest.mark.parametrize("text,expected", [
    ("where is parse_config tested", True), ("fixtures for the database", True),
    ("unit tests of the parser", True), ("split arrays into random train and test subsets", False),
    ("parse the config file", False),
])
def test_which_questions_ask_for_tests(text: str, expected: bool) -> None:
    assert asks_for_tests(text) is expected


@pytest.mark.parametrize("text", ["aaaaaaaaaaaa", "\U0001F642\U0001F642\U0001F642",
                                  "zzzz zzzz zzzz zzzz", "!!!!! ?????"])
def test_noise_finds_nothing_meaningful_and_says_so(engine: Engine, text: str) -> None:
    out = engine.search(SearchQuery(text, mode="auto", limit=5))
    assert out.hits == []
    assert search_mod.NOTHING_MEANINGFUL in out.notes
    assert engine.search(SearchQuery(text, mode="semantic", limit=5)).hits == []


def test_a_real_question_clears_the_noise_floor(engine: Engine) -> None:
    out = engine.search(SearchQuery("combine two ordered runs", mode="auto", limit=5))
    assert out.hits and out.hits[0].name == "merge_runs"
    assert search_mod.NOTHING_MEANINGFUL not in out.notes


def test_an_index_from_before_definition_lines_is_migrated_without_re_embedding(
        tmp_path: Path) -> None:
    import sqlite3

    root = tmp_path / "tree"
    write(root / "pkg" / "split.py", FILES["pkg/split.py"])
    index = tmp_path / "index"
    eng = Engine(root, index)
    first = eng.index()
    eng.close()
    # what an older ragex wrote: no line column
    with sqlite3.connect(index / "catalog.sqlite") as db:
        db.execute("ALTER TABLE chunks DROP COLUMN line")
    eng = Engine(root, index)
    try:
        before = eng.search(SearchQuery("shuffle_split", mode="symbol")).hits[0]
        assert (before.line, before.start_line) == (4, 4)   # still answers: the span's start
        again = eng.index()
        assert again.chunks_embedded == 0 and again.chunks_total == first.chunks_total
        after = eng.search(SearchQuery("shuffle_split", mode="symbol")).hits[0]
        assert (after.start_line, after.line, after.end_line) == (4, 7, 10)
    finally:
        eng.close()


#: A stub is the signature alone (``.pyi``), or carries the documentation that the
#: compiled JavaScript beside it lacks (``.d.ts``): either way it is short and all
#: about the name, which is what a question's words meet.
STUB_FILES = {
    "pkg/paths.py": '''\
        def join_segments(parts, sep="/"):
            cleaned = [p.strip(sep) for p in parts if p]
            joined = sep.join(c for c in cleaned if c)
            return sep + joined if parts and parts[0].startswith(sep) else joined
        ''',
    "pkg/paths.pyi": '''\
        def join_segments(parts: list[str], sep: str = "/") -> str: ...
        ''',
    "lib/slug.js": '''\
        function slugify(title) {
          const lower = title.toLowerCase().trim();
          const dashed = lower.replace(/[^a-z0-9]+/g, "-");
          return dashed.replace(/^-+|-+$/g, "");
        }
        module.exports = { slugify };
        ''',
    "lib/slug.d.ts": '''\
        /** Turn a title into a lower-case slug for a URL. */
        export declare function slugify(title: string): string;
        ''',
}


@pytest.fixture(scope="module")
def stub_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    yield from indexed_engine(tmp_path_factory, "stub", STUB_FILES)


@pytest.mark.parametrize("question,code,stub", [
    ("join path segments with one separator", "pkg/paths.py", "pkg/paths.pyi"),
    ("turn a title into a slug for a url", "lib/slug.js", "lib/slug.d.ts"),
])
@pytest.mark.parametrize("mode", ["semantic", "hybrid"])
def test_type_stubs_rank_below_the_code_they_declare(stub_engine: Engine, question: str,
                                                     code: str, stub: str, mode: str) -> None:
    without = search_without(stub_engine, "stub_prior", SearchQuery(question, mode=mode, limit=4))
    # the stub says the same words in fewer lines: without the prior it wins ...
    assert without[0].path == stub
    # ... with it, the implementation comes first, and the stub is still found
    hits = [h.path for h in stub_engine.search(SearchQuery(question, mode=mode, limit=4)).hits]
    assert hits[0] == code and stub in hits


@pytest.mark.parametrize("path,expected", [
    ("attrs/__init__.pyi", True), ("types/index.d.ts", True), ("lib/x.d.mts", True),
    ("pkg/paths.py", False), ("src/app.ts", False), ("src/d.ts/x.js", False),
])
def test_stub_paths(path: str, expected: bool) -> None:
    assert is_stub_path(path) is expected


#: click's ``globals.py`` as published (tests/engine/data/real_code/SOURCES.md):
#: two ``@t.overload`` declarations of ``get_current_context`` above the function.
CLICK_GLOBALS = Path(__file__).parent / "data" / "real_code" / "click_globals.py"


@pytest.fixture(scope="module")
def overload_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    yield from indexed_engine(tmp_path_factory, "overload", {"click/globals.py": CLICK_GLOBALS})


@pytest.mark.parametrize("question,mode", [
    ("get the current context", "hybrid"),
    ("get the current context", "semantic"),
    ("access the current context object from anywhere", "semantic"),
])
def test_overload_declarations_rank_below_the_function_they_declare(
        overload_engine: Engine, question: str, mode: str) -> None:
    query = SearchQuery(question, mode=mode, limit=3)
    without = search_without(overload_engine, "stub_prior", query)
    # a signature-only @overload says the name and types in two lines: it wins ...
    assert [h.name for h in without] == ["get_current_context"] * 3
    assert without[0].line != 20
    # ... until it ranks like a stub: the function that runs (line 20) comes first
    hits = overload_engine.search(query).hits
    assert hits[0].name == "get_current_context" and hits[0].line == 20


@pytest.mark.parametrize("language,text,expected", [
    ("python", "@overload\ndef f(x: int) -> int: ...", True),
    ("python", "@typing.overload\ndef f(\n    x: str,\n) -> str:\n    ...", True),
    ("python", "@t.overload  # narrow\nasync def f(x: None) -> None: ...", True),
    ("python", "@functools.cache\ndef f(x):\n    return x", False),
    ("python", "def f(x):\n    @overload\n    def g(y): ...\n    return g", False),
    # a short class whose first method is an @overload is a class, with a body
    ("python", "class C:\n    @overload\n    def f(self, x: int) -> int: ...\n"
               "    def f(self, x):\n        return x", False),
    ("python", "@dataclass\nclass C:\n    @overload\n    def f(self) -> None: ...", False),
    ("python", "# narrowed by type\n@overload\n\n@deprecated(\n    \"use g\",\n)\n"
               "def f(x: int) -> int: ...", True),
    ("typescript", "export function parse(s: string): Node;", True),
    ("typescript", "export declare function parse(\n  s: string,\n): Node;", True),
    ("typescript", "function parse(s: string): Node {\n  return read(s);\n}", False),
    ("typescript", "export function noop(): void {};", False),
    ("go", "func Parse(s string) Node", False),
])
def test_which_chunks_are_body_less_declarations(language: str, text: str,
                                                 expected: bool) -> None:
    assert is_declaration(language, text.split("\n")) is expected


USAGE_FILES = {
    "app/config.py": '''\
        import json


        def parse_config(path, timeout=None):
            with open(path) as fh:
                data = json.load(fh)
            if timeout is not None:
                data["timeout"] = float(timeout)
            return data


        def default_config():
            return {"timeout": 30.0, "retries": 3}
        ''',
    "app/server.py": '''\
        from app.config import parse_config


        def start_server(path):
            settings = parse_config(path, timeout=5)
            host = settings.get("host", "localhost")
            port = int(settings.get("port", 8080))
            return host, port


        def stop_server(handle):
            handle.close()
            return True
        ''',
}


@pytest.fixture(scope="module")
def usage_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    yield from indexed_engine(tmp_path_factory, "usage", USAGE_FILES)


def test_where_is_an_identifier_called_finds_its_caller_not_its_definition(
        usage_engine: Engine) -> None:
    question = "where is parse_config called with a timeout"
    without = search_without(usage_engine, "usage_prior",
                             SearchQuery(question, mode="auto", limit=3))
    # the definition says parse_config and timeout more than anything: it wins without ...
    assert without[0].name == "parse_config"
    # ... but the question asks for the call: start_server passes timeout=5
    hits = usage_engine.search(SearchQuery(question, mode="auto", limit=3)).hits
    assert hits[0].name == "start_server"
    assert "parse_config" in [h.name for h in hits]   # still found, lower


def test_a_question_about_what_an_identifier_does_finds_its_definition(
        usage_engine: Engine) -> None:
    hits = usage_engine.search(SearchQuery("what does parse_config do with the timeout",
                                           mode="auto", limit=3)).hits
    assert hits[0].name == "parse_config"


#: Siblings of one class share its vocabulary and its shape; the question names the
#: answer in words ("representation" for ``__repr__``), which is all that tells it
#: from ``__len__`` and ``__iter__``.  No docstrings: the question is all there is.
SIBLING_FILES = {
    "pkg/lru.py": '''\
        from collections import OrderedDict


        class LRUCache:

            def __init__(self, capacity=128):
                self._capacity = capacity
                self._data = OrderedDict()
                self.hits = 0
                self.misses = 0

            def __repr__(self):
                kind = type(self).__name__
                pairs = ", ".join(f"{k!r}: {v!r}" for k, v in self._data.items())
                return f"{kind}({{{pairs}}}, capacity={self._capacity})"

            def items(self):
                for key in list(self._data):
                    yield key, self._data[key]

            def values(self):
                for key in list(self._data):
                    yield self._data[key]

            def __iter__(self):
                return iter(list(self._data))

            def __len__(self):
                return len(self._data)

            def get(self, key, default=None):
                if key not in self._data:
                    self.misses += 1
                    return default
                self.hits += 1
                self._data.move_to_end(key)
                return self._data[key]

            def __delitem__(self, key):
                if key not in self._data:
                    raise KeyError(key)
                del self._data[key]

            def pop(self, key, default=None):
                if key not in self._data:
                    return default
                value = self._data[key]
                del self._data[key]
                return value
        ''',
}


@pytest.fixture(scope="module")
def sibling_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    yield from indexed_engine(tmp_path_factory, "sibling", SIBLING_FILES)


def test_the_method_whose_name_the_question_says_beats_its_siblings(
        sibling_engine: Engine) -> None:
    question = "string representation of the cache"
    without = search_with(sibling_engine, SearchQuery(question, mode="hybrid", limit=3),
                          name_weight=0.0)
    # by meaning and words alone a sibling of the same class wins ...
    assert without[0].name != "__repr__"
    # ... the name says "repr": the question says "representation"
    hits = sibling_engine.search(SearchQuery(question, mode="auto", limit=3)).hits
    assert (hits[0].name, hits[0].parent) == ("__repr__", "LRUCache")


@pytest.mark.parametrize("a,b,expected", [
    ("repr", "representation", True), ("init", "initialize", True), ("msg", "message", True),
    ("fn", "function", True), ("ctx", "context", True), ("eq", "equality", True),
    ("entries", "entry", True), ("len", "lens", True), ("set", "get", False),
    ("pop", "push", False), ("cache", "clear", False), ("parse", "path", False),
])
def test_name_words_match_their_longer_forms_and_abbreviations(a: str, b: str,
                                                               expected: bool) -> None:
    # either side may be the name's word
    assert QuestionWords(b).says(stem(a)) is expected
    assert QuestionWords(a).says(stem(b)) is expected


def test_words_longer_than_the_indexed_prefixes_still_match_their_longer_forms() -> None:
    long = "internationalizationconfigurationloader"   # 39 letters, above MAX_PREFIX
    assert len(long) > MAX_PREFIX
    assert QuestionWords(long + "factory").says(long)          # the name's word begins the question's
    assert QuestionWords(long).says(long + "factory")          # the question's word begins the name's
    assert not QuestionWords(long).says("international" + "ization" + "settingsloader")


#: click's ``_termui_impl.py`` as published: its pagers are ``_pipepager``,
#: ``_tempfilepager`` and ``_nullpager``, names written as one word each.
CLICK_TERMUI = Path(__file__).parent / "data" / "real_code" / "click_termui_impl.py"


@pytest.fixture(scope="module")
def pager_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    yield from indexed_engine(tmp_path_factory, "pager",
                              {"click/_termui_impl.py": CLICK_TERMUI})


@pytest.mark.parametrize("question", [
    "show long text in a pager by writing it to a temporary file first",
    "page through text by invoking a program on a temporary file",
])
def test_a_name_written_as_one_word_is_matched_by_the_words_the_question_says(
        pager_engine: Engine, question: str) -> None:
    # "tempfilepager" has no case change or underscore to split it at: before it was
    # read as temp + file + pager, the name signal saw nothing of it said, and a
    # sibling (``_PagerWriter.write``, ``_pipepager``) ranked first
    hits = pager_engine.search(SearchQuery(question, mode="auto", limit=3)).hits
    assert hits[0].name == "_tempfilepager"


@pytest.mark.parametrize("word,question,expected", [
    ("tempfilepager", "page through text using a temporary file", True),
    ("lazyrouter", "lazily adds the base router", True),
    ("getchar", "fetch a single character", True),      # fetch -> get, char -> character
    ("setitem", "set the item at this key", True),
    ("tempfilepager", "page through text", False),        # temp and file not said
    ("isatty", "is it a terminal", False),                 # pieces of 3 letters or more
    ("routerlazy", "lazily adds the base router", True),   # any order of pieces
    ("lazyqzrouter", "lazily adds the base router", False),  # every letter in a piece
    # a piece of three letters is no abbreviation: "cont" + "ext" (connection,
    # exponential) and "cont" + "ent" are not what this question says
    ("context", "retry with exponential backoff when the connection fails", False),
    ("content", "retry with exponential backoff when the connection fails", False),
    ("retryconn", "retry with exponential backoff when the connection fails", True),
])
def test_a_compound_name_word_is_said_when_each_of_its_pieces_is(word: str, question: str,
                                                                 expected: bool) -> None:
    assert QuestionWords(question).says(word) is expected


def test_a_query_of_one_8_kb_token_costs_little_memory(overload_engine: Engine) -> None:
    # every prefix of every question word was kept: one 8 KB token cost 31 MiB
    # (and 50 ms) a query; a long word now costs its length, not its square
    token = ("getCurrentContext" * 1000)[:MAX_QUERY_BYTES]
    overload_engine.search(SearchQuery("get the current context", mode="hybrid"))  # warm
    tracemalloc.start()
    try:
        hits = overload_engine.search(SearchQuery(token, mode="hybrid", limit=10)).hits
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert hits    # the name signal was reached: it is what cost the memory
    assert peak < 4 * 1024 * 1024


@pytest.mark.parametrize("question,name,parent,share", [
    ("Return string representation of sorted dict", "__repr__", "SortedDict", 1.0),
    ("Check invariants of sorted-key list", "_check", "SortedKeyList", 1.0),
    # "check" and "sorted" said, "set" not; the class's words count half
    ("Check invariants of sorted-key list", "_check", "SortedSet", (1 + 0.5) / (1 + 0.5 * 2)),
    ("creates a new random UUID", "NewRandom", "", 1.0),   # "creates" -> New
    ("determine if a value is a Buffer", "isBuffer", "", 1.0),   # "determine if" -> is
    ("Invokes a command in an isolated environment", "invoke", "CliRunner", 1 / (1 + 0.5 * 2)),
    ("parse the config file", "start_server", "", 0.0),
    ("anything at all", "", "", 0.0),                       # blocks have no name
])
def test_name_match_is_the_share_of_the_name_the_question_says(question: str, name: str,
                                                               parent: str, share: float) -> None:
    assert QuestionWords(question).name_match(name, parent, 0.5) == pytest.approx(share)


#: The recipes the sixth round compared (``embedding.VARIANTS``): the one shipped
#: before it (the first 12 body lines), the same head cut to 6 lines, and its
#: choice (the first 6 and the last 2); and the seventh round's, the default: the
#: same lines after the whole signature, the decorators kept.
RECIPES = ("context+path", "short+path", "head+tail+path", "sig+head+tail+path")


@pytest.fixture(scope="module")
def recipe_engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Engine]]:
    """click's ``_termui_impl.py`` indexed once per recipe.  ``ProgressBar.format_bar``
    builds its bar in three branches and ends ``bar = "".join(chars)`` /
    ``return bar``: only a recipe that reads a long body's last lines sees that it
    returns a string."""
    engines: dict[str, Engine] = {}
    try:
        for variant in RECIPES:
            root = tmp_path_factory.mktemp(f"recipe-{variant}-tree")
            (root / "click").mkdir()
            shutil.copy(CLICK_TERMUI, root / "click" / "_termui_impl.py")
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(embedding, "CONTEXT_VARIANT", variant)
                engines[variant] = Engine(root, tmp_path_factory.mktemp(f"recipe-{variant}"))
                engines[variant].index()
        yield engines
    finally:
        for eng in engines.values():
            eng.close()


@pytest.mark.parametrize("question,mode", [
    ("the bar string of a progress bar", "auto"),
    ("build the progress bar string from filled and empty characters", "semantic"),
])
def test_a_long_functions_last_lines_rank_it_first_when_they_say_what_it_returns(
        recipe_engines: dict[str, Engine], question: str, mode: str) -> None:
    def top(variant: str) -> tuple[str | None, str | None]:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(embedding, "CONTEXT_VARIANT", variant)
            hit = recipe_engines[variant].search(SearchQuery(question, mode=mode, limit=3)).hits[0]
        return hit.parent, hit.name

    # twelve lines from the top, or six, read the fill/empty characters of the first
    # branch: the constructor, which sets them, wins ...
    assert top("context+path") == ("ProgressBar", "__init__")
    assert top("short+path") == ("ProgressBar", "__init__")
    # ... the last two lines say a string is joined and returned: format_bar wins
    assert top("head+tail+path") == ("ProgressBar", "format_bar")
    assert top("sig+head+tail+path") == ("ProgressBar", "format_bar")


def test_a_context_managers_decorator_is_read_with_its_body(
        recipe_engines: dict[str, Engine]) -> None:
    """``raw_terminal`` (no docstring) is ``@contextlib.contextmanager`` over a body
    that yields.  The recipe to the sixth round dropped the chunk's first line,
    which is the decorator, and read the ``def`` line again as the body's first: a
    helper that turns a key into an exception came first."""
    question = "context manager for reading single key presses from the terminal"

    def top(variant: str) -> str:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(embedding, "CONTEXT_VARIANT", variant)
            query = SearchQuery(question, mode="semantic", limit=3)
            return recipe_engines[variant].search(query).hits[0].name

    assert top("head+tail+path") == "_translate_ch_to_exc"
    assert top("sig+head+tail+path") == "raw_terminal"
    assert embedding.DEFAULT_VARIANT == "sig+head+tail+path"
