"""A process and its descendants: who they are and the memory they hold together.

The one place for the sum ragexd's process runtime holds a worker to (its memory
limit, polled about once a second per worker), the worker reports in ``status``,
and the worker's bulk-embedding planner checks its headroom against.  It avoids
psutil's ``children()``, which reads every process in /proc (~5 ms on a desktop,
1 % of a core per worker at 1 Hz): the kernel's per-task ``children`` lists give
the same tree for a few microseconds.  A child started by any thread counts (the
bulk child is started by the indexing thread, so it is listed under that task).
"""

from __future__ import annotations

import os

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def descendants(pid: int) -> list[int]:
    """All descendants of ``pid``, from /proc/<pid>/task/<tid>/children."""
    found: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            tids = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{current}/task/{tid}/children", "rb") as fh:
                    kids = [int(x) for x in fh.read().split()]
            except (OSError, ValueError):
                if current == pid and not os.path.exists(f"/proc/{pid}/task/{tid}/children"):
                    # Kernel without CONFIG_PROC_CHILDREN: ask psutil (slower, same answer).
                    import psutil

                    try:
                        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
                    except psutil.Error:
                        return []
                continue
            found.extend(kids)
            todo.extend(kids)
    return found


def rss(pid: int) -> int | None:
    """Resident bytes of ``pid`` alone (None if it is gone or unreadable)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None


def tree_rss(pid: int) -> int | None:
    """Resident bytes of ``pid`` and all its descendants (None if ``pid`` is gone);
    a descendant that exits meanwhile counts for nothing."""
    total = rss(pid)
    if total is None:
        return None
    return total + sum(rss(child) or 0 for child in descendants(pid))
