"""`python -m reliability soak | killloop`: the long runs of the reliability suite."""

from __future__ import annotations

import argparse
import sys

from ._killloop import add_arguments as add_killloop_arguments
from ._killloop import kill_worker, killloop
from ._soak import add_arguments as add_soak_arguments
from ._soak import add_worker_arguments, soak, soak_worker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    add_soak_arguments(commands.add_parser("soak", help="faults at a rate, then every "
                                           "session checked"))
    add_worker_arguments(commands.add_parser("soak-worker", help="(internal) one soak process"))
    add_killloop_arguments(commands.add_parser("killloop", help="kill -9 while sessions are "
                                               "written, checking them after each kill"))
    worker = commands.add_parser("kill-worker", help="(internal) one process to be killed")
    for name in ("--url", "--key", "--db", "--dir"):
        worker.add_argument(name, required=True)
    worker.add_argument("--round", type=int, required=True)
    worker.add_argument("--conversations", type=int, required=True)
    worker.add_argument("--seed", type=int, required=True)
    args = parser.parse_args(argv)
    handlers = {"soak": soak, "soak-worker": soak_worker, "killloop": killloop,
                "kill-worker": kill_worker}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
