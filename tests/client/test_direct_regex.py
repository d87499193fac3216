"""The client's direct regex path prints what the daemon path prints.

``ragexctl search --mode regex`` (and an ``auto`` query shaped like a pattern)
runs ripgrep from the client (ragexctl/direct.py); ``RAGEX_SEARCH_DIRECT_REGEX=false``
sends the same search through ragexd and a worker.  On a messy real tree (git
and ragex ignore files at two levels, ragex's default excludes, hidden files, a
name that is not UTF-8, binary, oversized and minified files, a symlink out of
the project) every search below must give the same stdout and exit code both
ways, and an error the same sentence.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import PrivateEnv

NEEDLE = "needle_7f3a"


def _messy_tree(root: Path) -> Path:
    def put(rel: str | bytes, data: str | bytes) -> None:
        path = os.path.join(os.fsencode(root), os.fsencode(rel))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)

    (root / ".git").mkdir(parents=True)
    put(".gitignore", "ignored_dir/\n*.log\n!keep.log\n")
    put(".ragexignore", "secret/\n")
    put("src/deep/.gitignore", "*.gen.go\n")
    put("src/deep/skip.gen.go", f"{NEEDLE} generated, ignored by a nested .gitignore\n")
    put("src/app.py", f"def serve():\n    return '{NEEDLE} here'\n\n# {NEEDLE} again\n")
    put("src/util.js", f"const x = '{NEEDLE}';\n")
    put("src/deep/mod.go", f"package deep // {NEEDLE}\n")
    put("README.md", f"the {NEEDLE} is documented here\n")
    put("ignored_dir/x.py", f"{NEEDLE}\n")
    put("debug.log", f"{NEEDLE} in a log\n")
    put("keep.log", "kept_7f3a: a gitignored name that a negation brings back\n")
    put("secret/s.py", f"{NEEDLE} secret\n")
    put(".config/hidden.py", f"{NEEDLE} in a hidden dir\n")
    put(".hidden.py", f"{NEEDLE} in a hidden file\n")
    put("node_modules/m/index.js", f"{NEEDLE}\n")
    put("build/out.py", f"{NEEDLE}\n")
    put("lib/x.min.js", f"{NEEDLE}\n")
    put(".bzr/branch.py", f"{NEEDLE}\n")
    put(b"caf\xe9.py", f"{NEEDLE} in a Latin-1 name\n")
    put("data.bin", b"\x00\x01" + NEEDLE.encode() + b"\x00" * 64)
    put("huge.txt", f"{NEEDLE}\n" + "x" * (1024 * 1024 + 10) + "\n")
    put("bundle.js", f"var a='{NEEDLE}';" + "a" * 30_000 + "\n")
    put("utf8/naïve.py", f"{NEEDLE} non-ASCII name\n")
    put("tools/Makefile", f"all:\n\techo {NEEDLE}\n")       # a language by its file name
    put("src/Legacy.PY", f"{NEEDLE} = 'an upper-case extension'\n")
    os.symlink("/etc", root / "etc_link")
    return root


@pytest.fixture(scope="module")
def env() -> Iterator[PrivateEnv]:
    e = PrivateEnv(TERM="dumb", RAGEX_DAEMON_PRESTART="0", TOKENIZERS_PARALLELISM="false",
                   ANONYMIZED_TELEMETRY="False")
    yield e
    e.cleanup()


@pytest.fixture(scope="module")
def tree(env: PrivateEnv) -> Path:
    return _messy_tree(env.base / "proj")


def _both(env: PrivateEnv, args: list[str], cwd: Path, *, fallback: bool = False) -> tuple:
    """The search by the direct path, then by the daemon path.  The direct leg
    cannot reach ragexd (another runtime dir, no auto-start): had it fallen back
    silently, it would fail instead of agreeing by accident."""
    alone = {} if fallback else {"RAGEX_RUNTIME_DIR": str(env.base / "run-direct"),
                                 "RAGEX_DAEMON_AUTO_START": "false"}
    direct = env.ctl("search", *args, cwd=cwd, env={**env.env, **alone})
    daemon = env.ctl("search", *args, cwd=cwd,
                     env={**env.env, "RAGEX_SEARCH_DIRECT_REGEX": "false"})
    return direct, daemon


def test_a_regex_search_answers_without_starting_ragexd(env: PrivateEnv, tree: Path) -> None:
    r = env.ctl("search", "--mode", "regex", NEEDLE, "-t", "go", cwd=tree)
    assert r.returncode == 0, r.stderr
    # skip.gen.go is ignored by src/deep/.gitignore
    assert r.stdout.splitlines() == [f"src/deep/mod.go:1:package deep // {NEEDLE}"]
    r = env.ctl("search", f"{NEEDLE}.*here", "--color", "always", cwd=tree / "src")  # auto
    assert r.returncode == 0, r.stderr
    assert r.stdout == (f"\x1b[35m../README.md\x1b[0m:\x1b[32m1\x1b[0m:the {NEEDLE} is "
                        "documented here\n"
                        f"\x1b[35mapp.py\x1b[0m:\x1b[32m2\x1b[0m:    return '{NEEDLE} here'\n")
    assert not env.socket.exists(), "the direct path must not need ragexd"


CASES = [
    ["--mode", "regex", NEEDLE],
    [f"{NEEDLE}.*here"],
    [rf"{NEEDLE}\b", "-n", "3"],
    ["--mode", "regex", NEEDLE, "-t", "py"],
    ["--mode", "regex", NEEDLE, "--lang=js", "--lang", "go"],
    ["--mode", "regex", NEEDLE, "-t", "markdown", "-t", "text"],
    ["--mode", "regex", "--color", "always", "-e", NEEDLE],
    ["--mode", "regex", "zzqq_never_there_9"],
    ["--mode=regex", "-n", "1000", "^[^k]"],   # every line but keep.log's (handed over)
    ["--mode", "regex", "-n", "100", NEEDLE, "--keep-indexing", "--no-daemon"],
    ["--mode", "regex", NEEDLE, "-C", "1"],                       # grep-style groups
    ["--mode", "regex", NEEDLE, "-C", "3", "-A", "0", "--color", "always", "-n", "20"],
    ["--mode", "regex", "return", "--before-context=2", "--after-context", "1"],
    ["--mode", "regex", NEEDLE, "-t", "make"],                    # Makefile: a file name
    ["--mode", "regex", NEEDLE, "--lang", "PY", "-t", "cpp"],     # an alias in capitals
    [f"{NEEDLE}\\b", "--lang=python", "-C", "2", "-n", "2"],     # auto, capped, context
]


@pytest.mark.parametrize("args", CASES, ids=[" ".join(a) for a in CASES])
def test_direct_and_daemon_paths_print_the_same(env: PrivateEnv, tree: Path,
                                                args: list[str]) -> None:
    direct, daemon = _both(env, args, tree)
    assert daemon.returncode in (0, 1), daemon.stderr
    assert (direct.returncode, direct.stdout) == (daemon.returncode, daemon.stdout)


#: Any --path: ripgrep's -g overrides ignore rules and a named path is searched even
#: when ignored, so the client hands these to the worker (and its matcher).
HANDED_OVER = [
    ["--mode", "regex", NEEDLE, "-g", "*.log"],           # debug.log is gitignored
    ["--mode", "regex", NEEDLE, "--path", "ignored_dir"],
    ["--mode", "regex", NEEDLE, "-g", "src/**"],
    ["--mode", "regex", NEEDLE, "-g", "*.py", "-g", "!src/"],
    ["--mode", "regex", NEEDLE, "--path=!*.py", "-g", "!utf8/", "-n", "50"],
    # a .gitignore negation meets the root's .ragexignore: ragex's precedence, not rg's
    ["--mode", "regex", "kept_7f3a"],
]


@pytest.mark.parametrize("args", HANDED_OVER, ids=[" ".join(a) for a in HANDED_OVER])
def test_a_path_filter_the_worker_must_judge_gives_the_same_answer(
        env: PrivateEnv, tree: Path, args: list[str]) -> None:
    direct, daemon = _both(env, args, tree, fallback=True)
    assert daemon.returncode in (0, 1), daemon.stderr
    assert "debug.log" not in direct.stdout and "ignored_dir" not in direct.stdout
    assert (direct.returncode, direct.stdout) == (daemon.returncode, daemon.stdout)


def test_paths_are_relative_to_a_subdirectory_both_ways(env: PrivateEnv, tree: Path) -> None:
    direct, daemon = _both(env, ["--mode", "regex", NEEDLE], tree / "src" / "deep")
    assert direct.returncode == 0
    assert "mod.go:1:" in direct.stdout and "../app.py:2:" in direct.stdout
    assert (direct.returncode, direct.stdout) == (daemon.returncode, daemon.stdout)


def test_project_flag_is_honoured_both_ways(env: PrivateEnv, tree: Path) -> None:
    direct, daemon = _both(env, ["--mode", "regex", NEEDLE, "--project", str(tree)], env.base)
    assert direct.returncode == 0 and direct.stdout
    assert (direct.returncode, direct.stdout) == (daemon.returncode, daemon.stdout)


def test_an_invalid_regex_is_exit_2_with_the_same_sentence(env: PrivateEnv, tree: Path) -> None:
    direct, daemon = _both(env, ["--mode", "regex", f"{NEEDLE}("], tree)
    assert direct.returncode == daemon.returncode == 2
    assert direct.stdout == daemon.stdout == ""
    assert direct.stderr.startswith("ragexctl: invalid regular expression: ")
    assert "Traceback" not in direct.stderr
    # the daemon path may first report the index it started (progress lines)
    assert daemon.stderr.endswith(direct.stderr)


def test_an_empty_regex_answer_names_the_files_too_large_to_search_both_ways(
        env: PrivateEnv, tree: Path) -> None:
    """ripgrep skips huge.txt (over 1 MiB) without a word: the direct path said
    nothing and exited 1, though it may hold the pattern.  It now says so in one
    line, the one a worker's empty regex answer says (ripgrep.left_out)."""
    args = ["--mode", "regex", "zzqq_never_there_9"]
    direct, daemon = _both(env, args, tree)
    assert direct.returncode == daemon.returncode == 1 and direct.stdout == ""
    size = (tree / "huge.txt").stat().st_size
    said = ("ragexctl: note: 1 file of the project is not searched and may hold it "
            f"(huge.txt: larger than {1024 * 1024} bytes ({size}))")
    assert direct.stderr == said + "\n", direct.stderr
    # a worker asks ripgrep too: the index's count also held caf\xe9.py (a name
    # that is not UTF-8: not indexed, but read by ripgrep) and the symlink out
    assert daemon.stderr.endswith(said + "\n"), daemon.stderr
    # only what is left out of this search: a language whose files are all small
    quiet = env.ctl("search", "--mode", "regex", "zzqq_never_there_9", "-t", "go", cwd=tree)
    assert (quiet.returncode, quiet.stderr) == (1, "")


