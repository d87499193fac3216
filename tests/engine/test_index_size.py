"""The index on disk stays small (issue #10: at most 3 KB a chunk; 2.4 KB is held
here since vectors are float16), also while its worker keeps it open (what
`ragexctl status` shows), no store keeps a second copy of the code, and the
space savings change nothing a user sees: deletes still leave the lexical index,
an index made by the previous catalog format or an older vector file is migrated
without losing a chunk or a vector and answers the same."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from ragexd.engine import Engine, SearchQuery
from ragexd.engine.catalog import FORMAT_VERSION, Catalog

from tests.harness import copy_stdlib

#: Bytes a chunk for the whole index (catalog + vectors).  Issue #10's target is
#: 3000; with float16 vectors stdlib ``email`` takes ~2030 (~2120 with the engine
#: open), against ~2760 with float32 rows, so 2400 fails if float32 rows come
#: back and leaves the catalog room to grow.
MAX_BYTES_A_CHUNK = 2400


def index_bytes(idx: Path) -> int:
    return sum(p.stat().st_size for p in idx.rglob("*") if p.is_file())


#: What the index's size is measured on, beside the chunks (see ``email_index``).
OPEN_BYTES: dict[str, int] = {}


@pytest.fixture(scope="module")
def email_index() -> Iterator[tuple[Path, Path, int]]:
    """stdlib ``email`` (~700 chunks) indexed once, its size taken while the engine
    is still open (``OPEN_BYTES``: a worker stays up between runs, so that is the
    size a user sees), then closed."""
    base = Path(tempfile.mkdtemp(prefix="rx-size-"))
    root = copy_stdlib(base / "tree", "email")
    engine = Engine(root, base / "index")
    try:
        chunks = engine.index().chunks_total
        OPEN_BYTES["email"] = index_bytes(base / "index")
    finally:
        engine.close()
    yield root, base / "index", chunks
    shutil.rmtree(base, ignore_errors=True)


def test_a_first_index_gives_back_the_pages_its_pending_texts_held(email_index) -> None:
    _, idx, _ = email_index
    conn = sqlite3.connect(idx / "catalog.sqlite")
    try:
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
        assert conn.execute("SELECT count(*) FROM pending").fetchone()[0] == 0
        assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0
    finally:
        conn.close()


def test_the_index_of_a_real_tree_takes_at_most_2_4_kb_a_chunk(email_index) -> None:
    _, idx, chunks = email_index
    assert chunks > 500
    print(f"\nindex of stdlib email: {index_bytes(idx) / chunks:.0f} bytes a chunk, "
          f"{OPEN_BYTES['email'] / chunks:.0f} with the engine open")
    assert index_bytes(idx) / chunks <= MAX_BYTES_A_CHUNK


def test_the_index_takes_at_most_2_4_kb_a_chunk_while_its_worker_keeps_it_open(
        email_index) -> None:
    """The write-ahead logs count: the vectors' stayed ~8 MB after every run."""
    _, _, chunks = email_index
    assert OPEN_BYTES["email"] / chunks <= MAX_BYTES_A_CHUNK


