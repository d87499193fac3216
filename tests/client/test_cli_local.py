"""The client on its own: arguments, exit codes, errors, and the commands that
work without ragexd (status, stop, ls, rm, logs, --version).  No ragexd runs
here; each test checks that none was started behind its back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ragexctl import cli
from ragexd import logfile

from tests.harness import PrivateEnv, StreamLines
from tests.harness.runners import as_at_a_terminal


def _no_daemon_started(env: PrivateEnv) -> None:
    assert not env.socket.exists(), "a ragexd was started by a command that must not start it"


# --- parsing ----------------------------------------------------------------------


def _parse(*argv: str):
    return cli.build_parser().parse_args(cli._preprocess(list(argv)))


def test_flag_shaped_queries_are_patterns():
    assert _parse("search", "--", "--pre=sh").query == ["--pre=sh"]
    args = _parse("search", "--mode", "regex", "--", "--pre=sh")
    assert args.query == ["--pre=sh"] and args.mode == "regex"
    assert _parse("search", "-e", "--pre=sh").patterns == ["--pre=sh"]
    assert _parse("search", "--regexp", "-x", "-n", "3").patterns == ["-x"]
    # After `--`, -e is a pattern, not an option.
    assert _parse("search", "--", "-e").query == ["-e"]


def test_options_anywhere_and_repeatable_filters():
    a = _parse("search", "retry", "uploads", "-n", "3", "-g", "src/**", "--path", "!*.md",
               "-t", "py", "--lang", "go", "--json", "--no-daemon", "--timeout", "90s")
    assert a.query == ["retry", "uploads"] and a.limit == 3
    assert a.paths == ["src/**", "!*.md"] and a.languages == ["py", "go"]
    assert a.json and a.no_daemon and a.timeout == 90.0


@pytest.mark.parametrize("argv", [["search", "x", "--mode", "fuzzy"], ["search", "x", "-n", "ten"],
                                  ["search", "x", "--timeout", "0"], ["frobnicate"]])
def test_usage_errors_exit_2(rx_env: PrivateEnv, argv):
    r = rx_env.ctl(*argv)
    assert r.returncode == 2
    assert "ragexctl: " in r.stderr and r.stdout == ""
    _no_daemon_started(rx_env)


@pytest.mark.parametrize("argv, hint", [
    (["similar", "-dash.py:1"], "-dash.py:1 starts with '-': give it after `--`, "
                                "e.g. ragexctl similar -- -dash.py:1"),
    (["similar", "-n", "3", "-x.py:4"], "e.g. ragexctl similar -n 3 -- -x.py:4"),
    (["search", "--mode", "symbol", "-dash_func"], "if -dash_func is a query or a path, give it "
                                                   "after `--` (`-- -dash_func`)"),
    (["search", "x", "--bogus"], None), (["search", "x", "-n", "ten"], None)])
def test_a_path_or_query_starting_with_dash_is_told_to_go_after_double_dash(
        rx_env: PrivateEnv, argv: list[str], hint: str | None) -> None:
    """grep-like output names a file `-dash.py`; `similar -dash.py:1` pasted from it
    said only "the following arguments are required: PATH:LINE".  Now the usage
    error says how (`--`), and no hint is made up for a real option's mistake."""
    r = rx_env.ctl(*argv)
    assert r.returncode == 2 and r.stdout == "" and "Traceback" not in r.stderr, r.stderr
    assert (hint in r.stderr) if hint else ("`--`" not in r.stderr), r.stderr
    _no_daemon_started(rx_env)


def test_query_errors_are_caught_before_any_round_trip(rx_env: PrivateEnv):
    r = rx_env.ctl("search")
    assert r.returncode == 2 and "a query is required" in r.stderr
    r = rx_env.ctl("search", "x" * 100_000)
    assert r.returncode == 2
    assert r.stderr.startswith("ragexctl: the query is 100000 bytes; the limit is")
    assert r.stderr.count("\n") == 1  # one clear sentence, no traceback
    r = rx_env.ctl("search", "x", "-n", "0", "--json")
    assert r.returncode == 2 and r.stdout == ""
    err = json.loads(r.stderr)
    assert err["error"]["code"] == "bad_query" and "--limit" in err["error"]["message"]
    r = rx_env.ctl("search", "x", "--project", str(rx_env.base / "nope"))
    assert r.returncode == 2 and "no such file or directory" in r.stderr
    _no_daemon_started(rx_env)


