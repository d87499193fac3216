"""``ragexctl service install|uninstall|status``: ragexd as a login service.

Auto-start on demand already makes ragexd appear when it is first needed; a
login service makes the *first* search of the day warm too (``--prestart``
starts the most recently used projects' workers before anyone asks), and puts
ragexd under a real service manager: restarted when it crashes, a watchdog
that catches a wedged main loop, logs in the journal.

* Linux: a systemd user unit in ``$XDG_CONFIG_HOME/systemd/user/ragexd.service``.
* macOS: a launchd agent in ``~/Library/LaunchAgents/io.ragex.ragexd.plist``.

Both are rendered with the real path of *this* installation's ragexd, and the
environment ragexd needs to find the same socket and indexes as the shell that
ran the install (a service manager does not read shell profiles).

When no user service manager runs (containers, CI, an ssh session without
``systemd --user``), the unit file is still written and enabled for the next
login, and the output says plainly that nothing was started and why: ragexctl
keeps starting ragexd on demand, so search works either way.

Only the standard library and ``ragexd.paths``/``ragexd.config`` are imported:
this module is loaded by the thin client.
"""

from __future__ import annotations

import argparse
import os
import plistlib
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ragexd import config as rconfig
from ragexd import exitcodes, paths

EXIT_OK = exitcodes.OK
EXIT_ERROR = exitcodes.ERROR

UNIT_NAME = "ragexd.service"
LAUNCHD_LABEL = "io.ragex.ragexd"
#: Choose the backend explicitly (tests, or a Linux box whose systemd is not the
#: service manager you want).  Values: ``systemd`` | ``launchd``.
MANAGER_ENV = "RAGEX_SERVICE_MANAGER"

#: Environment copied from the installing shell into the unit/plist: where
#: ragexd's socket and indexes live must match what ragexctl computes in that
#: shell, or ragexctl would not find the service's ragexd and start a second one.
PASSTHROUGH_ENV = ("RAGEX_RUNTIME_DIR", "RAGEX_DATA_DIR", "RAGEX_STATE_DIR", "RAGEX_CONFIG_DIR",
                   "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CONFIG_HOME")

#: systemd user-manager states in which it accepts jobs.
_MANAGER_UP = {"running", "degraded", "starting", "initializing", "maintenance"}

def _template(name: str) -> str:
    """A unit template shipped as package data (ragexctl/units/, also reachable
    as units/ at the top of the source tree for packagers)."""
    from importlib.resources import files

    return files("ragexctl").joinpath("units", name).read_text(encoding="utf-8")


#: The systemd user unit, with @RAGEXD@ and @ENVIRONMENT@ to fill in.
UNIT_TEMPLATE = _template("ragexd.service")


class ServiceError(Exception):
    """A problem the user can fix, reported as one sentence with exit code 2."""


# --- Rendering ----------------------------------------------------------------------


def find_ragexd() -> list[str]:
    """The command that runs this installation's ragexd.

    The console script next to ``sys.executable`` comes first: it belongs to the
    same installation (venv, pipx) as this ragexctl, hence speaks the same
    protocol; a ``ragexd`` found on PATH could be another version.  Without any
    console script, ``python -m ragexd`` with this interpreter still works.
    """
    beside = Path(sys.executable).parent / "ragexd"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside.absolute())]
    found = shutil.which("ragexd")
    if found:
        return [os.path.abspath(found)]
    return [os.path.abspath(sys.executable), "-m", "ragexd"]


def docker_host(env: dict[str, str] | None = None, home: Path | None = None) -> str | None:
    """DOCKER_HOST for the service, or None when Docker's default socket applies.

    Taken from the environment when set; otherwise the first existing socket of
    the usual non-default engines (rootless Docker, Docker Desktop for Mac,
    Colima, OrbStack), because the service will not see the shell's settings.
    """
    env = dict(os.environ) if env is None else env
    if env.get("DOCKER_HOST"):
        return env["DOCKER_HOST"]
    if os.path.exists("/var/run/docker.sock"):
        return None
    home = Path(env.get("HOME") or Path.home()) if home is None else home
    candidates = []
    if env.get("XDG_RUNTIME_DIR"):
        candidates.append(Path(env["XDG_RUNTIME_DIR"]) / "docker.sock")
    candidates += [home / ".docker/run/docker.sock", home / ".colima/default/docker.sock",
                   home / ".orbstack/run/docker.sock"]
    for sock in candidates:
        if sock.exists():
            return f"unix://{sock}"
    return None


