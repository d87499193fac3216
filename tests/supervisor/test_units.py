"""Pure supervisor logic: backoff and crash-loop windows (fake clock), sd_notify
datagrams, the instance lock, the recently-used list, runtime selection."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ragexd.config import Config
from ragexd.runtimes import RuntimeUnavailable, select_runtime
from ragexd.runtimes.process import ProcessRuntime, describe_exit
from ragexd.supervisor.backoff import BackoffPolicy, RestartTracker
from ragexd.pidlock import AlreadyRunning, InstanceLock
from ragexd.logformat import PrintableFormatter
from ragexd.supervisor.logs import JournalFormatter, tail
from ragexd.supervisor.notify import Notifier
from ragexd.supervisor.recent import RecentProjects


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --- backoff ---------------------------------------------------------------------


def tracker() -> tuple[RestartTracker, FakeClock]:
    clock = FakeClock()
    return RestartTracker(policy=BackoffPolicy(), clock=clock), clock


def test_backoff_doubles_from_one_second_to_sixty():
    t, clock = tracker()
    delays = []
    for _ in range(9):
        t.record_start()
        clock.advance(200)       # > 10 min apart overall, so no crash loop
        t.record_crash()
        delays.append(t.delay)
        assert t.wait() == pytest.approx(t.delay)
        clock.advance(t.delay)
        assert t.wait() == 0
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert not t.crash_loop


def test_backoff_resets_after_five_healthy_minutes():
    t, clock = tracker()
    for _ in range(3):
        t.record_start()
        clock.advance(1)
        t.record_crash()
    assert t.delay == 4
    t.record_start()
    clock.advance(299)
    t.note_healthy()
    assert t.delay == 4, "reset too early"
    clock.advance(2)
    t.note_healthy()
    assert t.delay == 0
    t.record_crash()
    assert t.delay == 1, "the first crash after a healthy run waits 1 s again"


def test_five_crashes_in_ten_minutes_is_a_crash_loop():
    t, clock = tracker()
    for i in range(4):
        t.record_start()
        clock.advance(100)
        assert not t.record_crash(), f"crash {i + 1} must not be a loop yet"
    t.record_start()
    clock.advance(100)           # 5th crash at t+500 s: within 600 s of the first
    assert t.record_crash()
    assert t.crash_loop and t.recent_crashes() == 5


def test_crashes_spread_over_more_than_ten_minutes_are_not_a_loop():
    t, clock = tracker()
    for _ in range(12):
        t.record_start()
        clock.advance(151)       # 5 crashes span 604 s > 600 s window
        assert not t.record_crash()
    assert not t.crash_loop
    assert t.recent_crashes() == 4


def test_reset_clears_crash_loop_and_delay():
    t, clock = tracker()
    for _ in range(5):
        t.record_crash()
    assert t.crash_loop and t.wait() > 0
    t.reset()
    assert not t.crash_loop and t.wait() == 0 and t.recent_crashes() == 0
    t.record_crash()
    assert t.delay == 1 and not t.crash_loop


def test_requested_stops_are_not_crashes():
    t, clock = tracker()
    for _ in range(10):
        t.record_start()
        clock.advance(1)
        t.record_stop()
    assert t.recent_crashes() == 0 and t.wait() == 0 and not t.crash_loop


# --- sd_notify ---------------------------------------------------------------------


def _listener(address: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(2)
    return sock


def test_notify_sends_datagrams_to_a_path_socket():
    directory = Path(tempfile.mkdtemp(prefix="rx-"))
    path = directory / "notify"
    sock = _listener(str(path))
    try:
        n = Notifier({"NOTIFY_SOCKET": str(path)})
        assert n.enabled
        assert n.ready("listening")
        msg = sock.recv(4096).decode().split("\n")
        assert "READY=1" in msg and "STATUS=listening" in msg and f"MAINPID={os.getpid()}" in msg
        assert n.stopping()
        assert sock.recv(4096) == b"STOPPING=1"
    finally:
        sock.close()


def test_notify_abstract_socket_and_watchdog_timing():
    name = f"ragex-test-{os.getpid()}"
    sock = _listener(b"\0" + name.encode())
    try:
        n = Notifier({"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "3000000",
                      "WATCHDOG_PID": str(os.getpid())})
        assert n.watchdog_interval == pytest.approx(1.5)
        assert n.watchdog(now=100.0)
        assert sock.recv(4096) == b"WATCHDOG=1"
        assert not n.watchdog(now=101.0), "sent again before WATCHDOG_USEC/2"
        assert n.next_watchdog_in(now=101.0) == pytest.approx(0.5)
        assert n.watchdog(now=101.6)
        assert sock.recv(4096) == b"WATCHDOG=1"
    finally:
        sock.close()


def test_notify_ignores_watchdog_meant_for_another_pid_and_missing_socket():
    n = Notifier({"NOTIFY_SOCKET": "@nobody-listens", "WATCHDOG_USEC": "1000000",
                  "WATCHDOG_PID": str(os.getpid() + 1)})
    assert n.watchdog_interval is None and not n.watchdog()
    quiet = Notifier({})
    assert not quiet.enabled and not quiet.ready() and not quiet.watchdog()


# --- lock ----------------------------------------------------------------------------


def test_lock_is_exclusive_and_names_the_holder(tmp_path):
    path = tmp_path / "ragexd.pid"
    first = InstanceLock(path)
    first.acquire()
    assert path.read_text().strip() == str(os.getpid())
    second = InstanceLock(path)
    with pytest.raises(AlreadyRunning) as err:
        second.acquire()
    assert err.value.pid == os.getpid()
    assert str(err.value) == f"ragexd is already running (pid {os.getpid()})"
    assert path.read_text().strip() == str(os.getpid()), "the loser must not touch the file"
    first.release()
    assert not path.exists()
    second.acquire()
    second.release()


def test_lock_of_a_killed_holder_is_free(tmp_path):
    path = tmp_path / "ragexd.pid"
    code = ("import sys, time; from pathlib import Path; "
            "from ragexd.pidlock import InstanceLock; "
            f"InstanceLock(Path({str(path)!r})).acquire(); print('locked', flush=True); "
            "time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"locked"
        with pytest.raises(AlreadyRunning) as err:
            InstanceLock(path).acquire()
        assert err.value.pid == proc.pid
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        lock = InstanceLock(path)
        lock.acquire()           # the stale pid file does not block
        assert path.read_text().strip() == str(os.getpid())
        lock.release()
    finally:
        proc.kill()
        proc.wait()


# --- recent ----------------------------------------------------------------------------


def test_a_client_probing_the_lock_never_makes_a_starting_ragexd_think_one_runs(tmp_path):
    """``lock_free`` (a client waiting for ragexd to go) holds a shared lock for an
    instant; a ragexd starting in that instant must not exit "already running"."""
    path = tmp_path / "ragexd.pid"
    path.write_text("")
    prober = subprocess.Popen(
        [sys.executable, "-c",
         "import time; from ragexd.pidlock import lock_free\n"
         f"end = time.monotonic() + 30\n"
         f"while time.monotonic() < end: lock_free({str(path)!r})"],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    try:
        time.sleep(0.3)   # the prober is probing
        for _ in range(300):
            lock = InstanceLock(path)
            lock.acquire()
            lock.release(remove=False)
    finally:
        prober.kill()
        prober.wait()


def test_recent_orders_by_use_and_rate_limits_writes(tmp_path):
    path = tmp_path / "recent.json"
    recent = RecentProjects(path)
    assert recent.touch("a" * 16, "/a", now=100.0)
    assert recent.touch("b" * 16, "/b", now=101.0)
    assert not recent.touch("a" * 16, "/a", now=102.0), "rewritten within a minute"
    assert recent.most_recent(1) == [("a" * 16, "/a")]    # in memory at once
    on_disk = RecentProjects(path)
    assert on_disk.most_recent(5) == [("b" * 16, "/b"), ("a" * 16, "/a")]
    recent.touch("a" * 16, "/a", now=200.0)
    assert RecentProjects(path).most_recent(5)[0] == ("a" * 16, "/a")
    recent.remove("a" * 16)
    assert RecentProjects(path).most_recent(5) == [("b" * 16, "/b")]


def test_recent_survives_a_corrupt_file(tmp_path):
    path = tmp_path / "recent.json"
    path.write_text("{not json")
    recent = RecentProjects(path)
    assert recent.most_recent(3) == []
    recent.touch("c" * 16, "/c", now=1.0)
    assert json.loads(path.read_text())["projects"][0]["root"] == "/c"


def test_recent_keeps_a_bounded_number_of_entries(tmp_path):
    recent = RecentProjects(tmp_path / "recent.json", max_entries=3)
    for i in range(6):
        recent.touch(f"{i:016x}", f"/p{i}", now=float(i), force=True)
    assert [r for _, r in RecentProjects(tmp_path / "recent.json").most_recent(10)] == \
        ["/p5", "/p4", "/p3"]


# --- logs, exits, runtime selection ------------------------------------------------------


def test_tail_reads_the_end_of_a_large_file(tmp_path):
    path = tmp_path / "big.log"
    path.write_text("".join(f"line {i}\n" for i in range(100_000)))
    assert tail(path, 3) == ["line 99997", "line 99998", "line 99999"]
    assert tail(tmp_path / "missing.log", 3) == []


def test_journal_formatter_prefixes_priorities():
    import logging

    fmt = JournalFormatter("%(message)s")
    record = logging.LogRecord("ragexd", logging.WARNING, __file__, 1, "two\nlines", None, None)
    assert fmt.format(record) == "<4>two\n<4>lines"


def test_log_lines_show_escape_sequences_escaped_and_keep_their_line_breaks():
    import logging

    fmt = JournalFormatter("%(message)s")
    record = logging.LogRecord("ragexd", logging.WARNING, __file__, 1,
                               "the worker for %s crashed; last log lines:\n  %s", (
                                   "/p/evil\x1b]0;PWNED\x07dir", "boom \x1b[2J\r"), None)
    assert fmt.format(record) == ("<4>the worker for /p/evil\\x1b]0;PWNED\\x07dir crashed; "
                                  "last log lines:\n<4>  boom \\x1b[2J\\x0d")
    try:
        raise OSError("cannot read /p/\x1b[31mred.py")
    except OSError:
        import sys

        record = logging.LogRecord("ragexd", logging.ERROR, __file__, 1, "failed", None,
                                   sys.exc_info())
    text = PrintableFormatter("%(message)s").format(record)
    assert "cannot read /p/\\x1b[31mred.py" in text and "\x1b" not in text
    assert text.startswith("failed\nTraceback")


def test_exit_descriptions():
    assert describe_exit(-9) == ("killed", "killed (SIGKILL)")
    assert describe_exit(3) == ("crashed", "exited with code 3")
    assert describe_exit(0) == ("exited", "exited with code 0")


def test_select_runtime_process_and_auto():
    runtime, reason = select_runtime(Config(runtime="process"))
    assert isinstance(runtime, ProcessRuntime) and "process" in reason
    runtime, reason = select_runtime(Config(runtime="auto"))
    assert reason
    if runtime.name == "process":
        assert "fell back" in reason


def test_auto_without_docker_says_the_choice_was_made_when_ragexd_started(monkeypatch):
    """`status` repeats the reason for ragexd's life: "the Docker engine is not
    running" read as now, beside `doctor` saying it answers once it had started."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    runtime, reason = select_runtime(Config(runtime="auto"))
    assert runtime.name == "process"
    assert "when ragexd started" in reason and "`ragexctl stop --all`" in reason, reason


