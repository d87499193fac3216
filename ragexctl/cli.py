"""``ragexctl``: the command line.

ripgrep is the model: results on stdout and nothing else, one clear sentence
per error on stderr, and exit codes a shell can branch on (``ragexd.exitcodes``
is their one table, shared with ragexd).

Everything here is cheap to import: the engine runs in ragexd's workers (or in
a one-shot worker process with ``--no-daemon``), never in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, TextIO

from ragexd import config as rconfig
from ragexd import exitcodes, logfile, paths, projects, where
from ragexd.protocol import (SEARCH_MODES, ErrorCode, Op, Progress, RagexError,
                             SearchArgs, SimilarArgs)
from ragexd.filerules import display_name
from ragexd.protocol.args import problem_error
from ragexd.vocabulary import MAX_CONTEXT_LINES

from . import __version__, location, render
from .entry import fast_exit, reader_gone
from .render import current_dir as _cwd
from .session import ONESHOT_TIMEOUT as ONESHOT_SEARCH_TIMEOUT
from .session import (INDEX_SILENCE_TIMEOUT, QUICK_TIMEOUT, STOP_TIMEOUT, Session, quiet,
                      wait_daemon_gone)

EXIT_OK = exitcodes.OK
EXIT_NONE = exitcodes.NOTHING
EXIT_ERROR = exitcodes.ERROR
EXIT_NOT_RUNNING = exitcodes.NOT_RUNNING
EXIT_NOT_ANSWERING = exitcodes.NOT_ANSWERING
EXIT_INTERRUPTED = exitcodes.INTERRUPTED

#: Default deadline, in seconds: a search's first reply may need a cold worker
#: to load the model (an index's is the session's INDEX_SILENCE_TIMEOUT).
SEARCH_TIMEOUT = 60.0
#: skipped files `ragexctl index` names on stderr; the rest are counted in one line
SKIPPED_LISTED = 20

PLUGINS = {"service": "manage ragexd as a user service (systemd, launchd)",
           "mcp": "serve ragex to AI assistants over the Model Context Protocol",
           "doctor": "check ragex's set-up (socket dir, ragexd, Docker, image) and print fixes"}

# --- the parser --------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 2 with a one-line ``ragexctl: ...`` sentence plus usage,
    as argparse does, but say which command to ask for help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"ragexctl: {render.printable_lines(message)} "
                              f"(see `{self.prog} --help`){self._dash_hint(message)}\n")

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        self._seen = list(sys.argv[1:] if args is None else args)   # for _dash_hint
        return super().parse_known_args(args, namespace)

    def _dash_hint(self, message: str) -> str:
        """How to pass a query or a path that starts with '-' (a file `-x.py` as
        grep-like output names it, `-x.py:3`): argparse takes it for an option it
        does not know, and its sentence never says `--`."""
        argv: list[str] = getattr(self, "_seen", [])
        argv = argv[:argv.index("--")] if "--" in argv else argv
        if message.startswith("unrecognized arguments: "):   # the top parser names them
            named = set(message.split(": ", 1)[1].split())
            stray = [a for a in argv if a in named and a[:1] == "-" and a[:2] != "--"]
            if stray:   # other words may be the query already: no whole command line
                shown = render.printable_lines(stray[0])
                return (f"\nragexctl: if {shown} is a query or a path, give it after `--` "
                        f"(`-- {shown}`)")
            return ""
        if "arguments are required" not in message:
            return ""
        known = self._option_string_actions   # a subcommand's parser: its own options
        stray = [a for a in argv if a[:1] == "-" and a[:2] != "--" and len(a) > 1
                 and a[:2] not in known]
        if not stray:
            return ""
        words = " ".join([self.prog, *(a for a in argv if a not in stray)])
        shown = render.printable_lines(stray[0])
        return (f"\nragexctl: {shown} starts with '-': give it after `--`, "
                f"e.g. {render.printable_lines(words)} -- {shown}")


def _opt_timeout(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeout", type=_seconds, metavar="S",
                   help="give up after S seconds without an answer (e.g. 90, 2m)")


def _opt_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output (JSON)")


def _opt_no_daemon(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-daemon", action="store_true",
                   help="run in a one-shot process without ragexd (slow: loads the model "
                        "every time); also RAGEX_DAEMON_ENABLED=false")


def _lines(text: str) -> int:
    """A number of context lines; its range is checked later, with a sentence."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of lines, not {text!r}") from None


