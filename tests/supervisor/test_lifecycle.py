"""ragexd lifecycle and failure handling, each test with its own ragexd.

Idle timeout, memory limit, crash loop, start-up refusals, stale files,
daemonizing and orphan reaping — with real workers and real signals.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

from ragexd.protocol import ErrorCode, Op

from tests.harness import Client, RagexInstance, make_env, pid_alive, wait_for, write_tree


def _start(factory: list[RagexInstance], base: Path, **env: str) -> RagexInstance:
    daemon = RagexInstance(base, RAGEX_WATCH="0", **env)
    factory.append(daemon)
    return daemon.start()


def test_idle_timeout_stops_a_worker_but_not_during_a_request(rx_base, daemon_factory):
    rx = _start(daemon_factory, rx_base, RAGEX_DAEMON_TIMEOUT="3s")
    proj = write_tree(rx_base / "proj")
    client = rx.client()
    t0 = time.monotonic()
    # A cold INDEX takes longer than the idle timeout (imports, model load):
    # a running request must keep the worker alive.
    reply = client.call(Op.INDEX, proj, timeout=300, rebuild=False)
    took = time.monotonic() - t0
    assert reply.ok, reply.error
    pid = client.worker(proj)["pid"]
    done = time.monotonic()
    wait_for(lambda: client.worker(proj)["state"] == "idle-stopped", 15,
             what="idle-stopped")
    idle_for = time.monotonic() - done
    assert not pid_alive(pid)
    assert 2.5 <= idle_for <= 10, idle_for
    worker = client.worker(proj)
    assert worker["pid"] is None and worker["last_error"] == ""
    print(f"\ncold INDEX {took:.1f} s (> idle timeout 3 s, not interrupted); stopped "
          f"{idle_for:.1f} s after the last request")
    # The next request starts it again, transparently.
    t0 = time.perf_counter()
    reply = client.search(proj, "def compute_invoice_total", mode="regex")
    cold = time.perf_counter() - t0
    assert reply.ok and reply.result["hits"][0]["path"] == "billing.py", reply
    assert client.worker(proj)["state"] in ("ready", "indexing")
    print(f"cold regex search after an idle stop (worker start, no model needed): {cold:.2f} s")


def test_memory_limit_stops_a_worker_and_says_so(rx_base, daemon_factory):
    rx = _start(daemon_factory, rx_base, RAGEX_DAEMON_MEMORY_LIMIT="50MiB")
    # An index that embeds for seconds: the model alone takes the worker past 50 MiB,
    # and ragexd samples its RSS every second, so the request is still in flight when
    # the limit stops it (a search of an empty index could answer before the sample).
    proj = write_tree(rx_base / "proj", files=300)
    client = rx.client()
    reply = client.index(proj, timeout=120)
    worker = wait_for(lambda: (w := client.worker(proj))["state"] != "ready"
                      and w["state"] != "starting" and w, 30, what="the worker to be stopped")
    assert worker["state"] == "memory-limit", worker
    assert worker["last_error"].startswith("stopped: memory limit 50 MiB exceeded"), worker
    assert "crash" not in worker["last_error"]
    assert not reply.ok and reply.error.code is ErrorCode.MEMORY_LIMIT, reply
    assert "memory limit 50 MiB" in reply.error.message
    logs = client.call(Op.LOGS, target=str(proj), lines=20).result["lines"]
    assert any("memory limit" in line for line in logs)


def test_a_crash_loop_is_reported_and_start_clears_it(rx_base, daemon_factory):
    rx = _start(daemon_factory, rx_base)
    proj = write_tree(rx_base / "proj")
    client = rx.client()
    pids = []
    t0 = time.monotonic()
    for i in range(5):
        reply = client.call(Op.WORKER_STATUS, proj, timeout=90)
        assert reply.ok, (i, reply.error)
        pid = reply.result["pid"]
        assert pid not in pids
        pids.append(pid)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: client.worker(proj)["state"] in ("crashed", "crash-loop"), 10,
                 what=f"crash {i + 1} noticed")
    worker = client.worker(proj)
    assert worker["state"] == "crash-loop", worker
    assert worker["recent_crashes"] == 5 and worker["exit_code"] == -9
    print(f"\n5 crashes with backoff (1+2+4+8 s) took {time.monotonic() - t0:.1f} s")

    reply = client.search(proj, "anything", mode="regex")
    assert not reply.ok and reply.error.code is ErrorCode.CRASH_LOOP, reply
    assert "ragexctl start" in reply.error.message and "exit code -9" in reply.error.message
    assert reply.error.detail["exit_code"] == -9
    assert any("serving" in line for line in reply.error.detail["log_tail"])
    # No restart is attempted while in crash-loop.
    time.sleep(1.5)
    assert client.worker(proj)["pid"] is None

    started = client.call(Op.START, proj)
    assert started.ok, started.error
    reply = client.search(proj, "compute_invoice_total", mode="regex", timeout=120)
    assert reply.ok, reply.error
    assert client.worker(proj)["state"] in ("ready", "indexing")


def test_stale_socket_and_pid_file_of_a_dead_ragexd_are_replaced(rx_base, daemon_factory):
    run = rx_base / "run"
    run.mkdir(mode=0o700)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(run / "ragexd.sock"))
    stale.close()                                  # leaves the socket file behind
    (run / "ragexd.pid").write_text("999999\n")   # pid of nobody; no lock held
    rx = _start(daemon_factory, rx_base)
    assert rx.client().call(Op.PING).result["pid"] == rx.pid
    assert (run / "ragexd.pid").read_text().strip() == str(rx.pid)


def test_without_foreground_ragexd_daemonizes(rx_base):
    env = make_env(rx_base)
    t0 = time.monotonic()
    launcher = subprocess.run([sys.executable, "-m", "ragexd"], env=env, timeout=60,
                              capture_output=True, text=True)
    assert launcher.returncode == 0, launcher.stderr
    run = Path(env["RAGEX_RUNTIME_DIR"])
    pid = int((run / "ragexd.pid").read_text())
    try:
        assert (run / "ragexd.sock").exists(), "the launcher returned before ragexd listened"
        client = Client("ipc://" + str(run / "ragexd.sock"))
        assert client.call(Op.PING).result["pid"] == pid
        proc = psutil.Process(pid)
        assert proc.ppid() != os.getpid() and os.getsid(pid) != os.getsid(0)
        print(f"\ndaemonized ragexd listening {time.monotonic() - t0:.2f} s after launch")
        again = subprocess.run([sys.executable, "-m", "ragexd"], env=env, timeout=60,
                               capture_output=True, text=True)
        assert again.returncode == 5 and f"already running (pid {pid})" in again.stderr
        assert client.call(Op.SHUTDOWN).result == {"stopping": True}
        wait_for(lambda: not pid_alive(pid), 30, what="the daemon to exit")
        assert not (run / "ragexd.sock").exists() and not (run / "ragexd.pid").exists()
        client.close()
    finally:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_workers_of_a_killed_ragexd_are_reaped_at_the_next_start(rx_base, daemon_factory):
    first = _start(daemon_factory, rx_base)
    proj = write_tree(rx_base / "proj")
    client = first.client()
    reply = client.call(Op.WORKER_STATUS, proj, timeout=90)
    assert reply.ok, reply.error
    orphan = reply.result["pid"]
    client.close()
    first.clients.clear()
    first.proc.kill()
    first.proc.wait(10)
    assert pid_alive(orphan), "the worker should outlive a kill -9 of ragexd (for a while)"
    assert first.socket.exists()                       # stale, from the dead ragexd
    second = _start(daemon_factory, rx_base)
    wait_for(lambda: not pid_alive(orphan), 10, what="the orphan to be reaped")
    assert "reaping orphan worker" in (rx_base / "state" / "logs" / "ragexd.log").read_text()
    assert second.client().call(Op.WORKER_STATUS, proj, timeout=90).ok


def test_shutdown_op_refuses_new_work_and_exits(rx_base, daemon_factory):
    rx = _start(daemon_factory, rx_base)
    proj = write_tree(rx_base / "proj")
    client = rx.client()
    assert client.call(Op.WORKER_STATUS, proj, timeout=90).ok
    workers = rx.worker_pids()
    assert client.call(Op.SHUTDOWN).ok
    refused = client.call(Op.SEARCH, proj, query="x", mode="regex")
    assert refused.error is not None and refused.error.code is ErrorCode.SHUTTING_DOWN
    assert rx.proc.wait(30) == 0
    assert not rx.socket.exists()
    assert not any(pid_alive(p) for p in workers)


def test_memory_budget_stops_the_least_recently_used_idle_worker(rx_base, daemon_factory):
    rx = _start(daemon_factory, rx_base, RAGEX_DAEMON_MEMORY_BUDGET="1")
    old = write_tree(rx_base / "old")
    client = rx.client()
    assert client.call(Op.WORKER_STATUS, old, timeout=90).ok
    worker = wait_for(lambda: (w := client.worker(old))["state"] == "idle-stopped" and w, 15,
                      what="the budget to stop the idle worker")
    assert "memory budget" in worker["last_error"]
    # A worker with a request in flight is never stopped for the budget.
    big = rx_base / "busy"
    big.mkdir()
    for i in range(60):
        (big / f"m{i}.py").write_text(f"def f{i}(x):\n    return x + {i}\n" * 30)
    reply = client.call(Op.INDEX, big, timeout=300, rebuild=False)
    assert reply.ok, reply.error
