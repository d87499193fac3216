"""The macOS backend: a launchd LaunchAgent for ragexd.

Builds ``~/Library/LaunchAgents/io.ragex.ragexd.plist`` with plistlib (so it
is always valid XML; ``units/io.ragex.ragexd.plist`` is the same agent with
placeholders, for packagers) and drives ``launchctl``: bootstrap into the
``gui/<uid>`` domain, bootout, and status from ``launchctl print``.
"""

from __future__ import annotations

import argparse
import os
import plistlib
import shutil
from pathlib import Path
from typing import Sequence

from .common import (EXIT_ERROR, EXIT_OK, Console, Outcome, fallback_note,
                     installed_not_started, ragexd_command,
                     remove_file, run_tool, service_environment, write_atomic)
from .handover import ondemand_ragexd, stop_ondemand

LAUNCHD_LABEL = "io.ragex.ragexd"


# --- The agent file -------------------------------------------------------------------


def launchd_log_dir(home: Path | None = None) -> Path:
    return (home or Path.home()) / "Library" / "Logs" / "ragex"


def launchd_plist_path(home: Path | None = None) -> Path:
    return (home or Path.home()) / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"


def render_plist(command: Sequence[str], environment: dict[str, str],
                 home: Path | None = None) -> bytes:
    """The launchd agent, built as a dict and serialised by plistlib: always valid XML.

    KeepAlive/SuccessfulExit=false mirrors Restart=on-failure (a clean
    ``ragexctl stop --all`` stays stopped).  ProcessType Interactive because
    every request is something a person (or their editor) waits for:
    Background would put ragexd and its workers under throttled CPU and I/O
    and make a warm search slow on a busy Mac.
    """
    logs = launchd_log_dir(home)
    data = {
        "Label": LAUNCHD_LABEL,
        "ProgramArguments": [*command, "--foreground"],
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        # Crash loops: launchd waits at least this long between starts.
        "ThrottleInterval": 10,
        # SIGTERM -> SIGKILL grace: ragexd stops its workers first.
        "ExitTimeOut": 30,
        "ProcessType": "Interactive",
        "StandardOutPath": str(logs / "ragexd.out.log"),
        "StandardErrorPath": str(logs / "ragexd.err.log"),
        # Agents do not get the login shell's environment.
        "EnvironmentVariables": {"PYTHONUNBUFFERED": "1", **environment},
    }
    return plistlib.dumps(data, fmt=plistlib.FMT_XML)


def plist_template() -> bytes:
    """units/io.ragex.ragexd.plist: the agent with placeholders, for packagers and
    review (the installed agent is built by render_plist, so it is always valid XML)."""
    return render_plist(["@RAGEXD@"], {"PATH": "@PATH@", "DOCKER_HOST": "@DOCKER_HOST@"},
                        home=Path("@HOME@"))


# --- install / uninstall / status -----------------------------------------------------


def _launchctl() -> str | None:
    return shutil.which("launchctl")


def _launchd_target() -> str:
    return f"gui/{os.getuid()}/{LAUNCHD_LABEL}"


def _launchd_loaded(launchctl: str) -> Outcome:
    return run_tool([launchctl, "print", _launchd_target()], timeout=10)


