"""Hostile trees (issue #13): no file, name, ignore line or directory may break a project.

Each case is a generated tree indexed for real (``ragexctl index --json``
through a private ragexd, one worker per tree, stopped afterwards). Every tree
must index with exit 0, and every file left out must be named in the summary
with a reason. ``-s`` prints one ``[figure]`` line per tree for RELIABILITY.md.

What root cannot be denied is tested with root's DAC capabilities dropped
(``setpriv``); what cannot be provoked deterministically (a file vanishing or
changing type between the listing and the stat) is raced against the walk.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ragexd.engine.discovery import IgnoreRules, walk
from tests.harness import RagexInstance, ragexctl, ragexctl_at_a_terminal, short_tmp

from .helpers import figure

pytestmark = pytest.mark.faults

GOOD = "def {name}(value):\n    \"\"\"A function a search must find.\"\"\"\n    return value + 1\n"


def _write(root: Path, rel: str | bytes, content: str | bytes = b"") -> None:
    path = os.path.join(os.fsencode(root), rel if isinstance(rel, bytes) else os.fsencode(rel))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(content.encode() if isinstance(content, str) else content)


def _good(root: Path, rel: str, name: str) -> None:
    _write(root, rel, GOOD.format(name=name))


def _project(rx: RagexInstance, name: str) -> Path:
    """A new project root under the test's base, marked so none above it is chosen."""
    root = rx.base / name
    root.mkdir()
    (root / ".ragexroot").touch()
    return root


@contextlib.contextmanager
def _locked(*paths: Path) -> Iterator[None]:
    """``paths`` at mode 000 for the block, readable again after it (so the tree can be
    removed, whatever the block raised)."""
    for path in paths:
        os.chmod(path, 0)
    try:
        yield
    finally:
        for path in paths:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)


# --- the trees: each returns {path as the summary names it: a word its reason holds} --------


def tree_ignore_lines(root: Path) -> dict[str, str]:
    """Invalid lines (git skips them), CRLF, a BOM, and a .gitignore in every directory."""
    _write(root, ".gitignore", "!\n\\\n*.log\r\n/build-out/\n")
    _write(root, "libs/vendored/.gitignore", "\ufeff!\n*.tmp\n")
    for depth in range(1, 6):
        base = "/".join(f"d{i}" for i in range(depth))
        _write(root, f"{base}/.gitignore", f"!\nskip{depth}.py\n")
        _good(root, f"{base}/kept{depth}.py", f"kept_at_depth_{depth}")
        _good(root, f"{base}/skip{depth}.py", f"ignored_at_depth_{depth}")
    _good(root, "libs/vendored/lib.py", "vendored_function")
    _write(root, "libs/vendored/cache.tmp", "tmp")
    _write(root, "debug.log", "log")
    _good(root, "build-out/gen.py", "never_indexed")
    return {}


def tree_names(root: Path) -> dict[str, str]:
    """Names that are not UTF-8, case-only clashes, and names that look like flags."""
    _write(root, b"caf\xe9.py", GOOD.format(name="latin1_named"))
    _write(root, b"bad\xffdir/inside.py", GOOD.format(name="under_bad_dir"))
    _good(root, "Clash.py", "upper_clash")
    _good(root, "clash.py", "lower_clash")
    _good(root, "-rf.py", "flag_named")
    _good(root, "with space/and\\backslash.py", "odd_named")
    _good(root, "new\nline.py", "newline_named")
    return {"caf\\xe9.py": "UTF-8", "bad\\xffdir": "UTF-8"}


