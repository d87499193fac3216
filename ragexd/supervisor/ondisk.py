"""Projects on disk, as ragexd serves them: LIST, REMOVE and LOGS.

These read and change the per-user data directory (indexes, project records,
logs) rather than a worker; slow disk work runs on the daemon's thread pool.
A project is named by its id or by its absolute path (``_target_id``).

A part of the one ``Daemon`` object (see ``daemon.py``): its methods run on
the daemon's loop thread only.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import Future
from typing import Any

from .. import paths, projects
from ..config import format_size
from ..logfile import tail
from ..protocol import ErrorCode, LogsArgs, RagexError, RemoveArgs, Reply, Request
from . import project as st
from .project import Project
from .recent import RecentProjects

log = logging.getLogger("ragexd")

class OnDiskProjects:
    projects: dict[str, Project]
    recent: RecentProjects

    def _target_id(self, target: str) -> tuple[str, str | None]:
        """A project id or path (as given to rm/logs) → (project id, root if known)."""
        proj = self.projects.get(target)
        if proj is not None:
            return target, proj.root
        if not projects.is_project_id(target) and not os.path.isabs(target):
            # Our cwd is /: a relative path would mean something else to the user.
            raise RagexError(ErrorCode.BAD_REQUEST,
                             f"{target!r} is neither a project id nor an absolute path")
        return projects.resolve(target)

    def _list_op(self, envelope: list[bytes], req: Request) -> None:
        def done(future: Future[Any]) -> None:
            try:
                items = future.result()
            except Exception as exc:  # noqa: BLE001
                log.exception("listing projects failed")
                self._send(envelope, Reply.failure(req.id, ErrorCode.INTERNAL,
                                                   f"listing projects failed: {exc}"))
                return
            for item in items:
                proj = self.projects.get(item["id"])
                item["running"] = bool(proj and proj.worker is not None)
                item["state"] = proj.display_state() if proj else st.STOPPED
            items.sort(key=lambda i: -float(i["last_used"] or 0))
            self._send(envelope, Reply.success(req.id, {"projects": items}))

        self._submit(done, projects.list_projects)

    def _remove_op(self, envelope: list[bytes], req: Request) -> None:
        target = req.args_as(RemoveArgs).target or req.project
        if not target:
            raise RagexError(ErrorCode.BAD_REQUEST,
                             "'rm' needs a target: a project id or an absolute path")
        pid, _root = self._target_id(target)
        directory = paths.index_dir(pid)
        proj = self.projects.get(pid)
        if not directory.exists() and proj is None:
            raise RagexError(ErrorCode.NOT_FOUND, f"there is no index for {target}",
                             target=target)
        if proj is not None and proj.removing:
            raise RagexError(ErrorCode.BUSY, f"{target} is already being removed")

        def delete() -> int:
            return projects.remove(pid, target) if directory.exists() else 0

        def deleted(future: Future[Any]) -> None:
            if proj is not None:
                proj.removing = False
            try:
                freed = future.result()
            except RagexError as exc:
                self._send(envelope, Reply.from_exception(req.id, exc))
                return
            self.recent.remove(pid)
            current = self.projects.get(pid)
            if current is not None and current.worker is None and not current.start_pending \
                    and not current.queue:
                del self.projects[pid]
            log.info("removed the index %s (%s freed)", directory, format_size(freed))
            self._send(envelope, Reply.success(req.id, {"removed": pid, "freed_bytes": freed}))

        def stopped(_proj: Project) -> None:
            self._submit(deleted, delete)

        if proj is not None:
            proj.removing = True
            self._fail_queue(proj, ErrorCode.WORKER_UNAVAILABLE,
                             f"the index of {proj.root} is being removed")
            self._stop(proj, st.STOP_REMOVE, stopped)
        else:
            stopped(None)  # type: ignore[arg-type]

    def _logs_op(self, envelope: list[bytes], req: Request) -> None:
        args = req.args_as(LogsArgs)
        if args.target is None:
            path = paths.log_dir() / "ragexd.log"
            pid = None
        else:
            pid, _root = self._target_id(args.target)
            path = paths.log_dir() / f"{pid}.log"
        result: dict[str, Any] = {"path": str(path), "lines": tail(path, args.lines),
                                  "project_id": pid, "exists": path.exists()}
        self._send(envelope, Reply.success(req.id, result))
