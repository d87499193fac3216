"""The shared vector store: two ragex users (two homes, two ragexd) and one real
``chroma run`` server on 127.0.0.1.

The writer (CI) indexes a tree and publishes its vectors; a reader indexing the
same tree takes them instead of embedding, embeds only its own edits, and gets
the same answers.  A server that is dead, stalled, on the wrong port or refusing
the token costs the reader nothing but the notice that says so: its index is
built locally, complete, and searches answer at local speed.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import (ChromaServer, PrivateEnv, TokenGate, make_project, short_tmp,
                           write, write_corpus)
from tests.harness.chroma import free_port

QUERY = "turn an article title into a url slug"


def _tree(root: Path) -> Path:
    """A small real project: the sample functions plus a generated corpus."""
    make_project(root)
    write_corpus(root / "corpus", files=4, funcs=6)
    return root


def _index(user: PrivateEnv, root: Path) -> tuple[dict[str, Any], str]:
    """``ragexctl index --json``: (its summary, its stderr)."""
    out = user.ctl("index", "--json", str(root), timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


def _search(user: PrivateEnv, root: Path, query: str = QUERY,
            timeout: float = 120) -> tuple[list[tuple[str, int]], str, float]:
    """``ragexctl search --json --mode semantic``: ((path, line) of each hit, stderr,
    seconds it took)."""
    t0 = time.monotonic()
    out = user.ctl("search", "--json", "--mode", "semantic", "--project", str(root), query,
                   timeout=timeout)
    took = time.monotonic() - t0
    assert out.returncode in (0, 1), out.stderr
    hits = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    return [(h["path"], h["line"]) for h in hits], out.stderr, took


@pytest.fixture
def users() -> Iterator[list[PrivateEnv]]:
    """Users made by a test (``users.append``), each stopped and removed afterwards."""
    made: list[PrivateEnv] = []
    yield made
    for user in made:
        user.cleanup()


@pytest.fixture(scope="module")
def published() -> Iterator[tuple[ChromaServer, Path, dict[str, Any]]]:
    """A server to which a writer (CI) published a tree's vectors: (server, the
    writer's tree, the writer's index summary)."""
    base = short_tmp()
    server = ChromaServer().start()
    ci = PrivateEnv(**server.store_env("writer"))
    try:
        root = _tree(base / "ci" / "project")
        summary, _ = _index(ci, root)
        yield server, root, summary
    finally:
        ci.cleanup()
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_the_writer_publishes_every_vector_it_embeds(published) -> None:
    server, _, summary = published
    assert summary["chunks_embedded"] > 20 and summary["chunks_shared"] == 0
    counts = server.collections()
    assert len(counts) == 1, counts
    assert list(counts.values()) == [summary["chunks_embedded"]]


def test_a_second_user_embeds_nothing_the_writer_published_and_gets_the_same_answers(
        published, users) -> None:
    server, ci_root, ci_summary = published
    root = short_tmp() / "project"
    shutil.copytree(ci_root, root)      # a clone of the same repository, elsewhere
    user = PrivateEnv(**server.store_env("reader"))
    users.append(user)
    summary, err = _index(user, root)
    assert summary["chunks_embedded"] == 0, summary
    assert summary["chunks_shared"] == ci_summary["chunks_embedded"]
    assert "from the shared store" not in err     # --json: the summary is on stdout
    ci_user = PrivateEnv(**server.store_env("reader"))
    users.append(ci_user)
    _index(ci_user, ci_root)
    mine, _, _ = _search(user, root)
    theirs, _, _ = _search(ci_user, ci_root)
    assert mine and mine == theirs
    assert mine[0] == ("text/slug.py", 4)
    assert sum(server.collections().values()) == ci_summary["chunks_embedded"], \
        "a reader must not write to the shared store"


def test_a_teammate_on_another_context_recipe_takes_none_of_the_published_vectors(
        published, users) -> None:
    """The collection is named after the embedder id, recipe included: a reader still
    on the recipe before the sixth round's (``context+path``) embeds every chunk
    itself rather than mixing the writer's vectors (the default recipe's) into its index."""
    server, ci_root, ci_summary = published
    root = short_tmp() / "project"
    shutil.copytree(ci_root, root)
    user = PrivateEnv(**server.store_env("reader", RAGEX_CONTEXT_VARIANT="context+path"))
    users.append(user)
    summary, _ = _index(user, root)
    assert summary["chunks_shared"] == 0, summary
    assert summary["chunks_embedded"] == ci_summary["chunks_embedded"]
    assert list(server.collections().values()) == [ci_summary["chunks_embedded"]]


def test_a_readers_local_edit_is_the_only_thing_it_embeds(published, users) -> None:
    server, ci_root, ci_summary = published
    root = short_tmp() / "project"
    shutil.copytree(ci_root, root)
    write(root / "net" / "retry.py", '''
        import time


        def retry_with_jitter(fn, attempts=7):
            """Call fn again after failures, sleeping a random jittered delay."""
            for _ in range(attempts):
                try:
                    return fn()
                except OSError:
                    time.sleep(0.1)
            raise RuntimeError("gave up")
        ''')
    user = PrivateEnv(**server.store_env("reader"))
    users.append(user)
    summary, _ = _index(user, root)
    assert summary["chunks_embedded"] == 1, summary          # the edited function only
    assert summary["chunks_shared"] == ci_summary["chunks_embedded"] - 1
    hits, _, _ = _search(user, root, "retry after a random jittered sleep")
    assert hits[0] == ("net/retry.py", 4)


def test_a_wrong_port_is_a_sentence_and_the_index_is_built_locally(users) -> None:
    root = _tree(short_tmp() / "project")
    port = free_port()
    user = PrivateEnv(RAGEX_STORE_BACKEND="chroma-http", RAGEX_STORE_HOST="127.0.0.1",
                      RAGEX_STORE_PORT=str(port))
    users.append(user)
    out = user.ctl("index", str(root), timeout=600)
    assert out.returncode == 0, out.stderr
    assert f"the shared vector store at http://127.0.0.1:{port} cannot be reached" in out.stderr
    assert "check [store] host and port" in out.stderr
    hits, err, _ = _search(user, root)
    assert hits[0] == ("text/slug.py", 4)
    assert "shared vectors unavailable" in err
    status = user.ctl("status").stdout
    assert f"shared store of {root}: http://127.0.0.1:{port}" in status, status
    assert "(reader): the shared vector store" in status and "cannot be reached" in status


def test_a_refused_token_is_a_sentence_naming_the_setting(published, users) -> None:
    server, ci_root, ci_summary = published
    with TokenGate(server, token="s3cret") as gate:
        env = {**server.store_env("reader"), "RAGEX_STORE_PORT": str(gate.port),
               "RAGEX_STORE_TOKEN_ENV": "TEAM_CHROMA_TOKEN"}
        wrong = PrivateEnv(**env, TEAM_CHROMA_TOKEN="guessed")
        right = PrivateEnv(**env, TEAM_CHROMA_TOKEN="s3cret")
        users.extend([wrong, right])
        out = wrong.ctl("index", str(ci_root), timeout=600)
        assert out.returncode == 0, out.stderr
        assert "refused ragex's token (HTTP 401); check [store] token_env" in out.stderr
        assert gate.refused >= 1
        summary, _ = _index(right, ci_root)
        assert summary["chunks_embedded"] == 0
        assert summary["chunks_shared"] == ci_summary["chunks_embedded"]


def test_a_bad_store_setting_is_refused_with_a_sentence_and_exit_2(users) -> None:
    user = PrivateEnv(RAGEX_STORE_ROLE="boss")
    users.append(user)
    out = user.ctl("status")
    assert out.returncode == 2
    assert "RAGEX_STORE_ROLE" in out.stderr and "reader, writer" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_stalled_server_costs_one_timeout_and_the_index_is_built_locally(users) -> None:
    """A server that accepts connections and never answers (a hung process, a
    black-holing proxy): the index waits [store] timeout once, then embeds locally."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        hole.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(hole.accept()[0])
            except OSError:
                continue

    threading.Thread(target=accept, daemon=True).start()
    try:
        root = _tree(short_tmp() / "project")
        local = PrivateEnv()
        users.append(local)
        t0 = time.monotonic()
        _index(local, root)
        alone = time.monotonic() - t0
        root2 = short_tmp() / "project"
        shutil.copytree(root, root2)
        user = PrivateEnv(RAGEX_STORE_BACKEND="chroma-http", RAGEX_STORE_HOST="127.0.0.1",
                          RAGEX_STORE_PORT=str(hole.getsockname()[1]),
                          RAGEX_STORE_TIMEOUT="1s")
        users.append(user)
        t0 = time.monotonic()
        out = user.ctl("index", str(root2), timeout=600)
        took = time.monotonic() - t0
        assert out.returncode == 0, out.stderr
        assert "did not answer within 1 s ([store] timeout)" in out.stderr
        assert took < alone + 15, (took, alone)   # one timeout, not one per batch
        hits, _, _ = _search(user, root2)
        assert hits[0] == ("text/slug.py", 4)
    finally:
        stop.set()
        hole.close()
        for s in held:
            s.close()


