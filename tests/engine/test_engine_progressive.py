"""The two-phase first index: catalogue everything first, embed in priority
order, resume after a kill, and say honestly what each answer covers.

Real engine, real model, real chroma, real processes and SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from ragexd.engine import Engine, IndexProgress, SearchQuery, indexer
from ragexd.engine.priority import DOCS, EXAMPLES, RECENT, SOURCE, TESTS, VENDORED, classify

from tests.harness import STDLIB, copy_stdlib


def make_tree(base: Path) -> Path:
    """Project source (stdlib json), its tests, docs and vendored code."""
    root = copy_stdlib(base / "tree", "json")
    (root / "tests").mkdir()
    for i in range(6):
        (root / "tests" / f"test_codec_{i}.py").write_text(
            "".join(f"def test_case_{i}_{j}():\n    assert {j} == {j}\n\n" for j in range(8)))
    (root / "tests" / "test_late.py").write_text(
        "def late_helper(value):\n    \"\"\"Defined in the last file catalogued.\"\"\"\n"
        "    return value * 2\n")
    (root / "docs").mkdir()
    (root / "docs" / "guide.md").write_text("# Guide\n\nHow to decode JSON documents.\n")
    (root / "vendor").mkdir()
    shutil.copy2(STDLIB / "textwrap.py", root / "vendor" / "textwrap.py")
    return root


@pytest.fixture()
def tree() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="rx-prog-"))
    yield make_tree(base)
    shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def first_index_held(engine: Engine, when: Callable[[IndexProgress], bool]) -> Iterator[None]:
    """Run ``engine``'s index in a thread and hold it at the first progress report
    ``when`` accepts, while the body searches; then let it finish.  (A test of what
    answers say mid-index needs the index to stand still at a known point.)"""
    reached, release = threading.Event(), threading.Event()

    def progress(p: IndexProgress) -> None:
        if when(p) and not reached.is_set():
            reached.set()
            release.wait(120)   # hold the run here while the test searches

    run = threading.Thread(target=lambda: engine.index(progress=progress))
    run.start()
    try:
        assert reached.wait(120), "the index never reached the point to hold it at"
        yield
    finally:
        release.set()
        run.join(600)


def test_paths_rank_source_before_tests_docs_examples_and_vendored_code() -> None:
    assert classify("pkg/core.py") == SOURCE
    assert classify("tests/test_core.py") == classify("pkg/core_test.go") == TESTS
    assert classify("pkg/conftest.py") == TESTS
    assert classify("docs/index.rst") == classify("README.md", "markdown") == DOCS
    assert classify("examples/plot.py") == EXAMPLES
    assert classify("third_party/lib/x.c") == classify("node_modules/a/b.js") == VENDORED
    assert RECENT < SOURCE < TESTS < DOCS < EXAMPLES < VENDORED


def test_once_every_file_is_catalogued_symbol_answers_are_complete_while_embedding_goes_on(
        tree: Path, monkeypatch) -> None:
    """A symbol answer needs only the catalogue: while a first index embeds (minutes
    on a large tree) every symbol search said "the index is still being built;
    results may be incomplete", though every definition was already there.  Meaning
    answers still say they are partial: they see only the vectors stored so far."""
    monkeypatch.setattr(indexer, "BATCH_CHUNKS", 16)   # progress after each 16 vectors
    engine = Engine(tree, tree.parent / "idx")
    try:
        with first_index_held(engine, lambda p: p.phase == "embedding"):
            for mode in ("symbol", "auto"):
                out = engine.search(SearchQuery("late_helper", mode=mode))
                assert [h.path for h in out.hits] == ["tests/test_late.py"], (mode, out.hits)
                assert out.coverage is not None and out.coverage.catalog_complete
                assert not out.coverage.complete and not out.partial, (mode, out)
            meaning = engine.search(SearchQuery("a helper defined last", mode="semantic"))
            assert meaning.partial
            # how much it saw is its coverage; a note restating it was said three times
            hybrid = engine.search(SearchQuery("a helper defined last", mode="hybrid"))
            for answer in (meaning, hybrid):
                assert answer.coverage is not None and not answer.coverage.complete
                assert not any("embedded" in n or "indexed so far" in n
                               for n in answer.notes), answer.notes
    finally:
        engine.close()


def test_symbol_search_during_first_index_never_claims_absent(tree: Path,
                                                              monkeypatch) -> None:
    """Stopped while cataloguing: a name in a file not yet catalogued is 'not
    found in the N of M files indexed so far', never plainly absent; once the
    catalog is complete the same search finds it."""
    monkeypatch.setattr(indexer, "BATCH_FILES", 2)
    engine = Engine(tree, tree.parent / "idx")
    try:
        with first_index_held(engine,
                              lambda p: p.phase == "cataloguing" and p.files_done >= 2):
            out = engine.search(SearchQuery("late_helper", mode="symbol"))
            cov = out.coverage
            assert out.hits == [] and out.partial
            assert cov is not None and not cov.catalog_complete and not cov.complete
            assert cov.files_total is not None and 0 < cov.files_indexed < cov.files_total
            said = " ".join(out.notes)
            assert "in the files indexed so far" in said and "may yet be found" in said
            auto = engine.search(SearchQuery("late_helper", mode="auto"))
            assert any("indexed so far" in n for n in auto.notes), auto.notes
            for answer in (out, auto):   # the counts are the coverage's, said once
                assert not re.search(r"\d+ of \d+", " ".join(answer.notes)), answer.notes
            assert not any(n.startswith("no symbol by that name;") for n in auto.notes)
        done = engine.search(SearchQuery("late_helper", mode="symbol"))
        assert [h.path for h in done.hits] == ["tests/test_late.py"]
        assert done.coverage is not None and done.coverage.complete
        assert done.coverage.files_indexed == done.coverage.files_total
        absent = engine.search(SearchQuery("no_such_function_anywhere", mode="symbol"))
        assert absent.hits == [] and not any("so far" in n for n in absent.notes)
        status = engine.status()
        assert status.state == "ready" and status.coverage == done.coverage
    finally:
        engine.close()


KILLED_AFTER = 3 * 8   # chunks stored when the child dies: three batches of 8
CHILD = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from ragexd.engine import Engine, indexer
    indexer.BATCH_CHUNKS = 8
    e = Engine(Path(sys.argv[1]), Path(sys.argv[2]))
    batches = [0]
    def hook(n):
        batches[0] += 1
        if batches[0] == 3:   # batch 3's vectors stored, not yet marked in the catalog
            os.kill(os.getpid(), signal.SIGKILL)
    e._fault_hook = hook
    e.index()
""")


