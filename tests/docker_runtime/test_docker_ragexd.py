"""ragexd with RAGEX_RUNTIME=docker, end to end, against the real engine and image.

One ragexd and one indexed project are shared by the module (loading the model
in a container takes seconds); the memory-limit and kill -9 tests start their own.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragexd.protocol import ErrorCode, Op
from tests.harness import RagexInstance, short_tmp, wait_for, write_tree
from tests.harness.containers import containers, docker, inspect, remove_containers_under

pytestmark = pytest.mark.docker


def docker_ragexd(base: Path, **env: str) -> RagexInstance:
    """A ragexd of the Docker runtime (no pre-start: each test says what runs)."""
    return RagexInstance(base, runtime="docker", RAGEX_DAEMON_PRESTART="0", **env)


class Setup:
    def __init__(self, base: Path, daemon: RagexInstance, project: Path) -> None:
        self.base, self.daemon, self.project = base, daemon, project
        self.client = daemon.client()


@pytest.fixture(scope="module")
def rx() -> Iterator[Setup]:
    base = short_tmp()
    project = write_tree(base / "proj")
    daemon = docker_ragexd(base).start()
    setup = Setup(base, daemon, project)
    reply = setup.client.index(project)
    assert reply.ok, (reply.error, daemon.output())
    yield setup
    daemon.close()
    remove_containers_under(base)
    shutil.rmtree(base, ignore_errors=True)


def _hits(reply) -> list[str]:  # noqa: ANN001
    assert reply.ok, reply.error
    return [h["name"] for h in reply.result["hits"]]


def test_search_is_answered_from_a_container(rx: Setup) -> None:
    reply = rx.client.search(rx.project, "add sales tax to the invoice")
    assert "compute_invoice_total" in _hits(reply)[:2]
    status = rx.client.status(rx.project)
    assert status["daemon"]["runtime"]["runtime"] == "docker"
    worker = rx.client.worker(rx.project)
    assert worker["runtime"] == "docker" and worker["state"] in ("ready", "indexing")
    info = inspect(worker["ident"])                      # the worker IS a running container
    assert info["State"]["Running"] is True
    assert info["Config"]["Labels"]["ragex.project-id"] == worker["project_id"]
    assert info["Mounts"] and any(m["Source"] == str(rx.project) for m in info["Mounts"])
    # from docker stats, sampled on ragexd's own clock: the model loaded shows within a sample
    worker = wait_for(lambda: (lambda w: w if (w["rss"] or 0) > 50 * 1024**2 else None)(
        rx.client.worker(rx.project)), 20, what="docker stats to show the model loaded")
    # Both runtimes write worker output to one file per project (`ragexctl logs`).
    log_path = rx.daemon.state / "logs" / f"{worker['project_id']}.log"
    assert "serving /workspace" in log_path.read_text(errors="replace")
    # regex and symbol searches run inside too (rg from the image's venv).
    regex = rx.client.search(rx.project, "re\\.sub", mode="regex")
    assert regex.ok, regex.error
    assert [(h["path"], h["line"]) for h in regex.result["hits"]] == [("text_utils.py", 7)]
    assert "RefundPolicy" in _hits(rx.client.search(rx.project, "RefundPolicy", mode="symbol"))


def test_the_container_carries_every_hardening_flag_and_label(rx: Setup) -> None:
    worker = rx.client.worker(rx.project)
    info = inspect(worker["ident"])
    host, labels = info["HostConfig"], info["Config"]["Labels"]
    assert host["Init"] and host["ReadonlyRootfs"] and host["NetworkMode"] == "none"
    assert host["CapDrop"] == ["ALL"]
    assert any(o.startswith("no-new-privileges") for o in host["SecurityOpt"])
    assert info["Config"]["User"] == f"{os.getuid()}:{os.getgid()}"
    assert host["Memory"] == host["MemorySwap"] == 2 * 1024**3   # the default memory_limit
    assert host["PidsLimit"] > 0 and "/tmp" in host["Tmpfs"]
    for key in ("ragex.owner-uid", "ragex.project-id", "ragex.config-hash", "ragex.version"):
        assert labels.get(key), key
    assert labels["ragex.managed"] == "1"


def test_workspace_is_read_only_and_there_is_no_network(rx: Setup) -> None:
    cid = rx.client.worker(rx.project)["ident"]
    touch = docker("exec", cid, "touch", "/workspace/intruder.py", check=False)
    assert touch.returncode != 0 and "Read-only file system" in touch.stderr
    assert not (rx.project / "intruder.py").exists()
    dev = docker("exec", cid, "cat", "/proc/net/dev").stdout
    assert {line.split(":")[0].strip() for line in dev.splitlines()[2:]} == {"lo"}


def test_a_killed_container_is_restarted_and_the_next_search_succeeds(rx: Setup) -> None:
    before = rx.client.worker(rx.project)
    docker("kill", before["ident"])
    t0 = time.monotonic()
    # ragexd notices at once (Docker's event stream) and says what happened; it restarts
    # the worker with its own backoff, at the latest when the next request needs it.
    def noticed() -> dict | None:
        w = rx.client.worker(rx.project)
        return w if w["ident"] != before["ident"] else None

    after = wait_for(noticed, 15, 0.05, what="ragexd to notice the kill")
    assert time.monotonic() - t0 < 5
    assert "SIGKILL" in after["last_error"] and after["exit_code"] == 137, after
    reply = rx.client.search(rx.project, "open a TCP connection to a server", timeout=120)
    assert "open_tcp_connection" in _hits(reply)[:2]
    now = rx.client.worker(rx.project)
    assert now["ident"] not in (None, before["ident"]) and now["state"] in ("ready", "indexing")
    assert now["restarts"] == before["restarts"] + 1
    # The killed container was removed, not left behind.
    assert containers(**{"ragex.project-id": now["project_id"]}) == [now["ident"]]


def test_switching_runtime_keeps_the_index(rx: Setup) -> None:
    """Same worker code, same on-disk format, same file ownership: a process worker
    serves the index a container built without re-indexing it.  (Last of the tests
    sharing `rx`: it stops the Docker ragexd.)"""
    # A worker restarted by the test before has no index figures in ragexd's status
    # until its first status answer (ragexd asks in the background): wait for them.
    worker = wait_for(lambda: (lambda w: w if w.get("index") else None)(
        rx.client.worker(rx.project)), 30, what="the restarted worker's index in status")
    files_before = worker["index"]["files"]
    assert files_before >= 3
    rx.daemon.close()
    # ragexd stopped its worker on the way out, and the container went with it.
    assert containers(**{"ragex.project-id": worker["project_id"]}) == []
    idx_root = rx.base / "data"
    for path in idx_root.rglob("*"):
        st = path.lstat()
        assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid()), path
    process = docker_ragexd(rx.base, RAGEX_RUNTIME="process").start()
    try:
        client = process.client()
        reply = client.search(rx.project, "turn a title into a URL slug")
        assert "slugify" in _hits(reply)[:2]
        # ragexd's view of a worker is its last status answer: wait for one that
        # was given after the engine opened the index
        worker = wait_for(lambda: (lambda w: w if w.get("index") else None)(
            client.worker(rx.project)), 20, what="the process worker's index in its status")
        assert worker["runtime"] == "process"
        assert worker["index"]["files"] == files_before
    finally:
        process.close()


def test_memory_limit_is_reported_as_such_not_as_a_crash() -> None:
    base = short_tmp()
    project = write_tree(base / "proj")
    daemon = docker_ragexd(base, RAGEX_DAEMON_MEMORY_LIMIT="150MiB").start()
    try:
        client = daemon.client()
        reply = client.index(project, timeout=180)     # loading the model needs > 150 MiB
        assert not reply.ok
        assert reply.error.code == ErrorCode.MEMORY_LIMIT, reply.error
        worker = wait_for(lambda: (lambda w: w if w["state"] == "memory-limit" else None)(
            client.worker(project)), 20, what="state memory-limit")
        assert worker["last_error"] == "stopped: memory limit 150 MiB exceeded", worker
        assert worker["exit_code"] == 137
    finally:
        daemon.close()
        remove_containers_under(base)
        shutil.rmtree(base, ignore_errors=True)


def test_after_kill_9_of_ragexd_no_orphan_container_survives_a_restart() -> None:
    """Containers outlive a kill -9 of their ragexd.  The next ragexd adopts those it
    would start the same way (same image and configuration) and removes the rest."""
    base = short_tmp()
    projects = [write_tree(base / "p1"), write_tree(base / "p2")]
    daemon = docker_ragexd(base).start()
    try:
        client = daemon.client()
        ids = []
        for project in projects:
            reply = client.call(Op.START, project, timeout=60)
            assert reply.ok, reply.error
            ids.append(reply.result["project_id"])
        wait_for(lambda: len(client.status()["workers"]) == 2
                 and all(w["state"] == "ready" for w in client.status()["workers"]),
                 60, what="two ready workers")
        old = {w["project_id"]: w["ident"] for w in client.status()["workers"]}

        # 1. Same configuration: both containers are adopted, none duplicated.
        daemon.kill9()
        for pid in ids:
            assert containers(**{"ragex.project-id": pid}) == [old[pid]]
        daemon = docker_ragexd(base).start()
        client = daemon.client()
        workers = {w["project_id"]: w for w in client.status()["workers"]}
        assert {pid: workers[pid]["ident"] for pid in ids} == old, workers
        reply = client.search(projects[0], "compute the invoice total with tax", timeout=120)
        assert reply.ok, reply.error
        for pid in ids:
            assert containers(**{"ragex.project-id": pid}) == [old[pid]]

        # 2. Another memory limit: the old containers no longer fit and are removed.
        daemon.kill9()
        t0 = time.monotonic()
        daemon = docker_ragexd(base, RAGEX_DAEMON_MEMORY_LIMIT="1GiB").start()
        client = daemon.client()

        def orphans() -> list[str]:
            return [c for pid in ids for c in containers(**{"ragex.project-id": pid})
                    if c == old[pid]]

        wait_for(lambda: not orphans(), 10, what="the leftover containers to be removed")
        assert time.monotonic() - t0 < 10
        reply = client.search(projects[1], "connect to a TCP server", timeout=120)
        assert reply.ok, reply.error
        fresh = containers(**{"ragex.project-id": ids[1]})
        assert len(fresh) == 1 and fresh[0] != old[ids[1]]
        assert inspect(fresh[0])["HostConfig"]["Memory"] == 1024**3
    finally:
        daemon.close()
        remove_containers_under(base)
        shutil.rmtree(base, ignore_errors=True)