@pytest.mark.parametrize("holder", [".gitignore", ".ignore", ".rgignore"])
def test_ragexignore_beats_an_ignore_file_negation_by_falling_back(
        env: PrivateEnv, tree: Path, holder: str) -> None:
    """ragex reads .ragexignore after .gitignore, .ignore and .rgignore (it wins);
    ripgrep ranks an --ignore-file below all three, so a `!name` negation in one
    would win in rg over the root's .ragexignore. The client sees the negation on
    the hit's way and hands the search over."""
    rules, negations = tree / ".ragexignore", tree / holder
    before = rules.read_text()
    held = negations.read_text() if negations.exists() else None
    rules.write_text(before + "dotneg_*.txt\n")
    negations.write_text((held or "") + "!dotneg_keep.txt\n")
    (tree / "dotneg_keep.txt").write_text("kept_9c1e: re-included by a negation\n")
    try:
        direct, daemon = _both(env, ["--mode", "regex", "kept_9c1e|" + NEEDLE, "-n", "50"],
                               tree, fallback=True)
        assert "dotneg_keep.txt" not in direct.stdout and "README.md" in direct.stdout
        assert (direct.returncode, direct.stdout) == (daemon.returncode, daemon.stdout)
    finally:
        rules.write_text(before)
        if held is None:
            negations.unlink()
        else:
            negations.write_text(held)
        (tree / "dotneg_keep.txt").unlink()


