"""ragexctl: the thin client of ragex.

It parses a command line, sends one request to ragexd over ZeroMQ (starting
ragexd if needed) and renders the reply.  Everything heavy lives in ragexd and
its workers: this package imports only the standard library, pyzmq,
``ragexd.protocol``, ``ragexd.paths`` and ``ragexd.config``, because a warm
search is only as fast as the client process that asks for it.
"""

from ragexd import __version__

__all__ = ["__version__"]
