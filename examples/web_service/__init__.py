"""The shop bot embedded in a web service (Starlette): one agent shared by all requests, a
SQLite session per customer. Run it: `python -m examples.web_service` (offline on the
simulator unless `BYTESPIKE_API_KEY` is set)."""

from examples.web_service.app import KeyedLocks, ShopService, create_app

__all__ = ["KeyedLocks", "ShopService", "create_app"]
