"""`python -m server` runs the command line."""

import sys

from server.cli.main import main

sys.exit(main())
