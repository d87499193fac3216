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
    put("src/app.py", f"def serve():\n    return '{NEEDLE} here'\n\n# {NEEDLE} again\n")
    put("src/util.js", f"const x = '{NEEDLE}';\n")
    put("src/deep/mod.go", f"package deep // {NEEDLE}\n")
    put("README.md", f"the {NEEDLE} is documented here\n")
    put("ignored_dir/x.py", f"{NEEDLE}\n")
    put("debug.log", f"{NEEDLE} in a log\n")
    put("keep.log", f"{NEEDLE} kept by a negation\n")
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
    r = env.ctl("search", "--mode", "regex", NEEDLE, "-g", "src/**", cwd=tree)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"src/app.py:2:    return '{NEEDLE} here'",
                                     f"src/app.py:4:# {NEEDLE} again",
                                     f"src/deep/mod.go:1:package deep // {NEEDLE}",
                                     f"src/util.js:1:const x = '{NEEDLE}';"]
    r = env.ctl("search", f"{NEEDLE}.*here", "--color", "always", cwd=tree / "src")  # auto
    assert r.returncode == 0, r.stderr
    assert "\x1b[35mapp.py\x1b[0m:\x1b[32m2\x1b[0m:" in r.stdout
    assert not env.socket.exists(), "the direct path must not need ragexd"


CASES = [
    ["--mode", "regex", NEEDLE],
    [f"{NEEDLE}.*here"],
    [rf"{NEEDLE}\b", "-n", "3"],
    ["--mode", "regex", NEEDLE, "-g", "src/**"],
    ["--mode", "regex", NEEDLE, "-g", "*.py", "-g", "!src/"],
    ["--mode", "regex", NEEDLE, "--path", "src"],
    ["--mode", "regex", NEEDLE, "-t", "py"],
    ["--mode", "regex", NEEDLE, "--lang=js", "--lang", "go"],
    ["--mode", "regex", NEEDLE, "-t", "markdown", "-g", "*.md"],
    ["--mode", "regex", "--color", "always", "-e", NEEDLE],
    ["--mode", "regex", "zzqq_never_there_9"],
    ["--mode=regex", "-n", "1000", "^"],
    ["--mode", "regex", "-n", "100", NEEDLE, "--keep-indexing", "--no-daemon"],
]


@pytest.mark.parametrize("args", CASES, ids=[" ".join(a) for a in CASES])
def test_direct_and_daemon_paths_print_the_same(env: PrivateEnv, tree: Path,
                                                args: list[str]) -> None:
    direct, daemon = _both(env, args, tree)
    assert daemon.returncode in (0, 1), daemon.stderr
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


def test_a_nested_ragexignore_is_obeyed_by_falling_back(env: PrivateEnv, tree: Path) -> None:
    """ripgrep cannot read a .ragexignore below the root: the client hands the
    search to the worker, whose matcher applies it."""
    pkg = tree / "pkg"
    pkg.mkdir()
    (pkg / ".ragexignore").write_text("gen_*.py\n")
    (pkg / "gen_a.py").write_text(f"{NEEDLE} generated\n")
    (pkg / "real.py").write_text(f"{NEEDLE} real\n")
    try:
        direct, daemon = _both(env, ["--mode", "regex", NEEDLE, "-g", "pkg/**"], tree,
                               fallback=True)
        assert direct.stdout == f"pkg/real.py:1:{NEEDLE} real\n"
        assert (direct.returncode, direct.stdout) == (daemon.returncode, daemon.stdout)
    finally:
        for p in (pkg / ".ragexignore", pkg / "gen_a.py", pkg / "real.py"):
            p.unlink()
        pkg.rmdir()
