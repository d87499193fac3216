"""ragexd end to end, one warm ragexd shared by the module.

A real ``python -m ragexd --foreground`` routes real requests to real worker
processes running the real engine over real sockets.  The tests run in file
order; the last one stops the daemon with SIGTERM and checks nothing is left.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from ragexd import paths
from ragexd.protocol import ErrorCode, Op, Progress, Request, encode

from tests.harness import (PrivateEnv, RagexInstance, index_oneshot, pid_alive, wait_for, write_corpus,
                           write_tree)

QUEUE_SIZE = 8
HEARTBEAT_TIMEOUT = 5


@pytest.fixture(scope="module")
def rx():
    daemon = RagexInstance(RAGEX_DAEMON_QUEUE_SIZE=str(QUEUE_SIZE),
                    RAGEX_HEARTBEAT_INTERVAL="1", RAGEX_HEARTBEAT_TIMEOUT=str(HEARTBEAT_TIMEOUT),
                    RAGEX_WATCH="0")
    daemon.start()
    yield daemon
    daemon.cleanup()


@pytest.fixture(scope="module")
def proj(rx):
    root = write_tree(rx.base / "proj", files=6)
    index_oneshot(rx.env, root)     # an existing index: ragexd's first search is then cold
    return root


@pytest.fixture(scope="module")
def client(rx):
    return rx.client()


def test_cold_auto_start_by_a_search_then_warm(rx, proj, client):
    assert client.status()["workers"] == []
    t0 = time.perf_counter()
    cold = client.search(proj, "add sales tax to an invoice", mode="semantic")
    cold_s = time.perf_counter() - t0
    assert cold.ok, cold.error
    assert cold.result["hits"][0]["path"] == "billing.py", cold.result
    worker = client.worker(proj)
    assert worker["state"] in ("ready", "indexing") and pid_alive(worker["pid"])
    assert worker["project_id"] == paths.project_id_for(proj)
    assert worker["root"] == str(proj.resolve())

    warm = []
    for _ in range(15):
        t0 = time.perf_counter()
        r = client.search(proj, "connect to a tcp server", mode="semantic")
        warm.append(time.perf_counter() - t0)
        assert r.ok, r.error
        assert r.result["hits"][0]["path"] == "network.py", r.result
    p50 = statistics.median(warm)
    print(f"\ncold semantic search (worker start + model load) {cold_s:.2f} s; warm p50 "
          f"{p50 * 1000:.1f} ms (min {min(warm) * 1000:.1f})")
    assert p50 < 0.1 and p50 * 10 < cold_s


def test_index_progress_is_relayed_with_the_clients_id(proj, client):
    progress: list[Progress] = []
    req = Request(Op.INDEX, args={"rebuild": True, "paths": None}, project=str(proj))
    client.send(req)
    reply = client.reply_to(req.id, timeout=300, progress=progress)
    assert reply.ok, reply.error
    assert reply.result["summary"]["files_indexed"] == 6
    assert progress and all(p.id == req.id for p in progress)


def test_warm_search_from_a_fresh_client_process(rx, proj):
    """The whole path a user pays: a new process imports, connects, asks, exits.

    The ≤ 100 ms target is for imports + connect + search on an otherwise idle
    machine; the hard assertion is on connect + search (what ragexd and the
    worker control).  The imports are guarded by the CPU they cost: their wall
    time measures how busy the machine is (CI, sharing its cores, took 0.27 s of
    wall time for 0.05 s of CPU, and the guard of 0.25 s of wall time failed).
    """
    code = (
        "import sys, time\n"
        "t0, c0 = time.perf_counter(), time.process_time()\n"
        "import zmq\n"
        "from ragexd.protocol import Op, Request, decode, encode\n"
        "t1, c1 = time.perf_counter(), time.process_time()\n"
        "ctx = zmq.Context(); s = ctx.socket(zmq.DEALER); s.connect(sys.argv[1])\n"
        "s.send_multipart(encode(Request(Op.SEARCH, project=sys.argv[2], "
        "args={'query': 'connect to a tcp server', 'mode': 'semantic', 'limit': 5})))\n"
        "r = decode(s.recv_multipart()); assert r.ok, r.error\n"
        "t2 = time.perf_counter()\n"
        "print(r.result['hits'][0]['path'], t1 - t0, c1 - c0, t2 - t1, "
        "r.result['took_ms'] / 1000)\n")
    totals, imports, import_cpu, searches, engine = [], [], [], [], []
    for _ in range(9):
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code, rx.endpoint, str(proj)],
                             capture_output=True, text=True, env=rx.env, timeout=60)
        totals.append(time.perf_counter() - t0)
        assert out.returncode == 0, out.stderr
        path, imp, imp_cpu, search, took = out.stdout.split()
        assert path == "network.py"
        imports.append(float(imp))
        import_cpu.append(float(imp_cpu))
        searches.append(float(search))
        engine.append(float(took))
    med = statistics.median
    print(f"\nfresh client process p50: imports {med(imports) * 1000:.1f} ms "
          f"({med(import_cpu) * 1000:.1f} ms CPU) + connect+search "
          f"{med(searches) * 1000:.1f} ms (engine {med(engine) * 1000:.1f} ms) = "
          f"{(med(imports) + med(searches)) * 1000:.1f} ms; with interpreter start "
          f"{med(totals) * 1000:.0f} ms")
    assert med(searches) < 0.1
    assert med(import_cpu) < 0.1   # 0.05 s today; importing numpy alone adds 0.08 s


def test_status_and_ping_answer_fast_while_a_worker_indexes(rx, client):
    big = rx.base / "big"
    big.mkdir()
    for i in range(80):
        (big / f"mod_{i}.py").write_text("\n\n".join(
            f"def function_{i}_{j}(x, y):\n    \"\"\"Combine {i} and {j} into a value.\"\"\"\n"
            f"    total = x * {j} + y * {i}\n    return total - {i * j}\n" for j in range(12)))
    indexer = rx.client()
    req = Request(Op.INDEX, args={"rebuild": True}, project=str(big))
    indexer.send(req)
    worst, states = 0.0, set()
    deadline = time.monotonic() + 300
    done = None
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        status = client.status(timeout=1.0)
        ping = client.call(Op.PING, timeout=1.0)
        worst = max(worst, time.perf_counter() - t0)
        assert ping.ok
        for w in status["workers"]:
            if w["root"] == str(big):
                states.add(w["state"])
        try:
            message = indexer.recv(timeout=0.2)
            if not isinstance(message, Progress) and message.id == req.id:
                done = message
                break
        except TimeoutError:
            pass
    assert done is not None and done.ok, done
    print(f"\nworst STATUS+PING round trip while indexing: {worst * 1000:.0f} ms; "
          f"states seen {sorted(states)}")
    assert worst < 1.0
    assert "indexing" in states
    # The cached worker status is refreshed at once: the run's numbers, not older ones.
    worker = next(w for w in client.status()["workers"] if w["root"] == str(big))
    assert worker["index"]["files"] == done.result["summary"]["files_indexed"] == 80


def test_worker_status_is_forwarded(proj, client):
    reply = client.call(Op.WORKER_STATUS, proj)
    assert reply.ok and reply.result["pid"] == client.worker(proj)["pid"]
    assert reply.result["index"]["files"] >= 6


def test_garbage_frames_get_error_replies_and_ragexd_lives_on(rx, client):
    raw = rx.client()
    cases = [
        ([os.urandom(64)], ErrorCode.BAD_REQUEST),                          # 1 frame
        ([os.urandom(16), os.urandom(300)], ErrorCode.BAD_REQUEST),         # random bytes
        ([b"RAGEX/9", b'{"type":"request","op":"ping","id":"x"}'], ErrorCode.VERSION_MISMATCH),
        ([b"RAGEX/1", b"not json at all"], ErrorCode.BAD_REQUEST),
        ([b"RAGEX/1", b"\xff\xfe\x00garbage"], ErrorCode.BAD_REQUEST),
        ([b"RAGEX/1", b"[1, 2, 3]"], ErrorCode.BAD_REQUEST),
        ([b"RAGEX/1", b'{"type":"request","op":"explode","id":"y"}'], ErrorCode.BAD_REQUEST),
        ([b"RAGEX/1", b'{"type":"reply","id":"z","ok":true}'], ErrorCode.BAD_REQUEST),
        ([b"RAGEX/1", b"{}", b"extra"], ErrorCode.BAD_REQUEST),             # 3 frames
        ([b"RAGEX/1", b'{"type":"request","op":"search","id":"q","project":"/"}'],
         ErrorCode.BAD_QUERY),                                              # no query
        ([b"RAGEX/1", b'{"type":"request","op":"search","id":"r","project":"rel/path",'
                      b'"args":{"query":"x"}}'], ErrorCode.BAD_REQUEST),
    ]
    for frames, code in cases:
        raw.send_raw(frames)
        reply = raw.recv(timeout=5)
        assert not reply.ok and reply.error.code is code, (frames, reply)
        assert reply.error.message
    raw.send_raw([b"RAGEX/1", b'{"type":"request","op":"search","id":"big","project":"/",'
                  b'"args":{"query":"' + b"x" * 9000 + b'"}}'])
    reply = raw.recv(timeout=5)
    assert reply.error.code is ErrorCode.TOO_LARGE and reply.id == "big"
    assert client.call(Op.PING).ok
    assert rx.proc.poll() is None
    # A REQ client (empty delimiter frame) is answered too, delimiter included.
    import zmq

    req_sock = raw.ctx.socket(zmq.REQ)
    req_sock.setsockopt(zmq.LINGER, 0)
    req_sock.connect(rx.endpoint)
    req_sock.send_multipart(encode(Request(Op.PING)))
    assert req_sock.poll(5000)
    from ragexd.protocol import decode

    assert decode(req_sock.recv_multipart()).result == {"pid": rx.pid}
    req_sock.close(0)


def test_busy_beyond_the_queue_bound(proj, client):
    burst = [Request(Op.SEARCH, project=str(proj),
                     args={"query": "def ", "mode": "regex", "limit": 50}) for _ in range(60)]
    for req in burst:
        client.send(req)
    codes: Counter[str] = Counter()
    wanted = {r.id for r in burst}
    while wanted:
        message = client.recv(timeout=60)
        if isinstance(message, Progress):
            continue
        wanted.discard(message.id)
        codes["ok" if message.ok else message.error.code.value] += 1
        if not message.ok:
            assert message.error.code is ErrorCode.BUSY, message.error
            assert str(QUEUE_SIZE) in message.error.message
    print(f"\nburst of 60 with queue_size {QUEUE_SIZE}: {dict(codes)}")
    assert codes["ok"] >= QUEUE_SIZE and codes["busy"] >= 1
    assert codes["ok"] + codes["busy"] == 60       # every request answered, none dropped


def test_kill_9_of_a_worker_is_followed_by_a_successful_search(proj, client):
    before = client.worker(proj)
    os.kill(before["pid"], signal.SIGKILL)
    reply = client.search(proj, "turn a title into a url slug", mode="semantic", timeout=120)
    assert reply.ok, reply.error
    assert reply.result["hits"][0]["path"] == "text_utils.py", reply.result
    after = client.worker(proj)
    assert after["pid"] != before["pid"] and after["restarts"] >= 1
    assert after["last_error"] == "crashed: killed (SIGKILL)"


def test_an_inflight_idempotent_request_is_retried_after_a_crash(proj, client):
    worker = client.worker(proj)
    os.kill(worker["pid"], signal.SIGSTOP)    # the request sits unanswered in the worker...
    req = Request(Op.SEARCH, project=str(proj), args={"query": "refund window", "mode": "semantic"})
    client.send(req)
    time.sleep(0.5)
    os.kill(worker["pid"], signal.SIGKILL)    # ...which then dies with it in flight
    reply = client.reply_to(req.id, timeout=120)
    assert reply.ok, reply.error
    assert reply.result["hits"][0]["path"] == "billing.py", reply.result["hits"][:2]


def test_a_request_deadline_is_answered_with_timeout(proj, client):
    worker = client.worker(proj)
    os.kill(worker["pid"], signal.SIGSTOP)
    try:
        req = Request(Op.SEARCH, project=str(proj), timeout=1.0,
                      args={"query": "slugify", "mode": "regex"})
        t0 = time.monotonic()
        client.send(req)
        reply = client.reply_to(req.id, timeout=5)
        took = time.monotonic() - t0
        assert reply.error is not None and reply.error.code is ErrorCode.TIMEOUT, reply
        assert 0.9 <= took < 2.0, took
    finally:
        os.kill(worker["pid"], signal.SIGCONT)
    # The worker's late answer is dropped, not delivered as a second reply.
    with pytest.raises(TimeoutError):
        client.recv(timeout=1.5)
    assert client.worker(proj)["pid"] == worker["pid"]


def test_a_hung_worker_is_killed_and_replaced(proj, client):
    worker = client.worker(proj)
    os.kill(worker["pid"], signal.SIGSTOP)
    t0 = time.monotonic()
    wait_for(lambda: not pid_alive(worker["pid"]), HEARTBEAT_TIMEOUT + 10,
             what="the hung worker to be killed")
    waited = time.monotonic() - t0
    state = wait_for(lambda: client.worker(proj)["last_error"].startswith("hung") and
                     client.worker(proj), 5, what="hung in last_error")
    assert "heartbeat" in state["last_error"]
    assert waited >= HEARTBEAT_TIMEOUT - 1.5
    reply = client.search(proj, "compute_invoice_total", mode="regex", timeout=120)
    assert reply.ok, reply.error


def test_list_logs_stop_start(rx, proj, client):
    listing = client.call(Op.LIST).result["projects"]
    mine = next(p for p in listing if p["root"] == str(proj))
    assert mine["running"] and mine["size_bytes"] > 0 and mine["id"] == paths.project_id_for(proj)

    logs = client.call(Op.LOGS, target=str(proj), lines=200).result
    assert logs["path"].endswith(f"{paths.project_id_for(proj)}.log")
    assert any("serving" in line for line in logs["lines"])
    own = client.call(Op.LOGS, target=None, lines=50).result
    assert own["path"].endswith("ragexd.log") and any("listening" in l for l in own["lines"]) \
        or any("starting" in l for l in own["lines"])

    pid = client.worker(proj)["pid"]
    stopped = client.call(Op.STOP, proj, timeout=30)
    assert stopped.ok and stopped.result["stopped"] == [paths.project_id_for(proj)]
    assert not pid_alive(pid)
    assert client.worker(proj)["state"] == "stopped"
    started = client.call(Op.START, proj)
    assert started.ok and started.result["state"] in ("starting", "ready")
    wait_for(lambda: client.worker(proj)["state"] == "ready", 30, what="ready after START")


def test_remove_deletes_an_index(rx, client):
    other = write_tree(rx.base / "other", files=3)
    assert client.call(Op.INDEX, other, timeout=300, rebuild=False).ok
    pid = paths.project_id_for(other)
    index_dir = Path(rx.env["RAGEX_DATA_DIR"]) / "projects" / pid
    assert index_dir.is_dir()
    reply = client.call(Op.REMOVE, target=str(other), timeout=60)
    assert reply.ok, reply.error
    assert reply.result["removed"] == pid and reply.result["freed_bytes"] > 0
    assert not index_dir.exists()
    assert all(p["id"] != pid for p in client.call(Op.LIST).result["projects"])
    missing = client.call(Op.REMOVE, target=str(other))
    assert missing.error.code is ErrorCode.NOT_FOUND


def test_a_second_ragexd_refuses_and_names_the_pid(rx, client):
    inode = rx.socket.stat().st_ino
    second = rx.popen("--foreground")
    assert second.wait(30) != 0
    assert f"ragexd is already running (pid {rx.pid})" in rx.output()
    assert rx.socket.stat().st_ino == inode, "the second ragexd touched the socket"
    assert (rx.run_dir / "ragexd.pid").read_text().strip() == str(rx.pid)
    assert client.call(Op.PING).result["pid"] == rx.pid


def test_idle_ragexd_is_cheap(rx, client):
    import psutil

    proc = psutil.Process(rx.pid)
    proc.cpu_percent(None)
    time.sleep(10)
    cpu = proc.cpu_percent(None)
    rss = proc.memory_info().rss
    print(f"\nragexd with {len(client.status()['workers'])} warm workers, idle: "
          f"RSS {rss / 2**20:.1f} MiB, CPU {cpu:.2f} % over 10 s")
    assert cpu < 5 and rss < 100 * 2**20


def test_sigterm_leaves_no_process_and_no_socket(rx, client):
    workers = rx.worker_pids()
    assert workers, "the module's workers should still be running"
    t0 = time.monotonic()
    assert rx.terminate(35) == 0, rx.output()
    took = time.monotonic() - t0
    assert took < 30
    assert not rx.socket.exists() and not (rx.run_dir / "ragexd.pid").exists()
    wait_for(lambda: not any(pid_alive(p) for p in workers), 5, what="workers gone")
    assert not list((rx.run_dir / "workers").glob("*/worker.sock"))
    print(f"\nSIGTERM to exit with {len(workers)} workers: {took:.2f} s")


def test_status_right_after_a_search_that_starts_the_first_index_says_indexing() -> None:
    """The search that starts a project's first index answers at once; ragexd's cached
    worker status predates that run, and `status` right after said "ready" (up to a
    second stale, and a script waiting for "indexing" to end went on at once)."""
    env = PrivateEnv(TERM="dumb")
    try:
        tree = write_corpus(env.base / "proj", files=20, funcs=30)
        first = env.ctl("search", "--mode", "symbol", "resolve_thumbnail_3_4",
                        "--project", str(tree), timeout=300)
        assert first.returncode == 0, first.stderr
        assert "running in the background" in first.stderr, first.stderr
        status = env.ctl("status", timeout=60)
        row = next(line for line in status.stdout.splitlines() if line.startswith(str(tree)))
        assert " indexing " in row, status.stdout
        env.ctl("stop", "--all", timeout=60)
    finally:
        env.cleanup()
