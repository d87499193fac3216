"""Load: many clients at once while an index runs, a burst past the queue bound,
and ten projects under one memory budget — against a real ragexd and workers."""

from __future__ import annotations

import os
import shutil
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ragexd.protocol import Op, Progress, Reply, Request
from tests.harness import Client, RagexInstance, short_tmp, wait_for, write_corpus, write_tree

from .helpers import HeartbeatProbe, figure, percentiles

pytestmark = pytest.mark.faults

QUEUE_SIZE = 24
CLIENTS, SEARCHES = 20, 50
QUERIES = [
    ("semantic", "connect to a tcp server", "open_tcp_connection"),
    ("regex", r"def compute_\w+\(", None),
    ("symbol", "slugify", "slugify"),
    ("hybrid", "refund window for premium customers", None),
    ("auto", "compute_invoice_total", "compute_invoice_total"),
]


@pytest.fixture(scope="module")
def loaded() -> Iterator[tuple[RagexInstance, Path]]:
    base = short_tmp()
    rx = RagexInstance(base, RAGEX_WATCH="0", RAGEX_DAEMON_QUEUE_SIZE=str(QUEUE_SIZE))
    try:
        rx.start()
        root = write_corpus(write_tree(base / "lib", files=4), 32, 8, prefix="lib")
        reply = rx.client().call(Op.INDEX, root, timeout=600, rebuild=False, paths=None)
        assert reply.ok, reply.error
        yield rx, root
    finally:
        rx.cleanup()


def test_20_clients_x_50_searches_while_an_index_runs(loaded: tuple[RagexInstance, Path]) -> None:
    rx, root = loaded
    write_corpus(root / "incoming", 24, 8, prefix="new")       # 192 chunks to embed
    indexer = rx.client()
    index_req = Request(Op.INDEX, args={"rebuild": False, "paths": None}, project=str(root))
    indexer.send(index_req)
    wait_for(lambda: isinstance(m := indexer.recv(120), Progress) and m.phase == "embedding",
             180, 0, what="the index to start embedding")

    results: list[tuple[str, float, float, bool, str]] = []   # mode, latency, end, ok, code
    lock = threading.Lock()
    barrier = threading.Barrier(CLIENTS)
    failures: list[BaseException] = []

    def one_client(k: int) -> None:
        client = Client(rx.endpoint)
        try:
            barrier.wait(30)
            for n in range(SEARCHES):
                mode, query, expect = QUERIES[(k + n) % len(QUERIES)]
                t0 = time.perf_counter()
                reply = client.call(Op.SEARCH, root, 120, query=query, mode=mode, limit=5)
                latency = time.perf_counter() - t0
                code = "ok" if reply.ok else reply.error.code.value
                if reply.ok and (not reply.result["hits"] or (
                        expect and reply.result["hits"][0]["name"] != expect)):
                    code = "wrong-hits"
                with lock:
                    results.append((mode, latency, time.monotonic(), code == "ok", code))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)
        finally:
            client.close()

    # Meanwhile, heartbeats straight to the worker's socket: how long can its main
    # loop (which ragexd's hung-worker detection relies on) go without answering?
    heartbeat = HeartbeatProbe(rx, root)
    t0 = time.monotonic()
    threads = [threading.Thread(target=one_client, args=(k,)) for k in range(CLIENTS)]
    for thread in threads:
        thread.start()
    index_reply: list[Reply] = []

    def await_index() -> None:
        index_reply.append(indexer.reply_to(index_req.id, timeout=600))

    waiter = threading.Thread(target=await_index)
    waiter.start()
    for thread in threads:
        thread.join(600)
    wall = time.monotonic() - t0
    waiter.join(600)
    index_done = time.monotonic()
    worst_ping = heartbeat.stop()
    assert not failures, failures[:3]
    assert index_reply and index_reply[0].ok, index_reply
    codes = Counter(code for *_, code in results)
    assert len(results) == CLIENTS * SEARCHES
    assert codes == {"ok": CLIENTS * SEARCHES}, Counter((m, c) for m, *_, c in results)
    during = sum(1 for *_, end, _ok, _c in results if end <= index_done)
    # Most of the load ran while the worker was indexing.
    assert during >= CLIENTS, during
    lat = [r[1] for r in results]
    assert max(lat) < 60, "a search waited a minute: as good as hung"
    slow = sorted(results, key=lambda r: -r[1])[:3]
    pct = percentiles(lat)
    per_mode = {m: statistics.median([r[1] for r in results if r[0] == m]) for m, *_ in QUERIES}
    figure("20 clients x 50 searches during an index",
           f"{len(results)} searches, 0 errors, {during} of them answered while the index ran; "
           f"{len(results) / wall:.0f} searches/s; latency p50 {pct[50] * 1000:.0f} ms, "
           f"p90 {pct[90] * 1000:.0f} ms, p99 {pct[99] * 1000:.0f} ms, max "
           f"{max(lat) * 1000:.0f} ms; p50 by mode "
           + ", ".join(f"{m} {v * 1000:.0f} ms" for m, v in per_mode.items())
           + "; slowest: " + ", ".join(f"{m} {lt:.1f} s (sent at +{e - lt - t0:.1f} s)"
                                       for m, lt, e, *_ in slow)
           + f"; worst PING round trip to the worker meanwhile {worst_ping:.2f} s",
           p50=pct[50], p90=pct[90], p99=pct[99], during=during, worst_ping_s=worst_ping)
    # ragexd kills a worker as hung after heartbeat_timeout (20 s by default).
    assert worst_ping < 20, worst_ping


