"""The direct regex path: ``ragexctl search`` runs ripgrep itself when that is all
the search needs.

A regex search is ripgrep over the live files with the project's rules; ragexd
and a worker add nothing to it but a round trip and, for a fresh client, the
import of the whole CLI (ZeroMQ, argparse, the protocol): ~95 ms where bare
``rg`` takes ~10 (issue #11, part 5).  So for ``--mode regex``, and for an
``auto`` query that auto routes to regex (``ragexd/query_shape.py``, the rule the
engine uses), the client builds the very command line a worker would
(``ragexd/ripgrep.py`` with ``ragexd/filerules.py`` and ``ragexd/filetypes.py``)
and prints the hits with the same renderer.

It only answers what it can answer exactly as the daemon path would; anything
else returns None and the full CLI serves the search, silently:

* a command line it does not fully understand (an unknown or abbreviated
  flag, ``--json``, whose hits carry the enclosing definition from the index,
  ``--timeout``, or a usage error, which argparse words);
* an ``auto`` query that is not a pattern, or that finds nothing or is not a
  valid regex (auto then searches by meaning);
* a project root the CLI would announce or ask about (no VCS root, no marker),
  one it refuses, an index directory inside the project, an unknown ``--lang``
  or a ``--path`` outside the project (the CLI words those errors);
* a worker in a container (``runtime = "docker"``, or ``"auto"`` unless the
  running ragexd says it chose local processes): it sees the tree at another
  path, without the user's global git excludes; the ``[search] direct_regex =
  false`` setting, no ``rg``, a bad configuration;
* a ``--path``: ripgrep's globs override ignore rules and a named path is
  searched even when ignored, so ignored files come back that only the
  worker's matcher (pathspec, too heavy for the client) takes out again;
* a root below its checkout's top with a ``.gitignore`` between them or patterns
  in the checkout's ``info/exclude``: ripgrep reads no ignore file above the root
  (``ripgrep.build_command``), the worker applies them;
* a hit below a nested ``.ragexignore``, or where a ``.gitignore`` negation
  meets the root's ``.ragexignore`` (see ``undecided_by_ripgrep``);
* a hit ripgrep's light output cannot name exactly (a newline in a path, a
  binary file's message: ``ripgrep.Ambiguous``), read as ``--json`` by a worker;
* no ``sys.stdout`` or ``sys.stderr`` (started with one closed): the full CLI
  decides how to say nothing.

Imports only what the interpreter has already loaded (``os``, ``sys``) and
ragex's shared rule modules in their cheap forms (``where``, ``settings``,
``vocabulary``, ``ripgrep``, ``filerules``, ``filetypes``, ``render``), none of
which loads ``dataclasses``, ``pathlib``, ``typing``, ``subprocess``, ``json`` or
``re`` on the way to a ``--mode regex`` answer (``tests/client/
test_import_light.py`` keeps it so): on this path every millisecond of import is
a tenth of ripgrep's whole search.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - typing costs milliseconds at run time
    from collections.abc import Callable
    from typing import Any

#: Flags that take a value, by every spelling the CLI accepts in full.
_VALUED = {"--mode": "mode", "-n": "limit", "--limit": "limit", "-g": "paths",
           "--path": "paths", "-t": "languages", "--lang": "languages",
           "--project": "project", "--color": "color", "--colour": "color",
           "-e": "patterns", "--regexp": "patterns",
           "-A": "after", "--after-context": "after", "-B": "before",
           "--before-context": "before", "-C": "context", "--context": "context"}
#: Flags without a value that change nothing here: no index is started, no
#: daemon is involved.
_HARMLESS = {"--keep-indexing", "--no-daemon"}


class NotHere(Exception):
    """The direct path cannot answer exactly; the daemon path must."""


class Request:
    """A search command line the direct path understood."""

    __slots__ = ("mode", "limit", "color", "project", "after", "before", "context", "paths",
                 "languages", "patterns", "words")

    def __init__(self) -> None:
        self.mode = "auto"
        self.limit = "10"
        self.color = "auto"
        self.project: str | None = None
        self.after: str | None = None      # -A/-B/-C as given: checked by _context
        self.before: str | None = None
        self.context: str | None = None
        self.paths: list[str] = []
        self.languages: list[str] = []
        self.patterns: list[str] = []
        self.words: list[str] = []


def parse(argv: list[str]) -> Request | None:
    """``search`` arguments in the forms argparse would read the same way, or None."""
    if not argv or argv[0] != "search":
        return None
    req = Request()
    it = iter(argv[1:])
    for arg in it:
        if arg == "--":
            req.words.extend(it)
            break
        if arg in _HARMLESS:
            continue
        if arg in _VALUED:
            value = next(it, None)
            if value is None or (value.startswith("-") and arg not in ("-e", "--regexp")):
                return None   # argparse's error, in argparse's words
            _add(req, _VALUED[arg], value)
            continue
        name, eq, value = arg.partition("=")
        if eq and name.startswith("--") and name in _VALUED:
            _add(req, _VALUED[name], value)
            continue
        if arg.startswith("-") and arg != "-":
            return None           # --json, --timeout, -h, -A 3, abbreviations...
        req.words.append(arg)
    return req


def _add(req: Request, attr: str, value: str) -> None:
    current = getattr(req, attr)
    if isinstance(current, list):
        current.append(value)
    else:
        setattr(req, attr, value)


def _rg_unavailable() -> bool:
    from ragexd.ripgrep import RipgrepError, find_rg

    try:
        find_rg()
    except RipgrepError:
        return True
    return False


def _context(req: Request) -> tuple[int, int] | None:
    """(before, after) as the CLI reads -A/-B/-C (-A and -B override -C), or None
    for a value the CLI refuses (it says why)."""
    from . import render

    try:
        got = render.Context.from_flags(
            None if req.before is None else int(req.before),
            None if req.after is None else int(req.after),
            None if req.context is None else int(req.context))
    except ValueError:
        return None
    return (got.before, got.after) if isinstance(got, render.Context) else None


def same_files_as_a_worker(settings: dict[str, Any]) -> bool:
    """Whether the worker that would serve this search sees the files as the
    client does: a local process (or the one-shot worker, with the daemon off),
    not a container (another path for the tree, no user's global git excludes,
    symlinks out of the tree dead).  A running ragexd serves the search with the
    runtime it chose, whatever this client's own setting says
    (``where.daemon_runtime``); with none running, the daemon path starts one
    with this client's settings, and ``"auto"`` is its choice, not a guess here."""
    from ragexd import where

    if not settings["enabled"]:
        return True
    chosen = where.daemon_runtime()
    if chosen is not None:
        return chosen == "process"
    return settings["runtime"] == "process"


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def index_inside(root: str) -> bool:
    """Whether the project's index directory lies inside ``root`` (a real path):
    the worker leaves it out of the search, ripgrep would not.

    The index is ``<projects>/<id>``, the id a hash of the root; hashing loads
    ``_sha256``, a shared library (~0.2 ms of a search that should cost ~25).
    Without a symlink among ``<projects>``' entries the index resolves to
    ``realpath(<projects>)/<id>`` whatever the id, which lies in the root only
    if ``<projects>`` does or the root is one of its entries: so the hash is
    taken only then, or when a symlink (or an unreadable directory) leaves it
    open."""
    from ragexd import where

    projects = where.projects_dir()
    real = os.path.realpath(projects)
    if not _within(real, root) and os.path.dirname(root) != real:
        try:
            with os.scandir(projects) as entries:
                if not any(entry.is_symlink() for entry in entries):
                    return False
        except FileNotFoundError:
            return False   # no index anywhere yet
        except OSError:
            pass
    return _within(os.path.realpath(where.index_dir(where.project_id_for(root))), root)


