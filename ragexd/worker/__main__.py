"""``python -m ragexd.worker serve|oneshot …`` — see ragexd/worker/__init__.py."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from ..logformat import PrintableFormatter
from ..modelfiles import stay_offline

# Set before anything can import huggingface/transformers: nothing may download
# weights at run time, and chromadb must not phone home.
stay_offline()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ragexd.worker",
                                     description="ragex per-project worker")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve one project over ZeroMQ until stopped")
    serve.add_argument("--root", required=True, type=Path)
    serve.add_argument("--index-dir", required=True, type=Path)
    serve.add_argument("--endpoint", required=True, help="ipc:// endpoint to bind")
    serve.add_argument("--project-id", default="")
    serve.add_argument("--no-watch", action="store_true", help="no live re-indexing on save")
    serve.add_argument("--base", type=Path, default=None,
                       help="[index] base: a snapshot (or a directory of them) to start from")
    serve.add_argument("--orphan-timeout", type=float, default=60.0,
                       help="exit after this many seconds without any message (0 = never)")
    one = sub.add_parser("oneshot", help="answer one JSON request from stdin, then exit")
    one.add_argument("--root", required=True, type=Path)
    one.add_argument("--index-dir", required=True, type=Path)
    one.add_argument("--base", type=Path, default=None,
                     help="[index] base: a snapshot (or a directory of them) to start from")
    args = parser.parse_args(argv)

    handler = logging.StreamHandler(sys.stderr)     # into the worker's log file
    handler.setFormatter(PrintableFormatter(
        "%(asctime)s worker[%(process)d] %(levelname)s %(message)s"))
    logging.basicConfig(level=os.environ.get("RAGEX_LOG_LEVEL", "info").upper(),
                        handlers=[handler])
    root = Path(os.path.realpath(args.root))
    if not root.is_dir():
        # through the log's handler: a root's name is escaped like every log line
        logging.getLogger("ragex.worker").error("project root %s is not a directory", root)
        return 2

    if args.command == "oneshot":
        from .oneshot import run_oneshot

        # Keep stdout for protocol lines only: anything a library prints goes to stderr.
        out = sys.stdout
        sys.stdout = sys.stderr
        code = run_oneshot(root, args.index_dir, sys.stdin.read(), out, base=args.base)
        # the index is closed and the answer written: skip the interpreter's
        # teardown (freeing the model's objects), which the client would wait for
        logging.shutdown()
        sys.stderr.flush()
        os._exit(code)

    from .server import WorkerServer, install_signal_handlers
    from .service import WorkerService

    service = WorkerService(root, args.index_dir, args.project_id, watch=not args.no_watch,
                            base=args.base)
    server = WorkerServer(service, args.endpoint, orphan_timeout=args.orphan_timeout)
    install_signal_handlers(server)
    code = server.serve()
    # Skip interpreter teardown: garbage-collecting torch and chromadb objects
    # takes seconds, which ragexd would see as a worker slow to stop.  Everything
    # that matters (index writes, sockets) is already closed by serve().
    logging.shutdown()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
