"""Incremental indexing, deletions, ignore files, rebuild, corruption, odd files,
concurrent searches — on a small real tree (stdlib json + a few email modules)."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

import pytest

from ragexd.engine import Engine, EngineError, IndexProgress, SearchQuery, indexer
from ragexd.engine.catalog import Catalog

from tests.harness import STDLIB, copy_stdlib

EMAIL_FILES = ("base64mime.py", "quoprimime.py", "encoders.py", "charset.py", "errors.py")


def make_tree(base: Path) -> Path:
    root = copy_stdlib(base, "json")
    (root / "email").mkdir()
    for name in EMAIL_FILES:
        (root / "email" / name).write_bytes((STDLIB / "email" / name).read_bytes())
    return root


def sym(engine: Engine, name: str, **kw):
    return engine.search(SearchQuery(name, mode="symbol", **kw)).hits


def ids_of(engine: Engine) -> tuple[set[str], set[str]]:
    return engine._catalog.chunk_ids(), engine._vectors.all_ids()


@pytest.fixture(scope="module")
def project():
    base = Path(tempfile.mkdtemp(prefix="rx-inc-"))
    root = make_tree(base / "tree")
    engine = Engine(root, base / "index")
    first = engine.index()
    yield engine, root, base, first
    engine.close()
    shutil.rmtree(base, ignore_errors=True)


def test_first_index_then_nothing_to_do(project) -> None:
    engine, root, _, first = project
    assert first.files_indexed == first.files_scanned >= 10
    assert first.chunks_embedded == first.chunks_added == first.chunks_total > 100
    again = engine.index()
    assert (again.files_indexed, again.chunks_embedded, again.chunks_added) == (0, 0, 0)
    assert again.files_unchanged == first.files_scanned
    cat, vec = ids_of(engine)
    assert cat == vec and len(cat) == first.chunks_total


def test_edit_is_picked_up_and_only_it_is_reembedded(project) -> None:
    engine, root, _, _ = project
    path = root / "json" / "decoder.py"
    before = path.read_text()
    assert "def py_scanstring(" in before
    path.write_text(before.replace("def py_scanstring(", "def py_scanstring_renamed("))
    # the snippet is read from disk now, and flagged stale until re-indexed
    hit = sym(engine, "py_scanstring")[0]
    assert hit.stale
    s = engine.index()
    assert s.files_indexed == 1 and s.files_unchanged == s.files_scanned - 1
    # one function changed: its own vector is recomputed, plus at most the
    # module blocks whose lines moved; every other chunk keeps its vector
    assert 1 <= s.chunks_embedded <= 3, s
    hit = sym(engine, "py_scanstring_renamed")[0]
    assert hit.path == "json/decoder.py" and not hit.stale
    assert not [h for h in sym(engine, "py_scanstring") if h.name == "py_scanstring"]
    cat, vec = ids_of(engine)
    assert cat == vec


def test_touch_without_change_costs_no_embedding(project) -> None:
    engine, root, _, _ = project
    p = root / "json" / "encoder.py"
    os.utime(p, ns=(time.time_ns(), time.time_ns() + 10**9))
    s = engine.index()
    assert s.files_indexed == 0 and s.chunks_embedded == 0
    assert engine._catalog.file("json/encoder.py").mtime_ns == p.stat().st_mtime_ns


def test_a_save_that_keeps_size_and_mtime_is_indexed_when_its_path_is_named(project) -> None:
    """Two saves of the same size within one timestamp tick (or a tool that keeps
    the mtime: ``cp -p``, ``touch -r``, an archive) leave the stat unchanged.  The
    watcher still sees the second save and names the file; the index trusted the
    stat over the event and kept the first save's text for good."""
    engine, root, _, _ = project
    path = root / "json" / "racy_mod.py"
    path.write_text("def racy_first_version():\n    return 1\n")
    engine.index(paths=["json/racy_mod.py"])
    st = path.stat()
    path.write_text("def racy_other_version():\n    return 2\n")   # same size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))           # same tick
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    s = engine.index(paths=["json/racy_mod.py"])
    assert s.files_indexed == 1, s
    assert sym(engine, "racy_other_version")[0].path == "json/racy_mod.py"
    assert not [h for h in sym(engine, "racy_first_version") if h.name == "racy_first_version"]
    again = engine.index(paths=["json/racy_mod.py"])   # named again, unchanged: a read only
    assert (again.files_indexed, again.chunks_embedded, again.files_unchanged) == (0, 0, 1)
    path.unlink()
    engine.index(paths=["json/racy_mod.py"])


