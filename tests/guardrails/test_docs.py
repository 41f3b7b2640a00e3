"""The examples of the guardrail guides (English and Chinese) run and print what they say."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDES = [ROOT / "docs" / "guides" / "guardrails-text.md",
          ROOT / "docs" / "zh" / "guides" / "guardrails-text.md"]


@pytest.mark.parametrize("path", GUIDES, ids=lambda p: p.parent.parent.name)
def test_guide_examples_run(path: Path) -> None:
    result = doctest.testfile(str(path), module_relative=False, encoding="utf-8",
                              optionflags=doctest.ELLIPSIS, verbose=False, report=True)
    assert result.attempted >= 8
    assert result.failed == 0
