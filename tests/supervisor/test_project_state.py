"""A project's state has one source: its worker incarnation, or how the last one ended.

Pure bookkeeping, no processes: the end-to-end behaviour (starts, crashes,
idle stops, crash loops) is proven in test_daemon.py and test_lifecycle.py.
"""

from __future__ import annotations

from pathlib import Path

import zmq

from ragexd.protocol import Op, Request
from ragexd.runtimes.base import WorkerHandle, WorkerSpec
from ragexd.supervisor import project as st
from ragexd.supervisor.backoff import RestartTracker
from ragexd.supervisor.project import Incarnation, Pending, Project


def _project(tmp_path: Path) -> Project:
    spec = WorkerSpec(project_id="0" * 16, root=tmp_path, index_dir=tmp_path / "index",
                      socket_dir=tmp_path / "sock", log_path=tmp_path / "w.log",
                      memory_limit=0)
    return Project(id="0" * 16, root=str(tmp_path), spec=spec, restarts=RestartTracker())


def test_state_follows_the_incarnation_and_a_new_start_begins_from_nothing(tmp_path):
    proj = _project(tmp_path)
    assert proj.state == st.STOPPED and not proj.busy and proj.load == 0
    proj.start_pending = True
    assert proj.state == st.STARTING and proj.busy
    proj.start_pending = False
    ctx = zmq.Context.instance()
    dealer = ctx.socket(zmq.DEALER)
    try:
        handle = WorkerHandle(spec=proj.spec, runtime="process", ident="w1", started_at=0.0)
        proj.worker = first = Incarnation(handle=handle, dealer=dealer, started_mono=1.0)
        assert proj.state == st.STARTING
        first.ready = True
        first.indexing = True
        first.inflight["r1"] = Pending([b"c"], Request(Op.SEARCH), deadline=None)
        assert proj.state == st.READY and proj.display_state() == st.INDEXING
        assert proj.load == 1 and proj.inflight is first.inflight
        first.stop_reason = st.STOP_IDLE
        assert proj.state == st.STOPPING and proj.display_state() == st.STOPPING
        # The worker exits: its incarnation goes, with all it knew.
        proj.worker, proj.outcome = None, st.IDLE_STOPPED
        assert proj.state == st.IDLE_STOPPED and proj.load == 0 and proj.inflight == {}
        proj.worker = second = Incarnation(handle=handle, dealer=dealer, started_mono=2.0)
        assert second is not first and not second.ready and not second.indexing
        assert second.inflight == {} and second.stop_reason is None
        assert proj.state == st.STARTING
    finally:
        dealer.close(linger=0)
