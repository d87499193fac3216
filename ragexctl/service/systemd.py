"""The Linux backend: a systemd user unit for ragexd.

Renders ``ragexd.service`` from the template shipped in ``ragexctl/units/``
(quoted the way systemd parses it), writes it to
``$XDG_CONFIG_HOME/systemd/user/``, and drives ``systemctl --user``:
install/enable/start, disable/remove, status.  When no ``systemd --user``
manager runs (containers, CI, ssh without a session), the unit is still
written and enabled for the next login, and the reason nothing started is said
plainly.
"""

from __future__ import annotations

import argparse
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ragexd import where

from .common import (EXIT_ERROR, EXIT_OK, Console,
                     installed_not_started, ragexd_command,
                     remove_file, run_tool, service_environment, write_atomic)
from .handover import ondemand_ragexd, stop_ondemand

UNIT_NAME = "ragexd.service"

#: systemd user-manager states in which it accepts jobs.
_MANAGER_UP = {"running", "degraded", "starting", "initializing", "maintenance"}


def _template(name: str) -> str:
    """A unit template shipped as package data (ragexctl/units/, also reachable
    as units/ at the top of the source tree for packagers)."""
    from importlib.resources import files

    return files("ragexctl").joinpath("units", name).read_text(encoding="utf-8")


#: The systemd user unit, with @RAGEXD@ and @ENVIRONMENT@ to fill in.
UNIT_TEMPLATE = _template("ragexd.service")


# --- The unit file --------------------------------------------------------------------


def _systemd_quote(word: str, *, dollar: bool) -> str:
    """Quote one word for a unit file.

    ``%`` starts a specifier everywhere, so it is doubled; ``$`` starts a
    variable in Exec *arguments* (not in the executable's path, where systemd
    takes it literally), so it is doubled there only; quotes and backslashes
    are C-escaped inside "...".
    """
    text = word.replace("%", "%%")
    if dollar:
        text = text.replace("$", "$$")
    if text and not any(c in text for c in ' \t"\'\\;'):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_unit(command: Sequence[str], environment: dict[str, str]) -> str:
    exec_start = " ".join(_systemd_quote(w, dollar=i > 0) for i, w in enumerate(command))
    env_line = " ".join(_systemd_quote(f"{k}={v}", dollar=False)
                        for k, v in environment.items())
    return (UNIT_TEMPLATE.replace("@RAGEXD@", exec_start)
            .replace("@ENVIRONMENT@", env_line))


def systemd_unit_dir(env: dict[str, str] | None = None) -> Path:
    env = dict(os.environ) if env is None else env
    base = env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME") or str(Path.home()),
                                                      ".config")
    return Path(base) / "systemd" / "user"


def systemd_unit_path(env: dict[str, str] | None = None) -> Path:
    return systemd_unit_dir(env) / UNIT_NAME


# --- The user manager -----------------------------------------------------------------


@dataclass
class SystemdProbe:
    systemctl: str | None
    running: bool
    reason: str                     # why no manager (a sentence) when not running
    env: dict[str, str]             # environment for systemctl (XDG_RUNTIME_DIR filled in)

    def cmd(self, *args: str) -> list[str]:
        return [self.systemctl or "systemctl", "--user", *args]


def probe_systemd(env: dict[str, str] | None = None) -> SystemdProbe:
    """Is a ``systemd --user`` manager running for us, and how do we reach it?

    Checked cheapest first: the systemctl binary, a runtime dir, the manager's
    private socket, and finally the manager's own answer.  When
    XDG_RUNTIME_DIR is unset (sudo, su, cron) but /run/user/<uid> exists, that
    is used: it is where pam_systemd puts it.
    """
    env = dict(os.environ) if env is None else dict(env)
    systemctl = shutil.which("systemctl", path=env.get("PATH"))
    if not systemctl:
        return SystemdProbe(None, False, "the `systemctl` command is not installed", env)
    runtime = env.get("XDG_RUNTIME_DIR")
    if not runtime:
        default = Path(where.systemd_runtime_dir())
        if not default.is_dir():
            return SystemdProbe(systemctl, False,
                                f"XDG_RUNTIME_DIR is not set and {default} does not exist "
                                "(no login session)", env)
        runtime = str(default)
        env["XDG_RUNTIME_DIR"] = runtime
    private = Path(runtime) / "systemd" / "private"
    if not private.exists():
        return SystemdProbe(systemctl, False,
                            f"there is no user manager socket at {private}", env)
    res = run_tool([systemctl, "--user", "is-system-running"], env=env, timeout=10)
    state = res.stdout.strip()
    if state in _MANAGER_UP:
        return SystemdProbe(systemctl, True, "", env)
    return SystemdProbe(systemctl, False,
                        f"`systemctl --user is-system-running` says: {state or res.text or res.code}",
                        env)


