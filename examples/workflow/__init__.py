"""A scripted multi-step workflow (classify → act → reply) on durable workflows (DBOS).

Run it: `python -m examples.workflow` (offline on the simulator; `--crash-after 4` kills the
process after four steps, then run it again to see the workflow recovered from its
checkpoints).
"""

from examples.workflow.workflow import (
    INBOX,
    SCRIPT,
    InboxMessage,
    Triage,
    WorkflowReport,
    inbox_workflow,
    run_workflow,
)

__all__ = [
    "INBOX",
    "SCRIPT",
    "InboxMessage",
    "Triage",
    "WorkflowReport",
    "inbox_workflow",
    "run_workflow",
]
