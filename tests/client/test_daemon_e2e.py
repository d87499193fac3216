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

from tests.harness import (PrivateEnv, make_tree, pid_alive, pids_in_env,
                           ragexctl_at_a_terminal)


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


def test_context_lines_for_regex_and_meaning_grep_style(live):
    env, tree = live
    r = env.ctl("search", "--mode", "regex", "delay", "-C", "1", cwd=tree)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        'shop/upload.py-5-    """Upload a file, retrying failed uploads with exponential backoff."""',
        "shop/upload.py:6:    delay = 1.0",
        "shop/upload.py-7-    for _ in range(attempts):",
        "--",
        "shop/upload.py-9-            return True",
        "shop/upload.py:10:        time.sleep(delay)",
        "shop/upload.py:11:        delay *= 2",
        "shop/upload.py-12-    return False"]
    r = env.ctl("search", "retry failed uploads with backoff", "-n", "1", "-B", "1", "-A", "1",
                cwd=tree / "shop")
    assert r.stdout == ("upload.py-3-\nupload.py:4:def retry_upload(client, path, attempts=5):\n"
                        'upload.py-5-    """Upload a file, retrying failed uploads with '
                        'exponential backoff."""\n'), r.stdout


def test_json_keeps_its_fields_with_the_whole_span_and_context_arrays(live):
    env, tree = live
    r = env.ctl("search", "total price of the items in a cart", "--json", "-n", "3", cwd=tree)
    hits = {h["name"]: h for h in map(json.loads, r.stdout.splitlines())}
    method = hits["total_price"]
    assert {"path", "line", "end_line", "start_line", "kind", "name", "parent", "score",
            "text", "language", "stale"} <= set(method)
    assert (method["start_line"], method["line"], method["end_line"]) == (11, 11, 13)
    assert method["parent"] == "Cart" and "before" not in method
    r = env.ctl("search", "total price of the items in a cart", "--json", "-n", "3", "-C", "2",
                cwd=tree)
    method = {h["name"]: h for h in map(json.loads, r.stdout.splitlines())}["total_price"]
    assert method["before"] == ["        self.items[sku] = self.items.get(sku, 0) + qty", ""]
    assert method["after"] == ['        """Sum the price of every item in the cart."""',
                               "        return sum(prices[s] * q for s, q in "
                               "self.items.items())"]


def test_a_huge_context_is_refused_with_a_sentence(live):
    env, tree = live
    for flag in ("-C", "-A", "-B"):
        r = env.ctl("search", "retry", flag, "99999999", cwd=tree)
        assert r.returncode == 2 and r.stdout == "", r.stderr
        assert r.stderr == ("ragexctl: -A/-B/-C must be a number of lines between 0 and 1000, "
                            "not 99999999\n")
    r = env.ctl("search", "retry", "-C", "-3", "--json", cwd=tree)
    assert r.returncode == 2 and json.loads(r.stderr)["error"]["code"] == "bad_query"
    r = env.ctl("similar", "shop/cart.py:4", "-C", "5000", cwd=tree)
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_ranked_hits_are_blocks_on_a_terminal_and_grep_lines_in_a_pipe(live):
    env, tree = live
    query = ("total price of the items in a cart", "-n", "1", "--mode", "semantic")
    r = ragexctl_at_a_terminal(env.env, "search", *query, cwd=tree, columns=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "shop/cart.py:11-13  method Cart.total_price",
        "    def total_price(self, prices):",
        '        """Sum the price of every item in the cart."""',
        "        return sum(prices[s] * q for s, q in self.items.i..."]   # 60 columns
    r = ragexctl_at_a_terminal(env.env, "search", *query, "--color", "always", cwd=tree)
    assert "\x1b[1;31mprice\x1b[0m" in r.stdout and "\x1b[35mshop/cart.py" in r.stdout
    r = env.ctl("search", *query, cwd=tree)   # a pipe: one grep line, as before
    assert r.stdout == "shop/cart.py:11:    def total_price(self, prices):\n"
    r = ragexctl_at_a_terminal(env.env, "search", "--mode", "regex", "delay", cwd=tree)
    assert r.stdout.splitlines()[0] == "shop/upload.py:6:    delay = 1.0"   # regex: grep lines


def test_status_is_readable(live):
    env, tree = live
    r = env.ctl("status")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ragexd ") and "running, pid" in r.stdout
    lines = r.stdout.splitlines()
    row = [ln for ln in lines if (ln.startswith(str(tree)) or "proj" in ln)
           and not ln.startswith("embedder of ")][-1]
    assert "process" in row and ("ready" in row or "indexing" in row)
    assert any(ln.startswith("embedder of ") and "onnxruntime" in ln for ln in lines), lines
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
    # The worker watches the tree: its re-index of the save may be running or done
    # already.  An explicit index then waits for that run instead of answering
    # busy, and counts the saved file either as indexed now or as unchanged since.
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    summary = rows[-1]
    assert summary["type"] == "summary", rows
    assert summary["files_indexed"] + summary["files_unchanged"] == 6, summary
    r = env.ctl("search", "--mode", "symbol", "vat_amount", cwd=tree)
    assert r.stdout.startswith("shop/tax.py:1:def vat_amount")


