"""The indexed projects on disk: list them, resolve an id or a path, remove one.

Both ragexd (LIST / REMOVE / LOGS) and ragexctl (``ls``, ``rm``, ``logs`` while
ragexd is down) need this, and each used to have its own copy, with two
regexes for the same id.  The disk is the truth: every index directory
``<data>/projects/<id>/`` holds a ``project.json`` naming its root.  What only
ragexd knows (whether a worker runs) it adds on top.

Standard library plus ``ragexd.paths`` and the protocol's error type only: the
client imports it too and must stay light.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from . import paths
from .protocol import ErrorCode, RagexError

#: A project id: the first 16 hex digits of a hash of the root (paths.project_id_for).
PROJECT_ID = re.compile(r"[0-9a-f]{16}")


def is_project_id(text: str) -> bool:
    return PROJECT_ID.fullmatch(text) is not None


def root_exists(root: str) -> bool:
    """Is a recorded project's directory still there?  One predicate for every
    place that asks (`ragexctl ls`, `ragexctl status`, which recent projects
    ragexd adopts or pre-starts): status showed a worker whose project was
    deleted as plainly "ready" while ls marked it "(deleted)"."""
    return os.path.isdir(root)


def list_projects() -> list[dict[str, Any]]:
    """Every recorded project, most recently used first: id, root, size_bytes,
    last_used, created, and whether the root still ``exists`` (an index whose
    project was deleted is the one to `ragexctl rm`).  Directories without a
    readable record are skipped."""
    out: list[dict[str, Any]] = []
    try:
        directories = sorted(paths.projects_dir().iterdir())
    except OSError:
        return out
    for directory in directories:
        record = paths.ProjectRecord.load(directory)
        if record is None:
            continue
        out.append({"id": record.id, "root": record.root, "size_bytes": paths.dir_size(directory),
                    "last_used": record.last_used, "created": record.created,
                    "exists": root_exists(record.root)})
    out.sort(key=lambda p: -float(p["last_used"] or 0))
    return out


def resolve(target: str) -> tuple[str, str | None]:
    """(project id, root or None) of a project id or a path — even the path of a
    project whose directory was deleted since (found through its record).

    An existing path resolves to the project containing it, as a search would.
    Relative paths are relative to the caller's working directory: ragexd
    (whose cwd is ``/``) accepts only ids and absolute paths for that reason.
    """
    if is_project_id(target) and paths.index_dir(target).exists():
        record = paths.ProjectRecord.load(paths.index_dir(target))
        return target, record.root if record else None
    if os.path.exists(target):
        root = paths.find_project_root(Path(target))
        project_id = paths.project_id_for(root)
        if not paths.index_dir(project_id).exists():
            # said about the path given, not the id it hashes to (was: "no indexed
            # project '8e6ea3a6f2742959'" for `ragexctl rm ~/src/app`)
            raise RagexError(ErrorCode.NOT_FOUND,
                             f"{root} has no index (see `ragexctl ls` for indexed projects)",
                             target=target)
        return project_id, str(root)
    wanted = {os.path.abspath(target), os.path.realpath(target)}
    for project in list_projects():
        if project["root"] in wanted:
            return project["id"], project["root"]
    raise RagexError(ErrorCode.NOT_FOUND,
                     f"no indexed project {target!r} (see `ragexctl ls` for ids and paths)",
                     target=target)


def remove(project_id: str, what: str | None = None) -> int:
    """Delete a project's index directory; return the bytes freed.

    Only a direct child of the projects directory named by a valid id is ever
    deleted, whatever the id came from.  The caller makes sure no worker holds
    the index (ragexd stops it first; ragexctl only calls this without ragexd).
    """
    base = paths.projects_dir()
    directory = paths.index_dir(project_id)
    if not is_project_id(project_id) or directory.parent != base or not directory.is_dir():
        raise RagexError(ErrorCode.NOT_FOUND,
                         f"{what or project_id} has no index (see `ragexctl ls`)",
                         target=what or project_id)
    import shutil  # here: it pulls in bz2 and lzma, a cost every ragexctl run would pay

    freed = paths.dir_size(directory)
    try:
        shutil.rmtree(directory)
    except OSError as exc:
        raise RagexError(ErrorCode.INDEX_UNWRITABLE,
                         f"cannot delete {directory}: {exc.strerror or exc}",
                         path=str(directory)) from None
    return freed
