"""Symbol search over the catalog: definitions by name.

Tiers, best first: exact name, same name ignoring case, prefix, substring,
then fuzzy (difflib) for a misremembered name.  Within a tier, definitions
(class, function, method, ...) come before anything else, a matching parent
(``Message.get_payload``) before other owners, and shorter paths first.
"""

from __future__ import annotations

import difflib
import threading
from typing import Callable, Sequence

from .catalog import Catalog, ChunkRow
from .languages import DEFINITION_KINDS
from ..query_shape import split_qualified

_KIND_RANK = {k: i for i, k in enumerate(("class", "function", "method", "interface", "struct",
                                          "enum", "trait", "type", "module", "object",
                                          "record"))}
TIER_SCORES = {"exact": 1.0, "nocase": 0.9, "prefix": 0.7, "substring": 0.5, "fuzzy": 0.4}


def _like_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class SymbolIndex:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._names: tuple[int, list[str]] | None = None
        self._lock = threading.Lock()

    def _all_names(self) -> list[str]:
        gen = self.catalog.generation
        with self._lock:
            if self._names is None or self._names[0] != gen:
                self._names = (gen, self.catalog.names())
            return self._names[1]

    def search(self, query: str, limit: int, *, languages: Sequence[str] = (),
               accept: Callable[[str], bool] | None = None, fuzzy: bool = True,
               substring: bool = True) -> list[tuple[ChunkRow, float, str]]:
        """(chunk, score, tier) best first, at most ``limit``."""
        parent, name = split_qualified(query)
        if not name:
            return []
        kinds = ",".join(f"'{k}'" for k in DEFINITION_KINDS)
        lang_sql = ""
        lang_params: list[str] = []
        if languages:
            lang_sql = f" AND language IN ({','.join('?' * len(languages))})"
            lang_params = list(languages)
        out: list[tuple[ChunkRow, float, str]] = []
        seen: set[str] = set()
        cap = max(limit * 5, 200)

        def take(rows: list[ChunkRow], tier: str) -> None:
            base = TIER_SCORES[tier]
            rows = [r for r in rows if r.id not in seen and (accept is None or accept(r.path))]
            rows.sort(key=lambda r: (0 if parent and r.parent == parent else 1,
                                     _KIND_RANK.get(r.kind, 99),
                                     len(r.name), r.path.count("/"), r.path, r.start))
            for r in rows:
                seen.add(r.id)
                bonus = 0.05 if parent and r.parent == parent else 0.0
                out.append((r, round(base + bonus, 4), tier))

        def q(where: str, params: Sequence[object]) -> list[ChunkRow]:
            return self.catalog.query_chunks(f"kind IN ({kinds}) AND {where}{lang_sql}",
                                             [*params, *lang_params], cap)

        take(q("name = ?", [name]), "exact")
        if len(out) < limit:
            take(q("name = ? COLLATE NOCASE", [name]), "nocase")
        if len(out) < limit:
            take(q("name LIKE ? ESCAPE '\\'", [_like_escape(name) + "%"]), "prefix")
        if substring and len(out) < limit and len(name) >= 3:
            take(q("name LIKE ? ESCAPE '\\'", ["%" + _like_escape(name) + "%"]), "substring")
        if fuzzy and len(out) < limit:
            names = self._all_names()
            lowered: dict[str, list[str]] = {}
            for n in names:
                lowered.setdefault(n.lower(), []).append(n)
            close = difflib.get_close_matches(name.lower(), list(lowered), n=limit, cutoff=0.75)
            for cand in close:
                ratio = difflib.SequenceMatcher(None, name.lower(), cand).ratio()
                rows = []
                for real in lowered[cand]:
                    rows.extend(q("name = ?", [real]))
                before = len(out)
                take(rows, "fuzzy")
                for i in range(before, len(out)):
                    r, _, t = out[i]
                    out[i] = (r, round(TIER_SCORES["fuzzy"] * ratio, 4), t)
        # a qualified query that matched its parent nowhere still answers by name
        return out[:limit]
