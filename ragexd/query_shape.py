"""Guessing what kind of search a query wants (``auto`` mode).

People type three kinds of things into a code search: an identifier they
remember (``parse_config``, ``HTTPClient``, ``Message.get_payload``), a pattern
(``foo.*bar``, ``^def \\w+``), or a question in words.  Each has a best engine:
the symbol table, ripgrep, and the embedding/lexical hybrid.

Stdlib only and outside the engine: the client decides by the same rule
whether an ``auto`` query can take the direct regex path (``ragexctl/direct.py``)
without asking a worker, and the two must never disagree.
"""

from __future__ import annotations

import re

_IDENT = r"[A-Za-z_$][\w$]*"
_QUALIFIED = re.compile(rf"{_IDENT}(?:(?:\.|::|#|->){_IDENT})*(?:\(\))?")
_STRONG_REGEX = re.compile(r"\\[wWdDsSbBAz]|\.[*+?]|\(\?|^\^|\$$")
_WEAK_REGEX = re.compile(r"\\[.()\[\]{}*+?|^$\\]|\[[^\]]+\]|\||\{\d+(,\d*)?\}")
_WORD = re.compile(r"[A-Za-z]{2,}")


def shape(text: str) -> str:
    """``symbol``, ``regex`` or ``natural``.

    Without spaces: an identifier is a symbol, anything else a pattern.  With
    spaces, a pattern needs a strong sign (``\\w``, ``.*``, ``^``/``$`` anchors,
    ``(?``), or a weak one (``[...]``, ``|``) in a short query: a sentence that
    happens to contain brackets is still a question.
    """
    q = text.strip()
    if not q:
        return "natural"
    if not any(ch.isspace() for ch in q):
        if _QUALIFIED.fullmatch(q):
            return "symbol"
        return "regex"
    if _STRONG_REGEX.search(q):
        return "regex"
    if _WEAK_REGEX.search(q) and len(_WORD.findall(q)) < 4:
        return "regex"
    return "natural"


def is_code_token(token: str) -> bool:
    """Whether a word of a question is itself an identifier (``get_payload``,
    ``HTTPClient``, ``os.path``), worth a symbol lookup inside hybrid search."""
    return bool(re.fullmatch(_QUALIFIED, token)) and (
        "_" in token.strip("_") or re.search(r"[a-z][A-Z]", token) is not None
        or re.search(r"[A-Z]{2,}[a-z]", token) is not None
        or any(sep in token for sep in (".", "::", "#")))


def split_qualified(text: str) -> tuple[str, str]:
    """``Message.get_payload()`` -> ("Message", "get_payload")."""
    q = text.strip()
    if q.endswith("()"):
        q = q[:-2]
    parts = [p for p in re.split(r"\.|::|#|->", q) if p]
    if len(parts) >= 2:
        return parts[-2], parts[-1]
    return "", parts[0] if parts else ""


#: A question about an identifier's *uses*: "where is parse_config called", "who calls
#: it", "which functions use HTTPClient", "usages of X", "callers of X".  It has to
#: start with the question word: a description ("a proxy that uses mod_name", "handle
#: cases where send() is called") is about the code that does it, and doc comments
#: say that often; "usage" alone is a CLI's help text ("flag name and usage string").
_USAGE = re.compile(r"^\W*(where|who|which|what)\b.*\b(called|calls|calling|use|used|uses|"
                    r"invoked|invokes|referenced|references)\b|\b(usages|callers|call sites?)\b")


def asks_for_usage(text: str) -> bool:
    """Whether a question asks where something is used ("where is parse_config
    called with a timeout"): then the answer is a caller, and the named
    identifier's own definition, which repeats its name more than any caller, is
    not it."""
    return bool(_USAGE.search(text.lower()))
