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


#: What a ``--mode regex`` search by the direct path must not load either: each
#: costs milliseconds against ripgrep's ~10 ms search of a whole repository
#: (issue #11 part 5: interpreter start-up + 1.3x bare rg).  ``re`` comes with
#: an ``auto`` query (its shape is a regular expression's business).
NOT_FOR_A_REGEX = ("dataclasses", "pathlib", "typing", "subprocess", "threading", "json", "re",
                   "enum", "platformdirs", "hashlib", "getpass", "inspect", "signal",
                   "ragexd.config", "ragexd.paths")


def _direct_env(tmp_path):
    env = _env()
    env.update(RAGEX_RUNTIME_DIR=str(tmp_path / "run"), RAGEX_DATA_DIR=str(tmp_path / "d"),
               RAGEX_STATE_DIR=str(tmp_path / "s"), RAGEX_CONFIG_DIR=str(tmp_path / "c"),
               RAGEX_RUNTIME="process", RAGEX_DAEMON_AUTO_START="false")
    return env


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
    out = subprocess.run([sys.executable, "-c", PROBE.format(imports=code, heavy=light)],
                         capture_output=True, text=True, env=_direct_env(tmp_path),
                         cwd=str(tree))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[:2] == ["a.py:1:needle = 1"] * 2
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_a_direct_regex_search_loads_only_what_python_starts_with_and_the_rules(tmp_path):
    """As the console script runs it: ``ragexctl search --mode regex`` answers
    from ripgrep without dataclasses, pathlib, typing, subprocess, json or re:
    the settings, the project-root rule and rg's output are read with what the
    interpreter has loaded already."""
    tree = tmp_path / "proj"
    (tree / ".git").mkdir(parents=True)
    (tree / "a.py").write_text("needle = 1\n")
    (tree / "b.py").write_text("needle = 2\nneedle = 3\n")
    code = (
        "import sys\n"
        "from ragexctl import entry\n"
        "sys.argv[1:] = ['search', '--mode', 'regex', '-C', '1', 'need.e']\n"
        "class Done(Exception):\n"
        "    pass\n"
        "def stop(code):\n"
        "    sys.stdout.flush()\n"
        "    raise Done(code)\n"
        "entry.fast_exit = stop\n"
        "try:\n"
        "    entry.main()\n"
        "except Done as done:\n"
        "    assert done.args == (0,)\n"
        "else:\n"
        "    raise AssertionError('the CLI served it')\n"
    )
    light = HEAVY + NOT_FOR_A_REGEX + ("zmq", "argparse", "ragexctl.cli")
    probe = code + ("loaded = sorted(m for m in sys.modules\n"
                    f"                if any(m == h or m.startswith(h + '.') for h in {light!r}))\n"
                    "print(' '.join(loaded))\n")   # the PROBE's json would load re itself
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         env=_direct_env(tmp_path), cwd=str(tree))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")
    assert lines[:-2] == ["a.py:1:needle = 1", "--", "b.py:1:needle = 2", "b.py:2:needle = 3"]
    assert lines[-2] == ""
