"""``python -m ragexctl.service ...``: the service command without the full CLI."""

import sys

from . import main

sys.exit(main())
