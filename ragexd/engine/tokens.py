"""Turning code identifiers into words.

Both the embedding context and the lexical (FTS5) index want ``parse_config``
and ``HTTPClient`` to meet a question that says "parse the config" or "http
client": the model never saw our identifiers, and BM25 matches whole tokens.
"""

from __future__ import annotations

import re
from functools import lru_cache

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_SEPARATORS = re.compile(r"[_\W]+")
#: Distinct identifiers whose expansion is remembered: a tree repeats a few
#: thousand names (``self``, ``np``, ``X``) millions of times.
IDENT_CACHE = 1 << 16

STOPWORDS = frozenset("""
a an the and or of to in on for with by from at as is are be been being was were it its this
that these those into than then if else when while do does did not no yes can could should would
will may might must shall so such some any all each every which who whom whose what where how why
there here their them they we you your our us i me my he she his her him also only just more most
other same very too return returns given using use used via about over under after before between
""".split())


def split_identifier(name: str) -> list[str]:
    """``get_HTTPResponse2`` -> ``["get", "http", "response", "2"]`` (lower case)."""
    words: list[str] = []
    for part in _SEPARATORS.split(name):
        if part:
            words.extend(w.lower() for w in _CAMEL.findall(part))
    return words


@lru_cache(maxsize=IDENT_CACHE)
def _ident_words(ident: str) -> tuple[str, ...]:
    """One identifier as ``words_of`` spells it: whole (lower case), then its
    words when it has several.  Cached: splitting every occurrence anew was
    40 % of a first index's cataloguing time (1.5 M calls for scikit-learn)."""
    parts = split_identifier(ident)
    low = ident.lower()
    return (low, *parts) if len(parts) > 1 else (low,)


def identifiers(text: str) -> list[str]:
    return _IDENT.findall(text)


def words_of(text: str) -> list[str]:
    """Every identifier in ``text`` both whole (lower case) and split into words."""
    out: list[str] = []
    for ident in _IDENT.findall(text):
        out.extend(_ident_words(ident))
    return out


def query_terms(text: str, *, keep_stopwords: bool = False) -> list[str]:
    """Distinct search terms of a question, in order, stop words dropped."""
    seen: dict[str, None] = {}
    for w in words_of(text):
        if len(w) < 2 or (not keep_stopwords and w in STOPWORDS):
            continue
        seen.setdefault(w, None)
    return list(seen)
