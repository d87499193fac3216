"""Which files of a project ragex searches: the rules both of its paths to them obey.

The indexer walks the tree (``engine/discovery.py``) and a regex search asks
ripgrep (``ragexd/ripgrep.py``), either inside a worker or straight from the
client (``ragexctl/direct.py``).  All three read the defaults, the size limit,
the never-searched VCS folders and the path-glob rules from here, so the paths
cannot drift apart.  Stdlib only, and nothing the interpreter has not loaded
already (no pathlib, no typing): the client imports it on every search.
"""

from __future__ import annotations

import os

from .vocabulary import CodedError

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - typing costs milliseconds at run time
    from collections.abc import Sequence

MAX_FILE_BYTES = 1024 * 1024
#: The ignore files read in every directory, lowest precedence first: git's, then
#: ``.ignore`` and ``.rgignore`` (ripgrep, fd and ag obey them, so a regex search
#: already did and the index must too), then ragex's own.
IGNORE_FILES = (".gitignore", ".ignore", ".rgignore", ".ragexignore")
ALWAYS_SKIP_DIRS = frozenset({".git", ".hg", ".svn", ".bzr", "_darcs"})

DEFAULT_IGNORES = """
node_modules/
bower_components/
vendor/
Pods/
.bundle/
.yarn/
.pnpm-store/
.terraform/
.dart_tool/
elm-stuff/
site-packages/
.eggs/
.ipynb_checkpoints/
.nuxt/
.svelte-kit/
.parcel-cache/
__pycache__/
.venv/
venv/
.env/
build/
dist/
target/
.tox/
.nox/
.mypy_cache/
.pytest_cache/
.ruff_cache/
.hypothesis/
.idea/
.gradle/
.next/
.cache/
*.egg-info/
*.min.js
*.min.css
*.map
*.lock
package-lock.json
npm-shrinkwrap.json
pnpm-lock.yaml
go.sum
*.pyc
*.pyo
*.so
*.o
*.a
*.dll
*.dylib
*.exe
*.class
*.jar
*.whl
*.zip
*.gz
*.tgz
*.xz
*.bz2
*.png
*.jpg
*.jpeg
*.gif
*.ico
*.pdf
*.svg
*.woff
*.woff2
*.ttf
*.sqlite
*.sqlite3
*.db
.DS_Store
""".split()
#: IgnoreRules._decide matches the defaults against a name alone: keep each to one component.
assert not any("/" in p.rstrip("/") for p in DEFAULT_IGNORES)


def git_info_exclude(top: str) -> str | None:
    """The ``info/exclude`` file of the git checkout whose top is ``top``, or None.

    git obeys it beside the ``.gitignore`` files (below them in precedence), and so
    does ripgrep in a plain checkout.  In a linked worktree or a submodule ``.git``
    is a file naming the git directory, and a worktree's excludes live in the
    repository's common directory (``commondir``): git reads them there, ripgrep
    14 does not look (``ripgrep.build_command`` hands it the file)."""
    path = _info_exclude_path(top)
    return path if path and os.path.isfile(path) else None


def _info_exclude_path(top: str) -> str | None:
    """Where the checkout at ``top`` keeps (or would keep) its ``info/exclude``."""
    dot_git = os.path.join(top, ".git")
    if os.path.isdir(dot_git):
        git_dir = dot_git
    else:
        try:
            with open(dot_git, "rb") as fh:
                head = fh.read(4096).decode("utf-8", "replace")
        except OSError:
            return None
        if not head.startswith("gitdir:"):
            return None
        git_dir = os.path.join(top, head[len("gitdir:"):].strip())
        try:
            with open(os.path.join(git_dir, "commondir"), "rb") as fh:
                git_dir = os.path.join(git_dir, fh.read(4096).decode("utf-8", "replace").strip())
        except OSError:
            pass   # a submodule's git directory is its own common directory
    return os.path.normpath(os.path.join(git_dir, "info", "exclude"))


def _checkout_chain(real: str) -> list[str]:
    """``real`` and each directory above it up to its git checkout's top (the last),
    or [] outside any checkout."""
    chain: list[str] = []
    here = real
    while True:
        chain.append(here)
        if os.path.exists(os.path.join(here, ".git")):
            return chain
        parent = os.path.dirname(here)
        if parent == here:
            return []
        here = parent


def ignore_sources_outside(real: str) -> list[str]:
    """Every file outside the tree at ``real`` (a real path), or in its git
    directory, whose edit can change which of its files are ignored, whether it
    exists yet or not: the files ``ignore_files_outside`` reads (the global excludes
    file, at its configured place and git's default one; the checkout's
    ``info/exclude``; each ``.gitignore`` between the checkout's top and the root)
    and the git config files that name the global one.  The watcher watches them
    all (``worker/watcher.py``): an edit re-decides the tree, as an edit of a
    ``.gitignore`` inside it does."""
    xdg, configs = _global_configs()
    sources = configs + [os.path.join(xdg, "git", "ignore"), global_excludes_place()]
    chain = _checkout_chain(real)
    if chain:
        exclude = _info_exclude_path(chain[-1])
        if exclude:
            sources.append(exclude)
        sources.extend(os.path.join(parent, ".gitignore") for parent in chain[1:])
    return list(dict.fromkeys(os.path.abspath(p) for p in sources))


