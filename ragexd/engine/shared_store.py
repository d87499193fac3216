"""A team's shared vectors on a Chroma server (``[store] backend = "chroma-http"``).

Embedding is what makes a first index slow (minutes for a large tree on a
laptop); every other part of it (reading, chunking, the catalog, FTS) takes
seconds.  So the shared store shares only vectors, and the local index stays
whole: each worker still keeps its own catalog, FTS, symbols *and* its own copy
of every vector, and queries stay local and exact.  A query never waits on the
network, and a server that is down costs a search nothing.

**Keys.**  A vector is a pure function of the text embedded and the embedder,
so the shared store keys a vector by the sha256 of that text, in a collection
per (repository, embedder).  Unlike the local chunk ids (which include a
chunk's path and lines), such a key survives moves, line shifts and branches,
and cannot be wrong: whichever repository or user wrote it, the vector stored
under a text's hash is that text's vector.  (A writer is trusted to run the
same embedder: the collection is named after the embedder id, so an int8 index
never reads fp32 vectors.)  The repository names the collection only to keep
teams' stores apart: the configured ``[store] repository``, else the hash of
the git repository's first commit (the same for every clone), else ``shared``.

**Roles.**  A *reader* (every laptop) asks the server for the vectors of the
texts it is about to embed and embeds only the misses: its local edits, new
code.  A *writer* (CI) also upserts what it embedded.  A reader never creates
the collection: before CI has published one, every text is a miss.

**Failures.**  Every request has a short timeout (chromadb's own HTTP client
has none, so a stalled server would stall an index forever: that is why this
module speaks Chroma's REST API through httpx itself).  After a failure the
store is *unavailable* for ``RETRY_AFTER`` seconds: indexing embeds locally at
full speed meanwhile, and ``problem()`` gives the sentence that search notes,
index summaries and status carry.  Nothing local depends on the server, so
nothing local is lost.

**TLS.**  With ``[store] ssl`` the server's certificate is verified, host name
included, against ``[store] ca_file`` (a team's own certificate authority) or
the system's trust store; there is no switch to skip that, since a reader takes
the vectors it is handed as its index.  A certificate that fails is a sentence
naming the setting that fixes it, like every other failure.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ..config import Config

if TYPE_CHECKING:
    from ssl import SSLContext

    import numpy as np

log = logging.getLogger(__name__)

#: Seconds a failed server is left alone: indexing meanwhile embeds locally
#: without paying a timeout per batch.
RETRY_AFTER = 30.0
#: Connect timeout: a wrong port or a dead host must cost well under a second.
CONNECT_TIMEOUT = 1.0
#: The longest a writer's upload may take: CI waits for no one, and a loaded
#: server inserting into its HNSW graph can take seconds per batch (the reads a
#: laptop waits on keep ``[store] timeout``).
WRITE_TIMEOUT = 30.0
#: Ids per request (the server's default max batch is far above; the JSON of
#: 500 vectors of 384 floats is ~2 MB).
REQUEST_IDS = 500


@dataclass(frozen=True)
class StoreConfig:
    """Where the shared vectors live and how to reach them (from ``[store]``).
    Its defaults are ``Config``'s: the settings table is the one place for them."""

    host: str
    port: int
    ssl: bool = Config.store_ssl
    ca_file: str = Config.store_ca_file
    tenant: str = Config.store_tenant
    database: str = Config.store_database
    token_env: str = Config.store_token_env
    token_file: str = Config.store_token_file
    role: str = Config.store_role
    repository: str = Config.store_repository
    timeout: float = Config.store_timeout

    @classmethod
    def from_config(cls, cfg: "Config") -> "StoreConfig | None":
        """None for ``backend = "local"`` (the default): no shared store."""
        if cfg.store_backend != "chroma-http":
            return None
        return cls(host=cfg.store_host, port=cfg.store_port, ssl=cfg.store_ssl,
                   ca_file=cfg.store_ca_file,
                   tenant=cfg.store_tenant, database=cfg.store_database,
                   token_env=cfg.store_token_env, token_file=cfg.store_token_file,
                   role=cfg.store_role, repository=cfg.store_repository,
                   timeout=cfg.store_timeout)

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl else 'http'}://{self.host}:{self.port}"

    def token(self) -> str:
        """The auth token ('' for none); raises StoreUnavailable with a sentence
        when the configured source cannot be read."""
        if self.token_file:
            try:
                return Path(self.token_file).read_text().strip()
            except OSError as exc:
                raise StoreUnavailable(f"cannot read the token file {self.token_file} "
                                       f"([store] token_file): {exc.strerror or exc}") from None
        if self.token_env:
            value = os.environ.get(self.token_env, "").strip()
            if not value:
                raise StoreUnavailable(f"the environment variable {self.token_env} "
                                       "([store] token_env) is not set in ragexd's "
                                       "environment")
            return value
        return ""

    def trust(self) -> "SSLContext | None":
        """What verifies the server's certificate (None for plain HTTP): the CA
        bundle of ``[store] ca_file`` alone, else the system's trust store
        (OpenSSL's default paths, which ``SSL_CERT_FILE`` overrides).  Not httpx's
        default: that is certifi's public CAs, which never hold the private CA a
        company installs into its machines' trust store.  Verification, host
        name included, is never turned off.  Raises StoreUnavailable with a
        sentence when the bundle cannot be loaded."""
        if not self.ssl:
            return None
        import ssl

        try:
            return ssl.create_default_context(cafile=self.ca_file or None)
        except (OSError, ssl.SSLError) as exc:   # read at config load; since removed or bad
            raise StoreUnavailable(f"cannot load the CA bundle {self.ca_file} ([store] "
                                   f"ca_file): {getattr(exc, 'strerror', None) or exc}"
                                   ) from None