def service_environment(command: Sequence[str], env: dict[str, str] | None = None) -> dict[str, str]:
    """PATH (with ragexd's own bin directory first), ragex locations, DOCKER_HOST."""
    env = dict(os.environ) if env is None else env
    bindir = str(Path(command[0]).parent)
    path_items = [bindir] + [p for p in env.get("PATH", os.defpath).split(os.pathsep)
                             if p and p != bindir]
    out = {"PATH": os.pathsep.join(dict.fromkeys(path_items))}
    for name in PASSTHROUGH_ENV:
        if env.get(name):
            out[name] = env[name]
    host = docker_host(env)
    if host:
        out["DOCKER_HOST"] = host
    return out


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


def launchd_log_dir(home: Path | None = None) -> Path:
    return (home or Path.home()) / "Library" / "Logs" / "ragex"


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


# --- Locations ----------------------------------------------------------------------


def systemd_unit_dir(env: dict[str, str] | None = None) -> Path:
    env = dict(os.environ) if env is None else env
    base = env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME") or str(Path.home()),
                                                      ".config")
    return Path(base) / "systemd" / "user"


def systemd_unit_path(env: dict[str, str] | None = None) -> Path:
    return systemd_unit_dir(env) / UNIT_NAME


def launchd_plist_path(home: Path | None = None) -> Path:
    return (home or Path.home()) / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"


def choose_manager() -> str:
    chosen = os.environ.get(MANAGER_ENV, "").strip().lower()
    if chosen in ("systemd", "launchd"):
        return chosen
    return "launchd" if sys.platform == "darwin" else "systemd"


# --- Running commands ---------------------------------------------------------------


@dataclass
class Outcome:
    code: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.code == 0

    @property
    def text(self) -> str:
        return (self.stderr.strip() or self.stdout.strip())


def _run(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 30.0) -> Outcome:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return Outcome(127, "", f"{cmd[0]}: command not found")
    except subprocess.TimeoutExpired:
        return Outcome(124, "", f"`{' '.join(cmd)}` did not finish within {timeout:g} s")
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


@dataclass
class Console:
    """Where messages go; in dry-run, actions are announced instead of done."""

    dry_run: bool = False
    out: Callable[[str], None] = field(default=lambda s: print(s, flush=True))
    err: Callable[[str], None] = field(default=lambda s: print(s, file=sys.stderr, flush=True))

    def step(self, text: str) -> None:
        """Announce an action: ``+ systemctl ...`` when done, ``would: ...`` in dry-run."""
        self.out(("would: " if self.dry_run else "+ ") + text)


def _write_atomic(path: Path, data: bytes, con: Console) -> bool:
    if path.exists() and path.read_bytes() == data:
        con.out(f"{path} is up to date")
        return False
    con.step(f"write {path}")
    if con.dry_run:
        return True
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return True


def _remove(path: Path, con: Console) -> bool:
    if not path.exists() and not path.is_symlink():
        return False
    con.step(f"remove {path}")
    if not con.dry_run:
        path.unlink()
    return True