def _path(text: str) -> str:
    """A path argument: an empty one is refused, never read as the current
    directory (``--project "$DIR"`` with DIR unset would index wherever you stand)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path was given")
    return text


def _opt_output(p: argparse.ArgumentParser) -> None:
    """How hits are printed: colour and ripgrep's context flags."""
    p.add_argument("--color", "--colour", choices=render.COLOR_CHOICES, default="auto",
                   metavar="WHEN", help="colour the output: auto (only on a terminal, the "
                                        "default), always or never")
    p.add_argument("-A", "--after-context", type=_lines, metavar="NUM",
                   help="show NUM lines after each hit's line (grep style; with --json, an "
                        "'after' array)")
    p.add_argument("-B", "--before-context", type=_lines, metavar="NUM",
                   help="show NUM lines before each hit's line (with --json, 'before')")
    p.add_argument("-C", "--context", type=_lines, metavar="NUM",
                   help=f"show NUM lines before and after each hit's line (at most "
                        f"{MAX_CONTEXT_LINES}; -A/-B override it)")


def _opt_filters(s: argparse.ArgumentParser) -> None:
    s.add_argument("-n", "--limit", type=int, default=10, metavar="N",
                   help="at most N results (default 10)")
    s.add_argument("-g", "--path", dest="paths", action="append", default=[], metavar="GLOB",
                   help="only paths matching this gitignore-style glob, relative to the "
                        "project root (repeatable; '!GLOB' excludes)")
    s.add_argument("-t", "--lang", dest="languages", action="append", default=[],
                   metavar="LANG", help="only files in this language: python, js, go... "
                                        "(repeatable)")


def _build_similar(s: argparse.ArgumentParser) -> None:
    s.add_argument("location", type=_path, metavar="PATH:LINE",
                   help="a line of a file (relative to the current directory, or absolute), or "
                        "a hit's PATH:START-END; the chunk holding it is compared with "
                        "every other chunk")
    _opt_filters(s)
    s.add_argument("--project", type=_path, metavar="PATH",
                   help="the project to search (default: the one holding PATH)")
    _opt_output(s)
    _opt_json(s)
    _opt_no_daemon(s)
    _opt_timeout(s)


def _build_search(s: argparse.ArgumentParser) -> None:
    s.add_argument("query", nargs="*", metavar="QUERY",
                   help="what to look for (several words are joined with spaces)")
    s.add_argument("-e", "--regexp", dest="patterns", action="append", metavar="QUERY",
                   default=[], help="a query, even one starting with '-' (like rg -e)")
    s.add_argument("--mode", choices=SEARCH_MODES, default="auto",
                   help="auto (default: chosen from the query's shape), semantic, regex, "
                        "symbol or hybrid")
    _opt_filters(s)
    s.add_argument("--project", type=_path, metavar="PATH",
                   help="search this project instead of the current directory's")
    _opt_output(s)
    s.add_argument("--keep-indexing", action="store_true",
                   help="if this search starts the project's first index, let that index go "
                        "on in the background after Ctrl-C (by default Ctrl-C stops it)")
    _opt_json(s)
    _opt_no_daemon(s)
    _opt_timeout(s)


def _build_index(i: argparse.ArgumentParser) -> None:
    i.add_argument("path", nargs="?", type=_path, metavar="PATH")
    i.add_argument("--rebuild", action="store_true", help="throw the index away and start over")
    i.add_argument("--export", type=_path, metavar="FILE",
                   help="then write the index as a snapshot archive FILE (.tar.gz) that "
                        "`ragexctl import` or `[index] base` use on other machines")
    _opt_json(i)
    _opt_no_daemon(i)
    _opt_timeout(i)


