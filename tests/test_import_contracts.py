"""The import contracts of ``pyproject.toml`` hold, and fail when a family breaks them.

CI runs ``lint-imports`` on the repository; these tests run the same contracts on a small
throwaway tree (a ``core`` package with a private module, two families), so a contract that
could never fail would be noticed.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import tomli_w

from tests.support import ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (tree / "pyproject.toml").write_text(tomli_w.dumps({"tool": {"importlinter": contracts}}))
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _tree(tmp_path: Path, gear_imports: str) -> Path:
    files = {
        "core/__init__.py": "from core.app import create_app\n",
        "core/app.py": "def create_app():\n    return None\n",
        "plugins/__init__.py": "",
        "plugins/shop/__init__.py": "from core import create_app\n",
        "plugins/gear/__init__.py": gear_imports,
    }
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_the_repository_keeps_its_import_contracts(tmp_path):
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_public_core_api_is_allowed(tmp_path):
    result = _lint(_tree(tmp_path, "from core import create_app\n"))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("gear_imports", "broken"),
    [
        ("import plugins.shop\n", "No family imports another family BROKEN"),
        ("from plugins.shop import create_app\n", "No family imports another family BROKEN"),
        ("from core.app import create_app\n", "(the package core, not its modules) BROKEN"),
    ],
    ids=["family-imports-family", "from-family-import", "private-core-module"],
)
def test_a_violation_fails_the_check(tmp_path, gear_imports, broken):
    result = _lint(_tree(tmp_path, gear_imports))
    assert result.returncode != 0
    assert broken in result.stdout
