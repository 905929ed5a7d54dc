"""``imperfect new-plugin``: the scaffold loads, matches its migration and passes its own test,
in the tree (from any directory importable from the working directory) and as a
distribution found through its entry point."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from core.cli import cli
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


def _own_test(cwd: Path, target: str, **env: str) -> None:
    """Run a scaffolded family's generated test the way its docstring says."""
    result = _run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", target], cwd, **env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_scaffolded_family_checks_migrates_and_passes_its_test(tmp_path: Path) -> None:
    created = _run([str(IMPERFECT), "new-plugin", "gear", "--directory", "families"], tmp_path)
    assert created.returncode == 0, created.stderr
    assert created.stdout.endswith('[plugins.gear]\nmodule = "families.gear"\n\n')
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
    schemas = (package / "schemas.py").read_text()
    assert "FAMILY = Family(__package__, Settings)" in schemas
    assert "current_platform" not in (package / "routes.py").read_text()
    (tmp_path / "plugins.toml").write_text('[plugins.gear]\nmodule = "families.gear"\n')
    database = f"sqlite://{tmp_path}/scaffold.sqlite3"

    check = _run([str(IMPERFECT), "check"], tmp_path, DATABASE_URL=database)
    assert check.returncode == 0, check.stderr
    assert "1 families enabled (gear)" in check.stdout
    listed = _run([str(IMPERFECT), "plugins", "--json"], tmp_path, DATABASE_URL=database)
    [gear] = [row for row in json.loads(listed.stdout) if row["name"] == "gear"]
    assert gear["tables"] == ["gear_item"] and gear["status"] == "enabled"

    unchanged = _run(
        [str(IMPERFECT), "db", "makemigrations", "gear"], tmp_path, DATABASE_URL=database
    )
    assert unchanged.returncode == 0, unchanged.stderr
    assert "no changes" in unchanged.stdout

    _own_test(tmp_path, "families/gear")


@pytest.mark.parametrize(
    ("directory", "module"),
    [
        (".", "gear"),
        ("pkg/sub", "pkg.sub.gear"),
        ("ABSOLUTE/deep", "deep.gear"),  # an absolute path inside the working directory
        ("plugins", "plugins.gear"),  # as in this repository: plugins/ is a regular package
    ],
)
def test_the_generated_test_passes_from_any_importable_directory(
    tmp_path: Path, directory: str, module: str
) -> None:
    if directory == "plugins":
        (tmp_path / "plugins").mkdir()
        (tmp_path / "plugins" / "__init__.py").write_text("")
    where = directory.replace("ABSOLUTE", str(tmp_path))
    created = _run([str(IMPERFECT), "new-plugin", "gear", "--directory", where], tmp_path)
    assert created.returncode == 0, created.stderr
    assert f'module = "{module}"' in created.stdout
    package = tmp_path / module.replace(".", "/")
    assert (package / "tests" / "test_gear.py").is_file()
    for path in package.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")  # every file parses
    _own_test(tmp_path, str(package.relative_to(tmp_path)))


def _new_plugin(cwd: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    """``imperfect new-plugin ARGS`` in this process (fast), from ``cwd``."""
    monkeypatch.chdir(cwd)
    return CliRunner().invoke(cli, ["new-plugin", *args])


def test_scaffold_refuses_directories_it_cannot_import_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    refusals = {
        str(tmp_path / "elsewhere"): "is outside the working directory",
        "..": "is outside the working directory",
        "my-families": "'my-families' is not a Python identifier",
        "families/class": "'class' is not a Python identifier",
        # a fresh directory: the installed imperfect-api's own `plugins` package would win
        "plugins": "'plugins' is already importable from",
        "json": "'json' is already importable from",
    }
    for directory, message in refusals.items():
        result = _new_plugin(work, monkeypatch, "gear", "--directory", directory)
        assert result.exit_code == 1, (directory, result.output)
        assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1 and not result.stdout
    assert list(work.iterdir()) == [] and not (tmp_path / "elsewhere").exists()


def test_scaffold_refuses_bad_names_and_existing_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for bad in ("Gear", "class", "9lives", "gear-box"):
        result = _new_plugin(tmp_path, monkeypatch, bad, "--directory", "families")
        assert result.exit_code == 1
        assert "must be a lowercase Python identifier" in result.stderr
    for layout in (["--directory", "families"], ["--distribution"]):
        assert _new_plugin(tmp_path, monkeypatch, "gear", *layout).exit_code == 0
        again = _new_plugin(tmp_path, monkeypatch, "gear", *layout)
        assert again.exit_code == 1 and "already exists" in again.stderr


def _visible_entry_points(site: Path, distribution: Path) -> None:
    """Make the distribution's entry points visible the way an installer would.

    importlib.metadata finds ``*.dist-info`` directories on ``sys.path``, so a minimal one
    (METADATA and entry_points.txt, written from the generated pyproject.toml) in a
    directory on PYTHONPATH stands in for ``pip install``, without touching the venv.
    """
    project = tomllib.loads((distribution / "pyproject.toml").read_text())["project"]
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(parents=True)
    info.joinpath("METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    lines = []
    for group, points in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines.extend(f"{name} = {target}" for name, target in points.items())
    info.joinpath("entry_points.txt").write_text("\n".join(lines) + "\n")


def test_a_distribution_is_found_by_its_entry_point_and_passes_its_test(tmp_path: Path) -> None:
    created = _run(
        [str(IMPERFECT), "new-plugin", "gear", "--distribution", "--directory", "dists"], tmp_path
    )
    assert created.returncode == 0, created.stderr
    assert created.stdout.endswith('[plugins.gear]\nentry_point = "gear"\n\n')
    distribution = tmp_path / "dists" / "imperfect-gear"
    pyproject = tomllib.loads((distribution / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["imperfect.plugins"] == {"gear": "imperfect_gear"}
    assert pyproject["tool"]["setuptools"]["package-data"] == {
        "imperfect_gear": ["migrations/*.py"]
    }
    assert (distribution / "imperfect_gear" / "migrations" / "0001_initial.py").is_file()
    assert not (distribution / "tests" / "__init__.py").exists()

    site = tmp_path / "site"
    _visible_entry_points(site, distribution)
    path = f"{site}:{distribution}:{ROOT}"
    _own_test(distribution, ".", PYTHONPATH=path)

    deployment = tmp_path / "deployment"
    deployment.mkdir()
    (deployment / "plugins.toml").write_text('[plugins.gear]\nentry_point = "gear"\n')
    database = f"sqlite://{deployment}/gear.sqlite3"
    check = _run([str(IMPERFECT), "check"], deployment, DATABASE_URL=database, PYTHONPATH=path)
    assert check.returncode == 0, check.stderr
    listed = _run([str(IMPERFECT), "plugins"], deployment, DATABASE_URL=database, PYTHONPATH=path)
    assert "gear 0.1.0 [enabled] entry point imperfect.plugins:gear" in listed.stdout
    shutil.rmtree(site)  # tmp_path goes too; nothing was installed into the venv


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