def plain_copies(db: Path, needle: str) -> list[str]:
    """``table.column`` of every value in an SQLite file that holds ``needle`` as
    it is (FTS5's own tables aside: an index of words, not of lines)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'fts%' "
            "AND name NOT LIKE 'sqlite_%'")]
        found = []
        for table in tables:
            for col in [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]:
                hits = conn.execute(f'SELECT count(*) FROM "{table}" WHERE '
                                    f'instr(CAST("{col}" AS BLOB), CAST(? AS BLOB)) > 0',
                                    (needle,)).fetchone()[0]
                if hits:
                    found.append(f"{table}.{col}")
        return found
    finally:
        conn.close()


def test_no_store_keeps_a_plain_copy_of_the_code_once_it_is_embedded(email_index) -> None:
    """The code is the project's files; the index keeps vectors, names, lines and
    a compressed word list for the lexical index (``fts_src``) -- never the text
    again (it was in chroma's documents, FTS5's content table and ``pending``)."""
    root, idx, _ = email_index
    lines = (root / "email" / "_header_value_parser.py").read_text().splitlines()
    defs = [ln.strip() for ln in lines if ln.startswith("def get_")]
    body = [ln.strip() for ln in lines if ln.startswith("    ") and len(ln.strip()) > 40
            and "(" in ln and not ln.strip().startswith(("#", "def ", '"'))]
    assert defs and len(body) > 20
    for db in ("catalog.sqlite", "vectors.sqlite"):
        for line in body[:20]:
            assert plain_copies(idx / db, line) == [], (db, line)
    # the probe sees what is kept: a definition's name and signature
    name = defs[0][4:defs[0].index("(")]
    assert set(plain_copies(idx / "catalog.sqlite", name)) >= {"chunks.name",
                                                                 "chunks.signature"}


def lexical(catalog: Catalog, word: str) -> list[str]:
    """Chunk ids the lexical (FTS) index finds for one keyword."""
    return [cid for cid, _ in catalog.fts_search(f'"{word}"', 50, (1.0, 1.0, 1.0))]


def test_a_deleted_function_is_no_longer_found_by_keyword(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    (root / "kept.py").write_text(
        "def kept_function():\n    return 'plainword'\n\n\n"
        "def removed_function():\n    return 'zyxwvut_marker'\n")
    (root / "gone.py").write_text("def gone_function():\n    return 'qwertyuiop_marker'\n")
    engine = Engine(root, tmp_path / "index")
    try:
        engine.index()
        catalog = engine._catalog
        assert lexical(catalog, "zyxwvut_marker") and lexical(catalog, "qwertyuiop_marker")

        (root / "kept.py").write_text(
            "def kept_function():\n    return 'plainword'\n\n\n"
            "def added_function():\n    return 'mnbvcxz_marker'\n")
        (root / "gone.py").unlink()
        engine.index()

        assert lexical(catalog, "zyxwvut_marker") == []
        assert lexical(catalog, "qwertyuiop_marker") == []
        assert lexical(catalog, "mnbvcxz_marker") and lexical(catalog, "plainword")
        conn = catalog.conn()
        chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        assert conn.execute("SELECT count(*) FROM fts_docsize").fetchone()[0] == chunks
        assert conn.execute("SELECT count(*) FROM fts_src").fetchone()[0] == chunks
    finally:
        engine.close()


def to_format_1(db: Path) -> None:
    """Rewrite a catalog as format 1 wrote it: the FTS table holds its own copy of
    the text, no ``fts_src``, no text keys (``chunks.tkey``), no auto-vacuum."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        rows = conn.execute("SELECT rid, z FROM fts_src").fetchall()
        from ragexd.engine.catalog import _unpack
        conn.execute("BEGIN")
        conn.execute("DROP TABLE fts")
        conn.execute("DROP TABLE fts_src")
        conn.execute("CREATE VIRTUAL TABLE fts USING fts5(names, doc, body, "
                     "tokenize = \"porter unicode61 tokenchars '_'\")")
        conn.executemany("INSERT INTO fts (rowid, names, doc, body) VALUES (?,?,?,?)",
                         [(rid, *_unpack(z)) for rid, z in rows])
        conn.execute("ALTER TABLE chunks DROP COLUMN tkey")
        conn.execute("UPDATE meta SET value='1' WHERE key='format'")
        conn.execute("COMMIT")
        conn.execute("PRAGMA auto_vacuum=NONE")
        conn.execute("VACUUM")
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    finally:
        conn.close()


QUERIES = ("parse a header value", "encode_base64", "quoted printable decode")


def answers(engine: Engine) -> list[list[tuple[str, int]]]:
    return [[(h.path, h.line) for h in engine.search(SearchQuery(q, mode=m, limit=8)).hits]
            for q in QUERIES for m in ("auto", "hybrid", "semantic", "symbol")]


