"""The project's promises about itself: the README's test command is what CI runs, the
public API imports cheaply and is typed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```bash\n(.+?)\n```", text)


def test_ci_runs_exactly_the_readme_test_command() -> None:
    commands = readme_commands()
    assert len(commands) >= 2
    test_command = next(c for c in commands if "pytest" in c)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in ci.splitlines()


def test_readme_main_command_runs_the_demo() -> None:
    main = readme_commands()[0]
    assert main.endswith("kimi-agent demo")


def test_package_ships_type_information() -> None:
    assert (ROOT / "kimi_agent" / "py.typed").exists()


def test_core_never_imports_tools_or_the_simulator() -> None:
    code = (
        "import sys, kimi_agent\n"
        "from kimi_agent import Agent, GatewayClient, SQLiteSession, tool\n"
        "bad = [m for m in sys.modules if m.startswith('kimi_agent_tools') "
        "or m.startswith('kimi_agent.testing') or m in ('starlette', 'uvicorn')]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT / "kimi_agent").stdout
    assert out.strip() == "[]"


def test_public_names_resolve() -> None:
    import kimi_agent

    for name in kimi_agent.__all__:
        assert getattr(kimi_agent, name) is not None


def test_every_error_class_is_exported_from_kimi_agent() -> None:
    import inspect

    import kimi_agent
    from kimi_agent import errors

    classes = {name for name, value in vars(errors).items()
               if inspect.isclass(value) and issubclass(value, Exception)
               and value.__module__ == errors.__name__}
    assert classes == set(errors.__all__)
    assert classes <= set(kimi_agent.__all__)
    assert all(getattr(kimi_agent, name) is getattr(errors, name) for name in classes)


def test_the_wheel_ships_the_two_packages_and_their_data_only(tmp_path: Path) -> None:
    """No top-level `tools`, `examples`, `bench` or `tests` in site-packages; the demo's
    knowledge base and the web layer's pages inside the packages."""
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path), str(ROOT)], check=True,
                   capture_output=True)
    [wheel] = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {
        "kimi_agent", "kimi_agent_tools", "kimi_agent-0.1.0.dist-info"}
    assert "kimi_agent_tools/demo/knowledge/returns.md" in names
    assert "kimi_agent/web/_static/widget.html" in names
    assert "kimi_agent/py.typed" in names and "kimi_agent_tools/py.typed" in names


# Built from parts, so that this file does not name them itself.
OUTSIDE_DOCUMENTS = tuple(part.encode() for part in (
    "DESIGN" + ".md", "KIMI_WIRE" + ".md", "GATEWAY" + ".md", ".." + "/shared",
    "/work/" + "shared"))
_SKIPPED_DIRS = {".git", ".ci", ".venv", "site", "build", "dist", "node_modules", "__pycache__",
                 ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis", "artifacts"}


def repository_files() -> list[Path]:
    """The files of the repository: git's list (tracked and not ignored) in a checkout, else
    every file outside the tool and cache folders."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, capture_output=True, check=False)
    if listed.returncode == 0 and listed.stdout:
        names = [n for n in listed.stdout.decode("utf-8").split("\0") if n]
        return [ROOT / n for n in names
                if not set(Path(n).parts) & {".ci", ".git"} and (ROOT / n).is_file()]
    found = []
    for path in ROOT.rglob("*"):
        relative = path.relative_to(ROOT).parts
        if path.is_file() and not set(relative[:-1]) & _SKIPPED_DIRS:
            found.append(path)
    return found


def test_no_file_refers_to_documents_outside_the_repository() -> None:
    files = repository_files()
    assert any(p.name == "README.md" for p in files)
    offenders = []
    for path in files:
        data = path.read_bytes()
        for name in OUTSIDE_DOCUMENTS:
            if name in data:
                offenders.append(f"{path.relative_to(ROOT)}: {name.decode()}")
    assert offenders == [], ("these point at documents outside the repository; point at the "
                             "docs/ pages instead: " + "; ".join(offenders))
