"""Workers as hardened Docker containers, one per project.

Why a container at all: a worker reads arbitrary code and runs a large native
stack (torch, chromadb, tree-sitter, ripgrep).  In a container it sees only the
project (read-only), its own index and its socket directory, has no network, no
capabilities, a read-only root filesystem and a memory limit the kernel
enforces.  The worker code is the same as in the process runtime, so the index
on disk is the same and switching runtime keeps it.

How ragexd reaches it: the host's per-worker socket directory is bind-mounted
at ``/run/ragex``; the worker binds ``ipc:///run/ragex/worker.sock`` inside,
which is the same socket file as ``spec.endpoint`` outside.  The container runs
as the host user (``uid:gid``), so the socket, the index and the log belong to
that user exactly as with local processes.

Why events: ``poll`` is called about once a second per worker; asking the
engine every time would be a needless API round trip.  A daemon thread follows
Docker's event stream for our containers and records ``die``/``oom`` as they
happen; ``poll`` answers from that record, and falls back to inspecting the
container when the stream is down (engine restarted) or every few seconds as a
safety net.  Docker's restart policies stay off: ragexd's own backoff and
crash-loop detection apply to both runtimes alike.

Scope: several ragexd may share one engine (other users, or tests with their
own runtime directories).  Every container carries its owner uid and a hash of
its ragexd's runtime directory (``ragex.scope``); a ragexd adopts or reaps only
containers of its own scope.
"""

from __future__ import annotations

import calendar
import hashlib
import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker
import docker.errors
from docker.types import Mount

from .. import __version__, paths
from ..config import format_size
from ..logfile import note
from ..logfile import rotate as rotate_log
from ..logfile import tail as _tail_file
from ..modelfiles import OFFLINE_ENV
from ..proctree import tree_rss
from .base import ExitInfo, Runtime, WorkerHandle, WorkerSpec

if TYPE_CHECKING:  # pragma: no cover
    from docker.models.containers import Container

    from ..config import Config

log = logging.getLogger("ragexd.runtime.docker")

#: Paths inside the container.
WORKSPACE = "/workspace"
INDEX = "/index"
SOCKET_DIR = "/run/ragex"
CONTAINER_ENDPOINT = f"ipc://{SOCKET_DIR}/worker.sock"

LABEL_MANAGED = "ragex.managed"
LABEL_OWNER = "ragex.owner-uid"
LABEL_PROJECT = "ragex.project-id"
LABEL_CONFIG = "ragex.config-hash"
LABEL_VERSION = "ragex.version"
LABEL_SCOPE = "ragex.scope"
LABEL_ROOT = "ragex.root"
LABEL_SOCKET_DIR = "ragex.socket-dir"

