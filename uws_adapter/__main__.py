"""``python -m uws_adapter``: the same as the ``uws-adapter`` command."""

import sys

from uws_adapter.cli.main import main

sys.exit(main())
