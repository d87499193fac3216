"""Hostile input: fuzzed frames, regexes that are invalid, catastrophic or shaped
like ripgrep flags, huge queries, paths that try to leave the project, special
files in the tree and files that change while they are indexed.

One ragexd and one hostile project (``hostile``) serve the module.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ragexd import paths
from ragexd.protocol import PROTOCOL_TAG, ErrorCode, Op, Progress, Reply, Request, decode
from tests.harness import Client, RagexInstance, ragexctl, short_tmp, write_tree

from .helpers import figure

pytestmark = pytest.mark.faults

SECRET = "TOPSECRET-7d1f"
FUZZ_MESSAGES = 10_000
FUZZ_BATCH = 10


class Hostile:
    def __init__(self, base: Path, rx: RagexInstance) -> None:
        self.base, self.rx = base, rx
        self.client = rx.client()
        self.outside = base / "outside"
        self.outside.mkdir()
        (self.outside / "secret.py").write_text(
            f'def exfiltrate_secret_token():\n    """The secret token."""\n    return "{SECRET}"\n')
        self.root = root = write_tree(base / "hostile", files=4)
        (root / "flags.txt").write_text("--pre=sh\n-f/etc/passwd\n--files\n")
        (root / "long_line.txt").write_text("a" * 200_000 + "!\n")
        (root / "linked_dir").symlink_to(self.outside, target_is_directory=True)
        (root / "linked_file.py").symlink_to(self.outside / "secret.py")
        (root / "etc_link").symlink_to("/etc", target_is_directory=True)
        os.mkfifo(root / "pipe.fifo")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(root / "live.sock"))
        self.listener.listen(1)
        # A script that leaves a mark if anything ever runs it (rg --pre=...).
        self.sentinel = base / "PWNED"
        self.pwn = base / "pwn.sh"
        self.pwn.write_text(f"#!/bin/sh\ntouch {self.sentinel}\ncat \"$1\"\n")
        self.pwn.chmod(0o755)
        t0 = time.monotonic()
        reply = self.client.call(Op.INDEX, root, timeout=600, rebuild=False, paths=None)
        self.index_seconds = time.monotonic() - t0
        assert reply.ok, reply.error
        self.summary = reply.result["summary"]

    @property
    def catalog(self) -> Path:
        return Path(self.rx.env["RAGEX_DATA_DIR"]) / "projects" / \
            paths.project_id_for(self.root) / "catalog.sqlite"

    def catalog_rows(self, sql: str) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(f"file:{self.catalog}?mode=ro", uri=True, timeout=30)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()

    def search(self, query: str, mode: str = "regex", timeout: float = 60.0,
               **extra: Any) -> Reply:
        return self.client.call(Op.SEARCH, self.root, timeout, query=query, mode=mode,
                                limit=50, **extra)


@pytest.fixture(scope="module")
def hostile() -> Iterator[Hostile]:
    base = short_tmp()
    rx = RagexInstance(base, RAGEX_WATCH="0")
    try:
        rx.start()
        world = Hostile(base, rx)
        yield world
        world.listener.close()
    finally:
        rx.cleanup()


def _hits(reply: Reply) -> list[dict[str, Any]]:
    assert reply.ok, reply.error
    return reply.result["hits"]


# --- special files and symlinks -------------------------------------------------------


def test_fifos_sockets_and_outside_symlinks_are_skipped_not_followed(hostile: Hostile) -> None:
    skipped = {s["path"]: s["reason"] for s in hostile.summary["skipped"]}
    assert "pipe.fifo" in skipped and "live.sock" in skipped, skipped
    assert "linked_dir" in skipped and "linked_file.py" in skipped, skipped
    indexed = {p for (p,) in hostile.catalog_rows("SELECT path FROM files")}
    assert indexed and not any(p.startswith(("linked_", "etc_link", "pipe", "live"))
                               for p in indexed), indexed
    assert not hostile.catalog_rows(
        "SELECT id FROM chunks WHERE name = 'exfiltrate_secret_token'")
    t0 = time.monotonic()
    for query in (SECRET, "root:x:0:0", "exfiltrate"):
        assert _hits(hostile.search(query)) == [], query       # rg does not follow -L
    grep_s = time.monotonic() - t0
    assert _hits(hostile.search("exfiltrate_secret_token", mode="symbol")) == []
    semantic = _hits(hostile.search("exfiltrate the secret token", mode="semantic"))
    assert not any(h["path"].startswith(("linked_", "etc_link")) for h in semantic), semantic
    figure("FIFO, socket, symlinks out of the project",
           f"index of the tree finished in {hostile.index_seconds:.1f} s (cold worker) without "
           f"hanging on the FIFO; skipped {len(skipped)} entries "
           f"({', '.join(sorted(set(skipped.values())))}); 0 hits from outside in 3 regex, "
           f"1 symbol and 1 semantic search ({grep_s:.2f} s for the 3 greps)",
           index_s=hostile.index_seconds)


# --- fuzzing the wire ----------------------------------------------------------------------

_OPS = ["hello", "ping", "status", "start", "ls", "logs", "search", "index", "worker_status"]
_ARG_KEYS = ["query", "mode", "limit", "paths", "languages", "auto_index", "rebuild", "target",
             "lines"]


def _safe_project(value: Any) -> bool:
    """Never an existing directory but the hostile project: a fuzzed INDEX of "/"
    would index the whole machine."""
    return not (isinstance(value, str) and value.strip() and os.path.isabs(value)
                and os.path.exists(value))


def _strategies(root: Path) -> st.SearchStrategy[tuple[str, list[bytes], str | None]]:
    text = st.text(max_size=40)
    leaf = (st.none() | st.booleans() | st.integers()
            | st.sampled_from([2**63, -2**63 - 1, 2**64, 10**30, -(10**30), 2**1000])
            | st.floats(allow_nan=True, allow_infinity=True) | text)
    junk = st.recursive(leaf, lambda kids: st.lists(kids, max_size=4)
                        | st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=6)
    project = (st.sampled_from([None, "", "relative/path", "/nonexistent/rx-fuzz",
                                str(root), f"{root}/../{root.name}", str(root / "billing.py"),
                                "/" + "a" * 5000, "/nonexistent/" + "../" * 50])
               | junk.filter(_safe_project))
    args = (st.dictionaries(st.sampled_from(_ARG_KEYS) | st.text(max_size=6), junk, max_size=5)
            | junk)
    request = st.fixed_dictionaries(
        {"type": st.sampled_from(["request", "request", "request", "reply", "progress"]) | junk,
         "op": st.sampled_from(_OPS) | junk,
         "id": st.text(min_size=1, max_size=20) | junk,
         "project": project, "args": args},
        optional={"timeout": leaf, "client_version": junk, "extra": junk})

    def body(data: Any) -> bytes:
        return json.dumps(data, ensure_ascii=False, allow_nan=True).encode("utf-8")

    tags = (st.sampled_from([b"RAGEX/0", b"RAGEX/2", b"RAGEX/1 ", b"ragex/1", b"RAGEX/", b"",
                             b"RAGEX/999999999999999999999", b"RAGEX/1\x00"])
            | st.binary(max_size=12))
    shaped = request.map(lambda r: ("request", [PROTOCOL_TAG, body(r)],
                                    r["id"] if isinstance(r["id"], str) else None))
    return st.one_of(
        shaped, shaped, shaped,
        st.lists(st.binary(max_size=64), min_size=1, max_size=4).map(
            lambda f: ("frames", f, None)),
        st.tuples(tags, request).map(lambda t: ("tag", [t[0], body(t[1])], None)),
        st.binary(max_size=200).map(lambda b: ("bytes", [PROTOCOL_TAG, b], None)),
        junk.map(lambda j: ("json", [PROTOCOL_TAG, body(j)], None)),
        st.tuples(request, st.floats(0, 1)).map(
            lambda t: ("truncated", [PROTOCOL_TAG, body(t[0])[:int(len(body(t[0])) * t[1])]],
                       None)),
        st.tuples(request, st.lists(st.binary(max_size=16), min_size=1, max_size=3)).map(
            lambda t: ("extra-frames", [PROTOCOL_TAG, body(t[0]), *t[1]], None)),
        st.tuples(st.integers(1, 3), request).map(
            lambda t: ("empty-frames", [b""] * t[0] + [PROTOCOL_TAG, body(t[1])],
                       t[1]["id"] if isinstance(t[1]["id"], str) else None)),
    )


class Fuzzer(Client):
    """The harness's DEALER client, sending raw (often malformed) frames."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(endpoint)
        self.sent = 0
        self.kinds: Counter[str] = Counter()
        self.codes: Counter[str] = Counter()
        self.unanswered: list[tuple[str, list[bytes]]] = []
        self.bad_replies: list[str] = []
        self.internal: Counter[str] = Counter()
        self.slowest = 0.0

    def one(self, kind: str, frames: list[bytes], rid: str | None) -> None:
        self.sent += 1
        self.kinds[kind] += 1
        t0 = time.monotonic()
        self.sock.send_multipart(frames)
        deadline = t0 + 30
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sock.poll(int(left * 1000)):
                self.unanswered.append((kind, frames))
                return
            got = self.sock.recv_multipart()
            while got and got[0] == b"":          # a REQ-style envelope came back
                got = got[1:]
            try:
                message = decode(got)
            except Exception as exc:  # noqa: BLE001 - ragexd sent something undecodable
                self.bad_replies.append(f"{kind}: {exc}")
                return
            if isinstance(message, Progress):
                continue
            if not isinstance(message, Reply):
                self.bad_replies.append(f"{kind}: a {type(message).__name__}")
                return
            if rid is not None and message.id not in (rid, ""):
                continue   # a late answer to an earlier message
            break
        self.slowest = max(self.slowest, time.monotonic() - t0)
        code = "ok" if message.ok else message.error.code.value
        self.codes[code] += 1
        if code == "internal":
            self.internal[message.error.message.split(":")[1].strip()[:60]
                          if ":" in message.error.message else message.error.message[:60]] += 1