def tree_contents(root: Path) -> dict[str, str]:
    """Minified and generated text, binary with a source extension, CRLF, BOMs,
    UTF-16 without one,
    sparse and huge files, an empty file."""
    bundle = ";".join(f"var a{i}=function(x){{return x*{i}}}" for i in range(7000))
    _write(root, "dist2/bundle.js", bundle[:200_000] + "\n")
    _write(root, "gen/table.py", "\n".join("T = [" + ", ".join(["12345"] * 150) + "]"
                                          for _ in range(40)))
    _write(root, "fake.py", b"\x7fELF\x02\x01\x01\0" + os.urandom(4096))
    _write(root, "crlf.py", GOOD.format(name="crlf_function").replace("\n", "\r\n"))
    _write(root, "bom.py", b"\xef\xbb\xbf" + GOOD.format(name="bom_function").encode())
    _write(root, "utf16_no_bom.py", "def utf16_function():\n    return 1\n".encode("utf-16-le"))
    _write(root, "latin1.py", "# caf\xe9\n".encode("latin-1") + GOOD.format(
        name="latin1_content").encode())
    _write(root, "empty.py", b"")
    with open(root / "sparse.py", "wb") as fh:
        fh.truncate(10 * 1024 ** 3)          # 10 GiB, no blocks: must not be read
    _write(root, "huge.py", b"x = 1\n" * (1024 * 1024 // 6 + 10))
    return {"dist2/bundle.js": "minified", "gen/table.py": "minified", "fake.py": "binary",
            "utf16_no_bom.py": "byte-order mark", "sparse.py": "larger than", "huge.py": "larger than"}


def tree_symlinks(root: Path) -> dict[str, str]:
    """Symlinks in every position: loops, dangling, outside, inside, chains, dirs."""
    outside = root.parent / f"{root.name}-outside"
    outside.mkdir()
    _good(outside, "secret.py", "outside_secret")
    _good(root, "real/real.py", "real_function")
    (root / "self_loop").symlink_to("self_loop")
    (root / "loop_a").symlink_to("loop_b")
    (root / "loop_b").symlink_to("loop_a")
    (root / "real" / "up").symlink_to("..", target_is_directory=True)
    (root / "dangling.py").symlink_to("nowhere.py")
    (root / "out_file.py").symlink_to(outside / "secret.py")
    (root / "out_dir").symlink_to(outside, target_is_directory=True)
    (root / "etc").symlink_to("/etc", target_is_directory=True)
    (root / "in_file.py").symlink_to("real/real.py")
    (root / "chain.py").symlink_to("in_file.py")
    (root / "in_dir").symlink_to("real", target_is_directory=True)
    (root / ".gitignore").symlink_to(outside / "secret.py")  # an ignore file through a link
    return {"self_loop": "loops", "loop_a": "loops", "loop_b": "loops",
            "dangling.py": "missing", "out_file.py": "outside", "out_dir": "outside",
            "etc": "outside", ".gitignore": "outside"}


def _deep_chain(root: Path, depth: int) -> None:
    """``d/d/d/…`` ``depth`` levels below ``root``, a small module at each level;
    made through directory descriptors, so it may go past PATH_MAX."""
    here = os.open(root, os.O_RDONLY)
    try:
        for i in range(depth):
            fd = os.open("m.py", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=here)
            os.write(fd, f"LEVEL_{i} = {i}\n".encode())
            os.close(fd)
            os.mkdir("d", dir_fd=here)
            nxt = os.open("d", os.O_RDONLY, dir_fd=here)
            os.close(here)
            here = nxt
    finally:
        os.close(here)


def tree_deep_and_wide(root: Path) -> dict[str, str]:
    """600 levels deep, and one directory of 3,000 files."""
    _deep_chain(root, 600)
    for i in range(3000):
        _write(root, f"wide/w{i:04d}.txt", "")
    return {}


def tree_ignored_dependencies(root: Path) -> dict[str, str]:
    """The issue's watcher case: 2 files, and node_modules/ of 3,000 packages."""
    _good(root, "index.py", "entry_point")
    _good(root, "lib.py", "library_function")
    for i in range(3000):
        _write(root, f"node_modules/pkg{i}/index.js", "module.exports = 1\n")
    return {}


TREES: dict[str, Callable[[Path], dict[str, str]]] = {
    "ignore lines": tree_ignore_lines, "names": tree_names, "contents": tree_contents,
    "symlinks": tree_symlinks, "deep and wide": tree_deep_and_wide,
    "ignored dependencies": tree_ignored_dependencies,
}


@pytest.fixture(scope="module")
def rx() -> Iterator[RagexInstance]:
    base = short_tmp()
    daemon = RagexInstance(base, RAGEX_WATCH="0")
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.cleanup()
        subprocess.run(["rm", "-rf", str(base)], check=False)  # deep trees: not shutil


def _summary(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        msg = json.loads(line)
        if msg.get("type") == "summary":
            return msg
    raise AssertionError(f"no summary in {stdout[-2000:]}")


def _check_reasons(summary: dict[str, Any], expected: dict[str, str]) -> dict[str, str]:
    reasons = {s["path"]: s["reason"] for s in summary["skipped"]}
    for path, word in expected.items():
        assert path in reasons, f"{path!r} skipped without a reason: {reasons}"
        assert word in reasons[path], (path, reasons[path])
    for path, reason in reasons.items():
        assert reason.strip(), f"{path!r} has an empty reason"
        path.encode("utf-8")  # printable, and carried on the wire
    return reasons


@pytest.mark.parametrize("case", list(TREES))
def test_every_hostile_tree_indexes_with_exit_0_and_a_reason_for_each_skipped_file(
        rx: RagexInstance, case: str) -> None:
    root = _project(rx, case.replace(" ", "_"))
    expected = TREES[case](root)
    t0 = time.monotonic()
    res = ragexctl(rx.env, "index", str(root), "--json", timeout=900)
    took = time.monotonic() - t0
    assert res.returncode == 0, (case, res.stderr[-3000:])
    summary = _summary(res.stdout)
    reasons = _check_reasons(summary, expected)
    # what should be found is found; what is ignored or outside is not
    probe = {"ignore lines": ("kept_at_depth_5", "ignored_at_depth_5"),
             "names": ("upper_clash", "latin1_named"),
             "contents": ("bom_function", None),
             "symlinks": ("real_function", "outside_secret"),
             "deep and wide": (None, None),
             "ignored dependencies": ("entry_point", None)}[case]
    found, absent = probe
    if found:
        hit = ragexctl(rx.env, "search", "--project", str(root), "--mode", "symbol", found,
                       "--json", timeout=900)
        assert hit.returncode == 0 and found in hit.stdout, (found, hit.stdout, hit.stderr)
    if absent:
        miss = ragexctl(rx.env, "search", "--project", str(root), "--mode", "symbol", absent,
                        "--json", timeout=900)
        assert absent not in miss.stdout, (absent, miss.stdout)
    ragexctl(rx.env, "stop", str(root), timeout=120)
    figure(f"T:{case}", f"{case}: exit 0 in {took:.1f} s, {summary['files_indexed']} files "
           f"indexed, {len(reasons)} skipped, each with a reason",
           seconds=took, indexed=summary["files_indexed"], skipped=len(reasons))


def test_utf16_and_odd_line_breaks_are_read_on_the_lines_ripgrep_numbers(
        rx: RagexInstance) -> None:
    """Windows tools write UTF-16 with a byte-order mark, and ripgrep reads it: the
    index must too, or one file is found by regex and 'binary' to every other mode.
    A form feed or U+2028 is no line break to ripgrep: the symbol hit's line, its
    snippet and -C lines must be those ripgrep's line number names."""
    root = _project(rx, "utf16")
    source = ("# settings written by a Windows tool\r\n\r\n"
              "def wide_function(value):\r\n    return value + 1\r\n")
    _write(root, "le.py", source.encode("utf-16"))                  # BOM, little-endian
    _write(root, "be.py", b"\xfe\xff" + source.replace("wide_", "big_").encode("utf-16-be"))
    _write(root, "ff.py", "\x0c\n# s = 'a\u2028b'\ndef paged_function(value):\n"
           "    return value + 1\n")
    res = ragexctl(rx.env, "index", str(root), "--json", timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert not _summary(res.stdout)["skipped"], res.stdout[-2000:]
    for name, path in (("wide_function", "le.py"), ("big_function", "be.py"),
                       ("paged_function", "ff.py")):
        lines = {}
        for mode in ("symbol", "regex"):
            hit = ragexctl(rx.env, "search", "--project", str(root), "--mode", mode, "--json",
                           "-C", "1", name if mode == "symbol" else f"def {name}", timeout=900)
            assert hit.returncode == 0, (mode, hit.stdout, hit.stderr)
            first = json.loads(hit.stdout.splitlines()[0])
            assert first["path"] == path and f"def {name}" in first["text"], first
            lines[mode] = (first["line"], first["after"])
        assert lines["symbol"] == lines["regex"] == (3, ["    return value + 1"]), lines
        past = ragexctl(rx.env, "similar", f"{root / path}:5", timeout=900)
        assert past.returncode == 2 and "(4 lines)" in past.stderr, past.stderr
    ragexctl(rx.env, "stop", str(root), timeout=120)


def test_control_sequences_in_names_and_lines_are_shown_never_obeyed_by_the_terminal(
        rx: RagexInstance) -> None:
    """A hostile repository's names and lines hold escape sequences (retitle, clear
    the screen), carriage returns that overwrite what was printed, and bidi
    overrides that reorder a line on screen: at a terminal every mode shows them
    as escapes; --json carries the text untouched."""
    root = _project(rx, "escapes")
    payload = "\x1b]0;owned\x07\x1b[2J\rhidden\u202eexe.py"
    _write(root, "evil\x1b[31m\u202e.py",
           f"def escape_function(value):\n    banner = '{payload}'\n    return value\n")
    _write(root, "new\nline.py", GOOD.format(name="newline_named"))
    _write(root, "\x1b[2Jbig.txt", b"x\n" * (1024 * 1024))   # skipped: named in the summary
    told = ragexctl(rx.env, "index", str(root), timeout=900)
    assert told.returncode == 0 and "\\x1b[2Jbig.txt" in told.stderr, told.stderr[-3000:]
    assert "\x1b[2J" not in told.stderr + told.stdout
    res = ragexctl(rx.env, "index", str(root), "--json", timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    obeyed = ("\x1b]", "\x1b[2J", "\x1b[31m", "\u202e", "\x07", "\r", "new\nline")
    for argv in (("--mode", "regex", "banner"), ("--mode", "symbol", "escape_function", "-C", "1"),
                 ("--mode", "semantic", "escape function banner"),
                 ("--mode", "symbol", "newline_named")):
        shown = ragexctl_at_a_terminal(rx.env, "search", *argv, cwd=root)
        assert shown.returncode == 0, (argv, shown.stdout, shown.stderr)
        for raw in obeyed:
            assert raw not in shown.stdout, (argv, raw, shown.stdout)
        assert "\\x1b" in shown.stdout or "new\\x0aline" in shown.stdout, shown.stdout
    exact = ragexctl(rx.env, "search", "--project", str(root), "--mode", "regex", "banner",
                     "--json", timeout=900)
    hit = json.loads(exact.stdout.split("\n")[0])
    assert payload in hit["text"] and hit["path"] == "evil\x1b[31m\u202e.py", hit
    ragexctl(rx.env, "stop", str(root), timeout=120)


def test_status_counts_and_names_every_file_the_index_leaves_out(rx: RagexInstance) -> None:
    """A file missing from answers must be explained where people look: `ragexctl
    status` counts what the walk skipped and what was catalogued without chunks
    (binary, minified), names them, and forgets those fixed since."""
    root = _project(rx, "skipped")
    _good(root, "kept.py", "kept_function")
    _write(root, "huge.py", b"x = 1\n" * (1024 * 1024 // 6 + 10))
    _write(root, "blob.py", b"\x7fELF\x02\x01\x01\0" + bytes(range(256)) * 4)
    _write(root, "bundle.js", "var a=1;" * 5000)
    os.mkfifo(root / "pipe.py")
    res = ragexctl(rx.env, "index", str(root), "--json", timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    expected = {"huge.py": "larger than", "blob.py": "binary", "bundle.js": "minified",
                "pipe.py": "not a regular file"}

    def status() -> tuple[dict[str, Any], str]:
        as_json = ragexctl(rx.env, "status", "--json", timeout=120)
        worker = next(w for w in json.loads(as_json.stdout)["workers"]
                      if w["root"] == str(root))
        text = ragexctl(rx.env, "status", timeout=120).stdout
        return worker["index"], text
    index, text = status()
    assert index["skipped"] == 4, index
    named = {f["path"]: f["reason"] for f in index["skipped_files"]}
    for path, word in expected.items():
        assert word in named.get(path, ""), (path, named)
        assert path in text, text   # the table says it too, up to five a project
    assert "4 skipped" in text, text
    # the next full run forgets what was fixed, and still counts what was not
    _write(root, "huge.py", b"x = 1\n")
    (root / "pipe.py").unlink()
    assert ragexctl(rx.env, "index", str(root), timeout=900).returncode == 0
    index, text = status()
    assert index["skipped"] == 2 and {f["path"] for f in index["skipped_files"]} == \
        {"blob.py", "bundle.js"}, index
    ragexctl(rx.env, "stop", str(root), timeout=120)


def _as_a_user() -> tuple[str, ...]:
    """The command prefix that makes mode 000 mean for this test's ragexctl what it
    means for a user: as root, ``setpriv`` without the capabilities that read past
    permissions (the test is skipped where it is missing); nothing otherwise."""
    if os.geteuid() != 0:
        return ()
    if not shutil.which("setpriv"):
        pytest.skip("as root, needs setpriv(1) to drop CAP_DAC_OVERRIDE; not testable here")
    return ("setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--inh-caps", "-all")


def test_permission_denied_subtrees_are_skipped_with_a_reason(rx: RagexInstance) -> None:
    """Root reads everything, so the one-shot index runs with root's DAC
    capabilities dropped: then mode 000 means what it means for a user."""
    prefix = _as_a_user()
    root = _project(rx, "permissions")
    _good(root, "open.py", "readable_function")
    _good(root, "locked_dir/inside.py", "behind_a_locked_dir")
    _good(root, "locked.py", "unreadable_function")
    with _locked(root / "locked_dir", root / "locked.py"):
        res = ragexctl(rx.env, "index", str(root), "--json", "--no-daemon", prefix=prefix,
                       timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = _summary(res.stdout)
    _check_reasons(summary, {"locked_dir": "cannot read directory", "locked.py": "cannot open"})
    assert summary["files_indexed"] >= 1
    figure("T:permissions", f"mode-000 file and directory: exit 0, {len(summary['skipped'])} "
           "skipped with 'cannot read directory' / 'cannot open: Permission denied'")


def test_a_valid_regex_in_a_tree_with_a_bad_ignore_line_and_an_unreadable_file_is_searched(
        rx: RagexInstance) -> None:
    """ripgrep complains about the tree (a .gitignore glob it cannot parse, a file
    it may not read) and exits 2: that is no invalid regular expression.  Run with
    root's DAC capabilities dropped, so mode 000 means what it means for a user."""
    from ragexd import ripgrep

    prefix = _as_a_user()
    root = _project(rx, "rg_complaints")
    _write(root, ".gitignore", "[\n*.log\n")
    _good(root, "open.py", "readable_function")
    _good(root, "locked.py", "unreadable_function")
    with _locked(root / "locked.py"):
        found = ragexctl(rx.env, "search", "--mode", "regex", "readable_function",
                         cwd=root, prefix=prefix, timeout=120)
        missing = ragexctl(rx.env, "search", "--mode", "regex", "no_such_thing_anywhere",
                           cwd=root, prefix=prefix, timeout=120)
        broken = ragexctl(rx.env, "search", "--mode", "regex", "(unclosed",
                          cwd=root, prefix=prefix, timeout=120)
    assert found.returncode == 0 and "open.py:1:" in found.stdout, found.stderr
    assert missing.returncode == 1 and "invalid" not in missing.stderr, missing.stderr
    assert broken.returncode == 2 and "invalid regular expression" in broken.stderr
    assert "gitignore" not in broken.stderr, broken.stderr   # the pattern's fault, alone
    # the worker's path reads rg's complaints through the same function
    said = ("rg: ./.gitignore: line 1: error parsing glob '[': unclosed character class\n"
            "rg: ./locked.py: Permission denied (os error 13)\n")
    assert ripgrep._clean_error(said) == ""


def test_files_that_vanish_or_change_type_mid_walk_never_break_it(tmp_path: Path) -> None:
    """A churner deletes, recreates and swaps files for directories (and back)
    while the walk runs again and again: every walk must finish."""
    for i in range(200):
        _good(tmp_path, f"churn/f{i}.py", f"churn_{i}")
    stop = threading.Event()
    errors: list[BaseException] = []

    def churn() -> None:
        i = 0
        while not stop.is_set():
            path = tmp_path / "churn" / f"f{i % 200}.py"
            try:
                if path.is_dir():
                    path.rmdir()
                    path.write_text("x = 1\n")
                else:
                    path.unlink(missing_ok=True)
                    path.mkdir()
            except OSError:
                pass
            i += 1

    thread = threading.Thread(target=churn, daemon=True)
    thread.start()
    walks = 0
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < 5.0:
            try:
                walk(tmp_path, IgnoreRules(tmp_path))
            except BaseException as exc:  # noqa: BLE001 - any escape is the failure
                errors.append(exc)
            walks += 1
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not errors, errors[:3]
    figure("T:churn", f"{walks} walks while files vanished and turned into directories: "
           "0 errors", walks=walks)


def test_a_deep_tree_is_walked_without_recursion_limits_in_linear_time(tmp_path: Path) -> None:
    """Deeper than a recursive walk could go; past PATH_MAX the rest is skipped
    with a reason, not a crash.  Cubic before: 218 s for 2,200 levels.  Linear is
    a claim about work, so the bound is on the CPU the walk takes (user and
    system): its wall time measures how busy the machine is (5.2 s for a bound of
    20 s beside a CI run, at a load of 11 on 2 cores)."""
    _deep_chain(tmp_path, 2100)
    try:
        t0, c0 = time.monotonic(), time.process_time()
        files, skipped = walk(tmp_path, IgnoreRules(tmp_path))
        took, cpu = time.monotonic() - t0, time.process_time() - c0
    finally:  # shutil.rmtree recurses: GNU rm does not
        subprocess.run(["rm", "-rf", str(tmp_path / "d")], check=True)
    assert len(files) > 1900 and all(s.reason.startswith("cannot ") for s in skipped)
    assert skipped, "the levels beyond PATH_MAX must be reported, not dropped silently"
    assert cpu < 20, f"walking {len(files)} levels took {cpu:.1f} s of CPU"
    figure("T:deep", f"{len(files)} levels walked in {took:.1f} s ({cpu:.1f} s of CPU), "
           f"{len(skipped)} past PATH_MAX reported", seconds=took, cpu_seconds=cpu)
