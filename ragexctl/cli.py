"""``ragexctl``: the command line.

ripgrep is the model: results on stdout and nothing else, one clear sentence
per error on stderr, and exit codes a shell can branch on:

* 0 — success (for ``search``: at least one result);
* 1 — nothing found (``search`` without results, ``logs`` without a log);
* 2 — an error (bad arguments, ragexd or the worker failed, a timeout);
* 3 — ``status`` only: ragexd is not running (the LSB "program is not
  running" code, as ``systemctl status`` uses it) — not an error;
* 130 — interrupted (Ctrl-C).

Everything here is cheap to import: the engine runs in ragexd's workers (or in
a one-shot worker process with ``--no-daemon``), never in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable, TextIO

from ragexd import config as rconfig
from ragexd import paths
from ragexd.protocol import (SEARCH_MODES, ErrorCode, Op, Progress, RagexError, Reply, Request,
                             SearchArgs)

from . import __version__, render

EXIT_OK = 0
EXIT_NONE = 1
EXIT_ERROR = 2
EXIT_NOT_RUNNING = 3
EXIT_INTERRUPTED = 130

#: Default deadlines, in seconds.  A search's first reply may need a cold
#: worker to load the model; an index only fails after this much *silence*
#: (every progress message restarts the clock).
SEARCH_TIMEOUT = 60.0
ONESHOT_SEARCH_TIMEOUT = 180.0
INDEX_SILENCE_TIMEOUT = 300.0
QUICK_TIMEOUT = 10.0
STOP_TIMEOUT = 45.0

PLUGINS = {"service": "manage ragexd as a user service (systemd, launchd)",
           "mcp": "serve ragex to AI assistants over the Model Context Protocol",
           "doctor": "check ragex's set-up (socket dir, ragexd, Docker, image) and print fixes"}

_HEX16 = re.compile(r"[0-9a-f]{16}")


# --- the parser --------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 2 with a one-line ``ragexctl: ...`` sentence plus usage,
    as argparse does, but say which command to ask for help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"ragexctl: {message} (see `{self.prog} --help`)\n")


def _opt_timeout(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeout", type=_seconds, metavar="S",
                   help="give up after S seconds without an answer (e.g. 90, 2m)")


def _opt_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output (JSON)")


def _opt_no_daemon(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-daemon", action="store_true",
                   help="run in a one-shot process without ragexd (slow: loads the model "
                        "every time); also RAGEX_DAEMON_ENABLED=false")


def _build_search(s: argparse.ArgumentParser) -> None:
    s.add_argument("query", nargs="*", metavar="QUERY",
                   help="what to look for (several words are joined with spaces)")
    s.add_argument("-e", "--regexp", dest="patterns", action="append", metavar="QUERY",
                   default=[], help="a query, even one starting with '-' (like rg -e)")
    s.add_argument("--mode", choices=SEARCH_MODES, default="auto",
                   help="auto (default: chosen from the query's shape), semantic, regex, "
                        "symbol or hybrid")
    s.add_argument("-n", "--limit", type=int, default=10, metavar="N",
                   help="at most N results (default 10)")
    s.add_argument("-g", "--path", dest="paths", action="append", default=[], metavar="GLOB",
                   help="only paths matching this gitignore-style glob, relative to the "
                        "project root (repeatable; '!GLOB' excludes)")
    s.add_argument("-t", "--lang", dest="languages", action="append", default=[],
                   metavar="LANG", help="only files in this language: python, js, go... "
                                        "(repeatable)")
    s.add_argument("--project", metavar="PATH",
                   help="search this project instead of the current directory's")
    s.add_argument("--color", "--colour", choices=("auto", "always", "never"), default="auto",
                   metavar="WHEN", help="colour the output: auto (only on a terminal, the "
                                        "default), always or never")
    _opt_json(s)
    _opt_no_daemon(s)
    _opt_timeout(s)


def _build_index(i: argparse.ArgumentParser) -> None:
    i.add_argument("path", nargs="?", metavar="PATH")
    i.add_argument("--rebuild", action="store_true", help="throw the index away and start over")
    _opt_json(i)
    _opt_no_daemon(i)
    _opt_timeout(i)


def _build_path_cmd(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", nargs="?", metavar="PATH")
    _opt_json(p)
    _opt_timeout(p)


def _build_stop(p: argparse.ArgumentParser) -> None:
    _build_path_cmd(p)
    p.add_argument("--all", action="store_true", help="stop every worker and ragexd")


def _build_ls(p: argparse.ArgumentParser) -> None:
    _opt_json(p)
    _opt_timeout(p)


def _build_rm(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="PROJECT")
    _opt_json(p)
    _opt_timeout(p)


def _build_logs(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", nargs="?", metavar="PROJECT")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.add_argument("-n", "--lines", type=int, default=50, metavar="N",
                   help="how many lines (default 50)")
    _opt_timeout(p)


#: name -> (one-line help, description, epilog, builder)
SUBCOMMANDS: dict[str, tuple[str, str, str | None, Callable[[argparse.ArgumentParser], None]]] = {
    "search": ("search the project by meaning, regex or symbol name",
               "Search the project containing the current directory (or --project). A query "
               "that looks like a flag goes after `--`: ragexctl search -- --pre=sh",
               "Exit codes: 0 results, 1 no results, 2 error.", _build_search),
    "index": ("index (or update the index of) a project, with progress",
              "Index the project containing PATH (default: the current directory). Only "
              "changed files are re-indexed.", None, _build_index),
    "status": ("ragexd and its workers: state, memory, uptime, errors",
               "Show ragexd and every worker (or only PATH's project). Never starts ragexd.",
               "Exit codes: 0 ragexd running, 3 ragexd not running, 2 error.", _build_path_cmd),
    "start": ("start ragexd, and PATH's worker if PATH is given",
              "Start ragexd if it is not running; with PATH, also start (warm up) that "
              "project's worker.", None, _build_path_cmd),
    "stop": ("stop PATH's worker, or --all workers and ragexd",
             "Stop one project's worker, or with --all every worker and ragexd itself.",
             None, _build_stop),
    "ls": ("indexed projects with size and last use", "List indexed projects.", None,
           _build_ls),
    "rm": ("stop a project's worker and delete its index",
           "Delete the index of PROJECT (a project id from `ragexctl ls`, or a path). Works "
           "without ragexd.", None, _build_rm),
    "logs": ("show ragexd's log, or a project's worker log",
             "Print the end of ragexd's log, or of PROJECT's worker log (id or path).", None,
             _build_logs),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only``, just that subcommand's.

    Each argparse parser costs ~1 ms (gettext probes the disk for translations
    on every one), so a search builds two parsers, not a dozen: at ~100 ms per
    warm search, that matters.
    """
    p = _Parser(prog="ragexctl",
                description="Instant local code search by meaning, regex and symbol.",
                epilog="Exit codes: 0 results/success, 1 no results, 2 error, "
                       "3 (status) ragexd not running, 130 interrupted.")
    p.add_argument("--version", action="store_true",
                   help="print ragexctl's version, and ragexd's if it is running")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (help_text, description, epilog, builder) in SUBCOMMANDS.items():
        if only is None or only == name:
            builder(sub.add_parser(name, help=help_text, description=description,
                                   epilog=epilog))
    if only is None:
        for name, help_text in PLUGINS.items():
            pl = sub.add_parser(name, help=help_text, add_help=False)
            pl.add_argument("rest", nargs=argparse.REMAINDER)
    return p