def test_bad_configuration_is_one_clear_error(rx_env: PrivateEnv):
    env = dict(rx_env.env, RAGEX_DAEMON_ENABLED="maybe")
    r = rx_env.ctl("search", "x", env=env)
    assert r.returncode == 2
    assert "bad configuration" in r.stderr and "RAGEX_DAEMON_ENABLED" in r.stderr
    rx_env.config.mkdir()
    (rx_env.config / "config.toml").write_text("[daemon]\nmemory_limit = 'lots'\n")
    r = rx_env.ctl("search", "x")
    assert r.returncode == 2 and "memory_limit" in r.stderr


def test_auto_start_off_says_how_to_proceed(rx_env: PrivateEnv, tree: Path):
    env = dict(rx_env.env, RAGEX_DAEMON_AUTO_START="false")
    r = rx_env.ctl("search", "retry", cwd=tree, env=env)
    assert r.returncode == 2
    assert "ragexd is not running and auto-start is off" in r.stderr
    assert "--no-daemon" in r.stderr
    r = rx_env.ctl("search", "retry", "--json", cwd=tree, env=env)
    assert json.loads(r.stderr)["error"]["code"] == "worker_unavailable"
    _no_daemon_started(rx_env)


# --- commands that never start ragexd --------------------------------------------------


def test_status_without_ragexd_exits_3(rx_env: PrivateEnv):
    r = rx_env.ctl("status")
    assert r.returncode == 3 and "ragexd is not running" in r.stdout
    r = rx_env.ctl("status", "--json")
    assert r.returncode == 3 and json.loads(r.stdout) == {"daemon": None, "workers": []}
    _no_daemon_started(rx_env)


def test_stale_socket_is_not_a_running_ragexd(rx_env: PrivateEnv):
    """A socket file left by a killed ragexd: nothing listens, so "not running"."""
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(rx_env.socket))
    s.close()
    t0 = time.monotonic()
    r = rx_env.ctl("status")
    assert r.returncode == 3 and time.monotonic() - t0 < 10


def test_stop_and_version_without_ragexd(rx_env: PrivateEnv):
    r = rx_env.ctl("stop", "--all")
    assert r.returncode == 0 and "ragexd is not running" in r.stdout
    r = rx_env.ctl("stop")
    assert r.returncode == 2 and "stop --all" in r.stderr
    r = rx_env.ctl("--version")
    assert r.returncode == 0
    assert r.stdout.splitlines() == [f"ragexctl {cli.__version__}", "ragexd: not running"]
    _no_daemon_started(rx_env)


def test_ls_and_rm_work_without_ragexd(rx_env: PrivateEnv, tree: Path):
    r = rx_env.ctl("ls")
    assert r.returncode == 0 and r.stdout == "no indexed projects\n"
    other = rx_env.base / "other"
    (other / ".git").mkdir(parents=True)
    pid1 = rx_env.fake_index(tree, last_used=time.time() - 60)
    pid2 = rx_env.fake_index(other, last_used=time.time() - 7200)
    r = rx_env.ctl("ls", "--json")
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [p["id"] for p in rows] == [pid1, pid2]  # most recently used first
    assert rows[0]["root"] == os.path.realpath(tree) and rows[0]["size_bytes"] >= 5000
    assert rows[0]["running"] is False
    r = rx_env.ctl("ls")
    assert pid1 in r.stdout and "LAST USED" in r.stdout
    # By id.
    r = rx_env.ctl("rm", pid2)
    assert r.returncode == 0 and "removed the index of" in r.stdout
    assert not (rx_env.data / "projects" / pid2).exists()
    # By path, from a subdirectory of the project.
    r = rx_env.ctl("rm", "--json", str(tree / "shop"))
    assert r.returncode == 0 and json.loads(r.stdout)["removed"] == pid1
    assert not (rx_env.data / "projects" / pid1).exists()
    r = rx_env.ctl("rm", pid1)
    assert r.returncode == 2 and "no indexed project" in r.stderr
    # a path is answered about as given, not as the id it hashes to
    for argv in (("rm", str(tree)), ("logs", str(tree / "shop"))):
        r = rx_env.ctl(*argv)
        assert r.returncode == 2 and r.stderr == (
            f"ragexctl: {os.path.realpath(tree)} has no index (see `ragexctl ls` for "
            "indexed projects)\n"), (argv, r.stderr)
    _no_daemon_started(rx_env)


