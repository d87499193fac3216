"""The client's protocol behaviour against a scripted ragexd on a real socket.

The real ``ragexctl`` process talks real ZeroMQ to a ROUTER whose answers are
scripted (see fakedaemon.py), so ids, progress, retries, timeouts, error
replies and the version handshake can be checked exactly.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ragexd.protocol import ErrorCode, Op, Progress, Reply, Request

from tests.harness import PrivateEnv
from .fakedaemon import Die, FakeDaemon, Raw, Restart, Sleep, hello_result, tag_frames

HITS = [
    {"path": "shop/upload.py", "line": 4, "end_line": 12, "kind": "function",
     "name": "retry_upload", "score": 0.9, "text": "def retry_upload(client, path, attempts=5):\n",
     "language": "python", "parent": "", "stale": False},
    {"path": "shop/cart.py", "line": 7, "end_line": 9, "kind": "method", "name": "add_item",
     "score": 0.5, "text": "    def add_item(self, sku, qty=1):\n", "language": "python",
     "parent": "Cart", "stale": False},
]


def result(hits=HITS, **kw):
    data = {"hits": hits, "mode": "semantic", "partial": False, "took_ms": 3.0, "notes": []}
    data.update(kw)
    return data


def answer(res):
    return lambda req: [Reply.success(req.id, res)]


def test_search_request_and_plain_output(rx_env: PrivateEnv, tree: Path):
    with FakeDaemon(rx_env.endpoint, answer(result())) as fake:
        r = rx_env.ctl("search", "retry", "failed", "uploads", "-n", "5", "-g", "shop/**",
                       "-t", "py", "--mode", "semantic", cwd=tree)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ("shop/upload.py:4:def retry_upload(client, path, attempts=5):\n"
                        "shop/cart.py:7:    def add_item(self, sku, qty=1):\n")
    assert "\x1b[" not in r.stdout  # not a terminal: no colour
    assert fake.ops() == ["search"]  # one round trip: no HELLO, no PING first
    req = fake.requests[0]
    assert req.project == os.path.realpath(tree)
    assert req.args == {"query": "retry failed uploads", "mode": "semantic", "limit": 5,
                        "paths": ["shop/**"], "languages": ["py"], "auto_index": True}
    assert req.client_version
    # No absolute deadline for ragexd: a first search may index for minutes while
    # reporting progress, and the client's own deadline restarts with each report.
    assert req.timeout is None


def test_paths_relative_to_a_subdirectory_and_project_option(rx_env: PrivateEnv, tree: Path):
    with FakeDaemon(rx_env.endpoint, answer(result())) as fake:
        r = rx_env.ctl("search", "retry", cwd=tree / "shop")
        assert r.stdout.splitlines()[0].startswith("upload.py:4:")
        r2 = rx_env.ctl("search", "retry", "--project", str(tree / "shop"), cwd=rx_env.base)
    assert r2.stdout.splitlines()[0].startswith("shop/upload.py:4:")
    # From a subdirectory, the project is still the root with .git.
    assert {q.project for q in fake.requests} == {os.path.realpath(tree)}


def test_json_lines_and_nothing_else_on_stdout(rx_env: PrivateEnv, tree: Path):
    res = result(partial=True, notes=["indexed 3 files (9 chunks) first"])
    with FakeDaemon(rx_env.endpoint, answer(res)):
        r = rx_env.ctl("search", "retry", "--json", cwd=tree)
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert [json.loads(line) for line in lines] == HITS
    for hit in map(json.loads, lines):
        assert {"path", "line", "end_line", "kind", "name", "score", "text"} <= set(hit)
    assert "indexed 3 files" in r.stderr and "still being built" in r.stderr


def test_no_results_exit_1_and_color_always(rx_env: PrivateEnv, tree: Path):
    with FakeDaemon(rx_env.endpoint, answer(result(hits=[]))):
        r = rx_env.ctl("search", "nothing", cwd=tree)
    assert r.returncode == 1 and r.stdout == "" and r.stderr == ""
    with FakeDaemon(rx_env.endpoint, answer(result())):
        r = rx_env.ctl("search", "retry", "--color=always", cwd=tree)
    assert r.stdout.startswith("\x1b[35mshop/upload.py\x1b[0m:\x1b[32m4\x1b[0m:def retry")


def test_error_reply_exit_2_one_sentence_and_json_code(rx_env: PrivateEnv, tree: Path):
    def handler(req):
        return [Reply.failure(req.id, ErrorCode.INVALID_REGEX,
                              "invalid regex '(': unclosed group", pattern="(")]

    with FakeDaemon(rx_env.endpoint, handler):
        r = rx_env.ctl("search", "--mode", "regex", "(", cwd=tree)
        assert r.returncode == 2 and r.stdout == ""
        assert r.stderr == "ragexctl: invalid regex '(': unclosed group\n"
        r = rx_env.ctl("search", "--mode", "regex", "(", "--json", cwd=tree)
    assert r.returncode == 2 and r.stdout == ""
    err = json.loads(r.stderr)["error"]
    assert err["code"] == "invalid_regex" and err["detail"] == {"pattern": "("}


def test_flag_shaped_pattern_reaches_the_server_as_a_query(rx_env: PrivateEnv, tree: Path):
    with FakeDaemon(rx_env.endpoint, answer(result(hits=[]))) as fake:
        rx_env.ctl("search", "--mode", "regex", "--", "--pre=sh", cwd=tree)
        rx_env.ctl("search", "--", "--pre=sh", cwd=tree)
        rx_env.ctl("search", "-e", "--pre=sh", cwd=tree)
    assert [(q.args["query"], q.args["mode"]) for q in fake.requests] == [
        ("--pre=sh", "regex"), ("--pre=sh", "auto"), ("--pre=sh", "auto")]


def test_foreign_ids_are_skipped_and_progress_is_shown(rx_env: PrivateEnv, tree: Path):
    def handler(req):
        return [Reply.success("someone-else", result(hits=[])),
                Progress(id="someone-else", phase="bogus"),
                Progress(id=req.id, phase="scanning", files_total=3),
                Progress(id=req.id, phase="embedding", files_done=1, files_total=3,
                         chunks_embedded=4, eta_seconds=2),
                Reply.success(req.id, result())]

    with FakeDaemon(rx_env.endpoint, handler):
        r = rx_env.ctl("search", "retry", cwd=tree)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2
    assert "bogus" not in r.stderr
    assert "ragexctl: scanning 0/3 files" in r.stderr
    assert "ragexctl: embedding 1/3 files, 4 chunks, ETA 2s" in r.stderr


def test_quick_requests_are_resent_lazy_pirate(rx_env: PrivateEnv):
    seen = []

    def handler(req):
        seen.append(req.id)
        if len(seen) == 1:
            return None  # lost
        return [Reply.success(req.id, {"daemon": {"pid": 1, "version": "0.1.0"},
                                       "workers": []})]

    with FakeDaemon(rx_env.endpoint, handler) as fake:
        t0 = time.monotonic()
        r = rx_env.ctl("status", "--timeout", "3")
        took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert "no workers" in r.stdout
    assert fake.ops() == ["status", "status"] and seen[0] == seen[1]  # same request, resent
    assert fake.requests[0].timeout == 3.0  # quick requests carry the deadline to ragexd
    assert took < 10


def test_index_is_never_resent(rx_env: PrivateEnv, tree: Path):
    with FakeDaemon(rx_env.endpoint, lambda req: None) as fake:
        t0 = time.monotonic()
        r = rx_env.ctl("index", "--timeout", "2", cwd=tree)
        took = time.monotonic() - t0
    assert r.returncode == 2
    assert "did not answer the index request" in r.stderr
    assert fake.ops() == ["index"]
    assert took < 2 + 8  # its timeout + process start-up on a busy machine


def test_search_timeout_is_an_error_not_a_hang(rx_env: PrivateEnv, tree: Path):
    with FakeDaemon(rx_env.endpoint, lambda req: None) as fake:
        t0 = time.monotonic()
        r = rx_env.ctl("search", "x", "--timeout", "1", cwd=tree)
        took = time.monotonic() - t0
        assert r.returncode == 2 and "did not answer the search request" in r.stderr
        assert fake.ops() == ["search"]  # a merely slow worker is not sent it twice
        assert took < 1 + 8  # its timeout + process start-up on a busy machine
        r = rx_env.ctl("search", "x", "--timeout", "0.5", "--json", cwd=tree)
    assert r.returncode == 2 and r.stdout == ""
    assert json.loads(r.stderr)["error"]["code"] == "timeout"


def test_progress_pushes_the_deadline_back(rx_env: PrivateEnv, tree: Path):
    """An index that keeps reporting progress outlives --timeout."""
    def handler(req):
        out = []
        for i in range(10):
            out += [Sleep(0.8), Progress(id=req.id, phase="embedding", files_done=i,
                                         files_total=10)]
        return out + [Reply.success(req.id, {"summary": {"files_indexed": 8,
                                                         "chunks_total": 20, "seconds": 4}})]

    with FakeDaemon(rx_env.endpoint, handler):
        t0 = time.monotonic()
        r = rx_env.ctl("index", "--timeout", "1", cwd=tree)
    # --timeout 1: one second of silence would end it; the index talks every
    # 0.8 s for 8 s, so it must succeed.
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 > 8
    assert r.stdout.startswith("indexed 8 files (0 unchanged, 0 removed), 20 chunks in 4.0 s")


def test_ragexd_replaced_mid_search_is_resent_at_once(rx_env: PrivateEnv, tree: Path):
    calls = []

    def handler(req):
        calls.append(req.id)
        if len(calls) == 1:
            return [Restart()]  # the request dies with the old ragexd
        return [Reply.success(req.id, result())]

    # No auto-start: a real ragexd must never race the fake one for its socket.
    env = dict(rx_env.env, RAGEX_DAEMON_AUTO_START="false")
    with FakeDaemon(rx_env.endpoint, handler) as fake:
        t0 = time.monotonic()
        r = rx_env.ctl("search", "retry", cwd=tree, env=env)
        took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert fake.binds == 2 and calls == [calls[0], calls[0]]  # the same request, resent
    assert took < 10  # noticed by the connection events, not by the 60 s timeout


def test_ragexd_killed_mid_search_is_noticed_quickly(rx_env: PrivateEnv, tree: Path):
    env = dict(rx_env.env, RAGEX_DAEMON_AUTO_START="false")
    with FakeDaemon(rx_env.endpoint, lambda req: [Die()]):
        t0 = time.monotonic()
        r = rx_env.ctl("search", "retry", cwd=tree, env=env)
        took = time.monotonic() - t0
    assert r.returncode == 2
    assert "ragexd stopped while handling the search request" in r.stderr
    assert took < 10


def test_worker_unavailable_is_retried_busy_is_not(rx_env: PrivateEnv, tree: Path):
    n = []

    def restarting(req):
        n.append(1)
        if len(n) < 3:
            return [Reply.failure(req.id, ErrorCode.WORKER_UNAVAILABLE, "worker restarting")]
        return [Reply.success(req.id, result())]

    with FakeDaemon(rx_env.endpoint, restarting) as fake:
        r = rx_env.ctl("search", "retry", cwd=tree)
    assert r.returncode == 0 and fake.ops() == ["search"] * 3
    with FakeDaemon(rx_env.endpoint, lambda req: [Reply.failure(
            req.id, ErrorCode.BUSY, "too many requests queued for this project")]) as fake:
        r = rx_env.ctl("search", "retry", cwd=tree)
    assert r.returncode == 2 and "too many requests" in r.stderr
    assert fake.ops() == ["search"]


def test_protocol_version_mismatch_names_both_versions(rx_env: PrivateEnv, tree: Path):
    def handler(req):
        return [Raw(tag_frames(json.dumps({"type": "reply", "id": req.id, "ok": True,
                                           "result": {}}).encode(), b"RAGEX/2"))]

    with FakeDaemon(rx_env.endpoint, handler):
        r = rx_env.ctl("search", "x", cwd=tree)
    assert r.returncode == 2
    assert "RAGEX/2" in r.stderr and "RAGEX/1" in r.stderr and "stop --all" in r.stderr


def test_version_flags_a_stale_ragexd(rx_env: PrivateEnv):
    with FakeDaemon(rx_env.endpoint, lambda req: [Reply.success(req.id,
                                                                hello_result("0.0.9"))]) as fake:
        r = rx_env.ctl("--version")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0].startswith("ragexctl ") and lines[1].startswith("ragexd 0.0.9 (pid ")
    assert "warning" in r.stderr and "ragexctl stop --all" in r.stderr
    assert fake.ops() == ["hello"]
    with FakeDaemon(rx_env.endpoint, lambda req: [Reply.success(req.id, hello_result())]):
        r = rx_env.ctl("--version")
    assert r.returncode == 0 and r.stderr == ""


def test_index_progress_and_summary(rx_env: PrivateEnv, tree: Path):
    summary = {"files_scanned": 4, "files_indexed": 3, "files_unchanged": 1, "files_removed": 0,
               "chunks_added": 9, "chunks_removed": 0, "chunks_total": 9, "seconds": 1.5,
               "skipped": [{"path": "big.bin", "reason": "binary file"}]}

    def handler(req):
        assert req.op is Op.INDEX
        return [Progress(id=req.id, phase="scanning"),
                Progress(id=req.id, phase="embedding", files_done=3, files_total=3,
                         chunks_embedded=9),
                Reply.success(req.id, {"summary": summary})]

    with FakeDaemon(rx_env.endpoint, handler) as fake:
        r = rx_env.ctl("index", "--rebuild", cwd=tree / "shop")
        assert r.returncode == 0
        assert r.stdout == (f"indexed 3 files (1 unchanged, 0 removed), 9 chunks in 1.5 s; "
                            f"1 files skipped ({os.path.realpath(tree)})\n")
        assert "skipped big.bin: binary file" in r.stderr
        assert "embedding 3/3 files, 9 chunks" in r.stderr
        r = rx_env.ctl("index", "--json", str(tree))
    assert fake.requests[0].args == {"rebuild": True, "paths": None}
    assert fake.requests[1].args == {"rebuild": False, "paths": None}
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["type"] for x in rows] == ["progress", "progress", "summary"]
    assert rows[-1]["files_indexed"] == 3 and rows[-1]["root"] == os.path.realpath(tree)


def test_status_ls_rm_logs_through_ragexd(rx_env: PrivateEnv, tree: Path):
    status = {"daemon": {"pid": 7, "version": "0.1.0", "uptime_s": 5, "rss": 1 << 25,
                         "socket": str(rx_env.socket), "runtime": {"runtime": "process"}},
              "workers": [{"project_id": "a" * 16, "root": str(tree), "state": "indexing",
                           "runtime": "process", "ident": "99", "pid": 99, "rss": 1 << 28,
                           "uptime_s": 30, "idle_s": 0, "index_size": 1 << 20,
                           "last_error": None, "index": {"files": 2, "chunks": 5}}]}

    def handler(req: Request):
        if req.op is Op.STATUS:
            return [Reply.success(req.id, status)]
        if req.op is Op.LIST:
            return [Reply.success(req.id, {"projects": [
                {"id": "a" * 16, "root": str(tree), "size_bytes": 4096,
                 "last_used": time.time(), "running": True}]})]
        if req.op is Op.REMOVE:
            return [Reply.success(req.id, {"removed": req.args["target"], "freed_bytes": 4096})]
        if req.op is Op.LOGS:
            return [Reply.success(req.id, {"path": str(rx_env.base / "x.log"),
                                           "lines": ["one", "two"]})]
        return [Reply.failure(req.id, ErrorCode.BAD_REQUEST, "unexpected")]

    rx_env.fake_index(tree)   # `rm PATH` resolves a path to an index on disk first
    with FakeDaemon(rx_env.endpoint, handler) as fake:
        r = rx_env.ctl("status")
        assert r.returncode == 0 and "indexing" in r.stdout and "256 MiB" in r.stdout
        r = rx_env.ctl("status", "--json", str(tree / "shop"))
        assert json.loads(r.stdout) == status
        assert fake.requests[-1].project == os.path.realpath(tree)
        r = rx_env.ctl("ls")
        assert "a" * 16 in r.stdout and "running" in r.stdout
        r = rx_env.ctl("rm", str(tree))
        assert r.returncode == 0 and "4 KiB freed" in r.stdout
        assert len(fake.requests[-1].args["target"]) == 16  # resolved to the project id
        r = rx_env.ctl("logs", "-n", "2")
        assert r.stdout == "one\ntwo\n"
        assert fake.requests[-1].args == {"target": None, "lines": 2}


def test_stop_all_stops_workers_then_ragexd(rx_env: PrivateEnv):
    def handler(req):
        if req.op is Op.STOP:
            return [Reply.success(req.id, {"stopped": ["a" * 16, "b" * 16]})]
        if req.op is Op.SHUTDOWN:
            return [Reply.success(req.id, {"stopping": True}), Sleep(0.3), Die()]
        return None

    with FakeDaemon(rx_env.endpoint, handler) as fake:
        r = rx_env.ctl("stop", "--all")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "stopped 2 workers and ragexd\n"
    assert fake.ops() == ["stop", "shutdown"] and fake.requests[0].args == {"all": True}


def test_on_a_terminal_colour_and_a_redrawn_progress_line(rx_env: PrivateEnv, tree: Path):
    """What a person sees: run the client on a pseudo-terminal."""
    import pty
    import subprocess
    import sys

    def handler(req):
        return [Progress(id=req.id, phase="embedding", files_done=i, files_total=4,
                         chunks_embedded=i * 3, eta_seconds=4 - i) for i in range(1, 5)] + \
            [Reply.success(req.id, result())]

    with FakeDaemon(rx_env.endpoint, handler):
        master, slave = pty.openpty()
        env = dict(rx_env.env, TERM="xterm", COLUMNS="100")
        proc = subprocess.Popen([sys.executable, "-m", "ragexctl", "search", "retry"],
                                env=env, cwd=str(tree), stdin=slave, stdout=slave,
                                stderr=slave)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        proc.wait(timeout=30)
        os.close(master)
    screen = b"".join(chunks).decode().replace("\r\n", "\n")  # the tty's own CRLF
    assert proc.returncode == 0
    assert "\rragexctl: embedding [#####---------------] 1/4 files, 3 chunks, ETA 3s" in screen
    assert "ragexctl: embedding [####################] 4/4 files, 12 chunks" in screen
    # The progress line is erased before results are printed, in colour: hits ranked
    # by meaning as blocks (span, kind and name, then the chunk with the query's words lit)
    results = screen[screen.rindex("\r") + 1:]
    assert results.startswith("\x1b[35mshop/upload.py\x1b[0m:\x1b[32m4-12\x1b[0m  function "
                              "retry_upload\n    def \x1b[1;31mretry\x1b[0m_upload(client,"), results


def test_a_closed_pipe_ends_quietly(rx_env: PrivateEnv, tree: Path):
    """`ragexctl search x | head -1`: no traceback, exit 0 (as rg does)."""
    import subprocess
    import sys

    many = [dict(HITS[0], line=i, text=f"line {i} " + "x" * 200) for i in range(1, 1001)]
    with FakeDaemon(rx_env.endpoint, answer(result(hits=many))):
        proc = subprocess.Popen([sys.executable, "-m", "ragexctl", "search", "x", "-n", "1000"],
                                env=rx_env.env, cwd=str(tree), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        first = proc.stdout.readline()
        proc.stdout.close()  # the reader is satisfied
        err = proc.stderr.read()
        proc.wait(timeout=30)
    assert first.startswith(b"shop/upload.py:1:line 1 ")
    assert proc.returncode == 0, err
    assert err == b""
