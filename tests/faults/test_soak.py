"""Soak: ragexd and one worker under mixed requests for RAGEX_SOAK_SECONDS
(default 600).  Growth of resident memory, leaked descriptors and zombie
children are what a warm daemon that lives for weeks must not have.

Clients come and go (a new connection every 40 requests, as each ragexctl run
is one), every search mode runs, STATUS and WORKER_STATUS run, and a file is
changed and re-indexed every few seconds (then found under its new name).
"""

from __future__ import annotations

import os
import statistics
import time
from collections import Counter

import psutil
import pytest

from ragexd.protocol import Op
from tests.harness import Client, RagexInstance, short_tmp, write_tree

from .helpers import figure, percentiles

pytestmark = [pytest.mark.faults, pytest.mark.soak]

SOAK_SECONDS = float(os.environ.get("RAGEX_SOAK_SECONDS", "600"))
SAMPLE_EVERY = 5.0
CHANGE_EVERY = 3.0
RECONNECT_EVERY = 40
MIB = 2**20

SEARCHES = [
    ("semantic", "connect to a tcp server", "open_tcp_connection"),
    ("regex", r"def helper_function_\d+", None),
    ("symbol", "slugify", "slugify"),
    ("hybrid", "refund window for premium customers", None),
    ("auto", "compute_invoice_total", "compute_invoice_total"),
]


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _quarter_medians(values: list[float]) -> tuple[float, float]:
    q = max(1, len(values) // 4)
    return statistics.median(values[:q]), statistics.median(values[-q:])


def test_soak_mixed_requests() -> None:
    base = short_tmp()
    rx = RagexInstance(base, RAGEX_WATCH="0")
    try:
        rx.start()
        root = write_tree(base / "proj", files=12)
        changing = root / "changing.py"
        changing.write_text("def changing_v0():\n    return 0\n")
        client = Client(rx.endpoint)
        assert client.call(Op.INDEX, root, 600, rebuild=False, paths=None).ok
        for mode, query, _ in SEARCHES * 2:                      # warm every path once
            assert client.call(Op.SEARCH, root, 120, query=query, mode=mode, limit=5).ok
        daemon = psutil.Process(rx.pid)
        worker_pid = client.worker(root)["pid"]
        worker = psutil.Process(worker_pid)
        fd0, threads0, wfd0 = _fds(rx.pid), daemon.num_threads(), _fds(worker_pid)

        samples: list[tuple[float, int, int]] = []
        codes: Counter[str] = Counter()
        failures: list[str] = []
        latencies: list[float] = []
        version, requests = 0, 0
        start = time.monotonic()
        next_sample = next_change = start
        end = start + SOAK_SECONDS
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_sample:
                samples.append((now - start, daemon.memory_info().rss, worker.memory_info().rss))
                next_sample += SAMPLE_EVERY
            if requests and requests % RECONNECT_EVERY == 0:
                client.close()
                client = Client(rx.endpoint)
            kind = requests % 8
            t0 = time.perf_counter()
            if now >= next_change:
                version += 1
                changing.write_text(f"def changing_v{version}(x):\n    return x + {version}\n")
                reply = client.call(Op.INDEX, root, 120, rebuild=False, paths=["changing.py"])
                what, expect = "index", None
                if reply.ok:
                    found = client.call(Op.SEARCH, root, 60, query=f"changing_v{version}",
                                        mode="symbol", limit=1)
                    if not found.ok or [h["name"] for h in found.result["hits"]] != \
                            [f"changing_v{version}"]:
                        failures.append(f"v{version} not found after its index: {found}")
                next_change = time.monotonic() + CHANGE_EVERY
            elif kind < 5:
                mode, query, expect = SEARCHES[kind]
                reply = client.call(Op.SEARCH, root, 60, query=query, mode=mode, limit=5)
                what = mode
                if reply.ok and (not reply.result["hits"] or (
                        expect and reply.result["hits"][0]["name"] != expect)):
                    failures.append(f"{mode} {query!r}: {reply.result['hits'][:1]}")
            elif kind == 5:
                reply, what = client.call(Op.STATUS, timeout=30), "status"
            elif kind == 6:
                reply, what = client.call(Op.WORKER_STATUS, root, 30), "worker_status"
            else:
                reply, what = client.call(Op.LIST, timeout=30), "ls"
            latencies.append(time.perf_counter() - t0)
            requests += 1
            codes["ok" if reply.ok else f"{what}:{reply.error.code.value}"] += 1
            if not reply.ok:
                failures.append(f"{what}: {reply.error.code.value} {reply.error.message[:100]}")
        elapsed = time.monotonic() - start
        samples.append((elapsed, daemon.memory_info().rss, worker.memory_info().rss))
        client.close()

        fd1, threads1, wfd1 = _fds(rx.pid), daemon.num_threads(), _fds(worker_pid)
        zombies = [c.pid for c in daemon.children(recursive=True)
                   if c.status() == psutil.STATUS_ZOMBIE]
        info = Client(rx.endpoint)
        try:
            now_worker = info.worker(root)
        finally:
            info.close()
        d_first, d_last = _quarter_medians([s[1] for s in samples])
        w_first, w_last = _quarter_medians([s[2] for s in samples])
        pct = percentiles(latencies)
        figure("soak",
               f"{elapsed:.0f} s, {requests} requests ({requests / elapsed:.0f}/s, {version} "
               f"file changes re-indexed), {sum(v for k, v in codes.items() if k != 'ok')} errors;"
               f" latency p50 {pct[50] * 1000:.1f} ms p99 {pct[99] * 1000:.0f} ms; RSS median "
               f"first->last quarter: ragexd {d_first / MIB:.1f}->{d_last / MIB:.1f} MiB, worker "
               f"{w_first / MIB:.0f}->{w_last / MIB:.0f} MiB; ragexd fds {fd0}->{fd1}, threads "
               f"{threads0}->{threads1}; worker fds {wfd0}->{wfd1}; zombies {len(zombies)}",
               seconds=elapsed, requests=requests, ragexd_rss=(d_first, d_last),
               worker_rss=(w_first, w_last), fds=(fd0, fd1))
        assert not failures, failures[:5]
        assert codes == {"ok": requests}, codes
        assert now_worker["pid"] == worker_pid and now_worker["restarts"] == 0, now_worker
        assert d_last < d_first + 50 * MIB, (d_first, d_last)
        assert w_last < w_first + 150 * MIB, (w_first, w_last)
        assert fd1 <= fd0 + 5, (fd0, fd1)
        # The worker's descriptors are recorded above; their growth with each INDEX
        # request is pinned by test_load.py::test_repeated_index_requests_leak_no_descriptors.
        assert threads1 <= threads0 + 2, (threads0, threads1)
        assert not zombies, zombies
    finally:
        rx.cleanup()
