"""Every setting of ragex and how it is read: the one table, and its reader.

``SETTINGS`` is the one table of settings: field, TOML key, environment name
(always ``RAGEX_<SECTION>_<KEY>``, older names kept as aliases), parser,
default and meaning.  ``config.py`` builds its typed ``Config`` on ``read``;
the README's table is generated from it and a test keeps them equal.

Apart from ``config.py`` because the client's direct regex path
(``ragexctl/direct.py``) reads two settings (``direct_regex``, ``runtime``) on
every search and must read them exactly as the CLI does — a bad setting
anywhere sends it to the CLI, which says what is wrong — yet cannot pay for
``dataclasses`` and ``pathlib``.  So this module imports nothing at load time
beyond ``os``; ``re`` and ``tomllib`` only when there is something to parse.
"""

from __future__ import annotations

import os

from . import __version__, where

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - typing costs milliseconds at run time
    from collections.abc import Callable
    from typing import Any

RUNTIMES = ("auto", "process", "docker")
#: ``[store] backend`` and ``role`` (the shared store: ragexd/engine/shared_store.py)
STORE_BACKENDS = ("local", "chroma-http")
STORE_ROLES = ("reader", "writer")
#: ``[embedder] runtime``: what runs the fp32 graph (ragexd/engine/embedding.py)
EMBEDDER_RUNTIMES = ("auto", "onnxruntime", "openvino")

#: Sizes are read as Docker reads ``docker run -m`` (go-units' RAMInBytes), since
#: users copy them from there: every unit is binary, so 2g, 2G, 2gb and 2GiB are
#: all 2 GiB.
_SIZE_UNITS = {"": 1, "b": 1,
               **{p + suffix: 1024 ** (i + 1) for i, p in enumerate("kmgtp")
                  for suffix in ("", "b", "ib")}}
_TIME_UNITS = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


class ConfigError(ValueError):
    """A setting that cannot be understood; the message names it and its source."""


def _parse_quantity(value: Any, name: str, units: dict[str, int], what: str,
                    example: str, examples: str) -> float:
    """A number with an optional unit from ``units`` (``"2g"``, ``"30m"``); plain
    numbers are taken in the base unit.  One parser for sizes and durations."""
    if isinstance(value, bool):
        raise ConfigError(f"{name}: expected a {what} like {example}, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    import re

    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", str(value))
    if not m or m.group(2).lower() not in units:
        raise ConfigError(f"{name}: expected a {what} like {examples}, got {value!r}")
    return float(m.group(1)) * units[m.group(2).lower()]


def parse_size(value: Any, name: str = "size") -> int:
    """``"2g"`` and ``"2GiB"`` → 2147483648 (Docker's reading); plain numbers are bytes."""
    return int(_parse_quantity(value, name, _SIZE_UNITS, "size", "'2GiB'",
                               "'2g', '2GiB' or '512m'"))


def parse_duration(value: Any, name: str = "duration") -> float:
    """``"30m"`` → 1800.0; plain numbers are seconds."""
    return _parse_quantity(value, name, _TIME_UNITS, "duration", "'30m'",
                           "'30m', '90s' or '2h'")


def parse_bool(value: Any, name: str = "flag") -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name}: expected true or false, got {value!r}")


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{name}: expected a whole number, got {value!r}")
    return int(value)


def _count(value: Any, name: str) -> int:
    """A whole number of at least 1: a count for which 0 or less means nothing
    sensible (``bulk_min_chunks = 0`` would start a child for every watcher save)."""
    n = _int(value, name)
    if n < 1:
        raise ConfigError(f"{name}: expected a whole number of 1 or more, got {value!r}")
    return n


def _float(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{name}: expected a number, got {value!r}")
    return float(value)


def _text(value: Any, name: str) -> str:
    return str(value)


def _path(value: Any, name: str) -> str:
    """A file system path; ``~`` is the user's home, a relative path is refused
    (ragexd and its workers do not run in the directory the setting was written in)."""
    text = os.path.expanduser(str(value).strip())
    if text and not os.path.isabs(text):
        raise ConfigError(f"{name}: expected an absolute path, got {value!r}")
    return text


def _ca_bundle(value: Any, name: str) -> str:
    """A PEM file of certificate authorities (a team's private CA), checked when
    the configuration is read: a wrong path is the user's to fix now, with exit 2,
    not a TLS failure later in a worker's log."""
    text = _path(value, name)
    if not text:
        return text
    try:
        with open(text, "rb") as fh:
            pem = fh.read(1 << 20)
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read the CA bundle {text}: "
                          f"{exc.strerror or exc}") from None
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise ConfigError(f"{name}: {text} holds no PEM certificate (-----BEGIN "
                          "CERTIFICATE-----): give the CA's certificate in PEM form")
    return text


def _lower(value: Any, name: str) -> str:
    return str(value).lower()


