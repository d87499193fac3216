"""Helpers for the fault, load and hostile-input suite (issue 6).

Builds on tests.harness (a private ragexd, a protocol client, ragexctl as a
subprocess, processes, containers, generated corpora); adds what only this
suite needs: reading an index's chunk ids from another process, mounts (tmpfs
for "disk full", read-only bind mounts — chmod does not stop root), a worker
heartbeat probe and figure recording for RELIABILITY.md.

Everything stays real: real mounts, real signals, real users.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ragexd import paths
from ragexd.protocol import Op, Reply, Request
from tests.harness import Client, RagexInstance


# --- figures ------------------------------------------------------------------------


def figure(item: str, text: str, **values: Any) -> None:
    """Print a measured figure (run pytest with -s to see it) and, when
    RAGEX_FAULTS_FIGURES names a file, append it there as JSON for RELIABILITY.md."""
    print(f"\n[figure] {item}: {text}")
    target = os.environ.get("RAGEX_FAULTS_FIGURES")
    if target:
        with open(target, "a") as fh:
            fh.write(json.dumps({"item": item, "text": text, "time": time.time(), **values},
                                default=str) + "\n")


def percentiles(samples: list[float], points: tuple[int, ...] = (50, 90, 99)) -> dict[int, float]:
    """Nearest-rank percentiles (no interpolation: each figure is a real sample)."""
    ordered = sorted(samples)
    out = {}
    for p in points:
        rank = max(1, -(-p * len(ordered) // 100))   # ceil(p/100 * n)
        out[p] = ordered[min(len(ordered), rank) - 1]
    return out


# --- the index, read from another process ---------------------------------------------

_IDS = r"""
import json, sys
from pathlib import Path
from ragexd.engine import Engine
engine = Engine(Path(sys.argv[1]), Path(sys.argv[2]))
catalog, vectors = engine._catalog, engine._vectors
files, chunks = catalog.stats()
paths = sorted(catalog.files())
print(json.dumps({"catalog": sorted(catalog.chunk_ids()), "vectors": sorted(vectors.all_ids()),
                  "vector_count": vectors.count(), "files": files, "chunks": chunks,
                  "paths": paths, "state": engine.status().state}))
engine.close()
"""


def index_contents(env: dict[str, str], root: Path, index_dir: Path) -> dict[str, Any]:
    """Chunk ids of the catalog and of the vector store of an index (no model is
    loaded), read in a child process so this one stays free of chromadb.  The
    index must not be open in a worker at the same time."""
    out = subprocess.run([sys.executable, "-c", _IDS, str(root), str(index_dir)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- mounts (we are root: chmod stops nobody, a read-only mount stops everyone) ----------


def _run(*cmd: str) -> None:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")


def umount(path: Path) -> None:
    """Unmount, lazily when busy (a worker may still hold a file there)."""
    for attempt in range(3):
        proc = subprocess.run(["umount", str(path)], capture_output=True, text=True, timeout=30)
        if proc.returncode == 0:
            return
        time.sleep(0.2 * (attempt + 1))
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def is_mountpoint(path: Path) -> bool:
    return subprocess.run(["mountpoint", "-q", str(path)]).returncode == 0


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path))
    try:
        yield path
    finally:
        umount(path)


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[Path]:
    """``path`` read-only for everyone, root included: a read-only bind mount over itself.
    Files opened before stay writable through their old mount: that is the kernel's
    rule, and the reason the tests say which case they exercise."""
    _run("mount", "--bind", str(path), str(path))
    try:
        _run("mount", "-o", "remount,ro,bind", str(path))
        yield path
    finally:
        umount(path)


def fill_disk(directory: Path, leave: int = 0, name: str = "filler") -> Path:
    """Write zeros until only ``leave`` bytes are free (0: until ENOSPC); returns
    the filler file, whose removal frees the space again."""
    filler = directory / name
    with open(filler, "ab") as fh:
        for block in (1 << 20, 4096):
            data = b"\0" * block
            try:
                while free_bytes(directory) - block >= leave:
                    fh.write(data)
                    fh.flush()
            except OSError:
                break
    return filler


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


# --- ragexctl's output -----------------------------------------------------------


def json_error(stderr: str) -> dict[str, Any] | None:
    """The ``{"error": {...}}`` line ragexctl --json prints on failure."""
    for line in reversed(stderr.strip().splitlines()):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            return data["error"]
    return None


# --- a worker's heartbeat -----------------------------------------------------------------


class HeartbeatProbe:
    """PINGs the worker directly (its ROUTER takes any number of peers) every
    0.1 s from a thread, and keeps the worst round trip — including one still
    unanswered when the probe stops (a worker that hangs, then is killed)."""

    def __init__(self, rx: RagexInstance, root: Path) -> None:
        self.endpoint = "ipc://" + str(rx.run_dir / "workers" / paths.project_id_for(root)
                                       / "worker.sock")
        self.worst = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        client = Client(self.endpoint)
        try:
            while not self._stop.is_set():
                request = Request(Op.PING)
                t0 = time.perf_counter()
                client.send(request)
                while not self._stop.is_set():
                    try:
                        reply = client.recv(timeout=0.1)
                    except TimeoutError:
                        self.worst = max(self.worst, time.perf_counter() - t0)
                        continue
                    if isinstance(reply, Reply) and reply.id == request.id:
                        break
                self.worst = max(self.worst, time.perf_counter() - t0)
                self._stop.wait(0.1)
        finally:
            client.close()

    def stop(self) -> float:
        self._stop.set()
        self._thread.join(10)
        return self.worst