def launchd_install(args: argparse.Namespace, con: Console) -> int:
    command = ragexd_command(args)
    data = render_plist(command, service_environment(command))
    if args.print:
        con.out(data.decode().rstrip("\n"))
        return EXIT_OK
    plist = launchd_plist_path()
    if con.dry_run:
        con.out(f"agent file {plist}:\n" + "\n".join("  " + l
                                                     for l in data.decode().splitlines()))
    try:
        # launchd does not create the log directory; without it ragexd's output is lost.
        logs = launchd_log_dir()
        if not logs.is_dir():
            con.step(f"create {logs}")
            if not con.dry_run:
                logs.mkdir(parents=True, exist_ok=True)
        write_atomic(plist, data, con)
    except OSError as exc:
        con.err(f"error: cannot write {plist}: {exc.strerror or exc}")
        return EXIT_ERROR
    launchctl = _launchctl()
    if launchctl is None:
        return installed_not_started(
            con, f"Wrote {plist}, but `launchctl` is not available here, so no service "
            "manager will load it until you log in on a Mac.", fallback=True)
    if args.no_start:
        return installed_not_started(con, f"Wrote {plist}; launchd loads it at your next login.",
                                     fallback=False)
    domain = f"gui/{os.getuid()}"
    if _launchd_loaded(launchctl).ok:
        # bootstrap refuses an already-loaded label; reload to pick up changes.
        con.step(f"launchctl bootout {_launchd_target()}")
        if not con.dry_run:
            run_tool([launchctl, "bootout", _launchd_target()], timeout=60)
    stop_ondemand(None, con)
    con.step(f"launchctl enable {_launchd_target()}")
    con.step(f"launchctl bootstrap {domain} {plist}")
    if con.dry_run:
        return EXIT_OK
    run_tool([launchctl, "enable", _launchd_target()], timeout=10)  # clears a past `disable`
    res = run_tool([launchctl, "bootstrap", domain, str(plist)], timeout=60)
    if not res.ok:
        con.err(f"error: launchctl bootstrap {domain} failed: {res.text}\n"
                "Without a graphical login (ssh) the gui domain may not exist; "
                f"try `launchctl bootstrap user/{os.getuid()} {plist}`.")
        con.err(fallback_note())
        return EXIT_ERROR
    con.out(f"ragexd is loaded by launchd ({LAUNCHD_LABEL}) and starts at every login. "
            f"Logs: {launchd_log_dir()}/")
    return EXIT_OK


def launchd_uninstall(args: argparse.Namespace, con: Console) -> int:
    plist = launchd_plist_path()
    launchctl = _launchctl()
    loaded = bool(launchctl) and _launchd_loaded(launchctl).ok
    if not plist.exists() and not loaded:
        con.out(f"ragexd's agent is not installed ({plist} does not exist); nothing to do.")
        return EXIT_OK
    if loaded and launchctl:
        con.step(f"launchctl bootout {_launchd_target()}")
        if not con.dry_run:
            res = run_tool([launchctl, "bootout", _launchd_target()], timeout=60)
            if not res.ok:
                con.err(f"warning: launchctl bootout failed: {res.text}")
    try:
        remove_file(plist, con)
    except OSError as exc:
        con.err(f"error: cannot remove {plist}: {exc.strerror or exc}")
        return EXIT_ERROR
    if not con.dry_run:
        con.out("ragexd's login agent is uninstalled. ragexctl still starts ragexd on demand.")
    return EXIT_OK


def launchd_status(args: argparse.Namespace, con: Console) -> int:
    plist = launchd_plist_path()
    launchctl = _launchctl()
    con.out("service manager: launchd" + ("" if launchctl else " (launchctl not available)"))
    if plist.exists():
        con.out(f"agent file:      {plist}")
        try:
            info = plistlib.loads(plist.read_bytes())
            con.out(f"  ProgramArguments: {' '.join(info.get('ProgramArguments', []))}")
        except Exception as exc:  # plistlib raises several types for broken files
            con.out(f"  (unreadable: {exc}; re-run `ragexctl service install`)")
    else:
        con.out(f"agent file:      not installed ({plist}); install it with "
                "`ragexctl service install`")
    pid = None
    if launchctl:
        res = _launchd_loaded(launchctl)
        if res.ok:
            state, pid = "loaded", None
            # The service's own keys come first; nested blocks repeat some names.
            for line in res.stdout.splitlines():
                key, _, value = line.strip().partition(" = ")
                if key == "state" and state == "loaded":
                    state = f"loaded, {value}"
                elif key == "pid" and pid is None and value.strip().isdigit():
                    pid = int(value)
            con.out(f"active:          {state}" + (f", pid {pid}" if pid else ""))
        else:
            con.out("active:          not loaded")
    other = ondemand_ragexd(pid)
    if other:
        con.out(f"on demand:       ragexd pid {other} is running outside launchd")
    return EXIT_OK