def test_rm_by_path_of_a_deleted_project(rx_env: PrivateEnv, tree: Path):
    pid = rx_env.fake_index(tree)
    real = os.path.realpath(tree)
    import shutil

    shutil.rmtree(tree)
    # ls says which index lost its project: the one to remove (was: listed like any other)
    listed = rx_env.ctl("ls")
    assert f"{real} (deleted)" in listed.stdout, listed.stdout
    assert json.loads(rx_env.ctl("ls", "--json").stdout)["exists"] is False
    r = rx_env.ctl("rm", real)
    assert r.returncode == 0, r.stderr
    assert not (rx_env.data / "projects" / pid).exists()


def test_logs_without_ragexd(rx_env: PrivateEnv):
    r = rx_env.ctl("logs")
    assert r.returncode == 1 and "no log yet" in r.stderr
    logs = rx_env.state / "logs"
    logs.mkdir(parents=True)
    (logs / "ragexd.log").write_text("".join(f"line {i}\n" for i in range(100)))
    r = rx_env.ctl("logs", "-n", "3")
    assert r.returncode == 0 and r.stdout == "line 97\nline 98\nline 99\n"


def test_logs_follow_prints_appended_lines_until_ctrl_c(rx_env: PrivateEnv):
    logs = rx_env.state / "logs"
    logs.mkdir(parents=True)
    log = logs / "ragexd.log"
    log.write_text("old\n")
    proc = subprocess.Popen([sys.executable, "-m", "ragexctl", "logs", "-f", "-n", "1"],
                            env=rx_env.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=str(rx_env.base), preexec_fn=as_at_a_terminal)
    out = StreamLines(proc.stdout)
    try:
        # The last line comes first, read from the file -f follows: a line appended
        # as soon as it shows is followed (when the tail and the following were two
        # reads, a line written between them was lost).  Each step waits for the
        # client to get there (fixed sleeps were a guess at a loaded machine's pace).
        out.wait_for("old", timeout=60)
        with open(log, "a") as fh:
            fh.write("new 1\nnew 2\n")
        out.wait_for("new 2", timeout=60)
        # Rotation: the file is replaced; -f follows the new one.
        log.rename(logs / "ragexd.log.1")
        log.write_text("rotated\n")
        out.wait_for("rotated", timeout=60)
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    assert out.until_closed(10) == "old\nnew 1\nnew 2\nrotated\n"


def test_a_line_written_while_the_tail_is_shown_is_followed(tmp_path: Path) -> None:
    """``logs -f``: the tail and the following are one read of one open file, so a
    line the log gains at the moment its tail is shown comes next, not lost."""
    log = tmp_path / "w.log"
    log.write_text("one\ntwo\nthree\n")
    got: list[str] = []

    def write(text: str) -> None:
        got.append(text)
        if len(got) == 1:   # the tail is out: the worker writes its next line now
            with open(log, "a") as fh:
                fh.write("four\n")
        elif "four" in "".join(got):
            raise KeyboardInterrupt   # how a person stops following

    with pytest.raises(KeyboardInterrupt):
        logfile.follow(log, write, poll=0.01, lines=2)
    assert "".join(got) == "two\nthree\nfour\n"


def test_missing_plugin_is_a_clear_message(capsys):
    cli.PLUGINS["nosuchplugin"] = "test"
    try:
        assert cli.main(["nosuchplugin", "x"]) == 2
    finally:
        del cli.PLUGINS["nosuchplugin"]
    assert "not available in this installation" in capsys.readouterr().err