def _one_of(*choices: str) -> Callable[[Any, str], str]:
    """A parser that accepts one of ``choices`` (any case) and names them otherwise."""
    def parse(value: Any, name: str) -> str:
        text = str(value).strip().lower()
        if text not in choices:
            raise ConfigError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
        return text
    return parse


def _port(value: Any, name: str) -> int:
    port = _int(value, name)
    if not 0 < port < 65536:
        raise ConfigError(f"{name}: expected a TCP port (1-65535), got {value!r}")
    return port


class Setting:
    """One setting: where it is stored, how it is spelled in config.toml and in
    the environment, how it is read, its default and what it means.  A plain
    class (not a dataclass) for the import cost; read-only by convention."""

    __slots__ = ("field", "section", "key", "parse", "default", "doc", "aliases")

    def __init__(self, field: str, section: str, key: str, parse: Callable[[Any, str], Any],
                 default: Any, doc: str, aliases: tuple[str, ...] = ()) -> None:
        self.field = field
        self.section = section
        self.key = key
        self.parse = parse
        self.default = default
        self.doc = doc
        #: Older environment names, still read (the main name wins when both are set).
        self.aliases = aliases

    @property
    def env(self) -> str:
        """One rule for every setting: ``[daemon] idle_timeout`` is
        ``RAGEX_DAEMON_IDLE_TIMEOUT``."""
        return f"RAGEX_{self.section}_{self.key}".upper()

    def __repr__(self) -> str:
        return f"Setting({self.field!r}, [{self.section}] {self.key})"


#: Every setting, in the order the documentation lists them.
SETTINGS: tuple[Setting, ...] = (
    Setting("enabled", "daemon", "enabled", parse_bool, True,
            "false: every command runs one-shot, without ragexd"),
    Setting("auto_start", "daemon", "auto_start", parse_bool, True,
            "start ragexd (or replace a stale one) when a command needs it"),
    Setting("idle_timeout", "daemon", "idle_timeout", parse_duration, 30 * 60.0,
            "stop a worker idle this long; 0 = never", ("RAGEX_DAEMON_TIMEOUT",)),
    Setting("memory_limit", "daemon", "memory_limit", parse_size, 2 * 1024**3,
            "per worker; sizes read as Docker reads them: 2g = 2 GiB"),
    Setting("memory_budget", "daemon", "memory_budget", parse_size, 0,
            "all workers together; past it the least recently used idle worker stops; "
            "0 = unlimited"),
    Setting("runtime", "daemon", "runtime", _text, "auto",
            "where workers run: auto, process or docker", ("RAGEX_RUNTIME",)),
    Setting("queue_size", "daemon", "queue_size", _int, 32,
            "requests queued per project; beyond it: an immediate `busy` error"),
    Setting("prestart", "daemon", "prestart", _int, 2,
            "most recently used projects warmed when the service manager starts ragexd"),
    Setting("heartbeat_interval", "daemon", "heartbeat_interval", parse_duration, 2.0,
            "how often ragexd pings each worker", ("RAGEX_HEARTBEAT_INTERVAL",)),
    Setting("heartbeat_timeout", "daemon", "heartbeat_timeout", parse_duration, 20.0,
            "a worker silent this long is hung and replaced", ("RAGEX_HEARTBEAT_TIMEOUT",)),
    Setting("log_level", "daemon", "log_level", _lower, "info",
            "debug, info, warning or error", ("RAGEX_LOG_LEVEL",)),
    Setting("docker_image", "docker", "image", _text, f"ragex-worker:{__version__}",
            "the worker image"),
    Setting("docker_cpus", "docker", "cpus", _float, 0.0,
            "CPUs per worker container; 0 = no limit"),
    Setting("watch", "watch", "enabled", parse_bool, True, "re-index saved files live",
            ("RAGEX_WATCH",)),
    Setting("index_base", "index", "base", _path, "",
            "a snapshot from `ragexctl index --export` (or a directory CI refreshes with "
            "them): a project with no index, or an older one, starts from it; \"\" = none"),
    Setting("store_backend", "store", "backend", _one_of(*STORE_BACKENDS), "local",
            "where vectors are shared: local (none) or chroma-http (a `chroma run` server)"),
    Setting("store_host", "store", "host", _text, "localhost", "the Chroma server's host"),
    Setting("store_port", "store", "port", _port, 8000, "the Chroma server's port"),
    Setting("store_ssl", "store", "ssl", parse_bool, False, "talk HTTPS to the Chroma server"),
    Setting("store_ca_file", "store", "ca_file", _ca_bundle, "",
            "a PEM file of the certificate authorities to trust for the Chroma server (a "
            "team's own CA), instead of the system's; \"\" = the system's"),
    Setting("store_tenant", "store", "tenant", _text, "default_tenant", "the Chroma tenant"),
    Setting("store_database", "store", "database", _text, "default_database",
            "the Chroma database"),
    Setting("store_token_env", "store", "token_env", _text, "",
            "name of the environment variable holding the server's token (sent as a bearer "
            "token)"),
    Setting("store_token_file", "store", "token_file", _path, "",
            "a file holding the server's token (wins over token_env)"),
    Setting("store_role", "store", "role", _one_of(*STORE_ROLES), "reader",
            "reader: use the shared vectors; writer (CI): also publish what it embeds"),
    Setting("store_repository", "store", "repository", _text, "",
            "the shared collection's repository name; empty: the git repository's first "
            "commit"),
    Setting("store_timeout", "store", "timeout", parse_duration, 3.0,
            "longest wait for the Chroma server; past it, indexing embeds locally"),
    Setting("embedder_runtime", "embedder", "runtime", _one_of(*EMBEDDER_RUNTIMES), "auto",
            "what runs the embedding model in a local worker: auto (onnxruntime, and a "
            "first index or other large backlog on OpenVINO in a short-lived child "
            "process where openvino is installed and the CPU has AVX-512 BF16 or AMX: "
            "~2.4x faster there, same vectors, the worker's RSS unchanged once it exits), "
            "onnxruntime (always), or openvino (the [openvino] extra, in the worker: "
            "~190 MiB more RSS; not in the worker image)"),
    Setting("embedder_bulk_min_chunks", "embedder", "bulk_min_chunks", _count, 500,
            "with runtime = auto, the fewest chunks to embed for which a worker starts "
            "the OpenVINO child (smaller backlogs are embedded in the worker)"),
    Setting("direct_regex", "search", "direct_regex", parse_bool, True,
            "regex searches run ripgrep from the client (same results, no round trip); "
            "false sends them through ragexd and a worker"),
)