def test_a_nested_ragexignore_is_obeyed_by_falling_back(env: PrivateEnv, tree: Path) -> None:
    """ripgrep cannot read a .ragexignore below the root: the client hands the
    search to the worker, whose matcher applies it."""
    pkg = tree / "pkg"
    pkg.mkdir()
    (pkg / ".ragexignore").write_text("gen_*.py\n")
    (pkg / "gen_a.py").write_text(f"{NEEDLE} generated\n")
    (pkg / "real.py").write_text(f"{NEEDLE} real\n")
    try:
        direct, daemon = _both(env, ["--mode", "regex", NEEDLE, "-n", "50"], tree,
                               fallback=True)
        assert f"pkg/real.py:1:{NEEDLE} real\n" in direct.stdout
        assert "gen_a.py" not in direct.stdout
        assert (direct.returncode, direct.stdout) == (daemon.returncode, daemon.stdout)
    finally:
        for p in (pkg / ".ragexignore", pkg / "gen_a.py", pkg / "real.py"):
            p.unlink()
        pkg.rmdir()


@pytest.mark.parametrize("vault", ["vault", b"v\xe9ult"], ids=["utf8", "latin1"])
def test_a_name_with_a_newline_never_slips_past_a_nested_ragexignore(
        env: PrivateEnv, tree: Path, vault: str | bytes) -> None:
    """rg's ``path NUL line:text`` record splits at a newline in a name: read
    naively, ``vault/x<newline>token.py`` became ``token.py`` and its
    ``.ragexignore`` was never asked.  A directory named ``a<newline>..`` became
    ``../notes.txt``.  And a directory whose name is not UTF-8 was asked about by
    its display name (``\\xe9``), so its ``.ragexignore`` was not found."""
    top = os.path.join(os.fsencode(tree), os.fsencode(vault))
    os.mkdir(top)
    odd = tree / "a\n.."
    odd.mkdir()
    try:
        with open(os.path.join(top, b".ragexignore"), "w") as fh:
            fh.write("*\n")
        for name in (b"x\ntoken.py", b"plain.py"):
            with open(os.path.join(top, name), "w") as fh:
                fh.write("hunter2_7f3a = 1\n")
        (odd / "notes.txt").write_text("hunter2_7f3a in notes\n")
        direct, daemon = _both(env, ["--mode", "regex", "hunter2_7f3a"], tree, fallback=True)
        assert "token.py" not in direct.stdout and "plain.py" not in direct.stdout
        assert "a\\x0a../notes.txt:1:hunter2_7f3a in notes" in direct.stdout   # not "../"
        assert (direct.returncode, direct.stdout) == (daemon.returncode, daemon.stdout)
    finally:
        for name in os.listdir(top):
            os.unlink(os.path.join(top, name))
        os.rmdir(top)
        (odd / "notes.txt").unlink()
        odd.rmdir()