def test_first_index_resumes_after_kill_without_re_embedding(tree: Path) -> None:
    """SIGKILL in the third embedding batch: the next run re-reads no catalogued
    file and embeds exactly the chunks without a stored vector; the source was
    embedded before the tests, docs and vendored code."""
    idx = tree.parent / "idx"
    child = subprocess.run([sys.executable, "-c", CHILD, str(tree), str(idx)],
                           capture_output=True, text=True, timeout=900,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]

    engine = Engine(tree, idx)
    try:
        assert engine.status().state == "partial"
        cov = engine.coverage()
        assert not cov.complete and not cov.catalog_complete
        stored = engine._vectors.all_ids()
        assert len(stored) == KILLED_AFTER        # batch 3 reached chroma before the kill
        source = {c.id for p in engine._catalog.files() if p.startswith("json/")
                  for c in engine._catalog.chunks_of(p)}
        assert len(source) > KILLED_AFTER and stored <= source   # source first
        meaning = engine.search(SearchQuery("decode a JSON document", mode="hybrid"))
        seen = meaning.coverage   # the catalog has not heard of batch 3 yet
        assert seen is not None and not seen.complete
        assert (seen.chunks_embedded, seen.chunks_indexed) == (KILLED_AFTER - 8,
                                                               cov.chunks_indexed)
        catalogued = set(engine._catalog.files())
        summary = engine.index()
        total = len(engine._catalog.chunk_ids())
        assert summary.chunks_embedded == total - KILLED_AFTER   # nothing embedded twice
        assert summary.files_indexed == len(set(engine._catalog.files()) - catalogued)
        assert engine._catalog.chunk_ids() == engine._vectors.all_ids()
        assert engine._vectors.count() == total
        after = engine.status()
        assert after.state == "ready" and after.coverage is not None
        assert after.coverage.complete and after.coverage.chunks_embedded == total
    finally:
        engine.close()