def test_select_runtime_docker_unusable_is_an_error(monkeypatch):
    # Point docker-py at nothing so the probe fails fast, whatever this machine has.
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    try:
        runtime, reason = select_runtime(Config(runtime="docker",
                                                docker_image="ragex-no-such-image:0"))
    except RuntimeUnavailable as exc:
        assert "runtime" in str(exc) and "process" in str(exc)
    else:  # pragma: no cover - only where Docker really works against that socket
        pytest.fail(f"Docker selected although unreachable: {reason}")


def test_process_runtime_env_is_offline_and_drops_systemd_vars(monkeypatch):
    from ragexd.runtimes.base import WorkerSpec

    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    monkeypatch.setenv("WATCHDOG_USEC", "100")
    spec = WorkerSpec("0" * 16, Path("/r"), Path("/i"), Path("/s"), Path("/l.log"), 0)
    env = ProcessRuntime(Config())._env(spec)
    assert "NOTIFY_SOCKET" not in env and "WATCHDOG_USEC" not in env
    assert env["HF_HUB_OFFLINE"] == "1" and env["TRANSFORMERS_OFFLINE"] == "1"
    assert env["TOKENIZERS_PARALLELISM"] == "false" and env["ANONYMIZED_TELEMETRY"] == "False"
    from ragexd.modelfiles import OFFLINE_ENV
    from ragexd.runtimes.docker import WORKER_ENV

    # one table for both runtimes (and the worker's own defaults): neither lags
    assert OFFLINE_ENV.items() <= env.items() and OFFLINE_ENV.items() <= WORKER_ENV.items()
    cmd = ProcessRuntime(Config()).command(spec)
    assert cmd[1:4] == ["-m", "ragexd.worker", "serve"] and "--orphan-timeout" in cmd


