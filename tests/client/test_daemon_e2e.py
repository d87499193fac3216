"""The whole daemon path, for real: ragexctl auto-starts the real ragexd, which
starts a real worker (process runtime) with the real model on a real tree.

One ragexd serves the module (the model loads once); the tests run in file
order, from a cold start to ``stop --all``, and the teardown kills whatever a
failing test may have left.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.harness import PrivateEnv, make_tree, pid_alive, pids_in_env


@pytest.fixture(scope="module")
def live():
    env = PrivateEnv(TERM="dumb")
    tree = make_tree(env.base / "proj")
    yield env, tree
    left = env.cleanup()
    assert not left, f"ragexd processes survived `stop --all`: {left}"


def test_cold_first_search_starts_ragexd_indexes_and_finds(live):
    env, tree = live
    assert env.ctl("status").returncode == 3
    r = env.ctl("search", "retry failed uploads with backoff", "--json", "-n", "3", cwd=tree)
    assert r.returncode == 0, r.stderr
    hits = [json.loads(line) for line in r.stdout.splitlines()]
    assert hits and all({"path", "line", "end_line", "kind", "name", "score", "text"} <= set(h)
                        for h in hits)
    assert ("shop/upload.py", "retry_upload") in [(h["path"], h["name"]) for h in hits]
    # The index was built first, or the answer says what it covers so far (stderr:
    # stdout is JSON only).
    assert "indexed 5 files" in r.stderr or '{"type": "coverage"' in r.stderr, r.stderr
    assert env.socket.exists()
    assert pids_in_env(env.run_dir, ragexd_only=True), "no ragexd process is running"


def test_second_search_is_warm(live):
    env, tree = live
    t0 = time.monotonic()
    r = env.ctl("search", "retry failed uploads with backoff", "-n", "3", cwd=tree / "shop")
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "upload.py:4:def retry_upload(client, path, attempts=5):"
    assert r.stderr == ""  # warm: no index, no notes
    assert took < 5.0  # a fresh process; the budget is ~0.1 s, this only catches a cold path


def test_modes_exit_codes_and_flag_shaped_patterns(live):
    env, tree = live
    r = env.ctl("search", "--mode", "regex", "--", "--pre=sh", cwd=tree)
    assert r.returncode == 0, r.stderr
    assert r.stdout == 'tools.sh:3:exec rg --pre=sh "$@"\n'
    r = env.ctl("search", "-e", "--pre=sh", "--mode", "regex", cwd=tree)
    assert r.stdout == 'tools.sh:3:exec rg --pre=sh "$@"\n'
    r = env.ctl("search", "--", "--pre=sh", cwd=tree)  # auto mode: still a query, not a flag
    assert r.returncode in (0, 1) and "unrecognized" not in r.stderr, r.stderr
    r = env.ctl("search", "--mode", "symbol", "parse_config", cwd=tree)
    assert r.returncode == 0 and r.stdout.splitlines()[0] == "shop/config.py:8:def parse_config(text):"
    r = env.ctl("search", "--mode", "regex", "zzqqxx_never_there", cwd=tree)
    assert r.returncode == 1 and r.stdout == "" and r.stderr == ""
    r = env.ctl("search", "--mode", "regex", "(", cwd=tree)
    assert r.returncode == 2 and r.stdout == "" and r.stderr.startswith("ragexctl: ")
    r = env.ctl("search", "--mode", "regex", "(", "--json", cwd=tree)
    assert json.loads(r.stderr)["error"]["code"] == "invalid_regex"
    r = env.ctl("search", "def", "--mode", "regex", "-g", "shop/cart.py", "--json", cwd=tree)
    assert {json.loads(x)["path"] for x in r.stdout.splitlines()} == {"shop/cart.py"}


def test_status_is_readable(live):
    env, tree = live
    r = env.ctl("status")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ragexd ") and "running, pid" in r.stdout
    row = [ln for ln in r.stdout.splitlines() if ln.startswith(str(tree)) or "proj" in ln][-1]
    assert "process" in row and ("ready" in row or "indexing" in row)
    data = json.loads(env.ctl("status", "--json").stdout)
    assert data["daemon"]["pid"] in pids_in_env(env.run_dir, ragexd_only=True)
    assert [w["root"] for w in data["workers"]] == [os.path.realpath(tree)]


def test_index_is_incremental_and_reports_a_summary(live):
    env, tree = live
    r = env.ctl("index", cwd=tree)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("indexed 0 files (5 unchanged, 0 removed)")
    (tree / "shop" / "tax.py").write_text(
        "def vat_amount(net, rate=0.2):\n    \"\"\"Value added tax owed on a net price.\"\"\"\n"
        "    return net * rate\n")
    r = env.ctl("index", "--json", str(tree))
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert rows[-1]["type"] == "summary" and rows[-1]["files_indexed"] >= 1
    r = env.ctl("search", "--mode", "symbol", "vat_amount", cwd=tree)
    assert r.stdout.startswith("shop/tax.py:1:def vat_amount")


def test_version_handshake_matches(live):
    env, _ = live
    r = env.ctl("--version")
    assert r.returncode == 0 and r.stderr == ""
    a, b = r.stdout.splitlines()
    assert a.split()[1] == b.split()[1]  # same version: no stale-server warning


def test_ls_and_logs(live):
    env, tree = live
    rows = [json.loads(x) for x in env.ctl("ls", "--json").stdout.splitlines()]
    assert [(p["root"], p["running"]) for p in rows] == [(os.path.realpath(tree), True)]
    r = env.ctl("logs", "-n", "5")
    assert r.returncode == 0 and 0 < len(r.stdout.splitlines()) <= 5
    r = env.ctl("logs", str(tree), "-n", "200")
    assert r.returncode == 0 and r.stdout.strip()


def test_stop_one_worker_then_search_restarts_it(live):
    env, tree = live
    r = env.ctl("stop", str(tree))
    assert r.returncode == 0 and "stopped" in r.stdout
    state = json.loads(env.ctl("status", "--json").stdout)["workers"][0]["state"]
    assert state in ("stopped", "idle-stopped")
    r = env.ctl("search", "--mode", "symbol", "Cart", cwd=tree)
    assert r.returncode == 0 and r.stdout.startswith("shop/cart.py:1:class Cart")


def test_rm_deletes_the_index_through_ragexd(live):
    env, tree = live
    pid = json.loads(env.ctl("ls", "--json").stdout.splitlines()[0])["id"]
    r = env.ctl("rm", pid)
    assert r.returncode == 0, r.stderr
    assert not (env.data / "projects" / pid / "catalog.sqlite").exists()
    assert env.ctl("ls").stdout == "no indexed projects\n"


def test_stop_all_leaves_no_ragexd(live):
    env, _ = live
    pids = pids_in_env(env.run_dir, ragexd_only=True)
    assert pids
    r = env.ctl("stop", "--all")
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith("and ragexd\n")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.1)
    assert not [p for p in pids if pid_alive(p)]
    assert not env.socket.exists()
    assert env.ctl("status").returncode == 3


# --- start-up races and failures (their own environments) ---------------------------


def test_two_clients_starting_ragexd_at_once(rx_env: PrivateEnv, tree: Path):
    """Both auto-start; ragexd's lock lets one win; both searches succeed."""
    procs = [subprocess.Popen([sys.executable, "-m", "ragexctl", "search", "--mode", "regex",
                               "retry_upload", "-n", "1"], env=rx_env.env, cwd=str(tree),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert out.startswith("shop/upload.py:4:")
    daemons = [pid for pid in pids_in_env(rx_env.run_dir, ragexd_only=True)
               if b"ragexd.worker" not in open(f"/proc/{pid}/cmdline", "rb").read()]
    assert len(daemons) == 1, daemons


def test_concurrent_first_searches_attach_to_one_index(rx_env: PrivateEnv, tree: Path):
    """Five agents' first searches of a never-indexed project at once: every one
    finds the definition (none says "the index is empty"), from one index run."""
    procs = [subprocess.Popen([sys.executable, "-m", "ragexctl", "search", "--mode", "symbol",
                               "retry_upload", "--json"], env=rx_env.env, cwd=str(tree),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(5)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert json.loads(out.splitlines()[0])["path"] == "shop/upload.py"
        assert "index is empty" not in err and "already being indexed" not in err, err
    deadline = time.monotonic() + 240
    while "first index:" not in (logs := rx_env.ctl("logs", str(tree), cwd=tree)).stdout:
        assert time.monotonic() < deadline, logs.stdout
        time.sleep(1)
    assert logs.stdout.count("first index:") == 1, logs.stdout


def test_first_search_of_a_larger_tree_answers_within_its_deadline(rx_env: PrivateEnv, tree: Path):
    """A first search does not wait for the whole index: it answers within its
    --timeout, and says how much of the project the answer covers."""
    import sysconfig

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for name in ("email", "http", "json"):   # ~1,100 chunks: minutes to embed here
        shutil.copytree(stdlib / name, tree / "vendor_copy" / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    t0 = time.monotonic()
    r = rx_env.ctl("search", "--timeout", "40", "--json", "retry failed uploads with backoff",
                   cwd=tree)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert took < 40, took
    assert "shop/upload.py" in r.stdout.splitlines()[0]
    coverage = [json.loads(line.removeprefix("ragexctl: ")) for line in r.stderr.splitlines()
                if '"type": "coverage"' in line]
    if coverage:   # answered before the index was complete: says so, honestly
        (cov,) = coverage
        assert not cov["complete"] and cov["chunks_embedded"] < cov["chunks_indexed"], cov
    else:          # a fast machine finished first and said that instead
        assert "indexed " in r.stderr and " files (" in r.stderr, r.stderr


def test_ragexd_that_cannot_start_shows_its_own_error(rx_env: PrivateEnv, tree: Path):
    os.chmod(rx_env.run_dir, 0o755)  # too open: ragexd refuses to start
    t0 = time.monotonic()
    r = rx_env.ctl("search", "retry", cwd=tree)
    assert r.returncode == 2
    assert time.monotonic() - t0 < 30
    first = r.stderr.splitlines()[0]
    assert first.startswith("ragexctl: could not start ragexd: ragexd exited with code")
    assert "chmod 700" in r.stderr  # ragexd's own words, with the fix
    assert "ragexd.start.log" in first
    assert not pids_in_env(rx_env.run_dir, ragexd_only=True)
