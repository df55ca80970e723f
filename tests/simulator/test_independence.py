"""The simulator is a package of its own: nothing in it imports the rest of ``app``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import app.simulator

PACKAGE = Path(app.simulator.__file__).parent


def _imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _foreign(module: str) -> bool:
    return (module == "app" or module.startswith("app.")) and not module.startswith("app.simulator")


def test_no_module_of_the_simulator_imports_the_service() -> None:
    offenders = {
        f"{path.name}: {module}"
        for path in PACKAGE.rglob("*.py")
        for module in _imported_modules(path)
        if _foreign(module)
    }
    assert offenders == set()


def test_running_the_simulator_loads_nothing_of_the_service() -> None:
    probe = (
        "import sys, app.simulator.server, app.simulator.__main__;"
        "print(sorted(m for m in sys.modules if m.startswith('app.')"
        " and not m.startswith('app.simulator')))"
    )
    output = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert output.stdout.strip() == "[]"