def test_concurrent_first_searches_attach_to_one_index(tree: Path) -> None:
    """Five agents search a never-indexed project at once: one index runs, every
    one of them gets an answer (none 'the index is empty'), with its coverage."""
    from ragexd.protocol import SearchArgs
    from ragexd.worker.service import WorkerService

    service = WorkerService(tree, tree.parent / "idx")
    service.open_engine()
    runs: list[int] = []
    real_index = service._engine.index

    def counted(**kw):   # the real index, counted
        runs.append(1)
        return real_index(**kw)
    service._engine.index = counted
    answers: list[dict] = []
    errors: list[BaseException] = []
    go = threading.Barrier(5)

    def ask(i: int) -> None:
        go.wait()
        try:
            answers.append(service.search(f"agent-{i}", SearchArgs(
                query="late_helper" if i % 2 else "JSONDecoder", mode="symbol",
                auto_index=True), timeout=60))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    agents = [threading.Thread(target=ask, args=(i,)) for i in range(5)]
    for a in agents:
        a.start()
    for a in agents:
        a.join(300)
    try:
        assert not errors, errors
        assert len(answers) == 5 and len(runs) == 1
        for answer in answers:
            assert answer["hits"], answer
            assert not any("empty" in n for n in answer["notes"]), answer["notes"]
            assert answer["coverage"]["catalog_complete"], answer["coverage"]
        assert service._first_index is not None
        service._first_index.join(600)
        status = service.status()["index"]
        assert status["state"] == "ready" and status["coverage"]["complete"], status
        again = service.search("later", SearchArgs(query="late_helper", mode="symbol",
                                                   auto_index=True), timeout=60)
        assert again["hits"] and len(runs) == 1   # a complete index is not re-run
    finally:
        service.close()


def test_repeated_index_runs_leave_no_connection_behind(tree: Path) -> None:
    """Each run embeds on a thread of its own; its catalog connection is closed
    when it ends, so a long-lived worker's descriptors and memory do not creep."""
    engine = Engine(tree, tree.parent / "idx")
    try:
        engine.index()
        held = len(engine._catalog._all)
        for i in range(3):
            (tree / "json" / "edited.py").write_text(f"def edited_{i}(value):\n    return {i}\n")
            summary = engine.index()
            assert summary.chunks_embedded >= 1
            assert len(engine._catalog._all) == held
    finally:
        engine.close()


