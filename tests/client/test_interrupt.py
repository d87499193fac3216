"""Ctrl-C of a first index that a search started on its own (issue #13).

A user who types ``ragexctl search`` in the wrong directory and presses Ctrl-C
expects the work to stop, not a worker embedding their home directory in the
background.  An explicit ``ragexctl index``, or ``--keep-indexing``, goes on.
Real ragexd, real worker, real SIGINT.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

from tests.harness import PrivateEnv, StreamLines, copy_stdlib, ragexctl_popen, wait_for

#: a progress line of the index a search waits for (stderr is a pipe: plain lines)
PROGRESS = "ragexctl: "


def _state(env: PrivateEnv) -> dict:
    r = env.ctl("status", "--json", timeout=60)
    workers = json.loads(r.stdout).get("workers") or [{}] if r.stdout.strip() else [{}]
    return workers[0]


def _interrupt_first_search(env: PrivateEnv, tree: Path, *extra: str) -> tuple[int, str]:
    proc = ragexctl_popen(env.env, "search", "--project", str(tree), *extra,
                          "where is the message parsed into headers")
    err = StreamLines(proc.stderr)
    try:
        # The worker is up and its first index has got going (the search is attached
        # to it and receiving its progress): now the user presses Ctrl-C.
        wait_for(lambda: _state(env).get("state") == "indexing", timeout=120,
                 what="the first index to start")
        err.wait_for(PROGRESS, timeout=120, what="the search to relay the index's progress")
        proc.send_signal(signal.SIGINT)
        proc.wait(90)
        return proc.returncode, err.until_closed(30)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_ctrl_c_of_a_search_stops_the_first_index_it_started_and_index_resumes_it() -> None:
    env = PrivateEnv(TERM="dumb")
    try:
        tree = copy_stdlib(env.base / "proj", "email", "http", "json")
        (tree / ".git").mkdir()
        code, err = _interrupt_first_search(env, tree)
        assert code == 130, err
        assert "stopped the first index" in err, err
        wait_for(lambda: _state(env).get("state") != "indexing", timeout=60,
                 what="the worker to stop")
        assert _state(env).get("state") in ("stopped", "idle-stopped", None), _state(env)
        r = env.ctl("index", str(tree), timeout=600)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("indexed "), r.stdout
    finally:
        env.cleanup()


def test_with_keep_indexing_ctrl_c_leaves_the_first_index_running() -> None:
    env = PrivateEnv(TERM="dumb")
    try:
        tree = copy_stdlib(env.base / "proj", "email", "http", "json")
        (tree / ".git").mkdir()
        code, err = _interrupt_first_search(env, tree, "--keep-indexing")
        assert code == 130, err
        assert "goes on indexing in the background" in err, err
        assert _state(env).get("state") == "indexing", _state(env)
    finally:
        env.cleanup()


def test_ctrl_c_of_a_search_leaves_a_first_index_another_client_asked_for() -> None:
    """One terminal's search started the first index; another's `ragexctl index`
    follows it.  Ctrl-C of the search stopped the worker, and the index the other
    user asked for failed "the worker … was stopped (user)".  Now it goes on."""
    env = PrivateEnv(TERM="dumb")
    index = None
    try:
        tree = copy_stdlib(env.base / "proj", "email", "json")
        (tree / ".git").mkdir()
        search = ragexctl_popen(env.env, "search", "--project", str(tree),
                                "where is the message parsed into headers")
        try:
            wait_for(lambda: _state(env).get("state") == "indexing", timeout=120,
                     what="the first index to start")
            index = ragexctl_popen(env.env, "index", str(tree))
            index_err = StreamLines(index.stderr)
            # Its request has reached ragexd once the worker relays the running index's
            # progress to it (was: five seconds' sleep, which a loaded machine's client
            # start-up can exceed, and the Ctrl-C then rightly stopped the index).
            index_err.wait_for("waiting for the index already running", timeout=120)
            search.send_signal(signal.SIGINT)
            _, err = search.communicate(timeout=90)
        finally:
            if search.poll() is None:
                search.kill()
        assert search.returncode == 130, err
        assert "goes on: another client asked for this project's index" in err, err
        assert index.stdout is not None
        out = index.stdout.read()
        assert index.wait(900) == 0, index_err.until_closed(30)
        assert out.startswith("indexed "), out
    finally:
        if index is not None and index.poll() is None:
            index.kill()
        env.cleanup()
