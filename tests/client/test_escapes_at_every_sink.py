"""What ragexctl writes for people never carries a terminal's escape sequences,
whatever the project's root or an argument holds; --json keeps the text exact.

A real ragexd and real workers: a project root named ``evil\\x1b]0;PWNED\\x07dir``
would retitle the terminal of anyone who ran `ragexctl index`, `status` or `ls`.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from ragexctl import cli, render

from tests.harness import write_tree

EVIL = "evil\x1b]0;PWNED\x07dir"


def _obeyed(text: str) -> bool:
    return "\x1b" in text or "\x07" in text


def test_a_root_named_with_escape_sequences_is_printed_escaped_by_every_command(rx):
    root = write_tree(rx.base / EVIL, files=4)
    outputs = {}
    for argv in (("index",), ("status",), ("ls",), ("similar", "esc\x1b[31mred.py:99"),
                 ("search", "--mode", "nonsense\x1b[2J", "x"), ("logs",),
                 ("search", "--mode", "regex", "(\x1b[31m")):
        r = rx.ctl(*argv, cwd=root, timeout=240)
        outputs[argv[0]] = r
        assert not _obeyed(r.stdout + r.stderr), (argv, r.stdout, r.stderr)
    assert "evil\\x1b]0;PWNED\\x07dir" in outputs["index"].stdout
    assert "evil\\x1b]0;PWNED\\x07dir" in outputs["ls"].stdout
    assert outputs["similar"].returncode == 2
    assert outputs["search"].returncode == 2 and "\\x1b[31m" in outputs["search"].stderr
    assert "worker for " in outputs["logs"].stdout and "PWNED\\x07dir" in outputs["logs"].stdout
    assert "esc\\x1b[31mred.py" in outputs["similar"].stderr

    j = rx.ctl("index", "--json", cwd=root, timeout=240)
    summary = [json.loads(line) for line in j.stdout.splitlines()
               if json.loads(line).get("type") == "summary"]
    assert summary and summary[0]["root"].endswith(EVIL), j.stdout
    ls = rx.ctl("ls", "--json", cwd=root)
    assert any(json.loads(line)["root"].endswith(EVIL) for line in ls.stdout.splitlines())

    for argv in (("stop", "."), ("rm", ".")):
        r = rx.ctl(*argv, cwd=root, timeout=120)
        assert r.returncode == 0, (argv, r.stderr)
        assert "evil\\x1b]0;PWNED\\x07dir" in r.stdout and not _obeyed(r.stdout + r.stderr)


def test_notes_errors_and_table_cells_escape_but_keep_their_line_breaks():
    assert render.table(["A", "B"], [["x\x1b[2J", "y\u202e"]]) == \
        "A         B\nx\\x1b[2J  y\\u202e\n"
    assert render.format_error("bad_query", "no file a\x1b]0;t\x07.py\nsee --help",
                               as_json=False) == \
        "ragexctl: no file a\\x1b]0;t\\x07.py\nsee --help\n"
    assert json.loads(render.format_error("bad_query", "a\x1b", as_json=True)
                      )["error"]["message"] == "a\x1b"
    app = cli.App.__new__(cli.App)
    app.err = io.StringIO()
    app.note("skipped \x1b[31mred.py: reason")
    assert app.err.getvalue() == "ragexctl: skipped \\x1b[31mred.py: reason\n"


def test_ragexd_and_worker_logs_hold_a_hostile_root_escaped(rx) -> None:
    """The log files (read by `tail`, `less`, journald) and ragexd's own stderr
    name the root with its escapes shown, as `ragexctl logs` does."""
    root = write_tree(rx.base / ("logged-" + EVIL), files=4)
    r = rx.ctl("index", cwd=root, timeout=240)
    assert r.returncode == 0, r.stderr
    assert rx.ctl("stop", ".", cwd=root, timeout=120).returncode == 0
    logs = {p.name: p.read_text(errors="replace") for p in (rx.state / "logs").iterdir()
            if p.is_file()}
    assert "logged-evil\\x1b]0;PWNED\\x07dir" in logs["ragexd.log"], logs["ragexd.log"][-2000:]
    for name, text in {**logs, "ragexd's stderr": rx.output()}.items():
        assert not _obeyed(text), (name, text[-2000:])



def test_a_worker_started_on_a_missing_root_logs_its_name_escaped(tmp_path: Path) -> None:
    """The worker's stderr is its log file: the one line it writes before serving
    (the root is gone) goes through the log's escaping like any other."""
    missing = tmp_path / EVIL / "gone"
    r = subprocess.run([sys.executable, "-m", "ragexd.worker", "oneshot", "--root", str(missing),
                        "--index-dir", str(tmp_path / "index")],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "evil\\x1b]0;PWNED\\x07dir/gone is not a directory" in r.stderr, r.stderr
    assert not _obeyed(r.stderr), r.stderr

def test_mcp_names_missing_paths_and_bad_configuration_with_escapes_shown(rx_env) -> None:
    missing = rx_env.base / EVIL / "nowhere"
    served = rx_env.ctl("mcp", "--project", str(missing), timeout=60)
    assert served.returncode != 0
    assert "evil\\x1b]0;PWNED\\x07dir/nowhere" in served.stderr, served.stderr

    config = rx_env.ctl("mcp", "config", "claude", "--project", str(missing), timeout=60)
    assert config.returncode != 0
    assert "no such directory" in config.stderr and "PWNED\\x07dir" in config.stderr

    bad = rx_env.base / EVIL / "config"
    bad.mkdir(parents=True)
    (bad / "config.toml").write_text("this is = not [ toml\n")
    r = rx_env.ctl("mcp", "--project", str(rx_env.base), timeout=60,
                   env={**rx_env.env, "RAGEX_CONFIG_DIR": str(bad)})
    assert r.returncode != 0 and "bad configuration" in r.stderr, r.stderr
    assert "PWNED\\x07dir/config/config.toml" in r.stderr
    for out in (served, config, r):
        assert not _obeyed(out.stdout + out.stderr), out.stderr


def test_an_ascii_only_output_gets_what_it_cannot_encode_as_backslash_escapes(rx_env) -> None:
    """Both ways into ragexctl (the direct regex path, the CLI) write a non-ASCII
    name to an ASCII-only stdout escaped, never a UnicodeEncodeError traceback."""
    root = rx_env.base / "proj-caf\u00e9"
    (root / ".git").mkdir(parents=True)
    (root / "caf\u00e9.py").write_text("needle_here = 1\n")
    env = {**rx_env.env, "PYTHONIOENCODING": "ascii", "RAGEX_SEARCH_DIRECT_REGEX": "true"}
    direct = rx_env.ctl("search", "--mode", "regex", "needle_here", cwd=root, env=env,
                        timeout=60)
    assert direct.returncode == 0, direct.stderr
    assert "caf\\xe9.py:1:needle_here = 1" in direct.stdout
    # through ragexd: the hit comes back from a worker, printed to stdout (stderr
    # Python writes backslashreplace anyway, so only stdout can show the fault)
    served = rx_env.ctl("search", "--mode", "regex", "needle_here", cwd=root, timeout=240,
                        env={**env, "RAGEX_SEARCH_DIRECT_REGEX": "false"})
    assert served.returncode == 0, served.stderr
    assert "caf\\xe9.py:1:needle_here = 1" in served.stdout, served.stdout
    # every `search` passes the direct path's door (entry.py) first: a command that
    # does not is what shows cli._main reconfiguring stdout itself
    cli = rx_env.ctl("ls", cwd=root, env=env, timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert "proj-caf\\xe9" in cli.stdout, cli.stdout
    assert "Traceback" not in direct.stderr + served.stderr + cli.stderr
