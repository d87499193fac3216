"""DockerRuntime against the real engine and image, without ragexd in between.

The worker answers HELLO/PING without loading the model, so these tests are quick:
they pin the runtime's own duties (hardened run flags, labels, the socket through
the bind mount, logs into the project's log file, exit reasons, removal on stop,
adoption and reaping, the probe's sentences).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from tests.harness import Client, short_tmp, wait_for, write_tree
from tests.harness.containers import containers, docker, docker_config as _config, inspect, \
    remove_containers_under
from ragexd import __version__
from ragexd.protocol import Op
from ragexd.runtimes.base import WorkerSpec

pytestmark = pytest.mark.docker


class Scope:
    """A private runtime directory (= a ragexd scope) with a project in it."""

    def __init__(self) -> None:
        self.base = short_tmp()
        self.project = write_tree(self.base / "proj")
        self._old = os.environ.get("RAGEX_RUNTIME_DIR")

    def spec(self, name: str, **changes: object) -> WorkerSpec:
        pid = f"t{os.getpid()}{name}"[:16]
        spec = WorkerSpec(project_id=pid, root=self.project, index_dir=self.base / "idx" / name,
                          socket_dir=self.base / "run" / "workers" / pid,
                          log_path=self.base / "logs" / f"{pid}.log",
                          memory_limit=1024**3, cpus=1.0, watch=False)
        return replace(spec, **changes)  # type: ignore[arg-type]

    def enter(self) -> None:
        os.environ["RAGEX_RUNTIME_DIR"] = str(self.base / "run")

    def leave(self) -> None:
        if self._old is None:
            os.environ.pop("RAGEX_RUNTIME_DIR", None)
        else:
            os.environ["RAGEX_RUNTIME_DIR"] = self._old

    def cleanup(self) -> None:
        remove_containers_under(self.base)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def scope() -> Iterator[Scope]:
    s = Scope()
    s.enter()
    yield s
    s.leave()
    s.cleanup()


@pytest.fixture(scope="module")
def runtime(scope: Scope):
    from ragexd.runtimes.docker import DockerRuntime

    rt = DockerRuntime(_config())
    yield rt
    rt.close()


@pytest.fixture(scope="module")
def running(runtime, scope: Scope):
    """One worker container shared by the read-only checks below."""
    spec = scope.spec("main")
    handle = runtime.start(spec)
    yield handle
    runtime.stop(handle, 5)


def _hello(spec: WorkerSpec, timeout: float = 30.0) -> dict:
    client = Client(spec.endpoint)
    try:
        reply = client.call(Op.HELLO, timeout=timeout)
    finally:
        client.close()
    assert reply.ok, reply.error
    return reply.result or {}


def test_worker_in_container_answers_on_the_host_socket(runtime, running) -> None:
    spec = running.spec
    hello = _hello(spec)
    assert hello["project_id"] == spec.project_id
    assert hello["root"] == "/workspace"          # it sees the project only through the mount
    assert hello["version"] == __version__
    client = Client(spec.endpoint)
    try:
        ping = client.call(Op.PING, timeout=10)
    finally:
        client.close()
    assert ping.ok and ping.result["pid"] == hello["pid"]
    # The socket the worker bound inside is the host's socket file, and belongs to us.
    st = spec.socket_path.stat()
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
    assert oct(spec.socket_dir.stat().st_mode & 0o777) == oct(0o700)
    assert runtime.poll(running) is None
    rss = runtime.memory(running)
    assert rss is not None and 10 * 1024**2 < rss < spec.memory_limit
    # The container's output lands in the project's log file (what `ragexctl logs` reads).
    wait_for(lambda: "serving /workspace" in spec.log_path.read_text(errors="replace"), 15,
             what="the worker's log line in " + str(spec.log_path))
    assert any("serving" in line for line in runtime.log_tail(running, 50))


def test_without_the_stats_api_a_containers_memory_is_its_processes_rss_seen_from_the_host(
        runtime, running) -> None:
    """An engine older than API 1.41 has no one-shot stats: the host's view of the
    container's process tree (proctree, as for a local worker) answers instead."""
    assert running.pid
    rss = runtime._memory_from_processes(running)
    assert rss is not None and 10 * 1024**2 < rss < running.spec.memory_limit


