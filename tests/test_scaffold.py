"""``imperfect new-plugin``: the scaffold loads, matches its migration and passes its own test."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT

IMPERFECT = ROOT / ".venv/bin/imperfect"


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), **env},
    )


def test_scaffolded_family_checks_migrates_and_passes_its_test(tmp_path: Path) -> None:
    created = _run([str(IMPERFECT), "new-plugin", "gear", "--directory", "families"], tmp_path)
    assert created.returncode == 0, created.stderr
    package = tmp_path / "families" / "gear"
    rooms = {p.name for p in package.iterdir()}
    assert {
        "__init__.py",
        "routes.py",
        "schemas.py",
        "models.py",
        "service.py",
        "clients.py",
        "migrations",
        "tests",
    } <= rooms
    (tmp_path / "plugins.toml").write_text('[plugins.gear]\nmodule = "families.gear"\n')
    database = f"sqlite://{tmp_path}/scaffold.sqlite3"

    check = _run([str(IMPERFECT), "check"], tmp_path, DATABASE_URL=database)
    assert check.returncode == 0, check.stderr
    assert "gear" in check.stdout and "2 tables" in check.stdout  # gear's and core's outbox

    unchanged = _run(
        [str(IMPERFECT), "db", "makemigrations", "gear"], tmp_path, DATABASE_URL=database
    )
    assert unchanged.returncode == 0, unchanged.stderr
    assert "no changes" in unchanged.stdout

    own_test = _run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "families/gear"], tmp_path
    )
    assert own_test.returncode == 0, own_test.stdout + own_test.stderr
    assert "2 passed" in own_test.stdout


def test_scaffold_refuses_bad_names_and_existing_packages(tmp_path: Path) -> None:
    for bad in ("Gear", "class", "9lives", "gear-box"):
        result = _run([str(IMPERFECT), "new-plugin", bad], tmp_path)
        assert result.returncode == 1
        assert "must be a lowercase Python identifier" in result.stderr
    assert _run([str(IMPERFECT), "new-plugin", "gear"], tmp_path).returncode == 0
    again = _run([str(IMPERFECT), "new-plugin", "gear"], tmp_path)
    assert again.returncode == 1 and "already exists" in again.stderr


def test_check_catches_model_changes_without_migration_and_missing_packages(tmp_path: Path) -> None:
    assert (
        _run([str(IMPERFECT), "new-plugin", "gear", "--directory", "families"], tmp_path).returncode
        == 0
    )
    (tmp_path / "plugins.toml").write_text('[plugins.gear]\nmodule = "families.gear"\n')
    models = tmp_path / "families" / "gear" / "models.py"
    models.write_text(
        models.read_text().replace(
            "    created_at = fields",
            "    weight_grams = fields.IntField(default=0)\n    created_at = fields",
        )
    )
    database = f"sqlite://{tmp_path}/scaffold.sqlite3"
    changed = _run([str(IMPERFECT), "check"], tmp_path, DATABASE_URL=database)
    assert changed.returncode == 1
    assert "models changed without a migration in: plugin 'gear'" in changed.stderr

    written = _run(
        [str(IMPERFECT), "db", "makemigrations", "gear"], tmp_path, DATABASE_URL=database
    )
    assert "0002" in written.stdout, written.stdout + written.stderr
    assert _run([str(IMPERFECT), "check"], tmp_path, DATABASE_URL=database).returncode == 0

    shutil.rmtree(tmp_path / "families" / "gear" / "migrations")
    missing = _run([str(IMPERFECT), "check"], tmp_path, DATABASE_URL=database)
    assert missing.returncode == 1
    assert "plugin 'gear': its models have no migrations package" in missing.stderr
