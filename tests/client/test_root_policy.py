"""The project-root policy (issue #13): which directory is the project, said out
loud when it is not obvious, and refused when indexing it would be an accident.

The policy is pure functions in ``ragexd.paths``; the last tests run the real
client to show that a refusal comes before anything starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ragexd import paths

from tests.harness import PrivateEnv


@pytest.fixture
def dirs(rx_env: PrivateEnv, monkeypatch: pytest.MonkeyPatch) -> PrivateEnv:
    for key in ("HOME", "RAGEX_RUNTIME_DIR", "RAGEX_DATA_DIR", "RAGEX_STATE_DIR",
                "RAGEX_CONFIG_DIR"):
        monkeypatch.setenv(key, rx_env.env[key])
    return rx_env


def test_the_nearest_vcs_root_or_ragexroot_is_the_project(dirs: PrivateEnv) -> None:
    repo = dirs.base / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "src" / "inner").mkdir(parents=True)
    assert paths.choose_project_root(repo / "src" / "inner") == paths.RootChoice(repo, "vcs")
    (repo / "src" / paths.ROOT_MARKER).touch()
    assert paths.choose_project_root(repo / "src" / "inner") == \
        paths.RootChoice(repo / "src", "marker")
    hg = dirs.base / "hg"
    (hg / ".hg").mkdir(parents=True)
    assert paths.choose_project_root(hg).how == "vcs"


def test_without_a_vcs_root_the_choice_is_said_out_loud(dirs: PrivateEnv) -> None:
    plain = dirs.base / "plain" / "sub"
    plain.mkdir(parents=True)
    choice = paths.choose_project_root(plain)
    assert (choice.root, choice.how, choice.refusal) == (plain, "cwd", None)
    assert str(plain) in (choice.sentence or "") and paths.ROOT_MARKER in choice.sentence


def test_a_subdirectory_of_an_indexed_project_uses_that_project(dirs: PrivateEnv) -> None:
    parent = dirs.base / "notes"
    (parent / "2026" / "march").mkdir(parents=True)
    paths.ProjectRecord.touch(parent)  # what indexing it left behind
    choice = paths.choose_project_root(parent / "2026" / "march")
    assert (choice.root, choice.how) == (parent, "index")


@pytest.mark.parametrize("where", ["root", "home", "data", "state", "runtime", "config"])
def test_root_home_and_ragex_own_directories_are_refused_unless_asked(
        dirs: PrivateEnv, where: str) -> None:
    place = {"root": Path("/"), "home": Path(dirs.env["HOME"]),
             "data": paths.projects_dir() / "0123456789abcdef", "state": paths.log_dir(),
             "runtime": paths.runtime_dir(), "config": paths.config_dir()}[where]
    place.mkdir(parents=True, exist_ok=True)
    choice = paths.choose_project_root(place)
    assert choice.refusal and "--project PATH" in choice.refusal, choice
    assert paths.choose_project_root(place, explicit=True).refusal is None
    if where == "home":  # a .ragexroot marker is asking too
        (place / paths.ROOT_MARKER).touch()
        assert paths.choose_project_root(place) == paths.RootChoice(place, "marker")


def test_a_dotfiles_repository_in_home_is_still_refused_without_asking(dirs: PrivateEnv) -> None:
    home = Path(dirs.env["HOME"])
    (home / ".git").mkdir()
    (home / "Downloads").mkdir()
    assert paths.choose_project_root(home / "Downloads").refusal


def test_a_large_tree_nobody_called_a_project_needs_a_yes(dirs: PrivateEnv) -> None:
    big = dirs.base / "big"
    (big / "node_modules").mkdir(parents=True)
    for i in range(60):
        (big / f"f{i}.txt").touch()
        (big / "node_modules" / f"n{i}.js").touch()  # not counted
    choice = paths.choose_project_root(big)
    assert paths.large_tree_refusal(choice, limit=100) is None
    assert "more than 50 files" in (paths.large_tree_refusal(choice, limit=50) or "")
    (big / ".git").mkdir()  # a repository is a project, whatever its size
    assert paths.large_tree_refusal(paths.choose_project_root(big), limit=50) is None


def test_searching_from_home_is_refused_before_anything_starts(rx_env: PrivateEnv) -> None:
    home = Path(rx_env.env["HOME"])
    (home / "notes.txt").write_text("find me\n")
    res = rx_env.ctl("search", "find me", cwd=home, timeout=60)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "your home directory" in res.stderr and "--project PATH" in res.stderr
    assert not rx_env.socket.exists(), "ragexd was started for a refused root"
    assert not rx_env.data.exists() or not any((rx_env.data / "projects").glob("*"))


def test_a_large_tree_without_a_terminal_is_refused_with_the_way_out(rx_env: PrivateEnv) -> None:
    big = rx_env.base / "downloads"
    big.mkdir()
    for i in range(paths.LARGE_TREE_FILES + 1):
        os.close(os.open(big / f"f{i}", os.O_CREAT | os.O_WRONLY, 0o644))
    res = rx_env.ctl("search", "anything", cwd=big, timeout=60)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "more than 20,000 files" in res.stderr and "ragexctl index PATH" in res.stderr
    assert f"using it as the project root" in res.stderr  # which root, said out loud
    assert not rx_env.socket.exists()


def test_a_file_in_no_project_makes_its_directory_neither_explicit_nor_silent(
        dirs: PrivateEnv) -> None:
    home = Path(dirs.env["HOME"])
    notes = home / "notes.txt"
    notes.write_text("todo\n")
    refused = paths.choose_project_root(notes, explicit=True)
    assert refused.refusal and "your home directory" in refused.refusal, refused
    loose = dirs.base / "loose"
    loose.mkdir()
    (loose / "script.py").write_text("print(1)\n")
    choice = paths.choose_project_root(loose / "script.py", explicit=True)
    assert (choice.root, choice.how) == (loose, "cwd")
    assert str(loose) in (choice.sentence or "")
    (loose / paths.ROOT_MARKER).touch()  # a file inside a project: that project, silently
    assert paths.choose_project_root(loose / "script.py", explicit=True) == \
        paths.RootChoice(loose, "marker")


def test_indexing_a_file_in_home_is_refused_before_anything_starts(rx_env: PrivateEnv) -> None:
    """`ragexctl index ~/notes.txt` named a file: indexing all of home for it
    would be the accident the home rule exists to prevent."""
    home = Path(rx_env.env["HOME"])
    (home / "notes.txt").write_text("find me\n")
    for argv in (("index", str(home / "notes.txt")),
                 ("search", "--project", str(home / "notes.txt"), "find me")):
        res = rx_env.ctl(*argv, cwd=rx_env.base, timeout=60)
        assert res.returncode == 2, (argv, res.stdout, res.stderr)
        assert "your home directory" in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert not rx_env.socket.exists(), "ragexd was started for a refused root"


def test_a_bare_repository_is_refused_before_anything_starts(rx_env: PrivateEnv) -> None:
    """A bare repository has no files to search, only git's own: `ragexctl index`
    there indexed its packed objects ("binary file" each) and hook samples, and a
    search from its hooks/ answered from them.  Refused like home, unless asked."""
    bare = rx_env.base / "shop.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    for argv, cwd in ((("index",), bare), (("search", "--mode", "regex", "exec"), bare / "hooks"),
                      (("search", "what runs before a commit"), bare / "hooks")):
        res = rx_env.ctl(*argv, cwd=cwd, timeout=60)
        assert res.returncode == 2, (argv, res.stdout, res.stderr)
        assert "bare git repository" in res.stderr and "Traceback" not in res.stderr, res.stderr
        assert not res.stdout.strip(), res.stdout
    assert not rx_env.socket.exists(), "ragexd was started for a bare repository"
    # a checkout's own .git directory still means its checkout
    checkout = rx_env.base / "shop"
    subprocess.run(["git", "clone", "-q", str(bare), str(checkout)], check=True,
                   capture_output=True)
    assert paths.choose_project_root(checkout / ".git").root == checkout.resolve()


def test_a_worktree_inside_a_bare_repository_is_its_own_project(dirs: PrivateEnv) -> None:
    """`git clone --bare URL shop.git; cd shop.git; git worktree add main` puts a
    checkout inside the bare repository; it is a project like any checkout, not
    "inside the bare git repository" (refused until the walk stopped at a `.git`)."""
    src = dirs.base / "src"
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(src)], check=True)
    (src / "a.py").write_text("def f():\n    return 1\n")
    subprocess.run([*git, "-C", str(src), "add", "."], check=True)
    subprocess.run([*git, "-C", str(src), "commit", "-qm", "one"], check=True)
    bare = dirs.base / "shop.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(src), str(bare)], check=True)
    subprocess.run([*git, "-C", str(bare), "worktree", "add", "-q", "main"], check=True,
                   capture_output=True)
    main = (bare / "main").resolve()
    assert (main / "a.py").is_file()
    assert paths.choose_project_root(main) == paths.RootChoice(main, "vcs")
    # the bare repository itself is still refused
    assert "bare git repository" in (paths.choose_project_root(bare).refusal or "")
    # a checkout whose own files look like a git directory is a checkout
    (main / "objects").mkdir()
    (main / "refs").mkdir()
    (main / "HEAD").write_text("ref: refs/heads/main\n")
    assert paths.choose_project_root(main) == paths.RootChoice(main, "vcs")


@pytest.mark.parametrize("argv", [
    ("search", "--project", "", "find me"), ("search", "--mode", "regex", "--project", "", "find"),
    ("index", ""), ("index", "--export", ""), ("import", "", "--project", "."),
    ("similar", ""), ("stop", ""), ("rm", ""), ("logs", " ")])
def test_an_empty_path_is_refused_never_read_as_the_current_directory(
        rx_env: PrivateEnv, argv: tuple[str, ...]) -> None:
    """`--project "$DIR"` with DIR unset must not index or search wherever the user
    stands (here a project with a marker, which the direct regex path would serve)."""
    here = rx_env.base / "here"
    here.mkdir()
    (here / paths.ROOT_MARKER).touch()
    (here / "notes.py").write_text("find_me = 1\n")
    res = rx_env.ctl(*argv, cwd=here, timeout=60)
    assert res.returncode == 2, (argv, res.stdout, res.stderr)
    assert "an empty path was given" in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert not res.stdout.strip(), res.stdout
    assert not rx_env.socket.exists(), "ragexd was started for an empty path"


@pytest.mark.parametrize("argv", [("similar", b"caf\xe9.py:1"),
                                  ("search", "--project", b"/nowhere/caf\xe9", "find me")])
def test_a_missing_path_that_is_not_utf8_is_named_with_escapes(
        rx_env: PrivateEnv, argv: tuple[str | bytes, ...]) -> None:
    """The sentence named the path as Python decoded it: "no such file: caf\udce9.py",
    a lone surrogate no file name holds, where every other sink shows `\xe9`."""
    res = rx_env.ctl(*(os.fsdecode(a) for a in argv), cwd=rx_env.base, timeout=60)
    assert res.returncode == 2, (argv, res.stdout, res.stderr)
    assert "caf\\xe9" in res.stderr and "udce9" not in res.stderr, res.stderr


def test_a_project_whose_path_is_not_utf8_is_refused_in_one_sentence_naming_it(
        rx_env: PrivateEnv) -> None:
    """A directory named in Latin-1 (`caf\\xe9`) is a legal Linux path, but projects
    travel as UTF-8 text: every command got "'project' is not valid Unicode text (it
    holds a lone surrogate)", naming a field the user never typed.  Now one sentence
    names the directory and the fix, before ragexd starts; the direct regex path,
    which needs no project name, still answers."""
    here = rx_env.base / os.fsdecode(b"caf\xe9")
    (here / ".git").mkdir(parents=True)
    (here / "g.py").write_text("def gamma_fn():\n    return 3\n")
    for argv in (("search", "--mode", "symbol", "gamma_fn"), ("search", "return three"),
                 ("search", "--json", "--mode", "regex", "gamma"), ("index",),
                 ("similar", "g.py:1"), ("start", ".")):
        res = rx_env.ctl(*argv, cwd=here, timeout=60)
        assert res.returncode == 2, (argv, res.stdout, res.stderr)
        said = json.loads(res.stderr)["error"]["message"] if "--json" in argv else res.stderr
        assert "caf\\xe9: its path is not valid UTF-8" in said, (argv, res.stderr)
        assert "surrogate" not in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert not rx_env.socket.exists(), "ragexd was started for a root it cannot serve"
    direct = PrivateEnv(TERM="dumb")   # the client's own ripgrep: no project name needed
    try:
        res = direct.ctl("search", "--mode", "regex", "gamma_fn", cwd=here, timeout=60)
        assert res.returncode == 0 and res.stdout == "g.py:1:def gamma_fn():\n", res
    finally:
        direct.cleanup()


def _in_a_deleted_directory(env: PrivateEnv, *args: str) -> subprocess.CompletedProcess[str]:
    """``ragexctl ARGS`` from a directory removed after the shell entered it."""
    gone = env.base / "gone"
    return subprocess.run(
        ["sh", "-c", 'mkdir -p "$1" && cd "$1" && rmdir "$1" && shift && exec "$@"', "sh",
         str(gone), sys.executable, "-m", "ragexctl", *args],
        env=env.env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("argv", [
    ("search", "find me"), ("search", "--mode", "regex", "find_me"), ("index",),
    ("index", "--export", "snap.tar.gz", "{project}"), ("start", "."),
    ("rm", "."), ("logs", "."), ("mcp",)])
def test_a_deleted_current_directory_is_one_sentence_never_a_traceback(
        rx_env: PrivateEnv, argv: tuple[str, ...]) -> None:
    """A shell whose directory was removed under it (a checkout that deleted it, an
    `rm -rf` from another terminal): every command that reads the current
    directory raised FileNotFoundError, a traceback and exit 1."""
    project = rx_env.base / "proj"
    (project / ".git").mkdir(parents=True)
    (project / "notes.py").write_text("find_me = 1\n")
    res = _in_a_deleted_directory(rx_env, *[a.replace("{project}", str(project)) for a in argv])
    assert res.returncode == 2, (argv, res.stdout, res.stderr)
    assert "the current directory no longer exists" in res.stderr, (argv, res.stderr)
    assert "Traceback" not in res.stderr and len(res.stderr.splitlines()) == 1, res.stderr
    assert not res.stdout, res.stdout
    # a command given an absolute path does not need it
    ok = _in_a_deleted_directory(rx_env, "search", "--mode", "regex", "--project", str(project),
                                 "find_me")
    assert ok.returncode == 0 and ok.stdout == "notes.py:1:find_me = 1\n", ok
