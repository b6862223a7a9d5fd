"""`python -m cli COMMAND ...`: the same entry point as `reelflow`."""

import sys

from cli.main import main

sys.exit(main())
