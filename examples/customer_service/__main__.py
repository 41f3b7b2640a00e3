"""`python -m examples.customer_service [--fresh] [--db FILE]`: the same as `kimi-agent demo`."""

import sys

from examples.customer_service.cli import main

sys.exit(main())