@pytest.mark.parametrize("closed", ["<&-", ">&-", "2>&-"])
def test_a_closed_standard_stream_is_answered_at_once_without_a_traceback(
        env: PrivateEnv, tree: Path, closed: str) -> None:
    """Started with stdin closed, rg was told ``--ignore-file /dev/fd/0`` and read
    /dev/null there (every default ignore lost); with stdout or stderr closed its
    output pipe landed on the fd its own stdout replaced, so it hung until the
    10 s timeout, then ``sys.stdout`` (None) raised.  The direct leg cannot reach
    ragexd: exit 0 means the client answered it itself."""
    import shlex
    import subprocess
    import sys
    import time

    cmd = shlex.join([sys.executable, "-m", "ragexctl", "search", "--mode", "regex", NEEDLE])
    started = time.monotonic()
    proc = subprocess.run(["sh", "-c", f"exec {cmd} {closed}"], cwd=tree, capture_output=True,
                          text=True, timeout=60,
                          env={**env.env, "RAGEX_RUNTIME_DIR": str(env.base / "run-direct"),
                               "RAGEX_DAEMON_AUTO_START": "false"})
    assert time.monotonic() - started < 8
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.returncode == 0, proc.stderr
    if closed != ">&-":
        assert "src/app.py:2:" in proc.stdout
        assert "build/out.py" not in proc.stdout and "node_modules" not in proc.stdout


# --- what the direct path leaves to the daemon path (decided in-process, no ragexd) ---


