"""ragexctl must stay thin: no engine, no torch, no chromadb, no docker — ever.

A warm search is a fresh client process each time, so every module ragexctl
imports is paid on every search.  These tests run fresh interpreters.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

from tests.harness import REPO

HEAVY = ("torch", "sentence_transformers", "chromadb", "tree_sitter", "tree_sitter_languages",
         "docker", "psutil", "watchdog", "pathspec", "mcp", "numpy",
         "ragexd.engine", "ragexd.supervisor", "ragexd.worker", "ragexd.runtimes")

PROBE = """
import json, sys
{imports}
loaded = sorted(m for m in sys.modules
                if any(m == h or m.startswith(h + ".") for h in {heavy!r}))
print(json.dumps(loaded))
"""


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _loaded(imports: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE.format(imports=imports, heavy=HEAVY)],
                         capture_output=True, text=True, env=_env(), cwd="/", check=True)
    return json.loads(out.stdout)


def test_cli_and_client_import_nothing_heavy():
    assert _loaded("import ragexctl.cli") == []
    # Everything a search, index or status can import on the daemon path.
    assert _loaded("import ragexctl.cli, ragexctl.client, ragexctl.autostart, "
                   "ragexctl.oneshot, ragexctl.render") == []


def test_running_commands_imports_nothing_heavy(tmp_path):
    """Not just the imports: a whole command run (parse, config, project root,
    daemon check) must not pull anything heavy in lazily either."""
    code = (
        "import sys, runpy\n"
        "from ragexctl import cli\n"
        "for argv in (['--version'], ['status'], ['ls'], ['search', '--mode', 'regex', '']):\n"
        "    try:\n"
        "        cli.main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
    )
    env = _env()
    env.update(RAGEX_RUNTIME_DIR=str(tmp_path / "run"), RAGEX_DATA_DIR=str(tmp_path / "d"),
               RAGEX_STATE_DIR=str(tmp_path / "s"), RAGEX_CONFIG_DIR=str(tmp_path / "c"))
    probe = PROBE.format(imports=code, heavy=HEAVY)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         env=env, cwd=str(tmp_path))
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def _importtime_us(module: str) -> int:
    """Cumulative import time of ``module`` from ``python -X importtime``."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                         capture_output=True, text=True, env=_env(), cwd="/", check=True)
    for line in reversed(out.stderr.splitlines()):
        parts = line.split("|")
        if len(parts) == 3 and parts[2].strip() == module:
            return int(parts[1])
    raise AssertionError(f"no importtime line for {module}")


def test_import_time_is_close_to_zmq(capsys):
    """Measured, reported, and bounded loosely (the machine is shared): the
    client's own imports must not cost more than a few times pyzmq's."""
    _importtime_us("ragexctl.cli")  # warm the bytecode cache
    cli = statistics.median(_importtime_us("ragexctl.cli") for _ in range(7))
    client = statistics.median(_importtime_us("ragexctl.client") for _ in range(7))
    zmq = statistics.median(_importtime_us("zmq") for _ in range(7))
    with capsys.disabled():
        print(f"\nimport time (median of 7): ragexctl.cli {cli / 1000:.1f} ms, "
              f"ragexctl.client (pulls zmq) {client / 1000:.1f} ms, zmq {zmq / 1000:.1f} ms")
    assert cli < 4 * zmq + 50_000


def test_a_direct_regex_search_imports_no_zeromq_no_argparse_no_cli(tmp_path):
    """The direct path (ragexctl/direct.py) exists to beat the CLI's imports: a
    regex search it serves must not load them either, nor anything heavy."""
    tree = tmp_path / "proj"
    (tree / ".git").mkdir(parents=True)
    (tree / "a.py").write_text("needle = 1\n")
    code = (
        "import sys\n"
        "from ragexctl import direct\n"
        "assert direct.try_search(['search', '--mode', 'regex', 'needle']) == 0\n"
        "assert direct.try_search(['search', 'nee+dle']) == 0\n"
    )
    light = HEAVY + ("zmq", "argparse", "ragexctl.cli", "ragexctl.client", "ragexctl.session")
    env = _env()
    env.update(RAGEX_RUNTIME_DIR=str(tmp_path / "run"), RAGEX_DATA_DIR=str(tmp_path / "d"),
               RAGEX_STATE_DIR=str(tmp_path / "s"), RAGEX_CONFIG_DIR=str(tmp_path / "c"))
    out = subprocess.run([sys.executable, "-c", PROBE.format(imports=code, heavy=light)],
                         capture_output=True, text=True, env=env, cwd=str(tree))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[:2] == ["a.py:1:needle = 1"] * 2
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