def test_deleted_file_disappears(project) -> None:
    engine, root, _, _ = project
    assert sym(engine, "encode_base64")
    (root / "email" / "encoders.py").unlink()
    s = engine.index()
    assert s.files_removed == 1 and s.chunks_removed > 0
    assert not [h for h in sym(engine, "encode_base64") if h.path == "email/encoders.py"]
    assert not engine.search(SearchQuery("encode the message payload in base64",
                                         mode="semantic", path_globs=("email/encoders.py",))).hits
    cat, vec = ids_of(engine)
    assert cat == vec


def test_paths_mode_reindexes_only_those(project) -> None:
    engine, root, _, _ = project
    (root / "json" / "extra_mod.py").write_text("def brand_new_helper(x):\n    return x * 2\n")
    s = engine.index(paths=["json/extra_mod.py"])
    assert (s.files_scanned, s.files_indexed) == (1, 1)
    assert sym(engine, "brand_new_helper")[0].path == "json/extra_mod.py"
    (root / "json" / "extra_mod.py").unlink()
    s = engine.index(paths=[str(root / "json" / "extra_mod.py")])  # absolute paths work too
    assert s.files_removed == 1 and not sym(engine, "brand_new_helper")


def test_gitignore_added_later_removes_files(project) -> None:
    engine, root, _, _ = project
    (root / "email" / ".gitignore").write_text("charset.py\n")
    try:
        s = engine.index()
        assert s.files_removed == 1
        assert not [h for h in sym(engine, "Charset") if h.path == "email/charset.py"]
        assert not engine.search(SearchQuery("ALIASES", mode="regex",
                                             path_globs=("email/charset.py",))).hits
    finally:
        (root / "email" / ".gitignore").unlink()
    assert engine.index().files_indexed == 1
    assert sym(engine, "Charset")[0].path == "email/charset.py"


def test_fifo_socket_vanishing_file_do_not_hang(project) -> None:
    engine, root, _, _ = project
    os.mkfifo(root / "fifo.py")
    short = Path(tempfile.mkdtemp(prefix="rx-"))
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(short / "s"))
    os.rename(short / "s", root / "sock.py")  # a socket inside the tree
    for i in range(3):
        (root / f"zz_new_{i}.py").write_text(f"def vanishing_{i}():\n    return {i}\n")
    victim = root / "zz_new_2.py"

    def progress(p: IndexProgress) -> None:
        if p.phase == "cataloguing" and p.files_done == 0 and victim.exists():
            victim.unlink()  # vanishes after the scan, before it is read

    result: dict = {}
    t = threading.Thread(target=lambda: result.update(s=engine.index(progress=progress)))
    t.start()
    t.join(120)
    try:
        assert not t.is_alive(), "indexing hung on a FIFO or socket"
        s = result["s"]
        reasons = {k.path: k.reason for k in s.skipped}
        assert "not a regular file" in reasons["fifo.py"]
        assert "not a regular file" in reasons["sock.py"]
        assert "vanished" in reasons["zz_new_2.py"]
        names = {h.name for h in sym(engine, "vanishing_", limit=20)}
        assert names == {"vanishing_0", "vanishing_1"}
    finally:
        sock.close()
        shutil.rmtree(short, ignore_errors=True)
        for p in ("fifo.py", "sock.py", "zz_new_0.py", "zz_new_1.py"):
            (root / p).unlink()
        engine.index()


def generated(dest: Path, files: int = 30) -> None:
    """Small real-looking modules: several batches of quick-to-embed chunks."""
    dest.mkdir(parents=True)
    for i in range(files):
        body = "\n\n".join(f"def helper_{i}_{j}(value):\n    return value + {j}\n"
                           for j in range(4))
        (dest / f"gen_{i:02d}.py").write_text(body)


