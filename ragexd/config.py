"""User configuration: ``config.toml`` overridden by ``RAGEX_*`` environment variables.

Read by both ragexctl (is the daemon enabled? may I auto-start it?) and ragexd
(timeouts, limits, runtime).  Kept stdlib-only so the client stays lean.

``SETTINGS`` is the one table of settings: field, TOML key, environment name
(always ``RAGEX_<SECTION>_<KEY>``, older names kept as aliases), parser, default
and meaning.  It lives, with its reader, in ``settings.py`` (cheap to import: the
client's direct regex path reads it on every search); this module gives it the
typed ``Config``.  The README's table is generated from it and a test keeps
them equal.

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
    ssl = true                # HTTPS, the certificate always verified
    ca_file = "/etc/ragex/team-ca.pem"   # the team's own CA; default: the system's store

    [embedder]
    runtime = "onnxruntime"   # onnxruntime | openvino (the [openvino] extra)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from . import where
from .settings import (DEFAULTS, RUNTIMES, SETTINGS, STORE_BACKENDS, STORE_ROLES, ConfigError,
                       Setting, parse_bool, parse_duration, parse_size, read)

__all__ = ["RUNTIMES", "SETTINGS", "STORE_BACKENDS", "STORE_ROLES", "Config", "ConfigError",
           "Setting", "as_dict", "format_size", "load", "parse_bool", "parse_duration",
           "parse_size", "settings_table"]


def format_size(n: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} B"


@dataclass
class Config:
    """Every setting's value (defaults: ``settings.SETTINGS``, the one table)."""

    enabled: bool = DEFAULTS["enabled"]
    auto_start: bool = DEFAULTS["auto_start"]
    idle_timeout: float = DEFAULTS["idle_timeout"]
    memory_limit: int = DEFAULTS["memory_limit"]
    runtime: str = DEFAULTS["runtime"]
    queue_size: int = DEFAULTS["queue_size"]
    prestart: int = DEFAULTS["prestart"]
    #: Total memory budget for all workers; 0 = unlimited.  Past it, least
    #: recently used idle workers are stopped first.
    memory_budget: int = DEFAULTS["memory_budget"]
    heartbeat_interval: float = DEFAULTS["heartbeat_interval"]
    #: A worker that has not answered a heartbeat for this long is hung: replaced.
    heartbeat_timeout: float = DEFAULTS["heartbeat_timeout"]
    docker_image: str = DEFAULTS["docker_image"]
    docker_cpus: float = DEFAULTS["docker_cpus"]
    watch: bool = DEFAULTS["watch"]
    #: A snapshot archive, or a directory of them CI refreshes; "" = none.
    index_base: str = DEFAULTS["index_base"]
    #: A regex search (and an auto query routed to regex) runs ripgrep from the
    #: client, without a round trip through ragexd; false forces the daemon path.
    direct_regex: bool = DEFAULTS["direct_regex"]
    log_level: str = DEFAULTS["log_level"]
    store_backend: str = DEFAULTS["store_backend"]
    store_host: str = DEFAULTS["store_host"]
    store_port: int = DEFAULTS["store_port"]
    store_ssl: bool = DEFAULTS["store_ssl"]
    store_ca_file: str = DEFAULTS["store_ca_file"]
    store_tenant: str = DEFAULTS["store_tenant"]
    store_database: str = DEFAULTS["store_database"]
    store_token_env: str = DEFAULTS["store_token_env"]
    store_token_file: str = DEFAULTS["store_token_file"]
    store_role: str = DEFAULTS["store_role"]
    store_repository: str = DEFAULTS["store_repository"]
    store_timeout: float = DEFAULTS["store_timeout"]
    #: onnxruntime (installed with the engine) or openvino (the [openvino] extra):
    #: both run the same fp32 graph; bench/results/runtimes.md compares them.
    embedder_runtime: str = DEFAULTS["embedder_runtime"]
    embedder_bulk_min_chunks: int = DEFAULTS["embedder_bulk_min_chunks"]
    source: list[str] = field(default_factory=list)  # where settings came from, for `status`

    @property
    def config_file(self) -> Path:
        return Path(where.config_file())


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
    """Defaults, then config.toml, then the environment (``settings.read``).
    Raises ConfigError."""
    values, source = read(os.environ if env is None else env, config_file)
    return Config(**values, source=source)


def as_dict(cfg: Config) -> dict[str, Any]:
    return {f.name: getattr(cfg, f.name) for f in fields(cfg)}
