"""User configuration: ``config.toml`` overridden by ``RAGEX_*`` environment variables.

Read by both ragexctl (is the daemon enabled? may I auto-start it?) and ragexd
(timeouts, limits, runtime).  Kept stdlib-only so the client stays lean.

Example ``~/.config/ragex/config.toml``::

    [daemon]
    enabled = true
    auto_start = true
    idle_timeout = "30m"      # 0 = never stop idle workers
    memory_limit = "2GiB"     # per worker
    runtime = "auto"          # auto | process | docker
    queue_size = 32           # per project, beyond it: `busy`
    prestart = 2              # most recently used projects warmed at login

    [docker]
    image = "ragex-worker:0.1.0"
    cpus = 0                  # 0 = no CPU limit

    [watch]
    enabled = true
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from . import __version__, paths

RUNTIMES = ("auto", "process", "docker")

_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
               "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3,
               "t": 1000**4, "tb": 1000**4, "tib": 1024**4}
_TIME_UNITS = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


class ConfigError(ValueError):
    """A setting that cannot be understood; the message names it and its source."""


def parse_size(value: Any, name: str = "size") -> int:
    """``"2GiB"`` → 2147483648; plain numbers are bytes."""
    if isinstance(value, bool):
        raise ConfigError(f"{name}: expected a size like '2GiB', got {value!r}")
    if isinstance(value, (int, float)):
        return int(value)
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", str(value))
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        raise ConfigError(f"{name}: expected a size like '2GiB' or '512MiB', got {value!r}")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])


def parse_duration(value: Any, name: str = "duration") -> float:
    """``"30m"`` → 1800.0; plain numbers are seconds."""
    if isinstance(value, bool):
        raise ConfigError(f"{name}: expected a duration like '30m', got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", str(value))
    if not m or m.group(2).lower() not in _TIME_UNITS:
        raise ConfigError(f"{name}: expected a duration like '30m', '90s' or '2h', got {value!r}")
    return float(m.group(1)) * _TIME_UNITS[m.group(2).lower()]


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
    log_level: str = "info"
    source: list[str] = field(default_factory=list)  # where settings came from, for `status`

    @property
    def config_file(self) -> Path:
        return paths.config_dir() / "config.toml"


#: env var -> (field, parser)
_ENV = {
    "RAGEX_DAEMON_ENABLED": ("enabled", parse_bool),
    "RAGEX_DAEMON_AUTO_START": ("auto_start", parse_bool),
    "RAGEX_DAEMON_TIMEOUT": ("idle_timeout", parse_duration),
    "RAGEX_DAEMON_MEMORY_LIMIT": ("memory_limit", parse_size),
    "RAGEX_DAEMON_MEMORY_BUDGET": ("memory_budget", parse_size),
    "RAGEX_DAEMON_QUEUE_SIZE": ("queue_size", lambda v, n: int(v)),
    "RAGEX_DAEMON_PRESTART": ("prestart", lambda v, n: int(v)),
    "RAGEX_HEARTBEAT_INTERVAL": ("heartbeat_interval", parse_duration),
    "RAGEX_HEARTBEAT_TIMEOUT": ("heartbeat_timeout", parse_duration),
    "RAGEX_RUNTIME": ("runtime", lambda v, n: str(v)),
    "RAGEX_DOCKER_IMAGE": ("docker_image", lambda v, n: str(v)),
    "RAGEX_DOCKER_CPUS": ("docker_cpus", lambda v, n: float(v)),
    "RAGEX_WATCH": ("watch", parse_bool),
    "RAGEX_LOG_LEVEL": ("log_level", lambda v, n: str(v).lower()),
}

#: config.toml [section] key -> (field, parser)
_TOML = {
    ("daemon", "enabled"): ("enabled", parse_bool),
    ("daemon", "auto_start"): ("auto_start", parse_bool),
    ("daemon", "idle_timeout"): ("idle_timeout", parse_duration),
    ("daemon", "memory_limit"): ("memory_limit", parse_size),
    ("daemon", "memory_budget"): ("memory_budget", parse_size),
    ("daemon", "runtime"): ("runtime", lambda v, n: str(v)),
    ("daemon", "queue_size"): ("queue_size", lambda v, n: int(v)),
    ("daemon", "prestart"): ("prestart", lambda v, n: int(v)),
    ("daemon", "heartbeat_interval"): ("heartbeat_interval", parse_duration),
    ("daemon", "heartbeat_timeout"): ("heartbeat_timeout", parse_duration),
    ("daemon", "log_level"): ("log_level", lambda v, n: str(v).lower()),
    ("docker", "image"): ("docker_image", lambda v, n: str(v)),
    ("docker", "cpus"): ("docker_cpus", lambda v, n: float(v)),
    ("watch", "enabled"): ("watch", parse_bool),
}


def load(env: dict[str, str] | None = None, config_file: Path | None = None) -> Config:
    """Defaults, then config.toml, then the environment.  Raises ConfigError."""
    env = dict(os.environ) if env is None else env
    cfg = Config()
    path = config_file or cfg.config_file
    if path.exists():
        # Imported only when there is a file to read: every ragexctl run loads the
        # config, and most users have none.
        try:
            import tomllib  # Python 3.11+: tomli, merged into the stdlib
        except ModuleNotFoundError:  # pragma: no cover - Python < 3.11
            import tomli as tomllib  # type: ignore[no-redef]
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from None
        for (section, key), (attr, parser) in _TOML.items():
            if key in data.get(section, {}):
                try:
                    setattr(cfg, attr, parser(data[section][key], f"{path} [{section}] {key}"))
                except (TypeError, ValueError) as exc:
                    raise ConfigError(f"{path} [{section}] {key}: {exc}") from None
        cfg.source.append(str(path))
    for var, (attr, parser) in _ENV.items():
        if env.get(var, "") != "":
            try:
                setattr(cfg, attr, parser(env[var], var))
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{var}={env[var]!r}: {exc}") from None
            cfg.source.append(var)
    if cfg.runtime not in RUNTIMES:
        raise ConfigError(f"runtime must be one of {', '.join(RUNTIMES)}, not {cfg.runtime!r}")
    if cfg.memory_limit < 0 or cfg.idle_timeout < 0 or cfg.queue_size < 1:
        raise ConfigError("memory_limit and idle_timeout must be >= 0 and queue_size >= 1")
    return cfg


def as_dict(cfg: Config) -> dict[str, Any]:
    return {f.name: getattr(cfg, f.name) for f in fields(cfg)}
