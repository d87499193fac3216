"""Warm at login: ``ragexd --prestart N`` starts the N most recently used
projects' workers before anyone asks.

Two real projects are used (a request to each makes them "recent", the second
one last), ragexd is stopped, started again with ``--prestart 1``, and STATUS
- which never starts a worker itself - must show the most recent project's
worker starting or ready, and not the other one's.
"""

from __future__ import annotations

import time
from pathlib import Path

from ragexd.protocol import Op
from tests.harness import RagexInstance

WARM_STATES = {"starting", "ready", "indexing"}


def make_project(path: Path, text: str) -> Path:
    (path / ".git").mkdir(parents=True)
    (path / "main.py").write_text(text)
    return path


def workers_by_root(status: dict) -> dict[str, dict]:
    return {w["root"]: w for w in status.get("workers", [])}


def test_prestart_warms_the_most_recent_project(rx_tmp):
    env = {"RAGEX_DAEMON_PRESTART": "0", "RAGEX_WATCH": "0"}
    older = make_project(rx_tmp / "older", "def alpha():\n    return 1\n")
    newer = make_project(rx_tmp / "newer", "def beta():\n    return 2\n")

    first = RagexInstance(rx_tmp, ("--prestart", "0"), **env).start(60)
    try:
        for root in (older, newer):  # `newer` is used last, so it is the most recent
            reply = first.client().call(Op.WORKER_STATUS, root, timeout=120)
            assert reply.ok, reply.error
            time.sleep(1.1)
    finally:
        try:
            assert first.shutdown() == 0, first.output()
        finally:
            first.close()

    second = RagexInstance(rx_tmp, ("--prestart", "1"), **env).start(60)
    client = second.client()
    try:
        deadline = time.monotonic() + 30
        seen: dict[str, dict] = {}
        while time.monotonic() < deadline:
            status = client.call(Op.STATUS, timeout=10).raise_for_error()
            seen = workers_by_root(status)
            if seen.get(str(newer), {}).get("state") in WARM_STATES:
                break
            time.sleep(0.2)
        assert seen.get(str(newer), {}).get("state") in WARM_STATES, \
            f"the most recent project was not pre-started: {seen}\n{second.output()}"
        assert seen.get(str(older), {}).get("state") not in WARM_STATES, \
            f"--prestart 1 started more than the most recent project: {seen}"
    finally:
        try:
            assert second.shutdown() == 0, second.output()
        finally:
            second.close()
