"""Which files get indexed: ignore files at every level, defaults, odd files."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from ragexd.engine import discovery
from ragexd.engine.discovery import IgnoreRules, walk


def make(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)


def rels(root: Path) -> set[str]:
    files, _ = walk(root, IgnoreRules(root))
    return {f.rel for f in files}


def test_nested_gitignore_and_ragexignore(tmp_path: Path) -> None:
    make(tmp_path, {
        ".gitignore": "*.log\n/generated/\n",
        ".ragexignore": "secret*.py\n",
        "a.py": "x = 1\n", "a.log": "log\n", "generated/g.py": "g\n",
        "sub/generated/kept.py": "k\n",          # /generated/ is anchored to the root
        "sub/.gitignore": "local.py\n!keep.log\n",
        "sub/local.py": "l\n", "sub/keep.log": "kept by negation\n", "sub/ok.py": "o\n",
        "sub/deeper/local.py": "also ignored: no slash means any depth below sub/\n",
        "sub/deeper/.ragexignore": "*.txt\n",
        "sub/deeper/notes.txt": "n\n", "sub/notes.txt": "kept: rule lives in deeper/\n",
        "secret_keys.py": "s\n", "sub/secret2.py": "s\n",
    })
    assert rels(tmp_path) == {
        ".gitignore", ".ragexignore", "a.py", "sub/.gitignore", "sub/generated/kept.py",
        "sub/keep.log", "sub/ok.py", "sub/deeper/.ragexignore", "sub/notes.txt"}
    rules = IgnoreRules(tmp_path)
    assert rules.is_ignored("sub/deeper/notes.txt")
    assert rules.is_ignored("generated/g.py")
    assert not rules.is_ignored("sub/keep.log")


def test_ragexignore_overrides_gitignore_in_same_dir(tmp_path: Path) -> None:
    make(tmp_path, {".gitignore": "*.md\n", ".ragexignore": "!README.md\n",
                    "README.md": "r\n", "other.md": "o\n"})
    assert {"README.md"} <= rels(tmp_path) and "other.md" not in rels(tmp_path)


def test_defaults(tmp_path: Path) -> None:
    make(tmp_path, {
        "node_modules/x/index.js": "x", ".git/config": "c", "pkg/__pycache__/a.pyc": "c",
        ".venv/lib/site.py": "s", "build/out.js": "o", "dist/x.js": "d", "target/t.rs": "t",
        "app.min.js": "m", "Cargo.lock": "l", "package-lock.json": "{}", "src/main.py": "m",
        ".github/workflows/ci.yml": "on: push\n",
    })
    assert rels(tmp_path) == {"src/main.py", ".github/workflows/ci.yml"}


def test_dependency_folders_of_every_ecosystem_are_left_out_like_node_modules(
        tmp_path: Path) -> None:
    """A Go or PHP `vendor/`, CocoaPods, Bundler, Yarn's cache, Terraform's providers, a
    `site-packages` copied into the tree: without a .gitignore they were indexed whole
    (a Go repository's vendor/ holds thousands of files of other people's code), and
    regex searches read them too (both paths share DEFAULT_IGNORES); a project brings
    one back with a negation."""
    deps = ("vendor/github.com/x/y.go", "Pods/Alamofire/a.swift", ".bundle/gems/g.rb",
            ".yarn/cache/c.js", ".terraform/providers/p.go", "lib/site-packages/m.py",
            ".eggs/e.py", "nb/.ipynb_checkpoints/n.py", "elm-stuff/e.elm", ".dart_tool/d.dart")
    make(tmp_path, {**{d: "x = 1\n" for d in deps}, "src/main.py": "m\n"})
    assert rels(tmp_path) == {"src/main.py"}
    make(tmp_path, {".ragexignore": "!vendor/\n"})
    assert "vendor/github.com/x/y.go" in rels(tmp_path)


def test_gitignore_can_reinclude_a_default(tmp_path: Path) -> None:
    make(tmp_path, {".gitignore": "!build/\n", "build/gen.py": "g\n"})
    assert "build/gen.py" in rels(tmp_path)


def test_size_cap_fifo_socket_and_outside_symlink(tmp_path: Path) -> None:
    outside = Path(tempfile.mkdtemp(prefix="rx-out-"))
    (outside / "secret.py").write_text("password = 1\n")
    make(tmp_path, {"big.py": "x" * 2000, "small.py": "y = 1\n"})
    os.mkfifo(tmp_path / "pipe")
    sock_dir = Path(tempfile.mkdtemp(prefix="rx-"))  # short path for AF_UNIX
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(sock_dir / "s"))
        (tmp_path / "link_out.py").symlink_to(outside / "secret.py")
        (tmp_path / "dir_out").symlink_to(outside)
        (tmp_path / "link_in.py").symlink_to(tmp_path / "small.py")
        files, skipped = walk(tmp_path, IgnoreRules(tmp_path), max_size=1000)
        names = {f.rel for f in files}
        reasons = {s.path: s.reason for s in skipped}
        assert names == {"small.py"}
        assert "larger than" in reasons["big.py"]
        assert "not a regular file" in reasons["pipe"]
        assert "outside" in reasons["link_out.py"] and "outside" in reasons["dir_out"]
    finally:
        sock.close()
        shutil.rmtree(outside, ignore_errors=True)
        shutil.rmtree(sock_dir, ignore_errors=True)


def test_socket_in_tree_is_skipped(tmp_path: Path) -> None:
    short = Path(tempfile.mkdtemp(prefix="rx-"))
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(short / "sock"))
        (short / "a.py").write_text("a = 1\n")
        files, skipped = walk(short, IgnoreRules(short))
        assert [f.rel for f in files] == ["a.py"]
        assert [x.path for x in skipped] == ["sock"]
        assert discovery.stat_one(short, "sock", IgnoreRules(short)).reason.startswith("not a")
    finally:
        s.close()
        shutil.rmtree(short, ignore_errors=True)


def test_read_bytes_never_blocks_on_a_fifo(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "f")
    with pytest.raises(discovery.Unreadable, match="not a regular file"):
        discovery.read_bytes(tmp_path / "f")


def test_binary_and_bad_utf8(tmp_path: Path) -> None:
    with pytest.raises(discovery.Unreadable, match="binary"):
        discovery.decode(b"abc\0def")
    assert discovery.decode("caf\xe9".encode("latin-1")) == "caf\ufffd"
    assert discovery.decode(b"\xef\xbb\xbfx = 1") == "x = 1"


def test_utf16_is_text_by_its_mark_as_ripgrep_reads_it_and_binary_without() -> None:
    text = "def f():\r\n    return 'caf\xe9 \u4e2d'\r\n"
    assert discovery.decode(text.encode("utf-16")) == text                  # BOM, native order
    assert discovery.decode(b"\xff\xfe" + text.encode("utf-16-le")) == text
    assert discovery.decode(b"\xfe\xff" + text.encode("utf-16-be")) == text
    with pytest.raises(discovery.Unreadable, match="without a byte-order mark"):
        discovery.decode(text.encode("utf-16-le"))
    with pytest.raises(discovery.Unreadable, match="binary"):  # a NUL character is binary
        discovery.decode(b"\xff\xfe" + "a\0b".encode("utf-16-le"))
    with pytest.raises(discovery.Unreadable, match="^binary file$"):
        discovery.decode(b"\x7fELF\x02\x01\x01\0" + bytes(range(256)) * 4)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any directory")
def test_unreadable_directory_is_skipped_with_reason(tmp_path: Path) -> None:
    make(tmp_path, {"locked/a.py": "a\n", "ok.py": "o\n"})
    (tmp_path / "locked").chmod(0)
    try:
        files, skipped = walk(tmp_path, IgnoreRules(tmp_path))
        assert {f.rel for f in files} == {"ok.py"}
        assert skipped[0].path == "locked" and "cannot read directory" in skipped[0].reason
    finally:
        (tmp_path / "locked").chmod(0o755)


@pytest.mark.parametrize("bad", ["!", "\\", "!\n\\"])
def test_an_invalid_ignore_line_is_skipped_like_git_and_the_rest_still_applies(
        tmp_path: Path, bad: str, caplog: pytest.LogCaptureFixture) -> None:
    # a vendored library's .gitignore with a line git itself silently ignores
    make(tmp_path, {".gitignore": f"{bad}\n*.log\n", "libs/vendored/.gitignore": f"{bad}\n*.tmp\n",
                    "a.py": "a = 1\n", "a.log": "l\n", "libs/vendored/x.tmp": "t\n",
                    "libs/vendored/x.py": "x = 1\n"})
    with caplog.at_level("WARNING"):
        got = rels(tmp_path)
    assert got == {".gitignore", "a.py", "libs/vendored/.gitignore", "libs/vendored/x.py"}
    assert any("invalid ignore pattern" in r.getMessage() for r in caplog.records)
    assert IgnoreRules(tmp_path).is_ignored("libs/vendored/x.tmp")


def test_names_that_are_not_utf8_are_skipped_with_a_readable_reason(tmp_path: Path) -> None:
    base = os.fsencode(tmp_path)
    open(os.path.join(base, b"caf\xe9.py"), "wb").write(b"def f(): pass\n")
    os.mkdir(os.path.join(base, b"d\xff"))
    open(os.path.join(base, b"d\xff", b"inside.py"), "wb").write(b"x = 1\n")
    make(tmp_path, {"ok.py": "ok = 1\n"})
    files, skipped = walk(tmp_path, IgnoreRules(tmp_path))
    assert [f.rel for f in files] == ["ok.py"]
    reasons = {s.path: s.reason for s in skipped}
    assert set(reasons) == {"caf\\xe9.py", "d\\xff"}  # escaped: printable, encodable
    assert "not valid UTF-8" in reasons["caf\\xe9.py"]
    for s in skipped:
        s.path.encode("utf-8")  # what goes on the wire must encode
    got = discovery.stat_one(tmp_path, os.fsdecode(b"caf\xe9.py"), IgnoreRules(tmp_path))
    assert isinstance(got, discovery.SkippedFile) and got.path == "caf\\xe9.py"


def test_minified_and_generated_text_is_recognised_and_source_is_not() -> None:
    bundle = ";".join(f"var a{i}=function(x){{return x*{i}}}" for i in range(7000))
    assert "a line of" in (discovery.looks_generated(bundle) or "")
    dense = "\n".join(["x" * 900] * 10)     # 10 lines of 900 characters
    assert "10 lines" in (discovery.looks_generated(dense) or "")
    source = Path(discovery.__file__).read_text()
    assert discovery.looks_generated(source) is None
    assert discovery.looks_generated("a" * 2000) is None   # short: just a long line
    assert discovery.looks_generated("") is None


def test_regex_output_names_a_non_utf8_file_as_the_index_summary_does(tmp_path: Path) -> None:
    from ragexd import ripgrep

    open(os.path.join(os.fsencode(tmp_path), b"caf\xe9.py"), "wb").write(b"needle = 1\n")
    matches, _ = ripgrep.search(tmp_path, "needle", limit=5)
    assert [m.path for m in matches] == ["caf\\xe9.py"]  # not "caf\ufffd.py"


@pytest.mark.skipif(shutil.which("git") is None, reason="git is the oracle")
def test_gitignore_files_above_a_project_inside_a_repository_apply_as_git_applies_them(
        tmp_path: Path) -> None:
    """A .ragexroot in a monorepo's subdirectory: the repository's .gitignore files
    above it still decide, as git (and ripgrep) decide; the project's own ones can
    re-include.  A project that is itself an ignored directory (a vendored checkout)
    was asked for, and is indexed whole."""
    import subprocess

    repo = tmp_path / "mono"
    make(repo, {".gitignore": "*.gen.py\ngenerated/\n/pkg/local.py\nvendor/\n",
                "pkg/.gitignore": "!keep.gen.py\n", "pkg/.ragexroot": "",
                "vendor/x/.ragexroot": "", "elsewhere/.ragexroot": ""})
    for rel in ("pkg/a.py", "pkg/a.gen.py", "pkg/keep.gen.py", "pkg/generated/g.py",
                "pkg/local.py", "pkg/sub/local.py", "pkg/sub/b.gen.py", "vendor/x/v.py",
                "elsewhere/e.gen.py"):
        make(repo, {rel: "x = 1\n"})
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    out = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--ignored",
                          "-uall"], capture_output=True, text=True, check=True).stdout
    git_kept = {line[3:] for line in out.splitlines() if line.startswith("??")}
    for project in ("pkg", "elsewhere"):
        assert rels(repo / project) == {p[len(project) + 1:] for p in git_kept
                                        if p.startswith(project + "/")}, project
    assert rels(repo / "vendor" / "x") == {".ragexroot", "v.py"}
    assert "a.gen.py" not in rels(repo / "pkg") and "sub/local.py" in rels(repo / "pkg")
    shutil.rmtree(repo / ".git")   # outside any repository nothing above applies
    assert "a.gen.py" in rels(repo / "pkg")


def _rg_files(root: Path) -> set[str]:
    """The files a regex search reads: the one rg command line, run as it is run."""
    import subprocess

    from ragexd import ripgrep

    cmd = ripgrep.build_command(ripgrep.find_rg(), root, None)
    out = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=True).stdout
    return {name.removeprefix("./") for name in out.split("\0") if name}


def test_every_ignore_source_git_and_ripgrep_obey_decides_the_index_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """git's .git/info/exclude and global excludes file, and ripgrep's .ignore and
    .rgignore, left files out of every regex search while the index kept them:
    found by symbol and by meaning, never by regex.  A linked worktree's excludes
    live in the repository's common directory, where ripgrep does not look.  The
    index and a regex search now read the same files, and git agrees."""
    import subprocess

    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    make(home, {".config/git/ignore": "global_gone.py\n"})
    repo = tmp_path / "repo"
    names = ("kept.py", "global_gone.py", "info_gone.py", "dot_gone.py", "rg_gone.py",
             "sub/dot_kept.py", "sub/dot_gone.py")
    make(repo, {**{n: "def f():\n    pass\n" for n in names},
                ".ignore": "dot_gone.py\n", ".rgignore": "rg_gone.py\n",
                "sub/.ignore": "!dot_kept.py\n"})
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run(git[:-2] + ["init", "-q", str(repo)], check=True)
    (repo / ".git" / "info").mkdir(exist_ok=True)
    (repo / ".git" / "info" / "exclude").write_text("info_gone.py\n")
    want = {"kept.py", "sub/dot_kept.py", ".ignore", ".rgignore", "sub/.ignore"}
    assert rels(repo) == _rg_files(repo) == want
    git_kept = subprocess.run(git + ["ls-files", "-o", "--exclude-standard"], env={
        **os.environ, "HOME": str(home)}, capture_output=True, text=True, check=True).stdout
    assert {"global_gone.py", "info_gone.py"}.isdisjoint(git_kept.split())
    # a linked worktree: .git is a file, the excludes are the repository's
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", "x"], check=True)
    linked = tmp_path / "linked"
    subprocess.run(git + ["worktree", "add", "-q", str(linked)], check=True)
    make(linked, {"info_gone.py": "x = 1\n", "global_gone.py": "x = 1\n"})
    assert rels(linked) == _rg_files(linked) == want
    (repo / ".git" / "info" / "exclude").unlink()   # nothing else left it out
    assert "info_gone.py" in rels(linked) and "info_gone.py" in _rg_files(linked)


def test_the_global_excludes_file_is_the_one_git_reads_through_includes_and_git_config_global(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """core.excludesFile was parsed from ~/.gitconfig and $XDG_CONFIG_HOME/git/config
    by hand: one kept in a dotfiles repository and pulled in with include.path, or a
    config named by $GIT_CONFIG_GLOBAL, was never read, so the index kept files git
    ignores.  git is asked now (``~`` expanded), and its own listing agrees."""
    import subprocess

    from ragexd import filerules

    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("GIT_CONFIG_GLOBAL", raising=False)
    make(home, {".gitconfig": "[include]\n\tpath = ~/dotfiles/git.inc\n",
                "dotfiles/git.inc": "[core]\n\texcludesFile = ~/dotfiles/ignore\n",
                "dotfiles/ignore": "included_gone.py\n",
                "other.gitconfig": "[core]\n\texcludesfile = ~/other.ignore\n",
                "other.ignore": "other_gone.py\n"})
    repo = tmp_path / "repo"
    make(repo, {n: "x = 1\n" for n in ("kept.py", "included_gone.py", "other_gone.py")})
    subprocess.run(["git", "init", "-q", str(repo)], check=True)

    def git_kept() -> set[str]:
        return set(subprocess.run(["git", "-C", str(repo), "ls-files", "-o",
                                   "--exclude-standard"], capture_output=True, text=True,
                                  check=True).stdout.split())

    filerules._global_cache.clear()
    assert rels(repo) == git_kept() == {"kept.py", "other_gone.py"}
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / "other.gitconfig"))
    assert rels(repo) == git_kept() == {"kept.py", "included_gone.py"}
    # without git, the config files are still read as before
    monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))
    filerules._global_cache.clear()
    assert filerules.git_global_excludes() == str(home / "other.ignore")


def test_no_ignore_file_above_a_checkouts_top_hides_its_files_from_a_regex_search(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Dotfiles kept in git at home (`*` in ~/.gitignore) and a ~/.ignore: ripgrep read
    every ignore file above the root up to / (--no-require-git), so a regex search of a
    project below found none of its files, while the index (git's rules: nothing above
    a checkout's top) held them all.  Now rg reads nothing above the root; a root below
    its checkout's top obeys the .gitignore between them through the index's rules,
    and the direct path hands such a search to the worker."""
    import subprocess

    from ragexd.filerules import ignore_files_outside

    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    make(home, {".gitignore": "*\n", ".ignore": "dot_gone.py\n"})
    subprocess.run(["git", "init", "-q", str(home)], check=True)
    repo = home / "code" / "proj"
    make(repo, {"a.py": "x = 1\n", "dot_gone.py": "x = 1\n", "sub/.ragexroot": "",
                "sub/gone.py": "x = 1\n", "sub/kept.py": "x = 1\n",
                ".gitignore": "/sub/gone.py\n"})
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    every = {"a.py", "dot_gone.py", ".gitignore", "sub/.ragexroot", "sub/kept.py"}
    assert rels(repo) == _rg_files(repo) == every
    assert ignore_files_outside(os.path.realpath(repo))[1] is False   # rg reads it all
    sub = repo / "sub"
    assert rels(sub) == {".ragexroot", "kept.py"}
    assert ignore_files_outside(os.path.realpath(sub))[1] is True     # the worker decides


