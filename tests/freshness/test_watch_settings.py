"""Watching can be turned off, and it never keeps an idle worker alive.

Each test runs its own ragexd (its configuration differs), so each loads the
model once.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from tests.harness import make_project, pid_alive, poll, short_tmp, write
from tests.harness.live import LiveRagex


@pytest.fixture
def proj():
    root = make_project(short_tmp("rx-proj-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


HAVERSINE = '''
    def compute_invoice_total(items, tax_rate):
        """Sum the line items of an invoice and add sales tax."""
        subtotal = sum(item.price * item.quantity for item in items)
        return round(subtotal * (1 + tax_rate), 2)


    def haversine_distance(lat1, lon1, lat2, lon2):
        """Great-circle distance in kilometres between two points on Earth."""
        return 0.0
    '''


def test_watch_false_turns_watching_off_and_results_are_marked_stale(proj: Path) -> None:
    live = LiveRagex(RAGEX_WATCH="false").open()
    try:
        live.index(proj)
        status = poll(lambda: (lambda s: s if s.get("model_loaded") else None)(
            live.worker_status(proj)), 120.0, 0.2)[0]
        assert status["watch"] is False, status
        write(proj / "billing.py", HAVERSINE)
        time.sleep(2.5)  # longer than the watcher would ever take
        # regex still reads the live file
        hits = live.search(proj, r"def haversine_distance", mode="regex")
        assert [h["path"] for h in hits] == ["billing.py"]
        # but the index did not follow: no new symbol, and the old chunk is stale
        hits = live.search(proj, "haversine_distance", mode="symbol")
        assert not any(h["name"] == "haversine_distance" for h in hits), hits
        hits = live.search(proj, "sum invoice line items and add sales tax", mode="semantic",
                           limit=3)
        mine = [h for h in hits if h["path"] == "billing.py"]
        assert mine and all(h["stale"] for h in mine), hits
        assert live.worker_status(proj)["index"]["pending_files"] == 0
        # an explicit index brings it back
        summary = live.index(proj)
        assert summary["files_indexed"] == 1, summary
        hits = live.search(proj, "haversine_distance", mode="symbol")
        assert [h["path"] for h in hits if h["name"] == "haversine_distance"] == ["billing.py"]
        hits = live.search(proj, "sum invoice line items and add sales tax", mode="semantic",
                           limit=3)
        assert not any(h["stale"] for h in hits), hits
    finally:
        left = live.close()
    assert not left, f"processes left after SHUTDOWN: {left}"


def test_watching_never_keeps_an_idle_worker_alive(proj: Path) -> None:
    live = LiveRagex(RAGEX_DAEMON_TIMEOUT="6s").open()
    try:
        live.index(proj)
        live.wait_watching(proj)
        worker = live.workers(proj)[0]
        log_path = Path(worker["log_path"])
        pid = worker["pid"]
        # From now on no request reaches the worker (STATUS is answered by ragexd):
        # only saved files, which the worker re-indexes by itself.
        t0 = time.monotonic()
        state = worker["state"]
        n = 0
        while time.monotonic() - t0 < 40.0:
            n += 1
            write(proj / "billing.py", HAVERSINE.replace("0.0", f"{n}.0"))
            time.sleep(0.5)
            state = live.workers(proj)[0]["state"]
            if state not in ("ready", "indexing", "starting"):
                break
        elapsed = time.monotonic() - t0
        if state == "stopping":
            state = poll(lambda: (lambda s: s if s != "stopping" else None)(
                live.workers(proj)[0]["state"]), 15.0, 0.1)[0]
        assert state == "idle-stopped", (state, elapsed)
        assert elapsed < 30.0, f"stopped only after {elapsed:.0f} s of edits"
        poll(lambda: not pid_alive(pid), 15.0, 0.1)
        # and the edits were being re-indexed while it lived (so watching was on)
        runs = re.findall(r"re-indexed (\d+) changed", log_path.read_text(errors="replace"))
        assert runs, "the worker never re-indexed the saved file"
    finally:
        left = live.close()
    assert not left, f"processes left after SHUTDOWN: {left}"