def test_reaping_spares_a_process_that_merely_reuses_a_recorded_pid(monkeypatch, tmp_path):
    """A pid in a stale worker.pid may belong to anything by now: only a ragex
    worker (by its command line) is ever signalled."""
    run = Path(tempfile.mkdtemp(prefix="rx-"))
    monkeypatch.setenv("RAGEX_RUNTIME_DIR", str(run))
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        wdir = run / "workers" / ("f" * 16)
        wdir.mkdir(parents=True)
        (wdir / "worker.pid").write_text(f"{bystander.pid}\n")
        (wdir / "worker.sock").write_text("")
        assert ProcessRuntime(Config()).adopt_or_reap({}) == []
        assert bystander.poll() is None, "a non-worker process was killed"
        assert not (wdir / "worker.sock").exists() and not (wdir / "worker.pid").exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_a_process_trees_memory_counts_a_grandchild_started_by_another_thread():
    """proctree: the one sum behind ragexd's memory limit and a worker's status."""
    import threading

    from ragexd import proctree

    holder = ("import subprocess, sys, time; b = bytearray(64 << 20); b[::4096] = b'x' * (16384);"
              " print('ready', flush=True); time.sleep(60)")
    procs: list[subprocess.Popen] = []

    def start() -> None:   # a child listed under this thread's task, not the main one
        parent = (f"import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', "
                  f"{holder!r}], stdout=sys.stdout); p.wait()")
        procs.append(subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE))

    thread = threading.Thread(target=start)
    thread.start()
    thread.join()
    try:
        assert procs[0].stdout is not None and procs[0].stdout.readline() == b"ready\n"
        (grandchild,) = proctree.descendants(procs[0].pid)
        assert {procs[0].pid, grandchild} <= set(proctree.descendants(os.getpid()))
        assert (proctree.rss(grandchild) or 0) > 64 << 20
        total = proctree.tree_rss(os.getpid())
        assert total is not None and total >= (proctree.rss(os.getpid()) or 0) + (64 << 20)
    finally:
        for pid in proctree.descendants(procs[0].pid):
            os.kill(pid, signal.SIGKILL)
        procs[0].wait(10)
    assert proctree.tree_rss(2**22 + 12345) is None   # no such process