def test_the_server_killed_mid_index_leaves_a_complete_index_and_searches_stay_local() -> None:
    """Killed (SIGKILL) after the reader's first batch came from it: the rest is
    embedded locally, the summary says why, nothing is missing, and searches
    with the server gone answer at once with the writer's answers."""
    from ragexd.engine import Engine
    from ragexd.engine.shared_store import StoreConfig
    from ragexd.engine.types import SearchQuery

    base = short_tmp()
    root = _tree(base / "project")
    write_corpus(root / "more", files=12, funcs=12)      # > one embedding batch
    engines: list[Engine] = []
    try:
        with ChromaServer() as server:
            conf = StoreConfig(server.host, server.port, role="writer")
            writer = Engine(root, base / "ci-index", store=conf)
            engines.append(writer)
            total = writer.index().chunks_embedded
            reader = Engine(root, base / "my-index",
                            store=StoreConfig(server.host, server.port, role="reader"))
            engines.append(reader)

            def kill_after_first_batch(p: Any) -> None:
                if p.phase == "embedding" and server.proc is not None:
                    server.kill()

            summary = reader.index(progress=kill_after_first_batch)
            assert not server.alive()
        assert 0 < summary.chunks_shared < total, summary
        assert summary.chunks_shared + summary.chunks_embedded == total
        assert any("cannot be reached" in n for n in summary.notes), summary.notes
        cov = reader.coverage()
        assert cov.complete and cov.chunks_embedded == cov.chunks_indexed == total
        query = SearchQuery(QUERY, mode="semantic")
        t0 = time.monotonic()
        outcome = reader.search(query)
        took = time.monotonic() - t0
        assert took < 2.0, took
        assert any("shared vectors unavailable" in n for n in outcome.notes), outcome.notes
        mine = [(h.path, h.line, round(h.score, 4)) for h in outcome.hits]
        theirs = [(h.path, h.line, round(h.score, 4)) for h in writer.search(query).hits]
        assert mine == theirs and mine[0][:2] == ("text/slug.py", 4)
    finally:
        for engine in engines:
            engine.close()
        shutil.rmtree(base, ignore_errors=True)


