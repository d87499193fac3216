"""A large backlog embedded on OpenVINO in a short-lived child process.

Why a child (``[embedder] runtime = "auto"``, the default): on a CPU with AVX-512
BF16 or AMX, OpenVINO embeds ~2.4x faster than onnxruntime with the same vectors
(cos >= 0.99998, one embedder id), but a worker that loaded it holds ~640 MiB for
good, against ~250 MiB on onnxruntime.  Dropping the compiled model and trimming
the heap (``release_memory``) does not give it all back: measured on 400 scikit-learn
chunk texts, a process that embedded them on OpenVINO (554 MiB), dropped it, trimmed,
then loaded onnxruntime and embedded them again settled at 330 MiB, against 256 MiB
for onnxruntime alone (OpenVINO's libraries, TBB's threads and their arenas stay).
A process that exits returns all of it.  So the worker keeps onnxruntime for queries and small incremental batches, and
hands a first index (or any backlog of ``BULK_MIN_CHUNKS`` or more) to a child that
runs the very same ``Embedder`` on OpenVINO and exits when the backlog is done: the
worker stays the one writer of its index, and settles at its onnxruntime size.

The child lives only as long as the worker's indexing thread wants it: it asks
the kernel for SIGKILL when that thread's process dies (``PR_SET_PDEATHSIG``), and
stops at end-of-file on its input, so a killed or interrupted worker leaves no
orphan.  It ignores SIGINT and SIGTERM: Ctrl-C, or ragexd stopping the worker (it
signals the worker's whole process group), stops the worker, whose exit then ends
it; dying at once instead cost the batch in flight, which the worker then
re-embedded in-process while it was meant to be stopping.
Anything wrong with it -- it cannot load, crashes, answers garbage or nothing --
is ``BulkFailed``: the worker says so once and embeds the rest in-process on
onnxruntime; nothing it computed is stored unless it came back whole and finite.

The wire is the child's stdin/stdout: frames of a 4-byte big-endian length and a
payload.  The worker sends a JSON list of texts; the child answers ``V`` and the
float32 vectors (row-major, ``DIM`` wide) or ``E`` and a sentence.  Its first frame
is ``R`` and a JSON description once the model is loaded (or ``E``).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import os
import select
import signal
import struct
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any, BinaryIO, Sequence

from .embedding import DIM, backend_name
from .. import modelfiles, proctree

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

#: The longest the worker waits for the child to load its model, and for one slice's
#: vectors (indexer.CHILD_ENCODE_SLICE texts: well under a second, seconds on a
#: loaded 2-core machine).  Generous, yet a stuck child is a failure the worker recovers from
#: rather than a hang; and the two together stay well inside the time a client waits
#: for a word from an index (ragexctl's INDEX_SILENCE_TIMEOUT, 300 s: the index says
#: it is starting the child before the load), so the worker gives up on the child,
#: and carries on in-process, before any client gives up on the index.
LOAD_TIMEOUT = 180.0
BATCH_TIMEOUT = 60.0
#: What a child adds to the worker's process tree (its RSS is ~640 MiB on OpenVINO
#: bf16, measured on scikit-learn), with a margin: a worker whose ``[daemon]
#: memory_limit`` leaves less than this above its own RSS embeds in-process rather
#: than be stopped for memory by ragexd, which counts the child too.
CHILD_MEMORY = 700 << 20
#: CPU flags with which OpenVINO runs the weight MatMuls in bf16 (its "BF16"
#: capability); without them its f32 path is no faster than onnxruntime.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
#: Tests only: the child may run OpenVINO in f32 and the plan asks for no bf16, so
#: the child's lifecycle is tested on CPUs without bf16 too (CI runners).  Never
#: for use: f32 OpenVINO is no faster than onnxruntime, and the child costs a start.
TEST_F32_ENV = "RAGEX_TEST_BULK_F32"
_HEADER = struct.Struct(">I")
#: The child's command (``-m`` would import this module twice: the package imports it).
_CHILD_MAIN = "import sys; from ragexd.engine.bulk import main; sys.exit(main(sys.argv[1:]))"
#: The most a frame may hold: 4096 texts of 16 KiB, or their vectors.
MAX_FRAME = 64 << 20


class BulkFailed(Exception):
    """The child could not embed: the caller embeds in-process instead."""


@functools.lru_cache(maxsize=4)
def cpu_has_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU advertises bf16 matrix instructions (Linux; elsewhere False).
    Read from /proc rather than asked of OpenVINO: importing it in the worker would
    cost the memory the child exists to keep out of it.  Once per process: the CPU
    does not change, and /proc/cpuinfo is long on a many-core machine."""
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[-1].split())
                    return any(flag in flags for flag in BF16_FLAGS)
    except OSError:
        pass
    return False


