"""`python -m proxy.loadtest`: the load generator without the rest of the CLI."""

import sys

from proxy.loadtest.cli import main

sys.exit(main())
