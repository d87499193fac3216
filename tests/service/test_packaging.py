"""What a wheel of ragex carries: the light dependencies, the extras, the unit templates.

The wheel is really built (setuptools, no network) from a copy of the sources,
as packaging/build-image.sh does, and then read as pip would read it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from ragexctl.service import launchd, systemd

from tests.harness import REPO

LIGHT = {"pyzmq", "platformdirs", "psutil", "docker"}


@pytest.fixture(scope="module")
def wheel() -> zipfile.ZipFile:
    base = Path(tempfile.mkdtemp(prefix="rx-wheel-"))
    try:
        src = base / "src"
        src.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(REPO / name, src / name)
        for pkg in ("ragexd", "ragexctl"):
            shutil.copytree(REPO / pkg, src / pkg,
                            ignore=shutil.ignore_patterns("__pycache__"))
        proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                               "--no-build-isolation", "-w", str(base), str(src)],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        (path,) = base.glob("ragex-*.whl")
        with zipfile.ZipFile(path) as zf:
            yield zf
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _requires(wheel: zipfile.ZipFile) -> list[str]:
    (meta,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    return Parser().parsestr(wheel.read(meta).decode()).get_all("Requires-Dist") or []


def _name(req: str) -> str:
    return re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0].lower()


def test_the_light_install_needs_only_the_client_supervisor_and_docker(wheel) -> None:
    plain = {_name(r) for r in _requires(wheel) if "extra ==" not in r}
    assert plain == LIGHT


def test_the_engine_and_mcp_are_extras(wheel) -> None:
    extras: dict[str, set[str]] = {}
    for req in _requires(wheel):
        m = re.search(r'extra == "(\w+)"', req)
        if m:
            extras.setdefault(m.group(1), set()).add(_name(req))
    assert {"chromadb", "tree-sitter", "ripgrep"} <= extras["engine"]
    assert extras["mcp"] == {"mcp"}
    assert extras["all"] == {"ragex"}  # ragex[engine,mcp]
    assert not (extras["engine"] | extras["mcp"]) & LIGHT


def test_the_unit_templates_ship_as_package_data(wheel) -> None:
    unit = wheel.read("ragexctl/units/ragexd.service").decode()
    assert unit == systemd.UNIT_TEMPLATE and "@RAGEXD@ --foreground" in unit
    assert wheel.read("ragexctl/units/io.ragex.ragexd.plist") == launchd.plist_template()
