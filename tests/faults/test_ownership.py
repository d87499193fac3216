"""Who owns an index, and which ragexd a client finds (issue #13).

Real ragexd processes with their own directories: two of them sharing one data
directory (as two runtime directories do when an MCP client strips
XDG_RUNTIME_DIR) must never both write one index.
"""

from __future__ import annotations

import time

import pytest

from ragexd.protocol import ErrorCode, Op
from tests.harness import RagexInstance, short_tmp, write_tree

from .helpers import figure

pytestmark = pytest.mark.faults


def test_two_ragexd_never_write_one_index_the_second_gets_index_locked() -> None:
    base = short_tmp()
    first = RagexInstance(base / "a", RAGEX_WATCH="0")     # each makes its own base
    second = RagexInstance(base / "b", RAGEX_WATCH="0", RAGEX_DATA_DIR=first.env["RAGEX_DATA_DIR"])
    root = write_tree(base / "project")
    try:
        first.start()
        second.start()
        one, two = first.client(), second.client()
        assert one.call(Op.INDEX, root, timeout=600, rebuild=False, paths=None).ok
        t0 = time.monotonic()
        reply = two.call(Op.SEARCH, root, 120, query="slugify", mode="symbol", limit=5)
        took = time.monotonic() - t0
        assert not reply.ok and reply.error.code is ErrorCode.INDEX_LOCKED, reply
        assert "in use by another ragex worker" in reply.error.message
        reply = two.call(Op.INDEX, root, timeout=120, rebuild=False, paths=None)
        assert not reply.ok and reply.error.code is ErrorCode.INDEX_LOCKED, reply
        assert one.call(Op.SEARCH, root, 60, query="slugify", mode="symbol", limit=5).ok
        figure("O1", f"second ragexd refused with index_locked in {took:.1f} s", seconds=took)
        # once the owner is gone, the other ragexd's worker takes the index over
        first.terminate()
        reply = two.call(Op.SEARCH, root, 120, query="slugify", mode="symbol", limit=5)
        assert reply.ok and reply.result["hits"], reply
    finally:
        first.cleanup()
        second.cleanup()


_IN_NAMESPACE = r'''
import json, os, subprocess, sys, tempfile
from mcp.client.stdio import get_default_environment

def sh(*cmd):
    subprocess.run(cmd, check=True)

# a private /run/user (as systemd-logind lays it out) and a private /tmp, so
# nothing here sees or disturbs another ragexd on this machine
sh("mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", "/run/user")
# A checkout (or its venv) under /tmp must stay reachable under the private /tmp:
# bind its top directory back from the host's /tmp.
keep = sorted({p.split("/")[2] for p in (os.getcwd(), sys.prefix, sys.executable)
               if p.startswith("/tmp/")})
if keep:
    os.mkdir("/run/user/.host-tmp")
    sh("mount", "--bind", "/tmp", "/run/user/.host-tmp")
sh("mount", "-t", "tmpfs", "tmpfs", "/tmp")
for name in keep:
    os.mkdir(f"/tmp/{name}")
    sh("mount", "--bind", f"/run/user/.host-tmp/{name}", f"/tmp/{name}")
uid = os.getuid()
os.mkdir(f"/run/user/{uid}", 0o700)
home = tempfile.mkdtemp()
base = {"HOME": home, "PATH": os.environ["PATH"], "HF_HUB_OFFLINE": "1",
        "RAGEX_RUNTIME": "process"}
shell = dict(base, XDG_RUNTIME_DIR=f"/run/user/{uid}")     # the user's login shell
os.environ.clear()
os.environ.update(base)
mcp = dict(get_default_environment(), HF_HUB_OFFLINE="1")  # what an MCP client passes on
assert "XDG_RUNTIME_DIR" not in mcp

def ctl(env, *args):
    return subprocess.run([sys.executable, "-m", "ragexctl", *args], env=env,
                          capture_output=True, text=True, timeout=120)

out = {}
try:
    started = ctl(shell, "start")
    out["start"] = [started.returncode, started.stderr[-500:]]
    for name, env in (("shell", shell), ("mcp", mcp)):
        got = ctl(env, "status", "--json")
        out[name] = [got.returncode, got.stdout, got.stderr[-500:]]
    out["tmp_fallback_exists"] = os.path.exists(f"/tmp/ragex-{uid}")
finally:
    ctl(shell, "stop", "--all")
print("RESULT " + json.dumps(out))
'''


def test_a_stripped_mcp_environment_finds_the_users_ragexd_through_run_user() -> None:
    import json
    import os
    import shutil
    import subprocess
    import sys

    from tests.harness import REPO

    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare(1) for a private /run/user")
    proc = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, "-c",
                           _IN_NAMESPACE], cwd=str(REPO), capture_output=True, text=True,
                          timeout=300)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["start"][0] == 0, out
    assert out["shell"][0] == 0 and out["mcp"][0] == 0, out
    shell, mcp = json.loads(out["shell"][1]), json.loads(out["mcp"][1])
    pid = shell.get("pid") or shell.get("daemon", {}).get("pid")
    assert pid and pid == (mcp.get("pid") or mcp.get("daemon", {}).get("pid")), (shell, mcp)
    assert not out["tmp_fallback_exists"], "a second ragexd runtime dir appeared under /tmp"
