"""``python -m uws_adapter``: the same as the ``uws-adapter`` command."""

import sys

from .cli import main

sys.exit(main())
