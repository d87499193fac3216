"""One session for both front-ends: the CLI and the MCP server reach ragexd the same way.

Each test drives a real front-end process (``python -m ragexctl ...`` or the MCP
server's ``Backend``) against real sockets: a scripted stale ragexd on a real
ZeroMQ socket, a real ragexd that is then frozen with SIGSTOP, a real one-shot
worker.  What is checked is what a user sees: which requests reached the old
ragexd, which version answers afterwards, what ``ls`` lists, what the
messages say.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ragexd
from ragexd.protocol import Op, Reply, Request

from tests.harness import PrivateEnv
from .fakedaemon import Die, FakeDaemon, hello_result

OLD = "0.0.9"

#: The MCP server's bridge, run as its own process: `Backend` is what every
#: tool call goes through.  argv: root, op, JSON args, "daemon" or "project".
MCP_CALL = """
import json, sys
from pathlib import Path
from ragexd import config
from ragexd.protocol import Op, RagexError
from ragexctl.mcp import Backend
backend = Backend(Path(sys.argv[1]), config.load())
op, args = Op(sys.argv[2]), json.loads(sys.argv[3])
try:
    if sys.argv[4] == "daemon":
        out = backend.daemon_call(op, args, timeout=20.0)
    else:
        out = backend.call(op, args, timeout=120.0)
except RagexError as exc:
    print(json.dumps({"error": exc.code.value, "message": exc.message}))
else:
    print(json.dumps(out))
