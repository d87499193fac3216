"""Declarations without a body, in ordinary source files: they rank like type stubs.

``@typing.overload`` in a ``.py`` file and a TypeScript overload signature or
``declare function`` in a ``.ts`` file say a function's name, parameters and
types in a few lines, often two or three times over, right above the
implementation.  To the embedding and to BM25 they look like the implementation
condensed, so they took rank 1 from it on click (``get_current_context``,
``Parameter.get_default``, ``Context.invoke``, ``command``, ``group``: a held-out
corpus where ragex fell below plain MiniLM).  A question is about the code that
runs; a declaration is the same thing as a stub, in a different file.

Decided at search time from the chunk's own lines (the catalog keeps spans, not
decorators or bodies), so no re-cataloguing: only short chunks can be body-less,
and the answer is cached by chunk id, which includes the content hash, so it never
goes stale (a bounded LRU in search.py; a file's lines are read once while it
stays the same: filelines.py).

Abstract methods (``...``/``pass``/``raise NotImplementedError`` bodies) are left
alone: an abstract method's doc comment is often the only description of what
its implementations do, so it is a fair answer.
"""

from __future__ import annotations

import re
from typing import Sequence

#: A body-less declaration spans its decorators and its signature: longer chunks
#: are not read at all (most candidates), which keeps the first query's file reads few.
MAX_DECLARATION_LINES = 12

_OVERLOAD = re.compile(r"^\s*@\s*(?:[A-Za-z_][\w.]*\.)?overload\s*(?:#.*)?$")
_PY_DEF = re.compile(r"^\s*(?:async\s+)?def\s")
#: what may stand between a function's first decorator and its ``def``: other
#: decorators, blank lines and comments (and a decorator's arguments, spanning lines)
_PY_PRELUDE = re.compile(r"^\s*(?:@|#|$)")
_OPENERS, _CLOSERS = "([{", ")]}"
_TS_FUNCTION = re.compile(r"^\s*(?:export\s+)?(?:default\s+)?(?:declare\s+)?(?:async\s+)?"
                          r"function\b")
_TS_LANGUAGES = frozenset({"typescript", "tsx", "javascript"})


def is_declaration(language: str, lines: Sequence[str]) -> bool:
    """Whether a chunk (its source ``lines``, decorators included) declares a
    function without defining it: a Python ``@overload``, or a TypeScript
    ``function`` signature that ends in ``;`` instead of a body."""
    if not lines or len(lines) > MAX_DECLARATION_LINES:
        return False
    if language == "python":
        # only decorators, blank lines and comments may come before the ``def``: a
        # class whose first method is an @overload is not itself a declaration
        overload, depth = False, 0
        for line in lines:
            if depth == 0:
                if _PY_DEF.match(line):
                    return overload
                if _OVERLOAD.match(line):
                    overload = True
                elif not _PY_PRELUDE.match(line):
                    return False
            depth = max(0, depth + sum(line.count(c) for c in _OPENERS)
                        - sum(line.count(c) for c in _CLOSERS))
        return False
    if language in _TS_LANGUAGES:
        code = [ln for ln in (x.split("//", 1)[0].rstrip() for x in lines) if ln.strip()]
        return bool(code) and bool(_TS_FUNCTION.match(code[0])) and code[-1].endswith(";") \
            and not code[-1].endswith("};")
    return False