def test_search_during_indexing_is_partial(project, monkeypatch) -> None:
    engine, root, base, _ = project
    monkeypatch.setattr(indexer, "BATCH_FILES", 5)   # commit (and report) mid-phase
    extra = base / "tree" / "more"
    generated(extra)
    seen: dict = {}
    done = threading.Event()

    def progress(p: IndexProgress) -> None:
        if p.phase == "cataloguing" and p.files_done > 0 and "out" not in seen:
            def probe() -> None:
                seen["out"] = engine.search(SearchQuery("dumps", mode="symbol"))
                seen["status"] = engine.status()
                seen["semantic"] = engine.search(SearchQuery("encode json", mode="semantic"))
            th = threading.Thread(target=probe)
            th.start()
            th.join(60)
    s = engine.index(progress=progress)
    done.set()
    try:
        assert s.files_indexed >= 3
        assert seen["out"].partial and seen["out"].hits
        assert seen["semantic"].partial and seen["semantic"].hits
        assert seen["status"].state == "indexing" and seen["status"].pending_files > 0
        assert not engine.search(SearchQuery("dumps", mode="symbol")).partial
        assert engine.status().state == "ready"
    finally:
        import shutil
        shutil.rmtree(extra)
        engine.index()


def test_cancel_leaves_a_partial_index_that_converges(project) -> None:
    engine, root, base, _ = project
    generated(base / "tree" / "more2")
    cancel = threading.Event()

    def progress(p: IndexProgress) -> None:
        if p.phase == "embedding" and p.files_done > 0:
            cancel.set()
    try:
        s = engine.index(progress=progress, cancel=cancel)
        assert s.cancelled
        assert engine.status().state == "partial"
        assert engine.search(SearchQuery("dumps", mode="symbol")).partial
        left = engine._catalog.pending_count()   # catalogued, vector not stored yet
        s2 = engine.index()
        assert not s2.cancelled and s2.chunks_embedded == left   # resumed, nothing twice
        assert engine.status().state == "ready"
        cat, vec = ids_of(engine)
        assert cat == vec
    finally:
        import shutil
        shutil.rmtree(base / "tree" / "more2")
        engine.index()


def test_rebuild_yields_the_same_chunks(project) -> None:
    engine, _, _, _ = project
    before = ids_of(engine)
    s = engine.index(rebuild=True)
    assert s.chunks_embedded == s.chunks_total == len(before[0])
    assert ids_of(engine) == before


def test_corrupt_catalog_is_reported_and_rebuild_recovers() -> None:
    base = Path(tempfile.mkdtemp(prefix="rx-cor-"))
    root = base / "tree"
    root.mkdir()
    (root / "a.py").write_text("def alpha_function():\n    return 1\n")
    idx = base / "index"
    e = Engine(root, idx)
    e.index()
    e.close()
    (idx / "project.json").write_text("{}")  # not ours: rebuild must leave it alone
    for name in os.listdir(idx):
        if name.startswith("catalog.sqlite"):
            os.unlink(idx / name)
    (idx / "catalog.sqlite").write_bytes(b"this is not a database" * 100)
    e = Engine(root, idx)  # opening is fine ...
    try:
        with pytest.raises(EngineError) as err:
            e.search(SearchQuery("alpha_function", mode="symbol"))
        assert err.value.code == "index_corrupt" and "--rebuild" in err.value.message
        assert e.status().state == "corrupt"
        # a grep does not need the index
        assert e.search(SearchQuery("alpha", mode="regex")).hits
        with pytest.raises(EngineError) as err:
            e.index()
        assert err.value.code == "index_corrupt"
        e.index(rebuild=True)
        assert e.search(SearchQuery("alpha_function", mode="symbol")).hits
        assert e.status().state == "ready"
        assert (idx / "project.json").read_text() == "{}"
    finally:
        e.close()
        shutil.rmtree(base, ignore_errors=True)