def plan(req: Request) -> tuple[str, int, str, list[str], tuple[int, int]] | None:
    """(pattern, limit, root, languages, (before, after)) for a search the direct
    path can serve exactly, or None."""
    from ragexd.vocabulary import MAX_LIMIT, query_problem

    from . import render

    queries = req.patterns + ([" ".join(req.words)] if req.words else [])
    if len(queries) != 1 or req.color not in render.COLOR_CHOICES:
        return None
    pattern = queries[0]
    try:
        limit = int(req.limit)
    except ValueError:
        return None
    context = _context(req)
    if not 1 <= limit <= MAX_LIMIT or query_problem(pattern) is not None or context is None:
        return None
    if req.mode == "auto":
        from ragexd.query_shape import shape

        if shape(pattern) != "regex":
            return None
    elif req.mode != "regex":
        return None
    from ragexd import settings, where

    try:
        values, _ = settings.read()
    except settings.ConfigError:
        return None
    if not values["direct_regex"] or not same_files_as_a_worker(values):
        return None
    if req.project is not None and not req.project.strip():
        return None   # the CLI refuses an empty path with its sentence
    start = req.project if req.project is not None else where.current_dir()
    if start is None or not os.path.exists(start):   # the CLI says why
        return None
    root, how, _sentence, refusal = where.choose_root(start, explicit=req.project is not None)
    if refusal or how == "cwd":
        return None
    if index_inside(root):
        return None   # the worker leaves its own index out of the search
    from ragexd.filetypes import known_languages, normalise_language

    languages = [normalise_language(lang) for lang in req.languages]
    if any(lang not in known_languages() for lang in languages):
        return None
    if req.paths:
        # ripgrep searches a path it is given, and a -g glob overrides every ignore
        # rule: `-g '*.log'` finds gitignored logs, which only the worker's matcher
        # (pathspec, with the indexer's ignore rules) takes out again; and that
        # matcher reads a lone exclusion ('!tests/') otherwise than rg does.  The
        # worker's reading is the answer, and the CLI words a path it refuses.
        return None
    from ragexd.filerules import global_excludes_beyond_rg, ignore_files_outside

    if ignore_files_outside(root, global_excludes=False)[1]:
        return None   # a .gitignore above the root, in its checkout: the worker reads it
    if global_excludes_beyond_rg():
        return None   # git's global excludes, found where rg does not look
    if _rg_unavailable():
        return None
    return pattern, limit, root, languages, context


