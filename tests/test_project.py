"""House rules that would otherwise drift: the README's commands, CI, and the direction of imports."""

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_opens_with_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    first_blocks = re.findall(r"```sh\n(.+?)\n```", readme.split("\n## ")[0])
    assert len(first_blocks) == 2 and all("\n" not in block for block in first_blocks)
    main_job, tests = first_blocks
    assert "daw-plugin generate" in main_job and "torch==2.13.0" in main_job
    assert "pytest" in tests and "torch==2.13.0" in tests
    assert tests in (ROOT / ".ci" / "run").read_text()


def imported_modules(package: str, *, except_in: str | None = None) -> set[str]:
    """The top-level modules ``package`` imports; ``except_in``: a function whose own imports are left out."""
    names = set()
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name == except_in:
                node.body = []  # its imports are not walked
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def test_models_never_import_the_core_or_the_ui():
    assert not imported_modules("models") & {"daw_plugin", "ui"}
    # One exception: the CLI's `panel` command opens the panel, importing it there and only there (lazily).
    assert "ui" not in imported_modules("daw_plugin", except_in="panel")
    assert "ui" in imported_modules("daw_plugin") and "PyQt6" not in imported_modules("daw_plugin")


def test_importing_the_core_and_cli_loads_no_torch():
    code = "import sys, daw_plugin, daw_plugin.cli, daw_plugin.jobs; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
