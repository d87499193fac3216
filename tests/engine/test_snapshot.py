"""Snapshots for real: a CI clone indexes commit A and exports it; a second clone at
commit B (committed changes and an uncommitted edit) imports it, re-embeds exactly
what differs, and answers as a fresh full index of B does.  Hostile archives are
refused with a sentence and leave the existing index as it was.

Real git, the real model, the real vector file; the tree is small (stdlib json + the
harness's client sample tree) so that the three full indexes it needs stay quick.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import sqlite3
import tarfile
from pathlib import Path

import pytest

from ragexd.engine import Engine, EngineError, SearchQuery, catalog, snapshot
from ragexd.engine.embedding import CONTEXT_VERSION, DEFAULT_VARIANT, MODEL_NAME, embedder_id
from ragexd.engine.engine import CATALOG_FILE, CHROMA_DIR, is_store_entry
from ragexd.engine.vectors import VECTORS_FILE

from tests.harness import commit_all, copy_stdlib, git, git_checkout, make_tree, short_tmp

QUERIES = [("parse a JSON document from a string", "semantic"),
           ("retry failed uploads with backoff", "hybrid"),
           ("sales tax of an invoice", "semantic"),
           ("JSONDecodeError", "symbol"),
           ("compute_invoice_total", "symbol"),
           ("encode python objects as json text", "auto")]


def answers(engine: Engine) -> list[list[tuple[str, int, int, str]]]:
    out = []
    for text, mode in QUERIES:
        hits = engine.search(SearchQuery(text, mode=mode, limit=8)).hits
        out.append([(h.path, h.line, h.end_line, h.name) for h in hits])
    return out


def stores(engine: Engine) -> tuple[dict[str, str], set[str], set[str]]:
    """What an index holds: file hashes, chunk ids, vector ids."""
    files = {p: r.sha256 for p, r in engine._catalog.files().items()}
    return files, engine._catalog.chunk_ids(), engine._vectors.all_ids()


@pytest.fixture(scope="module")
def world():
    base = short_tmp("rx-snap-")
    ci = base / "ci" / "repo"
    # commit A: the client suite's sample tree and the stdlib json package
    copy_stdlib(make_tree(ci), "json")
    commit_a = git_checkout(ci, "A")
    ci_engine = Engine(ci, base / "ci-index")
    ci_engine.index()
    archive = base / "snap.tar.gz"
    manifest = ci_engine.export_snapshot(archive)
    ci_engine.close()

    laptop = base / "home" / "src" / "repo"     # another clone, another path
    laptop.parent.mkdir(parents=True)
    git(base, "clone", "-q", str(ci), str(laptop))
    # commit B: one module changed, one added, one deleted...
    decoder = laptop / "json" / "decoder.py"
    decoder.write_text(decoder.read_text().replace(
        "class JSONDecodeError(ValueError):",
        "def strict_loads(text):\n"
        "    \"\"\"Parse JSON text, refusing NaN and Infinity.\"\"\"\n"
        "    return JSONDecoder(parse_constant=_refuse).decode(text)\n\n\n"
        "class JSONDecodeError(ValueError):"))
    (laptop / "shop" / "invoice.py").write_text(
        "def compute_invoice_total(items, tax_rate):\n"
        "    \"\"\"Sum the line items of an invoice and add the sales tax.\"\"\"\n"
        "    subtotal = sum(i.price * i.qty for i in items)\n"
        "    return round(subtotal * (1 + tax_rate), 2)\n")
    (laptop / "json" / "tool.py").unlink()
    commit_b = commit_all(laptop, "B")
    # ... and an edit not committed yet
    cart = laptop / "shop" / "cart.py"
    cart.write_text(cart.read_text() + "\n    def clear(self):\n"
                    "        \"\"\"Empty the cart.\"\"\"\n        self.items.clear()\n")

    fresh = Engine(laptop, base / "fresh-index")
    fresh_summary = fresh.index()
    yield {"base": base, "archive": archive, "manifest": manifest, "laptop": laptop,
           "commit_a": commit_a, "commit_b": commit_b, "fresh": fresh,
           "fresh_summary": fresh_summary}
    fresh.close()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def imported(world):
    engine = Engine(world["laptop"], world["base"] / "laptop-index")
    manifest = engine.import_snapshot(world["archive"])
    summary = engine.index()
    yield engine, manifest, summary
    engine.close()


def test_the_manifest_names_the_commit_the_model_and_every_file(world) -> None:
    m = world["manifest"]
    assert m.commit == world["commit_a"] and m.dirty is False
    assert m.format == snapshot.SNAPSHOT_FORMAT and m.embedder
    assert "json/tool.py" in m.files and "shop/invoice.py" not in m.files
    assert all(len(h) == 64 for h in m.files.values())
    with tarfile.open(world["archive"]) as tar:
        assert tar.getnames() == list(snapshot.MEMBERS)


def test_import_at_another_commit_re_embeds_exactly_the_changed_files(world, imported) -> None:
    _, manifest, summary = imported
    fresh = world["fresh_summary"]
    # decoder.py (committed change), invoice.py (new), cart.py (uncommitted edit)
    assert summary.files_indexed == 3, summary
    assert summary.files_removed == 1                  # tool.py
    assert summary.files_unchanged == fresh.files_scanned - 3
    assert summary.chunks_total == fresh.chunks_total
    # the chunks of B that the snapshot of A has no vector for are all in those
    # three files; of them, exactly those whose embedded text is new were
    # embedded: the ones that only moved (below strict_loads) kept their vectors
    members = dict(members_of(world["archive"]))
    shipped = set(json.loads(members[snapshot.IDS]))
    new_ids = world["fresh"]._catalog.chunk_ids() - shipped
    changed = {"json/decoder.py", "shop/invoice.py", "shop/cart.py"}
    assert world["fresh"]._catalog.paths_of_ids(new_ids) == changed
    a_catalog = world["base"] / "catalog-a.sqlite"
    a_catalog.write_bytes(members[snapshot.CATALOG])
    with sqlite3.connect(a_catalog) as conn:
        keys_a = {r[0] for r in conn.execute("SELECT tkey FROM chunks")}
    keys_b = {cid: key for p in changed
              for cid, key, _ in world["fresh"]._catalog.stored_chunks([p])}
    new_texts = [cid for cid in new_ids if keys_b[cid] not in keys_a]
    assert summary.chunks_embedded == len(new_texts) < len(new_ids) < fresh.chunks_embedded
    assert summary.chunks_reused == len(new_ids) - len(new_texts)


def test_the_imported_index_equals_a_fresh_full_index_of_the_new_commit(world, imported) -> None:
    engine = imported[0]
    fresh = world["fresh"]
    files, chunks, vectors = stores(engine)
    f_files, f_chunks, f_vectors = stores(fresh)
    assert files == f_files
    assert chunks == f_chunks == vectors == f_vectors
    assert answers(engine) == answers(fresh)
    assert engine.status().state == "ready"


def test_the_snapshot_carries_float16_vectors_exactly_as_the_index_keeps_them(
        world, imported) -> None:
    """Half the bytes of float32, and nothing rounded on the way: the values are the
    float16 the live store holds, read back by the importer unchanged."""
    import numpy as np

    members = dict(members_of(world["archive"]))
    assert json.loads(members[snapshot.MANIFEST])["format"] == snapshot.SNAPSHOT_FORMAT == 2
    mat = np.load(io.BytesIO(members[snapshot.VECTORS]), allow_pickle=False)
    ids = json.loads(members[snapshot.IDS])
    assert mat.dtype == np.float16 and mat.shape == (len(ids), 384)
    kept, got = imported[0]._vectors.export_vectors(ids)   # the unchanged files' chunks
    assert len(kept) > len(ids) // 2
    at = {cid: k for k, cid in enumerate(ids)}
    assert np.array_equal(got, mat[[at[c] for c in kept]].astype(np.float32))


def test_a_float32_snapshot_from_before_float16_imports_as_the_new_one_does(world) -> None:
    old = with_vectors(world["archive"], world["base"] / "format-1.tar.gz", "<f4", format=1)
    engine = Engine(world["laptop"], world["base"] / "format-1-index")
    try:
        assert engine.import_snapshot(old).format == 1
        summary = engine.index()
        assert summary.files_indexed == 3 and summary.files_removed == 1, summary
        assert stores(engine) == stores(world["fresh"])
        assert answers(engine) == answers(world["fresh"])
    finally:
        engine.close()


def test_an_edit_that_keeps_size_and_mtime_is_still_seen(world) -> None:
    """Checkouts that pin mtimes (reproducible builds, some CI caches) can give an
    edited file the snapshot's size and mtime: only its content hash tells."""
    clone = world["base"] / "pinned" / "repo"
    shutil.copytree(world["laptop"], clone)
    shipped = world["base"] / "shipped.sqlite"
    shipped.write_bytes(dict(members_of(world["archive"]))[snapshot.CATALOG])
    conn = sqlite3.connect(shipped)
    size, mtime = conn.execute("SELECT size, mtime_ns FROM files WHERE path = ?",
                               ("shop/upload.py",)).fetchone()
    conn.close()
    target = clone / "shop" / "upload.py"
    target.write_text(target.read_text().replace("delay *= 2", "delay *= 3"))
    assert target.stat().st_size == size
    os.utime(target, ns=(mtime, mtime))
    engine = Engine(clone, world["base"] / "pinned-index")
    try:
        engine.import_snapshot(world["archive"])
        summary = engine.index()
        assert summary.files_indexed == 4, summary   # the three of B, and this one
        assert engine._catalog.file("shop/upload.py").sha256 != \
            world["manifest"].files["shop/upload.py"]
    finally:
        engine.close()


