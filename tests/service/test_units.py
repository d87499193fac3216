"""The rendered systemd unit and launchd agent are valid and say what we mean.

``systemd-analyze verify`` is systemd's own parser (Debian 12: systemd 252),
so an unknown key, a bad value or a non-executable ExecStart shows up as a
warning naming our file.  launchd cannot run here; the plist is checked by
loading it back with plistlib.
"""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ragexctl.service import common, launchd, systemd

from tests.harness import REPO

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def unit_keys(text: str) -> dict[tuple[str, str], list[str]]:
    """(section, key) -> values, in order (systemd allows repeated keys)."""
    out: dict[tuple[str, str], list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        out.setdefault((section, key.strip()), []).append(value.strip())
    return out


def verify(unit_text: str, tmp: Path, name: str = "ragexd.service") -> list[str]:
    """Run ``systemd-analyze --user verify`` and return the lines about our unit."""
    if SYSTEMD_ANALYZE is None:
        pytest.skip("systemd-analyze is not installed (apt-get install -y systemd); "
                    "the unit could not be verified")
    home = tmp / "vhome"
    run = tmp / "vrun"
    home.mkdir(exist_ok=True)
    run.mkdir(mode=0o700, exist_ok=True)
    path = tmp / name
    path.write_text(unit_text)
    env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(home),
           "XDG_RUNTIME_DIR": str(run), "LANG": "C.UTF-8"}
    proc = subprocess.run([SYSTEMD_ANALYZE, "--user", "verify", str(path)], env=env,
                          capture_output=True, text=True, timeout=60)
    lines = (proc.stdout + proc.stderr).splitlines()
    return [l for l in lines if name in l or str(path) in l]


def test_checked_in_templates_match_the_code():
    """units/ is for packagers and review; what gets installed comes from the code.
    They must not drift apart."""
    assert (REPO / "units" / "ragexd.service").read_text() == systemd.UNIT_TEMPLATE
    assert (REPO / "units" / "io.ragex.ragexd.plist").read_bytes() == launchd.plist_template()


def test_unit_has_the_required_settings(ragexd_script):
    text = systemd.render_unit([str(ragexd_script)], {"PATH": "/usr/bin:/bin"})
    keys = unit_keys(text)
    assert "@RAGEXD@" not in text and "@ENVIRONMENT@" not in text, "unrendered placeholder"
    assert systemd.UNIT_TEMPLATE.count("@RAGEXD@") == systemd.UNIT_TEMPLATE.count(
        "@ENVIRONMENT@") == 1, "placeholders belong on their lines only (not in comments)"
    assert keys[("Service", "Type")] == ["notify"]
    assert keys[("Service", "ExecStart")] == [f"{ragexd_script} --foreground"]
    assert keys[("Service", "Restart")] == ["on-failure"]
    assert keys[("Service", "NotifyAccess")] == ["main"]
    assert keys[("Service", "KillMode")] == ["mixed"]
    assert keys[("Service", "TimeoutStopSec")] == ["30"]
    assert int(keys[("Service", "WatchdogSec")][0]) >= 10
    assert float(keys[("Service", "RestartSec")][0]) > 0
    assert keys[("Service", "MemoryMax")] and keys[("Service", "OOMPolicy")] == ["continue"]
    assert "PYTHONUNBUFFERED=1" in keys[("Service", "Environment")]
    assert int(keys[("Unit", "StartLimitBurst")][0]) >= 1
    assert int(keys[("Unit", "StartLimitIntervalSec")][0]) > 0
    assert keys[("Install", "WantedBy")] == ["default.target"]


def test_systemd_analyze_verify_accepts_the_rendered_unit(ragexd_script, rx_tmp):
    env = common.service_environment([str(ragexd_script)],
                                     {"PATH": "/usr/bin:/bin", "RAGEX_RUNTIME_DIR": "/tmp/rx"})
    problems = verify(systemd.render_unit([str(ragexd_script)], env), rx_tmp)
    assert problems == []


def test_verify_catches_a_broken_unit(ragexd_script, rx_tmp):
    """Control: the check above can fail (a typo'd key, a missing binary)."""
    text = systemd.render_unit([str(ragexd_script)], {"PATH": "/usr/bin"})
    broken = text.replace("KillMode=mixed", "KillMode=mixed\nWatchdogSecs=30")
    assert any("WatchdogSecs" in l for l in verify(broken, rx_tmp))
    missing = systemd.render_unit([str(rx_tmp / "no-such-ragexd")], {"PATH": "/usr/bin"})
    assert any("not executable" in l for l in verify(missing, rx_tmp))