def _seconds(text: str) -> float:
    try:
        value = rconfig.parse_duration(text, "--timeout")
    except rconfig.ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value <= 0:
        raise argparse.ArgumentTypeError("--timeout must be more than 0 seconds")
    return value


def _preprocess(argv: list[str]) -> list[str]:
    """``-e --pre=sh`` works in rg; argparse refuses an option value that looks
    like an option, so glue it on: ``--regexp=--pre=sh``."""
    if not argv or argv[0] != "search":
        return argv
    out: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg == "--":
            out.append(arg)
            out.extend(it)
            break
        if arg in ("-e", "--regexp"):
            value = next(it, None)
            if value is None:
                out.append(arg)  # let argparse say "expected one argument"
            else:
                out.append("--regexp=" + value)
            continue
        out.append(arg)
    return out


# --- the application ------------------------------------------------------------


class App:
    """What every command needs: streams, config, and the way to reach ragexd."""

    def __init__(self, args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> None:
        self.args = args
        self.out = stdout
        self.err = stderr
        self.json = bool(getattr(args, "json", False))
        self._cfg: rconfig.Config | None = None
        self._client: Any = None

    @property
    def cfg(self) -> rconfig.Config:
        if self._cfg is None:
            self._cfg = rconfig.load()
        return self._cfg

    # --- output ------------------------------------------------------------------

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def note(self, text: str) -> None:
        self.err.write(f"ragexctl: {text}\n")
        self.err.flush()

    def error(self, code: str, message: str, detail: dict[str, Any] | None = None) -> int:
        self.err.write(render.format_error(code, message, as_json=self.json, detail=detail))
        if not self.json and detail:
            for line in detail.get("log_tail") or []:
                self.err.write(f"  | {line}\n")
        self.err.flush()
        return EXIT_ERROR

    # --- reaching ragexd ---------------------------------------------------------

    def daemon_enabled(self) -> bool:
        return not getattr(self.args, "no_daemon", False) and self.cfg.enabled

    def client(self, *, auto_start: bool | None = None) -> Any:
        """A DaemonClient to a running ragexd, starting ragexd first when allowed."""
        from .autostart import ensure_daemon
        from .client import DaemonClient

        if self._client is None:
            allowed = self.cfg.auto_start if auto_start is None else auto_start
            hello = ensure_daemon(auto_start=allowed)
            if hello is not None:
                self.check_version(hello)
                if self.err.isatty():
                    self.note(f"started ragexd (pid {hello.get('pid', '?')})")
            self._client = DaemonClient(on_dead=self._restart if allowed else None)
        return self._client

    def _restart(self) -> bool:
        """ragexd vanished mid-request: bring it back so the request can be resent."""
        from .autostart import start_daemon

        try:
            start_daemon()
            return True
        except RagexError:
            return False

    def running_client(self) -> Any | None:
        """A client if ragexd is running; never starts it."""
        from .client import DaemonClient, daemon_alive

        if self._client is None:
            if not daemon_alive():
                return None
            self._client = DaemonClient()
        return self._client

    def check_version(self, hello: dict[str, Any]) -> None:
        """Like Bazel's client/server handshake: a ragexd of another version is a
        stale server left from before an upgrade."""
        theirs = str(hello.get("version", ""))
        if theirs and theirs != __version__:
            self.note(f"warning: ragexd is version {theirs} but ragexctl is {__version__}: "
                      "a stale ragexd from before an upgrade is running. Restart it with "
                      "`ragexctl stop --all` (the next command starts the new one).")

    def timeout(self, default: float) -> float:
        value = getattr(self.args, "timeout", None)
        return float(value) if value else default

    def project_call(self, op: Op, args: dict[str, Any], root: Path, *, timeout: float,
                     on_progress: Callable[[Progress], None] | None) -> Reply:
        """SEARCH/INDEX through ragexd, or through a one-shot worker process."""
        if self.daemon_enabled():
            client = self.client()
            # No server-side deadline: ragexd's is absolute, and a first search
            # may index for minutes while reporting progress; our deadline
            # restarts with each progress message.  A hung worker is ragexd's
            # to detect (heartbeats), not this deadline's.
            reply = client.call(op, args, project=str(root), timeout=timeout,
                                server_deadline=False, on_progress=on_progress)
            if (not reply.ok and reply.error is not None
                    and reply.error.code is ErrorCode.SHUTTING_DOWN and self.cfg.auto_start
                    and _wait_daemon_gone(30.0)):
                # We caught ragexd on its way out (`stop --all` elsewhere): the
                # user asked for a search, not for that race; start a new one.
                client.close()
                self._client = None
                reply = self.client().call(op, args, project=str(root), timeout=timeout,
                                           server_deadline=False, on_progress=on_progress)
            return reply
        from .oneshot import call_oneshot

        # ragexd records projects it serves; without it, record this one ourselves
        # so that `ls`, `rm` and project-root discovery know the index exists.
        try:
            paths.ProjectRecord.touch(root)
        except OSError as exc:
            raise RagexError(ErrorCode.INDEX_UNWRITABLE,
                             f"cannot write to the index directory "
                             f"{paths.index_dir(paths.project_id_for(root))}: "
                             f"{exc.strerror or exc}") from None
        request = Request(op=op, args=args, project=str(root), client_version=__version__,
                          timeout=timeout)
        index_dir = paths.index_dir(paths.project_id_for(root))
        return call_oneshot(request, str(root), str(index_dir), timeout=timeout,
                            on_progress=on_progress)

    def quick_call(self, client: Any, op: Op, args: dict[str, Any] | None = None,
                   project: str | None = None, timeout: float = QUICK_TIMEOUT) -> dict[str, Any]:
        """A ragexd-level request; returns the result or raises its error."""
        total = self.timeout(timeout)
        reply = client.call(op, args or {}, project=project, timeout=total,
                            attempt_timeout=total / 3)
        return reply.raise_for_error()


def project_root(path: str | None, *, may_index: bool = False) -> Path:
    """The project of ``path`` (else the current directory) by ``paths.choose_project_root``:
    says which root it chose when no VCS root did, refuses what the policy refuses
    and, when this command may start a first index (``may_index``) of a large tree
    nobody called a project, asks on a terminal and refuses without one."""
    start = Path(path) if path else Path(os.getcwd())
    if not start.exists():
        raise RagexError(ErrorCode.NOT_FOUND, f"no such file or directory: {path}")
    choice = paths.choose_project_root(start, explicit=path is not None)
    if choice.refusal:
        raise RagexError(ErrorCode.BAD_REQUEST, choice.refusal)
    if choice.sentence:
        sys.stderr.write(f"ragexctl: note: {choice.sentence}\n")
    large = paths.large_tree_refusal(choice) if may_index else None
    if large and not _confirmed(f"{large}. Index it all? [y/N] "):
        raise RagexError(ErrorCode.BAD_REQUEST,
                         f"{large}; not indexing it. Run `ragexctl index PATH` to index it "
                         f"anyway, or put an empty {paths.ROOT_MARKER} file at the project's root")
    return choice.root


def _confirmed(question: str) -> bool:
    """A yes from the person at the terminal; never from a pipe or an agent."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return False
    sys.stderr.write(question)
    sys.stderr.flush()
    try:
        return sys.stdin.readline().strip().lower() in ("y", "yes")
    except (OSError, KeyboardInterrupt):
        return False


def _cwd() -> str:
    try:
        return os.path.realpath(os.getcwd())
    except OSError:  # the cwd was deleted
        return "/"


# --- commands -------------------------------------------------------------------


def cmd_search(app: App) -> int:
    args = app.args
    words = list(args.patterns) + ([" ".join(args.query)] if args.query else [])
    if not words:
        return app.error(ErrorCode.BAD_QUERY.value,
                         "a query is required: ragexctl search QUERY (see --help)")
    if len(words) > 1:
        return app.error(ErrorCode.BAD_QUERY.value,
                         "give one query: either -e/--regexp QUERY or a positional QUERY")
    sargs = SearchArgs(query=words[0], mode=args.mode, limit=args.limit, paths=list(args.paths),
                       languages=list(args.languages), auto_index=True)
    sargs.validate()  # a 1 MB query or a bad limit fails here, without a round trip
    root = project_root(args.project, may_index=True)
    progress = render.ProgressRenderer(app.err)
    default = SEARCH_TIMEOUT if app.daemon_enabled() else ONESHOT_SEARCH_TIMEOUT
    try:
        reply = app.project_call(Op.SEARCH, sargs.to_wire(), root, timeout=app.timeout(default),
                                 on_progress=progress.update)
    except KeyboardInterrupt:
        progress.clear()
        if progress.updates and app.daemon_enabled():
            app.note("interrupted; the worker goes on indexing in the background "
                     "(see `ragexctl status`)")
        raise
    finally:
        progress.clear()
    result = reply.raise_for_error()
    hits = [h for h in result.get("hits") or [] if isinstance(h, dict)]
    for note in result.get("notes") or []:
        app.note(f"note: {note}")
    if result.get("partial"):
        app.note("note: the index is still being built; results may be incomplete "
                 "(see `ragexctl status`)")
    if app.json:
        app.write(render.render_hits_json(hits))
    else:
        color = render.use_color(args.color, app.out)
        app.write(render.render_hits(hits, str(root), _cwd(), color=color))
    return EXIT_OK if hits else EXIT_NONE


def cmd_index(app: App) -> int:
    root = project_root(app.args.path)
    progress = render.ProgressRenderer(app.err)

    def on_progress(p: Progress) -> None:
        if app.json:
            app.write(json.dumps(p.to_wire(), ensure_ascii=False) + "\n")
        else:
            progress.update(p)

    daemon = app.daemon_enabled()
    try:
        reply = app.project_call(Op.INDEX, {"rebuild": bool(app.args.rebuild), "paths": None},
                                 root, timeout=app.timeout(INDEX_SILENCE_TIMEOUT),
                                 on_progress=on_progress)
    except KeyboardInterrupt:
        progress.clear()
        if daemon:
            app.note("interrupted; the worker goes on indexing in the background "
                     "(see `ragexctl status`)")
        raise
    finally:
        progress.clear()
    result = reply.raise_for_error()
    summary = result.get("summary") or {}
    if app.json:
        app.write(json.dumps({"type": "summary", "root": str(root), **summary},
                             ensure_ascii=False) + "\n")
    else:
        app.write(render.format_summary(summary) + f" ({root})\n")
        for item in (summary.get("skipped") or [])[:20]:
            if isinstance(item, dict):
                app.note(f"skipped {item.get('path')}: {item.get('reason')}")
    return EXIT_OK


def cmd_status(app: App) -> int:
    client = app.running_client()
    if client is None:
        if app.json:
            app.write(json.dumps({"daemon": None, "workers": []}) + "\n")
        else:
            app.write("ragexd is not running (the next search starts it)\n")
        return EXIT_NOT_RUNNING
    project = str(project_root(app.args.path)) if app.args.path else None
    result = app.quick_call(client, Op.STATUS, project=project)
    if app.json:
        app.write(json.dumps(result, ensure_ascii=False) + "\n")
    else:
        app.write(render.render_status(result))
    return EXIT_OK


def cmd_start(app: App) -> int:
    client = app.client(auto_start=True)  # an explicit start ignores auto_start=false
    if not app.args.path:
        hello = app.quick_call(client, Op.HELLO)
        app.check_version(hello)
        if app.json:
            app.write(json.dumps({"daemon": hello}) + "\n")
        else:
            app.write(f"ragexd {hello.get('version', '?')} is running (pid {hello.get('pid')})\n")
        return EXIT_OK
    root = project_root(app.args.path)
    result = app.quick_call(client, Op.START, project=str(root), timeout=STOP_TIMEOUT)
    if app.json:
        app.write(json.dumps(result, ensure_ascii=False) + "\n")
    else:
        app.write(f"worker for {root}: {result.get('state', 'started')}\n")
    return EXIT_OK


def cmd_stop(app: App) -> int:
    args = app.args
    if not args.all and not args.path:
        return app.error(ErrorCode.BAD_QUERY.value,
                         "say what to stop: `ragexctl stop PATH` (one project's worker) or "
                         "`ragexctl stop --all` (every worker and ragexd)")
    if args.all and args.path:
        return app.error(ErrorCode.BAD_QUERY.value, "give either PATH or --all, not both")
    client = app.running_client()
    if client is None:
        if app.json:
            app.write(json.dumps({"stopped": [], "daemon": False}) + "\n")
        else:
            app.write("ragexd is not running\n")
        return EXIT_OK
    if not args.all:
        root = project_root(args.path)
        result = app.quick_call(client, Op.STOP, project=str(root), timeout=STOP_TIMEOUT)
        stopped = result.get("stopped") or []
        if app.json:
            app.write(json.dumps(result, ensure_ascii=False) + "\n")
        else:
            app.write(f"stopped the worker for {root}\n" if stopped
                      else f"no worker was running for {root}\n")
        return EXIT_OK
    result = app.quick_call(client, Op.STOP, {"all": True}, timeout=STOP_TIMEOUT)
    stopped = result.get("stopped") or []
    try:
        app.quick_call(client, Op.SHUTDOWN, timeout=QUICK_TIMEOUT)
    except RagexError as exc:
        # Already stopping, or gone before its reply reached us: what we asked for.
        if exc.code not in (ErrorCode.SHUTTING_DOWN, ErrorCode.WORKER_UNAVAILABLE):
            raise
    gone = _wait_daemon_gone(app.timeout(30.0))
    if app.json:
        app.write(json.dumps({"stopped": stopped, "daemon": gone}) + "\n")
    else:
        n = len(stopped)
        app.write(f"stopped {n} worker{'s' if n != 1 else ''} and ragexd\n" if gone else
                  f"stopped {n} worker{'s' if n != 1 else ''}; ragexd is still shutting down\n")
    return EXIT_OK if gone else EXIT_ERROR


def _wait_daemon_gone(timeout: float) -> bool:
    from .client import daemon_alive

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not daemon_alive():
            return True
        time.sleep(0.05)
    return not daemon_alive()


def cmd_ls(app: App) -> int:
    client = app.running_client()
    if client is not None:
        projects = app.quick_call(client, Op.LIST).get("projects") or []
    else:
        projects = local_projects()
    if app.json:
        app.write("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in projects))
    else:
        app.write(render.render_projects(projects))
    return EXIT_OK


def local_projects() -> list[dict[str, Any]]:
    """What LIST would say, read from disk: ragexd is not running, so no worker is."""
    out = []
    try:
        entries = sorted(paths.projects_dir().iterdir())
    except OSError:
        return []
    for d in entries:
        record = paths.ProjectRecord.load(d)
        if record is None:
            continue
        out.append({"id": record.id, "root": record.root, "size_bytes": paths.dir_size(d),
                    "last_used": record.last_used, "running": False})
    out.sort(key=lambda p: p["last_used"], reverse=True)
    return out


def resolve_project(target: str) -> tuple[str, str | None]:
    """(project id, root or None) of an id or a path — even a deleted project's path."""
    if _HEX16.fullmatch(target) and paths.index_dir(target).exists():
        record = paths.ProjectRecord.load(paths.index_dir(target))
        return target, record.root if record else None
    if os.path.exists(target):
        root = paths.find_project_root(Path(target))
        return paths.project_id_for(root), str(root)
    wanted = {os.path.abspath(target), os.path.realpath(target)}
    for p in local_projects():
        if p["root"] in wanted:
            return p["id"], p["root"]
    raise RagexError(ErrorCode.NOT_FOUND,
                     f"no indexed project {target!r} (see `ragexctl ls` for ids and paths)")


def cmd_rm(app: App) -> int:
    project_id, root = resolve_project(app.args.target)
    client = app.running_client()
    if client is not None:
        result = app.quick_call(client, Op.REMOVE, {"target": project_id}, timeout=STOP_TIMEOUT)
    else:
        result = remove_local(project_id, root)
    if app.json:
        app.write(json.dumps(result, ensure_ascii=False) + "\n")
    else:
        app.write(f"removed the index of {root or result.get('removed', project_id)} "
                  f"({render.format_bytes(result.get('freed_bytes'))} freed)\n")
    return EXIT_OK


def remove_local(project_id: str, root: str | None = None) -> dict[str, Any]:
    """Delete an index directory ourselves (ragexd is not running, so no worker
    holds it).  Only a direct child of the projects dir with a valid id."""
    import shutil

    base = paths.projects_dir()
    directory = paths.index_dir(project_id)
    if not _HEX16.fullmatch(project_id) or directory.parent != base or not directory.is_dir():
        raise RagexError(ErrorCode.NOT_FOUND,
                         f"{root or project_id} has no index (see `ragexctl ls`)")
    freed = paths.dir_size(directory)
    try:
        shutil.rmtree(directory)
    except OSError as exc:
        raise RagexError(ErrorCode.INDEX_UNWRITABLE,
                         f"cannot delete {directory}: {exc.strerror or exc}") from None
    return {"removed": project_id, "freed_bytes": freed}


def cmd_logs(app: App) -> int:
    args = app.args
    target = resolve_project(args.target)[0] if args.target else None
    lines_wanted = max(0, int(args.lines))
    client = app.running_client()
    if client is not None:
        result = app.quick_call(client, Op.LOGS, {"target": target, "lines": lines_wanted})
        path = Path(str(result.get("path") or _log_path(target)))
        lines = [str(x) for x in result.get("lines") or []]
    else:
        path = _log_path(target)
        lines = _tail_file(path, lines_wanted)
    if lines:
        app.write("".join(line.rstrip("\n") + "\n" for line in lines))
    if args.follow:
        return _follow(app, path)
    if not lines and not path.exists():
        app.note(f"no log yet at {path}")
        return EXIT_NONE
    return EXIT_OK


def _log_path(project_id: str | None) -> Path:
    return paths.log_dir() / (f"{project_id}.log" if project_id else "ragexd.log")


def _tail_file(path: Path, n: int) -> list[str]:
    if n <= 0:
        return []
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 256 * 1024))
            data = fh.read()
    except OSError:
        return []
    return data.decode("utf-8", "replace").splitlines()[-n:]