# --- the store itself, against a real server, without the model --------------------

def _store(server: ChromaServer, role: str, dim: int = 4) -> Any:
    from ragexd.engine.shared_store import SharedStore, StoreConfig

    return SharedStore(StoreConfig(server.host, server.port, role=role,
                                   repository="unit"), Path("/nonexistent"), "test-embedder",
                       dim)


def test_a_reader_never_creates_the_collection_and_gets_repeated_texts() -> None:
    import numpy as np

    with ChromaServer() as server:
        reader, writer = _store(server, "reader"), _store(server, "writer")
        try:
            assert reader.fetch(["def a(): pass"]) == {}
            reader.publish(["def a(): pass"], np.ones((1, 4), dtype=np.float32))
            assert server.collections() == {} and reader.problem() is None
            texts = ["def a(): pass", "def b(): pass", "def a(): pass"]
            vecs = np.arange(12, dtype=np.float32).reshape(3, 4)
            writer.publish(texts, vecs)
            assert writer.problem() is None, writer.problem()
            assert list(server.collections().values()) == [2]
            reader._absent_until = 0.0    # do not wait RETRY_AFTER for the collection
            got = reader.fetch(texts + ["def c(): pass"])
            assert sorted(got) == [0, 1, 2]
            assert got[0].tolist() == got[2].tolist() == vecs[0].tolist()
            assert got[1].tolist() == vecs[1].tolist()
        finally:
            reader.close()
            writer.close()