def test_container_is_hardened_and_labelled(runtime, running) -> None:
    spec = running.spec
    info = inspect(running.ident)
    host, cfg = info["HostConfig"], info["Config"]
    assert info["Name"] == f"/ragex-{spec.project_id}"
    assert host["Init"] is True
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert set(host["Tmpfs"]) == {"/tmp"} and "size=64m" in host["Tmpfs"]["/tmp"]
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert any(opt.startswith("no-new-privileges") for opt in host["SecurityOpt"])
    assert host["Privileged"] is False
    assert cfg["User"] == f"{os.getuid()}:{os.getgid()}"
    assert 0 < host["PidsLimit"] <= 1024
    assert host["Memory"] == spec.memory_limit
    assert host["MemorySwap"] == spec.memory_limit          # no swap beyond the limit
    assert host["NanoCpus"] == int(spec.cpus * 1e9)
    assert host["RestartPolicy"]["Name"] in ("", "no")      # ragexd's backoff, not Docker's
    assert host["AutoRemove"] is False                       # the exit code must be readable
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert set(mounts) == {"/workspace", "/index", "/run/ragex"}
    assert mounts["/workspace"]["Source"] == str(spec.root) and mounts["/workspace"]["RW"] is False
    assert mounts["/index"]["Source"] == str(spec.index_dir) and mounts["/index"]["RW"] is True
    assert mounts["/run/ragex"]["Source"] == str(spec.socket_dir) and mounts["/run/ragex"]["RW"]
    labels = cfg["Labels"]
    assert labels["ragex.managed"] == "1"
    assert labels["ragex.owner-uid"] == str(os.getuid())
    assert labels["ragex.project-id"] == spec.project_id
    assert labels["ragex.version"] == __version__
    assert labels["ragex.config-hash"] == runtime.config_hash(spec, runtime.image_id())
    env = dict(item.split("=", 1) for item in cfg["Env"])
    assert env["HF_HUB_OFFLINE"] == "1" and env["TRANSFORMERS_OFFLINE"] == "1"
    assert env["HOME"] == "/tmp"
    cmd = cfg["Cmd"]
    assert cmd[:1] == ["serve"] and "--no-watch" in cmd
    assert cmd[cmd.index("--endpoint") + 1] == "ipc:///run/ragex/worker.sock"
    described = runtime.describe()
    assert described["runtime"] == "docker" and described["image_id"] == info["Image"]
    assert described["engine"]


def test_the_worker_in_a_container_knows_the_memory_limit_docker_holds_it_to(running) -> None:
    """The bulk-embed planner (engine/bulk.py) reads ``[daemon] memory_limit`` to decide
    whether a child fits: inside the container it must be the cgroup's limit, as a
    local worker gets ragexd's, not the 2 GiB default of a worker that was never told."""
    spec = running.spec
    assert spec.memory_limit != 2 * 1024**3        # not the default: the test could not fail
    seen = docker("exec", running.ident, "python", "-c",
                  "from ragexd.config import load; print(load().memory_limit)").stdout.split()
    assert seen == [str(spec.memory_limit)]
    assert int(inspect(running.ident)["HostConfig"]["Memory"]) == spec.memory_limit


def test_inside_the_container_only_tmp_and_the_index_are_writable(running) -> None:
    cid = running.ident
    ws = docker("exec", cid, "touch", "/workspace/intruder", check=False)
    assert ws.returncode != 0 and "Read-only file system" in ws.stderr
    assert not (running.spec.root / "intruder").exists()
    rootfs = docker("exec", cid, "touch", "/opt/venv/intruder", check=False)
    assert rootfs.returncode != 0 and "Read-only file system" in rootfs.stderr
    docker("exec", cid, "touch", "/tmp/scratch")
    docker("exec", cid, "sh", "-c", "touch /index/probe && rm /index/probe")
    # No network: only the loopback interface exists, and there is no route anywhere.
    ifaces = docker("exec", cid, "cat", "/proc/net/dev").stdout
    names = {line.split(":")[0].strip() for line in ifaces.splitlines()[2:] if ":" in line}
    assert names == {"lo"}, ifaces
    routes = docker("exec", cid, "cat", "/proc/net/route").stdout.splitlines()
    assert routes[1:] == [], routes
    # No capabilities, not even for root-owned files, and no way to gain them.
    status = docker("exec", cid, "cat", "/proc/1/status").stdout
    caps = dict(line.split(":\t", 1) for line in status.splitlines() if line.startswith("Cap"))
    assert int(caps["CapEff"], 16) == 0 and int(caps["CapBnd"], 16) == 0
    assert "NoNewPrivs:\t1" in status


def test_files_the_worker_writes_belong_to_the_user(running) -> None:
    docker("exec", running.ident, "touch", "/index/owned")
    path = running.spec.index_dir / "owned"
    try:
        st = path.stat()
        assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
    finally:
        path.unlink()