def _follow(app: App, path: Path) -> int:
    """``tail -F``: print what is appended, reopen after rotation, until Ctrl-C."""
    fh = None
    ino = None
    try:
        while True:
            if fh is None:
                try:
                    fh = open(path, "rb")
                    st = os.fstat(fh.fileno())
                    ino = st.st_ino
                    fh.seek(0, os.SEEK_END)
                except OSError:
                    fh = None
                    time.sleep(0.25)
                    continue
            data = fh.read()
            if data:
                app.write(data.decode("utf-8", "replace"))
                continue
            try:
                st = os.stat(path)
                rotated = st.st_ino != ino or st.st_size < fh.tell()
            except OSError:
                rotated = True
            if rotated:
                fh.close()
                fh = None
                try:
                    fh = open(path, "rb")  # the new file: read it from its start
                    ino = os.fstat(fh.fileno()).st_ino
                except OSError:
                    fh = None
                continue
            time.sleep(0.25)
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        if fh is not None:
            fh.close()


def cmd_version(app: App) -> int:
    app.write(f"ragexctl {__version__}\n")
    client = app.running_client()
    if client is None:
        app.write("ragexd: not running\n")
        return EXIT_OK
    try:
        reply = client.call(Op.HELLO, timeout=app.timeout(5.0), attempt_timeout=2.0)
        hello = reply.raise_for_error()
    except RagexError as exc:
        app.write("ragexd: running, but did not answer\n")
        app.note(f"warning: {exc.message}")
        return EXIT_OK
    app.write(f"ragexd {hello.get('version', '?')} (pid {hello.get('pid', '?')}, "
              f"protocol {hello.get('protocol', '?')})\n")
    app.check_version(hello)
    return EXIT_OK


