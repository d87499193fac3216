"""``ragexctl service install|uninstall|status`` run as real subprocesses.

There is no user service manager in this environment (no XDG_RUNTIME_DIR, no
systemd as PID 1): install must still write and enable the unit and say so
clearly.  The systemd side is not mocked at all: the real ``systemctl --user
enable`` runs (it is a file operation that works offline).

launchd cannot run here.  The launchd tests mock ONLY the ``launchctl``
binary: a fake script first on PATH records its arguments and simulates
"loaded"/"not loaded"; everything else (plist rendering, file writes, log
directory, idempotence) is the real code, selected with
RAGEX_SERVICE_MANAGER=launchd.
"""

from __future__ import annotations

import os
import plistlib
import shutil
import stat
from pathlib import Path

import pytest

from tests.harness import REPO, make_env, ragexctl
from .test_units import unit_keys

HAVE_SYSTEMCTL = shutil.which("systemctl") is not None


def unit_path(env: dict[str, str]) -> Path:
    base = env.get("XDG_CONFIG_HOME") or os.path.join(env["HOME"], ".config")
    return Path(base) / "systemd" / "user" / "ragexd.service"


def test_install_without_a_user_manager(rx_tmp, ragexd_script):
    env = make_env(rx_tmp, session=True)
    res = ragexctl(env, "service", "install")
    assert res.returncode == 0, res.stderr
    unit = unit_path(env)
    assert unit.is_file()
    keys = unit_keys(unit.read_text())
    assert keys[("Service", "ExecStart")] == [f"{ragexd_script} --foreground"]
    # The location the shell's ragexctl uses is the one the service's ragexd binds.
    env_line = " ".join(keys[("Service", "Environment")])
    assert f"RAGEX_RUNTIME_DIR={env['RAGEX_RUNTIME_DIR']}" in env_line
    out = res.stdout + res.stderr
    assert "no user service manager" in out
    assert "XDG_RUNTIME_DIR is not set" in out          # the precise reason
    assert "on demand" in out                           # and the fallback
    if HAVE_SYSTEMCTL:
        wants = unit.parent / "default.target.wants" / "ragexd.service"
        assert wants.is_symlink() and wants.resolve() == unit.resolve()

    status = ragexctl(env, "service", "status")
    assert status.returncode == 0, status.stderr
    assert str(unit) in status.stdout
    assert "none running" in status.stdout
    if HAVE_SYSTEMCTL:
        assert "enabled:         enabled" in status.stdout

    # Re-installing an identical unit changes nothing and still succeeds.
    again = ragexctl(env, "service", "install")
    assert again.returncode == 0 and "up to date" in again.stdout

    gone = ragexctl(env, "service", "uninstall")
    assert gone.returncode == 0, gone.stderr
    assert not unit.exists()
    assert not (unit.parent / "default.target.wants" / "ragexd.service").is_symlink()
    twice = ragexctl(env, "service", "uninstall")
    assert twice.returncode == 0 and "nothing to do" in twice.stdout


def test_xdg_config_home_and_unreachable_runtime_dir(rx_tmp):
    """XDG_CONFIG_HOME decides where the unit goes; an XDG_RUNTIME_DIR without a
    manager socket is reported as such."""
    run = rx_tmp / "xdg-run"
    run.mkdir(mode=0o700)
    env = make_env(rx_tmp, session=True, XDG_CONFIG_HOME=str(rx_tmp / "cfg"), XDG_RUNTIME_DIR=str(run))
    res = ragexctl(env, "service", "install")
    assert res.returncode == 0, res.stderr
    assert (rx_tmp / "cfg" / "systemd" / "user" / "ragexd.service").is_file()
    assert not (Path(env["HOME"]) / ".config" / "systemd").exists()
    assert f"no user manager socket at {run}/systemd/private" in res.stdout
    assert ragexctl(env, "service", "uninstall").returncode == 0
    assert not (rx_tmp / "cfg" / "systemd" / "user" / "ragexd.service").exists()


