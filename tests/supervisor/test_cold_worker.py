"""A cold worker answers by meaning from the vector file: chromadb is never imported.

Real ragexd, real worker process, real model; the worker reports which heavy
modules it holds (``heavy_modules`` in its status) and its RSS.
"""

from __future__ import annotations

import time

from ragexd.protocol import Op

from tests.harness import RagexInstance, pid_alive, wait_for, write_tree


def test_a_cold_worker_answers_by_meaning_without_chromadb(rx_base, daemon_factory):
    rx = RagexInstance(rx_base, RAGEX_WATCH="0", RAGEX_DAEMON_TIMEOUT="3s")
    daemon_factory.append(rx)
    rx.start()
    proj = write_tree(rx_base / "proj")
    client = rx.client()
    assert client.call(Op.INDEX, proj, timeout=300, rebuild=False).ok
    pid = client.worker(proj)["pid"]
    wait_for(lambda: client.worker(proj)["state"] == "idle-stopped", 20, what="idle-stopped")
    assert not pid_alive(pid)

    t0 = time.perf_counter()
    reply = client.search(proj, "add sales tax to an invoice", mode="semantic", timeout=120)
    cold = time.perf_counter() - t0
    assert reply.ok, reply.error
    assert reply.result["hits"][0]["path"] == "billing.py", reply.result["hits"][:3]
    status = client.call(Op.WORKER_STATUS, proj, timeout=30)
    assert status.ok, status.error
    assert status.result["model_loaded"] is True
    assert "chromadb" not in status.result["heavy_modules"], status.result["heavy_modules"]
    assert "torch" not in status.result["heavy_modules"]
    assert status.result["rss"] > 0
    print(f"\ncold worker: spawn to first semantic answer {cold:.2f} s; "
          f"RSS {status.result['rss'] / 2**20:.0f} MiB; holds {status.result['heavy_modules']}")