def _systemd_prop(probe: SystemdProbe, prop: str) -> str:
    res = run_tool(probe.cmd("show", "-p", prop, "--value", UNIT_NAME), env=probe.env, timeout=10)
    return res.stdout.strip() if res.ok else ""


def _linger_enabled(probe: SystemdProbe) -> bool | None:
    loginctl = shutil.which("loginctl", path=probe.env.get("PATH"))
    if not loginctl:
        return None
    res = run_tool([loginctl, "show-user", str(os.getuid()), "-p", "Linger", "--value"],
                    env=probe.env, timeout=10)
    if not res.ok:
        return None
    return res.stdout.strip() == "yes"


def _user_name() -> str:
    return os.environ.get("USER") or os.environ.get("LOGNAME") or str(os.getuid())


# --- install / uninstall / status -----------------------------------------------------


def systemd_install(args: argparse.Namespace, con: Console) -> int:
    command = ragexd_command(args)
    text = render_unit(command, service_environment(command))
    if args.print:
        con.out(text.rstrip("\n"))
        return EXIT_OK
    unit = systemd_unit_path()
    probe = probe_systemd()
    if con.dry_run:
        con.out(f"unit file {unit}:\n" + "\n".join("  " + l for l in text.splitlines()))
    try:
        changed = write_atomic(unit, text.encode(), con)
    except OSError as exc:
        con.err(f"error: cannot write {unit}: {exc.strerror or exc}")
        return EXIT_ERROR

    if probe.systemctl is None:
        return installed_not_started(
            con, f"ragexd's unit is in {unit}, but systemd is not installed here "
            f"({probe.reason}), so nothing will start it at login.", fallback=True)

    if probe.running:
        con.step("systemctl --user daemon-reload")
        if not con.dry_run:
            res = run_tool(probe.cmd("daemon-reload"), env=probe.env)
            if not res.ok:
                con.err(f"error: systemctl --user daemon-reload failed: {res.text}")
                return EXIT_ERROR
    # Enabling is a file operation (a symlink in default.target.wants): it works
    # without a running manager, so the unit starts at the next real login.
    con.step("systemctl --user enable ragexd")
    if not con.dry_run:
        res = run_tool(probe.cmd("enable", UNIT_NAME), env=probe.env)
        if not res.ok:
            con.err(f"error: systemctl --user enable ragexd failed: {res.text}")
            return EXIT_ERROR

    if not probe.running:
        if con.dry_run:
            con.out(f"(no user service manager is running here: {probe.reason}; "
                    "ragexd would not be started now)")
        return installed_not_started(
            con, f"Installed and enabled {unit}, but no user service manager (systemd --user) "
            f"is running here: {probe.reason}. This is normal in containers and CI. "
            "ragexd was not started; the unit will start it at your next login to a "
            "session with systemd.", fallback=True)

    if args.no_start:
        return installed_not_started(
            con, f"Installed and enabled {unit}; ragexd starts at your next login "
            "(or now: `systemctl --user start ragexd`).", fallback=False)
    main_pid = _systemd_prop(probe, "MainPID")
    stop_ondemand(int(main_pid) if main_pid.isdigit() and main_pid != "0" else None, con)
    active = _systemd_prop(probe, "ActiveState") == "active"
    verb = "restart" if (active and changed) else "start"
    con.step(f"systemctl --user {verb} ragexd")
    if not con.dry_run:
        res = run_tool(probe.cmd(verb, UNIT_NAME), env=probe.env, timeout=120)
        if not res.ok:
            con.err(f"error: ragexd did not start: {res.text}\n"
                    "See why with: journalctl --user -u ragexd -n 50")
            return EXIT_ERROR
        pid = _systemd_prop(probe, "MainPID")
        con.out(f"ragexd is running under systemd (pid {pid}) and starts at every login. "
                "Logs: journalctl --user -u ragexd")
    linger = _linger_enabled(probe)
    if linger is False:
        con.out("Tip: ragexd stops when your last session ends. To keep it running without "
                f"an open session (ssh, remote editors), run: loginctl enable-linger {_user_name()}")
    return EXIT_OK