def _build_import(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=_path, metavar="FILE", help="a snapshot from `ragexctl index --export`")
    p.add_argument("--project", type=_path, metavar="PATH",
                   help="the project it is for (default: the current directory's)")
    _opt_json(p)
    _opt_no_daemon(p)
    _opt_timeout(p)


def _build_path_cmd(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", nargs="?", type=_path, metavar="PATH")
    _opt_json(p)
    _opt_timeout(p)


def _build_stop(p: argparse.ArgumentParser) -> None:
    _build_path_cmd(p)
    p.add_argument("--all", action="store_true", help="stop every worker and ragexd")


def _build_ls(p: argparse.ArgumentParser) -> None:
    _opt_json(p)
    _opt_timeout(p)


def _build_rm(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", type=_path, metavar="PROJECT")
    _opt_json(p)
    _opt_timeout(p)


def _build_logs(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", nargs="?", type=_path, metavar="PROJECT")
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
    "similar": ("the code most like the chunk at PATH:LINE (duplicates, look-alikes)",
                "List the chunks of the project most like the one holding PATH:LINE, by their "
                "stored vectors (nothing is re-embedded); the chunk itself is left out. "
                "The project must be indexed, and the file unchanged since.",
                "Exit codes: 0 results, 1 no results, 2 error.", _build_similar),
    "index": ("index (or update the index of) a project, with progress",
              "Index the project containing PATH (default: the current directory). Only "
              "changed files are re-indexed.", None, _build_index),
    "import": ("start a project's index from a snapshot built elsewhere (CI)",
               "Check the snapshot FILE (made by `ragexctl index --export`), install it as "
               "the index of the project containing the current directory (or --project), "
               "then index what differs: only files whose content changed since the "
               "snapshot are embedded. A snapshot from another model or ragex format, or a "
               "damaged one, is refused and the existing index is kept.",
               "Exit codes: 0 imported, 2 error (the existing index is unchanged).",
               _build_import),
    "status": ("ragexd and its workers: state, memory, uptime, errors",
               "Show ragexd and every worker (or only PATH's project). Never starts ragexd.",
               "Exit codes: 0 ragexd running, 3 ragexd not running, 4 ragexd running but not "
               "answering (frozen), 2 error.", _build_path_cmd),
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
                epilog="Exit codes: " + "; ".join(f"{code} {meaning}"
                                                  for code, meaning in exitcodes.TABLE) + ".")
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
    """What every command needs: streams, config, and the session that reaches ragexd."""

    def __init__(self, args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> None:
        self.args = args
        self.out = stdout
        self.err = stderr
        self.json = bool(getattr(args, "json", False))
        self._cfg: rconfig.Config | None = None
        self._session: Session | None = None

    @property
    def cfg(self) -> rconfig.Config:
        if self._cfg is None:
            self._cfg = rconfig.load()
        return self._cfg

    @property
    def session(self) -> Session:
        """The one path to ragexd shared with the MCP server (ragexctl/session.py)."""
        if self._session is None:
            self._session = Session(
                self.cfg, use_daemon=not getattr(self.args, "no_daemon", False),
                inform=self.note if self.err.isatty() else quiet, warn=self.note)
        return self._session

    # --- output ------------------------------------------------------------------

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def say(self, text: str) -> None:
        """A sentence for people on stdout (``write`` is for output render.py made,
        escaped already, colours and all): roots and messages quoted in it may hold
        escape sequences, so they are shown, never obeyed."""
        self.write(render.printable_lines(text.removesuffix("\n")) + "\n")

    def note(self, text: str) -> None:
        self.err.write(f"ragexctl: {render.printable_lines(text)}\n")
        self.err.flush()

    def error(self, code: str, message: str, detail: dict[str, Any] | None = None) -> int:
        self.err.write(render.format_error(code, message, as_json=self.json, detail=detail))
        if not self.json and detail:
            for line in detail.get("log_tail") or []:
                self.err.write(f"  | {render.printable(str(line))}\n")
        self.err.flush()
        return EXIT_ERROR

    def timeout(self, default: float) -> float:
        value = getattr(self.args, "timeout", None)
        return float(value) if value else default

    def quick_call(self, client: Any, op: Op, args: dict[str, Any] | None = None,
                   project: str | None = None, timeout: float = QUICK_TIMEOUT) -> dict[str, Any]:
        """A ragexd-level request, honouring --timeout; returns the result or raises."""
        return self.session.quick_call(op, args, project=project, timeout=self.timeout(timeout),
                                       client=client)


def project_root(path: str | None, *, may_index: bool = False) -> Path:
    """The project of ``path`` (else the current directory) by ``paths.choose_project_root``:
    says which root it chose when no VCS root did, refuses what the policy refuses
    and, when this command may start a first index (``may_index``) of a large tree
    nobody called a project, asks on a terminal and refuses without one."""
    start = Path(path) if path else Path(os.getcwd())
    if not start.exists():
        raise RagexError(ErrorCode.NOT_FOUND, f"no such file or directory: {display_name(path)}")
    choice = paths.choose_project_root(start, explicit=path is not None)
    refusal = choice.refusal or paths.unnameable_root(choice.root)
    if refusal:
        raise RagexError(ErrorCode.BAD_REQUEST, refusal)
    if choice.sentence:
        sys.stderr.write(f"ragexctl: note: {render.printable_lines(choice.sentence)}\n")
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
    sys.stderr.write(render.printable_lines(question))   # it names the root
    sys.stderr.flush()
    try:
        return sys.stdin.readline().strip().lower() in ("y", "yes")
    except (OSError, KeyboardInterrupt):
        return False


# --- commands -------------------------------------------------------------------


def _project_request(app: App, op: Op, args: dict[str, Any], root: Path,
                     progress: render.ProgressRenderer, *, timeout: float,
                     on_progress: Callable[[Progress], None] | None = None) -> dict[str, Any]:
    """SEARCH or INDEX with a progress line on stderr; the result, or its error.

    Ctrl-C during a first index that a *search* started on its own stops that
    index (the user may have typed the search in the wrong directory; the work
    resumes where it stopped on the next search or ``ragexctl index``), unless
    ``--keep-indexing`` asked for it to go on.  Ctrl-C of an explicit
    ``ragexctl index`` leaves the index running: the user asked for it."""
    try:
        reply = app.session.project_call(op, args, root, timeout=timeout,
                                         on_progress=on_progress or progress.update)
    except KeyboardInterrupt:
        progress.clear()
        if app.session.daemon_enabled and (op is not Op.SEARCH or progress.updates):
            if op is Op.SEARCH and not getattr(app.args, "keep_indexing", False):
                _stop_first_index(app, root)
            else:
                app.note("interrupted; the worker goes on indexing in the background "
                         "(see `ragexctl status`)")
        raise
    finally:
        progress.clear()
    return reply.raise_for_error()


def _stop_first_index(app: App, root: Path) -> None:
    """Stop the project's worker, and with it the first index this search started
    (nothing committed is lost: the next run resumes where this one stopped)."""
    try:
        result = app.session.quick_call(Op.STOP, {"first_index_only": True},
                                        project=str(root), timeout=STOP_TIMEOUT)
        if result.get("kept"):   # an index someone asked for goes on
            app.note(f"interrupted; the first index of {root} goes on: {result['kept']}")
            return
        app.note(f"interrupted; stopped the first index of {root} (it resumes on the next "
                 "search or `ragexctl index`; --keep-indexing lets it go on)")
    except (RagexError, KeyboardInterrupt):
        app.note("interrupted; the first index may still be running: "
                 f"`ragexctl stop {root}` stops it")


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
    context_of(args)   # a bad -C fails here, without a round trip
    root = project_root(args.project, may_index=True)
    progress = render.ProgressRenderer(app.err)
    default = SEARCH_TIMEOUT if app.session.daemon_enabled else ONESHOT_SEARCH_TIMEOUT
    result = _project_request(app, Op.SEARCH, sargs.to_wire(), root, progress,
                              timeout=app.timeout(default))
    return print_hits(app, result, root, query=words[0])


def context_of(args: argparse.Namespace) -> render.Context:
    """-A/-B/-C as ripgrep reads them, or the wire error for a refused value."""
    got = render.Context.from_flags(args.before_context, args.after_context,
                                    getattr(args, "context", None))
    if not isinstance(got, render.Context):
        raise problem_error(got)
    return got


def print_hits(app: App, result: dict[str, Any], root: Path, *, query: str) -> int:
    """A SEARCH or SIMILAR result on stdout, its notes on stderr; the exit code.

    Without a terminal (a pipe, a script) a hit is one grep line, whatever the
    mode; on a terminal, hits ranked by meaning are compact blocks a person can
    read.  -A/-B/-C always print grep-style groups (``--json``: before/after)."""
    hits = [h for h in result.get("hits") or [] if isinstance(h, dict)]
    for note in render.answer_notes(result, coverage=not app.json):
        app.note(f"note: {note}")
    if app.json and render.format_coverage(result.get("coverage")) is not None:
        # stdout stays one hit per line: the coverage is a record on stderr
        app.err.write(json.dumps({"type": "coverage", **result["coverage"]}) + "\n")
    ctx = context_of(app.args)
    if ctx:
        for note in render.stale_notes(hits):
            app.note(f"note: {note}")
    if app.json:
        app.write(render.render_hits_json(render.with_context(hits, str(root), ctx) if ctx
                                          else hits))
        return EXIT_OK if hits else EXIT_NONE
    color = render.use_color(app.args.color, app.out)
    if ctx:
        app.write(render.render_context(hits, str(root), _cwd(), ctx, color=color))
    elif result.get("mode") in BLOCK_MODES and render.is_terminal(app.out):
        app.write(render.render_blocks(hits, str(root), _cwd(), query=query, color=color,
                                       width=render.terminal_width(app.out)))
    else:
        app.write(render.render_hits(hits, str(root), _cwd(), color=color))
    return EXIT_OK if hits else EXIT_NONE


#: Modes whose hits are chunks ranked by meaning: shown as blocks on a terminal.
BLOCK_MODES = ("semantic", "hybrid", "similar")


def cmd_similar(app: App) -> int:
    args = app.args
    context_of(args)   # a bad -C fails before any round trip
    def on_disk(path: str) -> bool:
        return os.path.lexists(os.path.join(_cwd(), os.path.expanduser(path)))

    path, line = location.parse_location(args.location, on_disk)
    full = os.path.join(_cwd(), os.path.expanduser(path))
    if not os.path.lexists(full):
        raise RagexError(ErrorCode.NOT_FOUND, f"no such file: {display_name(path)}",
                         path=display_name(path))
    root = project_root(args.project or (full if os.path.isdir(full) else
                                         os.path.dirname(full)))
    sargs = SimilarArgs(path=location.project_relative(path, str(root), _cwd()), line=line,
                        limit=args.limit, paths=list(args.paths),
                        languages=list(args.languages))
    sargs.validate()
    progress = render.ProgressRenderer(app.err)
    default = SEARCH_TIMEOUT if app.session.daemon_enabled else ONESHOT_SEARCH_TIMEOUT
    result = _project_request(app, Op.SIMILAR, sargs.to_wire(), root, progress,
                              timeout=app.timeout(default))
    return print_hits(app, result, root, query="")


def cmd_index(app: App) -> int:
    root = project_root(app.args.path)
    export = getattr(app.args, "export", None)
    if export and app.args.rebuild:
        return app.error(ErrorCode.BAD_REQUEST.value,
                         "--export and --rebuild go in two commands: rebuild, then export")
    if export:
        target = _snapshot_path(export)
        if not target.parent.is_dir():
            return app.error(ErrorCode.NOT_FOUND.value,
                             f"cannot write {export}: {target.parent} is not a directory")
        return _indexing_request(app, Op.EXPORT, {"file": str(target)}, root)
    args: dict[str, Any] = {"rebuild": bool(app.args.rebuild), "paths": None}
    named = _named_below(app.args.path, root)
    if named is not None:
        args["named"] = named
    return _indexing_request(app, Op.INDEX, args, root)


def _named_below(path: str | None, root: Path) -> str | None:
    """The path a person named below the project root, relative to it (the worker
    says why when the index leaves it out), or None: no path, or the root."""
    if not path:
        return None
    full = os.path.realpath(os.path.join(_cwd(), os.path.expanduser(path)))
    base = os.path.realpath(root)
    if not full.startswith(base.rstrip(os.sep) + os.sep):
        return None
    return os.path.relpath(full, base).replace(os.sep, "/")


def cmd_import(app: App) -> int:
    target = _snapshot_path(app.args.file)
    if not target.is_file():
        return app.error(ErrorCode.NOT_FOUND.value, f"no such snapshot file: {app.args.file}")
    root = project_root(app.args.project)
    return _indexing_request(app, Op.IMPORT, {"file": str(target)}, root)


def _snapshot_path(text: str) -> Path:
    """A snapshot file named on the command line, absolute: the worker that reads
    or writes it does not run in this directory."""
    return Path(os.path.abspath(os.path.expanduser(text)))


def _indexing_request(app: App, op: Op, args: dict[str, Any], root: Path) -> int:
    """INDEX, EXPORT or IMPORT: progress on stderr, then the index summary (and
    the snapshot written or installed)."""
    progress = render.ProgressRenderer(app.err)

    def on_progress(p: Progress) -> None:
        if app.json:
            app.write(json.dumps(p.to_wire(), ensure_ascii=False) + "\n")
        else:
            progress.update(p)

    result = _project_request(app, op, args, root, progress,
                              timeout=app.timeout(INDEX_SILENCE_TIMEOUT), on_progress=on_progress)
    summary = result.get("summary") or {}
    snap = result.get("snapshot")
    if app.json:
        app.write(json.dumps({"type": "summary", "root": str(root), **summary},
                             ensure_ascii=False) + "\n")
        if isinstance(snap, dict):
            app.write(json.dumps({"type": "snapshot", "file": args["file"], **snap},
                                 ensure_ascii=False) + "\n")
    else:
        if isinstance(snap, dict) and op is Op.IMPORT:
            app.write(render.format_snapshot(snap, f"imported {args['file']}") + "\n")
        app.say(render.format_summary(summary) + f" ({root})")
        for note in summary.get("notes") or []:
            app.note(f"note: {note}")
        named = [item for item in summary.get("skipped") or [] if isinstance(item, dict)]
        for item in named[:SKIPPED_LISTED]:
            app.note(f"skipped {item.get('path')}: {item.get('reason')}")
        more = render.skipped_total(summary) - min(len(named), SKIPPED_LISTED)
        if more > 0:
            app.note(f"... and {more} more skipped (`ragexctl status` counts them)")
        if isinstance(snap, dict) and op is Op.EXPORT:
            app.write(render.format_snapshot(snap, f"wrote {args['file']}") + "\n")
    return EXIT_OK


def cmd_status(app: App) -> int:
    client = app.session.running()
    if client is None:
        if app.json:
            app.write(json.dumps({"daemon": None, "workers": []}) + "\n")
        else:
            app.write("ragexd is not running (the next search starts it)\n")
        return EXIT_NOT_RUNNING
    project = str(project_root(app.args.path)) if app.args.path else None
    try:
        result = app.quick_call(client, Op.STATUS, project=project)
    except RagexError as exc:
        if exc.code is not ErrorCode.TIMEOUT:
            raise
        # Its socket accepts connections, so it is not "stopped": say what it is.
        pid = exc.detail.get("pid")
        if app.json:
            app.write(json.dumps({"daemon": {"pid": pid, "state": "not answering",
                                             "message": exc.message}, "workers": []}) + "\n")
        else:
            app.say(f"ragexd is running but not answering: {exc.message}")
        return EXIT_NOT_ANSWERING
    if app.json:
        app.write(json.dumps(result, ensure_ascii=False) + "\n")
    else:
        app.write(render.render_status(result))
    return EXIT_OK


def cmd_start(app: App) -> int:
    # the path first: a root refused (missing, not UTF-8) must not start ragexd for nothing
    root = project_root(app.args.path) if app.args.path else None
    client = app.session.connect(auto_start=True)  # an explicit start ignores auto_start=false
    if root is None:
        hello = app.quick_call(client, Op.HELLO)
        app.session.check_version(hello)
        if app.json:
            app.write(json.dumps({"daemon": hello}) + "\n")
        else:
            app.write(f"ragexd {hello.get('version', '?')} is running (pid {hello.get('pid')})\n")
        return EXIT_OK
    result = app.quick_call(client, Op.START, project=str(root), timeout=STOP_TIMEOUT)
    if app.json:
        app.write(json.dumps(result, ensure_ascii=False) + "\n")
    else:
        app.say(f"worker for {root}: {result.get('state', 'started')}")
    return EXIT_OK


def cmd_stop(app: App) -> int:
    args = app.args
    if not args.all and not args.path:
        return app.error(ErrorCode.BAD_QUERY.value,
                         "say what to stop: `ragexctl stop PATH` (one project's worker) or "
                         "`ragexctl stop --all` (every worker and ragexd)")
    if args.all and args.path:
        return app.error(ErrorCode.BAD_QUERY.value, "give either PATH or --all, not both")
    client = app.session.running()
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
            app.say(f"stopped the worker for {root}" if stopped
                    else f"no worker was running for {root}")
        return EXIT_OK
    result = app.quick_call(client, Op.STOP, {"all": True}, timeout=STOP_TIMEOUT)
    stopped = result.get("stopped") or []
    from .client import daemon_pid

    pid = daemon_pid()   # before SHUTDOWN: ragexd removes its pid file on the way out
    try:
        app.quick_call(client, Op.SHUTDOWN, timeout=QUICK_TIMEOUT)
    except RagexError as exc:
        # Already stopping, or gone before its reply reached us: what we asked for.
        if exc.code not in (ErrorCode.SHUTTING_DOWN, ErrorCode.WORKER_UNAVAILABLE):
            raise
    gone = wait_daemon_gone(app.timeout(30.0), pid)
    if app.json:
        app.write(json.dumps({"stopped": stopped, "daemon": gone}) + "\n")
    else:
        n = len(stopped)
        app.write(f"stopped {n} worker{'s' if n != 1 else ''} and ragexd\n" if gone else
                  f"stopped {n} worker{'s' if n != 1 else ''}; ragexd is still shutting down\n")
    return EXIT_OK if gone else EXIT_ERROR


def cmd_ls(app: App) -> int:
    client = app.session.running()
    if client is not None:
        found = app.quick_call(client, Op.LIST).get("projects") or []
    else:
        found = local_projects()
    if app.json:
        app.write("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in found))
    else:
        app.write(render.render_projects(found))
    return EXIT_OK


def local_projects() -> list[dict[str, Any]]:
    """What LIST would say, read from disk: ragexd is not running, so no worker is."""
    return [{**p, "running": False} for p in projects.list_projects()]


def cmd_rm(app: App) -> int:
    project_id, root = projects.resolve(app.args.target)
    client = app.session.running()
    if client is not None:
        result = app.quick_call(client, Op.REMOVE, {"target": project_id}, timeout=STOP_TIMEOUT)
    else:
        result = {"removed": project_id,
                  "freed_bytes": projects.remove(project_id, root)}
    if app.json:
        app.write(json.dumps(result, ensure_ascii=False) + "\n")
    else:
        app.say(f"removed the index of {root or result.get('removed', project_id)} "
                f"({render.format_bytes(result.get('freed_bytes'))} freed)")
    return EXIT_OK


def cmd_logs(app: App) -> int:
    args = app.args
    target = projects.resolve(args.target)[0] if args.target else None
    lines_wanted = max(0, int(args.lines))
    client = app.session.running()
    if client is not None:
        result = app.quick_call(client, Op.LOGS, {"target": target, "lines": lines_wanted})
        path = Path(str(result.get("path") or _log_path(target)))
        lines = [str(x) for x in result.get("lines") or []]
    else:
        path = _log_path(target)
        lines = logfile.tail(path, lines_wanted)
    if args.follow:   # the tail is read again with the following: no line falls between
        try:
            logfile.follow(path, lambda text: app.write(render.printable_lines(text)),
                           lines=lines_wanted)
        except KeyboardInterrupt:
            pass  # how one stops following: not an interruption of anything
        return EXIT_OK
    if lines:
        # log lines quote roots and file names, which may hold escape sequences
        app.write("".join(render.printable(line.rstrip("\n")) + "\n" for line in lines))
    if not lines and not path.exists():
        app.note(f"no log yet at {path}")
        return EXIT_NONE
    return EXIT_OK


def _log_path(project_id: str | None) -> Path:
    return paths.log_dir() / (f"{project_id}.log" if project_id else "ragexd.log")


def cmd_version(app: App) -> int:
    app.write(f"ragexctl {__version__}\n")
    client = app.session.running()
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
    app.session.check_version(hello)
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
    "search": cmd_search, "similar": cmd_similar, "index": cmd_index, "import": cmd_import,
    "status": cmd_status, "start": cmd_start, "stop": cmd_stop, "ls": cmd_ls, "rm": cmd_rm,
    "logs": cmd_logs,
}


#: Wire errors name the request field at fault (``detail["field"]``); people at a
#: terminal know the flag that sets it.
FIELD_FLAGS = {"limit": "--limit", "mode": "--mode", "paths": "--path", "languages": "--lang",
               "context": "-A/-B/-C"}


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
        return _guarded_plugin(sys.argv[1], sys.argv[2:])  # long-lived: a normal exit
    code = _main(list(sys.argv[1:] if argv is None else argv))
    if argv is None:
        fast_exit(code)
    return code


def _main(argv: list[str]) -> int:
    render.tolerate_unencodable_output()
    if argv and argv[0] in PLUGINS:
        return _guarded_plugin(argv[0], argv[1:])
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
    except FileNotFoundError:
        # The shell's directory was deleted under it: every command that reads it
        # (no path, `.`, a relative snapshot file) failed with a traceback, exit 1.
        if where.current_dir() is None:
            return app.error(ErrorCode.NOT_FOUND.value, where.NO_CURRENT_DIR)
        raise
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return reader_gone()
    finally:
        if app._session is not None:
            app._session.close()


def _guarded_plugin(name: str, argv: list[str]) -> int:
    """A plugin's run, ended as every command ends on Ctrl-C or a closed reader
    (``ragexctl doctor | head -3`` printed a BrokenPipeError traceback, exit 1),
    also when an async plugin's task group wraps the closed pipe in a group."""
    try:
        return run_plugin(name, argv)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return reader_gone()
    except BaseExceptionGroup as group:
        # the MCP server's task group wraps the closed pipe: `ragexctl mcp | head -c1`
        # printed an ExceptionGroup traceback.  Anything else in the group is a bug.
        if group.split(BrokenPipeError)[1] is not None:
            raise
        return reader_gone()


if __name__ == "__main__":
    sys.exit(main())
