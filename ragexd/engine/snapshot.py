"""Portable index snapshots: build a repository's index once (CI), use it everywhere.

A snapshot is one gzip-compressed tar holding exactly four regular files, in this
order (the manifest first, so a wrong embedder or a future format is refused
before anything large is read):

* ``manifest.json``: snapshot format, ragex version, embedder id, the git commit
  the index reflects (and whether the worktree was dirty), every file's content
  hash, the chunk count, the vectors' dimension, when it was made;
* ``ids.json`` + ``vectors.npy``: every chunk id and its vector, read and written
  through ``Vectors`` (never chroma's own files: how vectors are kept on disk is
  ``vectors.py``'s business and may change).  Float16 since format 2: the values the
  live store holds (``vectors.as_stored``), so nothing is lost and the archive is
  about half the size; format 1's float32 is still read;
* ``catalog.sqlite``: a consistent copy of the catalog made with SQLite's backup
  API (files, chunks with their symbol names, the lexical index), so export runs beside searches.

Paths in the catalog are relative to the project root, so a snapshot made in
``/ci/build/repo`` serves ``~/src/repo``.  Once installed, the normal incremental
index does the rest: a file whose content hash equals the snapshot's is only
re-stamped (its mtime differs on another clone; it is never re-embedded), a
changed file is re-chunked and only its new chunks embedded, a deleted one dropped.

An archive is untrusted input.  Reading it (``stage``) refuses anything but the
four expected names as regular files (no ``../``, absolute paths, links or
devices), caps every member and the total *decompressed* stream (a bomb stops at
the cap, whatever the headers declare), and checks the catalog's schema (no
triggers or views), integrity, paths and ids before anything is installed.
Installing (``install``) builds the new stores in ``.snapshot/`` inside the index
directory and swaps them in with renames under a phase marker, so a kill at any
point leaves the old index or the new one (``recover`` finishes or undoes the
swap when the engine next opens), never a mix.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any, Callable

from .. import __version__
from .catalog import FORMAT_VERSION as CATALOG_FORMAT
from .catalog import READABLE_FORMATS, Catalog, schema_of, schema_of_format
from .embedding import embedder_change
from .types import EngineError
from .vectors import STORED, Vectors, as_stored

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

#: The snapshot format this ragex writes.
SNAPSHOT_FORMAT = 2
#: Every format it reads, and the dtype its vectors must have: 1 wrote float32, 2
#: writes the float16 the live store keeps.  Any other format is refused.
VECTOR_DTYPES = {1: "<f4", 2: STORED}
KIND = "ragex-snapshot"

MANIFEST = "manifest.json"
IDS = "ids.json"
VECTORS = "vectors.npy"
CATALOG = "catalog.sqlite"
#: The members, in the order they must appear.
MEMBERS = (MANIFEST, IDS, VECTORS, CATALOG)

_MiB = 1024 ** 2
_GiB = 1024 ** 3
#: The most each member may hold, decompressed (a million-file tree's manifest is
#: ~150 MiB; 2 million 384-float vectors are 3 GiB).
MEMBER_CAPS = {MANIFEST: 512 * _MiB, IDS: 1 * _GiB, VECTORS: 8 * _GiB, CATALOG: 16 * _GiB}
#: The most the whole decompressed stream may hold (headers and padding included).
TOTAL_CAP = 24 * _GiB
#: The most an extended header (pax, GNU long name) may hold: tarfile reads one
#: whole into memory, so a bomb hidden there must stop long before TOTAL_CAP.
HEADER_CAP = 1 * _MiB

#: Inside the index directory: where an import is staged and swapped in.
WORK_DIR = ".snapshot"
_PHASE = "phase"
_PHASE_OUT = "moving-out"   # the old stores go to WORK_DIR/old: undo on recovery
_PHASE_IN = "moving-in"     # the new stores come from WORK_DIR/new: finish on recovery

#: catalog meta key: the snapshot this index was installed from (JSON)
SNAPSHOT_META = "snapshot"


def refused(message: str, **detail: Any) -> EngineError:
    """The one error a bad snapshot gets: a sentence and the ``bad_snapshot`` code."""
    return EngineError("bad_snapshot", message, **detail)


# -- the manifest ------------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    """What a snapshot says about itself, checked on the way in."""

    format: int
    ragex_version: str
    embedder: str
    catalog_format: str
    created_at: float
    commit: str | None       # the git commit the index reflects (None: not a repository)
    dirty: bool              # the worktree had uncommitted changes when it was made
    files: dict[str, str]    # path relative to the root -> sha256 of its content
    chunks: int
    dim: int

    def to_json(self) -> dict[str, Any]:
        return {"kind": KIND, "format": self.format, "ragex_version": self.ragex_version,
                "embedder": self.embedder, "catalog_format": self.catalog_format,
                "created_at": self.created_at,
                "git": {"commit": self.commit, "dirty": self.dirty},
                "chunks": self.chunks, "dim": self.dim, "files": self.files}

    def summary(self) -> dict[str, Any]:
        """The manifest without its file list: what a reply or a log line carries."""
        out = self.to_json()
        out.pop("files")
        out["file_count"] = len(self.files)
        return out

    @classmethod
    def parse(cls, raw: bytes, expected_embedder: str) -> "Manifest":
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise refused(f"the snapshot's manifest is not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("kind") != KIND:
            raise refused("this is not a ragex snapshot (its manifest does not say "
                          f"\"kind\": \"{KIND}\")")
        fmt = data.get("format")
        if isinstance(fmt, bool) or fmt not in VECTOR_DTYPES:
            newer = isinstance(fmt, int) and not isinstance(fmt, bool) and fmt > SNAPSHOT_FORMAT
            raise refused(f"the snapshot has format {fmt!r}, this ragex reads formats "
                          f"{min(VECTOR_DTYPES)} to {SNAPSHOT_FORMAT}"
                          + ("; upgrade ragex to import it" if newer else ""),
                          snapshot_format=fmt, supported=sorted(VECTOR_DTYPES))
        embedder = data.get("embedder")
        if embedder != expected_embedder:
            raise refused(f"the snapshot was embedded with "
                          f"{embedder_change(str(embedder), expected_embedder)}; vectors "
                          "are never mixed, so build the snapshot with the same ragex and "
                          "model (or index locally)",
                          snapshot_embedder=str(embedder), embedder=expected_embedder)
        catalog_format = data.get("catalog_format")
        if catalog_format not in READABLE_FORMATS:  # an older one is migrated when opened
            raise refused(f"the snapshot's catalog has format {data.get('catalog_format')!r}, "
                          f"this ragex reads format {CATALOG_FORMAT}")
        git = data.get("git") if isinstance(data.get("git"), dict) else {}
        files = data.get("files")
        try:
            if not (isinstance(files, dict) and all(isinstance(k, str) and isinstance(v, str)
                                                    for k, v in files.items())):
                raise TypeError("'files' must map paths to hashes")
            for path in files:
                check_relative(path)
            out = cls(format=fmt, ragex_version=str(data.get("ragex_version", "")),
                      embedder=embedder, catalog_format=str(catalog_format),
                      created_at=float(data["created_at"]),
                      commit=str(git["commit"]) if git.get("commit") else None,
                      dirty=bool(git.get("dirty", False)), files=dict(files),
                      chunks=_count(data.get("chunks")), dim=_count(data.get("dim")))
        except (KeyError, TypeError, ValueError) as exc:
            raise refused(f"the snapshot's manifest is malformed ({exc})") from None
        return out


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a count, got {value!r}")
    return value


def check_relative(path: str) -> None:
    """A path the index may hold: relative, normalised, inside the root."""
    p = PurePosixPath(path)
    if (not path or p.is_absolute() or "\0" in path or "\\" in path
            or any(part in ("", ".", "..") for part in path.split("/"))):
        raise ValueError(f"{path!r} is not a path inside the project")


def git_state(root: Path) -> tuple[str | None, bool]:
    """(HEAD's commit, whether the worktree differs from it); (None, False) when
    ``root`` is not in a git repository or git is missing."""
    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL)
    try:
        head = git("rev-parse", "--verify", "HEAD")
        if head.returncode != 0:
            return None, False
        status = git("status", "--porcelain", "--untracked-files=normal")
    except (OSError, subprocess.SubprocessError):
        return None, False
    return head.stdout.strip() or None, bool(status.stdout.strip())


# -- export ------------------------------------------------------------------------


def export(root: Path, catalog: Catalog, vectors: Vectors, dest: Path, *,
           embedder: str, fmt: int = SNAPSHOT_FORMAT) -> Manifest:
    """Write the index as a snapshot at ``dest`` (atomically: a temporary file
    beside it, renamed over it, so a base directory CI refreshes never holds half
    an archive).  The caller holds the index lock and has completed the index.
    ``fmt``: an older format, for a team whose ragex reads only that one (and for
    the tests and the benchmark that compare them)."""
    import numpy as np

    if fmt not in VECTOR_DTYPES:
        raise ValueError(f"no snapshot format {fmt!r}")
    dest = Path(dest)
    work = Path(tempfile.mkdtemp(prefix=".ragex-export-", dir=dest.parent))
    try:
        copy = work / CATALOG
        catalog.backup_to(copy)
        shipped = Catalog(copy)
        try:
            wanted = sorted(shipped.chunk_ids() - shipped.pending_ids())
            ids, mat = vectors.export_vectors(wanted)
            missing = set(wanted) - set(ids)
            if missing:   # no vector and not pending: the importer re-indexes those files
                shipped.forget_files(sorted(shipped.paths_of_ids(missing)))
                remaining = shipped.chunk_ids()
                keep = [i for i, c in enumerate(ids) if c in remaining]
                ids, mat = [ids[i] for i in keep], mat[keep]
            files = {p: r.sha256 for p, r in shipped.files().items()}
        finally:
            shipped.close()
        conn = sqlite3.connect(copy, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=DELETE")   # one file, no -wal beside it
            conn.execute("DELETE FROM meta WHERE key IN (?, ?, ?, ?)",
                         ("last_index_error", "index_run", "index_run_files", SNAPSHOT_META))
            conn.execute("VACUUM")
        finally:
            conn.close()
        commit, dirty = git_state(root)
        manifest = Manifest(format=fmt, ragex_version=__version__,
                            embedder=embedder, catalog_format=CATALOG_FORMAT,
                            created_at=time.time(), commit=commit, dirty=dirty, files=files,
                            chunks=len(ids), dim=int(mat.shape[1]) if mat.ndim == 2 else 0)
        (work / MANIFEST).write_text(json.dumps(manifest.to_json(), sort_keys=True))
        (work / IDS).write_text(json.dumps(ids))
        with open(work / VECTORS, "wb") as fh:
            # as_stored first: a row the store still keeps as float32 (narrowed after
            # the next run) gets the float16 the store would give it, never infinity
            np.save(fh, np.ascontiguousarray(as_stored(mat), dtype=VECTOR_DTYPES[fmt]),
                    allow_pickle=False)
        partial = work / "archive.tar.gz"
        # level 3: float vectors barely compress, and CI pays the time on every push
        with tarfile.open(partial, "w:gz", compresslevel=3, format=tarfile.PAX_FORMAT) as tar:
            for name in MEMBERS:
                info = tar.gettarinfo(str(work / name), arcname=name)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mode = 0o644
                with open(work / name, "rb") as fh:
                    tar.addfile(info, fh)
        os.replace(partial, dest)
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- reading an untrusted archive ------------------------------------------------------


class _Capped(io.RawIOBase):
    """The decompressed stream, refused past ``cap`` bytes: what the tar headers
    declare is checked too, but a bomb must stop here whatever they say."""

    def __init__(self, inner: IO[bytes], cap: int) -> None:
        self.inner = inner
        self.cap = cap
        self.read_so_far = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        data = self.inner.read(len(buf))
        self.read_so_far += len(data)
        if self.read_so_far > self.cap:
            raise refused(f"the snapshot decompresses to more than {_human(self.cap)}; "
                          "refusing it")
        buf[:len(data)] = data
        return len(data)


class _SafeTarInfo(tarfile.TarInfo):
    """Refuses an extended header over ``HEADER_CAP`` before tarfile reads it."""

    _EXTENDED = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
                 tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)

    def _proc_member(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in self._EXTENDED and self.size > HEADER_CAP:
            raise refused(f"the snapshot has a {self.size}-byte extended tar header, over the "
                          f"{_human(HEADER_CAP)} allowed; refusing it")
        return super()._proc_member(tar)  # type: ignore[misc]


def _human(n: int) -> str:
    return f"{n / _GiB:g} GiB" if n >= _GiB else f"{n / _MiB:g} MiB"


def read_manifest(archive: Path, expected_embedder: str) -> Manifest:
    """Only the manifest (the first member): cheap, for choosing a base snapshot."""
    with _TarStream(archive) as tar:
        try:
            member = _next_member(tar, 0, 0)
            raw = _read_member(tar, member)
        except _READ_ERRORS as exc:
            raise _corrupt(archive, exc) from None
        return Manifest.parse(raw, expected_embedder)


class _TarStream:
    """``with _TarStream(path) as tar``: the archive as a capped tar stream."""

    def __init__(self, archive: Path) -> None:
        self.archive = Path(archive)

    def __enter__(self) -> tarfile.TarFile:
        try:
            if not self.archive.is_file():
                raise refused(f"{self.archive} is not a file")
            self.raw = open(self.archive, "rb")
        except OSError as exc:
            raise refused(f"cannot read {self.archive}: {exc.strerror or exc}") from None
        self.capped = _Capped(gzip.GzipFile(fileobj=self.raw, mode="rb"), TOTAL_CAP)
        try:
            self.tar = tarfile.open(fileobj=io.BufferedReader(self.capped, 1 << 20), mode="r|",
                                    tarinfo=_SafeTarInfo)
        except Exception as exc:
            self.raw.close()
            raise _corrupt(self.archive, exc) from None
        return self.tar

    def __exit__(self, *exc: Any) -> None:
        try:
            self.tar.close()
        except Exception:  # noqa: BLE001 - closing a broken stream
            pass
        self.raw.close()


def _corrupt(archive: Path, exc: BaseException) -> EngineError:
    if isinstance(exc, EngineError):
        return exc
    why = str(exc) or type(exc).__name__
    return refused(f"{archive} is not a readable ragex snapshot (corrupt or truncated: {why})")


_READ_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, ValueError)


def _next_member(tar: tarfile.TarFile, index: int, total: int) -> tarfile.TarInfo:
    """The ``index``-th member, which must be ``MEMBERS[index]`` as a regular file
    within its cap."""
    member = tar.next()
    want = MEMBERS[index]
    if member is None:
        raise refused(f"the snapshot ends before its {want} (truncated?)")
    if member.name != want:
        raise refused(f"the snapshot holds {member.name!r} where {want!r} belongs; only "
                      f"{', '.join(MEMBERS)} (in that order) may be in a snapshot")
    if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):   # not even sparse files
        raise refused(f"the snapshot's {want} is not a regular file (links and devices are "
                      "refused)")
    if member.size > MEMBER_CAPS[want] or total + member.size > TOTAL_CAP:
        raise refused(f"the snapshot's {want} declares {member.size} bytes, over the "
                      f"{_human(min(MEMBER_CAPS[want], TOTAL_CAP))} allowed; refusing it")
    return member


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    fh = tar.extractfile(member)
    assert fh is not None
    data = fh.read()
    if len(data) != member.size:
        raise refused(f"the snapshot's {member.name} is truncated")
    return data


def _copy_member(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path) -> None:
    fh = tar.extractfile(member)
    assert fh is not None
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    left = member.size
    with os.fdopen(os.open(dest, flags, 0o600), "wb") as out:
        while left > 0:
            block = fh.read(min(left, 1 << 20))
            if not block:
                raise refused(f"the snapshot's {member.name} is truncated")
            out.write(block)
            left -= len(block)


def stage(archive: Path, into: Path, expected_embedder: str) -> Manifest:
    """Check ``archive`` and unpack its four members into the new directory
    ``into``; raise ``bad_snapshot`` with a sentence for anything wrong."""
    archive = Path(archive)
    into.mkdir(mode=0o700)
    with _TarStream(archive) as tar:
        try:
            member = _next_member(tar, 0, 0)
            manifest = Manifest.parse(_read_member(tar, member), expected_embedder)
            total = member.size
            for i, name in enumerate(MEMBERS[1:], start=1):
                member = _next_member(tar, i, total)
                total += member.size
                _copy_member(tar, member, into / name)
            extra = tar.next()
            if extra is not None:
                raise refused(f"the snapshot holds an unexpected {extra.name!r}; only "
                              f"{', '.join(MEMBERS)} may be in a snapshot")
        except _READ_ERRORS as exc:
            raise _corrupt(archive, exc) from None
    ids, mat = _load_vectors(into, manifest)
    _check_catalog(into / CATALOG, manifest, set(ids))
    del mat
    return manifest


def _load_vectors(into: Path, manifest: Manifest) -> tuple[list[str], "np.ndarray"]:
    import numpy as np

    try:
        ids = json.loads((into / IDS).read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise refused(f"the snapshot's {IDS} is not valid JSON ({exc})") from None
    if not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)) \
            or len(set(ids)) != len(ids):
        raise refused(f"the snapshot's {IDS} is not a list of distinct chunk ids")
    try:
        mat = np.load(into / VECTORS, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise refused(f"the snapshot's {VECTORS} cannot be read ({exc})") from None
    if mat.dtype != np.dtype(VECTOR_DTYPES[manifest.format]) or mat.ndim != 2 or mat.shape[0] != len(ids) \
            or len(ids) != manifest.chunks or (len(ids) and mat.shape[1] != manifest.dim):
        raise refused(f"the snapshot's vectors ({mat.dtype}, shape {mat.shape}) do not match "
                      f"its {len(ids)} ids and the manifest's {manifest.chunks} chunks of "
                      f"dimension {manifest.dim} in {np.dtype(VECTOR_DTYPES[manifest.format])} "
                      f"(format {manifest.format})")
    return ids, mat


def _check_catalog(path: Path, manifest: Manifest, ids: set[str]) -> None:
    """The catalog is ours in shape (our tables and indexes only, each with our
    columns and constraints, as ``Catalog`` creates them: no triggers or views to
    run on our writes, no column that a constraint or default makes refuse them),
    intact, and agrees with the manifest and ids."""
    expected = schema_of_format(manifest.catalog_format)
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise refused(f"the snapshot's catalog cannot be opened ({exc})") from None
    try:
        conn.execute("PRAGMA trusted_schema=OFF")
        conn.execute("PRAGMA cell_size_check=ON")
        got = schema_of(conn)
        if got != expected:
            odd = sorted({f"{kind} {name}" for kind, name, _, _ in got ^ expected})[:5]
            raise refused("the snapshot's catalog is not a ragex catalog (unexpected, "
                          f"missing or other than ragex makes them: {', '.join(odd)})")
        check = conn.execute("PRAGMA quick_check").fetchone()
        if not check or check[0] != "ok":
            raise refused(f"the snapshot's catalog is damaged ({check[0] if check else '?'})")
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        if meta.get("format") != manifest.catalog_format \
                or meta.get("embedder") != manifest.embedder:
            raise refused("the snapshot's catalog disagrees with its manifest (format "
                          f"{meta.get('format')!r}, embedder {meta.get('embedder')!r})")
        files = {p: h for p, h in conn.execute("SELECT path, sha256 FROM files")}
        if files != manifest.files:
            raise refused("the snapshot's catalog and manifest list different files")
        for (p,) in conn.execute("SELECT DISTINCT path FROM chunks"):
            if not isinstance(p, str) or p not in files:
                raise refused(f"the snapshot's catalog has chunks of an unlisted file {p!r}")
        stored = {r[0] for r in conn.execute(
            "SELECT id FROM chunks WHERE id NOT IN (SELECT id FROM pending)")}
        if stored != ids:
            raise refused("the snapshot's vectors do not match its catalog's chunks "
                          f"({len(ids)} vectors, {len(stored)} chunks)")
    except sqlite3.DatabaseError as exc:
        raise refused(f"the snapshot's catalog cannot be read ({exc})") from None
    finally:
        conn.close()


# -- installing --------------------------------------------------------------------


def build(staged: Path, manifest: Manifest, catalog_path: Path, chroma_dir: Path,
          vectors_file: Path) -> None:
    """The index's new stores at ``catalog_path`` and ``vectors_file`` (its HNSW
    mirror would live in ``chroma_dir``; in a new directory beside the index) from a
    staged, checked snapshot: the catalog as it came, the vectors written through
    ``Vectors``."""
    import numpy as np

    ids, mat = _load_vectors(staged, manifest)
    os.replace(staged / CATALOG, catalog_path)
    catalog = Catalog(catalog_path)
    vectors = Vectors(chroma_dir, vectors_file)
    try:
        catalog.set_meta(SNAPSHOT_META, json.dumps(manifest.summary(), sort_keys=True))
        catalog.distrust_stats()
        rows = catalog.chunks_by_id(ids)
        step = 5000
        for i in range(0, len(ids), step):
            part = ids[i:i + step]
            metas = [{"path": rows[c].path, "language": rows[c].language, "kind": rows[c].kind}
                     for c in part]
            vectors.upsert(part, np.asarray(mat[i:i + step], dtype=np.float32), metas)
    finally:
        vectors.close()
        catalog.close()


def install(work: Path, index_dir: Path, is_store: Callable[[str], bool]) -> None:
    """Swap ``work/new``'s stores into ``index_dir`` (the engine has closed its
    own).  Renames only, under a phase marker that ``recover`` reads."""
    new, old = work / "new", work / "old"
    _set_phase(work, _PHASE_OUT)
    old.mkdir(exist_ok=True)
    for name in sorted(os.listdir(index_dir)):
        if is_store(name):
            os.replace(index_dir / name, old / name)
    _set_phase(work, _PHASE_IN)
    _move_all(new, index_dir)
    shutil.rmtree(work, ignore_errors=True)


def recover(index_dir: Path) -> None:
    """After a kill mid-import: undo a swap that had not started moving the new
    stores in, finish one that had, and drop the staging either way."""
    work = Path(index_dir) / WORK_DIR
    if not work.exists():
        return
    phase = _phase(work)
    if phase == _PHASE_OUT:
        _move_all(work / "old", Path(index_dir))
        log.warning("an interrupted snapshot import was undone: the previous index is kept")
    elif phase == _PHASE_IN:
        _move_all(work / "new", Path(index_dir))
        log.warning("an interrupted snapshot import was completed")
    shutil.rmtree(work, ignore_errors=True)


def _move_all(src: Path, dest: Path) -> None:
    if src.exists():
        for name in sorted(os.listdir(src)):
            os.replace(src / name, dest / name)


def _set_phase(work: Path, phase: str) -> None:
    tmp = work / (_PHASE + ".tmp")
    with open(tmp, "w") as fh:
        fh.write(phase)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, work / _PHASE)
    fd = os.open(work, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _phase(work: Path) -> str | None:
    try:
        return (work / _PHASE).read_text().strip()
    except OSError:
        return None


# -- a base snapshot (``[index] base``) -----------------------------------------------


def newest_snapshot(base: Path) -> Path | None:
    """``base`` itself when it is a file; in a directory, its newest regular file
    named ``*.tar.gz`` or ``*.tgz`` (by modification time: CI replaces it)."""
    base = Path(base).expanduser()
    if base.is_file():
        return base
    if not base.is_dir():
        return None
    best: tuple[float, Path] | None = None
    for entry in os.scandir(base):
        if entry.name.endswith((".tar.gz", ".tgz")) and entry.is_file(follow_symlinks=True):
            when = entry.stat().st_mtime
            if best is None or when > best[0]:
                best = (when, Path(entry.path))
    return best[1] if best else None


__all__ = ["Manifest", "SNAPSHOT_FORMAT", "build", "export", "git_state", "install",
           "newest_snapshot", "read_manifest", "recover", "refused", "stage"]