def test_10000_fuzzed_messages_ragexd_answers_each_and_stays_up(hostile: Hostile) -> None:
    rx = hostile.rx
    fuzzer = Fuzzer(rx.endpoint)
    strategy = _strategies(hostile.root)

    @settings(max_examples=FUZZ_MESSAGES // FUZZ_BATCH, deadline=None, database=None,
              derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.lists(strategy, min_size=FUZZ_BATCH, max_size=FUZZ_BATCH))
    def fuzz(batch: list[tuple[str, list[bytes], str | None]]) -> None:
        for kind, frames, rid in batch:
            fuzzer.one(kind, frames, rid)

    t0 = time.monotonic()
    try:
        fuzz()
        took = time.monotonic() - t0
        # Past the frame size limit ZeroMQ drops the connection: no answer, no harm.
        for _ in range(3):
            fuzzer.sock.send_multipart([PROTOCOL_TAG, b"{" + b" " * (5 * 2**20) + b"}"])
    finally:
        fuzzer.close()
    assert rx.proc.poll() is None, "ragexd died under fuzzing:\n" + rx.output()
    client = Client(rx.endpoint)
    try:
        assert client.call(Op.PING).ok
        reply = client.call(Op.SEARCH, hostile.root, 120, query="add sales tax to an invoice",
                            mode="semantic", limit=3)
        assert _hits(reply)[0]["name"] == "compute_invoice_total"
    finally:
        client.close()
    assert fuzzer.sent >= FUZZ_MESSAGES, fuzzer.sent
    assert not fuzzer.bad_replies, fuzzer.bad_replies[:5]
    assert not fuzzer.unanswered, [(k, [f[:80] for f in fr]) for k, fr in fuzzer.unanswered[:5]]
    figure("10,000 fuzzed messages",
           f"{fuzzer.sent} messages ({dict(fuzzer.kinds)}) in {took:.0f} s, each answered "
           f"(slowest {fuzzer.slowest:.2f} s), 3 oversized frames dropped; replies "
           f"{dict(fuzzer.codes)}; INTERNAL for {dict(fuzzer.internal) or 'none'}; ragexd up, "
           "then a real semantic search answered", codes=dict(fuzzer.codes),
           internal=dict(fuzzer.internal))


