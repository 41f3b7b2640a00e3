"""`python -m kimi_agent_tools.demo [--fresh] [--db FILE]`: the same as `kimi-agent demo`."""

import sys

from kimi_agent_tools.demo.cli import main

sys.exit(main())
