"""kill -9 of ragexd in the middle of requests.

Users run ragexctl; ragexd dies (OOM killer, a crash) while ragexctl waits.
The promise: ragexctl gives a clear error or — for requests that may be
repeated, like a search — starts ragexd again and returns the answer; and the
new ragexd adopts or reaps every worker the dead one left: none is orphaned
10 s later.  Once with local processes, once with containers.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from ragexd.protocol import Op
from tests.harness import (Client, RagexInstance, cleanup_base, daemon_pid, pid_alive,
                           ragexctl_popen, short_tmp, wait_for, workers_under, write_corpus,
                           write_tree)
from tests.harness import containers as ds

from .helpers import figure

pytestmark = pytest.mark.faults

KILL_WHILE = ("indexing",)


def _cold_project(root: Path) -> Path:
    """Never indexed, big enough that its first search indexes for seconds."""
    write_tree(root, files=4)
    return write_corpus(root, 40, 8, prefix="bulk")


def _states(client: Client) -> dict[str, dict[str, Any]]:
    return {w["root"]: w for w in client.status(timeout=5)["workers"]}


def _wait_indexing(client: Client, roots: list[Path], procs: list[subprocess.Popen[str]],
                   timeout: float = 180) -> dict[str, dict[str, Any]]:
    def ready() -> dict[str, dict[str, Any]] | None:
        for proc in procs:
            assert proc.poll() is None, ("ragexctl finished before the kill", proc.communicate())
        states = _states(client)
        if all(states.get(str(r), {}).get("state") in KILL_WHILE for r in roots):
            return states
        return None

    return wait_for(ready, timeout, 0.2, what="the requests to be running in the workers")


def _new_daemon(run_dir: Path, old: int, timeout: float = 60) -> int:
    return wait_for(lambda: (pid := daemon_pid(run_dir)) and pid != old and pid_alive(pid)
                    and pid, timeout, 0.1, what="ragexctl to start a new ragexd")


class OrphanWatch:
    """From the kill on, in the background: when a new ragexd appears, and when the
    last worker that is not its child disappears."""

    def __init__(self, base: Path, run_dir: Path, old: int, killed: float) -> None:
        self.base, self.run_dir, self.old, self.killed = base, run_dir, old, killed
        self.new_pid: int | None = None
        self.restarted: float | None = None      # wall time the new ragexd was created
        self.clean_at: float | None = None       # wall time no orphan was left
        self.max_orphans = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            pid = daemon_pid(self.run_dir)
            if pid and pid != self.old and pid_alive(pid):
                # The launcher writes its pid first, the daemonized grandchild its own
                # later: the restart began with the first, the workers belong to the last.
                if self.restarted is None:
                    try:
                        self.restarted = psutil.Process(pid).create_time()
                    except psutil.Error:
                        pass
                self.new_pid = pid
            orphans = [p for p in workers_under(self.base)
                       if self.new_pid is None or _ppid(p) != self.new_pid]
            self.max_orphans = max(self.max_orphans, len(orphans))
            if self.new_pid is not None and not orphans and self.clean_at is None:
                self.clean_at = time.time()
            elif orphans:
                self.clean_at = None
            time.sleep(0.05)

    def finish(self, timeout: float) -> None:
        try:
            wait_for(lambda: self.clean_at is not None, timeout, 0.1,
                     what="a new ragexd and no orphan worker")
        except AssertionError:
            left = [(p.pid, _ppid(p), p.info.get("cmdline")) for p in workers_under(self.base)]
            raise AssertionError(f"new ragexd {self.new_pid}; workers left: {left}") from None
        finally:
            self._stop.set()
            self._thread.join(5)

    @property
    def reaped_after(self) -> float:
        assert self.clean_at is not None and self.restarted is not None
        return max(0.0, self.clean_at - self.restarted)


def _ppid(proc: psutil.Process) -> int | None:
    try:
        return proc.ppid()
    except psutil.Error:
        return None


def _outcome(proc: subprocess.Popen[str], timeout: float) -> tuple[int, str, str, float]:
    t0 = time.monotonic()
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err, time.monotonic() - t0


def _assert_clear(code: int, out: str, err: str, what: str) -> str:
    """A retried answer (exit 0/1 with output) or a clear one-line error (exit 2)."""
    assert "Traceback" not in err, err
    if code in (0, 1):
        return "answered"
    assert code == 2, (what, code, out, err)
    # Progress lines (a carriage-return-refreshed status) may come first.
    lines = [ln.split("\r")[-1] for ln in err.strip().splitlines()]
    errors = [ln for ln in lines if ln.startswith("ragexctl: ")]
    assert errors and "ragexd" in errors[-1], err
    return "error: " + errors[-1][len("ragexctl: "):]


def test_kill_9_of_ragexd_mid_request_with_worker_processes() -> None:
    base = short_tmp()
    rx = RagexInstance(base, RAGEX_WATCH="0")
    try:
        rx.start()
        searched, indexed = _cold_project(base / "searched"), _cold_project(base / "indexed")
        search = ragexctl_popen(rx.env, "search", "--json", "--project", str(searched),
                                "connect to a tcp server")
        index = ragexctl_popen(rx.env, "index", str(indexed))
        ctl = Client(rx.endpoint)
        states = _wait_indexing(ctl, [searched, indexed], [search, index])
        ctl.close()
        old_workers = {states[str(r)]["pid"] for r in (searched, indexed)}
        old_pid = rx.pid
        rx.proc.kill()
        rx.proc.wait(10)
        killed = time.time()
        watch = OrphanWatch(base, rx.run_dir, old_pid, killed)

        code, out, err, _ = _outcome(search, 240)
        search_done = time.time() - killed
        search_result = _assert_clear(code, out, err, "search")
        if search_result == "answered":
            [json.loads(line) for line in out.splitlines() if line.strip()]  # well-formed
        code, out, err, _ = _outcome(index, 240)
        index_result = _assert_clear(code, out, err, "index")
        # An index is not repeated behind the user's back: a clear error instead.
        assert index_result.startswith("error") and "index" in index_result, index_result

        new_pid = _new_daemon(rx.run_dir, old_pid)
        watch.finish(30)
        assert watch.new_pid == new_pid
        restarted, reaped_after = watch.restarted, watch.reaped_after
        assert reaped_after <= 10, f"orphans survived {reaped_after:.1f} s after the restart"
        assert not any(pid_alive(p) for p in old_workers)
        client = Client(rx.endpoint)
        try:
            assert client.call(Op.PING).result["pid"] == new_pid
            reply = client.call(Op.SEARCH, searched, 180, query="def slugify", mode="regex")
            assert reply.ok and reply.result["hits"], reply
        finally:
            client.close()
        log = (rx.state / "logs" / "ragexd.log").read_text(errors="replace")
        assert "reaping orphan worker" in log
        figure("kill -9 ragexd mid-request (processes)",
               f"ragexctl search: {search_result} {search_done:.1f} s after the kill (it "
               f"started ragexd again and resent); ragexctl index: {index_result[:110]}; the "
               f"new ragexd started {restarted - killed:.1f} s after the kill and had reaped "
               f"both orphan workers {reaped_after:.1f} s after its start (0 orphans left)",
               search=search_result, index=index_result, reaped_after_s=reaped_after)
    finally:
        cleanup_base(base)
        rx.cleanup()


def test_kill_9_of_ragexd_mid_request_with_containers(need_docker: None) -> None:
    base = short_tmp()
    rx = RagexInstance(base, RAGEX_WATCH="0", RAGEX_RUNTIME="docker", RAGEX_DAEMON_PRESTART="0")
    try:
        rx.start()
        searched = _cold_project(base / "searched")
        search = ragexctl_popen(rx.env, "search", "--json", "--project", str(searched),
                                "connect to a tcp server")
        ctl = Client(rx.endpoint)
        states = _wait_indexing(ctl, [searched], [search], timeout=240)
        ctl.close()
        old_ident = states[str(searched)]["ident"]
        assert states[str(searched)]["runtime"] == "docker"
        old_pid = rx.pid
        rx.proc.kill()
        rx.proc.wait(10)
        killed = time.time()

        new_pid = _new_daemon(rx.run_dir, old_pid, timeout=60)
        restarted = psutil.Process(new_pid).create_time()
        client = Client(rx.endpoint)
        try:
            def unknown() -> list[str]:
                try:
                    workers = client.status(timeout=3)["workers"]
                except TimeoutError:   # still adopting, not listening yet
                    return ["?"]
                known = {w["ident"] for w in workers if w["ident"]}
                return [c for c in _containers_under(ds, base) if c not in known]

            wait_for(lambda: not unknown(), max(1.0, restarted + 10 - time.time()), 0.2,
                     what="every container of the killed ragexd to be adopted or removed")
            settled = time.time() - restarted
            code, out, err, _ = _outcome(search, 300)
            search_done = time.time() - killed
            search_result = _assert_clear(code, out, err, "search")
            if search_result == "answered":
                [json.loads(line) for line in out.splitlines() if line.strip()]
            now = client.worker(searched)
            adopted = now["ident"] == old_ident
            reply = client.call(Op.SEARCH, searched, 180, query="def slugify", mode="regex")
            assert reply.ok and reply.result["hits"], reply
        finally:
            client.close()
        figure("kill -9 ragexd mid-request (containers)",
               f"ragexctl search: {search_result} {search_done:.1f} s after the kill; the new "
               f"ragexd {'adopted' if adopted else 'replaced'} the running container; no "
               f"unknown container {settled:.1f} s after its start",
               search=search_result, adopted=adopted)
    finally:
        cleanup_base(base)
        rx.cleanup()
        ds.remove_containers_under(base)
        shutil.rmtree(base, ignore_errors=True)


def _containers_under(ds: Any, base: Path) -> list[str]:
    """Running ragex containers whose project or sockets live under ``base``."""
    out = []
    for cid in ds.containers(**{"ragex.managed": "1"}):
        try:
            info = ds.inspect(cid)
        except AssertionError:
            continue
        labels = info["Config"]["Labels"] or {}
        if info["State"]["Running"] and any(str(v).startswith(str(base))
                                            for v in labels.values()):
            out.append(cid)
    return out
