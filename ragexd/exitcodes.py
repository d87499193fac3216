"""Exit codes of every ragex program (``ragexd``, ``ragexctl`` and its plugins).

One table, so that a number means one thing whichever program returns it: a
shell script can branch on ``ragexctl status`` and ``ragexd`` alike.  ripgrep
and the LSB "status" convention are the models: 1 is "nothing found", not a
failure; 3 is "not running", as ``systemctl status`` says it.  The README's
"Exit codes" section is tested against this table.
"""

from __future__ import annotations

OK = 0
#: Nothing found: ``search`` without results, ``logs`` without a log.
NOTHING = 1
#: An error: bad arguments or configuration, ragexd or a worker failed, a
#: timeout, ``doctor`` found something to fix, ragexd could not start.
ERROR = 2
#: ``ragexctl status``: ragexd is not running (LSB "program is not running").
NOT_RUNNING = 3
#: ``ragexctl status``: ragexd runs but does not answer (LSB "status unknown"):
#: frozen (SIGSTOP) or wedged; the message names its pid.
NOT_ANSWERING = 4
#: ``ragexd``: another ragexd already holds this user's lock (its pid is named).
ALREADY_RUNNING = 5
#: Interrupted (Ctrl-C): 128 + SIGINT, as shells report it.
INTERRUPTED = 130

#: (code, meaning) in the order the documentation lists them.
TABLE: tuple[tuple[int, str], ...] = (
    (OK, "success (for `search`: at least one result)"),
    (NOTHING, "nothing found (`search` without results, `logs` without a log)"),
    (ERROR, "an error: bad arguments or configuration, ragexd or a worker failed, a timeout, "
            "`doctor` found a problem"),
    (NOT_RUNNING, "`ragexctl status`: ragexd is not running (not an error)"),
    (NOT_ANSWERING, "`ragexctl status`: ragexd runs but does not answer (frozen or wedged)"),
    (ALREADY_RUNNING, "`ragexd`: another ragexd already runs for this user"),
    (INTERRUPTED, "interrupted (Ctrl-C)"),
)
