"""The most-recently-used projects, kept in ``<state_dir>/recent.json``.

It answers one question at login: which projects' workers are worth warming
before anyone asks (``ragexd --prestart N``).  Writes are rate-limited per
project because a search must not pay for a file write every time.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

log = logging.getLogger("ragexd.recent")

MAX_ENTRIES = 50
#: A project's timestamp is rewritten at most this often.
WRITE_INTERVAL = 60.0


class RecentProjects:
    def __init__(self, path: Path, max_entries: int = MAX_ENTRIES) -> None:
        self.path = path
        self.max_entries = max_entries
        self._entries: dict[str, dict[str, object]] = {}
        self._written: dict[str, float] = {}
        self.load()

    def load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
            items = data.get("projects", []) if isinstance(data, dict) else []
        except FileNotFoundError:
            items = []
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s: %s", self.path, exc)
            items = []
        self._entries = {}
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("id"), str) \
                    and isinstance(item.get("root"), str):
                self._entries[item["id"]] = {"id": item["id"], "root": item["root"],
                                             "last_used": float(item.get("last_used", 0) or 0)}

    def save(self) -> None:
        entries = sorted(self._entries.values(), key=lambda e: -float(e["last_used"]))
        entries = entries[: self.max_entries]
        self._entries = {str(e["id"]): e for e in entries}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"projects": entries}, indent=1))
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("cannot write %s: %s", self.path, exc)

    def touch(self, project_id: str, root: str, now: float | None = None,
              force: bool = False) -> bool:
        """Mark a project used; returns True when the file was written."""
        now = time.time() if now is None else now
        self._entries[project_id] = {"id": project_id, "root": root, "last_used": now}
        if not force and now - self._written.get(project_id, float("-inf")) < WRITE_INTERVAL:
            return False
        self._written[project_id] = now
        self.save()
        return True

    def remove(self, project_id: str) -> None:
        if self._entries.pop(project_id, None) is not None:
            self.save()

    def most_recent(self, n: int) -> list[tuple[str, str]]:
        """(id, root) of the ``n`` most recently used projects, newest first."""
        entries = sorted(self._entries.values(), key=lambda e: -float(e["last_used"]))
        return [(str(e["id"]), str(e["root"])) for e in entries[: max(0, n)]]
