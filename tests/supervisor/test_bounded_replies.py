"""Every answer fits the wire, and one that does not still ends its request.

Real ragexd, real worker processes, real sockets: a tree with thousands of
FIFOs (each skipped, each named in the index summary) used to make a worker
reply larger than MAX_MESSAGE_BYTES; ragexd dropped it and `ragexctl index`
waited 300 s for nothing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ragexd.protocol import MAX_MESSAGE_BYTES, ErrorCode, Op

from tests.harness import RagexInstance, write_tree

#: long names: the uncapped summary of this tree is ~6 MB, over the 4 MiB limit
FIFOS = 24_000
LONG = "p" * 200


def test_index_of_a_tree_with_thousands_of_skipped_fifos_answers_and_counts_them_all(rx) -> None:
    root = write_tree(rx.base / "fifos", files=4)
    pipes = root / "pipes"
    pipes.mkdir()
    for i in range(FIFOS):
        os.mkfifo(pipes / f"{LONG}_{i:05d}")
    assert FIFOS * len(f"pipes/{LONG}_00000") > MAX_MESSAGE_BYTES   # the old reply's size

    t0 = time.monotonic()
    r = rx.ctl("index", "--timeout", "120", cwd=root, timeout=240)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"{FIFOS} files skipped" in r.stdout
    listed = [line for line in r.stderr.splitlines() if line.startswith("ragexctl: skipped ")]
    assert len(listed) == 20
    assert f"... and {FIFOS - 20} more skipped" in r.stderr
    print(f"\n`ragexctl index` over {FIFOS} FIFOs answered in {took:.1f} s")

    j = rx.ctl("index", "--json", cwd=root, timeout=240)
    assert j.returncode == 0, j.stderr[-2000:]
    assert len(j.stdout) < MAX_MESSAGE_BYTES // 4
    assert f'"skipped_total": {FIFOS}' in j.stdout

    s = rx.ctl("status", cwd=root, timeout=60)
    assert f"and {FIFOS - 5} more (`ragexctl status --json` names the first 200)" \
        in s.stdout, s.stdout


def _worker_answering_index_with(rx, tmp_path: Path, padding: str) -> RagexInstance:
    """A ragexd whose workers (only they: ``python -m ragexd.worker serve``) answer
    INDEX with a summary padded by ``padding`` (an expression of ``request_id``)."""
    fake = tmp_path / "bigreply"
    fake.mkdir()
    (fake / "sitecustomize.py").write_text(
        "import sys\n"
        "if 'serve' in sys.argv:\n"
        "    from ragexd.worker import service\n"
        "    from ragexd.protocol import MAX_MESSAGE_BYTES, Reply\n"
        "    from ragexd.protocol.frames import encode_body\n"
        "    def index(self, request_id, args, progress=None):\n"
        f"        return {{'summary': {{'padding': {padding}}}}}\n"
        "    service.WorkerService.index = index\n")
    return RagexInstance(RAGEX_WATCH="0", PYTHONPATH=str(fake) + os.pathsep
                         + rx.env.get("PYTHONPATH", ""))


def test_an_answer_that_outgrows_the_limit_on_its_way_to_the_client_is_a_coded_error(
        rx, tmp_path: Path) -> None:
    """A worker answer just under the limit under ragexd's short id grows past it
    under the client's longer one: ragexctl (whose socket drops anything over the
    limit) hears too_large instead of waiting."""
    fits = ("'x' * (MAX_MESSAGE_BYTES - len(encode_body(Reply(id=request_id, ok=True, "
            "result={'summary': {'padding': ''}}))))")
    big = _worker_answering_index_with(rx, tmp_path, fits)
    try:
        big.start()
        root = write_tree(big.base / "proj", files=4)
        t0 = time.monotonic()
        r = big.ctl("index", "--timeout", "60", cwd=root, timeout=240)
        assert r.returncode == 2, (r.stdout[-300:], r.stderr[-2000:])
        assert "exceeds the" in r.stderr and "message limit" in r.stderr, r.stderr[-2000:]
        assert time.monotonic() - t0 < 50
    finally:
        big.cleanup()


def test_a_worker_reply_over_the_limit_is_a_coded_error_not_a_wait(rx, tmp_path: Path) -> None:
    """A worker whose INDEX answer is 5 MB (a bug): the client hears too_large at once."""
    big = _worker_answering_index_with(rx, tmp_path, "'x' * (5 << 20)")
    try:
        big.start()
        root = write_tree(big.base / "proj", files=4)
        client = big.client()
        t0 = time.monotonic()
        reply = client.call(Op.INDEX, root, timeout=120, rebuild=False, paths=None)
        assert not reply.ok and reply.error is not None
        assert reply.error.code is ErrorCode.TOO_LARGE, reply.error
        assert f"over the {MAX_MESSAGE_BYTES}-byte limit" in reply.error.message
        took = time.monotonic() - t0
        assert took < 100
        print(f"\na 5 MB worker answer reached the client as too_large in {took:.1f} s")
        # the worker still serves
        again = client.search(root, "compute_invoice_total", mode="symbol")
        assert again.ok, again.error

        r = big.ctl("index", cwd=root, timeout=240)
        assert r.returncode == 2 and "byte limit" in r.stderr and "Traceback" not in r.stderr
    finally:
        big.cleanup()
