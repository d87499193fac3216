"""Who owns an index, and which ragexd a client finds (issue #13).

Real ragexd processes with their own directories: two of them sharing one data
directory (as two runtime directories do when an MCP client strips
XDG_RUNTIME_DIR) must never both write one index.
"""

from __future__ import annotations

import time

import pytest

from ragexd.protocol import ErrorCode, Op
from supervisor.support import Ragexd, short_tmp, write_tree

from .helpers import figure

pytestmark = pytest.mark.faults


def test_two_ragexd_never_write_one_index_the_second_gets_index_locked() -> None:
    base = short_tmp()
    first = Ragexd(base / "a", RAGEX_WATCH="0")
    (base / "a").mkdir()
    (base / "b").mkdir()
    second = Ragexd(base / "b", RAGEX_WATCH="0", RAGEX_DATA_DIR=first.env["RAGEX_DATA_DIR"])
    root = write_tree(base / "project")
    try:
        first.start()
        second.start()
        one, two = first.client(), second.client()
        assert one.call(Op.INDEX, root, timeout=600, rebuild=False, paths=None).ok
        t0 = time.monotonic()
        reply = two.call(Op.SEARCH, root, 120, query="slugify", mode="symbol", limit=5)
        took = time.monotonic() - t0
        assert not reply.ok and reply.error.code is ErrorCode.INDEX_LOCKED, reply
        assert "in use by another ragex worker" in reply.error.message
        reply = two.call(Op.INDEX, root, timeout=120, rebuild=False, paths=None)
        assert not reply.ok and reply.error.code is ErrorCode.INDEX_LOCKED, reply
        assert one.call(Op.SEARCH, root, 60, query="slugify", mode="symbol", limit=5).ok
        figure("O1", f"second ragexd refused with index_locked in {took:.1f} s", seconds=took)
        # once the owner is gone, the other ragexd's worker takes the index over
        first.terminate()
        reply = two.call(Op.SEARCH, root, 120, query="slugify", mode="symbol", limit=5)
        assert reply.ok and reply.result["hits"], reply
    finally:
        first.cleanup()
        second.cleanup()
