"""The shop bot on a web site, over `kimi_agent.web`: a host app that signs the customer in
and mounts the framework's API, chat widget and staff console under `/support`. Run it:
`python -m examples.web_service` (offline on the simulator unless `BYTESPIKE_API_KEY` is
set)."""

from examples.web_service.app import PREFIX, create_app, shop_deps

__all__ = ["PREFIX", "create_app", "shop_deps"]
