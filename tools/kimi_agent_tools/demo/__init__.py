"""The Chinese customer-service bot of `kimi-agent demo`.

网店智能客服示例。`bot` holds the agent (instructions, tools, deps), `knowledge/` the FAQ
files, `scenario` the scripted conversation for the simulator, `cli` the terminal demo.
"""

from kimi_agent_tools.demo.bot import (
    DEMO_CUSTOMER,
    INSTRUCTIONS,
    KNOWLEDGE_DIR,
    build_agent,
    chat_deps,
    make_deps,
)

__all__ = ["DEMO_CUSTOMER", "INSTRUCTIONS", "KNOWLEDGE_DIR", "build_agent", "chat_deps",
           "make_deps"]