def ignore_files_outside(real: str, *, global_excludes: bool = True
                         ) -> tuple[list[tuple[str, str]], bool]:
    """The ignore files that apply to the project at ``real`` (a real path) from
    outside it, lowest precedence first, each as (``real``'s path relative to the
    directory its patterns are relative to, with a trailing ``/``, or ``""``; the
    file), and whether ripgrep, which reads no ignore file above the root
    (``ripgrep.build_command``: ``--no-ignore-parent``), misses some of them.

    git's rules, which the index obeys (``discovery.IgnoreRules``): the user's global
    excludes (``core.excludesFile``; rg reads it too), the checkout's
    ``info/exclude``, and the ``.gitignore`` files between the checkout's top and a
    root below it (a ``.ragexroot`` in a monorepo's subdirectory), outermost first;
    nothing above the checkout's top.  Only an existing file is listed.
    ``global_excludes=False`` leaves the global file out (the client's direct
    regex path asks only whether rg misses some, and rg reads that file itself:
    finding it spawns git)."""
    chain = _checkout_chain(real)
    top = chain[-1] if chain else real
    prefix = "" if top == real else os.path.relpath(real, top).replace(os.sep, "/") + "/"
    found: list[tuple[str, str]] = []
    missed = False
    excludes = git_global_excludes() if global_excludes else None
    if excludes:
        found.append((prefix, excludes))
    exclude = git_info_exclude(top) if chain else None
    if exclude:
        found.append((prefix, exclude))
        # rg reads the root's own checkout's (build_command hands a linked
        # worktree's to it), never a checkout's above the root
        missed = bool(prefix) and _holds_a_pattern(exclude)
    for parent in reversed(chain[1:]):
        path = os.path.join(parent, ".gitignore")
        if os.path.isfile(path):
            found.append((os.path.relpath(real, parent).replace(os.sep, "/") + "/", path))
            missed = True
    return found, missed


def _holds_a_pattern(path: str) -> bool:
    """Whether an ignore file holds any pattern (git's own ``info/exclude`` holds
    only comments until someone writes one)."""
    try:
        with open(path, "rb") as fh:
            return any(line.strip() and not line.lstrip().startswith(b"#")
                       for line in fh.read(MAX_FILE_BYTES).splitlines())
    except OSError:
        return True


def git_global_excludes() -> str | None:
    """The user's global git ignore file, found as git finds it: ``core.excludesFile``
    of the global config (``$GIT_CONFIG_GLOBAL``, or ``$XDG_CONFIG_HOME/git/config``
    and ``~/.gitconfig``, with their ``include.path`` files), ``~`` expanded, else
    ``$XDG_CONFIG_HOME/git/ignore``; None when there is no such file.

    git itself is asked (``_excludes_file_from_git``): its config syntax has
    includes, conditional includes and escapes that a reader of our own would miss
    (a dotfiles repository often keeps core.excludesFile in an included file).
    Without git, or when it fails, the two config files are read here
    (``_excludes_file_in``).  Asked once per config state (``_global_cache``): every
    IgnoreRules reads it, and a spawn of git costs milliseconds."""
    path = global_excludes_place()
    return path if os.path.isfile(path) else None


def global_excludes_beyond_rg() -> bool:
    """Whether git may read a global excludes file that ripgrep does not find: rg
    reads ``core.excludesFile`` from ``$XDG_CONFIG_HOME/git/config`` and
    ``~/.gitconfig`` itself, but follows neither ``$GIT_CONFIG_GLOBAL`` nor an
    ``include``/``includeIf`` section (checked with rg 14: both listed a file the
    excludes named).  The client's direct regex path then hands the search to the
    worker, whose rules ask git.  Cheap (two small reads, no spawn): it runs on
    every direct search."""
    if os.environ.get("GIT_CONFIG_GLOBAL"):
        return True
    for config in _global_configs()[1]:
        try:
            with open(config, "rb") as fh:
                data = fh.read(MAX_FILE_BYTES)
        except OSError:
            continue
        if any(line.lstrip().lower().startswith(b"[include") for line in data.splitlines()):
            return True
    return False


def global_excludes_place() -> str:
    """Where the global excludes file is, or would be (``git_global_excludes``)."""
    xdg, configs = _global_configs()
    key = (xdg, tuple(configs), tuple(_stamp(c) for c in configs))
    now = _monotonic()
    cached = _global_cache.get(key)
    if cached is not None and now - cached[0] < GLOBAL_EXCLUDES_TTL:
        found = cached[1]
    else:
        found = _excludes_file_from_git()
        if found is _NO_GIT:
            found = None
            for config in configs:   # the later file wins, as in git
                found = _excludes_file_in(config) or found
            found = os.path.expanduser(found) if found else None
        _global_cache.clear()
        _global_cache[key] = (now, found)
    return str(found) if found else os.path.join(xdg, "git", "ignore")