"""


def mcp_backend(env: PrivateEnv, root: Path, op: Op, args: dict, kind: str,
                extra: dict[str, str] | None = None) -> tuple[dict, str]:
    proc = subprocess.run([sys.executable, "-c", MCP_CALL, str(root), op.value, json.dumps(args),
                           kind], env={**env.env, **(extra or {})}, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1]), proc.stderr


def stale(req: Request) -> list:
    """An old ragexd: answers HELLO with an old version, exits on SHUTDOWN."""
    if req.op is Op.HELLO:
        return [Reply.success(req.id, hello_result(OLD))]
    if req.op is Op.SHUTDOWN:
        return [Reply.success(req.id, {}), Die()]
    return [Reply.success(req.id, {"hits": [], "mode": "regex", "partial": False,
                                   "took_ms": 1.0, "notes": []})]


def bound_before_the_upgrade(env: PrivateEnv) -> None:
    """Make the socket look older than the installed code, as after `pip install -U`."""
    then = os.stat(ragexd.__file__).st_mtime - 3600
    os.utime(env.socket, (then, then))


def our_ragexd(env: PrivateEnv) -> dict:
    r = env.ctl("--version")
    assert r.returncode == 0, r.stderr
    return {"line": r.stdout.splitlines()[1], "stderr": r.stderr}


@pytest.mark.parametrize("front", ["cli", "mcp"])
def test_both_front_ends_replace_a_ragexd_older_than_the_installed_code(
        rx_env: PrivateEnv, tree: Path, front: str) -> None:
    with FakeDaemon(rx_env.endpoint, stale) as fake:
        bound_before_the_upgrade(rx_env)
        if front == "cli":
            r = rx_env.ctl("start")
            assert r.returncode == 0, r.stderr
            assert f"ragexd {ragexd.__version__} is running" in r.stdout
        else:
            hello, _ = mcp_backend(rx_env, tree, Op.HELLO, {}, "daemon")
            assert hello.get("version") == ragexd.__version__, hello
        # The old one was asked its version, then told to stop cleanly — nothing else.
        assert fake.ops() == ["hello", "shutdown"]
        now = our_ragexd(rx_env)
        assert now["line"].startswith(f"ragexd {ragexd.__version__} (pid ")
        assert now["stderr"] == ""  # no stale-version warning any more
        rx_env.stop_everything()  # before the fake's teardown removes the socket path


def test_a_fresh_ragexd_costs_no_version_round_trip(rx_env: PrivateEnv, tree: Path) -> None:
    with FakeDaemon(rx_env.endpoint, stale) as fake:
        r = rx_env.ctl("search", "--mode", "regex", "x", cwd=tree)
    assert r.returncode == 1, r.stderr  # no hits
    assert fake.ops() == ["search"]


def test_with_auto_start_off_a_stale_ragexd_is_warned_about_not_replaced(
        rx_env: PrivateEnv, tree: Path) -> None:
    env = dict(rx_env.env, RAGEX_DAEMON_AUTO_START="false")
    with FakeDaemon(rx_env.endpoint, stale) as fake:
        bound_before_the_upgrade(rx_env)
        r = rx_env.ctl("search", "--mode", "regex", "x", cwd=tree, env=env)
        assert fake.ops() == ["hello", "search"]
    assert r.returncode == 1
    assert f"ragexd is version {OLD}" in r.stderr and "ragexctl stop --all" in r.stderr


def test_the_mcp_one_shot_path_records_the_project_as_the_clis_does(
        rx_env: PrivateEnv, tree: Path) -> None:
    args = {"query": "retry_upload", "mode": "regex", "limit": 5, "paths": [],
            "languages": [], "auto_index": False}
    result, err = mcp_backend(rx_env, tree, Op.SEARCH, args, "project",
                              {"RAGEX_DAEMON_ENABLED": "false"})
    assert [h["path"] for h in result.get("hits", [])] == ["shop/upload.py"], (result, err)
    assert not rx_env.socket.exists()  # no ragexd was involved
    rows = [json.loads(x) for x in rx_env.ctl("ls", "--json").stdout.splitlines()]
    assert [p["root"] for p in rows] == [os.path.realpath(tree)]


def _ragexd_pid(env: PrivateEnv) -> int:
    return int((env.run_dir / "ragexd.pid").read_text().strip())


def test_a_frozen_ragexd_is_named_with_its_pid_and_never_called_stopped(
        rx_env: PrivateEnv, tree: Path) -> None:
    r = rx_env.ctl("start")
    assert r.returncode == 0, r.stderr
    pid = _ragexd_pid(rx_env)
    os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        status = rx_env.ctl("status", timeout=60)
        took = time.monotonic() - t0
        assert status.returncode == 4, status.stdout + status.stderr
        assert f"pid {pid}" in status.stdout and "frozen" in status.stdout
        assert f"kill -CONT {pid}" in status.stdout and f"kill -9 {pid}" in status.stdout
        assert took < 15, took  # found out, not waited out

        doctor = rx_env.ctl("doctor", timeout=60)
        assert doctor.returncode == 2
        assert "not answering" in doctor.stdout and f"kill -CONT {pid}" in doctor.stdout

        index = rx_env.ctl("index", str(tree), timeout=60)
        assert index.returncode == 2
        assert f"did not answer within" in index.stderr and f"pid {pid}" in index.stderr
        assert "ragexd stopped" not in index.stderr
    finally:
        os.kill(pid, signal.SIGCONT)
    assert rx_env.ctl("status").returncode == 0  # resumed: answering again


def test_a_ragexd_of_our_version_is_asked_once_after_the_code_changed(
        rx_env: PrivateEnv, tree: Path) -> None:
    """An edited checkout or a reinstall of the same version: one HELLO, then none."""
    def same(req: Request) -> list:
        if req.op is Op.HELLO:
            return [Reply.success(req.id, hello_result(ragexd.__version__))]
        return stale(req)

    with FakeDaemon(rx_env.endpoint, same) as fake:
        bound_before_the_upgrade(rx_env)
        for _ in range(2):
            r = rx_env.ctl("search", "--mode", "regex", "x", cwd=tree)
            assert r.returncode == 1 and r.stderr == "", r.stderr
    assert fake.ops() == ["hello", "search", "search"]


def test_a_frozen_process_still_runs_and_an_exited_unreaped_one_does_not() -> None:
    """``paths.process_running``, which the session (waiting for a ragexd to end), the
    frozen-ragexd message and ``ragexctl service``'s hand-over all ask: SIGSTOP is
    a frozen ragexd to name, a zombie one that has exited and let go of its lock."""
    from ragexd.paths import process_running

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert process_running(child.pid)
        os.kill(child.pid, signal.SIGSTOP)
        assert process_running(child.pid)
        os.kill(child.pid, signal.SIGKILL)
        state = Path(f"/proc/{child.pid}/stat")
        deadline = time.monotonic() + 10
        while state.read_bytes().rsplit(b")", 1)[-1].split()[0] != b"Z":   # not reaped yet
            assert time.monotonic() < deadline, "the child never became a zombie"
            time.sleep(0.01)
        assert not process_running(child.pid)
    finally:
        child.kill()
        child.wait()
    assert not process_running(child.pid)