def test_a_second_import_of_the_same_snapshot_is_just_as_correct(world) -> None:
    engine = Engine(world["laptop"], world["base"] / "twice-index")
    try:
        engine.import_snapshot(world["archive"])
        engine.index()
        engine.import_snapshot(world["archive"])   # over an existing, newer index
        again = engine.index()
        assert again.files_indexed == 3 and again.files_removed == 1
        assert answers(engine) == answers(world["fresh"])
        assert not (engine.index_dir / snapshot.WORK_DIR).exists()
    finally:
        engine.close()


# -- hostile archives ----------------------------------------------------------------


def members_of(archive: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(archive) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]


def write_tar(dest: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    dest.write_bytes(gzip.compress(buf.getvalue()))
    return dest


def regular(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def with_manifest(archive: Path, dest: Path, **changes) -> Path:
    return with_vectors(archive, dest, None, **changes)


def with_vectors(archive: Path, dest: Path, dtype: str | None, **manifest: object) -> Path:
    """The archive with its vectors.npy written as ``dtype`` (None: as they are) and its
    manifest changed by ``manifest``: ``format=1`` with ``"<f4"`` is what ragex wrote
    before float16."""
    import numpy as np

    out = []
    for name, data in members_of(archive):
        if name == snapshot.MANIFEST:
            doc = json.loads(data)
            doc.update(manifest)
            data = json.dumps(doc).encode()
        elif name == snapshot.VECTORS and dtype is not None:
            buf = io.BytesIO()
            np.save(buf, np.load(io.BytesIO(data)).astype(dtype), allow_pickle=False)
            data = buf.getvalue()
        out.append(regular(name, data))
    return write_tar(dest, out)


def renamed_first(archive: Path, dest: Path, name: str) -> Path:
    items = members_of(archive)
    return write_tar(dest, [regular(name, items[0][1])] + [regular(n, d) for n, d in items[1:]])


def symlink_member(archive: Path, dest: Path) -> Path:
    link = tarfile.TarInfo(snapshot.MANIFEST)
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    return write_tar(dest, [(link, None)])


def special_member(kind: bytes):
    def make(archive: Path, dest: Path) -> Path:
        info = tarfile.TarInfo(snapshot.MANIFEST)
        info.type = kind
        info.linkname = "/etc/passwd" if kind == tarfile.LNKTYPE else ""
        info.devmajor, info.devminor = 1, 3        # /dev/null's numbers
        return write_tar(dest, [(info, None)])
    return make


def huge_member(archive: Path, dest: Path) -> Path:
    info = tarfile.TarInfo(snapshot.MANIFEST)
    info.size = 10 * 1024 ** 4     # 10 TiB declared, nothing behind it
    return write_tar(dest, [(info, None)])


def truncated(archive: Path, dest: Path) -> Path:
    data = archive.read_bytes()
    dest.write_bytes(data[:len(data) * 2 // 3])
    return dest


def garbage(archive: Path, dest: Path) -> Path:
    dest.write_bytes(b"\x89PNG not a snapshot at all " * 100)
    return dest


def extra_member(archive: Path, dest: Path) -> Path:
    items = [regular(n, d) for n, d in members_of(archive)]
    return write_tar(dest, items + [regular("evil.sh", b"#!/bin/sh\nrm -rf ~\n")])


def catalog_altered(*statements: str):
    """The snapshot with its catalog changed by ``statements`` (the names of its
    tables may stay just what ragex expects)."""
    def make(archive: Path, dest: Path) -> Path:
        items = members_of(archive)
        tmp = dest.with_suffix(".sqlite")
        tmp.write_bytes(dict(items)[snapshot.CATALOG])
        conn = sqlite3.connect(tmp)
        for sql in statements:
            conn.execute(sql)
        conn.commit()
        conn.close()
        items = [(n, tmp.read_bytes() if n == snapshot.CATALOG else d) for n, d in items]
        return write_tar(dest, [regular(n, d) for n, d in items])
    return make


catalog_with_trigger = catalog_altered(
    "CREATE TRIGGER t AFTER INSERT ON files BEGIN DELETE FROM chunks; END")
#: the right table names, another column: rows ragex writes would carry it blindly
catalog_with_other_columns = catalog_altered("ALTER TABLE files ADD COLUMN evil TEXT")
#: the right table names and columns, a constraint that refuses every later chunk:
#: the index would fail on its first write after the import
catalog_with_other_constraints = catalog_altered(
    "PRAGMA writable_schema=ON",
    "UPDATE sqlite_master SET sql = replace(sql, 'line INTEGER NOT NULL DEFAULT 0', "
    "'line INTEGER NOT NULL DEFAULT 0 CHECK (rid < 0)') WHERE name = 'chunks'")


def escaping_catalog_path(archive: Path, dest: Path) -> Path:
    items = members_of(archive)
    doc = json.loads(dict(items)[snapshot.MANIFEST])
    doc["files"]["../../.ssh/id_rsa"] = "0" * 64
    items = [(n, json.dumps(doc).encode() if n == snapshot.MANIFEST else d) for n, d in items]
    return write_tar(dest, [regular(n, d) for n, d in items])


#: The embedder id of a snapshot made by a ragex before the sixth round's recipe
#: (the first 12 body lines): same model, other vectors.
OLD_RECIPE = f"{MODEL_NAME}/context+path/{CONTEXT_VERSION}"

HOSTILE = {
    "traversal": (lambda a, d: renamed_first(a, d, "../manifest.json"), "only manifest.json"),
    "absolute path": (lambda a, d: renamed_first(a, d, "/tmp/manifest.json"),
                      "only manifest.json"),
    "symlink member": (symlink_member, "not a regular file"),
    "hardlink member": (special_member(tarfile.LNKTYPE), "not a regular file"),
    "device member": (special_member(tarfile.CHRTYPE), "not a regular file"),
    "huge declared size": (huge_member, "declares 10995116277760 bytes"),
    "truncated": (truncated, "truncated"),
    "garbage bytes": (garbage, "not a readable ragex snapshot"),
    "wrong embedder": (lambda a, d: with_manifest(a, d, embedder="bge-large-fp16"),
                       "embedded with bge-large-fp16, this ragex uses"),
    "older ragex's recipe": (lambda a, d: with_manifest(a, d, embedder=OLD_RECIPE),
                             "embedded with another context recipe, context+path/"
                             f"{CONTEXT_VERSION} (this ragex's is {DEFAULT_VARIANT}/"),
    "future format": (lambda a, d: with_manifest(a, d, format=99),
                      "format 99, this ragex reads formats 1 to 2; upgrade ragex"),
    "float32 vectors in format 2": (lambda a, d: with_vectors(a, d, "<f4"),
                                    "in float16 (format 2)"),
    "float16 vectors in format 1": (lambda a, d: with_vectors(a, d, "<f2", format=1),
                                    "in float32 (format 1)"),
    "extra member": (extra_member, "unexpected 'evil.sh'"),
    "catalog trigger": (catalog_with_trigger, "not a ragex catalog"),
    "catalog columns": (catalog_with_other_columns,
                        "not a ragex catalog (unexpected, missing or other than ragex makes "
                        "them: table files)"),
    "catalog constraints": (catalog_with_other_constraints,
                            "other than ragex makes them: table chunks)"),
    "path outside the project": (escaping_catalog_path, "not a path inside the project"),
}


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_a_hostile_archive_is_refused_and_the_index_is_untouched(world, imported, kind) -> None:
    engine = imported[0]
    make, sentence = HOSTILE[kind]
    bad = make(world["archive"], world["base"] / f"bad-{kind.replace(' ', '-')}.tar.gz")
    before = stores(engine)
    entries = sorted(p.name for p in engine.index_dir.iterdir())
    with pytest.raises(EngineError) as err:
        engine.import_snapshot(bad)
    assert err.value.code == "bad_snapshot"
    assert sentence in err.value.message, err.value.message
    if kind == "wrong embedder":
        assert engine._catalog.get_meta("embedder") in err.value.message   # names both
    assert stores(engine) == before
    assert sorted(p.name for p in engine.index_dir.iterdir()) == entries
    assert not (world["base"] / "manifest.json").exists()
    assert engine.search(SearchQuery("compute_invoice_total", mode="symbol")).hits


def test_catalogs_ragex_itself_made_another_way_have_the_schema_a_snapshot_expects(
        tmp_path: Path) -> None:
    """The shape check compares SQL, and SQLite keeps each table's SQL as it was
    written: a column added by ALTER TABLE and a format-1 catalog migrated in place
    spell theirs differently from a fresh catalog, and must still be accepted."""
    # an index of format 2 from before chunks had their definition line, and one
    # whose lexical index was created with its columns on a line of their own
    current = catalog.FORMAT_VERSION
    old = tmp_path / "old-line.sqlite"
    respelled = tmp_path / "respelled.sqlite"
    for path, script, fmt in (
            (old, catalog._SCHEMA.replace(",\n    line INTEGER NOT NULL DEFAULT 0"
                                          + catalog._TKEY, ""), "2"),
            (respelled, catalog._SCHEMA.replace("fts5(names, doc,", "fts5(\n    names,  doc,"),
             current)):
        assert script != catalog._SCHEMA
        conn = sqlite3.connect(path)
        conn.executescript(script)
        conn.execute("INSERT INTO meta VALUES ('format', ?)", (fmt,))
        conn.commit()
        conn.close()
    # an index of format 1
    v1 = tmp_path / "format-1.sqlite"
    conn = sqlite3.connect(v1)
    conn.executescript(catalog._SCHEMA.replace(catalog._TKEY, ""))
    conn.executescript(f"DROP TABLE fts_src; DROP TABLE fts; {catalog._FTS_FORMAT_1};")
    conn.execute("INSERT INTO meta VALUES ('format', '1')")
    conn.commit()
    assert catalog.schema_of(conn) == catalog.schema_of_format("1")
    conn.close()
    for path in (old, respelled, v1):
        opened = catalog.Catalog(path)    # adds the columns / migrates
        try:
            assert catalog.schema_of(opened.conn()) == catalog.schema_of_format(current), path
        finally:
            opened.close()
    assert len({catalog.schema_of_format(f) for f in catalog.READABLE_FORMATS}) == 3


def test_the_shape_check_ignores_how_sqlite_spells_fts5s_own_tables(tmp_path: Path) -> None:
    """FTS5's shadow tables (fts_data, fts_idx, ...) carry SQL that SQLite writes,
    which another SQLite version spells otherwise: a snapshot made there is the
    same schema.  The tables ragex itself creates are still held to their SQL."""
    def respelled(name: str, old: str, new: str) -> frozenset:
        conn = sqlite3.connect(tmp_path / f"{name}.sqlite")
        try:
            conn.executescript(catalog._SCHEMA)
            conn.execute("PRAGMA writable_schema=ON")
            changed = conn.execute("UPDATE sqlite_master SET sql = replace(sql, ?, ?) "
                                   "WHERE name = ?", (old, new, name)).rowcount
            assert changed == 1
            conn.commit()
            return catalog.schema_of(conn)
        finally:
            conn.close()
    fresh = catalog.schema_of_format(catalog.FORMAT_VERSION)
    assert respelled("fts_data", "'fts_data'(", '"fts_data" (') == fresh
    assert respelled("fts_docsize", "sz BLOB", "sz BLOB, origin INTEGER") == fresh
    assert respelled("fts_src", "z BLOB NOT NULL", "z BLOB") != fresh   # ours: checked


def test_a_bomb_in_an_extended_header_is_refused_before_it_is_read(world, imported) -> None:
    """tarfile reads a pax header whole: 256 MiB of it must not reach memory."""
    engine = imported[0]
    bomb = world["base"] / "pax-bomb.tar.gz"
    info = tarfile.TarInfo("././@PaxHeader")
    info.type = tarfile.XHDTYPE
    info.size = 256 * 1024 ** 2
    header = info.tobuf(tarfile.USTAR_FORMAT)
    with gzip.open(bomb, "wb", compresslevel=1) as fh:
        fh.write(header)
        block = bytes(1024 ** 2)
        for _ in range(256):
            fh.write(block)
    before = stores(engine)
    with pytest.raises(EngineError) as err:
        engine.import_snapshot(bomb)
    assert "extended tar header, over the 1 MiB allowed" in err.value.message
    assert stores(engine) == before


def test_a_decompression_bomb_stops_at_the_cap(world, imported, monkeypatch) -> None:
    engine = imported[0]
    bomb = world["base"] / "bomb.tar.gz"
    info = tarfile.TarInfo(snapshot.MANIFEST)
    info.size = 64 * 1024 ** 2           # 64 MiB of zeros: ~64 KiB compressed
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    bomb.write_bytes(gzip.compress(buf.getvalue(), 9))
    assert bomb.stat().st_size < 1024 ** 2
    monkeypatch.setattr(snapshot, "TOTAL_CAP", 8 * 1024 ** 2)
    before = stores(engine)
    with pytest.raises(EngineError) as err:
        engine.import_snapshot(bomb)
    assert err.value.code == "bad_snapshot" and "over the 8 MiB allowed" in err.value.message
    assert stores(engine) == before


@pytest.mark.parametrize("phase", ["moving-out", "moving-in"])
def test_a_kill_mid_swap_leaves_the_old_index_or_the_new_one(world, imported, phase) -> None:
    """The state a kill -9 leaves after the first rename of each swap phase: one
    interrupted while the old stores move out is undone, one interrupted while the
    new ones move in is finished, when the engine next opens."""
    index_dir = world["base"] / f"swap-{phase}"
    engine = Engine(world["laptop"], index_dir)
    engine.index()
    old = stores(engine)
    engine.close()
    work = index_dir / snapshot.WORK_DIR
    work.mkdir()
    manifest = snapshot.stage(world["archive"], work / "in", embedder_id())
    (work / "new").mkdir()
    snapshot.build(work / "in", manifest, work / "new" / CATALOG_FILE, work / "new" / CHROMA_DIR,
                   work / "new" / VECTORS_FILE)
    snapshot._set_phase(work, snapshot._PHASE_OUT)
    (work / "old").mkdir()
    os.replace(index_dir / VECTORS_FILE, work / "old" / VECTORS_FILE)   # the first rename
    if phase == "moving-in":
        for name in os.listdir(index_dir):
            if is_store_entry(name):
                os.replace(index_dir / name, work / "old" / name)
        snapshot._set_phase(work, snapshot._PHASE_IN)
        os.replace(work / "new" / CATALOG_FILE, index_dir / CATALOG_FILE)
    # killed here; the next engine recovers as it opens
    reopened = Engine(world["laptop"], index_dir)
    try:
        assert not work.exists()
        if phase == "moving-out":
            assert stores(reopened) == old
        else:
            reopened.index()
            assert stores(reopened) == stores(imported[0])
            assert reopened._catalog.get_meta(snapshot.SNAPSHOT_META)
    finally:
        reopened.close()


def test_a_base_is_imported_only_over_no_index_or_an_older_one(world, imported) -> None:
    engine = imported[0]
    assert engine.base_wanted(world["archive"]) is None        # made from it, newer since
    newer = world["base"] / "newer.tar.gz"
    engine.export_snapshot(newer)                               # CI published again
    assert engine.base_wanted(newer).created_at > world["manifest"].created_at
    empty = Engine(world["laptop"], world["base"] / "empty-index")
    try:
        assert empty.base_wanted(world["archive"]) is not None  # no local index at all
        other = with_manifest(world["archive"], world["base"] / "other-model.tar.gz",
                              embedder="bge-large-fp16")
        assert empty.base_wanted(other) is None                 # never another model's
        older = with_manifest(world["archive"], world["base"] / "old-recipe.tar.gz",
                              embedder=OLD_RECIPE)
        assert empty.base_wanted(older) is None                 # nor another recipe's
        cut = world["base"] / "cut.tar.gz"
        cut.write_bytes(world["archive"].read_bytes()[:100])
        assert empty.base_wanted(cut) is None                   # nor a broken one
    finally:
        empty.close()
    assert snapshot.newest_snapshot(world["base"]) == world["base"] / "cut.tar.gz"
    assert snapshot.newest_snapshot(newer) == newer


def test_a_chunk_without_its_vector_ships_its_file_for_re_indexing(world) -> None:
    """An index a kill left with a vector missing still exports a snapshot that
    imports: that file is left out of it and indexed by the importer."""
    index = world["base"] / "holey-index"
    engine = Engine(world["laptop"], index)
    try:
        engine.index()
        lost = engine._catalog.chunks_of("shop/cart.py")[0].id
        engine._vectors.delete_ids([lost])
        engine.export_snapshot(world["base"] / "holey.tar.gz")
    finally:
        engine.close()
    other = Engine(world["laptop"], world["base"] / "holey-import")
    try:
        manifest = other.import_snapshot(world["base"] / "holey.tar.gz")
        assert "shop/cart.py" not in manifest.files
        summary = other.index()
        assert summary.files_indexed == 1 and stores(other) == stores(world["fresh"])
    finally:
        other.close()


def test_a_search_holding_the_old_catalog_during_a_swap_is_told_busy_not_given_a_new_empty_one(
        tmp_path: Path) -> None:
    """A closed catalog never reconnects by path: mid-swap that would create an empty
    ``catalog.sqlite`` (and its WAL) where the snapshot's is about to be renamed."""
    from ragexd.engine.catalog import Catalog

    path = tmp_path / "idx" / CATALOG_FILE
    path.parent.mkdir()
    catalog = Catalog(path)
    catalog.conn()
    catalog.close()
    for name in os.listdir(path.parent):   # the swap moves the stores out
        os.rename(path.parent / name, tmp_path / name)
    with pytest.raises(EngineError) as err:
        catalog.conn()
    assert err.value.code == "busy" and "search again" in str(err.value)
    assert os.listdir(path.parent) == []
