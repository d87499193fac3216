"""User configuration: ``config.toml`` overridden by ``RAGEX_*`` environment variables.

Read by both ragexctl (is the daemon enabled? may I auto-start it?) and ragexd
(timeouts, limits, runtime).  Kept stdlib-only so the client stays lean.

``SETTINGS`` is the one table of settings: field, TOML key, environment name
(always ``RAGEX_<SECTION>_<KEY>``, older names kept as aliases), parser and
meaning.  The README's table is generated from it and a test keeps them equal.

Example ``~/.config/ragex/config.toml``::

    [daemon]
    enabled = true
    auto_start = true
    idle_timeout = "30m"      # 0 = never stop idle workers
    memory_limit = "2g"       # per worker; 2 GiB, as `docker run -m 2g` reads it
    runtime = "auto"          # auto | process | docker
    queue_size = 32           # per project, beyond it: `busy`
    prestart = 2              # most recently used projects warmed at login

    [docker]
    image = "ragex-worker:0.1.0"
    cpus = 0                  # 0 = no CPU limit

    [watch]
    enabled = true

    [store]                   # vectors shared by a team on a Chroma server
    backend = "chroma-http"   # local (the default) | chroma-http
    host = "chroma.internal"
    port = 8000
    token_env = "CHROMA_TOKEN"   # or token_file = "~/.config/ragex/chroma-token"
    role = "reader"           # reader | writer (CI)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from . import __version__, paths

RUNTIMES = ("auto", "process", "docker")
#: ``[store] backend`` and ``role`` (the shared store: ragexd/engine/shared_store.py)
STORE_BACKENDS = ("local", "chroma-http")
STORE_ROLES = ("reader", "writer")

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


def format_size(n: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} B"


@dataclass
class Config:
    enabled: bool = True
    auto_start: bool = True
    idle_timeout: float = 30 * 60.0
    memory_limit: int = 2 * 1024**3
    runtime: str = "auto"
    queue_size: int = 32
    prestart: int = 2
    #: Total memory budget for all workers; 0 = unlimited.  Past it, least
    #: recently used idle workers are stopped first.
    memory_budget: int = 0
    heartbeat_interval: float = 2.0
    #: A worker that has not answered a heartbeat for this long is hung: replaced.
    heartbeat_timeout: float = 20.0
    docker_image: str = f"ragex-worker:{__version__}"
    docker_cpus: float = 0.0
    watch: bool = True
    #: A snapshot archive, or a directory of them CI refreshes; "" = none.
    index_base: str = ""
    #: A regex search (and an auto query routed to regex) runs ripgrep from the
    #: client, without a round trip through ragexd; false forces the daemon path.
    direct_regex: bool = True
    log_level: str = "info"
    store_backend: str = "local"
    store_host: str = "localhost"
    store_port: int = 8000
    store_ssl: bool = False
    store_ca_file: str = ""
    store_tenant: str = "default_tenant"
    store_database: str = "default_database"
    store_token_env: str = ""
    store_token_file: str = ""
    store_role: str = "reader"
    store_repository: str = ""
    store_timeout: float = 3.0
    source: list[str] = field(default_factory=list)  # where settings came from, for `status`

    @property
    def config_file(self) -> Path:
        return paths.config_dir() / "config.toml"


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{name}: expected a whole number, got {value!r}")
    return int(value)


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


@dataclass(frozen=True)
class Setting:
    """One setting: where it is stored, how it is spelled in config.toml and in
    the environment, how it is read, and what it means."""

    field: str
    section: str
    key: str
    parse: Callable[[Any, str], Any]
    doc: str
    #: Older environment names, still read (the main name wins when both are set).
    aliases: tuple[str, ...] = ()

    @property
    def env(self) -> str:
        """One rule for every setting: ``[daemon] idle_timeout`` is
        ``RAGEX_DAEMON_IDLE_TIMEOUT``."""
        return f"RAGEX_{self.section}_{self.key}".upper()

    @property
    def default(self) -> Any:
        return getattr(Config(), self.field)


#: Every setting, in the order the documentation lists them.
SETTINGS: tuple[Setting, ...] = (
    Setting("enabled", "daemon", "enabled", parse_bool,
            "false: every command runs one-shot, without ragexd"),
    Setting("auto_start", "daemon", "auto_start", parse_bool,
            "start ragexd (or replace a stale one) when a command needs it"),
    Setting("idle_timeout", "daemon", "idle_timeout", parse_duration,
            "stop a worker idle this long; 0 = never", ("RAGEX_DAEMON_TIMEOUT",)),
    Setting("memory_limit", "daemon", "memory_limit", parse_size,
            "per worker; sizes read as Docker reads them: 2g = 2 GiB"),
    Setting("memory_budget", "daemon", "memory_budget", parse_size,
            "all workers together; past it the least recently used idle worker stops; "
            "0 = unlimited"),
    Setting("runtime", "daemon", "runtime", _text,
            "where workers run: auto, process or docker", ("RAGEX_RUNTIME",)),
    Setting("queue_size", "daemon", "queue_size", _int,
            "requests queued per project; beyond it: an immediate `busy` error"),
    Setting("prestart", "daemon", "prestart", _int,
            "most recently used projects warmed when the service manager starts ragexd"),
    Setting("heartbeat_interval", "daemon", "heartbeat_interval", parse_duration,
            "how often ragexd pings each worker", ("RAGEX_HEARTBEAT_INTERVAL",)),
    Setting("heartbeat_timeout", "daemon", "heartbeat_timeout", parse_duration,
            "a worker silent this long is hung and replaced", ("RAGEX_HEARTBEAT_TIMEOUT",)),
    Setting("log_level", "daemon", "log_level", _lower,
            "debug, info, warning or error", ("RAGEX_LOG_LEVEL",)),
    Setting("docker_image", "docker", "image", _text, "the worker image"),
    Setting("docker_cpus", "docker", "cpus", _float, "CPUs per worker container; 0 = no limit"),
    Setting("watch", "watch", "enabled", parse_bool, "re-index saved files live",
            ("RAGEX_WATCH",)),
    Setting("index_base", "index", "base", _path,
            "a snapshot from `ragexctl index --export` (or a directory CI refreshes with "
            "them): a project with no index, or an older one, starts from it; \"\" = none"),
    Setting("store_backend", "store", "backend", _one_of(*STORE_BACKENDS),
            "where vectors are shared: local (none) or chroma-http (a `chroma run` server)"),
    Setting("store_host", "store", "host", _text, "the Chroma server's host"),
    Setting("store_port", "store", "port", _port, "the Chroma server's port"),
    Setting("store_ssl", "store", "ssl", parse_bool, "talk HTTPS to the Chroma server"),
    Setting("store_ca_file", "store", "ca_file", _ca_bundle,
            "a PEM file of the certificate authorities to trust for the Chroma server (a "
            "team's own CA), instead of the system's; \"\" = the system's"),
    Setting("store_tenant", "store", "tenant", _text, "the Chroma tenant"),
    Setting("store_database", "store", "database", _text, "the Chroma database"),
    Setting("store_token_env", "store", "token_env", _text,
            "name of the environment variable holding the server's token (sent as a bearer "
            "token)"),
    Setting("store_token_file", "store", "token_file", _path,
            "a file holding the server's token (wins over token_env)"),
    Setting("store_role", "store", "role", _one_of(*STORE_ROLES),
            "reader: use the shared vectors; writer (CI): also publish what it embeds"),
    Setting("store_repository", "store", "repository", _text,
            "the shared collection's repository name; empty: the git repository's first "
            "commit"),
    Setting("store_timeout", "store", "timeout", parse_duration,
            "longest wait for the Chroma server; past it, indexing embeds locally"),
    Setting("direct_regex", "search", "direct_regex", parse_bool,
            "regex searches run ripgrep from the client (same results, no round trip); "
            "false sends them through ragexd and a worker"),
)


def _show(setting: Setting) -> str:
    """A default as one would write it in config.toml."""
    value = setting.default
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if setting.parse is parse_size and value:
        for unit, size in (("t", 1024**4), ("g", 1024**3), ("m", 1024**2), ("k", 1024)):
            if value % size == 0:
                return f'"{value // size}{unit}"'
    if setting.parse is parse_duration and value:
        for unit, size in (("h", 3600), ("m", 60)):
            if value % size == 0:
                return f'"{int(value // size)}{unit}"'
        return f'"{value:g}s"'
    return f"{value:g}" if isinstance(value, float) else str(value)


def settings_table() -> str:
    """The README's configuration table, generated from SETTINGS (a test keeps
    the README equal to it)."""
    rows = ["| config.toml | environment | default | meaning |", "|---|---|---|---|"]
    for s in SETTINGS:
        env = f"`{s.env}`" + "".join(f" (or `{a}`)" for a in s.aliases)
        rows.append(f"| `[{s.section}] {s.key}` | {env} | `{_show(s)}` | {s.doc} |")
    return "\n".join(rows) + "\n"


def load(env: dict[str, str] | None = None, config_file: Path | None = None) -> Config:
    """Defaults, then config.toml, then the environment.  Raises ConfigError."""
    env = dict(os.environ) if env is None else env
    cfg = Config()
    path = config_file or cfg.config_file
    if path.exists():
        # Imported only when there is a file to read: every ragexctl run loads the
        # config, and most users have none.
        import tomllib
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from None
        for s in SETTINGS:
            section = data.get(s.section, {})
            if isinstance(section, dict) and s.key in section:
                where = f"{path} [{s.section}] {s.key}"
                try:
                    setattr(cfg, s.field, s.parse(section[s.key], where))
                except (TypeError, ValueError) as exc:
                    raise ConfigError(f"{where}: {exc}") from None
        cfg.source.append(str(path))
    for s in SETTINGS:
        var = next((v for v in (s.env, *s.aliases) if env.get(v, "") != ""), None)
        if var is None:
            continue
        try:
            setattr(cfg, s.field, s.parse(env[var], var))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{var}={env[var]!r}: {exc}") from None
        cfg.source.append(var)
    if cfg.runtime not in RUNTIMES:
        raise ConfigError(f"runtime must be one of {', '.join(RUNTIMES)}, not {cfg.runtime!r}")
    if cfg.memory_limit < 0 or cfg.idle_timeout < 0 or cfg.queue_size < 1:
        raise ConfigError("memory_limit and idle_timeout must be >= 0 and queue_size >= 1")
    if cfg.store_backend == "chroma-http" and cfg.store_ca_file and not cfg.store_ssl:
        raise ConfigError(f"[store] ca_file is {cfg.store_ca_file} but [store] ssl is false: "
                          "set ssl = true (RAGEX_STORE_SSL=1), the CA is only used for HTTPS")
    return cfg


def as_dict(cfg: Config) -> dict[str, Any]:
    return {f.name: getattr(cfg, f.name) for f in fields(cfg)}
