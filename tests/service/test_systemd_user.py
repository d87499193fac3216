"""The unit under a REAL ``systemd --user`` manager: install, start, crash, stop, uninstall.

systemd is not PID 1 here, and ``systemd --user`` refuses to run unless
``/run/systemd/system`` exists ("the system has not been booted with
systemd").  Creating that directory for the whole machine would lie to every
other program, so the manager runs in a private mount namespace
(``unshare -m``) with a tmpfs over /run/systemd holding that marker; every
``systemctl``/``ragexctl`` call joins that namespace with ``nsenter``.  Its
runtime dir and HOME are temp dirs, so it cannot touch a real session.

Cgroups matter: a manager takes the cgroup it starts in as the root of its
tree and moves every process in that cgroup into ``<root>/init.scope``.
Started in the machine's root cgroup it would therefore re-home every process
on the machine.  So the manager is first moved into a fresh, private cgroup
(nested inside the test's own), the test checks that no process outside it
changed cgroup, and the subtree is removed afterwards.

Runs only where it is both possible and harmless: as root, without systemd as
PID 1 (containers, CI, this sandbox).  Elsewhere it is skipped with the reason;
on a real desktop, test against your own manager (`ragexctl service install`).

Nothing is mocked: the manager forks ragexd with NOTIFY_SOCKET, waits for
READY=1, enforces the watchdog, restarts ragexd after kill -9, and stops it
with SIGTERM.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ragexd.protocol import Op

from tests.harness import REPO, make_env, pid_alive, ragexctl
from .test_notify import ask, tail

SYSTEMD = next((p for p in ("/lib/systemd/systemd", "/usr/lib/systemd/systemd")
                if os.path.exists(p)), None)
CGROUP_FS = Path("/sys/fs/cgroup")


def cgroups_of(pid: int | str) -> str:
    try:
        return Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return ""


class PrivateCgroup:
    """A fresh cgroup path P, created in the hierarchies systemd uses to track
    processes, nested inside this process's own cgroup.  The manager is moved
    into it before it execs, so P is the root of its tree."""

    def __init__(self, tag: str) -> None:
        own: dict[str, str] = {}
        for line in cgroups_of("self").splitlines():
            _hid, controllers, path = line.split(":", 2)
            own[controllers] = path
        if (CGROUP_FS / "cgroup.controllers").exists():          # pure cgroup v2
            self.mounts = [CGROUP_FS]
            base = own.get("", "/")
        elif (CGROUP_FS / "systemd" / "cgroup.procs").exists():  # legacy / hybrid
            self.mounts = [CGROUP_FS / "systemd"]
            if (CGROUP_FS / "unified" / "cgroup.procs").exists():
                self.mounts.append(CGROUP_FS / "unified")
            # Nest inside our memory cgroup so the manager stays accounted to us.
            base = own.get("memory") or own.get("name=systemd", "/")
            if (CGROUP_FS / "memory" / "cgroup.procs").exists():
                self.mounts.append(CGROUP_FS / "memory")
        else:
            raise RuntimeError("no cgroup hierarchy that systemd could use is mounted")
        self.path = base.rstrip("/") + "/" + tag
        self.all_mounts = [m for m in CGROUP_FS.iterdir()
                           if (m / "cgroup.procs").exists()] or [CGROUP_FS]
        # Parents systemd will mkdir -p in other hierarchies; removed if we made them.
        self.preexisting = {d for m in self.all_mounts
                            for d in self._chain(m) if d.exists()}
        for mount in self.mounts:
            (mount / self.path.strip("/")).mkdir(parents=True, exist_ok=True)

    def _chain(self, mount: Path) -> list[Path]:
        parts = self.path.strip("/").split("/")
        return [mount.joinpath(*parts[:i]) for i in range(1, len(parts) + 1)]

    @property
    def procs_files(self) -> list[str]:
        return [str(m / self.path.strip("/") / "cgroup.procs") for m in self.mounts]

    def remove(self) -> None:
        """rmdir bottom-up; rmdir refuses a cgroup that still has processes."""
        for mount in self.all_mounts:
            top = mount / self.path.strip("/")
            if top.is_dir():
                for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda t: -len(t[0])):
                    try:
                        os.rmdir(dirpath)
                    except OSError:
                        pass
            for parent in reversed(self._chain(mount)[:-1]):
                if parent not in self.preexisting:
                    try:
                        os.rmdir(parent)
                    except OSError:
                        pass


class UserManager:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.runtime = base / "xdg"
        self.runtime.mkdir(mode=0o700)
        self.env = make_env(base, session=True, XDG_RUNTIME_DIR=str(self.runtime))
        self.log = base / "manager.log"
        self.cgroup = PrivateCgroup(base.name)
        # Join the private cgroup, hide a systemd marker in a private /run/systemd, exec.
        script = ('for f in $RX_CGROUP_PROCS; do echo $$ > "$f" || exit 97; done; '
                  "mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/system "
                  '&& exec "$0" --user')
        env = dict(self.env, RX_CGROUP_PROCS=" ".join(self.cgroup.procs_files))
        with open(self.log, "wb") as log:
            # unshare execs sh, which execs systemd: Popen.pid is the manager's pid.
            self.proc = subprocess.Popen(["unshare", "-m", "--propagation", "private",
                                          "sh", "-c", script, SYSTEMD],
                                         env=env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd="/")
        self.prefix = ["nsenter", "-t", str(self.proc.pid), "-m", "--"]

    def systemctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.prefix, "systemctl", "--user", *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def prop(self, name: str) -> str:
        return self.systemctl("show", "-p", name, "--value", "ragexd.service").stdout.strip()

    def ragexctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return ragexctl(self.env, *args, prefix=self.prefix, timeout=180)

    def wait_running(self, timeout: float = 30) -> str:
        end = time.monotonic() + timeout
        state = ""
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return f"exited with {self.proc.returncode}"
            if (self.runtime / "systemd" / "private").exists():
                state = self.systemctl("is-system-running", timeout=10).stdout.strip()
                if state in ("running", "degraded"):
                    return state
            time.sleep(0.2)
        return state or "no private socket"

    def close(self) -> None:
        main = self.prop("MainPID") if self.proc.poll() is None else ""
        if self.proc.poll() is None:
            self.proc.terminate()   # a user manager stops its units and exits on SIGTERM
            try:
                self.proc.wait(timeout=45)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if main.isdigit() and main != "0" and pid_alive(int(main)):
            os.kill(int(main), signal.SIGKILL)
        self.cgroup.remove()


@pytest.fixture(scope="module")
def manager():
    missing = [name for name in ("unshare", "nsenter", "systemctl") if not shutil.which(name)]
    if SYSTEMD is None or missing:
        pytest.skip(f"systemd is not installed (missing: {missing or 'systemd'}); "
                    "apt-get install -y systemd")
    if os.geteuid() != 0:
        pytest.skip("needs root: the user manager runs in a private mount namespace and cgroup")
    if os.path.exists("/run/systemd/system"):
        pytest.skip("systemd is PID 1 here: test against your own user manager instead "
                    "(`ragexctl service install`, `systemctl --user status ragexd`)")
    if not os.path.isdir("/run/systemd"):
        pytest.skip("/run/systemd does not exist, nothing to mount the private marker over")
    base = Path(tempfile.mkdtemp(prefix="rx-sd-", dir="/tmp"))
    # Guard: nothing outside the private cgroup may be re-homed by the manager.
    before = {pid: cgroups_of(pid) for pid in ("1", str(os.getpid()), str(os.getppid()))}
    try:
        mgr = UserManager(base)
    except (OSError, RuntimeError) as exc:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"cannot give the user manager a private cgroup: {exc}")
    try:
        state = mgr.wait_running()
        if state not in ("running", "degraded"):
            pytest.skip(f"systemd --user does not run here ({state}):\n{tail(mgr.log)}")
        yield mgr
    finally:
        mgr.close()
        shutil.rmtree(base, ignore_errors=True)
    after = {pid: cgroups_of(pid) for pid in before}
    assert after == before, ("the user manager moved processes outside its private cgroup: "
                             f"{before} -> {after}")


def wait_for(predicate, timeout: float, step: float = 0.2) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def test_enable_now_under_a_real_user_manager(manager, ragexd_script):
    m = manager
    endpoint = "ipc://" + str(Path(m.env["RAGEX_RUNTIME_DIR"]) / "ragexd.sock")
    unit = Path(m.env["HOME"]) / ".config" / "systemd" / "user" / "ragexd.service"
    journal_hint = lambda: tail(Path(m.env["RAGEX_STATE_DIR"]) / "logs" / "ragexd.log")

    # A ragexd auto-started on demand is running first: install must hand over.
    ondemand_log = m.base / "ondemand.out"
    with open(ondemand_log, "wb") as log:
        ondemand = subprocess.Popen([sys.executable, "-m", "ragexd", "--foreground"],
                                    env=m.env, stdout=log, stderr=subprocess.STDOUT,
                                    cwd=str(REPO), stdin=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: Path(endpoint[6:]).exists(), 60), tail(ondemand_log)

        res = m.ragexctl("service", "install")
        assert res.returncode == 0, res.stdout + res.stderr + journal_hint()
        assert "running under systemd" in res.stdout, res.stdout
        assert ondemand.wait(timeout=10) == 0, "the on-demand ragexd was not stopped cleanly"
    finally:
        if ondemand.poll() is None:
            ondemand.kill()
            ondemand.wait()
    assert unit.is_file()

    # Type=notify: `systemctl start` returned only after READY=1, so it answers now.
    assert m.systemctl("is-active", "ragexd").stdout.strip() == "active"
    assert m.systemctl("is-enabled", "ragexd").stdout.strip() == "enabled"
    pid = int(m.prop("MainPID"))
    hello = ask(endpoint, Op.HELLO)
    assert hello.ok and hello.result["pid"] == pid

    status = m.ragexctl("service", "status")
    assert status.returncode == 0
    assert f"active:          active (running), pid {pid}" in status.stdout, status.stdout

    # Crash: systemd restarts it (Restart=on-failure, RestartSec=3).
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: m.prop("MainPID") not in ("", "0", str(pid))
                    and m.prop("ActiveState") == "active", 30), m.systemctl("status", "ragexd").stdout
    new_pid = int(m.prop("MainPID"))
    assert ask(endpoint, Op.HELLO).result["pid"] == new_pid
    assert m.prop("NRestarts") == "1"

    # The watchdog, for real, sped up by a drop-in: ragexd must keep systemd fed
    # (pings from its main pid are accepted: NotifyAccess=main), and a frozen
    # ragexd must be killed and restarted.
    dropin = unit.parent / "ragexd.service.d" / "zz-test-watchdog.conf"
    dropin.parent.mkdir()
    dropin.write_text("[Service]\nWatchdogSec=2\nTimeoutAbortSec=2\n")
    assert m.systemctl("daemon-reload").returncode == 0
    assert m.systemctl("restart", "ragexd").returncode == 0
    fed = int(m.prop("MainPID"))
    restarts = int(m.prop("NRestarts"))
    time.sleep(5)
    assert m.prop("MainPID") == str(fed) and m.prop("ActiveState") == "active", \
        "systemd's watchdog fired although ragexd was healthy"
    os.kill(fed, signal.SIGSTOP)
    assert wait_for(lambda: m.prop("MainPID") not in ("", "0", str(fed))
                    and m.prop("ActiveState") == "active", 30), m.systemctl("status", "ragexd").stdout
    assert int(m.prop("NRestarts")) == restarts + 1
    assert wait_for(lambda: not pid_alive(fed), 10)
    dropin.unlink()
    dropin.parent.rmdir()
    assert m.systemctl("daemon-reload").returncode == 0
    assert m.systemctl("restart", "ragexd").returncode == 0
    assert m.prop("WatchdogUSec") == "30s"

    # SIGTERM (systemctl stop) is a clean stop: exit 0, Result=success.
    assert m.systemctl("stop", "ragexd").returncode == 0
    assert m.prop("Result") == "success" and m.prop("ExecMainStatus") == "0", \
        m.systemctl("status", "ragexd").stdout
    assert not pid_alive(new_pid)

    # SHUTDOWN (what `ragexctl stop --all` sends) exits 0: it stays stopped.
    assert m.systemctl("start", "ragexd").returncode == 0
    third = int(m.prop("MainPID"))
    assert ask(endpoint, Op.SHUTDOWN).ok
    assert wait_for(lambda: m.prop("ActiveState") in ("inactive", "failed"), 30)
    time.sleep(4)  # longer than RestartSec
    assert m.prop("ActiveState") == "inactive" and m.prop("Result") == "success"
    assert not pid_alive(third)

    # Uninstall stops, disables and removes; a second run has nothing to do.
    assert m.systemctl("start", "ragexd").returncode == 0
    fourth = int(m.prop("MainPID"))
    res = m.ragexctl("service", "uninstall")
    assert res.returncode == 0, res.stderr
    assert not unit.exists()
    assert wait_for(lambda: not pid_alive(fourth), 30)
    assert m.systemctl("is-active", "ragexd").stdout.strip() in ("inactive", "unknown")
    again = m.ragexctl("service", "uninstall")
    assert again.returncode == 0 and "nothing to do" in again.stdout
