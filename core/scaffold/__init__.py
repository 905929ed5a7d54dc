"""``imperfect new-plugin NAME``: a family with every room, a model, its first migration and
a test that passes as generated.

Two layouts:

- in the tree (default): ``DIRECTORY/NAME/``, imported by its dotted module path from the
  working directory (which the CLI puts on the import path), so DIRECTORY must lie inside
  the working directory and every part of it must be a Python identifier;
- a distribution (``--distribution``): ``DIRECTORY/imperfect-NAME/`` with a
  ``pyproject.toml`` that declares the package ``imperfect_NAME`` as the entry point
  ``imperfect.plugins:NAME`` and ships its migrations, the package, and its test.
"""

from __future__ import annotations

import importlib.util
import keyword
import re
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from core.errors import ConfigError

TEMPLATE = Path(__file__).parent / "template"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


@dataclass
class Scaffolded:
    """What :func:`scaffold` wrote, and how ``plugins.toml`` enables it."""

    name: str
    root: Path  # the package (in the tree) or the distribution's directory
    module: str  # the dotted path of the package
    source: tuple[str, str]  # ("module", path) or ("entry_point", name)
    written: list[Path] = field(default_factory=list)

    @property
    def plugins_table(self) -> str:
        key, value = self.source
        return f'[plugins.{self.name}]\n{key} = "{value}"\n'


def _check_name(name: str) -> None:
    if not _NAME.match(name) or keyword.iskeyword(name):
        raise ConfigError(
            f"plugin name '{name}' must be a lowercase Python identifier (a-z, 0-9, _)"
        )


def module_path(name: str, directory: Path, cwd: Path) -> str:
    """The dotted module path of ``directory/name`` as imported from ``cwd``.

    Refuses (:class:`ConfigError`) a directory outside ``cwd``, one with a part that is not
    a Python identifier, and one whose top-level package is already importable from
    elsewhere (an installed package or module of that name would shadow it).
    """
    cwd = cwd.resolve()
    where = (cwd / directory).resolve()
    try:
        parts = where.relative_to(cwd).parts
    except ValueError:
        raise ConfigError(
            f"{directory} is outside the working directory {cwd}, from which families are "
            "imported: run imperfect from a directory that contains it, or scaffold an "
            "installable package with --distribution"
        ) from None
    for part in parts:
        if not part.isidentifier() or keyword.iskeyword(part):
            raise ConfigError(
                f"{directory} cannot hold an importable family: '{part}' is not a Python "
                "identifier; choose another --directory, or use --distribution"
            )
    module = ".".join((*parts, name))
    top = parts[0] if parts else name
    found = _importable_elsewhere(top, cwd)
    if found:
        raise ConfigError(
            f"'{top}' is already importable from {found}, so {module} would not be found in "
            f"{cwd / top}; choose another --directory, or use --distribution"
        )
    return module


def _importable_elsewhere(top: str, cwd: Path) -> str | None:
    """Where ``top`` is imported from when that is not ``cwd/top`` (else ``None``)."""
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    here = cwd / top
    locations = list(spec.submodule_search_locations or ())
    if any(Path(location).resolve() == here for location in locations):
        return None
    return locations[0] if locations else (spec.origin or "elsewhere")


def scaffold(
    name: str, directory: Path, *, distribution: bool = False, cwd: Path | None = None
) -> Scaffolded:
    """Write the family from the template; refuse to overwrite anything."""
    _check_name(name)
    if distribution:
        dashed = name.replace("_", "-")
        package = f"imperfect_{name}"
        result = Scaffolded(name, directory / f"imperfect-{dashed}", package, ("entry_point", name))
        package_dir, tests_dir = result.root / package, result.root / "tests"
        run = f"``pip install -e .[test]`` then ``pytest``, in {result.root.name}/"
    else:
        module = module_path(name, directory, cwd or Path.cwd())
        result = Scaffolded(name, directory / name, module, ("module", module))
        package_dir, tests_dir = result.root, result.root / "tests"
        run = f"``python -m pytest {(directory / name).as_posix()}`` from the working directory"
    if result.root.exists():
        raise ConfigError(f"{result.root} already exists")

    key, value = result.source
    values = {
        "name": name,
        "module": result.module,
        "package": result.module,
        "distribution": f"imperfect-{name.replace('_', '-')}",
        "source": f'"{key}": "{value}"',
        "run": run,
        "title": name.replace("_", " ").capitalize(),
        "model": "".join(part.capitalize() for part in name.split("_")) + "Item",
    }
    targets = [(TEMPLATE / "family", package_dir), (TEMPLATE / "tests", tests_dir)]
    if distribution:
        targets.append((TEMPLATE / "distribution", result.root))
    for source_dir, target_dir in targets:
        for source in sorted(source_dir.rglob("*.tmpl")):
            relative = source.relative_to(source_dir).with_suffix("")
            if distribution and relative == Path("__init__.py") and target_dir == tests_dir:
                continue  # the distribution's tests are not a package: no `tests` to clash
            path = target_dir / Path(str(relative).replace("NAME", name))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(Template(source.read_text()).substitute(values))
            result.written.append(path)
    return result