class StoreUnavailable(Exception):
    """The shared store cannot serve now; the message is a sentence for people."""


def text_key(text: str) -> str:
    """A vector's key in the shared store: the hash of the text embedded."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def repository_identity(root: Path) -> str:
    """The same for every clone of a git repository: its first commit (the
    lowest of several roots); ``shared`` outside git."""
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-list", "--max-parents=0", "HEAD"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "shared"
    roots = sorted(out.stdout.split()) if out.returncode == 0 else []
    return roots[0] if roots else "shared"


def collection_name(repository: str, embedder: str) -> str:
    """``ragex-<readable repository>-<hash of both>``: Chroma allows 3-512 of
    ``[a-zA-Z0-9._-]``, starting and ending alphanumeric."""
    readable = re.sub(r"[^a-zA-Z0-9]+", "-", repository).strip("-")[:40] or "repo"
    digest = hashlib.sha256(f"{repository}\0{embedder}".encode()).hexdigest()[:16]
    return f"ragex-{readable}-{digest}"


class SharedStore:
    """One project's view of the shared collection, used by the indexer's
    embedding thread (``fetch``, ``publish``) and read by any thread
    (``problem``, ``describe``)."""

    def __init__(self, conf: StoreConfig, root: Path, embedder: str, dim: int) -> None:
        self.conf = conf
        self.root = root
        self.embedder = embedder
        self.dim = dim
        self.repository = conf.repository or repository_identity(root)
        self.collection = collection_name(self.repository, embedder)
        self._lock = threading.Lock()
        self._client: Any = None
        self._collection_id: str | None = None
        self._problem: str | None = None
        self._retry_at = 0.0
        self._absent_until = 0.0   # a reader found no collection yet: ask again later
        #: counters for status: vectors taken from and given to the server
        self.fetched = 0
        self.published = 0

    # -- what others read --------------------------------------------------------

    def problem(self) -> str | None:
        """A sentence while the server is unavailable (None when it is fine)."""
        with self._lock:
            return self._problem

    def describe(self) -> dict[str, Any]:
        """For status: where, which collection, role, state."""
        return {"backend": "chroma-http", "url": self.conf.url,
                "ca_file": self.conf.ca_file, "tenant": self.conf.tenant,
                "database": self.conf.database, "collection": self.collection,
                "repository": self.repository, "role": self.conf.role,
                "problem": self.problem() or "", "fetched": self.fetched,
                "published": self.published}

    # -- the indexer's calls -------------------------------------------------------

    def fetch(self, texts: Sequence[str]) -> dict[int, "np.ndarray"]:
        """The shared vectors of ``texts`` the server has: {index in texts: vector}.
        Never raises: an unavailable server is a miss for everything."""
        import numpy as np

        if not texts or not self._ready(create=False):
            return {}
        keys = [text_key(t) for t in texts]
        where: dict[str, list[int]] = {}
        for i, k in enumerate(keys):
            where.setdefault(k, []).append(i)
        found: dict[int, np.ndarray] = {}
        try:
            unique = list(where)
            for i in range(0, len(unique), REQUEST_IDS):
                got = self._post(f"{self._collection_path()}/get",
                                 {"ids": unique[i:i + REQUEST_IDS], "include": ["embeddings"]})
                for key, emb in zip(got.get("ids") or [], got.get("embeddings") or []):
                    vec = self._valid(emb)
                    if vec is not None:
                        for j in where.get(key, ()):
                            found[j] = vec
        except StoreUnavailable as exc:
            self._failed(str(exc))
            return {}
        self.fetched += len(found)
        return found

    def publish(self, texts: Sequence[str], vectors: "np.ndarray") -> None:
        """A writer's upsert of what it embedded; a reader's is a no-op."""
        if self.conf.role != "writer" or not len(texts) or not self._ready(create=True):
            return
        first: dict[str, int] = {}   # one id once: chromadb's own client refuses repeats
        for i, t in enumerate(texts):
            first.setdefault(text_key(t), i)
        keys, rows = list(first), list(first.values())
        try:
            for i in range(0, len(keys), REQUEST_IDS):
                part = rows[i:i + REQUEST_IDS]
                self._post(f"{self._collection_path()}/upsert",
                           {"ids": keys[i:i + REQUEST_IDS],
                            "embeddings": vectors[part].astype("float32").tolist()},
                           timeout=max(WRITE_TIMEOUT, self.conf.timeout))
        except StoreUnavailable as exc:
            self._failed(str(exc))
            return
        self.published += len(keys)

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # -- internals -------------------------------------------------------------------

    def _valid(self, emb: Any) -> "np.ndarray | None":
        """A vector of our dimension with finite values (a server is not trusted
        to hand back what the indexer could store)."""
        import numpy as np

        if not isinstance(emb, list) or len(emb) != self.dim:
            return None
        try:   # strings, nested lists, dicts: a miss, never a crash or a wrong shape
            vec = np.asarray(emb, dtype=np.float32)
        except (TypeError, ValueError):
            return None
        return vec if vec.shape == (self.dim,) and bool(np.isfinite(vec).all()) else None

    def _ready(self, create: bool) -> bool:
        """Connected and the collection known; False (quietly) while unavailable
        or while a reader's collection does not exist yet."""
        now = time.monotonic()
        with self._lock:
            if self._problem is not None and now < self._retry_at:
                return False
            if self._collection_id is not None:
                return True
            if not create and now < self._absent_until:
                return False
        try:
            cid = self._resolve(create)
        except StoreUnavailable as exc:
            self._failed(str(exc))
            return False
        with self._lock:
            if self._problem is not None:
                log.info("the shared vector store at %s answers again", self.conf.url)
            self._problem = None
            if cid is None:
                self._absent_until = now + RETRY_AFTER
                return False
            self._collection_id = cid
            return True

    def _resolve(self, create: bool) -> str | None:
        """The collection's id; a reader gets None when nobody published one yet."""
        base = f"/api/v2/tenants/{self.conf.tenant}/databases/{self.conf.database}/collections"
        if create:
            got = self._post(base, {"name": self.collection, "get_or_create": True,
                                    "metadata": {"repository": self.repository,
                                                 "embedder": self.embedder,
                                                 "written_by": "ragex"}})
            return self._collection_id_of(got)
        got = self._request("GET", f"{base}/{self.collection}", None, missing_ok=True)
        return None if got is None else self._collection_id_of(got)

    def _collection_id_of(self, got: Any) -> str:
        if not isinstance(got, dict) or not isinstance(got.get("id"), str):
            raise StoreUnavailable(f"the shared vector store at {self.conf.url} answered "
                                   "without a collection id: is it a Chroma server?")
        return got["id"]

    def _collection_path(self) -> str:
        return (f"/api/v2/tenants/{self.conf.tenant}/databases/{self.conf.database}"
                f"/collections/{self._collection_id}")

    def _failed(self, why: str) -> None:
        with self._lock:
            first = self._problem is None
            self._problem = why
            self._retry_at = time.monotonic() + RETRY_AFTER
            self._collection_id = None   # the server may come back empty
        if first:
            log.warning("%s", why)

    def _session(self) -> Any:
        with self._lock:
            if self._client is None:
                import httpx

                headers = {"Content-Type": "application/json"}
                token = self.conf.token()   # may raise StoreUnavailable: a sentence
                if token:
                    headers["Authorization"] = f"Bearer {token}"
                    headers["X-Chroma-Token"] = token
                trust = self.conf.trust()   # likewise
                self._client = httpx.Client(base_url=self.conf.url, headers=headers,
                                            **({"verify": trust} if trust else {}))
            return self._client

    def _post(self, path: str, body: dict[str, Any],
              timeout: float | None = None) -> dict[str, Any]:
        got = self._request("POST", path, body, timeout=timeout)
        assert got is not None
        return got

    def _request(self, method: str, path: str, body: dict[str, Any] | None,
                 missing_ok: bool = False, timeout: float | None = None
                 ) -> dict[str, Any] | None:
        """One call with the configured timeouts; every failure becomes
        StoreUnavailable with a sentence naming the server and what to check."""
        import httpx

        where = f"the shared vector store at {self.conf.url}"
        client = self._session()
        limit = timeout or self.conf.timeout
        try:
            resp = client.request(method, path, json=body,
                                  timeout=httpx.Timeout(limit, connect=min(CONNECT_TIMEOUT,
                                                                           limit)))
        except httpx.TimeoutException:
            what = "[store] timeout" if timeout is None else "a writer's upload limit"
            raise StoreUnavailable(f"{where} did not answer within {limit:g} s ({what}); "
                                   "embedding locally") from None
        except httpx.HTTPError as exc:
            raise StoreUnavailable(_unreachable(where, exc, self.conf)) from None
        if resp.status_code in (401, 403):
            raise StoreUnavailable(f"{where} refused ragex's token (HTTP {resp.status_code}); "
                                   "check [store] token_env or token_file; embedding locally")
        if missing_ok and resp.status_code == 404:
            return None
        if resp.status_code >= 400:
            detail = resp.text.strip().replace("\n", " ")[:200]
            check = (_SSL_HINT   # nginx: "The plain HTTP request was sent to HTTPS port"
                     if not self.conf.ssl and resp.status_code == 400 and "HTTPS" in detail
                     else "check [store] tenant and database")
            raise StoreUnavailable(f"{where} answered HTTP {resp.status_code} ({detail}); "
                                   f"{check}; embedding locally")
        try:
            data = resp.json()
        except ValueError:
            raise StoreUnavailable(f"{where} answered something that is not JSON: is it a "
                                   "Chroma server? Embedding locally") from None
        if not isinstance(data, dict):
            raise StoreUnavailable(f"{where} answered an unexpected {type(data).__name__}; "
                                   "embedding locally")
        return data