def _global_configs() -> tuple[str, list[str]]:
    """``$XDG_CONFIG_HOME`` (or ``~/.config``) and the global git config files, in
    the order git reads them (the later wins): ``$GIT_CONFIG_GLOBAL`` alone when
    set, else ``$XDG_CONFIG_HOME/git/config`` then ``~/.gitconfig``."""
    home = os.path.expanduser("~")
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    own = os.environ.get("GIT_CONFIG_GLOBAL")
    return xdg, ([own] if own else [os.path.join(xdg, "git", "config"),
                                    os.path.join(home, ".gitconfig")])


#: How long a global excludes lookup is trusted while the config files' stats stay
#: the same (an edit of an *included* file changes none of them).
GLOBAL_EXCLUDES_TTL = 5.0
_global_cache: dict[tuple[object, ...], tuple[float, object]] = {}
_NO_GIT = object()


def _monotonic() -> float:
    import time
    return time.monotonic()


def _stamp(path: str) -> tuple[int, ...] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _excludes_file_from_git() -> object:
    """``core.excludesFile`` as ``git config --global`` reads it, includes followed,
    ``~`` expanded (``--path``): the path, None when it is not set, or ``_NO_GIT``
    when git is missing, too slow (2 s) or fails on the config."""
    import subprocess

    try:
        done = subprocess.run(["git", "config", "--global", "--includes", "--path", "--get",
                               "core.excludesFile"], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=2.0, check=False)
    except (OSError, subprocess.SubprocessError):
        return _NO_GIT
    if done.returncode == 1 and not done.stdout:
        return None   # not set
    if done.returncode != 0:
        return _NO_GIT
    value = os.fsdecode(done.stdout.rstrip(b"\n").split(b"\n")[-1])
    return os.path.expanduser(value) if value else None


def _excludes_file_in(config: str) -> str | None:
    """``core.excludesFile`` of one git config file (the last one set), or None.
    Only what that one key needs of git's syntax: sections, quotes, comments."""
    try:
        with open(config, "rb") as fh:
            text = fh.read(MAX_FILE_BYTES).decode("utf-8", "replace")
    except OSError:
        return None
    section, value = "", None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line[1:line.find("]")].strip().lower() if "]" in line else ""
            line = line[line.find("]") + 1:].strip() if "]" in line else ""
        if section != "core" or "=" not in line or line[0] in "#;":
            continue
        key, _, val = line.partition("=")
        if key.strip().lower() == "excludesfile":
            val = val.strip()
            if val.startswith('"') and val.endswith('"') and len(val) > 1:
                val = val[1:-1]
            value = val or None
    return value


def display_name(name: str | bytes) -> str:
    """A path as people and the wire can read it: invalid UTF-8 bytes (which
    ``os.fsdecode`` turns into lone surrogates) become ``\\xNN`` escapes."""
    raw = name if isinstance(name, bytes) else os.fsencode(name)
    return raw.decode("utf-8", "backslashreplace")


def left_out_note(count: int, example: tuple[str, str] | None, tail: str = "") -> str:
    """The note of an empty answer when ``count`` files were left out of the
    search (``example``: one of them and why): "nothing found" must not read as
    "it does not exist" (an agent stops looking).  One sentence for the engine's
    answers and the client's direct regex path."""
    return (f"{count} file{'' if count == 1 else 's'} of the project "
            f"{'is' if count == 1 else 'are'} not searched and may hold it"
            + (f" ({example[0]}: {example[1]}" + (", ...)" if count > 1 else ")")
               if example else "")
            + tail)


def too_large(max_size: int, size: int) -> str:
    """Why a file over the size limit is left out, in the index's words and rg's."""
    return f"larger than {max_size} bytes ({size})"


class GlobProblem(CodedError, ValueError):
    """A ``--path`` glob that cannot be served; ``code`` is a protocol ErrorCode value."""


def clean_globs(root: str | os.PathLike[str], globs: Sequence[str]) -> list[str]:
    """``--path`` globs made relative to the root, gitignore style: an absolute
    path inside the root becomes relative, ``./`` goes, and a path outside the
    root (``../x``, ``/etc``) is refused."""
    cleaned: list[str] = []
    root_real = os.path.realpath(root)
    for g in globs:
        if not isinstance(g, str) or not g.strip():
            raise GlobProblem("bad_query", "an empty path glob was given")
        glob = g.strip().replace("\\", "/")
        if glob.startswith("/") or (len(glob) > 1 and glob[1] == ":"):
            real = os.path.realpath(glob)
            if real == root_real:
                glob = "**"
            elif real.startswith(root_real + os.sep):
                glob = os.path.relpath(real, root_real).replace(os.sep, "/")
            else:
                raise GlobProblem("path_outside_project",
                                  f"the path {g!r} is outside the project {root}; "
                                  "give paths relative to the project root", path=g)
        if ".." in glob.lstrip("!").split("/"):
            raise GlobProblem("path_outside_project",
                              f"the path {g!r} leaves the project {root}; "
                              "give paths inside the project", path=g)
        while glob.startswith("./"):
            glob = glob[2:]
        cleaned.append(glob or "**")
    return cleaned
