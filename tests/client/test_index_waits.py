"""An explicit index while another index of the project runs waits for it.

A new user's first search starts the project's first index in the background,
and the next thing they type is `ragexctl index` to watch it finish.  That
answered exit 2, "this project is already being indexed", as did the second of
two `ragexctl index` run at once (two terminals, a CI step beside an editor
hook).  The user asked for an up-to-date index: the request now follows the
run already going (its progress on stderr), then makes its own incremental
pass.  Real ragexd, real worker, real model.
"""

from __future__ import annotations

import json

from tests.harness import PrivateEnv, copy_stdlib, ragexctl_popen, wait_for


def _state(env: PrivateEnv) -> str | None:
    r = env.ctl("status", "--json", timeout=60)
    workers = (json.loads(r.stdout).get("workers") or [{}]) if r.stdout.strip() else [{}]
    return workers[0].get("state")


def test_index_during_a_first_index_a_search_started_follows_it_then_succeeds() -> None:
    env = PrivateEnv(TERM="dumb")
    search = second = None
    try:
        tree = copy_stdlib(env.base / "proj", "email", "json")
        (tree / ".git").mkdir()
        search = ragexctl_popen(env.env, "search", "--project", str(tree),
                                "where is the message parsed into headers")
        wait_for(lambda: _state(env) == "indexing", timeout=120,
                 what="the first index to start")
        # two explicit indexes at once, both while the first index embeds
        second = ragexctl_popen(env.env, "index", "--json", str(tree))
        r = env.ctl("index", str(tree), timeout=900)
        assert r.returncode == 0, r.stderr
        assert "waiting for the index already running" in r.stderr, r.stderr
        assert "embedding" in r.stderr, r.stderr   # the running index's progress, relayed
        assert r.stdout.startswith("indexed "), r.stdout
        assert "Traceback" not in r.stderr
        out, err = second.communicate(timeout=900)
        assert second.returncode == 0, err
        rows = [json.loads(line) for line in out.splitlines()]
        assert rows[0]["phase"] == "waiting", rows[0]
        summary = rows[-1]
        assert summary["type"] == "summary", summary
        # the first index did the work; the passes after it found nothing left
        assert summary["files_indexed"] == 0, summary
        assert summary["files_unchanged"] == summary["files_scanned"] > 30, summary
        search.communicate(timeout=120)
        assert search.returncode == 0
        assert _state(env) != "indexing"
    finally:
        for proc in (search, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
        env.cleanup()