#: Each setting's default, by field.
DEFAULTS: dict[str, Any] = {s.field: s.default for s in SETTINGS}


def read(env: dict[str, str] | None = None, config_file: str | os.PathLike[str] | None = None
         ) -> tuple[dict[str, Any], list[str]]:
    """Every setting's value — defaults, then config.toml, then the environment —
    and where the values that are not defaults came from.  Raises ConfigError."""
    env = os.environ if env is None else env
    values = dict(DEFAULTS)
    source: list[str] = []
    path = os.fspath(config_file) if config_file is not None else where.config_file()
    if os.path.exists(path):
        # Imported only when there is a file to read: every ragexctl run reads the
        # settings, and most users have none.
        import tomllib
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from None
        for s in SETTINGS:
            section = data.get(s.section, {})
            if isinstance(section, dict) and s.key in section:
                place = f"{path} [{s.section}] {s.key}"
                try:
                    values[s.field] = s.parse(section[s.key], place)
                except ConfigError:
                    raise   # the parser's sentence names the place already (was: twice)
                except (TypeError, ValueError) as exc:
                    raise ConfigError(f"{place}: {exc}") from None
        source.append(str(path))
    for s in SETTINGS:
        var = next((v for v in (s.env, *s.aliases) if env.get(v, "") != ""), None)
        if var is None:
            continue
        try:
            values[s.field] = s.parse(env[var], var)
        except ConfigError:
            raise   # "VAR: expected …, got '…'" names the variable and the value
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{var}={env[var]!r}: {exc}") from None
        source.append(var)
    if values["runtime"] not in RUNTIMES:
        raise ConfigError(f"runtime must be one of {', '.join(RUNTIMES)}, "
                          f"not {values['runtime']!r}")
    if values["memory_limit"] < 0 or values["idle_timeout"] < 0 or values["queue_size"] < 1:
        raise ConfigError("memory_limit and idle_timeout must be >= 0 and queue_size >= 1")
    if values["store_backend"] == "chroma-http" and values["store_ca_file"] \
            and not values["store_ssl"]:
        raise ConfigError(f"[store] ca_file is {values['store_ca_file']} but [store] ssl is "
                          "false: set ssl = true (RAGEX_STORE_SSL=1), the CA is only used "
                          "for HTTPS")
    return values, source


def unknown_keys(config_file: str | os.PathLike[str] | None = None) -> list[str]:
    """The config file's sections and keys no setting reads (``[daemon] idle_timout``),
    each with the nearest known name when one is close.  ``read`` ignores them, so
    a typo silently left the default in force; ``ragexctl doctor`` names them."""
    path = os.fspath(config_file) if config_file is not None else where.config_file()
    if not os.path.exists(path):
        return []
    import difflib
    import tomllib

    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return []   # read() says what is wrong with the file itself
    sections = {s.section for s in SETTINGS}
    known = {f"[{s.section}] {s.key}" for s in SETTINGS} | {f"[{x}]" for x in sections}
    names = []
    for section, body in data.items():
        if isinstance(body, dict) and section in sections:
            names += [f"[{section}] {key}" for key in body]
        else:
            names.append(f"[{section}]" if isinstance(body, dict) else section)
    found = []
    for name in names:
        if name not in known:
            near = [f"[{s.section}] {s.key}" for s in SETTINGS if s.key == name] or \
                difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)
            found.append(name + (f" (did you mean {near[0]}?)" if near else ""))
    return found
