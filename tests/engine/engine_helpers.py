"""Helpers shared by the engine tests (tests/engine is a package)."""

from __future__ import annotations

import shutil
import sysconfig
from pathlib import Path

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def copy_stdlib(dest: Path, *packages: str) -> Path:
    """Copy stdlib packages (or single modules) into ``dest``; returns ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in packages:
        src = STDLIB / name
        if src.is_dir():
            shutil.copytree(src, dest / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "tests", "test"))
        else:
            shutil.copy2(src, dest / src.name)
    return dest