def test_vectors_of_another_dimension_on_the_server_are_misses_not_stored() -> None:
    import numpy as np

    with ChromaServer() as server:
        wrong, reader = _store(server, "writer", dim=3), _store(server, "reader", dim=4)
        try:
            wrong.publish(["def a(): pass"], np.ones((1, 3), dtype=np.float32))
            assert wrong.problem() is None
            assert reader.fetch(["def a(): pass"]) == {}
        finally:
            wrong.close()
            reader.close()


def test_a_server_vector_of_the_wrong_shape_or_type_is_a_miss_never_a_crash() -> None:
    """What a server hands back is not trusted: 384 one-element lists would
    otherwise pass a length check and give a new index vectors of dimension 1."""
    from ragexd.engine.shared_store import SharedStore, StoreConfig

    store = SharedStore(StoreConfig("127.0.0.1", 9, repository="unit"), Path("/nonexistent"),
                        "test-embedder", 4)
    assert store._valid([[0.1]] * 4) is None
    assert store._valid(["a", "b", "c", "d"]) is None
    assert store._valid([{}, {}, {}, {}]) is None
    assert store._valid([0.1, 0.2, float("nan"), 0.4]) is None
    assert store._valid([0.1, 0.2, 0.3, 0.4]).shape == (4,)


def test_an_answer_without_a_collection_id_is_a_sentence_not_a_key_error() -> None:
    from ragexd.engine.shared_store import SharedStore, StoreConfig, StoreUnavailable

    store = SharedStore(StoreConfig("127.0.0.1", 9, repository="unit"), Path("/nonexistent"),
                        "test-embedder", 4)
    for answer in ({}, {"id": 3}, ["x"], None):
        with pytest.raises(StoreUnavailable, match="without a collection id"):
            store._collection_id_of(answer)


# --- over TLS: a team's server behind a TLS-terminating proxy with its own CA ------

@pytest.fixture(scope="module")
def team_ca() -> Iterator[Any]:
    """A certificate authority of the team's own, which no system trust store holds."""
    from tests.harness.tls import ThrowawayCA

    base = short_tmp("rx-ca-")
    yield ThrowawayCA(base)
    shutil.rmtree(base, ignore_errors=True)


def _tls_env(server: ChromaServer, gate: TokenGate, host: str, **more: str) -> dict[str, str]:
    """A reader of ``server`` through ``gate``'s HTTPS port, by ``host``."""
    return {**server.store_env("reader"), "RAGEX_STORE_HOST": host,
            "RAGEX_STORE_PORT": str(gate.port), "RAGEX_STORE_SSL": "true", **more}