#: Bumped when the run flags below change, so adopted containers started with
#: older flags are replaced rather than kept.
RUN_FLAGS_REVISION = "2"   # 2: the worker's memory limit in its environment
PIDS_LIMIT = 512
TMPFS = {"/tmp": "size=64m,mode=1777"}
WORKER_ENV = {**OFFLINE_ENV, "HOME": "/tmp", "XDG_CACHE_HOME": "/tmp/.cache",
              "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}
LOG_TAIL_LINES = 20
#: Without an event stream, or as a safety net with one, inspect this often.
INSPECT_INTERVAL = 5.0
PROBE_TIMEOUT = 2.0
API_TIMEOUT = 30.0
#: How many ended containers' exits (and unclaimed events) are remembered: a long-lived
#: ragexd restarting workers for months must not grow without bound.
MEMO_LIMIT = 512


def _trim(memo: dict[str, Any] | set[str], limit: int) -> None:
    """Forget the oldest entries beyond ``limit`` (dicts keep insertion order)."""
    excess = len(memo) - limit
    if excess <= 0:
        return
    if isinstance(memo, dict):
        for key in list(memo)[:excess]:
            del memo[key]
    else:
        for key in list(memo)[:excess]:
            memo.discard(key)


def container_name(project_id: str) -> str:
    return f"ragex-{project_id}"


def scope_id() -> str:
    """This ragexd's identity among those sharing an engine: its runtime directory."""
    return hashlib.sha256(str(paths.runtime_dir()).encode()).hexdigest()[:12]


def _engine_problem(exc: BaseException) -> str:
    """A sentence for 'the engine does not answer', without a wall of urllib3 text."""
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    text = str(exc)
    if "Permission denied" in text:
        return (f"the Docker engine at {host} refuses this user (permission denied on its "
                "socket; join the docker group or use rootless Docker)")
    if any(s in text for s in ("No such file", "Connection refused", "FileNotFoundError")):
        return f"the Docker engine is not running (nothing answers at {host})"
    if "timed out" in text.lower() or "timeout" in text.lower():
        return f"the Docker engine at {host} did not answer within {PROBE_TIMEOUT:g} s"
    return f"the Docker engine at {host} does not answer ({type(exc).__name__}: {text[:200]})"


def describe_exit(code: int | None) -> tuple[str, str]:
    """(reason, sentence) for a container's exit code (128+N means signal N)."""
    import signal

    if code is None:
        return "exited", "exited (exit code unknown)"
    if code == 0:
        return "exited", "exited with code 0"
    if code > 128:
        try:
            name = signal.Signals(code - 128).name
        except ValueError:
            name = f"signal {code - 128}"
        return "killed", f"killed ({name})"
    return "crashed", f"exited with code {code}"


def _parse_docker_time(text: str | None) -> float | None:
    """Docker's RFC 3339 nanosecond timestamps → epoch seconds."""
    if not text or text.startswith("0001-"):
        return None
    try:
        main, _, frac = text.rstrip("Z").partition(".")
        secs = calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S"))
        return secs + (float("0." + frac[:6]) if frac else 0.0)
    except ValueError:
        return None


class DockerRuntime(Runtime):
    name = "docker"

    def __init__(self, cfg: "Config") -> None:
        self.cfg = cfg
        self.image_ref = cfg.docker_image
        self.uid, self.gid = os.getuid(), os.getgid()
        self.scope = scope_id()
        interval, timeout = cfg.heartbeat_interval, cfg.heartbeat_timeout
        #: The worker exits by itself after this long without a message from ragexd,
        #: which stops its container: no orphans survive a kill -9 of ragexd.
        self.orphan_timeout = max(60.0, 5 * interval, 2 * timeout)
        self._local = threading.local()
        try:
            client = docker.from_env(timeout=API_TIMEOUT)
            self._engine_version = str(client.version().get("Version", "unknown"))
        except docker.errors.DockerException as exc:
            raise RuntimeError(_engine_problem(exc)) from None
        self._api_version = client.api.api_version
        self._local.client = client
        self._image_id = ""
        self._lock = threading.Lock()
        self._closed = threading.Event()
        #: container id -> exit code from `die` events; ids of `oom` events.
        self._died: dict[str, int | None] = {}
        self._oom: set[str] = set()
        self._exits: dict[str, ExitInfo] = {}
        self._last_inspect: dict[str, float] = {}
        #: container id -> when we started watching it (before `run`, or at adoption).
        self._tracked: dict[str, float] = {}
        self._followers: dict[str, threading.Thread] = {}
        #: When the current event stream was opened (0 = no stream): events of
        #: containers started after it are known to be seen.
        self._events_since = 0.0
        self._events_stream: Any = None
        self._events_thread = threading.Thread(target=self._watch_events,
                                               name="docker-events", daemon=True)
        self._events_thread.start()

    # --- clients -------------------------------------------------------------------

    def _client(self) -> docker.DockerClient:
        """One client per thread: docker-py's HTTP session is not meant to be shared."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = docker.from_env(version=self._api_version, timeout=API_TIMEOUT)
            self._local.client = client
        return client

    @classmethod
    def probe(cls, cfg: "Config") -> str | None:
        """None when Docker can host workers; else a sentence saying why not."""
        try:
            client = docker.from_env(timeout=PROBE_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - DockerException, urllib3/requests internals
            return _engine_problem(exc)
        try:
            client.ping()
            image = client.images.get(cfg.docker_image)
        except docker.errors.ImageNotFound:
            return (f"the worker image {cfg.docker_image} is not built "
                    "(run packaging/build-image.sh)")
        except Exception as exc:  # noqa: BLE001
            return _engine_problem(exc)
        finally:
            client.close()
        have = (image.labels or {}).get(LABEL_VERSION)
        if have != __version__:
            return (f"the worker image {cfg.docker_image} is for ragex {have or 'unknown'}, "
                    f"not {__version__} (rebuild it with packaging/build-image.sh)")
        return None

    # --- events --------------------------------------------------------------------

    def _watch_events(self) -> None:
        """Record die/oom of our containers; reconnect (with backoff) when the stream breaks."""
        delay = 0.5
        while not self._closed.is_set():
            try:
                client = docker.from_env(version=self._api_version, timeout=API_TIMEOUT)
                stream = client.events(decode=True, filters={
                    "type": "container", "label": [f"{LABEL_MANAGED}=1",
                                                   f"{LABEL_OWNER}={self.uid}",
                                                   f"{LABEL_SCOPE}={self.scope}"],
                    "event": ["die", "oom"]})
                # The request has been answered: from now on the engine sends us events.
                opened = time.time()
                with self._lock:
                    self._events_stream = stream
                    # Anything that happened before the stream opened is unknown to it.
                    self._events_since = opened
                delay = 0.5
                for event in stream:
                    cid = event.get("id") or event.get("Actor", {}).get("ID", "")
                    action = event.get("Action") or event.get("status")
                    with self._lock:
                        if action == "oom":
                            self._oom.add(cid)
                            _trim(self._oom, MEMO_LIMIT)
                        elif action == "die":
                            _trim(self._died, MEMO_LIMIT)
                            code = event.get("Actor", {}).get("Attributes", {}).get("exitCode")
                            try:
                                self._died[cid] = int(code) if code is not None else None
                            except ValueError:
                                self._died[cid] = None
            except Exception as exc:  # noqa: BLE001 - the engine went away; poll falls back
                if not self._closed.is_set():
                    log.warning("Docker event stream lost (%s); retrying in %.1f s", exc, delay)
            with self._lock:
                self._events_since = 0.0
                self._events_stream = None
            self._closed.wait(delay)
            delay = min(delay * 2, 10.0)

    # --- helpers ---------------------------------------------------------------------

    def image_id(self) -> str:
        try:
            image = self._client().images.get(self.image_ref)
        except docker.errors.ImageNotFound:
            raise RuntimeError(f"the worker image {self.image_ref} is not built "
                               "(run packaging/build-image.sh)") from None
        except docker.errors.DockerException as exc:
            raise RuntimeError(_engine_problem(exc)) from None
        have = (image.labels or {}).get(LABEL_VERSION)
        if have != __version__:
            raise RuntimeError(f"the worker image {self.image_ref} is for ragex {have or 'unknown'}, "
                               f"not {__version__} (rebuild it with packaging/build-image.sh)")
        self._image_id = image.id
        return image.id

    def config_hash(self, spec: WorkerSpec, image_id: str) -> str:
        return spec.config_hash(f"{image_id}|flags={RUN_FLAGS_REVISION}|uid={self.uid}:{self.gid}")

    def command(self, spec: WorkerSpec) -> list[str]:
        """Arguments after the image's entrypoint (``python -m ragexd.worker``)."""
        cmd = ["serve", "--root", WORKSPACE, "--index-dir", INDEX,
               "--endpoint", CONTAINER_ENDPOINT, "--project-id", spec.project_id,
               "--orphan-timeout", f"{self.orphan_timeout:g}"]
        if not spec.watch:
            cmd.append("--no-watch")
        return cmd

    def run_options(self, spec: WorkerSpec, image_id: str) -> dict[str, Any]:
        """Everything passed to ``containers.run``: the hardening lives here."""
        env = dict(WORKER_ENV)
        env["RAGEX_LOG_LEVEL"] = self.cfg.log_level
        env.update(dict(spec.env))
        env.update(spec.limit_env())   # the limit below, as the worker's own setting
        labels = {LABEL_MANAGED: "1", LABEL_OWNER: str(self.uid), LABEL_PROJECT: spec.project_id,
                  LABEL_CONFIG: self.config_hash(spec, image_id), LABEL_VERSION: __version__,
                  LABEL_SCOPE: self.scope, LABEL_ROOT: str(spec.root),
                  LABEL_SOCKET_DIR: str(spec.socket_dir)}
        opts: dict[str, Any] = dict(
            image=image_id, command=self.command(spec), name=container_name(spec.project_id),
            labels=labels, detach=True, init=True, network_mode="none", read_only=True,
            tmpfs=dict(TMPFS), cap_drop=["ALL"], security_opt=["no-new-privileges"],
            user=f"{self.uid}:{self.gid}", pids_limit=PIDS_LIMIT,
            restart_policy={"Name": "no"}, environment=env, working_dir=WORKSPACE,
            stdin_open=False, tty=False,
            mounts=[Mount(WORKSPACE, str(spec.root), type="bind", read_only=True),
                    Mount(INDEX, str(spec.index_dir), type="bind", read_only=False),
                    Mount(SOCKET_DIR, str(spec.socket_dir), type="bind", read_only=False)])
        if spec.memory_limit > 0:
            # memswap == mem: no swap, so the limit is the limit and the kernel OOM-kills.
            opts["mem_limit"] = spec.memory_limit
            opts["memswap_limit"] = spec.memory_limit
        if spec.cpus > 0:
            opts["nano_cpus"] = int(spec.cpus * 1e9)
        return opts

    def _clear_name(self, spec: WorkerSpec) -> None:
        """Remove a leftover container holding this project's name, unless another live
        ragexd owns it (then refuse: two supervisors must not fight over one worker)."""
        client = self._client()
        try:
            old = client.containers.get(container_name(spec.project_id))
        except docker.errors.NotFound:
            return
        labels = old.labels or {}
        running = old.status in ("running", "restarting", "paused")
        if running and labels.get(LABEL_SCOPE) not in (None, self.scope):
            other = labels.get(LABEL_SOCKET_DIR, "")
            if other and Path(other).is_dir():
                raise RuntimeError(
                    f"another ragexd (runtime directory {Path(other).parent.parent}) already runs "
                    f"a worker container for {spec.root} ({old.name}); stop it first")
        log.info("removing leftover container %s (%s)", old.name, old.status)
        try:
            old.remove(force=True)
        except docker.errors.NotFound:
            pass

    def _follow_logs(self, cid: str, path: Path, since: int | None) -> None:
        """Append the container's output to the project's log file until it exits."""
        try:
            client = docker.from_env(version=self._api_version, timeout=None)
            kwargs: dict[str, Any] = {"stream": True, "follow": True, "stdout": True,
                                      "stderr": True}
            if since is not None:
                kwargs["since"] = since
            with open(path, "ab") as fh:
                for chunk in client.api.logs(cid, **kwargs):
                    fh.write(chunk)
                    fh.flush()
            client.close()
        except Exception as exc:  # noqa: BLE001 - the container or engine went away
            if not self._closed.is_set():
                log.debug("log follower for %s ended: %s", cid[:12], exc)

    def _start_follower(self, cid: str, path: Path, since: int | None) -> None:
        thread = threading.Thread(target=self._follow_logs, args=(cid, path, since),
                                  name=f"docker-logs-{cid[:12]}", daemon=True)
        with self._lock:
            self._followers[cid] = thread
        thread.start()

    def _join_follower(self, cid: str, timeout: float = 1.0) -> None:
        with self._lock:
            thread = self._followers.pop(cid, None)
        if thread is not None:
            thread.join(timeout)

    def _container_tail(self, container: "Container", lines: int) -> list[str]:
        try:
            data = container.logs(stdout=True, stderr=True, tail=lines)
        except docker.errors.DockerException:
            return []
        return data.decode("utf-8", "replace").splitlines()[-lines:]

    def _note(self, spec: WorkerSpec, text: str) -> None:
        note(spec.log_path, f"ragexd: {text}")

    # --- Runtime ---------------------------------------------------------------------

    def start(self, spec: WorkerSpec) -> WorkerHandle:
        try:
            spec.socket_dir.mkdir(parents=True, mode=0o700, exist_ok=True)
            os.chmod(spec.socket_dir, 0o700)
            try:
                spec.socket_path.unlink()
            except FileNotFoundError:
                pass
            spec.index_dir.mkdir(parents=True, exist_ok=True)
            spec.log_path.parent.mkdir(parents=True, exist_ok=True)
            rotate_log(spec.log_path)
        except OSError as exc:
            raise RuntimeError(f"cannot prepare the worker for {spec.root}: {exc}") from None
        image_id = self.image_id()
        tracked = time.time()
        try:
            self._clear_name(spec)
            container = self._client().containers.run(**self.run_options(spec, image_id))
            container.reload()
        except docker.errors.APIError as exc:
            detail = exc.explanation or str(exc)
            if isinstance(detail, bytes):
                detail = detail.decode("utf-8", "replace")
            raise RuntimeError(f"Docker could not start the worker container for {spec.root}: "
                               f"{detail}") from None
        except docker.errors.DockerException as exc:
            raise RuntimeError(_engine_problem(exc)) from None
        cid = container.id
        state = container.attrs.get("State", {})
        self._note(spec, f"started container {container.name} ({cid[:12]}, image "
                         f"{self.image_ref}) for {spec.root}")
        with self._lock:
            self._exits.pop(cid, None)
            self._last_inspect[cid] = time.time()
            self._tracked[cid] = tracked
        self._start_follower(cid, spec.log_path, None)
        started = _parse_docker_time(state.get("StartedAt")) or time.time()
        return WorkerHandle(spec=spec, runtime=self.name, ident=cid, started_at=started,
                            pid=state.get("Pid") or None)

    def _finish(self, handle: WorkerHandle, stopping: bool) -> ExitInfo:
        """Read why the container ended, capture its last lines, remove it, remember."""
        cid = handle.ident
        code: int | None = None
        oom = False
        tail: list[str] = []
        client = self._client()
        try:
            container = client.containers.get(cid)
            state = container.attrs.get("State", {})
            code = state.get("ExitCode")
            oom = bool(state.get("OOMKilled"))
            tail = self._container_tail(container, LOG_TAIL_LINES)
            self._join_follower(cid, 1.0)
            container.remove(force=True)
        except docker.errors.NotFound:
            self._join_follower(cid, 0.1)
            tail = _tail_file(handle.spec.log_path, LOG_TAIL_LINES)
        except docker.errors.DockerException as exc:
            log.warning("cannot inspect or remove container %s: %s", cid[:12], exc)
        with self._lock:
            if code is None:
                code = self._died.get(cid)
            oom = oom or cid in self._oom
        limit = handle.spec.memory_limit
        if oom and not stopping:
            message = (f"stopped: memory limit {format_size(limit)} exceeded" if limit
                       else "stopped: out of memory")
            info = ExitInfo(code, "memory_limit", message, tail)
        elif stopping:
            info = ExitInfo(code, "stopped", f"stopped ({describe_exit(code)[1]})", tail)
        else:
            reason, sentence = describe_exit(code)
            info = ExitInfo(code, reason, sentence, tail)
        self._note(handle.spec, f"container {cid[:12]} {info.message}")
        with self._lock:
            self._exits[cid] = info
            _trim(self._exits, MEMO_LIMIT)
            self._died.pop(cid, None)
            self._oom.discard(cid)
            self._last_inspect.pop(cid, None)
            self._tracked.pop(cid, None)
        return info

    def poll(self, handle: WorkerHandle) -> ExitInfo | None:
        cid = handle.ident
        now = time.time()
        with self._lock:
            known = self._exits.get(cid)
            if known is not None:
                return known
            died = cid in self._died
            # A die event of this container cannot have been missed by the stream.
            covered = 0 < self._events_since <= self._tracked.get(cid, 0.0)
            recent = now - self._last_inspect.get(cid, 0.0) < INSPECT_INTERVAL
        if not died:
            if covered and recent:
                return None
            try:
                container = self._client().containers.get(cid)
                running = container.status in ("running", "restarting", "paused", "created")
            except docker.errors.NotFound:
                running = False
            except docker.errors.DockerException as exc:
                log.warning("cannot inspect container %s: %s", cid[:12], exc)
                return None
            with self._lock:
                self._last_inspect[cid] = now
            if running:
                return None
        return self._finish(handle, stopping=False)

    def stop(self, handle: WorkerHandle, timeout: float = 10.0) -> ExitInfo:
        cid = handle.ident
        with self._lock:
            known = self._exits.get(cid)
        if known is not None:
            return known
        try:
            container = self._client().containers.get(cid)
            if container.status in ("running", "restarting", "paused"):
                container.stop(timeout=max(1, math.ceil(timeout)))
        except docker.errors.NotFound:
            pass
        except docker.errors.DockerException as exc:
            log.warning("docker stop %s failed (%s): removing it by force", cid[:12], exc)
        return self._finish(handle, stopping=True)

    def memory(self, handle: WorkerHandle) -> int | None:
        try:
            # one_shot: answer now, without the second sample Docker waits ~1 s for.
            stats = self._client().api.stats(handle.ident, stream=False, one_shot=True)
        except docker.errors.InvalidVersion:
            return self._memory_from_processes(handle)   # engine older than API 1.41
        except docker.errors.DockerException:
            return None
        mem = stats.get("memory_stats") or {}
        usage = mem.get("usage")
        if not usage:
            return None
        detail = mem.get("stats") or {}
        # What `docker stats` shows: page cache the kernel can drop is not the worker's.
        cache = (detail.get("inactive_file") or detail.get("total_inactive_file")
                 or detail.get("cache") or 0)
        return max(0, int(usage) - int(cache))

    @staticmethod
    def _memory_from_processes(handle: WorkerHandle) -> int | None:
        """RSS of the container's processes seen from the host (same pid namespace),
        summed as the process runtime sums a worker's (``proctree.tree_rss``)."""
        return tree_rss(handle.pid) if handle.pid else None

    def log_tail(self, handle: WorkerHandle, lines: int = 20) -> list[str]:
        got = _tail_file(handle.spec.log_path, lines)
        if got:
            return got
        try:
            container = self._client().containers.get(handle.ident)
        except docker.errors.DockerException:
            return []
        return self._container_tail(container, lines)

    def managed_containers(self) -> list["Container"]:
        """Every container of this user and this ragexd's scope, running or not."""
        return self._client().containers.list(all=True, filters={"label": [
            f"{LABEL_MANAGED}=1", f"{LABEL_OWNER}={self.uid}", f"{LABEL_SCOPE}={self.scope}"]})

    def adopt_or_reap(self, wanted: dict[str, WorkerSpec]) -> list[WorkerHandle]:
        """Adopt running containers whose project is wanted with the same configuration;
        stop and remove every other container a previous ragexd left behind."""
        listed = time.time()
        try:
            containers = self.managed_containers()
        except docker.errors.DockerException as exc:
            log.warning("cannot list leftover containers: %s", exc)
            return []
        try:
            image_id = self.image_id()
        except RuntimeError:
            image_id = ""
        adopted: list[WorkerHandle] = []
        for container in containers:
            labels = container.labels or {}
            project = labels.get(LABEL_PROJECT, "")
            spec = wanted.get(project)
            if (spec is not None and container.status == "running" and image_id
                    and labels.get(LABEL_CONFIG) == self.config_hash(spec, image_id)
                    and not any(h.spec.project_id == project for h in adopted)):
                state = container.attrs.get("State", {})
                handle = WorkerHandle(
                    spec=spec, runtime=self.name, ident=container.id,
                    started_at=_parse_docker_time(state.get("StartedAt")) or time.time(),
                    pid=state.get("Pid") or None, adopted=True)
                self._note(spec, f"adopted running container {container.name} "
                                 f"({container.id[:12]})")
                self._start_follower(container.id, spec.log_path, int(time.time()))
                with self._lock:
                    self._last_inspect[container.id] = time.time()
                    self._tracked[container.id] = listed
                log.info("adopted container %s for %s", container.name, spec.root)
                adopted.append(handle)
                continue
            log.info("removing leftover container %s (%s, project %s)", container.name,
                     container.status, project or "?")
            try:
                if container.status in ("running", "restarting", "paused"):
                    container.stop(timeout=3)
                container.remove(force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.DockerException as exc:
                log.warning("cannot remove leftover container %s: %s", container.name, exc)
        return adopted

    def describe(self) -> dict[str, object]:
        image_id = self._image_id
        if not image_id:
            try:
                image_id = self.image_id()
            except RuntimeError:
                image_id = ""
        return {"runtime": self.name, "image": self.image_ref, "image_id": image_id,
                "engine": self._engine_version}

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            stream = self._events_stream
        if stream is not None:
            try:
                stream.close()
            except Exception:  # noqa: BLE001
                pass
        client = getattr(self._local, "client", None)
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001
                pass
