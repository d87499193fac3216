"""How a log line is written: the one formatter of ragexd, its workers and `ragexctl mcp`.

Log messages quote what hostile trees choose: file names, project roots, the
text of errors about them.  A name holding ``\\x1b]0;...\\x07`` written raw would
retitle, clear or recolour the terminal of whoever reads the log (``ragexd
--foreground``, ``tail``, ``journalctl``, an agent's MCP stderr), so every line
goes through ``textcodec.printable_lines``, the rule every other sink people read
follows.  Line breaks stay breaks: a crash report's quoted log tail and a
traceback span lines on purpose.

Stdlib only (``logging`` and ``textcodec``), a top-level module so that the
supervisor, the worker and the client each import it without importing the others.
"""

from __future__ import annotations

import logging

from .textcodec import printable_lines


class PrintableFormatter(logging.Formatter):
    """A ``logging.Formatter`` whose output (message, traceback, stack) shows every
    character a terminal would obey as an escape (``\\x1b``)."""

    def format(self, record: logging.LogRecord) -> str:
        return printable_lines(super().format(record))