def test_dry_run_and_print_change_nothing(rx_tmp, ragexd_script):
    env = make_env(rx_tmp, session=True)
    dry = ragexctl(env, "service", "install", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would: write" in dry.stdout and f"ExecStart={ragexd_script} --foreground" in dry.stdout
    printed = ragexctl(env, "service", "install", "--print")
    assert printed.returncode == 0
    assert unit_keys(printed.stdout)[("Service", "Type")] == ["notify"]
    assert not (Path(env["HOME"]) / ".config").exists()


def test_explicit_ragexd_path(rx_tmp, ragexd_script):
    """--ragexd is made absolute (a service has no working directory) and must exist."""
    env = make_env(rx_tmp, session=True)
    rel = os.path.relpath(ragexd_script, REPO)  # ragexctl() runs in REPO
    res = ragexctl(env, "service", "install", "--print", "--ragexd", rel)
    assert res.returncode == 0, res.stderr
    assert unit_keys(res.stdout)[("Service", "ExecStart")] == [f"{ragexd_script} --foreground"]
    bad = ragexctl(env, "service", "install", "--ragexd", str(rx_tmp / "nope"))
    assert bad.returncode == 2 and "not an executable file" in bad.stderr
    assert not (Path(env["HOME"]) / ".config").exists()


def test_unwritable_unit_dir_is_an_error(rx_tmp):
    env = make_env(rx_tmp, session=True)
    cfg = Path(env["HOME"]) / ".config"
    cfg.write_text("a file where a directory should be")
    res = ragexctl(env, "service", "install")
    assert res.returncode == 2
    assert "cannot write" in res.stderr


# --- launchd, with only launchctl faked ---------------------------------------------------

FAKE_LAUNCHCTL = """#!/bin/sh
# Fake launchctl: logs each call; `print` succeeds only while "loaded".
echo "$@" >> "$FAKE_LAUNCHCTL_LOG"
case "$1" in
  print)     [ -e "$FAKE_LAUNCHCTL_STATE" ] && { echo "	state = running"; echo "	pid = 4242"; exit 0; }
             echo "Could not find service" >&2; exit 113 ;;
  bootstrap) [ -n "$FAKE_LAUNCHCTL_FAIL" ] && { echo "Bootstrap failed: 125: Domain does not support specified action" >&2; exit 125; }
             touch "$FAKE_LAUNCHCTL_STATE"; exit 0 ;;
  bootout)   rm -f "$FAKE_LAUNCHCTL_STATE"; exit 0 ;;
  *)         exit 0 ;;
esac
"""


@pytest.fixture
def launchd_env(rx_tmp):
    bindir = rx_tmp / "fakebin"
    bindir.mkdir()
    fake = bindir / "launchctl"
    fake.write_text(FAKE_LAUNCHCTL)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    env = make_env(rx_tmp, session=True, RAGEX_SERVICE_MANAGER="launchd",
                       DOCKER_HOST="unix:///Users/me/.docker/run/docker.sock",
                       FAKE_LAUNCHCTL_LOG=str(rx_tmp / "launchctl.log"),
                       FAKE_LAUNCHCTL_STATE=str(rx_tmp / "loaded"))
    env["PATH"] = f"{bindir}:{env['PATH']}"
    return env


def calls(env: dict[str, str]) -> list[str]:
    log = Path(env["FAKE_LAUNCHCTL_LOG"])
    return log.read_text().splitlines() if log.exists() else []


def test_launchd_install_status_uninstall(launchd_env, ragexd_script):
    env = launchd_env
    home = Path(env["HOME"])
    uid = os.getuid()
    plist = home / "Library" / "LaunchAgents" / "io.ragex.ragexd.plist"

    res = ragexctl(env, "service", "install")
    assert res.returncode == 0, res.stderr
    data = plistlib.loads(plist.read_bytes())
    assert data["ProgramArguments"] == [str(ragexd_script), "--foreground"]
    assert data["EnvironmentVariables"]["DOCKER_HOST"] == env["DOCKER_HOST"]
    assert data["EnvironmentVariables"]["RAGEX_RUNTIME_DIR"] == env["RAGEX_RUNTIME_DIR"]
    assert data["StandardErrorPath"].startswith(str(home / "Library" / "Logs" / "ragex") + "/")
    assert (home / "Library" / "Logs" / "ragex").is_dir()    # launchd would not create it
    assert f"bootstrap gui/{uid} {plist}" in calls(env)

    status = ragexctl(env, "service", "status")
    assert status.returncode == 0
    assert str(plist) in status.stdout and "pid 4242" in status.stdout

    # Reinstall while loaded: bootstrap refuses a loaded label, so bootout comes first.
    Path(env["FAKE_LAUNCHCTL_LOG"]).unlink()
    assert ragexctl(env, "service", "install").returncode == 0
    seq = [c.split()[0] for c in calls(env)]
    assert seq.index("bootout") < seq.index("bootstrap")

    res = ragexctl(env, "service", "uninstall")
    assert res.returncode == 0, res.stderr
    assert f"bootout gui/{uid}/io.ragex.ragexd" in calls(env)
    assert not plist.exists()
    res = ragexctl(env, "service", "uninstall")
    assert res.returncode == 0 and "nothing to do" in res.stdout


def test_launchd_bootstrap_failure_is_reported(launchd_env):
    env = dict(launchd_env, FAKE_LAUNCHCTL_FAIL="1")
    res = ragexctl(env, "service", "install")
    assert res.returncode == 2
    assert "bootstrap" in res.stderr and "125" in res.stderr
    assert "on demand" in res.stderr          # the fallback is still explained
