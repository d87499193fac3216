"""A project deleted under its running worker, as `ragexctl status` and `ls` say it."""

from __future__ import annotations

import os
import shutil

from tests.harness import RagexInstance, write_tree


def test_status_marks_a_worker_whose_project_was_deleted_as_ls_does() -> None:
    """status showed the worker of a deleted project as plainly "ready" while ls
    marked it "(deleted)": both ask the one predicate, and render it one way."""
    rx = RagexInstance(RAGEX_WATCH="0")
    try:
        rx.start()
        kept = write_tree(rx.base / "kept", files=3)
        gone = write_tree(rx.base / "gone", files=3)
        client = rx.client()
        for root in (kept, gone):
            reply = client.search(root, "invoice", mode="regex")
            assert reply.ok, reply.error
        real = os.path.realpath(gone)
        shutil.rmtree(gone)
        workers = {w["root"]: w for w in client.status()["workers"]}
        assert workers[real]["exists"] is False, workers[real]
        assert workers[os.path.realpath(kept)]["exists"] is True
        status = rx.ctl("status")
        assert status.returncode == 0, status.stderr
        marked = [ln for ln in status.stdout.splitlines() if "(deleted)" in ln]
        assert len(marked) == 1 and marked[0].split()[0].endswith("/gone"), status.stdout
        listed = rx.ctl("ls")
        assert [ln.split()[1] for ln in listed.stdout.splitlines() if "(deleted)" in ln] \
            == [marked[0].split()[0]], listed.stdout
    finally:
        rx.cleanup()
