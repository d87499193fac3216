"""The ``ragexctl`` program's first step: a regex search the client can answer
alone (``direct.py``) is answered before the full CLI is even imported.

Importing ``ragexctl.cli`` (argparse, ZeroMQ's client, the protocol) costs more
than ripgrep takes to search a whole repository, so the console script and
``python -m ragexctl`` start here; everything else goes to ``cli.main``.
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    _no_missing_streams()
    argv = sys.argv[1:]
    if argv[:1] == ["search"]:
        code = _direct(argv)
        if code is not None:
            fast_exit(code)
    from .cli import main as cli_main

    return cli_main()


def _no_missing_streams() -> None:
    """A program started with stdout or stderr closed (``>&-``) has None there:
    give it /dev/null, so that what it says goes nowhere, as it would for any
    tool, instead of every ``write`` and ``isatty`` raising a traceback (which
    would go nowhere either, leaving only exit status 1).  Opening it fills the
    lowest closed descriptor, so the pipes opened later never take 0, 1 or 2."""
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))


def _direct(argv: list[str]) -> int | None:
    from ragexd import exitcodes

    from .direct import try_search
    from .render import tolerate_unencodable_output

    tolerate_unencodable_output()
    try:
        return try_search(argv)
    except KeyboardInterrupt:
        return exitcodes.INTERRUPTED
    except BrokenPipeError:
        return reader_gone()


def reader_gone() -> int:
    """The exit of any command whose reader closed its output (``ragexctl search x |
    head -1``, ``ragexctl doctor | head -3``): the reader is satisfied, so exit 0
    quietly, as rg does.  stdout becomes /dev/null first, or the interpreter's own
    flush at exit would print a BrokenPipeError it ignores."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 0


def fast_exit(code: int) -> None:
    """As ``cli.main`` ends: flush, then skip the interpreter's teardown."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):   # AttributeError: started closed (None)
            pass
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
