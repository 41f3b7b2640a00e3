"""The typed errors of durable runs and workflows."""

from __future__ import annotations

from kimi_agent.errors import ConfigurationError, KimiAgentError

__all__ = ["DurableConfigurationError", "DurableError", "StepRetriesExhaustedError",
           "WorkflowFailedError"]


class DurableError(KimiAgentError):
    """Base class of the errors of `kimi_agent.durable`."""


class DurableConfigurationError(DurableError, ConfigurationError):
    """The durable engine is used wrongly: not launched, launched twice with other settings,
    a workflow registered after launch, or two agents under one workflow name."""


class StepRetriesExhaustedError(DurableError):
    """A workflow step raised on every attempt its retry policy allows.

    `step` is the step's name, `attempts` how many times it ran, `last_error` the text of
    the last failure (its type and message).
    """

    def __init__(self, step: str, attempts: int, last_error: str) -> None:
        super().__init__(f"step {step!r} failed {attempts} time(s); last error: {last_error}")
        self.step = step
        self.attempts = attempts
        self.last_error = last_error

    def __reduce__(self) -> tuple[type, tuple[str, int, str]]:
        # DBOS stores a workflow's error by pickling it: keep the fields.
        return (type(self), (self.step, self.attempts, self.last_error))


class WorkflowFailedError(DurableError):
    """A durable workflow ended with an error; `workflow_id` names it, `cause` is the error
    it raised (when it could be read back)."""

    def __init__(self, workflow_id: str, message: str,
                 cause: BaseException | None = None) -> None:
        super().__init__(f"workflow {workflow_id!r} failed: {message}")
        self.workflow_id = workflow_id
        self.cause = cause