# Malformed values that the fuzzer cannot reach through json.dumps, or that
# reveal a class of bug: each must get an answer, and not INTERNAL ("a bug").
MALFORMED = [
    ("lone surrogate in the id", b'{"type":"request","op":"ping","id":"\\ud800"}'),
    ("lone surrogate in a query", b'{"type":"request","op":"search","id":"s1",'
                                  b'"project":"/nonexistent/rx","args":{"query":"\\udfff"}}'),
    ("lone surrogate in an rm target", b'{"type":"request","op":"rm","id":"s2",'
                                       b'"args":{"target":"/nonexistent\\ud800"}}'),
    ("a 5000-digit number", b'{"type":"request","op":"ping","id":"n1","timeout":'
                            + b"9" * 5000 + b"}"),
    ("100,000 nested arrays", b"[" * 100_000 + b"]" * 100_000),
    ("NUL byte in a project path (status)", b'{"type":"request","op":"status","id":"z1",'
                                            b'"project":"/tmp/x\\u0000y"}'),
    ("NUL byte in a project path (search)", b'{"type":"request","op":"search","id":"z2",'
                                            b'"project":"/tmp/x\\u0000y","args":{"query":"a"}}'),
    ("NUL byte in a logs target", b'{"type":"request","op":"logs","id":"z3",'
                                  b'"args":{"target":"/tmp/x\\u0000y"}}'),
    ("infinite logs line count", b'{"type":"request","op":"logs","id":"z4",'
                                 b'"args":{"lines":1e400}}'),
]


