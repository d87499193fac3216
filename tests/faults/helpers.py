"""Helpers for the fault, load and hostile-input suite (issue 6).

Builds on tests/supervisor/support.py (a private ragexd, a protocol client,
process helpers) and tests/docker_runtime/docker_support.py (containers); adds what
only this suite needs: generated corpora, reading an index's chunk ids from
another process, mounts (tmpfs for "disk full", read-only bind mounts — chmod
does not stop root), ragexctl as a subprocess and figure recording for
RELIABILITY.md.

Everything stays real: real mounts, real signals, real users.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from ragexd import paths
from ragexd.protocol import Op, Reply, Request
from supervisor.support import REPO, Client, Ragexd, kill_workers_under, pid_alive

TESTS = REPO / "tests"


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


# --- corpora --------------------------------------------------------------------------

_VERBS = ("compute", "render", "parse", "validate", "merge", "encode", "schedule", "resolve",
          "normalise", "compress", "estimate", "persist")
_NOUNS = ("invoice", "thumbnail", "manifest", "password", "timetable", "checksum", "route",
          "inventory", "coupon", "forecast", "playlist", "certificate")


def write_corpus(root: Path, files: int, funcs: int, prefix: str = "mod") -> Path:
    """``files`` Python modules of ``funcs`` distinct functions each: one chunk per
    function, enough chunks that indexing takes seconds, every name unique."""
    root.mkdir(parents=True, exist_ok=True)
    (root / ".git").mkdir(exist_ok=True)
    for i in range(files):
        parts = [f'"""Module {i} of a generated corpus."""\n']
        for j in range(funcs):
            verb, noun = _VERBS[(i + j) % len(_VERBS)], _NOUNS[(i * 7 + j) % len(_NOUNS)]
            parts.append(
                f"\n\ndef {verb}_{noun}_{i}_{j}(value, factor={j + 1}):\n"
                f'    """{verb.capitalize()} the {noun} record {i}.{j} and return the result."""\n'
                f"    total = value * factor + {i}\n"
                f"    for step in range({j % 5 + 2}):\n"
                f"        total = (total * {31 + j} + step) % {1000 + i}\n"
                f"    return total\n")
        (root / f"{prefix}_{i:03d}.py").write_text("".join(parts))
    return root


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


# --- ragexctl as users run it -----------------------------------------------------------


def ragexctl(env: dict[str, str], *args: str, timeout: float = 180.0,
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ragexctl", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=str(cwd or REPO))


def ragexctl_popen(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ragexctl", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(REPO))


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


# --- processes ---------------------------------------------------------------------------


class HeartbeatProbe:
    """PINGs the worker directly (its ROUTER takes any number of peers) every
    0.1 s from a thread, and keeps the worst round trip — including one still
    unanswered when the probe stops (a worker that hangs, then is killed)."""

    def __init__(self, rx: Ragexd, root: Path) -> None:
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


def daemon_pid(run_dir: Path) -> int | None:
    try:
        text = (run_dir / "ragexd.pid").read_text().split()
        return int(text[0]) if text else None
    except (OSError, ValueError):
        return None


def workers_under(base: Path) -> list[psutil.Process]:
    """Live (non-zombie) worker processes whose command line names ``base``."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmd = proc.info.get("cmdline") or []
        if "ragexd.worker" in cmd and "serve" in cmd and any(str(base) in c for c in cmd):
            if proc.info.get("status") != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


def stop_daemon_at(run_dir: Path, timeout: float = 40.0) -> None:
    """Stop a ragexd we did not start ourselves (auto-started by ragexctl)."""
    pid = daemon_pid(run_dir)
    if pid is None or not pid_alive(pid):
        return
    try:
        cmd = psutil.Process(pid).cmdline()
    except psutil.Error:
        return
    if "ragexd" not in " ".join(cmd):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


def cleanup_base(base: Path) -> None:
    stop_daemon_at(base / "run")
    kill_workers_under(base)


# --- Docker (tests/docker_runtime's helpers and its availability check) --------------------------


def docker_support() -> Any:
    """tests/docker_runtime/docker_support.py (that directory is not a package)."""
    path = str(TESTS / "docker_runtime")
    if path not in sys.path:
        sys.path.insert(0, path)
    import docker_support as module  # noqa: PLC0415

    return module


_docker_problem: list[str | None] = []


def docker_problem() -> str | None:
    """None when the Docker tests can run, else why not — tests/docker_runtime's own check
    (engine answers, image present and rebuilt from these sources)."""
    if not _docker_problem:
        import importlib.util

        spec = importlib.util.spec_from_file_location("rx_docker_conftest",
                                                      TESTS / "docker_runtime" / "conftest.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
            _docker_problem.append(module._check())
        except Exception as exc:  # noqa: BLE001 - any failure means: skip, with the reason
            _docker_problem.append(f"checking Docker failed: {type(exc).__name__}: {exc}")
    return _docker_problem[0]