def test_with_the_teams_ca_file_a_reader_gets_the_writers_vectors_over_tls(
        published, team_ca, users) -> None:
    server, ci_root, ci_summary = published
    tls = team_ca.server_context(["localhost", "127.0.0.1"])
    with TokenGate(server, token=None, tls=tls) as gate:
        user = PrivateEnv(**_tls_env(server, gate, "localhost",
                                     RAGEX_STORE_CA_FILE=str(team_ca.ca_file)))
        users.append(user)
        summary, err = _index(user, ci_root)
        assert summary["chunks_embedded"] == 0, (summary, err)
        assert summary["chunks_shared"] == ci_summary["chunks_embedded"]
        assert gate.forwarded >= 2            # the collection, then its vectors: over TLS
        hits, err, _ = _search(user, ci_root)
        assert hits[0] == ("text/slug.py", 4) and "unavailable" not in err
        status = json.loads(user.ctl("status", "--json").stdout)
        store = next(w["index"]["store"] for w in status["workers"]
                     if (w.get("index") or {}).get("store"))
        assert store["url"] == f"https://localhost:{gate.port}"
        assert store["ca_file"] == str(team_ca.ca_file) and store["problem"] == ""


def test_without_the_ca_file_the_certificate_is_refused_and_the_index_is_built_locally(
        published, team_ca, users) -> None:
    """The system's trust store does not hold a team's CA: the handshake fails, the
    reader gets not one vector from a server it cannot authenticate, embeds
    everything itself, and says once what to set."""
    server, ci_root, ci_summary = published
    with TokenGate(server, token=None, tls=team_ca.server_context(["127.0.0.1"])) as gate:
        user = PrivateEnv(**_tls_env(server, gate, "127.0.0.1"))
        users.append(user)
        out = user.ctl("index", str(ci_root), timeout=600)
        assert out.returncode == 0, out.stderr
        notice = (f"the shared vector store at https://127.0.0.1:{gate.port} presented a "
                  "certificate ragex does not trust")
        assert out.stderr.count(notice) == 1, out.stderr
        assert "set [store] ca_file to that CA's PEM file" in out.stderr
        assert "Traceback" not in out.stderr + out.stdout
        assert gate.forwarded == 0
        assert f"{ci_summary['chunks_total']} chunks" in out.stdout, out.stdout
        assert "from the shared store" not in out.stdout    # every one embedded here
        hits, err, _ = _search(user, ci_root)
        assert hits[0] == ("text/slug.py", 4)
        assert "shared vectors unavailable" in err and "[store] ca_file" in err
        assert "[store] ca_file" in user.ctl("status").stdout


# The store itself over TLS, without the model: each failure names its fix.

def _tls_store(port: int, ca_file: Path | None, host: str = "127.0.0.1",
               ssl: bool = True) -> Any:
    from ragexd.engine.shared_store import SharedStore, StoreConfig

    return SharedStore(StoreConfig(host, port, ssl=ssl, ca_file=str(ca_file or ""),
                                   repository="unit"), Path("/nonexistent"),
                       "test-embedder", 4)


def _fetch_problem(store: Any) -> str:
    """What a reader's fetch leaves as the problem (the fetch itself never raises)."""
    try:
        assert store.fetch(["def a(): pass"]) == {}
        return store.problem() or ""
    finally:
        store.close()


def test_a_certificate_for_another_host_name_is_refused_even_from_the_trusted_ca(
        team_ca) -> None:
    with ChromaServer() as server, TokenGate(
            server, token=None, tls=team_ca.server_context(["chroma.other.example"])) as gate:
        problem = _fetch_problem(_tls_store(gate.port, team_ca.ca_file))
        assert "presented a certificate for another host name" in problem, problem
        assert "set [store] host to a name the certificate is for" in problem
        assert gate.forwarded == 0


