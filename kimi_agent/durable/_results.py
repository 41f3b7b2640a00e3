"""Reading a workflow's result back: its own value, our typed errors as themselves, anything
else (a cancel, an unreadable error) as `WorkflowFailedError`."""

from __future__ import annotations

from typing import Any

import anyio
from dbos import DBOS
from dbos._error import DBOSAwaitedWorkflowCancelledError, DBOSNonExistentWorkflowError

from kimi_agent.durable._errors import WorkflowFailedError
from kimi_agent.errors import KimiAgentError

__all__ = ["workflow_result"]


async def workflow_result(workflow_id: str, timeout: float | None) -> Any:
    """The value the workflow `workflow_id` returned, waiting for it to end.

    Raises:
        TimeoutError: `timeout` seconds passed first.
        WorkflowFailedError: no such workflow, it was cancelled, or it raised an error
            that is not a `KimiAgentError` (those are raised as themselves).
    """
    try:
        handle: Any = await DBOS.retrieve_workflow_async(workflow_id, existing_workflow=True)
    except DBOSNonExistentWorkflowError as error:
        raise WorkflowFailedError(workflow_id, "no such workflow", error) from error
    try:
        with anyio.fail_after(timeout):
            return await handle.get_result()
    except KimiAgentError:
        raise
    except DBOSAwaitedWorkflowCancelledError as error:
        raise WorkflowFailedError(workflow_id, "it was cancelled", error) from error
    except TimeoutError:
        raise
    except Exception as error:
        raise WorkflowFailedError(workflow_id, f"{type(error).__name__}: {error}",
                                  error) from error
