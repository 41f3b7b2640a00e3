"""`python -m kimi_agent.cli`: the same as the `kimi-agent` command."""

import sys

from kimi_agent.cli._main import main

sys.exit(main())