def test_a_burst_beyond_the_queue_bound_gets_busy_and_never_hangs(
        loaded: tuple[RagexInstance, Path]) -> None:
    rx, root = loaded
    senders, each, deadline_s = 10, 30, 60.0
    answers: list[tuple[str, float]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(senders)
    unanswered: list[int] = []
    messages: list[str] = []

    def burst() -> None:
        client = Client(rx.endpoint)
        try:
            reqs = [Request(Op.SEARCH, project=str(root),
                            args={"query": r"def \w+", "mode": "regex", "limit": 50})
                    for _ in range(each)]
            barrier.wait(30)
            sent: dict[str, float] = {}
            for req in reqs:
                sent[req.id] = time.perf_counter()
                client.send(req)
            end = time.monotonic() + deadline_s
            while sent and time.monotonic() < end:
                try:
                    message = client.recv(max(0.01, end - time.monotonic()))
                except TimeoutError:
                    break
                if isinstance(message, Progress) or message.id not in sent:
                    continue
                latency = time.perf_counter() - sent.pop(message.id)
                code = "ok" if message.ok else message.error.code.value
                with lock:
                    answers.append((code, latency))
                    if not message.ok:
                        messages.append(message.error.message)
            with lock:
                unanswered.append(len(sent))
        finally:
            client.close()

    threads = [threading.Thread(target=burst) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(deadline_s + 30)
    codes = Counter(code for code, _ in answers)
    assert sum(unanswered) == 0, f"{sum(unanswered)} requests got no answer in {deadline_s} s"
    assert len(answers) == senders * each
    assert set(codes) <= {"ok", "busy"}, codes
    assert codes["busy"] >= 1 and codes["ok"] >= QUEUE_SIZE, codes
    assert all(f"the limit is {QUEUE_SIZE}" in m for m in messages), messages[:2]
    busy = [lat for code, lat in answers if code == "busy"]
    ok = [lat for code, lat in answers if code == "ok"]
    figure("burst past the queue bound",
           f"{senders * each} requests at once, queue_size {QUEUE_SIZE}: {codes['ok']} ok, "
           f"{codes['busy']} busy, 0 unanswered; busy answered in p50 "
           f"{statistics.median(busy) * 1000:.0f} ms (max {max(busy) * 1000:.0f} ms); slowest "
           f"ok {max(ok) * 1000:.0f} ms", ok=codes["ok"], busy=codes["busy"])


def test_repeated_index_requests_leak_no_descriptors(loaded: tuple[RagexInstance, Path]) -> None:
    rx, root = loaded
    client = rx.client()
    changing = root / "fd_probe.py"

    def index(n: int) -> None:
        changing.write_text(f"def fd_probe_{n}():\n    return {n}\n")
        reply = client.call(Op.INDEX, root, 120, rebuild=False, paths=["fd_probe.py"])
        assert reply.ok, reply.error

    for n in range(5):                      # warm up: pools reach their steady size
        index(n)
    pid = client.worker(root)["pid"]
    before = len(os.listdir(f"/proc/{pid}/fd"))
    runs = 50
    for n in range(5, 5 + runs):
        index(n)
    after = len(os.listdir(f"/proc/{pid}/fd"))
    assert client.worker(root)["pid"] == pid
    figure("descriptors per INDEX request",
           f"worker descriptors {before} -> {after} over {runs} one-file INDEX requests "
           f"({(after - before) / runs:+.1f} per request)", before=before, after=after)
    assert after <= before + 5, f"{after - before} descriptors leaked by {runs} index runs"


# --- ten projects, one memory budget ---------------------------------------------------

#: About two warm workers.  Workers on ONNX Runtime settle near 200 MiB (on torch
#: they took ~500, and the budget was 1100): five of them fitted in 1100 MiB.
BUDGET_MIB = 550
PROJECTS = 10


def test_ten_projects_under_a_memory_budget_evict_the_least_recently_used() -> None:
    base = short_tmp()
    rx = RagexInstance(base, RAGEX_WATCH="0", RAGEX_DAEMON_MEMORY_BUDGET=f"{BUDGET_MIB}MiB")
    t_start = time.monotonic()
    try:
        rx.start()
        client = rx.client()
        roots = [write_tree(base / f"p{i}", files=3) for i in range(PROJECTS)]
        last_use: dict[str, float] = {}
        evicted: dict[str, float] = {}                 # root -> when first seen evicted
        violations: list[str] = []
        peak = [0]

        def observe() -> dict[str, dict[str, Any]]:
            workers = {w["root"]: w for w in client.status(timeout=10)["workers"]}
            running = {r: w for r, w in workers.items() if w["pid"] is not None}
            peak[0] = max(peak[0], sum(w["rss"] or 0 for w in running.values()))
            new = [r for r, w in workers.items() if w["state"] == "idle-stopped"
                   and r not in evicted]
            for r in new:
                assert "memory budget" in workers[r]["last_error"], workers[r]
                evicted[r] = time.monotonic()
                # Every idle worker still running was used more recently than r.
                for other, w in running.items():
                    if w["state"] == "ready" and not w["inflight"] and other in last_use \
                            and last_use[other] < last_use[r]:
                        violations.append(f"{r} evicted before the older {other}")
            return workers

        def use(root: Path) -> None:
            reply = client.call(Op.SEARCH, root, 120, query="def ", mode="regex", limit=3)
            assert reply.ok, reply.error
            last_use[str(root)] = time.monotonic()
            observe()

        twisted = False
        for i, root in enumerate(roots):
            use(root)
            if i == 3:
                # p2 used again: now p3 is older than p2, and must go first.
                workers = observe()
                if workers.get(str(roots[2]), {}).get("pid"):
                    use(roots[2])
                    twisted = True
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:   # let memory grow and the budget act
                observe()
                time.sleep(0.3)
        # Settle: the last ones load their models; the budget keeps acting.
        settle_until = time.monotonic() + 60

        def settled() -> bool:
            workers = observe()
            running = [w for w in workers.values() if w["pid"] is not None]
            loaded = all(w["model_loaded"] for w in running)
            total = sum(w["rss"] or 0 for w in running)
            return loaded and total <= BUDGET_MIB * 2**20

        while time.monotonic() < settle_until and not settled():
            time.sleep(0.5)
        workers = observe()
        running = {r: w for r, w in workers.items() if w["pid"] is not None}
        total = sum(w["rss"] or 0 for w in running.values())
        took = time.monotonic() - t_start
        assert not violations, violations
        assert len(evicted) >= PROJECTS - 3, (len(evicted), sorted(running))
        assert str(roots[-1]) in running, "the most recently used worker was stopped"
        assert total <= BUDGET_MIB * 2**20, f"{total / 2**20:.0f} MiB over the budget"
        p2, p3 = str(roots[2]), str(roots[3])
        if twisted and p3 in evicted:
            assert evicted[p3] <= evicted.get(p2, float("inf")), "p2 (used again) went first"
        names = {str(r): f"p{i}" for i, r in enumerate(roots)}
        evict_order = [names[r] for r in sorted(evicted, key=evicted.get)]
        figure("10 projects under a memory budget",
               f"budget {BUDGET_MIB} MiB: {len(evicted)} idle workers stopped, in LRU order "
               f"{' '.join(evict_order)} (p2 used again after p3: {twisted}; 0 violations); "
               f"peak of all workers {peak[0] / 2**20:.0f} MiB, settled at "
               f"{total / 2**20:.0f} MiB with {len(running)} running; {took:.0f} s in all",
               evicted=evict_order, peak_mib=peak[0] / 2**20, seconds=took)
        assert took < 240
    finally:
        rx.cleanup()
        shutil.rmtree(base, ignore_errors=True)