def systemd_uninstall(args: argparse.Namespace, con: Console) -> int:
    unit = systemd_unit_path()
    probe = probe_systemd()
    installed = unit.exists()
    wants = systemd_unit_dir() / "default.target.wants" / UNIT_NAME
    loaded = probe.running and _systemd_prop(probe, "LoadState") == "loaded"
    if not installed and not loaded and not wants.is_symlink():
        con.out(f"ragexd's service is not installed ({unit} does not exist); nothing to do.")
        return EXIT_OK
    failed = False
    if probe.systemctl and installed:
        # --now stops ragexd (and so its workers) when a manager runs it.
        verb = ["disable", "--now"] if probe.running else ["disable"]
        con.step(f"systemctl --user {' '.join(verb)} ragexd")
        if not con.dry_run:
            res = run_tool(probe.cmd(*verb, UNIT_NAME), env=probe.env, timeout=60)
            if not res.ok:
                con.err(f"warning: systemctl --user {' '.join(verb)} ragexd: {res.text}")
                failed = True
    try:
        remove_file(unit, con)
        remove_file(wants, con)  # in case systemctl was unavailable or failed
    except OSError as exc:
        con.err(f"error: cannot remove {unit}: {exc.strerror or exc}")
        return EXIT_ERROR
    if probe.running:
        con.step("systemctl --user daemon-reload")
        if not con.dry_run:
            run_tool(probe.cmd("daemon-reload"), env=probe.env)
            run_tool(probe.cmd("reset-failed", UNIT_NAME), env=probe.env)
    if not con.dry_run:
        con.out("ragexd's login service is uninstalled" + (" (with warnings above)" if failed
                                                           else "") +
                ". ragexctl still starts ragexd on demand.")
    return EXIT_OK


def systemd_status(args: argparse.Namespace, con: Console) -> int:
    unit = systemd_unit_path()
    probe = probe_systemd()
    if probe.running:
        con.out("service manager: systemd --user (running)")
    else:
        con.out(f"service manager: none running ({probe.reason})")
    if not unit.exists():
        con.out(f"unit file:       not installed ({unit}); install it with "
                "`ragexctl service install`")
    else:
        current = unit.read_text(errors="replace")
        command = ragexd_command(args)
        fresh = current == render_unit(command, service_environment(command))
        con.out(f"unit file:       {unit}" + ("" if fresh else
                "  (differs from what `ragexctl service install` would write now: the "
                "installation moved or the environment changed; re-run it)"))
        exec_line = next((l for l in current.splitlines() if l.startswith("ExecStart=")), "")
        if exec_line:
            con.out(f"  {exec_line}")
        if probe.systemctl:
            res = run_tool(probe.cmd("is-enabled", UNIT_NAME), env=probe.env, timeout=10)
            enabled = res.stdout.strip() or "unknown"
        else:
            enabled = "unknown (systemctl not installed)"
        con.out(f"enabled:         {enabled}" + (" (starts at login)" if enabled == "enabled"
                                                 else ""))
    if probe.running:
        state = _systemd_prop(probe, "ActiveState") or "unknown"
        sub = _systemd_prop(probe, "SubState")
        pid = _systemd_prop(probe, "MainPID")
        line = f"active:          {state}" + (f" ({sub})" if sub else "")
        if pid and pid != "0":
            line += f", pid {pid}"
        con.out(line)
        other = ondemand_ragexd(int(pid) if pid.isdigit() and pid != "0" else None)
    else:
        con.out("active:          n/a (no user service manager)")
        other = ondemand_ragexd()
    if other:
        con.out(f"on demand:       ragexd pid {other} is running outside the service manager")
    return EXIT_OK