def test_corrupt_vector_store_is_reported() -> None:
    base = Path(tempfile.mkdtemp(prefix="rx-cor-"))
    root = base / "tree"
    root.mkdir()
    (root / "a.py").write_text("def alpha_function():\n    return 1\n")
    e = Engine(root, base / "index")
    e.index()
    e.close()
    (base / "index" / "vectors.sqlite").write_bytes(b"garbage" * 1000)
    e = Engine(root, base / "index")
    try:
        assert e.search(SearchQuery("alpha_function", mode="symbol")).hits
        with pytest.raises(EngineError) as err:
            e.search(SearchQuery("a function returning one", mode="semantic"))
        assert err.value.code == "index_corrupt"
        e.index(rebuild=True)
        assert e.search(SearchQuery("a function returning one", mode="semantic")).hits
    finally:
        e.close()
        shutil.rmtree(base, ignore_errors=True)


def test_catalog_format_version_is_checked(tmp_path: Path) -> None:
    db = tmp_path / "catalog.sqlite"
    Catalog(db).close()
    conn = sqlite3.connect(db)
    conn.execute("UPDATE meta SET value='999' WHERE key='format'")
    conn.commit()
    conn.close()
    with pytest.raises(EngineError) as err:
        Catalog(db)
    assert err.value.code == "index_corrupt"


def test_a_failed_index_sets_last_error_and_is_not_reported_as_still_being_built(
        project) -> None:
    engine, root, base, _ = project
    (root / "failing.py").write_text("def fails_to_store():\n    return 'boom'\n")

    def broken_store(n: int) -> None:
        raise RuntimeError("the store broke")
    engine._fault_hook = broken_store
    try:
        with pytest.raises(RuntimeError):
            engine.index()
    finally:
        engine._fault_hook = None
    try:
        status = engine.status()
        assert "the store broke" in status.last_error
        outcome = engine.search(SearchQuery("dumps", mode="symbol"))
        assert not outcome.partial, "nothing is being built: the run failed"
        assert any("the last index failed" in n and "the store broke" in n
                   for n in outcome.notes), outcome.notes
        # the next worker (a new engine on the same index) knows it too
        other = Engine(root, base / "index")
        try:
            assert "the store broke" in other.status().last_error
        finally:
            other.close()
        engine.index()  # a run that succeeds clears it
        assert engine.status().last_error == ""
        assert not engine.search(SearchQuery("dumps", mode="symbol")).notes
    finally:
        (root / "failing.py").unlink(missing_ok=True)
        engine.index()


def _embedded_texts(root: Path, rel: str) -> set[str]:
    """What the indexer embeds for ``rel`` as it is now."""
    from ragexd.engine.chunking import chunk_file
    from ragexd.engine.embedding import context_text

    return {context_text(c) for c in chunk_file(rel, (root / rel).read_text(), "python")}


def test_lines_inserted_at_the_top_re_embed_only_the_chunks_whose_text_changed(
        tmp_path: Path) -> None:
    """20 lines (a new function and comments) at the top of a file of many
    functions move every chunk below them to new lines, hence new ids: they keep
    their vectors (same embedded text), only the chunks whose text is new are
    embedded, and the index then equals a full rebuild, vector for vector."""
    root = copy_stdlib(tmp_path / "tree", "base64.py", "glob.py", "posixpath.py")
    engine = Engine(root, tmp_path / "idx")
    try:
        engine.index()
        before = _embedded_texts(root, "base64.py")
        ids_before = {c.id for c in engine._catalog.chunks_of("base64.py")}
        head = ("def inserted_helper(data):\n    \"\"\"Count the padding bytes.\"\"\"\n"
                "    return data.count(b'=')\n\n\n"
                + "".join(f"# inserted line {i}\n" for i in range(15)))
        assert head.count("\n") == 20
        path = root / "base64.py"
        path.write_text(head + path.read_text())
        new_texts = _embedded_texts(root, "base64.py") - before
        after = engine._catalog  # (same object: read below, after the run)
        s = engine.index()
        rows = after.chunks_of("base64.py")
        moved = [r for r in rows if r.id not in ids_before]
        assert len(rows) > 30 and len(moved) == len(rows)   # every id changed
        assert 1 <= len(new_texts) <= 3, new_texts
        assert s.chunks_embedded == len(new_texts), s
        assert s.chunks_reused == len(rows) - len(new_texts), s
        assert sym(engine, "inserted_helper")[0].line == 1
        cat, vec = ids_of(engine)
        assert cat == vec

        fresh = Engine(root, tmp_path / "idx-rebuilt")
        try:
            assert fresh.index().chunks_embedded == len(cat)
            assert fresh._catalog.chunk_ids() == cat
            import numpy as np

            for cid in sorted(cat):
                a, b = engine._vectors.vector_of(cid), fresh._vectors.vector_of(cid)
                assert float(np.dot(a, b)) > 0.9999, cid
            for q in ("decode base32 data", "split a path into directory and name",
                      "match file names with a wildcard pattern"):
                got = engine.search(SearchQuery(q, mode="semantic", limit=8)).hits
                want = fresh.search(SearchQuery(q, mode="semantic", limit=8)).hits
                assert [(h.path, h.line) for h in got] == [(h.path, h.line) for h in want], q
                assert [h.score for h in got] == pytest.approx([h.score for h in want],
                                                               abs=1e-4)
        finally:
            fresh.close()
    finally:
        engine.close()


