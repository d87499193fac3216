"""ragex: instant local code search served by warm per-project workers.

This package holds every role except the thin client: the wire protocol
(``ragexd.protocol``), the search engine (``ragexd.engine``), the per-project
worker (``ragexd.worker``), the per-user supervisor (``ragexd.supervisor``) and
the runtimes that host workers (``ragexd.runtimes``).  Importing this package
must stay cheap: ragexctl imports ``ragexd.protocol`` and ``ragexd.paths`` and
must not pay for torch or chromadb.
"""

__version__ = "0.1.0"
