"""How well a definition's *name* says what a question asks: its own signal in hybrid.

A doc-comment-like question ("Return string representation of sorted dict",
"Check invariants of sorted-key list", "creates a new random UUID") usually
names the answer in plain words, while the answer's neighbours share its body,
its file and most of its vocabulary: ``SortedDict.__repr__`` against
``SortedDict.values``, ``SortedKeyList._check`` against ``SortedSet._check``,
``NewRandom`` against ``NewUUID``.  The embedding sees the name as one line of a
256-word-piece context, and BM25 folds the name column into one score with the
body; neither asks "how much of this name does the question say?".  That is what
``name_match`` measures: the share of the words of the chunk's name and (at half
weight) its enclosing class that the question contains, where a word matches

* itself, after a light suffix strip (``entries``/``entry``, ``enabled``/``enable``);
* a longer or shorter form of itself (``repr``/``representation``,
  ``init``/``initialize``, ``attr``/``attributes``: one is a prefix of the other,
  both >= 3 letters);
* an abbreviation (``msg``/``message``, ``fn``/``function``, ``ctx``/``context``,
  ``eq``/``equality``: 2-4 letters, same first letter, the others in order);
* the name words programmers use for a verb doc comments use (``CODE_VERBS``:
  "create" -> ``new``/``make``/``build``; "check whether" -> ``is``/``has``...);
* and a name word written as one (``tempfilepager``, ``lazyrouter``, ``getchar``:
  no case change or underscore to split it at) matches when it is made, end to
  end, of pieces of >= 3 letters the question says by the rules above (a piece
  of 3 letters only as itself or a longer or shorter form, not an abbreviation).

Stdlib only, no per-index state: the cost is a few dictionary look-ups per
candidate (names are split once, ``lru_cache``).  The weight is chosen
leave-one-corpus-out by ``bench/eval_quality.py`` (bench/QUALITY.md).
"""

from __future__ import annotations

from functools import lru_cache

from .tokens import STOPWORDS, query_terms, split_identifier

#: Verbs of doc comments and questions -> words code names use for them.  General
#: conventions of naming (Go's ``NewX``, ``isX``/``hasX`` predicates, ``__repr__``,
#: ``len``), not words of any one code base; written while reading the eval's
#: failures, so the held-out set is its honest test (bench/QUALITY.md, third round).
CODE_VERBS: tuple[tuple[str, str], ...] = (
    ("create creat construct make build new instantiate initialize initialise",
     "new create make build init constructor ctor"),
    ("check determine whether verify test", "is has can should check valid validate"),
    ("get retrieve fetch obtain lookup look", "get"),
    ("set assign", "set"),
    ("remove delete discard clear drop", "remove delete del discard clear pop drop unset"),
    ("add append insert register", "add append insert push register"),
    ("parse decode read load", "parse decode read load unmarshal"),
    ("serialize encode write dump", "encode marshal write dump serialize"),
    ("compare equal equality", "eq cmp compare equal"),
    ("iterate iterator", "iter each next"),
    ("representation", "repr str string"),
    ("length size", "len count size"),
    ("copy clone duplicate", "copy clone dup"),
)

_SUFFIXES = ("ies", "ing", "ed", "es", "s")

#: Prefixes of question words are indexed up to this length: name words are short
#: (``representation`` is 14), longer ones are compared one by one.
MAX_PREFIX = 32
#: The shortest piece of a compound name word (``getchar`` = ``get`` + ``char``).
MIN_PIECE = 3


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light suffix strip (no stemmer package is a dependency): enough for
    plurals and -ed/-ing, which is what separates a question's words from a name's."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[:-len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def _verb_table() -> dict[str, frozenset[str]]:
    table: dict[str, set[str]] = {}
    for verbs, names in CODE_VERBS:
        for verb in verbs.split():
            table.setdefault(stem(verb), set()).update(stem(n) for n in names.split())
    return {k: frozenset(v) for k, v in table.items()}


_VERBS = _verb_table()


def _abbreviates(short: str, long: str) -> bool:
    """``msg`` in ``message``: 2-4 letters, the same first letter, the rest in order."""
    if not 2 <= len(short) <= 4 or short[0] != long[0]:
        return False
    rest = iter(long[1:])
    return all(ch in rest for ch in short[1:])


@lru_cache(maxsize=65536)
def name_words(name: str) -> tuple[str, ...]:
    """The stemmed content words of an identifier."""
    return tuple(stem(w) for w in split_identifier(name) if len(w) > 1 and w not in STOPWORDS)


