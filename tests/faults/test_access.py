"""Access: other local users stay out, unsafe runtime directories are refused,
and containers are confined — each checked from the outsider's (or the
container's) own point of view, not by reading our configuration."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import textwrap

import pytest

from ragexd.protocol import Op
from tests.harness import RagexInstance, cleanup_base, ragexctl, short_tmp, wait_for, write_tree
from tests.harness import containers as ds

from .helpers import figure

pytestmark = pytest.mark.faults

SYSTEM_PYTHON = "/usr/bin/python3"

CONNECT = textwrap.dedent("""
    import socket, sys
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(sys.argv[1])
    except OSError as exc:
        print("refused", exc.errno, exc.strerror)
    else:
        s.sendall(b"\\xff\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x01\\x7f")   # a ZMTP greeting
        print("connected")
""")


def _as_user(user: pwd.struct_passwd, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", user.pw_name, "--", *argv], capture_output=True,
                          text=True, timeout=60, cwd="/")


def test_another_local_user_cannot_connect_or_look_inside(other_user: pwd.struct_passwd) -> None:
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip(f"{SYSTEM_PYTHON} is needed to run a probe as another user")
    base = short_tmp()
    os.chmod(base, 0o755)       # the parent is open: only ragexd's own modes protect it
    rx = RagexInstance(base, RAGEX_WATCH="0")
    try:
        rx.start()
        project = write_tree(base / "proj")
        os.chmod(project, 0o755)
        reply = rx.client().call(Op.START, project, timeout=30)
        assert reply.ok, reply.error
        worker_dirs = wait_for(lambda: [d for d in (rx.run_dir / "workers").iterdir()
                                        if (d / "worker.sock").exists()], 60,
                               what="the worker's socket")
        worker_sock = worker_dirs[0] / "worker.sock"
        run = rx.run_dir
        assert stat.S_IMODE(run.stat().st_mode) == 0o700
        assert stat.S_IMODE(rx.socket.stat().st_mode) & 0o077 == 0

        probes = {
            "connect to ragexd": _as_user(other_user, SYSTEM_PYTHON, "-c", CONNECT,
                                          str(rx.socket)),
            "connect to a worker": _as_user(other_user, SYSTEM_PYTHON, "-c", CONNECT,
                                            str(worker_sock)),
            "list the runtime dir": _as_user(other_user, "ls", str(run)),
            "read the pid file": _as_user(other_user, "cat", str(run / "ragexd.pid")),
        }
        for what, out in probes.items():
            assert "connected" not in out.stdout, (what, out.stdout)
            assert out.returncode != 0 or "refused" in out.stdout, (what, out)
            text = out.stdout + out.stderr
            assert "Permission denied" in text or "refused 13" in text, (what, text)

        # Defence in depth: even with the directory opened up, the sockets' own
        # modes keep the other user out.
        os.chmod(run, 0o711)
        os.chmod(worker_dirs[0], 0o711)
        try:
            deep = {
                "ragexd": _as_user(other_user, SYSTEM_PYTHON, "-c", CONNECT, str(rx.socket)),
                "worker": _as_user(other_user, SYSTEM_PYTHON, "-c", CONNECT, str(worker_sock)),
            }
        finally:
            os.chmod(run, 0o700)
            os.chmod(worker_dirs[0], 0o700)
        socket_modes = {n: oct(stat.S_IMODE(p.stat().st_mode))
                        for n, p in (("ragexd", rx.socket), ("worker", worker_sock))}
        for what, out in deep.items():
            assert out.stdout.startswith("refused 13"), (what, socket_modes, out)
        assert rx.client().call(Op.PING).ok
        figure("another local user",
               f"uid {other_user.pw_uid}: connecting to ragexd's and a worker's socket, listing "
               "the runtime dir and reading the pid file all failed with EACCES (dir 0700); "
               f"with the dirs opened to 0711 the sockets' own modes {socket_modes} still "
               "refused the connection")
    finally:
        cleanup_base(base)
        rx.cleanup()


@pytest.mark.parametrize("mode", [0o775, 0o777, 0o770, 0o702, 0o755], ids=oct)
def test_a_runtime_dir_open_to_others_is_refused_with_the_fix(mode: int) -> None:
    base = short_tmp()
    try:
        run = base / "run"
        run.mkdir()
        os.chmod(run, mode)
        rx = RagexInstance(base)
        proc = rx.popen("--foreground")
        assert proc.wait(30) == 2  # ragex-wide ERROR (ragexd.exitcodes)
        out = rx.output()
        assert "refusing to start" in out and f"chmod 700 {run}" in out, out
        assert not rx.socket.exists() and not (run / "ragexd.pid").exists()
        assert stat.S_IMODE(run.stat().st_mode) == mode, "ragexd must not silently chmod"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_runtime_dir_owned_by_another_user_is_refused(other_user: pwd.struct_passwd) -> None:
    base = short_tmp()
    try:
        run = base / "run"
        run.mkdir(mode=0o700)
        os.chown(run, other_user.pw_uid, other_user.pw_gid)
        rx = RagexInstance(base)
        proc = rx.popen("--foreground")
        assert proc.wait(30) == 2  # ragex-wide ERROR (ragexd.exitcodes)
        out = rx.output()
        assert "refusing to start" in out and f"owned by uid {other_user.pw_uid}" in out, out
        assert not rx.socket.exists() and not any(run.iterdir())
        # The same through ragexctl, which would otherwise auto-start ragexd.
        cli = ragexctl(rx.env, "search", "--project", str(base), "anything", timeout=60)
        assert cli.returncode == 2 and f"owned by uid {other_user.pw_uid}" in cli.stderr, \
            cli.stderr
        figure("unsafe runtime directory",
               "ragexd refused to start (exit 1, with the fix) for modes 775/777/770/702 and "
               f"for a directory owned by uid {other_user.pw_uid}; ragexctl relayed the reason")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_container_is_confined_seen_from_inside(need_docker: None) -> None:
    base = short_tmp()
    rx = RagexInstance(base, RAGEX_WATCH="0", RAGEX_RUNTIME="docker", RAGEX_DAEMON_PRESTART="0")
    try:
        rx.start()
        project = write_tree(base / "proj")
        client = rx.client()
        reply = client.call(Op.START, project, timeout=120)
        assert reply.ok, reply.error
        worker = wait_for(lambda: (w := client.worker(project))["state"] == "ready" and w, 120,
                          what="the container to be ready")
        assert worker["runtime"] == "docker"
        cid = worker["ident"]

        def inside(*argv: str) -> subprocess.CompletedProcess[str]:
            return ds.docker("exec", cid, *argv, check=False, timeout=60)

        status = inside("sh", "-c", "for f in /proc/[0-9]*/status; do "
                                    "grep -E '^(Name|CapEff|CapPrm|CapBnd|NoNewPrivs):' $f; done")
        assert status.returncode == 0, status.stderr
        fields = [line.split(":", 1) for line in status.stdout.splitlines()]
        caps = {k: v.strip() for k, v in fields if k.startswith("Cap")}
        assert caps and all(int(v, 16) == 0 for k, v in fields if k.startswith("Cap")), \
            status.stdout
        assert all(v.strip() == "1" for k, v in fields if k == "NoNewPrivs"), status.stdout
        names = {v.strip() for k, v in fields if k == "Name"}

        net = inside("ls", "/sys/class/net")
        assert net.returncode == 0 and net.stdout.split() == ["lo"], net
        dialed = inside("python", "-c", "import socket\ntry:\n socket.create_connection("
                                         "('1.1.1.1', 53), timeout=3)\n print('connected')\n"
                                         "except OSError as e:\n print('refused', e)")
        assert "refused" in dialed.stdout and "connected" not in dialed.stdout, dialed

        root_fs = inside("touch", "/probe")
        assert root_fs.returncode != 0 and "Read-only file system" in root_fs.stderr, root_fs
        workspace = inside("touch", "/workspace/probe")
        assert workspace.returncode != 0 and "Read-only file system" in workspace.stderr
        assert not (project / "probe").exists()
        figure("container confinement (from inside)",
               f"processes {sorted(names)}: CapEff/CapPrm/CapBnd all 0, NoNewPrivs 1; "
               f"/sys/class/net = lo only, a TCP connect to 1.1.1.1 failed "
               f"({dialed.stdout.strip()[:60]}); touch / and touch /workspace: Read-only file "
               "system")
    finally:
        cleanup_base(base)
        rx.cleanup()
        ds.remove_containers_under(base)
        shutil.rmtree(base, ignore_errors=True)
