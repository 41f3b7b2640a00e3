"""Runnable examples of kimi-agent: the customer-service bot (`kimi-agent demo`), a scripted
multi-step workflow, and a web service that embeds an agent. Each runs offline on the
gateway simulator, or on the real gateway when `BYTESPIKE_API_KEY` is set."""
