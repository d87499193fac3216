"""Faults: a worker killed or hung mid-work, a full or read-only disk, a corrupt
index, a project that disappears — each against a real ragexd and real workers.

One ragexd serves the module (its index directories live on a tmpfs, so "disk
full" is a real ENOSPC); tests run in file order and share two projects:
``corpus`` (big enough that indexing takes seconds) and ``small``.  Each test
brings the project it uses up to date first, so it can also run alone.  The
hung-worker test has a ragexd of its own, with a 3 s heartbeat timeout.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ragexd import paths
from ragexd.protocol import ErrorCode, Op, Progress, Reply, Request
from tests.harness import (Client, PrivateEnv, RagexInstance, index_oneshot, pid_alive, ragexctl,
                           short_tmp, wait_for, write_corpus, write_tree)

from .helpers import (HeartbeatProbe, figure, fill_disk, free_bytes, index_contents,
                      json_error, read_only, tmpfs)

pytestmark = pytest.mark.faults

HEARTBEAT_TIMEOUT = 3.0
#: The module's ragexd: half the default, still far above what a busy worker needs
#: (its PINGs answer within 0.05 s while indexing under load: test_load.py).
MODULE_HEARTBEAT_TIMEOUT = 10.0
CORPUS_FILES, CORPUS_FUNCS = 32, 8
TMPFS_SIZE = "384m"


class World:
    def __init__(self, base: Path, rx: RagexInstance) -> None:
        self.base = base
        self.rx = rx
        self.data = base / "data"
        self.client = rx.client()
        self.corpus = write_corpus(base / "corpus", CORPUS_FILES, CORPUS_FUNCS)
        self.small = write_tree(base / "small", files=6)
        self._clean: dict[str, Any] | None = None
        self._clean_error: BaseException | None = None
        # The clean reference index of the corpus is built meanwhile, by the
        # one-shot worker into another data directory (not on the tmpfs).
        self._clean_env = dict(rx.env, RAGEX_DATA_DIR=str(base / "clean"))
        self._thread = threading.Thread(target=self._build_clean, daemon=True)
        self._thread.start()

    def _build_clean(self) -> None:
        try:
            index_oneshot(self._clean_env, self.corpus)
            self._clean = index_contents(self._clean_env, self.corpus, Path(
                self._clean_env["RAGEX_DATA_DIR"]) / "projects" / paths.project_id_for(self.corpus))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test
            self._clean_error = exc

    def clean(self) -> dict[str, Any]:
        self._thread.join(600)
        if self._clean_error is not None:
            raise self._clean_error
        assert self._clean is not None
        return self._clean

    def index_dir(self, root: Path) -> Path:
        return self.data / "projects" / paths.project_id_for(root)

    def indexed(self, root: Path) -> None:
        """Bring ``root``'s index up to date (a no-op run when it is): each test
        can then also run alone."""
        reply = self.client.call(Op.INDEX, root, timeout=600, rebuild=False, paths=None)
        assert reply.ok, reply.error

    def stop(self, root: Path) -> None:
        reply = self.client.call(Op.STOP, root, timeout=60)
        assert reply.ok, reply.error


@pytest.fixture(scope="module")
def world(need_root: None) -> Iterator[World]:
    base = short_tmp()
    with tmpfs(base / "data", TMPFS_SIZE):
        rx = RagexInstance(base, RAGEX_WATCH="0",
                    RAGEX_HEARTBEAT_TIMEOUT=str(MODULE_HEARTBEAT_TIMEOUT))
        try:
            rx.start()
            yield World(base, rx)
        finally:
            rx.close()
    shutil.rmtree(base, ignore_errors=True)


def _semantic_top(client: Client, root: Path, query: str, timeout: float = 180.0) -> Reply:
    return client.call(Op.SEARCH, root, timeout, query=query, mode="semantic", limit=5)


def _names(reply: Reply) -> list[str]:
    assert reply.ok, reply.error
    return [h["name"] for h in reply.result["hits"]]


# --- kill -9 of a worker mid-index ---------------------------------------------------------


def test_kill_9_of_a_worker_mid_index_loses_and_duplicates_nothing(world: World) -> None:
    client, ctl, root = world.client, world.rx.client(), world.corpus
    req = Request(Op.INDEX, args={"rebuild": False, "paths": None}, project=str(root))
    client.send(req)
    victim = None
    deadline = time.monotonic() + 300
    while victim is None:
        assert time.monotonic() < deadline, "the index never got far enough to be killed"
        message = client.recv(timeout=240)
        if isinstance(message, Reply):
            assert message.id != req.id, f"the index ended before the kill: {message}"
            continue
        if (message.id == req.id and message.phase == "embedding" and message.files_total
                and message.files_done >= 0.3 * message.files_total):
            victim = ctl.worker(root)
            os.kill(victim["pid"], signal.SIGKILL)
            killed_at = time.monotonic()
            done_at_kill = (message.files_done, message.files_total)
    reply = client.reply_to(req.id, timeout=60)
    assert not reply.ok and reply.error.code is ErrorCode.WORKER_CRASHED, reply
    assert "ragexctl logs" in reply.error.message

    # The next search answers (a new worker, on the interrupted index; a regex
    # search needs no model, so this is how soon the project is usable again).
    search = client.call(Op.SEARCH, root, 120, query=r"def compute_\w+_0_", mode="regex")
    answered_after = time.monotonic() - killed_at
    assert search.ok, search.error
    assert search.result["hits"], search.result
    after = ctl.worker(root)
    assert after["pid"] != victim["pid"] and after["restarts"] >= 1
    assert after["last_error"] == "crashed: killed (SIGKILL)"

    # Re-index: exactly the chunks of a clean index of the same tree.
    reindex = client.call(Op.INDEX, root, timeout=600, rebuild=False, paths=None)
    assert reindex.ok, reindex.error
    summary = reindex.result["summary"]
    world.stop(root)                      # the vector store must not be open twice
    got = index_contents(world.rx.env, root, world.index_dir(root))
    clean = world.clean()
    lost = set(clean["catalog"]) - set(got["catalog"])
    extra = set(got["catalog"]) - set(clean["catalog"])
    assert clean["catalog"] == clean["vectors"] and clean["chunks"] >= 200
    assert not lost and not extra, (len(lost), len(extra))
    assert got["vectors"] == got["catalog"], "catalog and vector store disagree"
    assert got["vector_count"] == got["chunks"] == clean["chunks"], "duplicated vectors"
    assert got["files"] == clean["files"] == CORPUS_FILES and got["state"] == "ready"
    figure("kill -9 worker mid-index",
           f"killed at {done_at_kill[0]}/{done_at_kill[1]} files; next (regex) search answered "
           f"{answered_after:.1f} s after the kill (new worker); re-index embedded "
           f"{summary['chunks_embedded']} chunks for {summary['files_indexed']} files and gave "
           f"{got['chunks']} chunks = clean index ({clean['chunks']}), 0 lost, 0 duplicated, "
           f"vectors == catalog", answered_after_s=answered_after, chunks=got["chunks"])


def test_a_project_deleted_during_indexing(world: World) -> None:
    client, ctl, root = world.client, world.rx.client(), world.corpus
    _add_files(root, 40, "doomed")
    req = Request(Op.INDEX, args={"rebuild": False, "paths": None}, project=str(root))
    client.send(req)
    deleted_at = None
    while deleted_at is None:
        message = client.recv(timeout=240)
        assert not (isinstance(message, Reply) and message.id == req.id), message
        if isinstance(message, Progress) and message.files_done > 0:
            shutil.rmtree(root)
            deleted_at = time.monotonic()
    reply = client.reply_to(req.id, timeout=120)
    answered = time.monotonic() - deleted_at
    if not reply.ok:
        assert reply.error.code is not ErrorCode.INTERNAL, reply.error
        assert reply.error.message
    search = client.call(Op.SEARCH, root, 30, query="anything", mode="regex")
    assert not search.ok and search.error.code is ErrorCode.NOT_FOUND, search
    assert client.call(Op.PING).ok
    status = ctl.status()
    assert status["daemon"]["pid"] == world.rx.pid and world.rx.proc.poll() is None
    if reply.ok:
        skipped = reply.result["summary"]["skipped"]
        outcome = f"ok, {len(skipped)} files skipped, e.g. {skipped[:1]}"
    else:
        outcome = f"{reply.error.code.value}: {reply.error.message[:80]}"
    figure("project deleted mid-index",
           f"INDEX answered {answered:.1f} s after rm -rf ({outcome}); the next search: "
           "not_found at once; ragexd alive", answered_s=answered)


# --- a hung worker ---------------------------------------------------------------------------


def test_a_hung_worker_is_detected_and_replaced(need_root: None) -> None:
    """Its own ragexd: a 3 s heartbeat timeout suits a SIGSTOP, not a busy module."""
    rx = RagexInstance(RAGEX_WATCH="0", RAGEX_HEARTBEAT_INTERVAL="1",
                RAGEX_HEARTBEAT_TIMEOUT=str(HEARTBEAT_TIMEOUT))
    try:
        rx.start()
        client = rx.client()
        root = write_tree(rx.base / "hung", files=4)
        reply = client.call(Op.INDEX, root, timeout=300, rebuild=False, paths=None)
        assert reply.ok, reply.error
        worker = client.worker(root)
        os.kill(worker["pid"], signal.SIGSTOP)
        t0 = time.monotonic()
        try:
            wait_for(lambda: not pid_alive(worker["pid"]), HEARTBEAT_TIMEOUT + 15, 0.05,
                     what="the hung worker to be killed")
        finally:
            if pid_alive(worker["pid"]):
                os.kill(worker["pid"], signal.SIGKILL)
        detected = time.monotonic() - t0
        reply = client.call(Op.SEARCH, root, 120, query="def open_tcp", mode="regex")
        recovered = time.monotonic() - t0
        assert reply.ok and reply.result["hits"][0]["path"] == "network.py", reply
        now = client.worker(root)
        assert now["pid"] != worker["pid"]
        assert now["last_error"].startswith("hung: no answer to heartbeats"), now
        assert detected >= HEARTBEAT_TIMEOUT - 1.0
        figure("hung worker (SIGSTOP)",
               f"heartbeat timeout {HEARTBEAT_TIMEOUT:g} s: killed {detected:.1f} s after "
               f"SIGSTOP; next search answered {recovered:.1f} s after SIGSTOP by a new worker",
               detected_s=detected, recovered_s=recovered)
    finally:
        rx.cleanup()


# --- disk full -----------------------------------------------------------------------------


def _remove_added(root: Path) -> None:
    """Drop the modules _add_files wrote, so later tests search the small tree again."""
    for path in root.glob("fresh_*.py"):
        path.unlink()


def _add_files(root: Path, count: int, tag: str) -> list[str]:
    names = []
    for i in range(count):
        name = f"fresh_{tag}_{i:03d}.py"
        funcs = "".join(
            f"\n\ndef {tag}_handler_{i}_{j}(request, retries={j}):\n"
            f'    """Handle the {tag} request {i}.{j}: retry on timeouts, log failures."""\n'
            f"    for attempt in range(retries + {i % 3 + 1}):\n"
            f"        request = (request * {i + 7} + attempt) % {97 + j}\n"
            f"    return request\n" for j in range(8))
        (root / name).write_text(f'"""Fresh module {i}."""\n' + funcs)
        names.append(name)
    return names


def test_disk_full_during_indexing_is_a_clear_error_and_the_index_stays_searchable(
        world: World) -> None:
    client, root = world.client, world.small
    world.indexed(root)
    before = _semantic_top(client, root, "add sales tax to an invoice")
    assert _names(before)[0] == "compute_invoice_total"
    pid = client.worker(root)["pid"]
    _add_files(root, 20, "diskfull")
    filler = fill_disk(world.data, leave=128 * 1024)   # room for a batch at most, not all
    try:
        left = free_bytes(world.data)
        t0 = time.monotonic()
        reply = client.call(Op.INDEX, root, timeout=300, rebuild=False, paths=None)
        took = time.monotonic() - t0
        assert not reply.ok, f"indexing 160 new chunks into {left} free bytes succeeded?"
        assert reply.error.code is ErrorCode.INDEX_UNWRITABLE, reply.error
        assert "disk space" in reply.error.message, reply.error.message
        # The previous index still answers, by meaning, from the same worker.
        after = _semantic_top(client, root, "add sales tax to an invoice")
        assert _names(after)[0] == "compute_invoice_total"
        assert client.worker(root)["pid"] == pid, "the worker died of a full disk"
    finally:
        filler.unlink()
        world.stop(root)    # see test_indexing_again_after_a_disk_full_error (open gap)
    figure("disk full mid-index",
           f"tmpfs with {left // 1024} KiB free: INDEX answered index_unwritable after "
           f"{took:.1f} s ({reply.error.message[:90]}...); the previous index answered the "
           "same top hit from the same worker", seconds=took)


def test_after_a_disk_full_error_a_restarted_worker_indexes_and_lost_nothing(
        world: World) -> None:
    client, root = world.client, world.small
    world.stop(root)
    try:
        reply = client.call(Op.INDEX, root, timeout=600, rebuild=False, paths=None)
        assert reply.ok, reply.error
        found = client.call(Op.SEARCH, root, 60, query="diskfull_handler_19_7", mode="symbol")
        assert _names(found)[:1] == ["diskfull_handler_19_7"]
        assert _names(_semantic_top(client, root, "add sales tax to an invoice"))[0] == \
            "compute_invoice_total"
        status = client.worker(root)["index"]
        assert status["state"] == "ready" and status["files"] == 6 + 20, status
    finally:
        _remove_added(root)


def test_indexing_again_after_a_disk_full_error_succeeds(world: World) -> None:
    """The freeze depends on where the write failed, so up to four rounds of
    fill / fail / free / index again are tried: observed, ~3 of 4 rounds freeze."""
    client, root = world.client, world.small
    try:
        _index_again_after_disk_full(world, client, root)
    finally:
        _remove_added(root)


def _index_again_after_disk_full(world: World, client: Client, root: Path) -> None:
    for attempt in range(4):
        world.indexed(root)
        _add_files(root, 20, f"again{attempt}")
        filler = fill_disk(world.data, leave=128 * 1024)
        try:
            full = client.call(Op.INDEX, root, timeout=300, rebuild=False, paths=None)
            assert full.error is not None and full.error.code is ErrorCode.INDEX_UNWRITABLE, full
        finally:
            filler.unlink()
        probe = HeartbeatProbe(world.rx, root)
        again: Reply | None = None
        try:
            again = client.call(Op.INDEX, root, timeout=300, rebuild=False, paths=None)
        finally:
            worst_ping = probe.stop()
            if again is None or not again.ok:
                world.stop(root)     # leave a healthy worker for the tests that follow
        assert again.ok, (attempt, f"worst PING {worst_ping:.1f} s",
                          again.error.message if again.error else "")
        assert worst_ping < MODULE_HEARTBEAT_TIMEOUT, worst_ping


def test_disk_full_when_a_worker_restarts_the_index_stays_searchable(world: World) -> None:
    client, root = world.client, world.small
    world.indexed(root)
    world.stop(root)
    filler = fill_disk(world.data)
    try:
        reply = _semantic_top(client, root, "add sales tax to an invoice")
        assert _names(reply)[0] == "compute_invoice_total"
    finally:
        filler.unlink()
        world.stop(root)


def test_after_a_first_index_filled_the_disk_searches_answer_from_what_it_catalogued(
        need_root: None) -> None:
    """A first index catalogues the whole tree, then fills the disk with vectors.
    The next searches failed with the disk-full sentence, which itself says "the
    existing index is still searchable" (the worker restarted the first index for
    each search and passed its failure on; and the catalogue, all in SQLite's WAL,
    was reopened ignoring the WAL).  Now they answer, saying the last index failed."""
    env = PrivateEnv(TERM="dumb")
    try:
        with tmpfs(env.data, "1500k"):
            tree = write_corpus(env.base / "proj", files=20, funcs=30)
            first = env.ctl("search", "--mode", "symbol", "resolve_thumbnail_3_4",
                            "--project", str(tree), timeout=300)
            assert first.returncode in (0, 2), first.stderr
            wait_for(lambda: "indexing" not in env.ctl("status", timeout=60).stdout,
                     timeout=300, what="the first index to stop")
            for argv in (("--mode", "symbol", "compute_route_19_29"),
                         ("the thumbnail record",)):
                r = env.ctl("search", *argv, "--project", str(tree), timeout=300)
                assert r.returncode == 0, (argv, r.stderr)
                assert r.stdout.startswith("mod_0"), (argv, r.stdout)
                # and no retry of the first index meanwhile (it would fail at the disk
                # again, after embedding a batch for nothing)
                assert "the last index failed" in r.stderr and "disk" in r.stderr, r.stderr
                assert "running in the background" not in r.stderr, r.stderr
            assert env.ctl("search", "--mode", "symbol", "compute_route_19_29",
                           "--project", str(tree)).stdout.startswith("mod_019.py:")
            env.ctl("stop", "--all", timeout=60)
    finally:
        env.cleanup()


# --- a read-only index directory -----------------------------------------------------------


def test_read_only_index_dir_during_indexing_is_a_clear_error(world: World) -> None:
    """The directory turns read-only under a running worker (files it opened before
    stay writable through the old mount: the kernel's rule; each index run opens
    its own catalog connection, which then sees the read-only mount)."""
    client, root = world.client, world.small
    world.indexed(root)
    before = _semantic_top(client, root, "turn a title into a url slug")
    assert _names(before)[0] == "slugify"
    pid = client.worker(root)["pid"]
    (root / "readonly_probe.py").write_text("def probe_readonly_index():\n    return 1\n")
    with read_only(world.index_dir(root)):
        t0 = time.monotonic()
        reply = client.call(Op.INDEX, root, timeout=300, rebuild=False, paths=None)
        took = time.monotonic() - t0
        after = _semantic_top(client, root, "turn a title into a url slug")
    assert not reply.ok and reply.error.code is ErrorCode.INDEX_UNWRITABLE, reply.error
    assert "writable" in reply.error.message, reply.error.message
    assert after.ok and _names(after)[0] == "slugify", after.error
    assert client.worker(root)["pid"] == pid
    figure("read-only index dir during indexing",
           f"INDEX answered index_unwritable in {took:.1f} s ('{reply.error.message[:100]}...'); "
           "the previous index answered the same top hit from the same worker", seconds=took)


def test_read_only_index_dir_at_worker_start_still_searchable(world: World) -> None:
    client, root = world.client, world.small
    world.indexed(root)
    world.stop(root)
    (root / "readonly_probe2.py").write_text("def probe_readonly_again():\n    return 2\n")
    with read_only(world.index_dir(root)):
        search = _semantic_top(client, root, "turn a title into a url slug")
        index = client.call(Op.INDEX, root, timeout=300, rebuild=False, paths=None)
        world.stop(root)
    assert search.ok, search.error
    assert _names(search)[0] == "slugify"
    assert not index.ok and index.error.code is ErrorCode.INDEX_UNWRITABLE, index.error


def test_after_the_index_dir_is_writable_again_indexing_works(world: World) -> None:
    client, root = world.client, world.small
    world.stop(root)   # a worker that saw the read-only directory may cache that
    (root / "readonly_probe.py").write_text("def probe_readonly_index():\n    return 1\n")
    reply = client.call(Op.INDEX, root, timeout=300, rebuild=False, paths=None)
    assert reply.ok, reply.error
    found = client.call(Op.SEARCH, root, 60, query="probe_readonly_index", mode="symbol")
    assert _names(found)[:1] == ["probe_readonly_index"]
    assert _names(_semantic_top(client, root, "turn a title into a url slug"))[0] == "slugify"


# --- a corrupt index -----------------------------------------------------------------------


def _corrupt(catalog: Path, how: str) -> None:
    size = catalog.stat().st_size
    with open(catalog, "r+b") as fh:
        if how == "header":
            fh.write(os.urandom(4096))
        else:  # every page but the first two (schema) becomes noise
            fh.seek(8192)
            fh.write(os.urandom(max(0, size - 8192)))


@pytest.mark.parametrize("how", ["header", "pages"])
def test_a_corrupt_catalog_is_reported_and_rebuilt_with_ragexctl(world: World, how: str) -> None:
    client, root, env = world.client, world.small, world.rx.env
    world.indexed(root)
    world.stop(root)
    catalog = world.index_dir(root) / "catalog.sqlite"
    for suffix in ("-wal", "-shm"):
        assert not Path(str(catalog) + suffix).exists(), "the worker did not close the index"
    _corrupt(catalog, how)

    t0 = time.monotonic()
    out = ragexctl(env, "search", "--json", "--project", str(root), "turn a title into a url slug")
    detected = time.monotonic() - t0
    error = json_error(out.stderr)
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert error and error["code"] == "index_corrupt", out.stderr
    assert "ragexctl index --rebuild" in error["message"], error
    plain = ragexctl(env, "search", "--project", str(root), "turn a title into a url slug")
    assert plain.returncode == 2 and "ragexctl index --rebuild" in plain.stderr
    assert "Traceback" not in plain.stderr
    state = client.worker(root)["index"]
    assert state is None or state["state"] == "corrupt", state

    t0 = time.monotonic()
    rebuilt = ragexctl(env, "index", "--rebuild", str(root), timeout=600)
    rebuild_s = time.monotonic() - t0
    assert rebuilt.returncode == 0, rebuilt.stderr
    found = ragexctl(env, "search", "--json", "--project", str(root),
                     "turn a title into a url slug")
    assert found.returncode == 0, found.stderr
    assert '"slugify"' in found.stdout.splitlines()[0]
    figure(f"corrupt catalog ({how})",
           f"detected by the next `ragexctl search` in {detected:.1f} s: exit 2, index_corrupt, "
           f"'{error['message'][:80]}...'; `ragexctl index --rebuild` fixed it in "
           f"{rebuild_s:.1f} s", detected_s=detected, rebuild_s=rebuild_s)


# --- the project directory disappears -----------------------------------------------------


def test_a_project_moved_while_its_worker_runs(world: World) -> None:
    client, root = world.client, world.small
    world.indexed(root)
    assert _names(_semantic_top(client, root, "turn a title into a url slug"))[0] == "slugify"
    moved = root.with_name("small-moved")
    root.rename(moved)
    try:
        t0 = time.monotonic()
        reply = client.call(Op.SEARCH, root, 30, query="slugify", mode="regex")
        took = time.monotonic() - t0
        assert not reply.ok and reply.error.code is ErrorCode.NOT_FOUND, reply
        assert str(root) in reply.error.message and "does not exist" in reply.error.message
        out = ragexctl(world.rx.env, "search", "--project", str(root), "slugify", timeout=60)
        assert out.returncode == 2 and "no such file or directory" in out.stderr.lower(), out
        assert client.call(Op.PING).ok and client.status()["daemon"]["pid"] == world.rx.pid
    finally:
        moved.rename(root)
    back = client.call(Op.SEARCH, root, 60, query="def slugify", mode="regex")
    assert back.ok and back.result["hits"], back.error
    figure("project moved away", f"search answered not_found in {took * 1000:.0f} ms; "
           "ragexd kept serving; moved back, the same worker answered again", seconds=took)