def test_an_index_chunked_by_older_rules_is_chunked_again_without_re_embedding(
        tmp_path: Path) -> None:
    """A fix to the chunker (here: a C++ definition's line after its [[attributes]])
    must reach files nobody edits.  An index that says it was cut by older rules,
    and holds what those rules made, is chunked again by its next full run: the
    line is the def's, no unchanged text is embedded again, and the run after
    that finds nothing to do."""
    root = tmp_path / "tree"
    root.mkdir()
    (root / "a.cpp").write_text("[[nodiscard]]\n[[deprecated(\n    \"use g\")]]\n"
                                "int f(int a) {\n    return a;\n}\n")
    (root / "b.py").write_text("def g(x):\n    return x\n")
    engine = Engine(root, tmp_path / "idx")
    try:
        first = engine.index()
        assert sym(engine, "f")[0].line == 4
        # what the old rules left behind: the attribute's line, no rules recorded
        catalog = engine._catalog
        with catalog.conn() as conn:
            conn.execute("UPDATE chunks SET line = 1 WHERE name = 'f'")
        catalog.set_meta(indexer.CHUNK_RULES_KEY, None)
        assert sym(engine, "f")[0].line == 1
        again = engine.index()
        assert sym(engine, "f")[0].line == 4
        assert again.files_indexed == 2 and again.chunks_embedded == 0, again
        cat, vec = ids_of(engine)
        assert cat == vec and len(cat) == first.chunks_total
        third = engine.index()
        assert (third.files_indexed, third.files_unchanged) == (0, 2), third
    finally:
        engine.close()


def test_a_run_that_chunks_every_file_again_says_why_once_in_progress_and_summary(
        tmp_path: Path) -> None:
    """A first full run after an upgrade of the chunker reads every file, unasked:
    like an embedder change, it says why in its progress and again in its summary
    (the progress line is drawn over on a terminal), and the run after says
    nothing."""
    root = tmp_path / "tree"
    root.mkdir()
    (root / "b.py").write_text("def g(x):\n    return x\n")
    engine = Engine(root, tmp_path / "idx")
    try:
        engine.index()
        engine._catalog.set_meta(indexer.CHUNK_RULES_KEY, "1")
        seen: list = []
        again = engine.index(progress=seen.append)
        said = [p.message for p in seen if p.phase == "rechunking"]
        assert len(said) == 1 and "older rules (version 1; this ragex's are version " \
            f"{indexer.CHUNK_RULES})" in said[0], [p.phase for p in seen]
        assert [n for n in again.notes if "chunked by older rules (version 1" in n], again.notes
        seen.clear()
        third = engine.index(progress=seen.append)
        assert not [p for p in seen if p.phase == "rechunking"]
        assert not [n for n in third.notes if "older rules" in n], third.notes
    finally:
        engine.close()
