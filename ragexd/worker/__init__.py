"""The per-project worker: one long-lived process that keeps the engine warm.

It loads the embedding model and the index once, then serves searches and
index runs over ZeroMQ (``server.py``) for as long as ragexd keeps it.  The
same request handling (``service.py``) also runs one-shot (``oneshot.py``)
for ``ragexctl --no-daemon``.

    python -m ragexd.worker serve --root R --index-dir D --endpoint ipc://…/worker.sock
    python -m ragexd.worker oneshot --root R --index-dir D < request.json
"""