def test_awkward_paths_are_quoted_for_systemd(ragexd_script, rx_tmp):
    """An install path with a space, '%' or '$' must reach exec() unchanged."""
    odd_dir = rx_tmp / "my bin"
    odd_dir.mkdir()
    odd = odd_dir / "rx%d$x"
    odd.symlink_to(ragexd_script)
    text = systemd.render_unit([str(odd)], {"PATH": f"{odd_dir}:/usr/bin", "V": 'a"b%c'})
    assert verify(text, rx_tmp) == []   # would say "not executable" if mangled
    exec_start = unit_keys(text)[("Service", "ExecStart")][0]
    assert exec_start == f'"{odd_dir}/rx%%d$x" --foreground'


def test_environment_passes_locations_and_docker_host(ragexd_script):
    env = common.service_environment(
        [str(ragexd_script)],
        {"PATH": "/usr/bin:/bin", "RAGEX_RUNTIME_DIR": "/tmp/rx-run", "DOCKER_HOST":
         "unix:///run/user/1000/docker.sock", "RAGEX_DAEMON_MEMORY_LIMIT": "1GiB"})
    assert env["PATH"].split(":")[0] == str(ragexd_script.parent)
    assert env["RAGEX_RUNTIME_DIR"] == "/tmp/rx-run"
    assert env["DOCKER_HOST"] == "unix:///run/user/1000/docker.sock"
    # Tuning belongs in config.toml: frozen into the unit it would silently win.
    assert "RAGEX_DAEMON_MEMORY_LIMIT" not in env


def test_find_ragexd_prefers_this_installation(ragexd_script):
    assert common.find_ragexd() == [str(ragexd_script)]


def test_plist_loads_and_has_every_key(ragexd_script, rx_tmp):
    home = rx_tmp / "home"
    env = common.service_environment(
        [str(ragexd_script)], {"PATH": "/opt/homebrew/bin:/usr/bin:/bin",
                               "DOCKER_HOST": "unix:///Users/me/.docker/run/docker.sock"})
    data = plistlib.loads(launchd.render_plist([str(ragexd_script)], env, home=home))
    assert data["Label"] == launchd.LAUNCHD_LABEL == "io.ragex.ragexd"
    assert data["ProgramArguments"] == [str(ragexd_script), "--foreground"]
    assert data["RunAtLoad"] is True
    assert data["KeepAlive"] == {"SuccessfulExit": False}
    assert isinstance(data["ThrottleInterval"], int) and data["ThrottleInterval"] > 0
    assert data["ExitTimeOut"] == 30
    assert data["ProcessType"] in ("Background", "Interactive", "Standard", "Adaptive")
    logs = home / "Library" / "Logs" / "ragex"
    assert Path(data["StandardOutPath"]).parent == logs
    assert Path(data["StandardErrorPath"]).parent == logs
    envvars = data["EnvironmentVariables"]
    assert envvars["PATH"].startswith(str(ragexd_script.parent) + ":/opt/homebrew/bin")
    assert envvars["DOCKER_HOST"] == "unix:///Users/me/.docker/run/docker.sock"
    assert envvars["PYTHONUNBUFFERED"] == "1"


def test_plist_survives_hostile_strings(rx_tmp):
    """plistlib escapes what string templating would not (&, <, quotes)."""
    weird = str(rx_tmp / "a&b <c> \"d\"" / "ragexd")
    data = plistlib.loads(launchd.render_plist([weird], {"PATH": "x&<y>"}, home=rx_tmp))
    assert data["ProgramArguments"][0] == weird
    assert data["EnvironmentVariables"]["PATH"] == "x&<y>"


def test_docker_host_detection(rx_tmp):
    assert common.docker_host({"DOCKER_HOST": "tcp://h:2375"}) == "tcp://h:2375"
    if os.path.exists("/var/run/docker.sock"):
        assert common.docker_host({"HOME": str(rx_tmp)}) is None
    else:
        sock = rx_tmp / ".docker" / "run" / "docker.sock"
        sock.parent.mkdir(parents=True)
        sock.touch()
        assert common.docker_host({"HOME": str(rx_tmp)}) == f"unix://{sock}"


def test_xdg_config_home_is_honoured(rx_tmp):
    assert systemd.systemd_unit_path({"XDG_CONFIG_HOME": str(rx_tmp / "cfg"), "HOME": "/x"}) \
        == rx_tmp / "cfg" / "systemd" / "user" / "ragexd.service"
    assert systemd.systemd_unit_path({"HOME": str(rx_tmp)}) \
        == rx_tmp / ".config" / "systemd" / "user" / "ragexd.service"


def test_service_module_stays_lean():
    """ragexctl imports this module; it must not drag in zmq, let alone the engine."""
    code = ("import sys, ragexctl.service; "
            "bad = [m for m in ('zmq', 'torch', 'chromadb', 'docker', 'ragexd.engine', "
            "'ragexd.supervisor') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=str(REPO), timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
