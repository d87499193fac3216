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
IGNORE_FILES = (".gitignore", ".ragexignore")
ALWAYS_SKIP_DIRS = frozenset({".git", ".hg", ".svn", ".bzr", "_darcs"})

DEFAULT_IGNORES = """
node_modules/
bower_components/
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
