"""The reliability suite of kimi-agent: the fault proxy, the session checks, the soak and the
`kill -9` loop (issue 13). Not part of the wheel; run from the repository root:

    python -m reliability soak --seconds 600      # processes x conversations, faults at a rate
    python -m reliability killloop --kills 50     # kill -9 while sessions are written

The fault matrix and short versions of both runs are pytest tests (tests/test_fault_matrix.py,
tests/test_reliability.py). The latest long-run figures are in RELIABILITY.md.
"""