def test_a_self_signed_server_certificate_is_trusted_when_it_is_the_ca_file(team_ca) -> None:
    """No CA at all: the server's own certificate is what a user gives as ca_file."""
    import numpy as np

    cert_file, tls = team_ca.self_signed(["127.0.0.1"])
    with ChromaServer() as server, TokenGate(server, token=None, tls=tls) as gate:
        writer = _store(server, "writer")
        writer.publish(["def a(): pass"], np.ones((1, 4), dtype=np.float32))
        writer.close()
        reader = _tls_store(gate.port, cert_file)
        try:
            assert list(reader.fetch(["def a(): pass"])) == [0], reader.problem()
            assert gate.forwarded >= 2
        finally:
            reader.close()
        assert "does not trust" in _fetch_problem(_tls_store(gate.port, team_ca.ca_file))


def test_a_ca_file_of_another_authority_is_named_as_what_to_check(team_ca) -> None:
    from tests.harness.tls import ThrowawayCA

    other = ThrowawayCA(short_tmp("rx-ca-"), name="someone else's CA")
    with ChromaServer() as server, TokenGate(
            server, token=None, tls=team_ca.server_context(["127.0.0.1"])) as gate:
        problem = _fetch_problem(_tls_store(gate.port, other.ca_file))
        assert f"check that the CA bundle {other.ca_file} ([store] ca_file) holds" in problem
        assert gate.forwarded == 0
    shutil.rmtree(other.directory, ignore_errors=True)


def test_https_to_a_plain_port_and_http_to_a_tls_port_name_the_ssl_setting(team_ca) -> None:
    with ChromaServer() as server, TokenGate(
            server, token=None, tls=team_ca.server_context(["127.0.0.1"])) as gate:
        https_to_plain = _fetch_problem(_tls_store(server.port, team_ca.ca_file))
        assert "failed the TLS handshake" in https_to_plain, https_to_plain
        assert "[store] ssl" in https_to_plain
        http_to_tls = _fetch_problem(_tls_store(gate.port, None, ssl=False))
        assert "if it speaks HTTPS there, set [store] ssl = true" in http_to_tls, http_to_tls


def test_nginxs_answer_to_plain_http_on_its_https_port_names_the_ssl_setting() -> None:
    """nginx answers plain HTTP on a TLS port with a 400 page, not a dropped connection."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Nginx(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            page = b"<html><center>The plain HTTP request was sent to HTTPS port</center></html>"
            self.send_response(400)
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        do_POST = do_GET

    server = ThreadingHTTPServer(("127.0.0.1", 0), Nginx)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        problem = _fetch_problem(_tls_store(server.server_address[1], None, ssl=False))
        assert "answered HTTP 400" in problem and "set [store] ssl = true" in problem, problem
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("setting,says", [
    ({"RAGEX_STORE_CA_FILE": "/nonexistent/team-ca.pem"},
     "bad configuration: RAGEX_STORE_CA_FILE: cannot read the "
     "CA bundle /nonexistent/team-ca.pem: No such file or directory"),
    ({"RAGEX_STORE_CA_FILE": "team-ca.pem"}, "expected an absolute path"),
    ({"RAGEX_STORE_CA_FILE": "NOT-PEM"}, "holds no PEM certificate"),
    ({"RAGEX_STORE_CA_FILE": "CA", "RAGEX_STORE_SSL": "false"},
     "but [store] ssl is false: set ssl = true"),
])
def test_a_bad_ca_file_is_refused_at_config_load_with_a_sentence_and_exit_2(
        setting: dict[str, str], says: str, team_ca, users) -> None:
    junk = short_tmp("rx-ca-") / "junk.pem"
    junk.write_text("not a certificate\n")
    env = {k: {"NOT-PEM": str(junk), "CA": str(team_ca.ca_file)}.get(v, v)
           for k, v in setting.items()}
    user = PrivateEnv(**{"RAGEX_STORE_BACKEND": "chroma-http", "RAGEX_STORE_SSL": "true",
                         **env})
    users.append(user)
    out = user.ctl("status")
    assert out.returncode == 2, out
    assert says in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    shutil.rmtree(junk.parent, ignore_errors=True)