def test_malformed_values_get_a_clear_error_not_silence_or_internal(hostile: Hostile) -> None:
    problems = []
    for what, body in MALFORMED:
        client = Client(hostile.rx.endpoint)
        try:
            client.send_raw([PROTOCOL_TAG, body])
            try:
                reply = client.recv(timeout=5)
            except TimeoutError:
                problems.append(f"{what}: no answer within 5 s")
                continue
            if not reply.ok and reply.error.code is ErrorCode.INTERNAL:
                problems.append(f"{what}: INTERNAL ({reply.error.message[:90]})")
        finally:
            client.close()
    assert hostile.rx.proc.poll() is None
    assert not problems, "\n".join(problems)


# --- regexes ----------------------------------------------------------------------------


def test_invalid_regexes_are_clear_errors(hostile: Hostile) -> None:
    for pattern in ("(unclosed", "[z-a]", "a{2,1}", r"(a)\1", "*", "(?<", "x{99999999}"):
        reply = hostile.search(pattern)
        assert not reply.ok and reply.error.code is ErrorCode.INVALID_REGEX, (pattern, reply)
        assert reply.error.message and "Traceback" not in reply.error.message


def test_catastrophic_regexes_finish_fast(hostile: Hostile) -> None:
    worst = 0.0
    for pattern in ("(a+)+$", "(a|aa)+$", "(a*)*b", "(x+x+)+y", "^(a|a?)+$", "(.*a){20}!"):
        t0 = time.monotonic()
        reply = hostile.search(pattern, timeout=30)
        took = time.monotonic() - t0
        worst = max(worst, took)
        assert reply.ok or reply.error.code is ErrorCode.INVALID_REGEX, (pattern, reply)
        assert took < 10, (pattern, took)
    figure("catastrophic regexes", f"6 backtracking killers over a 200,000-character line: "
           f"slowest answered in {worst:.2f} s (ripgrep's linear-time engine)", worst_s=worst)


def test_flag_shaped_patterns_are_searched_for_never_obeyed(hostile: Hostile) -> None:
    patterns = ["--pre=sh", f"--pre={hostile.pwn}", "-f/etc/passwd", "--files", "--help",
                "-e", "--", f"--pre={hostile.pwn} --search-zip", "-L", "--no-ignore"]
    outcomes = {}
    for mode in ("regex", "auto"):
        for pattern in patterns:
            reply = hostile.search(pattern, mode=mode)
            if not reply.ok:
                assert reply.error.code in (ErrorCode.INVALID_REGEX, ErrorCode.BAD_QUERY), reply
                outcomes[(mode, pattern)] = reply.error.code.value
                continue
            for hit in reply.result["hits"]:
                assert "root:x:0:0" not in hit["text"] and SECRET not in hit["text"], hit
                if mode == "regex":
                    assert pattern in hit["text"], (pattern, hit)
            outcomes[(mode, pattern)] = len(reply.result["hits"])
    assert outcomes[("regex", "--pre=sh")] == 1 and outcomes[("regex", "-f/etc/passwd")] == 1
    assert not hostile.sentinel.exists(), "a --pre command ran"
    figure("flag-shaped patterns (protocol)",
           f"{len(patterns)} patterns x 2 modes: plain matches or clear errors "
           f"({sorted(set(map(str, outcomes.values())))}); no command ran")