#: The fix for plain HTTP sent to a server that speaks only HTTPS.
_SSL_HINT = "if it speaks HTTPS there, set [store] ssl = true"


def _unreachable(where: str, exc: Exception, conf: StoreConfig) -> str:
    """The sentence for a request that got no answer, naming the setting that
    fixes it: a certificate not trusted or for another host, a TLS handshake
    that fails (HTTPS to a plain HTTP port), or a server that is not there."""
    import ssl

    import httpx

    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, ssl.SSLCertVerificationError):
        why = cause.verify_message or str(cause)
        if "mismatch" in why:      # OpenSSL's "Hostname mismatch" / "IP address mismatch"
            return (f"{where} presented a certificate for another host name ({why}); set "
                    "[store] host to a name the certificate is for; embedding locally")
        if conf.ca_file:
            fix = (f"check that the CA bundle {conf.ca_file} ([store] ca_file) holds the "
                   "certificate authority that signed the server's certificate")
        else:
            fix = ("if the server's certificate comes from your team's own certificate "
                   "authority, set [store] ca_file to that CA's PEM file")
        return (f"{where} presented a certificate ragex does not trust ({why}); {fix}; "
                "embedding locally")
    if cause is not None:
        return (f"{where} failed the TLS handshake ({cause.reason or cause}); check that "
                "the server speaks HTTPS on that port ([store] ssl, port); embedding locally")
    # Connected, then dropped without an answer: what a TLS port does to plain HTTP.
    dropped = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
    hint = (f"; {_SSL_HINT}" if not conf.ssl and isinstance(exc, dropped) else "")
    return (f"{where} cannot be reached ({exc}); check [store] host and port, and that "
            f"`chroma run` is up there{hint}; embedding locally")
