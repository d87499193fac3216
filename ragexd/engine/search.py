"""The search modes and how they combine.

* semantic: exact cosine over every stored vector (vectors.Vectors; HNSW only above
  200k chunks), oversampled then filtered (unknown ids, path globs) so a filter
  never silently shrinks the answer;
* lexical: FTS5 bm25 over identifiers split into words, docstrings and code tokens;
* symbol: the catalog's definition names (symbols.py);
* regex: ripgrep (ripgrep.py);
* hybrid: a linear fusion of the semantic cosine, the normalised bm25 and how much
  of each candidate's name the question says (namematch.py), over candidates
  from both lists and the definitions of identifiers the question names;
  weights chosen leave-one-corpus-out by bench/eval_quality.py on
  third-party code (bench/QUALITY.md).  A question about where an identifier is
  used ranks the code using it above its definition;
* auto: by the query's shape (``ragexd/query_shape.py``, shared with the client).

Both semantic and hybrid rank tests, fixtures and examples below the code they
exercise unless the question asks about tests, type stubs and declaration files
(``.pyi``, ``.d.ts``) and body-less declarations in ordinary files (``@overload``,
TypeScript overload signatures: declarations.py) below the code they declare, and
answer noise with nothing.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Sequence

import pathspec

from ..filerules import GlobProblem, clean_globs
from ..vocabulary import query_problem
from .. import ripgrep
from .catalog import Catalog, ChunkRow, FileRow
from .discovery import IgnoreRules
from .filelines import FileLines
from .lru import LRU
from .embedding import Embedder
from .languages import known_languages, normalise_language
from .declarations import MAX_DECLARATION_LINES, is_declaration
from .namematch import QuestionWords
from ..query_shape import asks_for_usage, is_code_token, split_qualified
from .symbols import SymbolIndex
from .tokens import query_terms
from .types import EngineError, SearchHit
from .vectors import Vectors

SNIPPET_LINES = 8
#: Chunks whose declaration answer is kept (a few hundred candidates a query).
MAX_DECLARATIONS_KEPT = 65536


@dataclass
class Weights:
    """Ranking knobs, all measured with bench/eval_quality.py (see bench/QUALITY.md).

    Hybrid is a linear fusion: ``alpha * cosine + (1 - alpha) * bm25 / max_bm25
    + name_weight * name_match``, the last the share of the candidate's name words
    the question says (namematch.py): doc-comment-like questions name the answer in
    words, which tells it from neighbours that share its body and vocabulary.
    Identifiers named in the question add their definitions to the candidates;
    a bonus on top of that (``symbol_bonus``) lost on every leave-one-out fold:
    doc-comment-like questions name parameters and neighbours, not the answer.
    (Reciprocal rank fusion was measured too and lost to linear fusion.)
    ``kind_prior`` scales scores by chunk kind in semantic and hybrid rankings:
    a question is usually answered by a function; module-level blocks and class
    summaries are kept but ranked a little lower.  Tests and stubs get a prior of
    their own on top (``test_prior``, ``stub_prior``); declarations without a body
    in ordinary files (``@overload``, TypeScript overload signatures: declarations.py)
    take the stub prior too: they are stubs in all but file name, and the eval chose
    their factor as the stub prior's on principle (bench/QUALITY.md, fourth round).
    """

    alpha: float = 0.8
    name_weight: float = 0.2    # chosen leave-one-out (bench/QUALITY.md, third round)
    name_class_weight: float = 0.5   # the enclosing class's words, each, in that share
    symbol_bonus: float = 0.0   # chosen leave-one-out; named definitions still join the candidates
    bm25: tuple[float, float, float] = (4.0, 2.0, 1.0)
    block_prior: float = 0.8
    class_prior: float = 0.8
    test_prior: float = 0.8     # tests, fixtures, examples (unless the query asks for tests)
    stub_prior: float = 0.8     # type stubs, declaration files and body-less declarations
    usage_prior: float = 0.5    # "where is X called": X's definition, and code not naming X
    fusion: str = "linear"      # linear | linear-norm (cosine / best cosine) | rrf
    depth: int = 100            # candidates taken from each list

    def prior(self, kind: str, path: str = "", tests_wanted: bool = True) -> float:
        """How much a chunk of this kind, in this file, is likely to be the answer."""
        if not tests_wanted and is_test_path(path):
            return self.test_prior * self.prior(kind)
        if is_stub_path(path):
            return self.stub_prior * self.prior(kind)
        if kind in ("block", "window"):
            return self.block_prior
        if kind in ("class", "interface", "struct", "enum", "trait", "module", "object",
                    "record", "type"):
            return self.class_prior
        return 1.0


_TEST_DIRS = frozenset({"test", "tests", "testing", "__tests__", "spec", "specs", "fixtures",
                        "fixture", "testdata", "__mocks__", "mocks", "e2e", "examples",
                        "example", "benchmarks"})
_TEST_FILE = re.compile(r"^(test_.*\.py|conftest\.py)$|_tests?\.(py|go|rb|rs|exs?)$"
                        r"|\.(test|spec)\.[cm]?[jt]sx?$|_spec\.rb$|Tests?\.(java|kt|cs|swift)$")
#: "test" alone is not one of them: "split arrays into train and test subsets" is not
#: a question about tests.
_TEST_WORDS = frozenset({"tests", "testing", "tested", "unittest", "pytest", "fixture",
                         "fixtures", "mock", "mocks", "spec", "specs", "example", "examples",
                         "benchmark", "benchmarks"})


def is_test_path(path: str) -> bool:
    """Tests, fixtures, examples and benchmarks: code that *uses* the code a question
    is usually about, and repeats its words (a test of ``train_test_split`` says
    "split" as often as the function does)."""
    parts = path.split("/")
    return any(p in _TEST_DIRS for p in parts[:-1]) or bool(_TEST_FILE.search(parts[-1]))


_STUB_FILE = re.compile(r"\.pyi$|\.d\.[cm]?ts$")


def is_stub_path(path: str) -> bool:
    """Type stubs and declaration files (``.pyi``, ``.d.ts``): they repeat every
    public name and signature of the implementation in a line each, so they match a
    question as well as the code does, while the question is about the code."""
    return bool(_STUB_FILE.search(path))


def asks_for_tests(text: str) -> bool:
    """Whether a question is about tests ("where is the timeout tested"), which then
    rank like any other code."""
    return any(w in _TEST_WORDS for w in re.findall(r"[a-z]+", text.lower()))


#: Strings that mean nothing.  How close the index comes to *them* is how close it comes
#: to noise: a query whose best cosine is no better (plus NOISE_MARGIN) and which shares
#: no word with the code gets no hits instead of the least-bad chunks.  An absolute
#: floor does not work: noise reaches cosine 0.31 on one eval corpus while a real
#: question about a two-line function scores 0.26 on a small tree.  Measured with
#: ``bench/eval_quality.py --noise``, whose noise strings are different ones.
NOISE_PROBES = ("xxxxxxxxxx", "qqqq wwww eeee rrrr", "\U0001F389\U0001F389\U0001F389",
                "###### $$$$$ %%%%%", "lkjhgf poiuyt mnbvcx", "0000 1111 2222 3333",
                "\u00ff\u00fe\u00a4\u00a7\u00ac", "ooo ooo ooo")
NOISE_MARGIN = 0.03
NOTHING_MEANINGFUL = ("nothing in the index is close to this query in meaning "
                      "(it looks like noise); try other words, a symbol name or a regex")

WEIGHTS = Weights()
#: What ``auto`` uses for natural-language questions (set from the eval; QUALITY.md).
AUTO_NATURAL = os.environ.get("RAGEX_AUTO_NATURAL", "hybrid")
#: An identifier a ``\b`` delimits (``word_hits``), and how many of its lines are
#: read to put the ones that assign it first.
_PLAIN_NAME = re.compile(r"[A-Za-z_]\w*")
WORD_DEPTH = 200


def validate_text(text: str) -> str:
    problem = query_problem(text)
    if problem is not None:
        raise EngineError(problem.code, problem.message, **problem.detail)
    return text


def compile_globs(root: Path, globs: Sequence[str]) -> tuple[list[str], Callable[[str], bool]]:
    """Validate path globs (relative to the root, gitignore style) and return a
    matcher.  ``../x`` or an absolute path outside the root is refused."""
    try:
        cleaned = clean_globs(root, globs)
    except GlobProblem as exc:
        raise EngineError(exc.code, exc.message, **exc.detail) from None
    if not cleaned:
        return [], lambda p: True
    # Only exclusions (`-g '!tests/**'`) mean "everything but these", as ripgrep reads
    # them; a gitignore spec of negations alone matched no path at all, so every
    # mode answered nothing.  The matcher alone gains the "**": ripgrep gets the
    # globs as given (a "**" there would override the ignore rules).
    lines = cleaned if any(not g.startswith("!") for g in cleaned) else ["**", *cleaned]
    try:
        spec = pathspec.GitIgnoreSpec.from_lines(lines)
    except Exception as exc:
        raise EngineError("bad_query", f"invalid path glob: {exc}") from exc
    return cleaned, spec.match_file


def normalise_languages(languages: Sequence[str]) -> list[str]:
    out = []
    known = set(known_languages())
    for lang in languages:
        name = normalise_language(lang)
        if name not in known:
            raise EngineError("bad_query", f"unknown language {lang!r}; known: "
                              + ", ".join(sorted(known)))
        out.append(name)
    return out


class Searcher:
    def __init__(self, root: Path, catalog: Catalog, vectors: Vectors, embedder: Embedder,
                 rules: Callable[[], "IgnoreRules"]) -> None:
        self.root = root
        self.catalog = catalog
        self.vectors = vectors
        self.embedder = embedder
        self.symbols = SymbolIndex(catalog)
        self.rules = rules   # fresh ignore rules per regex search (files may have changed)
        self.weights = WEIGHTS
        self._probes: "object | None" = None         # NOISE_PROBES' vectors, encoded once
        self._floor: tuple[int, float] | None = None  # (vector count, floor) of this index
        # chunk id (content-hashed, so never stale) -> body-less?  Bounded: every edit
        # makes new ids, and a worker lives for days
        self._declarations: LRU[str, bool] = LRU(MAX_DECLARATIONS_KEPT)
        self.files = FileLines(root)   # one read per file while it stays the same

    def noise_floor(self) -> float:
        """The best cosine this index gives to meaningless strings, plus a margin;
        recomputed when the index has grown or shrunk by more than 5%."""
        count = self.vectors.count()
        if self._floor is None or abs(count - self._floor[0]) > 0.05 * max(1, self._floor[0]):
            if self._probes is None:
                self._probes = self.embedder.encode(list(NOISE_PROBES))
            best = max((got[0][1] for vec in self._probes  # type: ignore[attr-defined]
                        if (got := self.vectors.query(vec, 1))), default=0.0)
            self._floor = (count, best + NOISE_MARGIN)
        return self._floor[1]

    def looks_like_noise(self, text: str, vec: "object", best_in_filters: float) -> bool:
        """Noise is a property of the query, not of the filters: a real question
        restricted to files that hardly match it still gets its least-bad answers.
        So the query is noise only when no chunk of the whole index is above the
        noise floor and no word of it is indexed anywhere."""
        floor = self.noise_floor()
        if best_in_filters >= floor:
            return False
        best = self.vectors.query(vec, 1)
        if best and best[0][1] >= floor:
            return False
        return not self.lexical_ranked(text, 1, (), lambda _path: True)

    # -- ranked id lists -----------------------------------------------------------

    def semantic_ranked(self, text: str, n: int, languages: Sequence[str],
                        match: Callable[[str], bool], *, prior: bool = True
                        ) -> list[tuple[ChunkRow, float]]:
        vec = self.embedder.encode_query(text)
        got = self._semantic(vec, n, languages, match)
        if got and self.looks_like_noise(text, vec, got[0][1]):
            return []  # noise: no meaning and no word of it in the code
        if prior:
            tests = asks_for_tests(text)
            got = [(r, s * self.weights.prior(r.kind, r.path, tests)) for r, s in got]
            got = self._demote_declarations(got)
            got.sort(key=lambda x: -x[1])
        return got

    def _semantic(self, vec: "object", n: int, languages: Sequence[str],
                  match: Callable[[str], bool]) -> list[tuple[ChunkRow, float]]:
        """Raw cosine neighbours known to the catalog and inside the filters."""
        total = max(1, self.vectors.count())
        want = min(total, n * 2 + 20)
        while True:
            got = self.vectors.query(vec, want, languages)
            rows = self.catalog.chunks_by_id([i for i, _ in got])
            out = [(rows[i], s) for i, s in got if i in rows and match(rows[i].path)]
            if len(out) >= n or want >= total or len(got) < want:
                return out[:n]
            want = min(total, want * 4)

    def similar_ranked(self, source: ChunkRow, vec: "object", n: int, languages: Sequence[str],
                       match: Callable[[str], bool]) -> list[tuple[ChunkRow, float]]:
        """The chunks whose stored vectors are nearest ``source``'s, itself excluded.
        Raw cosine, no priors: "what else looks like this" has no test/code bias."""
        got = self._semantic(vec, n + 1, languages, match)
        return [(r, s) for r, s in got if r.id != source.id][:n]

    def lexical_ranked(self, text: str, n: int, languages: Sequence[str],
                       match: Callable[[str], bool]) -> list[tuple[ChunkRow, float]]:
        terms = query_terms(text)
        if not terms:
            terms = query_terms(text, keep_stopwords=True)
        if not terms:
            return []
        expr = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms[:64])
        want = n * 3 + 20
        while True:
            # a --path filter is applied to what FTS ranked best in the whole tree:
            # read further until it has kept enough (as _semantic does), or a folder's
            # keyword matches were all behind other folders' and hybrid was blind to
            # them ("value" under json/: 0 of its 21 chunks)
            got = self.catalog.fts_search(expr, want, self.weights.bm25, languages)
            rows = self.catalog.chunks_by_id([i for i, _ in got])
            out = [(rows[i], s) for i, s in got if i in rows and match(rows[i].path)]
            if len(out) >= n or len(got) < want:
                return out[:n]
            want *= 4

    def word_hits(self, name: str, limit: int, globs: Sequence[str],
                  languages: Sequence[str], match: Callable[[str], bool]
                  ) -> tuple[list[SearchHit], list[str]]:
        """The lines that use ``name`` as a whole word, those that give it a value
        first (``NAME = …``, ``const NAME: T =``, ``#define NAME``, an enum member
        alone on its line), else in ripgrep's order: auto's answer to an identifier
        that names no definition, a constant or a variable (``DEFAULT_STYLES``, Go's
        ``var EnablePrefixMatching``), which the symbol table does not hold and a
        search by meaning missed.  Nothing for a name a word boundary cannot
        delimit (``$scope``)."""
        if not _PLAIN_NAME.fullmatch(name):
            return [], []
        depth = max(limit * 5, WORD_DEPTH)
        hits, said = self.regex_hits(rf"\b{name}\b", depth, globs, languages, match,
                                     final=False)
        said = [n for n in said if not n.startswith("showing the first")]  # counted below
        binds = re.compile(rf"\s*#\s*define\s+{name}\b"
                           rf"|\s*(?:[\w$]+\s+)*{name}\s*(?::[^=]*)?:?=(?!=)"
                           # alone on its line: an enum member, a Go const block's entry
                           rf"|\s*{name}\s*,?\s*(?://.*)?$")
        hits.sort(key=lambda h: 0 if binds.match(h.text.split("\n", 1)[0]) else 1)
        if len(hits) > limit:
            said.append(f"{len(hits)}{'+' if len(hits) >= depth else ''} lines use it; "
                        f"showing {limit}")
        return hits[:limit], said

    def symbol_ranked(self, text: str, n: int, languages: Sequence[str],
                      match: Callable[[str], bool], *, fuzzy: bool = True
                      ) -> list[tuple[ChunkRow, float]]:
        return [(r, s) for r, s, _ in self.symbols.search(text, n, languages=languages,
                                                          accept=match, fuzzy=fuzzy)]

    def hybrid_ranked(self, text: str, n: int, languages: Sequence[str],
                      match: Callable[[str], bool], *, semantic: bool = True
                      ) -> list[tuple[ChunkRow, float]]:
        w = self.weights
        depth = max(n * 2, w.depth)
        vec = self.embedder.encode_query(text) if semantic else None
        sem = self._semantic(vec, depth, languages, match) if semantic else []
        lex = self.lexical_ranked(text, depth, languages, match)
        if sem and not lex and self.looks_like_noise(text, vec, sem[0][1]):
            return []  # noise: no meaning and no word of it in the code
        sym: list[tuple[ChunkRow, float]] = []
        named: list[str] = []
        for tok in text.split():
            tok = tok.strip(",;:'\"`()[]{}")
            if is_code_token(tok):
                named.append(tok)
                sym.extend(self.symbol_ranked(tok, 10, languages, match, fuzzy=False))
        usage = bool(named) and asks_for_usage(text)
        rows: dict[str, ChunkRow] = {}
        for r, _ in (*sem, *lex, *sym):
            rows[r.id] = r
        if w.fusion == "rrf":
            scores: dict[str, float] = {}
            for weight, ranked in ((w.alpha, sem), (1 - w.alpha, lex), (w.symbol_bonus, sym)):
                for rank, (row, _s) in enumerate(ranked):
                    scores[row.id] = scores.get(row.id, 0.0) + weight * 60 / (60 + rank + 1)
        else:
            cos = {r.id: s for r, s in sem}
            missing = [i for i in rows if i not in cos]
            if missing and vec is not None:  # lexical/symbol candidates the vector list did not reach
                cos.update(self.vectors.similarities(vec, missing))
            top = max((s for _, s in lex), default=0.0) or 1.0
            bm = {r.id: s / top for r, s in lex}
            if w.fusion == "linear-norm":   # both on the same 0..1 scale, per query
                best = max(cos.values(), default=0.0) or 1.0
                cos = {i: c / best for i, c in cos.items()}
            scores = {i: w.alpha * cos.get(i, 0.0) + (1 - w.alpha) * bm.get(i, 0.0)
                      for i in rows}
            # a usage question names the callee, not the answer: its callers' names
            # say none of it, so the name signal would only lift the definition
            if w.name_weight and not usage:
                said = QuestionWords(text)
                for i, r in rows.items():
                    scores[i] += w.name_weight * said.name_match(r.name, r.parent,
                                                                 w.name_class_weight)
            for r, s in sym:
                scores[r.id] += w.symbol_bonus * s
        tests = asks_for_tests(text)
        for i, r in rows.items():
            scores[i] *= w.prior(r.kind, r.path, tests)
        if w.stub_prior != 1.0:
            for i in self.declarations(rows.values()):
                scores[i] *= w.stub_prior
        if usage:  # "where is parse_config called": code that uses the name, not its definition
            users = self._users(named, depth, languages)
            defined = {r.id for r, _ in sym}
            for i in rows:
                if i in defined or i not in users:
                    scores[i] *= w.usage_prior
        best = sorted(scores, key=lambda i: -scores[i])[:n]
        return [(rows[i], scores[i]) for i in best]

    def declarations(self, rows: "Iterable[ChunkRow]") -> set[str]:
        """The ids of ``rows`` that declare a function without a body (declarations.py).
        Only short chunks are read, each once: the answer is cached by chunk id, which
        changes with the chunk's content."""
        out: set[str] = set()
        todo: dict[str, list[ChunkRow]] = {}
        for r in rows:
            if r.end - r.start + 1 > MAX_DECLARATION_LINES or r.kind in ("block", "window") \
                    or is_stub_path(r.path):   # a stub has its own prior already
                continue
            known = self._declarations.get(r.id)
            if known is None:
                todo.setdefault(r.path, []).append(r)
            elif known:
                out.add(r.id)
        for path, group in todo.items():
            lines, stale = self._read(path)
            for r in group:
                found = lines is not None and is_declaration(r.language, lines[r.start - 1:r.end])
                if not stale:   # a changed file's lines may not be the chunk's any more
                    self._declarations.put(r.id, found)
                if found:
                    out.add(r.id)
        return out

    def _demote_declarations(self, got: list[tuple[ChunkRow, float]]
                             ) -> list[tuple[ChunkRow, float]]:
        factor = self.weights.stub_prior
        if factor == 1.0:
            return got
        decl = self.declarations(r for r, _ in got)
        if decl:
            got = [(r, s * factor if r.id in decl else s) for r, s in got]
            got.sort(key=lambda x: -x[1])
        return got

    def _users(self, names: Sequence[str], n: int, languages: Sequence[str]) -> set[str]:
        """Chunks whose code mentions one of ``names`` (the lexical index's body column
        holds every identifier whole)."""
        expr = " OR ".join('body : "' + split_qualified(t)[1].lower().replace('"', '""') + '"'
                           for t in names)
        return {i for i, _ in self.catalog.fts_search(expr, n, self.weights.bm25, languages)}

    # -- hits -----------------------------------------------------------------------

    def to_hits(self, ranked: list[tuple[ChunkRow, float]]) -> list[SearchHit]:
        files: dict[str, tuple[list[str] | None, bool]] = {}
        hits = []
        for row, score in ranked:
            if row.path not in files:
                files[row.path] = self._read(row.path)
            lines, stale = files[row.path]
            snippet = ""
            line = row.def_line  # what a person calls the definition's line, not its decorator
            if lines is not None:
                snippet = "\n".join(lines[line - 1:min(row.end, line + SNIPPET_LINES - 1)])
            hits.append(SearchHit(path=row.path, line=line, end_line=row.end, kind=row.kind,
                                  name=row.name, score=round(float(score), 4), text=snippet,
                                  language=row.language, parent=row.parent, stale=stale,
                                  start_line=row.start))
        return hits

    def _read(self, rel: str) -> tuple[list[str] | None, bool]:
        """A file's lines now, and whether it changed since it was indexed."""
        now = self.files.get(rel)
        if now.lines is None:
            return None, True
        manifest: FileRow | None = self.catalog.file(rel)
        stale = manifest is None or manifest.size != now.size or \
            manifest.mtime_ns != now.mtime_ns
        return now.lines, stale

    def regex_hits(self, pattern: str, limit: int, globs: Sequence[str],
                   languages: Sequence[str], match: Callable[[str], bool],
                   *, final: bool = True) -> tuple[list[SearchHit], list[str]]:
        """ripgrep's matches as hits; ``final`` (the answer, not a try before a
        search by meaning): an empty one names the files left out for their size."""
        rules = self.rules()

        def accept(path: str) -> bool:
            return match(path) and not rules.is_ignored(path)
        try:
            matches, notes = ripgrep.grep(self.root, pattern, limit=limit, globs=globs,
                                          languages=languages, accept=accept)
        except ripgrep.RipgrepError as exc:
            raise EngineError(exc.code, exc.message, **exc.detail) from None
        hits = []
        enclosing: dict[str, list[ChunkRow]] = {}
        for m in matches:
            if m.path not in enclosing:
                enclosing[m.path] = self.catalog.chunks_of(m.path)
            owner = None
            for c in enclosing[m.path]:
                if c.start <= m.line <= c.end and c.kind not in ("block", "window"):
                    if owner is None or c.start >= owner.start:
                        owner = c
            hits.append(SearchHit(**m.hit(language=owner.language if owner else None,
                                          parent=owner.name if owner else "")))
        if not hits and final:
            notes = notes + ripgrep.left_out(self.root, globs=globs, languages=languages,
                                             accept=accept)
        return hits, notes