def test_flag_shaped_queries_through_ragexctl(hostile: Hostile) -> None:
    env, root = hostile.rx.env, str(hostile.root)
    runs = [
        ["search", "--project", root, "--mode", "regex", "-e", "--pre=sh"],
        ["search", "--project", root, "--mode", "regex", "-e", f"--pre={hostile.pwn}"],
        ["search", "--project", root, "--mode", "regex", "-e", "-f/etc/passwd"],
        ["search", "--project", root, "--", f"--pre={hostile.pwn}"],
        ["search", "--project", root, f"--pre={hostile.pwn}"],
        ["search", "--project", root, "--mode", "regex", "--", "-f/etc/passwd"],
    ]
    codes = []
    for argv in runs:
        out = ragexctl(env, *argv, timeout=120)
        codes.append(out.returncode)
        assert out.returncode in (0, 1, 2), (argv, out.returncode, out.stderr)
        assert "Traceback" not in out.stderr, out.stderr
        assert "root:x:0:0" not in out.stdout and SECRET not in out.stdout, out.stdout
    assert codes[0] == 0 and codes[2] == 0, codes      # plain matches in flags.txt
    assert not hostile.sentinel.exists(), "a --pre command ran"


def test_a_1_mb_query_is_too_large(hostile: Hostile) -> None:
    big = "x" * (1 << 20)
    t0 = time.monotonic()
    reply = hostile.search(big, mode="semantic")
    took = time.monotonic() - t0
    assert not reply.ok and reply.error.code is ErrorCode.TOO_LARGE, reply
    assert "limit" in reply.error.message
    for mode in ("regex", "symbol", "auto"):
        again = hostile.search(big, mode=mode)
        assert again.error is not None and again.error.code is ErrorCode.TOO_LARGE, again
    # The command line caps one argument at 128 KiB: 100 KB goes through argv.
    out = ragexctl(hostile.rx.env, "search", "--json", "--project", str(hostile.root),
                   "y" * 100_000, timeout=60)
    assert out.returncode == 2 and '"too_large"' in out.stderr, out.stderr[-400:]
    figure("1 MB query", f"too_large in {took * 1000:.0f} ms (protocol), and from ragexctl "
           "(100 KB argument) before any round trip", seconds=took)


# --- paths that try to leave the project ---------------------------------------------


def test_the_filesystem_root_is_never_served_as_a_project(hostile: Hostile) -> None:
    """Whoever asks (a fuzzed frame did, in a CI run): no worker walks /proc and /sys."""
    client = hostile.client
    for spelled in ("/", "/.", "/tmp/..", "//"):
        reply = client.call(Op.SEARCH, spelled, 60, query="def slugify", mode="regex")
        assert not reply.ok and reply.error.code is ErrorCode.BAD_REQUEST, (spelled, reply)
        assert "root directory" in reply.error.message and ".ragexroot" in reply.error.message
    assert all(w["root"] != "/" for w in client.status()["workers"])


def test_paths_with_dotdot_and_links_resolve_or_are_refused(hostile: Hostile) -> None:
    client, root, base = hostile.client, hostile.root, hostile.base
    alias = base / "alias"
    alias.symlink_to(root, target_is_directory=True)
    for spelled in (f"{root}/../{root.name}", f"{root}/./", str(alias)):
        reply = client.call(Op.SEARCH, spelled, 60, query="def slugify", mode="regex")
        assert _hits(reply), (spelled, reply)
    workers = [w for w in client.status()["workers"] if w["root"] == str(root)]
    assert len(workers) == 1 and len(client.status()["workers"]) == 1, \
        "one project spelled three ways must be one worker"
    relative = client.call(Op.SEARCH, "hostile/..", 10, query="x", mode="regex")
    assert relative.error.code is ErrorCode.BAD_REQUEST, relative

    for globs in (["../outside/*"], ["/etc/*"], ["../../etc/passwd"], [f"{hostile.outside}/*"],
                  ["linked_dir/*"], ["etc_link/passwd"]):
        reply = client.call(Op.SEARCH, root, 60, query="return", mode="regex", paths=globs)
        if reply.ok:
            assert not any(SECRET in h["text"] or "root:x" in h["text"]
                           for h in reply.result["hits"]), (globs, reply.result)
        else:
            assert reply.error.code in (ErrorCode.PATH_OUTSIDE_PROJECT, ErrorCode.BAD_QUERY), \
                (globs, reply.error)

    outside = ["../outside/secret.py", "/etc/passwd", str(hostile.outside / "secret.py"),
               "linked_file.py"]
    reply = client.call(Op.INDEX, root, 120, rebuild=False, paths=outside)
    if not reply.ok:
        assert reply.error.code in (ErrorCode.PATH_OUTSIDE_PROJECT, ErrorCode.BAD_REQUEST), reply
    indexed = {p for (p,) in hostile.catalog_rows("SELECT path FROM files")}
    assert not any(p.startswith(("linked_", "etc_link", "..", "/")) for p in indexed), indexed
    assert _hits(hostile.search("exfiltrate_secret_token", mode="symbol")) == []
    assert _hits(hostile.search(SECRET)) == []


