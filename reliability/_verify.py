"""After a soak or a kill: every session in the SQLite file checked against the journals.

A session is corrupted when its history is not valid (`history_problems`) or holds a user
message of another session; a message is lost when a run that stored its prompt (it completed
or ended with a typed error raised after the prompt was stored) left no such user message in
its session, in the order the worker ran them. "Accepted" runs one more run on every session
through the strict simulator, with no fault: it must complete.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kimi_agent import Agent
from kimi_agent.sessions import SQLiteStore

from ._checks import history_problems, user_texts
from ._kit import make_client
from ._runs import NOT_STARTED
from ._world import TOOLS, session_of

__all__ = ["Verdict", "verify"]


@dataclass
class Verdict:
    sessions: int = 0
    messages: int = 0
    lost: int = 0
    corrupted: int = 0
    not_accepted: int = 0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"sessions": self.sessions, "messages": self.messages, "lost": self.lost,
                "corrupted": self.corrupted, "not_accepted": self.not_accepted,
                "problems": self.problems[:20]}


def kept_prompts(records: list[dict[str, Any]]) -> dict[str, dict[int, list[str]]]:
    """session -> worker -> the prompts whose runs stored them, in the worker's order."""
    kept: dict[str, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        if record.get("o") == "completed" or (
                record.get("o") == "typed" and record.get("e") not in NOT_STARTED):
            kept[record["s"]][int(record.get("w", 0))].append(record["p"])
    return kept


async def verify(db: Path, records: list[dict[str, Any]], *, accept_url: str | None = None,
                 api_key: str = "sim-key") -> Verdict:
    """Check every session of `db` (see the module docstring)."""
    verdict = Verdict()
    kept = kept_prompts(records)
    async with SQLiteStore(db) as store:
        ids = await store.list_sessions()
        verdict.sessions = len(ids)
        for session_id in set(kept) - set(ids):
            verdict.lost += sum(len(p) for p in kept[session_id].values())
            verdict.problems.append(f"session {session_id!r} is missing")
        for session_id in ids:
            history = await store.session(session_id).get_items()
            verdict.messages += len(history)
            problems = history_problems(history)
            strangers = [t for t in user_texts(history) if session_of(t) not in (None, session_id)]
            if strangers:
                problems.append(f"user messages of other sessions: {strangers[:3]}")
            if problems:
                verdict.corrupted += 1
                verdict.problems.append(f"{session_id}: {problems[:3]}")
            for worker, prompts in kept.get(session_id, {}).items():
                lost = history_problems(history, prompts=prompts)
                lost = [p for p in lost if p.startswith("user message lost")]
                if lost:
                    verdict.lost += len(lost)
                    verdict.problems.append(f"{session_id} (worker {worker}): {lost[:3]}")
        if accept_url is not None:
            async with make_client(accept_url, api_key, timeout=30.0) as client:
                agent = Agent(tools=TOOLS, client=client, run_timeout=60)
                for session_id in ids:
                    try:
                        result = await agent.run(f"〔{session_id}〕最后确认：谢谢！",
                                                 session=store.session(session_id))
                        ok = result.status == "completed"
                    except Exception as error:  # reported, not raised: the verdict counts it
                        ok = False
                        verdict.problems.append(f"{session_id}: next run failed: {error!r}"[:300])
                    verdict.not_accepted += not ok
    return verdict