@functools.lru_cache(maxsize=1)
def openvino_installed() -> bool:
    """Whether the [openvino] extra is importable (found, not imported: see above).
    Once per process: a search of every ``sys.path`` entry each run is not worth
    repeating, and a child that cannot load it after all is a BulkFailed anyway."""
    return importlib.util.find_spec("openvino") is not None


def _test_f32() -> bool:
    return os.environ.get(TEST_F32_ENV) == "1"


def bulk_plan() -> tuple[str, int] | None:
    """(runtime, fewest chunks) if a backlog that large should go to a child, else
    None: the setting is ``auto``, the model is the fp32 graph on the ONNX path (the
    int8 graph and the torch reference have other vectors), openvino is importable
    and the CPU has bf16, and the worker's memory limit (``[daemon] memory_limit``,
    which every runtime passes on) has room for the child.  Everywhere else
    (the Docker image has no openvino) behaviour is onnxruntime's.

    The fewest chunks, ``[embedder] bulk_min_chunks`` (500): a child's start (0.5-1 s
    from OpenVINO's cache, ~3 s on a first compile, more under load) costs more than
    OpenVINO saves on a few hundred chunks (~20 ms each, measured on scikit-learn)."""
    return explain_plan()[0]


def explain_plan() -> tuple[tuple[str, int] | None, str]:
    """``bulk_plan``'s answer and why, in one clause for people: the one place the
    decision is made, so ``ragexctl doctor`` (which asks it in a child process that
    has loaded the model, as a worker has) says what a worker here will do."""
    from ..config import ConfigError, load

    try:
        cfg = load()   # once: [embedder] runtime, bulk_min_chunks, [daemon] memory_limit
    except ConfigError as exc:
        return None, f"the configuration cannot be read ({exc})"   # the in-process load reports it
    if cfg.embedder_runtime != "auto":
        return None, f"[embedder] runtime = \"{cfg.embedder_runtime}\" is configured"
    if backend_name() != "onnx":
        return None, f"RAGEX_EMBEDDER={backend_name()}: the reference model has its own vectors"
    try:
        precision = modelfiles.precision()
    except modelfiles.ModelFilesError as exc:
        return None, f"the model cannot be used ({exc.problem})"
    if precision != "fp32":
        return None, (f"the {precision} graph is configured, whose vectors OpenVINO's bf16 "
                      "would not match")
    if not openvino_installed():
        return None, "openvino is not installed (pip install 'ragex[openvino]' to use it)"
    if _test_f32():
        how = f"the test switch {TEST_F32_ENV}=1 runs it in f32"
    elif cpu_has_bf16():
        how = "this CPU has AVX-512 BF16 or AMX (OpenVINO runs in bf16)"
    else:
        return None, ("this CPU has neither AVX-512 BF16 nor AMX, without which OpenVINO is "
                      "no faster")
    if cfg.memory_limit > 0:   # set by the runtime that started this worker
        used = proctree.tree_rss(os.getpid()) or 0
        if cfg.memory_limit - used < CHILD_MEMORY:
            why = (f"the memory limit ({cfg.memory_limit >> 20} MiB) leaves "
                   f"{(cfg.memory_limit - used) >> 20} MiB above a worker's {used >> 20} MiB, "
                   f"less than an openvino child needs ({CHILD_MEMORY >> 20} MiB)")
            log.info("embedding in this worker: %s", why)
            return None, why
    return ("openvino", cfg.embedder_bulk_min_chunks), f"openvino is installed and {how}"


# -- frames ----------------------------------------------------------------------------

def _write_frame(out: BinaryIO, payload: bytes) -> None:
    out.write(_HEADER.pack(len(payload)))
    out.write(payload)
    out.flush()


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    """``n`` bytes from ``fd``; EOFError at end of file, TimeoutError past ``deadline``.
    ``poll``, not ``select``: a worker with many files open (a watcher, SQLite,
    sockets) may get a pipe numbered 1024 or more, which ``select`` refuses."""
    parts: list[bytes] = []
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not poller.poll(max(1, int(left * 1000))):
                raise TimeoutError("no answer in time")
        block = os.read(fd, min(n, 1 << 20))
        if not block:
            raise EOFError("end of file")
        parts.append(block)
        n -= len(block)
    return b"".join(parts)


def _read_frame(fd: int, deadline: float | None = None) -> bytes:
    (size,) = _HEADER.unpack(_read_exact(fd, _HEADER.size, deadline))
    if size > MAX_FRAME:
        raise ValueError(f"a frame of {size} bytes")
    return _read_exact(fd, size, deadline)


# -- the worker's side -----------------------------------------------------------------

