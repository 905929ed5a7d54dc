"""``imperfect new-plugin NAME``: a family package with every room, a model,
its first migration and a test that passes as generated."""

from __future__ import annotations

import keyword
import re
from pathlib import Path
from string import Template

from core.errors import ConfigError

TEMPLATE = Path(__file__).parent / "template"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def scaffold(name: str, directory: Path) -> list[Path]:
    """Write ``directory/name/`` from the template; refuse to overwrite anything."""
    if not _NAME.match(name) or keyword.iskeyword(name):
        raise ConfigError(
            f"plugin name '{name}' must be a lowercase Python identifier (a-z, 0-9, _)"
        )
    target = directory / name
    if target.exists():
        raise ConfigError(f"{target} already exists")
    module = ".".join((*directory.parts, name)) if directory.parts != (".",) else name
    values = {
        "name": name,
        "module": module,
        "title": name.replace("_", " ").capitalize(),
        "model": "".join(part.capitalize() for part in name.split("_")) + "Item",
    }
    written = []
    for source in sorted(TEMPLATE.rglob("*.tmpl")):
        relative = source.relative_to(TEMPLATE).with_suffix("")
        path = target / Path(str(relative).replace("NAME", name))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(source.read_text()).substitute(values))
        written.append(path)
    return written