def test_docker_kill_is_reported_and_the_container_removed(runtime, scope: Scope) -> None:
    handle = runtime.start(scope.spec("kill"))
    _hello(handle.spec)
    assert runtime.poll(handle) is None
    docker("kill", handle.ident)
    t0 = time.monotonic()
    info = wait_for(lambda: runtime.poll(handle), 10, 0.05, what="poll to report the kill")
    assert time.monotonic() - t0 < 5
    assert info.reason == "killed" and info.exit_code == 137, info
    assert "SIGKILL" in info.message
    assert containers(**{"ragex.project-id": handle.spec.project_id}) == []
    assert runtime.poll(handle) is info                      # remembered, not re-inspected
    assert runtime.stop(handle) is info                      # idempotent


def test_crash_reports_the_exit_code_and_the_last_lines(runtime, scope: Scope) -> None:
    # A Python that cannot find its standard library dies at once with exit code 1.
    spec = scope.spec("crash", env=(("PYTHONHOME", "/nonexistent"),))
    handle = runtime.start(spec)
    info = wait_for(lambda: runtime.poll(handle), 20, 0.1, what="the crash")
    assert info.reason == "crashed" and info.exit_code == 1, info
    assert info.message == "exited with code 1"
    assert any("Python" in line or "encodings" in line for line in info.log_tail), info.log_tail
    assert containers(**{"ragex.project-id": spec.project_id}) == []


def test_stop_terminates_gracefully_and_removes(runtime, scope: Scope) -> None:
    handle = runtime.start(scope.spec("stop"))
    _hello(handle.spec)
    t0 = time.monotonic()
    info = runtime.stop(handle, timeout=10)
    assert time.monotonic() - t0 < 8, "the worker should exit on SIGTERM, not wait for SIGKILL"
    assert info.reason == "stopped" and info.exit_code == 0, info
    assert containers(**{"ragex.project-id": handle.spec.project_id}) == []
    assert runtime.stop(handle) is info


def test_a_leftover_container_with_the_same_name_is_replaced(runtime, scope: Scope) -> None:
    spec = scope.spec("name")
    first = runtime.start(spec)
    _hello(spec)
    second = runtime.start(spec)        # e.g. ragexd lost track of the first one
    try:
        assert second.ident != first.ident
        _hello(spec)
        assert containers(**{"ragex.project-id": spec.project_id}) == [second.ident]
    finally:
        runtime.stop(second, 5)


def test_adopt_matching_containers_and_reap_the_rest(runtime, scope: Scope) -> None:
    from ragexd.runtimes.docker import DockerRuntime

    keep, change, drop = scope.spec("keep"), scope.spec("change"), scope.spec("drop")
    handles = {s.project_id: runtime.start(s) for s in (keep, change, drop)}
    for s in (keep, change, drop):
        _hello(s)
    # Another ragexd scope on the same engine: never touched by ours.
    other = Scope()
    other.enter()
    try:
        foreign_rt = DockerRuntime(_config())
        foreign = foreign_rt.start(other.spec("foreign"))
    finally:
        scope.enter()
    try:
        # A new ragexd (same scope) wants `keep` as it was and `change` with another limit.
        fresh = DockerRuntime(_config())
        try:
            adopted = fresh.adopt_or_reap({keep.project_id: keep,
                                           change.project_id: replace(change, memory_limit=2**31)})
            assert [h.ident for h in adopted] == [handles[keep.project_id].ident]
            assert adopted[0].adopted and adopted[0].pid
            for s in (change, drop):
                assert containers(**{"ragex.project-id": s.project_id}) == [], s.project_id
            assert containers(**{"ragex.project-id": foreign.spec.project_id}) == [foreign.ident]
            _hello(keep)                               # the adopted worker still serves
            assert fresh.poll(adopted[0]) is None
            assert fresh.stop(adopted[0], 5).reason == "stopped"
        finally:
            fresh.close()
    finally:
        foreign_rt.stop(foreign, 5)
        foreign_rt.close()
        other.cleanup()


def test_probe_explains_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from ragexd.runtimes.docker import DockerRuntime

    assert DockerRuntime.probe(_config()) is None
    missing = DockerRuntime.probe(_config(RAGEX_DOCKER_IMAGE="ragex-worker:no-such-tag"))
    assert missing and "ragex-worker:no-such-tag" in missing and "build-image.sh" in missing
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    t0 = time.monotonic()
    down = DockerRuntime.probe(_config())
    assert time.monotonic() - t0 < 3
    assert down and "not running" in down, down
