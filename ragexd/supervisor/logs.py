"""ragexd's logging: stderr for people and journald, plus a rotated file.

Under systemd (``$JOURNAL_STREAM`` set) journald adds its own timestamps and
understands ``<N>`` syslog-priority prefixes, so stderr lines carry a priority
and no time.  The file ``<state_dir>/logs/ragexd.log`` always has timestamps:
it is what ``ragexctl logs`` shows when ragexd runs in the background.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path

from ..logfile import tail  # noqa: F401 - re-exported for the supervisor's tests
from ..logformat import PrintableFormatter

#: a line of ragexd's log file (and of its stderr outside journald)
LINE = "%(asctime)s ragexd[%(process)d] %(levelname)s %(name)s: %(message)s"
LOG_MAX_BYTES = 5 * 1024 * 1024
LOG_BACKUPS = 3

_SYSLOG_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4,
                    logging.ERROR: 3, logging.CRITICAL: 2}


class JournalFormatter(PrintableFormatter):
    """``<6>ragexd: message`` — the priority prefix journald parses, no timestamp."""

    def format(self, record: logging.LogRecord) -> str:
        prio = _SYSLOG_PRIORITY.get(record.levelno, 6)
        text = super().format(record)
        return "\n".join(f"<{prio}>{line}" for line in text.splitlines() or [""])


def under_journald() -> bool:
    return bool(os.environ.get("JOURNAL_STREAM"))


def setup(log_file: Path | None, level: str = "info", to_stderr: bool = True) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    numeric = getattr(logging, level.upper(), None)
    root.setLevel(numeric if isinstance(numeric, int) else logging.INFO)
    if to_stderr:
        stderr = logging.StreamHandler(sys.stderr)
        if under_journald():
            stderr.setFormatter(JournalFormatter("%(name)s: %(message)s"))
        else:
            stderr.setFormatter(PrintableFormatter(LINE))
        root.addHandler(stderr)
    if log_file is not None:
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.handlers.RotatingFileHandler(
                log_file, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8")
            handler.setFormatter(PrintableFormatter(LINE))
            root.addHandler(handler)
        except OSError as exc:
            logging.getLogger("ragexd").warning("cannot write the log file %s: %s",
                                                log_file, exc)
