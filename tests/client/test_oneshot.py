"""``--no-daemon``: the same commands through a one-shot worker process.

Real worker, real model, real index; no ragexd may be started.  The first
search must index first (a user's first search just works) and print exactly
what the daemon path prints.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.harness import PrivateEnv, make_tree, pids_in_env, wait_for


@pytest.fixture(scope="module")
def one():
    # the one-shot worker is under test: regex searches go to it, not to rg directly
    env = PrivateEnv(TERM="dumb", RAGEX_SEARCH_DIRECT_REGEX="false")
    yield env, make_tree(env.base / "proj")
    env.cleanup()


def _no_ragexd(env: PrivateEnv) -> None:
    assert not env.socket.exists() and not pids_in_env(env.run_dir, ragexd_only=True)


def test_first_search_indexes_then_finds(one):
    env, tree = one
    r = env.ctl("search", "--no-daemon", "retry failed uploads with backoff", "-n", "3",
                cwd=tree)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "shop/upload.py:4:def retry_upload(client, path, attempts=5):"
    assert "embedding" in r.stderr and "indexed 5 files" in r.stderr
    _no_ragexd(env)
    # ragexctl recorded the project, so ls (and rm) know about it without ragexd.
    rows = [json.loads(x) for x in env.ctl("ls", "--json").stdout.splitlines()]
    assert [p["root"] for p in rows] == [os.path.realpath(tree)]


def test_daemon_disabled_by_environment_uses_the_same_path(one):
    env, tree = one
    e = dict(env.env, RAGEX_DAEMON_ENABLED="false")
    r = env.ctl("search", "--mode", "regex", "--json", "--", "--pre=sh", cwd=tree, env=e)
    assert r.returncode == 0, r.stderr
    (hit,) = [json.loads(x) for x in r.stdout.splitlines()]
    assert (hit["path"], hit["line"], hit["kind"]) == ("tools.sh", 3, "match")
    assert {"path", "line", "end_line", "kind", "name", "score", "text"} <= set(hit)
    r = env.ctl("search", "--mode", "regex", "zzqqxx_never_there", cwd=tree, env=e)
    assert r.returncode == 1 and r.stdout == ""
    r = env.ctl("search", "--mode", "regex", "(", "--json", cwd=tree, env=e)
    assert r.returncode == 2 and json.loads(r.stderr)["error"]["code"] == "invalid_regex"
    _no_ragexd(env)


def test_index_no_daemon_reports_a_summary(one):
    env, tree = one
    r = env.ctl("index", "--no-daemon", str(tree))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("indexed 0 files (5 unchanged, 0 removed)")
    r = env.ctl("search", "--no-daemon", "--mode", "symbol", "add_item", "--json", cwd=tree)
    (hit,) = [json.loads(x) for x in r.stdout.splitlines()][:1]
    assert (hit["path"], hit["name"], hit["parent"]) == ("shop/cart.py", "add_item", "Cart")
    _no_ragexd(env)


def test_similar_and_context_lines_without_ragexd(one):
    env, tree = one
    assert env.ctl("index", "--no-daemon", str(tree)).returncode == 0
    r = env.ctl("similar", "--no-daemon", "shop/cart.py:12", "-n", "2", "--json", cwd=tree)
    assert r.returncode == 0, r.stderr
    hits = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(hits) == 2 and ("shop/cart.py", "total_price") not in \
        [(h["path"], h["name"]) for h in hits]
    r = env.ctl("similar", "--no-daemon", "shop/cart.py:400", cwd=tree)
    assert r.returncode == 2 and r.stderr == \
        "ragexctl: line 400 is past the end of shop/cart.py (13 lines)\n"
    r = env.ctl("search", "--no-daemon", "--mode", "symbol", "add_item", "-A", "1", cwd=tree)
    assert r.stdout == ("shop/cart.py:7:    def add_item(self, sku, qty=1):\n"
                        'shop/cart.py-8-        """Add qty units of sku to the cart."""\n')
    _no_ragexd(env)


def test_a_worker_that_dies_is_a_clear_error(one, tmp_path):
    """The one-shot worker crashing without a reply: exit 2 and its last words."""
    env, tree = one
    fake = tmp_path / "fakepy"
    fake.mkdir()
    # Only the worker process (its argv holds "oneshot") dies, at start-up.
    (fake / "sitecustomize.py").write_text(
        "import sys, os\n"
        "if 'oneshot' in sys.argv:\n"
        "    sys.stderr.write('worker: cannot open the index: disk on fire\\n')\n"
        "    os._exit(3)\n")
    e = dict(env.env, PYTHONPATH=str(fake) + os.pathsep + env.env["PYTHONPATH"])
    r = env.ctl("search", "--no-daemon", "--mode", "regex", "x", cwd=tree, env=e)
    assert r.returncode == 2
    assert "one-shot worker exited with code 3 without answering" in r.stderr
    assert "disk on fire" in r.stderr


def test_a_first_search_answers_within_its_deadline_and_says_what_it_covers(tmp_path):
    """A never-indexed tree too large to embed within the deadline: the one-shot
    search answers in time from what is embedded, says so, and stops the index
    where the next search resumes it."""
    import time

    from tests.harness import copy_stdlib

    env = PrivateEnv(TERM="dumb")
    try:
        # ~3,000 chunks: a minute or more of embedding even on a quiet machine
        tree = copy_stdlib(env.base / "big", "email", "http", "logging", "asyncio")
        t0 = time.monotonic()
        r = env.ctl("search", "--no-daemon", "--timeout", "30", "parse an email address",
                    "-n", "3", cwd=tree)
        took = time.monotonic() - t0
        assert r.returncode in (0, 1), r.stderr
        assert "coverage:" in r.stderr and "chunks embedded" in r.stderr, r.stderr
        assert "first index stops with this one-shot search" in r.stderr, r.stderr
        assert took < 60, took    # waits at most half the deadline; the index takes minutes
        # the next search resumes the stopped index: it goes on from what is stored
        r2 = env.ctl("search", "--no-daemon", "--mode", "symbol", "--json", "parseaddr",
                     cwd=tree)
        assert r2.returncode == 0, r2.stderr
        hit = json.loads(r2.stdout.splitlines()[0])
        assert hit["name"] == "parseaddr"
        # no ragexd; the one-shot workers stop their index at a safe point and exit
        assert not env.socket.exists()
        wait_for(lambda: not pids_in_env(env.run_dir, ragexd_only=True), 120,
                 what="the one-shot workers to stop their index and exit")
    finally:
        env.cleanup()


def test_no_daemon_beside_a_running_worker_says_at_once_how_to_search(tmp_path):
    """The project's worker (started by ragexd) owns its index for good: a one-shot
    waited 60 s for it to let go, printing "working", then blamed "a second
    ragexd".  Now it is refused at once, with the two ways out."""
    import time

    env = PrivateEnv(RAGEX_WATCH="0")
    try:
        tree = make_tree(env.base / "proj")
        r = env.ctl("search", "--mode", "symbol", "retry_upload", cwd=tree)
        assert r.returncode == 0, r.stderr        # ragexd and the worker now run
        t0 = time.monotonic()
        r = env.ctl("search", "--no-daemon", "--mode", "symbol", "retry_upload", cwd=tree)
        took = time.monotonic() - t0
        assert r.returncode == 2 and r.stdout == "", r.stderr
        assert "without --no-daemon to ask the running worker" in r.stderr
        assert f"ragexctl stop {os.path.realpath(tree)}" in r.stderr
        assert "second ragexd" not in r.stderr and "working" not in r.stderr
        assert took < 30, f"refused only after {took:.0f} s"
        # the worker's answer is untouched
        r = env.ctl("search", "--mode", "symbol", "retry_upload", cwd=tree)
        assert r.returncode == 0 and "shop/upload.py" in r.stdout, r.stderr
    finally:
        env.cleanup()