class QuestionWords:
    """A question's stemmed words with the name words its verbs stand for, indexed
    so that asking about a name word is a few set look-ups (a hybrid query asks
    about every word of ~200 candidates' names); built once per query."""

    def __init__(self, text: str) -> None:
        words = {stem(t) for t in query_terms(text)}
        for w in list(words):
            words |= _VERBS.get(w, frozenset())
        self.words = frozenset(words)
        # every prefix of >= 3 letters of a question word: a name word that is one
        # ("repr" of "representation") matches.  Only the first MAX_PREFIX letters'
        # worth: a word's prefixes cost the square of its length (one 8 KB token was
        # 31 MiB and 50 ms a query), and the rare longer word is asked the slow way
        self._prefixes = frozenset(q[:k] for q in words
                                   for k in range(3, min(len(q), MAX_PREFIX) + 1))
        self._long = tuple(q for q in words if len(q) > MAX_PREFIX)
        self._by_letter: dict[str, list[str]] = {}
        for q in words:
            self._by_letter.setdefault(q[0], []).append(q)
        self._seen: dict[str, bool] = {}
        self._whole: dict[str, bool] = {}

    def says(self, word: str) -> bool:
        """Whether the question says this (stemmed) name word: the same word, one
        a prefix of the other (both >= 3 letters), one abbreviating the other, or
        a word written as one whose pieces it says (``_compound``)."""
        got = self._seen.get(word)
        if got is None:
            got = self._says_whole(word) or (
                MIN_PIECE * 2 <= len(word) <= MAX_PREFIX and self._compound(word))
            self._seen[word] = got
        return got

    def _says_whole(self, word: str) -> bool:
        """``says`` without looking inside the word; cached, as the compound test
        asks it about every piece of every name word the question does not say."""
        got = self._whole.get(word)
        if got is None:
            got = self._says_plainly(word) or any(
                _abbreviates(q, word) if len(q) < len(word) else
                len(q) > len(word) and _abbreviates(word, q)
                for q in self._by_letter.get(word[0], ()))
            self._whole[word] = got
        return got

    def _says_plainly(self, word: str) -> bool:
        """The question says the word itself or a longer or shorter form of it
        (no abbreviation): the test a short piece of a compound must pass."""
        return word in self.words or (len(word) >= 3 and (
            self._is_prefix(word)
            or any(word[:k] in self.words for k in range(3, min(len(word), MAX_PREFIX + 1)))
            or any(word.startswith(q) for q in self._long if len(q) < len(word))))

    def _says_piece(self, piece: str) -> bool:
        """Whether the question says a piece of a compound name word.  A piece of
        MIN_PIECE letters must be said plainly: three letters abbreviate too much
        ("retry with exponential backoff when the connection fails" would say
        ``context`` as ``cont`` + ``ext`` and ``content`` as ``cont`` + ``ent``);
        longer pieces may also be abbreviations (``lazy`` of "lazily")."""
        if len(piece) <= MIN_PIECE:
            return self._says_plainly(piece)
        return self._says_whole(piece)

    def _compound(self, word: str) -> bool:
        """Whether a name word written as one (``tempfilepager``, ``getchar``,
        ``lazyrouter``, ``setitem``: no case change or underscore to split it at) is
        made, end to end, of pieces the question says, each of >= MIN_PIECE letters
        (a piece that is itself such a word is covered by its own pieces).

        Most name words are no compound of the question's words, and the search
        over their pieces costs ~10x the plain test (bench: a query over 2000 long
        names): so it starts only when the question says the word's first
        MIN_PIECE letters plainly (one set look-up), which a first piece said
        plainly implies; a compound whose first piece is said only as an
        abbreviation is given up for that."""
        if word[:MIN_PIECE] not in self._prefixes:
            return False
        ends = {0}
        for i in range(len(word) - MIN_PIECE + 1):
            if i in ends:
                ends.update(j for j in range(i + MIN_PIECE, len(word) + 1)
                            if (i, j) != (0, len(word)) and self._says_piece(word[i:j]))
        return len(word) in ends

    def _is_prefix(self, word: str) -> bool:
        """Whether ``word`` begins a question word."""
        if len(word) <= MAX_PREFIX:
            return word in self._prefixes
        return any(q.startswith(word) for q in self._long)

    def name_match(self, name: str, parent: str = "", parent_weight: float = 1.0) -> float:
        """The share (0..1) of the name's words the question says, the enclosing
        class's words counting ``parent_weight`` each: a question names the answer's
        class ("... of sorted dict") less surely than the answer, and often names
        objects that are other methods' classes ("invokes a command in an isolated
        environment" is ``CliRunner.invoke``, not ``Command.invoke``); counting
        them less narrows what such a class wins."""
        own, outer = name_words(name), name_words(parent) if parent else ()
        total = len(own) + parent_weight * len(outer)
        if not total:
            return 0.0
        said = sum(1 for w in own if self.says(w))
        said_outer = sum(1 for w in outer if self.says(w))
        return (said + parent_weight * said_outer) / total