def test_a_catalog_in_the_previous_format_is_migrated_keeping_every_chunk_and_vector(
        email_index, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root, idx, chunks = email_index
    engine = Engine(root, idx)
    try:
        before = answers(engine)
        chunk_ids, vector_ids = engine._catalog.chunk_ids(), engine._vectors.all_ids()
        words = {w: lexical(engine._catalog, w) for w in ("charset", "mime", "boundary")}
    finally:
        engine.close()
    old = tmp_path / "index"
    shutil.copytree(idx, old)
    to_format_1(old / "catalog.sqlite")

    # a reader beside a worker (or read-only media) serves the old format as it is
    reader = Catalog(old / "catalog.sqlite", reader=True)
    try:
        assert reader.get_meta("format") == "1"
        assert {w: lexical(reader, w) for w in words} == words
    finally:
        reader.close()

    with caplog.at_level("INFO", logger="ragexd.engine.catalog"):
        engine = Engine(root, old)
    try:
        assert any(f"migrated format 1 to {FORMAT_VERSION}" in r.getMessage()
                   for r in caplog.records)
        catalog = engine._catalog
        assert catalog.get_meta("format") == FORMAT_VERSION
        assert catalog.conn().execute("PRAGMA auto_vacuum").fetchone()[0] == 2
        assert catalog.chunk_ids() == chunk_ids and engine._vectors.all_ids() == vector_ids
        assert {w: lexical(catalog, w) for w in words} == words
        assert answers(engine) == before
        again = engine.index()
        assert again.chunks_embedded == 0 and again.chunks_total == chunks
    finally:
        engine.close()
    assert index_bytes(old) <= index_bytes(idx) * 1.05


def test_a_finished_run_leaves_no_wal_behind_while_the_stores_stay_open(
        tmp_path: Path) -> None:
    root = copy_stdlib(tmp_path / "tree", "json")
    engine = Engine(root, tmp_path / "index")
    try:
        engine.index()
        for db in ("catalog.sqlite", "vectors.sqlite"):
            wal = tmp_path / "index" / (db + "-wal")
            assert not wal.exists() or wal.stat().st_size == 0, db
        assert engine.search(SearchQuery("JSONDecoder", mode="symbol")).hits
        assert engine.search(SearchQuery("decode a JSON document", mode="semantic")).hits
    finally:
        engine.close()


def test_an_older_vector_file_gives_back_its_free_pages_after_the_next_run(
        email_index, tmp_path: Path) -> None:
    """A vector file made before incremental auto-vacuum kept every page a re-index
    freed, and an index on paths; the next run's compaction rewrites it once,
    keeping every vector."""
    root, idx, _ = email_index
    old = tmp_path / "index"
    shutil.copytree(idx, old)
    tree = tmp_path / "tree"
    shutil.copytree(root, tree)
    conn = sqlite3.connect(old / "vectors.sqlite", isolation_level=None)
    try:
        conn.execute("CREATE INDEX vec_path ON vec(path)")   # as the first layout had
        conn.execute("PRAGMA auto_vacuum=NONE")
        conn.execute("VACUUM")
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    finally:
        conn.close()
    engine = Engine(tree, old)
    try:
        before = answers(engine)
        gone = tree / "email" / "_header_value_parser.py"   # the largest file: many chunks
        kept = engine._vectors.all_ids() - {c.id for c in engine._catalog.chunks_of(
            "email/_header_value_parser.py")}
        gone.unlink()
        engine.index()
        conn = sqlite3.connect(f"file:{old / 'vectors.sqlite'}?mode=ro", uri=True)
        try:
            assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
            assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0
            assert conn.execute("SELECT name FROM sqlite_master WHERE type='index' AND "
                                "name='vec_path'").fetchall() == []
        finally:
            conn.close()
        assert engine._vectors.all_ids() == kept
        after = answers(engine)
        assert after != before   # the parser's chunks were answers, and are gone
        assert not any(p == "email/_header_value_parser.py" for a in after for p, _ in a)
    finally:
        engine.close()
    assert index_bytes(old) < index_bytes(idx)


def test_a_snapshot_made_by_the_previous_format_is_imported_and_migrated(
        email_index, tmp_path: Path) -> None:
    import gzip
    import io
    import json
    import tarfile

    from ragexd.engine import snapshot

    root, idx, chunks = email_index
    engine = Engine(root, idx)
    try:
        before = answers(engine)
        engine.export_snapshot(tmp_path / "new.tar.gz")
    finally:
        engine.close()
    # the same snapshot as the previous ragex wrote it: format-1 catalog and manifest
    buf = io.BytesIO()
    with tarfile.open(tmp_path / "new.tar.gz") as src, \
            tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if member.name == snapshot.MANIFEST:
                doc = json.loads(data)
                doc["catalog_format"] = "1"
                data = json.dumps(doc).encode()
            elif member.name == snapshot.CATALOG:
                (tmp_path / "cat.sqlite").write_bytes(data)
                to_format_1(tmp_path / "cat.sqlite")
                data = (tmp_path / "cat.sqlite").read_bytes()
            info = tarfile.TarInfo(member.name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    old = tmp_path / "old.tar.gz"
    old.write_bytes(gzip.compress(buf.getvalue()))

    engine = Engine(root, tmp_path / "index")
    try:
        engine.import_snapshot(old)
        assert engine._catalog.get_meta("format") == FORMAT_VERSION
        assert answers(engine) == before
        again = engine.index()
        assert again.chunks_embedded == 0 and again.chunks_total == chunks
    finally:
        engine.close()