def test_explicit_index_paths_through_symlinked_dirs_are_not_followed(hostile: Hostile) -> None:
    client, root = hostile.client, hostile.root
    through = ["linked_dir/secret.py", "etc_link/passwd", "etc_link/hostname"]
    try:
        reply = client.call(Op.INDEX, root, 120, rebuild=False, paths=through)
        indexed = {p for (p,) in hostile.catalog_rows("SELECT path FROM files")}
        symbol = _hits(hostile.search("exfiltrate_secret_token", mode="symbol"))
        semantic = _hits(hostile.search("the secret token", mode="semantic"))
        leaks = [p for p in indexed if p.startswith(("linked_", "etc_link"))]
        leaks += [f"symbol hit {h['path']}" for h in symbol]
        leaks += [f"semantic hit {h['path']}: {h['text'][:40]!r}" for h in semantic
                  if SECRET in h["text"] or h["path"].startswith(("linked_", "etc_link"))]
        assert not leaks, (reply.ok, leaks)
    finally:
        # Whatever happened, leave the index clean for the tests that follow.
        client.call(Op.INDEX, root, 120, rebuild=True, paths=None)


# --- files changing while they are indexed ----------------------------------------------


def test_files_changing_during_indexing_end_consistent(hostile: Hostile) -> None:
    client, base = hostile.client, hostile.base
    root = base / "churn"
    root.mkdir()
    files = 30
    version = [0] * files

    def write(k: int) -> None:
        v = version[k]
        (root / f"churn_{k:02d}.py").write_text(
            f"def churn_{k}_v{v}(x):\n    return x + {v}\n\n\n"
            f"def keep_{k}(y):\n    return y * {k}\n")

    for k in range(files):
        write(k)
    stop = threading.Event()
    changes = [0]

    def churn() -> None:
        n = 0
        while not stop.is_set():
            k = n % files
            version[k] += 1
            write(k)
            if n % 7 == 0:
                (root / f"tmp_{n}.py").write_text(f"def temp_{n}():\n    pass\n")
                old = root / f"tmp_{n - 7}.py"
                if old.exists():
                    old.unlink()
            n += 1
            changes[0] = n
            time.sleep(0.003)

    churner = threading.Thread(target=churn, daemon=True)
    req = Request(Op.INDEX, args={"rebuild": False, "paths": None}, project=str(root))
    client.send(req)
    try:
        while True:
            message = client.recv(timeout=240)
            if isinstance(message, Progress) and message.phase in ("scanning", "embedding"):
                if not churner.is_alive():
                    churner.start()
                continue
            if isinstance(message, Reply) and message.id == req.id:
                first = message
                break
        if not churner.is_alive():
            churner.start()
        time.sleep(0.5)
    finally:
        stop.set()
        churner.join(10)
    assert first.ok or first.error.code is not ErrorCode.INTERNAL, first.error
    during = changes[0]
    settle = client.call(Op.INDEX, root, 240, rebuild=False, paths=None)
    assert settle.ok, settle.error
    conn = sqlite3.connect(f"file:{Path(hostile.rx.env['RAGEX_DATA_DIR'])}/projects/"
                           f"{paths.project_id_for(root)}/catalog.sqlite?mode=ro", uri=True)
    try:
        indexed = {p for (p,) in conn.execute("SELECT path FROM files")}
        names = {(p, n) for p, n in conn.execute("SELECT path, name FROM chunks")}
    finally:
        conn.close()
    on_disk = {p.name for p in root.iterdir() if p.suffix == ".py"}
    assert indexed == on_disk, (indexed ^ on_disk)
    expected = set()
    for name in on_disk:
        text = (root / name).read_text()
        expected |= {(name, line.split("(")[0][4:]) for line in text.splitlines()
                     if line.startswith("def ")}
    assert {(p, n) for p, n in names if n} == expected, \
        sorted(({(p, n) for p, n in names if n} ^ expected))[:10]
    figure("files changing during indexing",
           f"{during} writes/creates/deletes while the first index ran "
           f"({'ok' if first.ok else first.error.code.value}); after one more index the catalog "
           f"matched the tree exactly ({len(on_disk)} files, {len(expected)} functions, "
           "0 stale, 0 missing)", writes=during)
