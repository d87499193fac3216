"""``python -m ragexd``: run the supervisor (same as the ``ragexd`` command)."""

import sys

from ragexd.supervisor.main import main

if __name__ == "__main__":
    sys.exit(main())
