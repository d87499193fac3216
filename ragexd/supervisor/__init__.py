"""ragexd: the per-user supervisor of project workers.

One ragexd per user owns the client socket, starts each project's worker on
first use, watches it (heartbeats, memory, crashes), stops it when idle and
routes requests to it.  Policy lives here; how a worker is hosted (a local
process, a container) lives in ``ragexd.runtimes``.

Modules, one idea each:

* ``main``     command line, daemonizing, start-up checks;
* ``daemon``   the single poll loop that never blocks on a worker;
* ``project``  one project's state: worker handle, queue, in-flight requests;
* ``backoff``  restart backoff and crash-loop detection (pure, clock injected);
* ``lock``     exactly one ragexd per user;
* ``notify``   systemd's sd_notify protocol without libsystemd;
* ``logs``     journald-friendly stderr plus a rotated log file;
* ``recent``   the most-recently-used projects (for pre-starting at login).
"""
