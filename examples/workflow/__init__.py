"""A scripted multi-step workflow (classify → act → reply) with per-step checkpoints.

Run it: `python -m examples.workflow` (offline on the simulator; `--stop-after 2` then run
again to see it resume from its checkpoint).
"""

from examples.workflow.workflow import (
    INBOX,
    SCRIPT,
    Checkpoints,
    InboxMessage,
    StopRequested,
    Triage,
    WorkflowReport,
    run_workflow,
)

__all__ = [
    "INBOX",
    "SCRIPT",
    "Checkpoints",
    "InboxMessage",
    "StopRequested",
    "Triage",
    "WorkflowReport",
    "run_workflow",
]