def test_a_submodule_or_worktree_gitlink_file_is_vcs_metadata_not_text(tmp_path: Path) -> None:
    make(tmp_path, {"sub/.git": "gitdir: ../.git/modules/sub\n", "sub/code.py": "x = 1\n",
                    "wt/.git": "gitdir: /elsewhere/.git/worktrees/wt\n"})
    assert rels(tmp_path) == {"sub/code.py"}


def test_a_generated_gitignore_of_thousands_of_lines_decides_like_pathspec_in_one_pass(
        tmp_path: Path) -> None:
    """pathspec tries patterns one by one in Python: 20,000 lines made a walk cost
    files x patterns (28 s for 2,000 files).  A long ignore file is asked once, by
    one regex, whether any pattern matches; the answers stay pathspec's."""
    import pathspec

    lines = [f"cache_{i}_*.tmp" for i in range(3000)] + [
        "build/", "!build/keep.txt", "/anchored.py", "docs/**/draft-*.md", "*.log",
        "!important.log", "sub/dir/", "[abc]x.py", "\\#literal"]
    spec = pathspec.GitIgnoreSpec.from_lines(lines)
    fast = discovery.compile_ignore(lines, "test")
    paths = ["a.py", "cache_7_x.tmp", "d/cache_2999_y.tmp", "cache_3000_y.tmp", "build/x.py",
             "build/keep.txt", "anchored.py", "d/anchored.py", "docs/a/b/draft-1.md",
             "docs/draft-2.md", "x.log", "important.log", "sub/dir/f", "sub/dir", "ax.py",
             "dx.py", "#literal", "src/build", "src/build/", "deep/er/file.txt"]
    assert [fast.decide(p) for p in paths] == [spec.check_file(p).include for p in paths]
    asked: list[str] = []
    real = fast.spec.check_file
    fast.spec.check_file = lambda p, *a: (asked.append(p), real(p, *a))[1]  # type: ignore
    for i in range(500):
        assert fast.decide(f"src/module_{i}.py") is None
    assert fast.decide("x.log") is True and asked == ["x.log"], asked[:5]


