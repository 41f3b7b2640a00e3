"""Typed deps are checked by mypy: the cases in tests/typing/ that must type-check do, and
each line of the failing case marked `# E: <code>` is an error of that code (and nothing
else is). One mypy run over the few files, with its cache in the system's temp directory
(per checkout, so later runs are quick)."""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "tests" / "typing"
PASSING = ["_shop.py", "pass_deps.py"]
FAILING = ["fail_deps.py"]
_ERROR = re.compile(
    r"^(?P<file>[^:]+):(?P<line>\d+): error: (?P<message>.*?)\s+\[(?P<code>[\w-]+)\]$")
_MESSAGES: list[str] = []  # mypy's error lines, for the failure messages
_EXPECT = re.compile(r"#\s*E:\s*(?P<code>[\w-]+)\s*$")


def _cache_dir() -> str:
    key = hashlib.sha256(str(ROOT).encode("utf-8")).hexdigest()[:12]
    return str(Path(tempfile.gettempdir()) / f"kimi-agent-typing-mypy-{key}")


@pytest.fixture(scope="module")
def errors(monkeypatch_module: pytest.MonkeyPatch) -> dict[tuple[str, int], list[str]]:
    """mypy's errors over the cases, by (file name, line): their codes."""
    monkeypatch_module.chdir(ROOT)
    files = [str((CASES / name).relative_to(ROOT)) for name in PASSING + FAILING]
    stdout, stderr, status = api.run([
        "--config-file", str(ROOT / "pyproject.toml"), "--strict",
        "--cache-dir", _cache_dir(), "--no-error-summary", "--show-error-codes",
        "--hide-error-context", "--no-pretty", "--no-color-output", *files,
    ])
    assert status in (0, 1), f"mypy could not run (status {status}):\n{stderr}\n{stdout}"
    found: dict[tuple[str, int], list[str]] = {}
    for line in stdout.splitlines():
        match = _ERROR.match(line)
        if match is not None:
            key = (Path(match["file"]).name, int(match["line"]))
            found.setdefault(key, []).append(match["code"])
            _MESSAGES.append(line)
        else:
            assert ": note: " in line, f"unexpected mypy output: {line!r}"
    return found


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def _expected(name: str) -> dict[tuple[str, int], list[str]]:
    expected: dict[tuple[str, int], list[str]] = {}
    for number, text in enumerate((CASES / name).read_text("utf-8").splitlines(), start=1):
        match = _EXPECT.search(text)
        if match is not None:
            expected[(name, number)] = [match["code"]]
    return expected


@pytest.mark.parametrize("name", PASSING)
def test_correct_deps_type_check(errors: dict[tuple[str, int], list[str]], name: str) -> None:
    assert {key: codes for key, codes in errors.items() if key[0] == name} == {}, _MESSAGES


@pytest.mark.parametrize("name", FAILING)
def test_wrong_deps_are_mypy_errors(errors: dict[tuple[str, int], list[str]], name: str
                                    ) -> None:
    expected = _expected(name)
    assert expected, f"{name} marks no expected errors"
    assert {key: codes for key, codes in errors.items() if key[0] == name} == expected, \
        _MESSAGES
