"""A real Chroma server for the shared-store tests and benchmarks.

``ChromaServer`` runs ``chroma run`` (the binary the chromadb package installs
beside this interpreter) on 127.0.0.1 at a free port, its data in a directory
of its own, offline (telemetry off), and waits for its heartbeat; ``kill()``
is a real SIGKILL, ``start()`` again brings it back on the same port and data.

``TokenGate`` stands in front of it the way a team puts a reverse proxy (nginx,
Caddy) in front of ``chroma run``, whose open-source server checks no token:
it forwards every request whose ``Authorization: Bearer`` matches, and answers
401 otherwise.  Given a server-side ``ssl.SSLContext`` it also terminates TLS,
as such a proxy does (``tests/harness/tls.py`` makes the certificates); with
``token=None`` it checks no token.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .env import short_tmp

CHROMA = Path(sys.executable).parent / "chroma"


def free_port() -> int:
    """A TCP port nobody listens on right now (on 127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ChromaServer:
    """One ``chroma run --path DIR --host 127.0.0.1 --port PORT``."""

    def __init__(self, path: Path | None = None, port: int | None = None) -> None:
        self.base = short_tmp("rx-chroma-")
        self.path = path or self.base / "db"
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.base / "chroma.log"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def store_env(self, role: str = "reader", **more: str) -> dict[str, str]:
        """The ``RAGEX_STORE_*`` environment of a ragex user of this server."""
        return {"RAGEX_STORE_BACKEND": "chroma-http", "RAGEX_STORE_HOST": self.host,
                "RAGEX_STORE_PORT": str(self.port), "RAGEX_STORE_ROLE": role, **more}

    def start(self, timeout: float = 60.0) -> "ChromaServer":
        if not CHROMA.exists():
            raise RuntimeError(f"{CHROMA} is missing: the chromadb package installs it")
        env = dict(os.environ, ANONYMIZED_TELEMETRY="False", NO_COLOR="1")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(CHROMA), "run", "--path", str(self.path), "--host", self.host,
                 "--port", str(self.port)], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chroma run exited {self.proc.returncode}:\n"
                                   f"{self.log.read_text(errors='replace')[-3000:]}")
            if self.alive():
                return self
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"chroma run did not answer within {timeout} s:\n"
                           f"{self.log.read_text(errors='replace')[-3000:]}")

    def alive(self) -> bool:
        try:
            return "nanosecond heartbeat" in self.get("/api/v2/heartbeat")
        except (OSError, http.client.HTTPException, ValueError):
            return False

    def kill(self) -> None:
        """SIGKILL, as a crash or a pulled cable would stop it."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> "ChromaServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- looking inside, for assertions ------------------------------------------------

    def get(self, path: str) -> Any:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return json.loads(resp.read() or b"null")
        finally:
            conn.close()

    def collections(self) -> dict[str, int]:
        """Every collection's name and vector count."""
        base = "/api/v2/tenants/default_tenant/databases/default_database/collections"
        return {c["name"]: int(self.get(f"{base}/{c['id']}/count"))
                for c in self.get(base)}


class TokenGate:
    """A bearer-token-checking (and TLS-terminating) reverse proxy to ``upstream``
    (see the module docstring)."""

    def __init__(self, upstream: ChromaServer, token: str | None,
                 tls: ssl.SSLContext | None = None) -> None:
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if (gate.token is not None
                        and self.headers.get("Authorization") != f"Bearer {gate.token}"):
                    gate.refused += 1
                    self._answer(401, b'{"error":"Unauthorized"}')
                    return
                conn = http.client.HTTPConnection(upstream.host, upstream.port, timeout=30)
                try:
                    conn.request(self.command, self.path, body=body or None,
                                 headers={"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    gate.forwarded += 1
                    self._answer(resp.status, resp.read())
                finally:
                    conn.close()

            def _answer(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _forward

        self.token = token
        self.refused = 0
        self.forwarded = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:   # a client refusing the certificate fails accept(): ignored
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.host = "127.0.0.1"
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "TokenGate":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