def test_a_huge_ignore_file_is_read_only_up_to_the_size_limit(tmp_path: Path) -> None:
    """Bounded time and memory: a hostile multi-megabyte .gitignore is used up to
    MAX_FILE_BYTES (cut at a line's end); its later lines do not apply."""
    head = "*.early\n"
    filler = ("# " + "x" * 1000 + "\n") * 1200   # comments: cheap to read, not to hold
    make(tmp_path, {".gitignore": head + filler + "*.late\n", "a.early": "", "b.late": "",
                    "c.py": ""})
    assert len((tmp_path / ".gitignore").read_bytes()) > discovery.MAX_FILE_BYTES + 100_000
    assert rels(tmp_path) == {"b.late", "c.py"}   # (the .gitignore itself: too large)


def test_an_ignore_file_is_compiled_once_while_it_stays_the_same(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rules are built afresh per regex search and per save; a 2,100-line
    .gitignore above a subproject was compiled each time (316 ms a search)."""
    compiled: list[str] = []
    real = discovery.compile_ignore

    def counting(lines: list[str], source: str) -> discovery.IgnoreFile:
        compiled.append(source)
        return real(lines, source)

    monkeypatch.setattr(discovery, "compile_ignore", counting)
    repo = tmp_path / "mono"
    make(repo, {".git/HEAD": "ref: refs/heads/main\n", "pkg/.ragexroot": "", "pkg/a.py": "",
                "pkg/a.tmp": "", ".gitignore": "".join(f"build{i}/\n" for i in range(2100))})
    above = str(repo / ".gitignore")
    for _ in range(3):
        rules = IgnoreRules(repo / "pkg")
        assert rules.is_ignored("build7/x.py") and not rules.is_ignored("a.tmp")
    assert compiled.count(above) == 1
    # edited: compiled again, and obeyed by the next rules built
    with open(above, "a") as fh:
        fh.write("*.tmp\n")
    assert IgnoreRules(repo / "pkg").is_ignored("a.tmp")
    assert IgnoreRules(repo / "pkg").is_ignored("a.tmp")
    assert compiled.count(above) == 2


def test_a_changed_ignore_file_is_obeyed_at_the_next_search(tmp_path: Path) -> None:
    """ripgrep is given only the root's ignore files: a nested .ragexignore is the
    worker's own rules' to apply, which must see each edit, even one that keeps the
    file's size and modification time."""
    from ragexd.engine import SearchQuery
    from ragexd.engine.engine import grep_without_index

    root = tmp_path / "proj"
    make(root, {"pkg/a.py": "needle = 1\n", "pkg/b.py": "needle = 2\n",
                "pkg/.ragexignore": "b.py\n"})

    def found() -> set[str]:
        outcome = grep_without_index(root, tmp_path / "index",
                                     SearchQuery("needle", mode="regex", limit=10))
        return {h.path for h in outcome.hits}

    assert found() == {"pkg/a.py"}
    ignore = root / "pkg" / ".ragexignore"
    st = ignore.stat()
    ignore.write_text("a.py\n")   # the same size ...
    os.utime(ignore, ns=(st.st_atime_ns, st.st_mtime_ns))   # ... and the same mtime
    assert found() == {"pkg/b.py"}
    ignore.unlink()
    assert found() == {"pkg/a.py", "pkg/b.py"}