def run_plugin(name: str, argv: list[str]) -> int:
    """``service`` and ``mcp`` live in their own modules, imported only when used,
    so the search path never pays for them (and works if they are absent)."""
    import importlib

    try:
        module = importlib.import_module(f"ragexctl.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"ragexctl.{name}":
            raise
        sys.stderr.write(f"ragexctl: `ragexctl {name}` is not available in this installation "
                         f"(the module ragexctl.{name} is missing)\n")
        return EXIT_ERROR
    parser = _Parser(prog="ragexctl")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    module.add_parser(subparsers)
    args = parser.parse_args([name, *argv])
    return int(module.run(args) or 0)


COMMANDS: dict[str, Callable[[App], int]] = {
    "search": cmd_search, "index": cmd_index, "status": cmd_status, "start": cmd_start,
    "stop": cmd_stop, "ls": cmd_ls, "rm": cmd_rm, "logs": cmd_logs,
}


#: Wire errors name the request field at fault (``detail["field"]``); people at a
#: terminal know the flag that sets it.
FIELD_FLAGS = {"limit": "--limit", "mode": "--mode", "paths": "--path", "languages": "--lang"}


def flag_sentence(exc: RagexError) -> str:
    """The error's sentence with the field at fault spoken of as its flag."""
    flag = FIELD_FLAGS.get(str(exc.detail.get("field", "")))
    return exc.message.replace(f"'{exc.detail['field']}'", flag, 1) if flag else exc.message


def main(argv: list[str] | None = None) -> int:
    """The program.  Called without ``argv`` (the console script, ``python -m
    ragexctl``), it ends the process itself once the output is flushed: the
    interpreter's teardown (module cleanup, garbage collection, ZeroMQ's
    context) costs ~10 ms, a tenth of a warm search, for nothing.  With
    ``argv`` (tests, other Python code) it just returns the exit code."""
    if argv is None and sys.argv[1:2] and sys.argv[1] in PLUGINS:
        try:
            return run_plugin(sys.argv[1], sys.argv[2:])  # long-lived: a normal exit
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
    code = _main(list(sys.argv[1:] if argv is None else argv))
    if argv is None:
        _fast_exit(code)
    return code


def _fast_exit(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed pipe: nothing more can be said
    os._exit(code)


def _main(argv: list[str]) -> int:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
        except (AttributeError, ValueError):
            pass
    if argv and argv[0] in PLUGINS:
        try:
            return run_plugin(argv[0], argv[1:])
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
    only = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    args = build_parser(only).parse_args(_preprocess(argv))
    app = App(args, sys.stdout, sys.stderr)
    try:
        if args.version:
            return cmd_version(app)
        if not args.command:
            build_parser().print_help(sys.stderr)
            return EXIT_ERROR
        return COMMANDS[args.command](app)
    except RagexError as exc:
        return app.error(exc.code.value, flag_sentence(exc), dict(exc.detail))
    except rconfig.ConfigError as exc:
        return app.error(ErrorCode.BAD_REQUEST.value, f"bad configuration: {exc}")
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `ragexctl search x | head -1`: the reader is satisfied; exit quietly, as rg does.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except OSError:
            pass
        return EXIT_OK
    finally:
        if app._client is not None:
            app._client.close()


if __name__ == "__main__":
    sys.exit(main())
