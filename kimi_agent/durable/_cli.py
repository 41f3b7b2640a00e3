"""`kimi-agent workflows list / resume / cancel / approve` over a DBOS system database.

The parser is argparse only, so `kimi-agent --help` does not import DBOS; `run` imports it.
The commands use a DBOS client (no workflows run in this process): `resume` puts a
cancelled or failed workflow back on DBOS's queue for a launched worker to pick up, `cancel`
stops one at its next step, `approve` decides the calls a durable agent run waits on.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

__all__ = ["add_parser", "run"]

STATUSES = ("PENDING", "ENQUEUED", "SUCCESS", "ERROR", "CANCELLED",
            "MAX_RECOVERY_ATTEMPTS_EXCEEDED")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `workflows` to the `kimi-agent` sub-commands; returns its parser."""
    workflows = subparsers.add_parser(
        "workflows", help="durable workflows: list, resume, cancel, approve (extra 'durable')")
    workflows.add_argument("--db", default=None,
                           help="the DBOS system database URL (default: "
                                "$KIMI_AGENT_DURABLE_DB, else the SQLite file in the data "
                                "folder)")
    commands = workflows.add_subparsers(dest="workflows_command", required=True)
    listing = commands.add_parser("list", help="the newest workflows, one a line")
    listing.add_argument("--status", choices=STATUSES, default=None)
    listing.add_argument("--name", default=None, help="only workflows of this name")
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    resume = commands.add_parser("resume", help="resume a cancelled or failed workflow")
    resume.add_argument("workflow_id")
    cancel = commands.add_parser("cancel", help="cancel a workflow (it stops at its next step)")
    cancel.add_argument("workflow_id")
    approve = commands.add_parser("approve", help="decide the calls a durable run waits on")
    approve.add_argument("workflow_id")
    approve.add_argument("--approve", action="append", default=[], metavar="CALL_ID")
    approve.add_argument("--reject", action="append", default=[], metavar="CALL_ID=REASON")
    return workflows  # type: ignore[no-any-return]


def run(args: argparse.Namespace) -> int:
    """Run `kimi-agent workflows …`; returns the exit status.

    Raises:
        ApprovalError: `approve` with decisions that do not match the pending calls.
        DurableConfigurationError: the system database URL is unusable.
    """
    try:
        from dbos import DBOSClient
    except ImportError:
        print("workflows need the 'durable' extra: pip install 'kimi-agent[durable]'",
              file=sys.stderr)
        return 2
    from kimi_agent.durable._engine import default_database_url

    client = DBOSClient(system_database_url=args.db or default_database_url())
    try:
        command = args.workflows_command
        if command == "list":
            return _list(client, args)
        if command == "resume":
            client.resume_workflow(args.workflow_id)
            print(f"resumed {args.workflow_id} (a launched worker picks it up)")
            return 0
        if command == "cancel":
            client.cancel_workflow(args.workflow_id)
            print(f"cancelled {args.workflow_id}")
            return 0
        return _approve(client, args)
    finally:
        client.destroy()


def _list(client: Any, args: argparse.Namespace) -> int:
    rows = client.list_workflows(status=args.status, name=args.name, limit=args.limit,
                                 sort_desc=True, load_input=False, load_output=False)
    for row in rows:
        record = {"workflow_id": row.workflow_id, "status": row.status, "name": row.name,
                  "created": _when(row.created_at), "updated": _when(row.updated_at),
                  "queue": row.queue_name, "executor": row.executor_id}
        if args.json:
            print(json.dumps(record, ensure_ascii=False))
        else:
            print(f"{record['workflow_id']:<38} {record['status']:<10} {record['created']:<20} "
                  f"{record['name']}")
    if not rows and not args.json:
        print("no workflows")
    return 0


def _approve(client: Any, args: argparse.Namespace) -> int:
    from kimi_agent.durable._agent import APPROVAL_TOPIC, PENDING_EVENT, check_decisions

    rejected: dict[str, str] = {}
    for item in args.reject:
        call_id, _, reason = item.partition("=")
        rejected[call_id] = reason or "rejected"
    pending = client.get_event(args.workflow_id, PENDING_EVENT, timeout_seconds=0)
    check_decisions(args.workflow_id, pending, args.approve, rejected)
    client.send(args.workflow_id, {"approved": list(dict.fromkeys(args.approve)),
                                   "rejected": rejected}, APPROVAL_TOPIC,
                f"{args.workflow_id}:approval:{pending['round']}")
    print(f"sent the decisions to {args.workflow_id}")
    return 0


def _when(epoch_ms: int | None) -> str:
    if not epoch_ms:
        return "-"
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).strftime(
        "%Y-%m-%d %H:%M:%S")