class BulkChild:
    """The worker's handle on one child: ``start``, ``encode`` batches, ``close``.
    Used by one thread (the index's embedding thread, which started it: the child's
    death signal is tied to that thread)."""

    def __init__(self, runtime: str) -> None:
        env = dict(os.environ, RAGEX_EMBEDDER_RUNTIME=runtime)
        self.runtime = runtime
        self.info: dict[str, Any] = {}
        self._ready = False
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD_MAIN, str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def describe(self) -> dict[str, Any]:
        """What ``status`` shows of it."""
        return {"runtime": self.runtime, "pid": self.pid, **self.info}

    def _call(self, payload: bytes | None, timeout: float) -> bytes:
        """Send ``payload`` (None: nothing) and read the answer's body."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        try:
            if payload is not None:
                _write_frame(self._proc.stdin, payload)
            answer = _read_frame(self._proc.stdout.fileno(), time.monotonic() + timeout)
        except (OSError, EOFError, TimeoutError, ValueError) as exc:
            code = self._proc.poll()
            how = f"exited with status {code}" if code is not None else str(exc)
            raise BulkFailed(f"the {self.runtime} child process {how}") from None
        if answer[:1] == b"E":
            raise BulkFailed(answer[1:].decode("utf-8", "replace"))
        return answer

    def wait_ready(self) -> None:
        """Block until the child has loaded its model (BulkFailed if it cannot)."""
        if not self._ready:
            answer = self._call(None, LOAD_TIMEOUT)
            if answer[:1] != b"R":
                raise BulkFailed(f"the {self.runtime} child process answered {answer[:1]!r}")
            try:   # anything it says is suspect: garbage is a failure, not a crash
                info = json.loads(answer[1:].decode("utf-8"))
            except ValueError:   # UnicodeDecodeError included
                info = None
            if not isinstance(info, dict):
                raise BulkFailed(f"the {self.runtime} child process answered "
                                 f"{answer[:40]!r} when it was ready")
            self.info = info
            self._ready = True
            log.info("embedding the backlog on %s %s in child process %d", self.runtime,
                     self.info.get("precision", ""), self.pid)

    def encode(self, texts: Sequence[str]) -> "np.ndarray":
        """The vectors of ``texts``, in order: whole, finite and unit length, or BulkFailed."""
        import numpy as np

        self.wait_ready()
        answer = self._call(json.dumps(list(texts)).encode("utf-8"), BATCH_TIMEOUT)
        body = answer[1:]
        if answer[:1] != b"V" or len(body) != len(texts) * DIM * 4:
            raise BulkFailed(f"the {self.runtime} child process sent {len(body)} bytes "
                             f"for {len(texts)} vectors")
        vecs = np.frombuffer(body, dtype=np.float32).reshape(len(texts), DIM).copy()
        if len(vecs) and not (np.isfinite(vecs).all()
                              and np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-3)):
            raise BulkFailed(f"the {self.runtime} child process sent vectors that are not "
                             "finite unit vectors")
        return vecs

    def close(self) -> None:
        """End the child: end of file on its input, then SIGKILL if it lingers.
        Waited for, so its memory is back with the OS when this returns."""
        proc = self._proc
        if not self._ready and proc.poll() is None:
            proc.kill()   # still loading (an index cancelled early): nothing to finish
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def start(runtime: str) -> BulkChild | None:
    """A child for ``runtime``, or None (with a warning) if it cannot even be spawned."""
    try:
        return BulkChild(runtime)
    except OSError as exc:
        log.warning("cannot start a %s child process to embed the backlog (%s); "
                    "embedding in-process", runtime, exc)
        return None


# -- the child's side ------------------------------------------------------------------

def _die_with(parent: int) -> None:
    """SIGKILL when the worker dies (Linux); gone at once if it already has."""
    try:
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass   # elsewhere: end of file on stdin still ends it
    if os.getppid() != parent:
        os._exit(0)


def main(argv: Sequence[str]) -> int:
    """The child: load the model, then embed each batch it is sent until end of file."""
    _die_with(int(argv[0]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    modelfiles.stay_offline()   # as any process that loads the model
    # Frames go out on a private copy of stdout; whatever a library prints goes to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s bulk-embed[%(process)d] %(levelname)s %(message)s")
    from .embedding import Embedder
    from .types import EngineError

    embedder = Embedder()
    try:
        embedder.load()
        loaded = embedder.describe() or {}
        runtime, precision = loaded.get("runtime"), loaded.get("precision")
        if precision != "bf16" and not _test_f32():
            raise EngineError("model_unavailable", f"{runtime} runs in {precision} here, "
                              "no faster than onnxruntime in the worker")
    except Exception as exc:  # noqa: BLE001 - whatever it is, the worker embeds in-process
        _write_frame(out, b"E" + str(exc).encode("utf-8"))
        return 1
    _write_frame(out, b"R" + json.dumps({"precision": precision}).encode("utf-8"))
    while True:
        try:
            texts = json.loads(_read_frame(0).decode("utf-8"))
        except EOFError:
            return 0
        try:
            vecs = embedder.encode(texts)
        except Exception as exc:  # noqa: BLE001 - said to the worker, which carries on
            _write_frame(out, b"E" + str(exc).encode("utf-8"))
            return 1
        _write_frame(out, b"V" + vecs.astype("<f4").tobytes())