def _alive(pid: int) -> bool:
    """Does ``pid`` run?  A zombie does not: it has exited (and released
    ragexd's lock), its parent just has not reaped it yet."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): trust kill(0)
    return stat_line.rpartition(")")[2].split()[:1] != ["Z"]


def _ondemand_ragexd(exclude: int | None = None) -> int | None:
    """Pid of a live ragexd per its pid file (not ``exclude``), else None."""
    try:
        words = paths.daemon_pid_path().read_text().split()
        pid = int(words[0]) if words else 0
    except (OSError, ValueError):
        return None
    if pid <= 0 or pid == exclude or not _alive(pid):
        return None
    try:
        os.kill(pid, 0)
    except PermissionError:
        return None  # not ours: a recycled pid
    except ProcessLookupError:
        return None
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        try:
            if b"ragexd" not in cmdline.read_bytes():
                return None
        except OSError:
            return None
    return pid


def _stop_ondemand(exclude: int | None, con: Console, deadline: float = 35.0) -> None:
    """Stop a ragexd that ragexctl started on demand, so the service's own can bind.

    Two ragexd cannot run at once (the second fails its lock), so the service
    would otherwise fail to start.  SIGTERM is ragexd's clean shutdown; workers
    come back on the next request.
    """
    pid = _ondemand_ragexd(exclude)
    if pid is None:
        return
    con.step(f"stop the ragexd started on demand (pid {pid}) so the service manager can "
             "run its own; its workers restart on the next request")
    if con.dry_run:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if not _alive(pid):
            return
        time.sleep(0.05)
    con.err(f"warning: ragexd (pid {pid}) is still running {deadline:g} s after SIGTERM; "
            "the service may fail to start until it exits")


def _fallback_note() -> str:
    try:
        auto = rconfig.load().auto_start
    except rconfig.ConfigError:
        auto = True
    if auto:
        return ("Until then nothing changes for searching: ragexctl starts ragexd on demand "
                "(daemon.auto_start = true), it just is not warm before the first request.")
    return ("Note: daemon.auto_start is off in your configuration, so until a service manager "
            "runs ragexd, start it yourself (`ragexd`) or turn auto_start on.")


# --- systemd --------------------------------------------------------------------------


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
        default = Path(f"/run/user/{os.getuid()}")
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
    res = _run([systemctl, "--user", "is-system-running"], env=env, timeout=10)
    state = res.stdout.strip()
    if state in _MANAGER_UP:
        return SystemdProbe(systemctl, True, "", env)
    return SystemdProbe(systemctl, False,
                        f"`systemctl --user is-system-running` says: {state or res.text or res.code}",
                        env)


def _systemd_prop(probe: SystemdProbe, prop: str) -> str:
    res = _run(probe.cmd("show", "-p", prop, "--value", UNIT_NAME), env=probe.env, timeout=10)
    return res.stdout.strip() if res.ok else ""


def _linger_enabled(probe: SystemdProbe) -> bool | None:
    loginctl = shutil.which("loginctl", path=probe.env.get("PATH"))
    if not loginctl:
        return None
    res = _run([loginctl, "show-user", str(os.getuid()), "-p", "Linger", "--value"],
               env=probe.env, timeout=10)
    if not res.ok:
        return None
    return res.stdout.strip() == "yes"


def _user_name() -> str:
    return os.environ.get("USER") or os.environ.get("LOGNAME") or str(os.getuid())


def _command(args: argparse.Namespace) -> list[str]:
    """``--ragexd PATH`` (made absolute: a service has no working directory) or ours."""
    given = getattr(args, "ragexd", None)
    if not given:
        return find_ragexd()
    path = shutil.which(given) if os.sep not in given else given
    if not path or not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise ServiceError(f"--ragexd {given}: not an executable file")
    return [os.path.abspath(path)]


def systemd_install(args: argparse.Namespace, con: Console) -> int:
    command = _command(args)
    text = render_unit(command, service_environment(command))
    if args.print:
        con.out(text.rstrip("\n"))
        return EXIT_OK
    unit = systemd_unit_path()
    probe = probe_systemd()
    if con.dry_run:
        con.out(f"unit file {unit}:\n" + "\n".join("  " + l for l in text.splitlines()))
    try:
        changed = _write_atomic(unit, text.encode(), con)
    except OSError as exc:
        con.err(f"error: cannot write {unit}: {exc.strerror or exc}")
        return EXIT_ERROR

    if probe.systemctl is None:
        if con.dry_run:
            return EXIT_OK
        con.out(f"ragexd's unit is in {unit}, but systemd is not installed here "
                f"({probe.reason}), so nothing will start it at login.")
        con.out(_fallback_note())
        return EXIT_OK

    if probe.running:
        con.step("systemctl --user daemon-reload")
        if not con.dry_run:
            res = _run(probe.cmd("daemon-reload"), env=probe.env)
            if not res.ok:
                con.err(f"error: systemctl --user daemon-reload failed: {res.text}")
                return EXIT_ERROR
    # Enabling is a file operation (a symlink in default.target.wants): it works
    # without a running manager, so the unit starts at the next real login.
    con.step("systemctl --user enable ragexd")
    if not con.dry_run:
        res = _run(probe.cmd("enable", UNIT_NAME), env=probe.env)
        if not res.ok:
            con.err(f"error: systemctl --user enable ragexd failed: {res.text}")
            return EXIT_ERROR

    if not probe.running and con.dry_run:
        con.out(f"(no user service manager is running here: {probe.reason}; "
                "ragexd would not be started now)")
        return EXIT_OK
    if not probe.running:
        con.out(f"Installed and enabled {unit}, but no user service manager (systemd --user) "
                f"is running here: {probe.reason}. This is normal in containers and CI. "
                "ragexd was not started; the unit will start it at your next login to a "
                "session with systemd.")
        con.out(_fallback_note())
        return EXIT_OK

    if args.no_start:
        if con.dry_run:
            return EXIT_OK
        con.out(f"Installed and enabled {unit}; ragexd starts at your next login "
                "(or now: `systemctl --user start ragexd`).")
        return EXIT_OK
    main_pid = _systemd_prop(probe, "MainPID")
    _stop_ondemand(int(main_pid) if main_pid.isdigit() and main_pid != "0" else None, con)
    active = _systemd_prop(probe, "ActiveState") == "active"
    verb = "restart" if (active and changed) else "start"
    con.step(f"systemctl --user {verb} ragexd")
    if not con.dry_run:
        res = _run(probe.cmd(verb, UNIT_NAME), env=probe.env, timeout=120)
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
            res = _run(probe.cmd(*verb, UNIT_NAME), env=probe.env, timeout=60)
            if not res.ok:
                con.err(f"warning: systemctl --user {' '.join(verb)} ragexd: {res.text}")
                failed = True
    try:
        _remove(unit, con)
        _remove(wants, con)  # in case systemctl was unavailable or failed
    except OSError as exc:
        con.err(f"error: cannot remove {unit}: {exc.strerror or exc}")
        return EXIT_ERROR
    if probe.running:
        con.step("systemctl --user daemon-reload")
        if not con.dry_run:
            _run(probe.cmd("daemon-reload"), env=probe.env)
            _run(probe.cmd("reset-failed", UNIT_NAME), env=probe.env)
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
        command = _command(args)
        fresh = current == render_unit(command, service_environment(command))
        con.out(f"unit file:       {unit}" + ("" if fresh else
                "  (differs from what `ragexctl service install` would write now: the "
                "installation moved or the environment changed; re-run it)"))
        exec_line = next((l for l in current.splitlines() if l.startswith("ExecStart=")), "")
        if exec_line:
            con.out(f"  {exec_line}")
        if probe.systemctl:
            res = _run(probe.cmd("is-enabled", UNIT_NAME), env=probe.env, timeout=10)
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
        other = _ondemand_ragexd(int(pid) if pid.isdigit() and pid != "0" else None)
    else:
        con.out("active:          n/a (no user service manager)")
        other = _ondemand_ragexd()
    if other:
        con.out(f"on demand:       ragexd pid {other} is running outside the service manager")
    return EXIT_OK


# --- launchd --------------------------------------------------------------------------


def _launchctl() -> str | None:
    return shutil.which("launchctl")


def _launchd_target() -> str:
    return f"gui/{os.getuid()}/{LAUNCHD_LABEL}"


def _launchd_loaded(launchctl: str) -> Outcome:
    return _run([launchctl, "print", _launchd_target()], timeout=10)


def launchd_install(args: argparse.Namespace, con: Console) -> int:
    command = _command(args)
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
        _write_atomic(plist, data, con)
    except OSError as exc:
        con.err(f"error: cannot write {plist}: {exc.strerror or exc}")
        return EXIT_ERROR
    launchctl = _launchctl()
    if launchctl is None:
        if con.dry_run:
            return EXIT_OK
        con.out(f"Wrote {plist}, but `launchctl` is not available here, so no service manager "
                "will load it until you log in on a Mac.")
        con.out(_fallback_note())
        return EXIT_OK
    if args.no_start:
        if con.dry_run:
            return EXIT_OK
        con.out(f"Wrote {plist}; launchd loads it at your next login.")
        return EXIT_OK
    domain = f"gui/{os.getuid()}"
    if _launchd_loaded(launchctl).ok:
        # bootstrap refuses an already-loaded label; reload to pick up changes.
        con.step(f"launchctl bootout {_launchd_target()}")
        if not con.dry_run:
            _run([launchctl, "bootout", _launchd_target()], timeout=60)
    _stop_ondemand(None, con)
    con.step(f"launchctl enable {_launchd_target()}")
    con.step(f"launchctl bootstrap {domain} {plist}")
    if con.dry_run:
        return EXIT_OK
    _run([launchctl, "enable", _launchd_target()], timeout=10)  # clears a past `disable`
    res = _run([launchctl, "bootstrap", domain, str(plist)], timeout=60)
    if not res.ok:
        con.err(f"error: launchctl bootstrap {domain} failed: {res.text}\n"
                "Without a graphical login (ssh) the gui domain may not exist; "
                f"try `launchctl bootstrap user/{os.getuid()} {plist}`.")
        con.err(_fallback_note())
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
            res = _run([launchctl, "bootout", _launchd_target()], timeout=60)
            if not res.ok:
                con.err(f"warning: launchctl bootout failed: {res.text}")
    try:
        _remove(plist, con)
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
    other = _ondemand_ragexd(pid)
    if other:
        con.out(f"on demand:       ragexd pid {other} is running outside launchd")
    return EXIT_OK


# --- CLI ------------------------------------------------------------------------------

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


if __name__ == "__main__":
    sys.exit(main())