def test_index_of_an_ignored_path_says_why_in_one_sentence_and_exits_2(live):
    """`ragexctl index PATH` names the project by PATH: naming an ignored file, or
    one under an ignored or default-excluded directory, indexed the project around
    it, exit 0, without a word about the file.  It is refused now, saying which
    rule leaves it out (and how to bring a default exclude back); a path the index
    keeps indexes as before."""
    env, tree = live
    (tree / ".gitignore").write_text("scratch/\n")
    (tree / "scratch").mkdir()
    (tree / "scratch" / "try.py").write_text("def trial():\n    pass\n")
    (tree / "vendor" / "lib").mkdir(parents=True)
    (tree / "vendor" / "lib" / "dep.go").write_text("package lib\n")
    try:
        r = env.ctl("index", str(tree / "scratch" / "try.py"))
        assert r.returncode == 2, (r.stdout, r.stderr)
        assert "scratch/try.py is ignored (by .gitignore" in r.stderr, r.stderr
        assert "so it is not indexed" in r.stderr and "Traceback" not in r.stderr
        r = env.ctl("index", "vendor/lib", cwd=tree)
        assert r.returncode == 2, (r.stdout, r.stderr)
        assert ("vendor/lib is left out by ragex's default excludes (vendor/), so it is not "
                "indexed; a `!vendor/` line in .ragexignore brings it back") in r.stderr
        r = env.ctl("index", str(tree / "shop" / "tax.py"))
        assert r.returncode == 0 and r.stdout.startswith("indexed "), r.stderr
    finally:
        shutil.rmtree(tree / "scratch")
        shutil.rmtree(tree / "vendor")
        (tree / ".gitignore").unlink()


def test_similar_finds_the_look_alike_and_refuses_bad_locations(live):
    env, tree = live
    (tree / "shop" / "billing.py").write_text(
        "def sum_cart(cart, prices):\n"
        "    \"\"\"Sum the price of every item in the cart.\"\"\"\n"
        "    return sum(prices[s] * q for s, q in cart.items.items())\n")
    # the worker's watcher indexes the new file within seconds
    deadline = time.monotonic() + 60
    while True:
        r = env.ctl("similar", "cart.py:12", "-n", "2", cwd=tree / "shop")
        assert r.returncode in (0, 1), r.stderr
        if "sum_cart" in r.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert r.stdout.splitlines()[0] == "billing.py:1:def sum_cart(cart, prices):", r.stdout
    assert "total_price" not in r.stdout   # the chunk itself is left out
    r = env.ctl("similar", str(tree / "shop" / "cart.py") + ":12", "--json", "-n", "1")
    assert json.loads(r.stdout)["name"] == "sum_cart"
    (tree / "notes.txt").write_text("x\n")
    bad = {
        "shop/cart.py": "is not a location: give PATH:LINE",
        "shop/cart.py:zero": "is not a location",
        "shop/cart.py:0": "line numbers start at 1",
        "shop/cart.py:999": "line 999 is past the end of shop/cart.py (13 lines)",
        "nowhere.py:3": "no such file: nowhere.py",
        "/etc/hostname:1": "is not a file inside the project",
        "shop:1": "is a directory",
    }
    for location, sentence in bad.items():
        r = env.ctl("similar", location, "--project", str(tree), cwd=tree)
        assert r.returncode == 2 and r.stdout == "", (location, r.stderr)
        assert sentence in r.stderr and "Traceback" not in r.stderr, (location, r.stderr)
    (tree / "shop" / "cart.py").write_text((tree / "shop" / "cart.py").read_text() + "\n")
    os.utime(tree / "shop" / "cart.py", ns=(1, 1))   # changed, and the watcher not yet done
    r = env.ctl("similar", "shop/cart.py:12", "--json", cwd=tree)
    if r.returncode == 2:   # the watcher may already have re-indexed the save
        error = json.loads(r.stderr)["error"]
        assert error["code"] == "not_found" and "ragexctl index" in error["message"], error


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


def test_stop_all_returns_once_ragexd_and_its_workers_have_exited(live):
    """A script may restart or check right after ``stop --all``: by then the
    processes are gone, not just the socket (CI once caught ragexd alive a few
    milliseconds after its socket closed)."""
    env, _ = live
    pids = pids_in_env(env.run_dir, ragexd_only=True)
    assert pids
    r = env.ctl("stop", "--all")
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith("and ragexd\n")
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
