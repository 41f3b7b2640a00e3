"""The customer-service bot, as a program of your own would use it.

网店智能客服示例。The bot itself (instructions, tools, knowledge base, demo orders) ships in
the wheel as `kimi_agent_tools.demo`, so `kimi-agent demo` works after `pip install`; this
folder is the short, readable program that builds on it: `python -m examples.customer_service`.
"""
