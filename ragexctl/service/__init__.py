"""``ragexctl service install|uninstall|status``: ragexd as a login service.

Auto-start on demand already makes ragexd appear when it is first needed; a
login service makes the *first* search of the day warm too (``--prestart``
starts the most recently used projects' workers before anyone asks), and puts
ragexd under a real service manager: restarted when it crashes, a watchdog
that catches a wedged main loop, logs in the journal.

* Linux: a systemd user unit in ``$XDG_CONFIG_HOME/systemd/user/ragexd.service``
  (``systemd.py``).
* macOS: a launchd agent in ``~/Library/LaunchAgents/io.ragex.ragexd.plist``
  (``launchd.py``).

Both are rendered with the real path of *this* installation's ragexd, and the
environment ragexd needs to find the same socket and indexes as the shell that
ran the install (a service manager does not read shell profiles): ``common.py``.
A ragexd that ragexctl started on demand is handed over to the manager
(``handover.py``).

When no user service manager runs (containers, CI, an ssh session without
``systemd --user``), the unit file is still written and enabled for the next
login, and the output says plainly that nothing was started and why: ragexctl
keeps starting ragexd on demand, so search works either way.

This module is the command itself: its arguments, and which backend handles
them.  ragexctl imports it only when ``ragexctl service`` runs; the package
imports only the standard library and ``ragexd.paths``/``ragexd.config``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from ragexd import exitcodes

from .common import EXIT_ERROR, Console, ServiceError
from .launchd import launchd_install, launchd_status, launchd_uninstall
from .systemd import systemd_install, systemd_status, systemd_uninstall

#: Choose the backend explicitly (tests, or a Linux box whose systemd is not the
#: service manager you want).  Values: ``systemd`` | ``launchd``.
MANAGER_ENV = "RAGEX_SERVICE_MANAGER"


def choose_manager() -> str:
    chosen = os.environ.get(MANAGER_ENV, "").strip().lower()
    if chosen in ("systemd", "launchd"):
        return chosen
    return "launchd" if sys.platform == "darwin" else "systemd"


_ACTIONS = {
    ("systemd", "install"): systemd_install,
    ("systemd", "uninstall"): systemd_uninstall,
    ("systemd", "status"): systemd_status,
    ("launchd", "install"): launchd_install,
    ("launchd", "uninstall"): launchd_uninstall,
    ("launchd", "status"): launchd_status,
}


def add_parser(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]"
               ) -> argparse.ArgumentParser:
    """Register ``service install|uninstall|status`` on ragexctl's subcommands."""
    parser = subparsers.add_parser(
        "service", help="start ragexd at login (systemd --user / launchd)",
        description="Install ragexd as a per-user login service: a systemd user unit on "
                    "Linux, a launchd agent on macOS.  Without it, ragexctl starts ragexd "
                    "on demand.")
    sub = parser.add_subparsers(dest="service_command", metavar="{install,uninstall,status}")
    sub.required = True
    inst = sub.add_parser("install", help="write the unit/agent, enable and start it")
    inst.add_argument("--dry-run", action="store_true",
                      help="show what would be written and run, change nothing")
    inst.add_argument("--print", action="store_true",
                      help="print the rendered unit/plist and exit")
    inst.add_argument("--no-start", action="store_true",
                      help="install and enable, but do not start ragexd now")
    inst.add_argument("--ragexd", metavar="PATH",
                      help="ragexd executable to run (default: this installation's)")
    uninst = sub.add_parser("uninstall", help="stop, disable and remove the unit/agent")
    uninst.add_argument("--dry-run", action="store_true",
                        help="show what would be removed and run, change nothing")
    stat = sub.add_parser("status", help="is the service installed, enabled, running?")
    stat.add_argument("--ragexd", metavar="PATH", help=argparse.SUPPRESS)
    return parser


def run(args: argparse.Namespace) -> int:
    action = getattr(args, "service_command", None)
    con = Console(dry_run=bool(getattr(args, "dry_run", False)))
    for name in ("print", "no_start"):
        if not hasattr(args, name):
            setattr(args, name, False)
    handler = _ACTIONS.get((choose_manager(), action or ""))
    if handler is None:
        con.err("usage: ragexctl service {install,uninstall,status}")
        return EXIT_ERROR
    try:
        return handler(args, con)
    except ServiceError as exc:
        con.err(f"ragexctl: {exc}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        return exitcodes.INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ragexctl.service ...`` works even without the full CLI."""
    parser = argparse.ArgumentParser(prog="ragexctl")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv))