def test_searches_during_a_long_first_index_wait_once_per_run_not_each(
        tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first search of a first index waits for it (at most the budget); later
    searches answer at once from what is there, saying so: a run that embeds for
    forty minutes must not cost every search of those forty minutes the budget.
    A bad --path glob is refused before any wait."""
    from ragexd.protocol import RagexError, SearchArgs
    from ragexd.worker import service as service_module
    from ragexd.worker.service import WorkerService

    budget = 15.0
    monkeypatch.setattr(service_module, "FIRST_ANSWER_WAIT", budget)
    service = WorkerService(tree, tree.parent / "idx")
    service.open_engine()
    gate = threading.Event()
    real_index = service._engine.index

    def slow(**kw):   # the real index, held back as a long embedding would be
        gate.wait(300)
        return real_index(**kw)
    service._engine.index = slow

    def timed(query: str, **kw) -> tuple[float, dict]:
        t0 = time.monotonic()
        answer = service.search(query, SearchArgs(query=query, mode="hybrid", auto_index=True,
                                                  **kw), timeout=120)
        return time.monotonic() - t0, answer
    try:
        first, answer = timed("decode a JSON document")
        assert first >= budget - 0.5, first           # the first search waited for it
        assert any("first index is running" in n for n in answer["notes"]), answer["notes"]
        for query in ("parse a number", "escape a string"):
            took, answer = timed(query)
            assert took < budget / 2, (query, took)   # later ones did not wait again
            assert any("first index is running" in n for n in answer["notes"]), answer
        t0 = time.monotonic()
        with pytest.raises(RagexError) as refused:
            timed("anything", paths=["../outside"])
        assert refused.value.code.value == "path_outside_project"
        assert time.monotonic() - t0 < budget / 2
        assert service.indexing   # all of it while the first index was still running
    finally:
        gate.set()
        service.cancel_index.set()
        if service._first_index is not None:
            service._first_index.join(600)
        service.close()


def test_a_name_in_a_late_catalogued_file_is_found_before_embedding_gets_going(
        monkeypatch) -> None:
    """Phase 1 has the processor to itself: the model is loaded meanwhile, but no
    batch is embedded until every file is catalogued, so a symbol search finds the
    function defined in a file catalogued among the last (``zzz/`` sorts after the
    other source; only email's ``architecture.rst``, a doc, comes later) while
    nothing is embedded, and when the catalogue is complete at most one batch is.
    (Encoding beside phase 1 took its CPU: on scikit-learn phase 1 ran 2.5-3x
    longer, for 2 % of the vectors.)  The two moments are polled separately: a
    search can see the late file's rows before the run marks the catalogue done.
    The embedder is held at its first report (one batch stored, or its child
    starting), so "at most one batch" does not depend on how soon a poll on a
    loaded machine comes round: that embedding waited for the catalogue is the
    order of the reports, which the hold does not change."""
    base = Path(tempfile.mkdtemp(prefix="rx-prog-"))
    try:
        root = copy_stdlib(base / "tree", "asyncio", "email", "json")
        (root / "zzz").mkdir()
        (root / "zzz" / "zz_last.py").write_text(
            "def zz_final_helper(value):\n    \"\"\"Catalogued after the source.\"\"\"\n"
            "    return value\n")
        monkeypatch.setattr(indexer, "BATCH_FILES", 4)     # many small commits
        monkeypatch.setattr(indexer, "BATCH_CHUNKS", 8)    # and small embedding steps
        engine = Engine(root, base / "idx")
        engine.load_model()   # ready to embed from the first commit on
        stop = threading.Event()
        phases: list[str] = []

        def progress(p: IndexProgress) -> None:
            phases.append(p.phase)
            if p.phase == "embedding":
                stop.wait(300)   # hold the embedder until the test has seen both moments

        run = threading.Thread(target=lambda: engine.index(cancel=stop, progress=progress))
        run.start()
        found = None
        catalogued = None
        deadline = time.monotonic() + 600   # a run held by a bug must not hang the suite
        try:
            while run.is_alive() and found is None and time.monotonic() < deadline:
                out = engine.search(SearchQuery("zz_final_helper", mode="symbol"))
                if out.hits:
                    found = out
                time.sleep(0.02)
            while run.is_alive() and catalogued is None and time.monotonic() < deadline:
                out = engine.search(SearchQuery("zz_final_helper", mode="symbol"))
                if out.coverage is not None and out.coverage.catalog_complete:
                    catalogued = out.coverage
                time.sleep(0.02)
        finally:
            stop.set()   # the rest of the embedding is not this test's business
            run.join(900)
        try:
            assert found is not None, "the run ended before the name was found"
            assert [h.path for h in found.hits] == ["zzz/zz_last.py"]
            cov = found.coverage
            assert cov is not None and not cov.complete, cov
            assert cov.chunks_embedded <= 8, cov      # (almost) nothing embedded yet
            assert cov.chunks_indexed > 1000, cov     # far from done
            assert catalogued is not None, "the run ended before the catalogue was seen complete"
            assert not catalogued.complete, catalogued
            assert catalogued.chunks_embedded <= 8, catalogued   # a batch stored since, at most
            assert phases.count("cataloguing") > 10   # many commits, each a chance to embed
            first_embedding = phases.index("embedding") if "embedding" in phases else len(phases)
            assert "cataloguing" not in phases[first_embedding:], phases
        finally:
            engine.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_an_index_run_counts_the_chunks_it_has_to_embed(tmp_path: Path) -> None:
    """Every embedding step says how many chunks the run embeds in all (the
    progress bar follows them: a bar of files, all catalogued by then, stood
    full for the minutes the vectors took), and the last has them all done."""
    root = tmp_path / "proj"
    root.mkdir()
    for i in range(6):
        (root / f"m{i}.py").write_text("".join(f"def f{i}_{j}(x):\n    return x + {j}\n\n\n"
                                               for j in range(20)))
    seen: list[IndexProgress] = []
    engine = Engine(root, tmp_path / "idx")
    try:
        engine.index(progress=seen.append)
    finally:
        engine.close()
    steps = [p for p in seen if p.phase == "embedding"]
    assert steps and all(p.chunks_total >= p.chunks_embedded for p in steps), steps
    assert {p.chunks_total for p in steps} == {120}, steps
    assert steps[-1].chunks_embedded == 120