@pytest.fixture
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("RAGEX_RUNTIME", "RAGEX_DAEMON_RUNTIME", "RAGEX_SEARCH_DIRECT_REGEX"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RAGEX_RUNTIME", "process")
    for var, sub in (("RAGEX_DATA_DIR", "data"), ("RAGEX_STATE_DIR", "state"),
                     ("RAGEX_CONFIG_DIR", "config"), ("RAGEX_RUNTIME_DIR", "run")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    proj = tmp_path / "proj"
    (proj / ".git").mkdir(parents=True)
    (proj / "a.py").write_text("needle = 1\n")
    monkeypatch.chdir(proj)
    return proj


def _plan(argv: list[str]):  # type: ignore[no-untyped-def]
    from ragexctl import direct

    req = direct.parse(["search", *argv])
    return None if req is None else direct.plan(req)


def test_the_direct_path_serves_plain_regex_and_pattern_shaped_auto(private_dirs: Path) -> None:
    for argv in (["--mode", "regex", "needle"], ["nee+dle"], ["-e", "-x", "--mode=regex"],
                 ["--mode", "regex", "--", "--pre=sh"], ["-t", "py", "need.*"]):
        planned = _plan(argv)
        assert planned is not None, argv
        assert planned[2] == str(private_dirs)


@pytest.mark.parametrize("argv", [
    ["--json", "--mode", "regex", "needle"],          # hits carry the index's enclosing names
    ["--mode", "regex", "needle", "--timeout", "5"],
    ["--mode", "regex", "needle", "--max-count", "2"],  # a flag it does not know
    ["--mod", "regex", "needle"],                     # an abbreviation argparse would take
    ["--mode", "semantic", "needle"],
    ["parse the config file"],                        # auto: a question, searched by meaning
    ["parse_config"],                                 # auto: a symbol
    ["--mode", "regex", "needle", "-t", "klingon"],   # the CLI words the error
    ["--mode", "regex", "needle", "-g", "../elsewhere"],
    ["--mode", "regex", "needle", "-g", "*.py"],           # the worker's matcher decides
    ["--mode", "regex", "needle", "-n", "0"],
    ["--mode", "regex", "needle", "-C", "100000"],          # the CLI's sentence says why
    ["--mode", "regex", "needle", "-A", "two"],
    ["--mode", "regex", ""],
    ["--mode", "regex", "needle", "--project", "/no/such/dir"],
], ids=lambda a: " ".join(a))
def test_what_the_direct_path_hands_to_the_daemon_path(private_dirs: Path,
                                                        argv: list[str]) -> None:
    assert _plan(argv) is None


def test_a_root_below_its_checkouts_top_with_a_gitignore_between_goes_to_the_worker(
        private_dirs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ripgrep reads no ignore file above the root (`--no-ignore-parent`), so the
    monorepo's .gitignore above a `.ragexroot` subproject is the worker's to apply."""
    sub = private_dirs / "svc"
    sub.mkdir()
    (sub / ".ragexroot").touch()
    monkeypatch.chdir(sub)
    assert _plan(["--mode", "regex", "needle"]) is not None
    (private_dirs / ".gitignore").write_text("/svc/generated/\n")
    assert _plan(["--mode", "regex", "needle"]) is None


def test_a_global_excludes_file_rg_cannot_find_sends_the_search_to_the_worker(
        private_dirs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """rg finds core.excludesFile in ~/.gitconfig, but not through include.path nor
    in $GIT_CONFIG_GLOBAL's file: a direct search listed files git (and the index)
    leave out.  Those configurations go to the worker, whose rules ask git."""
    home = private_dirs.parent / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("GIT_CONFIG_GLOBAL", raising=False)
    (home / "excludes").write_text("a.py\n")
    (home / ".gitconfig").write_text(f"[core]\n\texcludesFile = {home}/excludes\n")
    assert _plan(["--mode", "regex", "needle"]) is not None   # rg reads this one itself
    (home / "dots.cfg").write_text(f"[core]\n\texcludesFile = {home}/excludes\n")
    (home / ".gitconfig").write_text(f"[include]\n\tpath = {home}/dots.cfg\n")
    assert _plan(["--mode", "regex", "needle"]) is None
    (home / ".gitconfig").unlink()
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / "dots.cfg"))
    assert _plan(["--mode", "regex", "needle"]) is None


@pytest.mark.parametrize("setting", [{"RAGEX_SEARCH_DIRECT_REGEX": "false"},
                                     {"RAGEX_RUNTIME": "docker"}], ids=str)
def test_settings_that_force_the_daemon_path(private_dirs: Path, monkeypatch: pytest.MonkeyPatch,
                                             setting: dict[str, str]) -> None:
    assert _plan(["--mode", "regex", "needle"]) is not None
    for var, value in setting.items():
        monkeypatch.setenv(var, value)
    assert _plan(["--mode", "regex", "needle"]) is None


def _record(private_dirs: Path, text: str | None) -> Path:
    """What a running ragexd says it chose; returns the runtime dir."""
    run = private_dirs.parent / "run"
    run.mkdir(mode=0o700, exist_ok=True)
    record = run / "ragexd.runtime"
    if text is None:
        record.unlink(missing_ok=True)
    else:
        record.write_text(text)
    return run


def test_the_runtime_record_counts_only_when_the_running_ragexd_vouches_for_it(
        private_dirs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto`` may resolve to Docker, whose worker sees the tree elsewhere (and
    without the user's global git excludes): the client follows what the
    running ragexd chose, and with none running leaves the choice to it.  The
    record is believed only from the process holding ragexd's lock, whose pid
    the pid file names: a pid alone may be anyone's by now."""
    from ragexd.pidlock import InstanceLock

    monkeypatch.setenv("RAGEX_RUNTIME", "auto")
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    me = os.getpid()
    run = _record(private_dirs, None)
    lock = InstanceLock(run / "ragexd.pid")
    (run / "ragexd.pid").write_text(f"{me}\n")   # a pid file, but nobody holds its lock
    for record, served in ((None, False),                       # no ragexd: it will decide
                           (f"{me} process\n", False),          # my pid, but no lock held
                           (f"{dead} process\n", False),
                           ("garbage", False)):
        _record(private_dirs, record)
        assert (_plan(["--mode", "regex", "needle"]) is not None) is served, record
    lock.acquire()   # now this process is "the running ragexd"
    try:
        for record, served in ((f"{me} docker\n", False), (f"{me} process\n", True),
                               (f"{dead} process\n", False), ("garbage", False)):
            _record(private_dirs, record)
            assert (_plan(["--mode", "regex", "needle"]) is not None) is served, record
        # The running ragexd's choice beats this client's own setting.
        monkeypatch.setenv("RAGEX_RUNTIME", "process")
        _record(private_dirs, f"{me} docker\n")
        assert _plan(["--mode", "regex", "needle"]) is None
        # A record in a runtime dir others may write to could be planted.
        monkeypatch.setenv("RAGEX_RUNTIME", "auto")
        _record(private_dirs, f"{me} process\n")
        run.chmod(0o777)
        try:
            assert _plan(["--mode", "regex", "needle"]) is None
        finally:
            run.chmod(0o700)
    finally:
        lock.release()
    monkeypatch.setenv("RAGEX_DAEMON_ENABLED", "false")   # one-shot: a local worker
    _record(private_dirs, None)
    assert _plan(["--mode", "regex", "needle"]) is not None


def test_ragexd_records_the_runtime_it_chose_while_it_runs(tmp_path: Path) -> None:
    from tests.harness import RagexInstance

    rx = RagexInstance(tmp_path / "rx")
    try:
        rx.start()
        record = rx.run_dir / "ragexd.runtime"
        pid, name = record.read_text().split()
        assert (int(pid), name) == (rx.pid, "process")
        assert rx.shutdown() == 0
        assert not record.exists()
    finally:
        rx.close()
        rx.cleanup()


def test_an_index_inside_the_project_sends_the_search_to_the_worker(
        private_dirs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker leaves its own index directory out of every search; ripgrep
    from the client could not."""
    monkeypatch.setenv("RAGEX_DATA_DIR", str(private_dirs / "ragex-data"))
    assert _plan(["--mode", "regex", "needle"]) is None


def test_an_index_linked_into_the_project_sends_the_search_to_the_worker(
        private_dirs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The data directory lies outside the project, but this project's index
    entry is a symlink into it: the index is still inside, however cheaply the
    client looks (``direct.index_inside`` skips the root's hash when no entry of
    the projects directory is a symlink)."""
    from ragexctl import direct
    from ragexd import where

    projects = Path(where.projects_dir())
    projects.mkdir(parents=True)
    (projects / "0123456789abcdef").mkdir()               # another project's index
    assert _plan(["--mode", "regex", "needle"]) is not None
    assert not direct.index_inside(str(private_dirs))
    (private_dirs / ".ragex-index").mkdir()
    os.symlink(private_dirs / ".ragex-index",
               projects / where.project_id_for(str(private_dirs)))
    assert direct.index_inside(str(private_dirs))
    assert _plan(["--mode", "regex", "needle"]) is None
    # A project that is itself an index directory: its hash decides, not a prefix.
    inner = projects / "0123456789abcdef"
    assert not direct.index_inside(str(inner))
    os.symlink(inner, projects / where.project_id_for(str(inner)))
    assert direct.index_inside(str(inner))


def test_a_project_without_a_root_marker_goes_to_the_cli(tmp_path: Path,
                                                         private_dirs: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """No VCS root and no marker: the CLI says which root it chose (and may ask
    before indexing a large tree); the direct path does not speak for it."""
    bare = tmp_path / "bare"
    bare.mkdir()
    monkeypatch.chdir(bare)
    assert _plan(["--mode", "regex", "needle"]) is None
