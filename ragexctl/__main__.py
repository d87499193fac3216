"""``python -m ragexctl`` — the same as the ``ragexctl`` script."""

import sys

from .entry import main

if __name__ == "__main__":
    sys.exit(main())