def _may_reinclude(negation: str, rel: str) -> bool:
    """Whether the ``.gitignore`` line ``!negation`` might match ``rel``; True
    whenever unsure.  Only a plain name pattern (``!keep.log``, ``!*.gen.py``,
    the usual kind) is tested, against every component of the path."""
    from fnmatch import fnmatchcase

    pattern = negation.strip().rstrip("/")
    if not pattern or any(ch in pattern for ch in "/[\\"):
        return True
    return any(fnmatchcase(part, pattern) for part in rel.split("/"))


def undecided_by_ripgrep(root: str) -> Callable[[str], bool]:
    """An ``accept`` for ripgrep that stops the search (NotHere) at a hit whose
    fate ripgrep cannot decide as ragex does, so that the worker decides it:

    * a ``.ragexignore`` in a directory below the root: ripgrep reads only the
      root's (``--ignore-file``);
    * a negation (``!keep.log``) in a ``.gitignore``, ``.ignore`` or ``.rgignore``
      on the hit's way that may match it, while the root has a ``.ragexignore``:
      ragex lets ``.ragexignore`` override them, ripgrep ranks an
      ``--ignore-file`` below them.
      Without a negation, ignore files only add up and their order is moot."""
    from ragexd.filerules import IGNORE_FILES

    theirs = [name for name in IGNORE_FILES if name != ".ragexignore"]
    root_rules = os.path.lexists(os.path.join(root, ".ragexignore"))
    nested: dict[str, bool] = {}
    negations: dict[str, list[str]] = {}

    def negations_in(rel_dir: str) -> list[str]:
        held = negations.get(rel_dir)
        if held is None:
            held = []
            for name in theirs:
                try:
                    with open(os.path.join(root, rel_dir, name), "rb") as fh:
                        held += [line.strip()[1:].decode("utf-8", "replace") for line in fh
                                 if line.strip().startswith(b"!")]
                except OSError:
                    pass
            negations[rel_dir] = held
        return held

    def accept(rel: str) -> bool:
        dirs = [""]
        for part in rel.split("/")[:-1]:
            dirs.append(f"{dirs[-1]}/{part}" if dirs[-1] else part)
        for rel_dir in dirs[1:]:
            held = nested.get(rel_dir)
            if held is None:
                held = nested[rel_dir] = os.path.lexists(os.path.join(root, rel_dir,
                                                                      ".ragexignore"))
            if held:
                raise NotHere(rel_dir)
        if root_rules and any(_may_reinclude(n, rel) for d in dirs for n in negations_in(d)):
            raise NotHere(rel)
        return True
    return accept


def search(req: Request) -> int | None:
    """Serve the search and return its exit code, or None for the daemon path."""
    if sys.stdout is None or sys.stderr is None:
        return None
    planned = plan(req)
    if planned is None:
        return None
    pattern, limit, root, languages, (before, after) = planned
    from ragexd import exitcodes, ripgrep

    try:
        matches, notes = ripgrep.grep(root, pattern, limit=limit, languages=languages,
                                      accept=undecided_by_ripgrep(root), alone=True)
    except (NotHere, ripgrep.Ambiguous):
        return None
    except ripgrep.RipgrepError as exc:
        if req.mode != "regex" or exc.code != "invalid_regex":
            return None   # auto searches by meaning instead; other trouble: the worker's
        from .render import format_error

        sys.stderr.write(format_error(exc.code, exc.message, as_json=False))
        return exitcodes.ERROR
    if not matches and req.mode == "auto":
        return None       # auto goes on to search by meaning
    from . import render

    hits = [m.hit() for m in matches]
    if not hits:   # ripgrep skips files over the size limit silently: say so
        notes.extend(_left_out(root, languages))
    for note in notes:
        sys.stderr.write(f"ragexctl: note: {render.printable_lines(note)}\n")
    color = render.use_color(req.color, sys.stdout)
    ctx = render.Context(before, after)
    if ctx:   # as cli.print_hits prints a regex result
        sys.stdout.write(render.render_context(hits, root, render.current_dir(), ctx,
                                               color=color))
    else:
        sys.stdout.write(render.render_hits(hits, root, render.current_dir(), color=color))
    return exitcodes.OK if hits else exitcodes.NOTHING


def _left_out(root: str, languages: list[str]) -> list[str]:
    """The note of an empty answer whose search left files out for their size
    (ripgrep.left_out: a worker's regex answer says the same)."""
    from ragexd import ripgrep

    accept = undecided_by_ripgrep(root)

    def searched_but_for_size(rel: str) -> bool:
        try:
            return accept(rel)
        except NotHere:   # maybe ignored by a rule ripgrep cannot read: not claimed
            return False

    return ripgrep.left_out(root, languages=languages, accept=searched_but_for_size,
                            alone=True)


def try_search(argv: list[str]) -> int | None:
    """The exit code of a search served directly, or None (nothing was printed)."""
    req = parse(argv)
    if req is None:
        return None
    return search(req)
