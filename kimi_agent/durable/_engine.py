"""Starting and stopping the durable engine (DBOS, inside this process).

DBOS keeps its checkpoints in a *system database*: a SQLite file by default (one machine,
nothing to start) or PostgreSQL when several worker processes share the work. Every process
that runs durable agents or workflows creates its `DurableAgent`s and `Workflow`s first (that
registers their workflow functions) and then calls `launch`, which also recovers the
workflows a crashed process left unfinished.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dbos import DBOS, DBOSConfig

from kimi_agent.durable._errors import DurableConfigurationError

__all__ = ["DATABASE_URL_ENV", "default_database_url", "launch", "shutdown"]

DATABASE_URL_ENV = "KIMI_AGENT_DURABLE_DB"
"""The environment variable naming the system database (`sqlite:///…` or `postgresql://…`)."""


def default_database_url() -> str:
    """`$KIMI_AGENT_DURABLE_DB`, else a SQLite file in the user's data folder."""
    url = os.environ.get(DATABASE_URL_ENV)
    if url:
        return url
    from kimi_agent.cli.terminal import user_data_dir

    folder = Path(user_data_dir())
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'durable.sqlite'}"


def launch(database_url: str | None = None, *, name: str = "kimi-agent",
           executor_id: str | None = None, application_version: str | None = None,
           **config: Any) -> None:
    """Start the engine in this process on `database_url` and recover unfinished workflows.

    `executor_id` names this worker (workers sharing a PostgreSQL database need distinct
    ids so each recovers only its own unfinished workflows). `application_version` pins the
    version DBOS stamps on workflows (by default DBOS derives it from the registered code).
    Further DBOS settings pass through as `config`.

    Raises:
        DurableConfigurationError: the URL is neither SQLite nor PostgreSQL.
    """
    url = database_url or default_database_url()
    if not url.startswith(("sqlite:///", "postgresql://", "postgres://",
                           "postgresql+psycopg://")):
        raise DurableConfigurationError(
            f"the durable system database must be sqlite:///… or postgresql://…, not {url!r}")
    settings: DBOSConfig = {"name": name, "system_database_url": url}
    if executor_id is not None:
        settings["executor_id"] = executor_id
    if application_version is not None:
        settings["application_version"] = application_version
    settings.update(config)  # type: ignore[typeddict-item]
    DBOS(config=settings)
    DBOS.launch()


def shutdown() -> None:
    """Stop the engine in this process (workflows in flight stay recoverable)."""
    DBOS.destroy(destroy_registry=False)
