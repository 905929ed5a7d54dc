"""The plugin contract as written agrees with itself, the docs and the code (as Datasette's
``tests/test_docs.py`` and ``tests/test_plugins.py`` do).

- every hook's docstring says when it runs, what it gets, what it returns, and whether it
  may be async, and the last agrees with how core calls it (:data:`SYNCHRONOUS`);
- ``docs/plugins.md`` lists every hook with exactly its arguments and the same async rule;
- every hook has a test family implementing it;
- an async implementation of a synchronous hook stops loading with one line naming the family.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import sys
from types import ModuleType

import pytest

import core
import tests.plugins
from core import create_app, hookspecs
from core.config import CoreSettings
from core.errors import ConfigError
from core.plugins import load_platform
from core.testing import write_plugins_file
from tests.support import ROOT

SECTIONS = ("Runs:", "Gets:", "Returns:", "May be async:")
FAMILY_HOOKSPECS = sorted(ROOT.glob("plugins/*/hookspecs.py"))


def specs_of(module: ModuleType) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(function)
        for name, function in inspect.getmembers(module, inspect.isfunction)
        if hasattr(function, f"{hookspecs.PROJECT}_spec")
    }


CORE_SPECS = specs_of(hookspecs)


def test_the_contract_has_the_hooks_core_calls():
    assert set(CORE_SPECS) >= {
        "settings_model",
        "blueprints",
        "model_modules",
        "spec_fragments",
        "startup",
        "shutdown",
        "readiness_checks",
        "cli_commands",
        "account_deleted",
        "account_export",
        "route_requirements",
    }
    assert set(CORE_SPECS) >= hookspecs.SYNCHRONOUS


def _docstring_problems(module: ModuleType, name: str, signature: inspect.Signature) -> list[str]:
    doc = inspect.getdoc(getattr(module, name)) or ""
    problems = [f"{name}: no '{section}' line" for section in SECTIONS if section not in doc]
    gets = next((line for line in doc.splitlines() if line.startswith("Gets:")), "")
    for argument in signature.parameters:
        if f"``{argument}``" not in doc:
            problems.append(f"{name}: '{argument}' is not described")
    if not signature.parameters and "nothing" not in gets:
        problems.append(f"{name}: 'Gets:' should say nothing")
    return problems


@pytest.mark.parametrize("name", sorted(CORE_SPECS))
def test_each_core_hook_docstring_is_complete(name):
    assert _docstring_problems(hookspecs, name, CORE_SPECS[name]) == []
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    may_be_async = re.search(r"May be async: (yes|no)", doc)
    assert may_be_async, name
    assert (may_be_async.group(1) == "no") == (name in hookspecs.SYNCHRONOUS)


@pytest.mark.parametrize("path", FAMILY_HOOKSPECS, ids=lambda p: p.parent.name)
def test_each_family_hook_docstring_is_complete(path):
    module = importlib.import_module(f"plugins.{path.parent.name}.hookspecs")
    specs = specs_of(module)
    assert specs, f"{path} defines no hook"
    for name, signature in specs.items():
        assert _docstring_problems(module, name, signature) == []


def _docs_table() -> dict[str, tuple[list[str], str]]:
    """``{hook: (arguments, "yes"|"no")}`` from the hooks table of docs/plugins.md."""
    text = (ROOT / "docs/plugins.md").read_text()
    rows = re.findall(r"^\| `(\w+)\(([^)]*)\)` \|.*\| (yes|no)[^|]*\|$", text, re.MULTILINE)
    return {
        name: ([a.strip() for a in args.split(",") if a.strip()], flag) for name, args, flag in rows
    }


def test_the_guide_lists_every_hook_with_its_arguments_and_async_rule():
    table = _docs_table()
    assert set(table) == set(CORE_SPECS)
    for name, signature in CORE_SPECS.items():
        arguments, flag = table[name]
        assert arguments == list(signature.parameters), name
        assert (flag == "no") == (name in hookspecs.SYNCHRONOUS), name


def _test_family_modules() -> list[ModuleType]:
    modules = []
    for info in pkgutil.walk_packages(tests.plugins.__path__, "tests.plugins."):
        if info.name.startswith("tests.plugins.broken_import"):
            continue  # fails to import on purpose
        modules.append(importlib.import_module(info.name))
    modules.append(importlib.import_module("imperfect_example"))
    return modules


def test_every_hook_has_a_test_family_implementing_it():
    implemented = {
        name
        for module in _test_family_modules()
        for name, function in inspect.getmembers(module, inspect.isfunction)
        if hasattr(function, f"{hookspecs.PROJECT}_impl") and function.__module__ == module.__name__
    }
    assert set(CORE_SPECS) - implemented == set()


@pytest.mark.parametrize("hook_name", ["settings_model", "blueprints", "route_requirements"])
def test_an_async_implementation_of_a_synchronous_hook_is_refused(tmp_path, hook_name):
    module = tmp_path / f"async_{hook_name}.py"
    module.write_text(
        "from core import PluginInfo, hookimpl\n"
        "PLUGIN = PluginInfo(version='1.0.0')\n"
        f"@hookimpl\nasync def {hook_name}():\n    return None\n"
    )
    plugins = write_plugins_file(tmp_path / "plugins.toml", {"late": {"module": module.stem}})
    sys.path.insert(0, str(tmp_path))
    try:
        settings = CoreSettings(plugins_file=plugins, database_url=f"sqlite://{tmp_path}/db")
        with pytest.raises(ConfigError) as raised:
            create_app(settings, load_platform(settings))
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(module.stem, None)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("plugin 'late': ")
    assert f"{hook_name} must not be async" in message


def test_the_guide_lists_exactly_the_public_api():
    """The export table of docs/plugins.md names every name of ``core.__all__``, and no other."""
    text = (ROOT / "docs/plugins.md").read_text()
    table = text.split("What `core` exports, by use:", 1)[1].split("\n\n", 2)[1]
    listed = {
        name
        for row in table.splitlines()[2:]
        for name in re.findall(r"`([A-Za-z_]+)`", row.split("|")[2])
    }
    assert listed == set(core.__all__)
