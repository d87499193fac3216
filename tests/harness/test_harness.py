"""The harness holds its own promises: a private environment reaches nothing
outside its directory, a failing test shows the log of its ragexd, and a wait for
a child's line returns when the line comes (not after a guessed time)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.harness import REPO, PrivateEnv, RagexInstance, StreamLines, pids_in_env


def test_a_private_env_keeps_every_path_under_its_base_and_drops_outside_links(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"XDG_RUNTIME_DIR": "/run/user/0", "XDG_CONFIG_HOME": "/root/.config",
                        "NOTIFY_SOCKET": "/run/systemd/notify", "DOCKER_HOST": "tcp://x:1",
                        "RAGEX_DAEMON_TIMEOUT": "1s", "DBUS_SESSION_BUS_ADDRESS": "unix:x"}.items():
        monkeypatch.setenv(name, value)
    env = PrivateEnv()
    try:
        inside = [env.env[k] for k in ("HOME", "RAGEX_RUNTIME_DIR", "RAGEX_DATA_DIR",
                                       "RAGEX_STATE_DIR", "RAGEX_CONFIG_DIR")]
        assert all(v.startswith(f"{env.base}/") for v in inside), inside
        assert not [k for k in env.env if k.startswith("XDG_")]
        for gone in ("NOTIFY_SOCKET", "DOCKER_HOST", "RAGEX_DAEMON_TIMEOUT",
                     "DBUS_SESSION_BUS_ADDRESS"):
            assert gone not in env.env, gone
        assert env.env["HF_HUB_OFFLINE"] == "1" and env.env["RAGEX_RUNTIME"] == "process"
        assert env.env["PYTHONPATH"].split(os.pathsep)[0] == str(REPO)
        assert stat.S_IMODE(env.run_dir.stat().st_mode) == 0o700
        assert len(env.endpoint) + len("/workers/0123456789abcdef/worker.sock") < 107
        # The Docker runtime keeps the engine the caller points at.
        docker = PrivateEnv(runtime="docker")
        assert docker.env["DOCKER_HOST"] == "tcp://x:1"
        docker.cleanup()
    finally:
        env.cleanup()
    assert not env.base.exists()


def test_an_instance_leaves_its_runtime_dir_to_ragexd_and_reaps_it() -> None:
    rx = RagexInstance()
    assert not rx.run_dir.exists()      # ragexd's own way of making it is under test
    rx.start()
    pid = rx.pid
    assert rx.client().status()["daemon"]["pid"] == pid
    assert stat.S_IMODE(rx.run_dir.stat().st_mode) == 0o700
    rx.cleanup()
    assert rx.proc is not None and rx.proc.returncode == 0
    assert not pids_in_env(rx.run_dir) and not rx.base.exists()


def test_a_failing_test_shows_the_log_of_its_ragexd(tmp_path: Path) -> None:
    inner = tmp_path / "test_inner.py"
    inner.write_text(textwrap.dedent('''
        from tests.harness import RagexInstance

        def test_fails_on_purpose():
            rx = RagexInstance().start()
            try:
                assert rx.client().status(), "unreachable"
                raise AssertionError("failing on purpose")
            finally:
                rx.cleanup()
    '''))
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.conftest",
                          "-p", "no:cacheprovider", "-q", str(inner)],
                         capture_output=True, text=True, timeout=180, cwd=str(tmp_path),
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]
    assert "failing on purpose" in out.stdout
    section = out.stdout.split("ragexd log (", 1)
    assert len(section) == 2, out.stdout[-3000:]
    assert "ragexd" in section[1] and "listening" in section[1].lower(), section[1][:3000]


def test_stream_lines_returns_at_the_line_waited_for_and_keeps_the_whole_output() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "print('starting', flush=True); sys.stdin.readline()\n"
         "print('ready now', flush=True); print('done', flush=True)"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    out = StreamLines(child.stdout)
    try:
        assert out.wait_for("starting", timeout=60) == "starting\n"
        with pytest.raises(AssertionError, match="timed out after 0.2 s"):
            out.wait_for("ready", timeout=0.2)   # not said yet: the child waits for us
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
        assert out.wait_for(lambda line: line.startswith("ready"), timeout=60) == "ready now\n"
        assert child.wait(60) == 0
        assert out.until_closed(10) == "starting\nready now\ndone\n"
        with pytest.raises(AssertionError, match="the stream ended"):
            out.wait_for("never said", timeout=60)
    finally:
        child.kill()
        child.wait()
