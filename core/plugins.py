"""Loading route families from ``plugins.toml`` into one pluggy plugin manager.

Loading is an allow-list: only families listed and enabled load. Each is
imported (module path or ``imperfect.plugins`` entry point), checked for its
``PLUGIN`` metadata, ordered by its ``requires``, registered, and given its
validated settings. A family that fails is either fatal (``on_failure =
"abort"``) or left out and reported (``"skip"``), together with every family
that requires it.
"""

from __future__ import annotations

import heapq
import importlib
import importlib.metadata
import inspect
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from types import ModuleType
from typing import Any, Generic, TypeVar

import pluggy
from pydantic import BaseModel, ConfigDict, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from core import hookspecs
from core.config import (
    ENTRY_POINT_GROUP,
    CoreSettings,
    PluginEntry,
    read_plugins_file,
    resolve_secrets,
)
from core.errors import ConfigError, ConflictError, ContributionError, PluginLoadError
from core.families import Stash

log = logging.getLogger("imperfect.plugins")

Item = TypeVar("Item")


@dataclass(frozen=True)
class PluginInfo:
    """What a plugin package says about itself: ``PLUGIN = PluginInfo(...)`` in ``__init__``."""

    version: str
    description: str = ""
    requires: tuple[str, ...] = ()


@dataclass
class LoadedPlugin:
    """A family that loaded: its metadata, validated settings and run-time state."""

    name: str
    entry: PluginEntry
    module: Any
    info: PluginInfo
    settings: Any = None
    stash: Stash = field(default_factory=Stash)

    @property
    def version(self) -> str:
        return self.info.version

    @property
    def requires(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.info.requires, *self.entry.requires)))

    @property
    def package(self) -> str:
        """The dotted package the plugin lives in (where its rooms are)."""
        return getattr(self.module, "__name__", type(self.module).__module__)


@dataclass(frozen=True)
class LeftOut:
    """A family that is listed but does not serve, and why."""

    name: str
    source: str
    reason: str
    status: str  # "disabled" or "skipped"


class Platform:
    """The loaded families, their plugin manager, and the core settings."""

    def __init__(self, core: CoreSettings) -> None:
        self.core = core
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, LoadedPlugin] = {}
        self.left_out: dict[str, LeftOut] = {}
        self.by_package: dict[str, LoadedPlugin] = {}

    @property
    def hook(self) -> Any:
        """pluggy's hook relay, for calling hooks that plugins define for each other."""
        return self.pm.hook

    def impls(self, hook_name: str) -> list[tuple[LoadedPlugin, pluggy.HookImpl]]:
        """The implementations of a hook, each with its plugin, in dependency order.

        A hook defined by a family that is not enabled has no implementations,
        so ``call_each`` on it is a no-op rather than an error.
        """
        caller = getattr(self.pm.hook, hook_name, None)
        if caller is None:  # a hook whose owning plugin is not enabled
            return []
        by_name = {impl.plugin_name: impl for impl in caller.get_hookimpls()}
        return [(p, by_name[name]) for name, p in self.plugins.items() if name in by_name]

    def call_one(self, plugin: LoadedPlugin, impl: pluggy.HookImpl, **kwargs: Any) -> Any:
        """Call one implementation with the arguments it asks for, adding ``plugin``."""
        kwargs = {"plugin": plugin, "platform": self, **kwargs}
        return impl.function(*[kwargs[arg] for arg in impl.argnames])

    async def call_plugin(self, plugin: LoadedPlugin, hook_name: str, **kwargs: Any) -> Any:
        """Call one plugin's own implementation of a hook (``None`` if it has none)."""
        for owner, impl in self.impls(hook_name):
            if owner is plugin:
                result = self.call_one(plugin, impl, **kwargs)
                return await result if inspect.isawaitable(result) else result
        return None

    def call_plugin_sync(self, plugin: LoadedPlugin, hook_name: str, **kwargs: Any) -> Any:
        """Like :meth:`call_plugin`, for hooks that must be synchronous."""
        for owner, impl in self.impls(hook_name):
            if owner is plugin:
                return _synchronous(hook_name, self.call_one(plugin, impl, **kwargs))
        return None

    async def call_each(
        self, hook_name: str, *, reverse: bool = False, **kwargs: Any
    ) -> list[tuple[LoadedPlugin, Any]]:
        """Call a hook once per plugin (awaiting async ones); results paired with plugins."""
        results = []
        impls = self.impls(hook_name)
        for plugin, impl in reversed(impls) if reverse else impls:
            result = self.call_one(plugin, impl, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            results.append((plugin, result))
        return results

    def call_each_sync(self, hook_name: str, **kwargs: Any) -> list[tuple[LoadedPlugin, Any]]:
        """Call a hook that must be synchronous once per plugin."""
        return [
            (plugin, self.call_plugin_sync(plugin, hook_name, **kwargs))
            for plugin, _ in self.impls(hook_name)
        ]

    def collect(
        self, hook_name: str, model: type[Item], *, key: Callable[[Item], str]
    ) -> Registry[Item]:
        """Gather a family-defined registry: every contribution to ``hook_name``, validated.

        Each implementation (synchronous) returns an iterable of items, each an instance
        of ``model`` or data that validates as one. A contribution that does not validate,
        or an implementation that raises, is blamed on the family that made it
        (:class:`~core.errors.ContributionError`: that family fails to load, by its own
        ``on_failure``). Two contributions with the same ``key`` are a
        :class:`~core.errors.ConflictError` naming both families, which stops start-up
        whatever ``on_failure`` says.
        """
        adapter: TypeAdapter[Item] = TypeAdapter(model)
        registry: Registry[Item] = Registry(hook_name)
        for plugin, impl in self.impls(hook_name):
            try:
                items = list(_synchronous(hook_name, self.call_one(plugin, impl)) or ())
            except Exception as error:
                raise ContributionError(
                    plugin.name, f"hook {hook_name} failed: {error!r}"
                ) from error
            for raw in items:
                try:
                    item = adapter.validate_python(raw)
                except PydanticValidationError as error:
                    problems = "; ".join(
                        f"{'.'.join(str(p) for p in e['loc']) or 'item'}: {e['msg']}"
                        for e in error.errors()
                    )
                    raise ContributionError(
                        plugin.name, f"invalid {hook_name} contribution {raw!r}: {problems}"
                    ) from error
                registry.add(plugin.name, key(item), item)
        return registry

    def leave_out(self, name: str, reason: str) -> None:
        """Drop a loaded family that failed, and every family that requires it.

        A family whose ``on_failure`` is ``"abort"`` cannot be left out: its
        failure stops start-up with its name and cause.
        """
        plugin = self.plugins.get(name)
        if plugin is None:
            return
        if plugin.entry.on_failure == "abort":
            raise PluginLoadError(name, reason)
        log.warning("plugin '%s' left out: %s", name, reason)
        del self.plugins[name]
        self.by_package.pop(plugin.package, None)
        self.pm.unregister(name=name)
        self.left_out[name] = LeftOut(name, plugin.entry.source, reason, "skipped")
        for other in list(self.plugins.values()):
            if name in other.requires:
                self.leave_out(other.name, f"requires '{name}', which was left out")


class Registry(Mapping[str, Item], Generic[Item]):
    """Contributions to a family-defined hook by key, each with the family that made it."""

    def __init__(self, hook_name: str) -> None:
        self.hook_name = hook_name
        self._items: dict[str, Item] = {}
        self._owners: dict[str, str] = {}

    def add(self, owner: str, key: str, item: Item) -> None:
        if key in self._items:
            raise ConflictError(
                f"{self.hook_name} '{key}' is contributed by both plugin "
                f"'{self._owners[key]}' and plugin '{owner}'"
            )
        self._items[key], self._owners[key] = item, owner

    def owner(self, key: str) -> str:
        """The family that contributed ``key``."""
        return self._owners[key]

    def __getitem__(self, key: str) -> Item:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


def load_platform(core: CoreSettings) -> Platform:
    """Read ``plugins.toml`` and load every enabled family (no app, no database)."""
    platform = Platform(core)
    entries = read_plugins_file(core.plugins_file, core)
    for entry in entries:
        if not entry.enabled:
            reason = f"disabled by {entry.disabled_by}"
            platform.left_out[entry.name] = LeftOut(entry.name, entry.source, reason, "disabled")

    candidates: dict[str, LoadedPlugin] = {}
    for entry in entries:
        if entry.enabled:
            try:
                candidates[entry.name] = _import_plugin(entry)
            except PluginLoadError as error:
                _fail(platform, entry, error.cause)

    for name in _dependency_order(candidates, platform):
        plugin = candidates[name]
        missing = [r for r in plugin.requires if r not in platform.plugins]
        if missing:
            _fail(platform, plugin.entry, _missing_reason(missing[0], platform))
            continue
        try:
            _register(platform, plugin)
        except PluginLoadError as error:
            _fail(platform, plugin.entry, error.cause)

    try:
        platform.pm.check_pending()
    except pluggy.PluginValidationError as error:
        name = platform.pm.get_name(error.plugin) or "?"
        raise ConfigError(
            f"plugin '{name}' implements a hook no enabled plugin defines: {error}. "
            "Mark implementations of hooks owned by optional plugins @hookimpl(optionalhook=True)."
        ) from error
    return platform


def _fail(platform: Platform, entry: PluginEntry, cause: str) -> None:
    if entry.on_failure == "abort":
        raise PluginLoadError(entry.name, cause)
    log.warning("plugin '%s' skipped: %s", entry.name, cause)
    platform.left_out[entry.name] = LeftOut(entry.name, entry.source, cause, "skipped")


def _missing_reason(required: str, platform: Platform) -> str:
    left = platform.left_out.get(required)
    if left is None:
        return f"requires '{required}', which is not listed in plugins.toml"
    return f"requires '{required}', which is {left.status} ({left.reason})"


def _import_plugin(entry: PluginEntry) -> LoadedPlugin:
    try:
        if entry.module:
            module: Any = importlib.import_module(entry.module)
        else:
            module = _load_entry_point(entry)
    except PluginLoadError:
        raise
    except Exception as error:
        raise PluginLoadError(entry.name, f"cannot import {entry.source}: {error!r}") from error
    info = getattr(module, "PLUGIN", None)
    if not isinstance(info, PluginInfo):
        raise PluginLoadError(entry.name, f"{entry.source} has no PLUGIN = PluginInfo(...)")
    return LoadedPlugin(name=entry.name, entry=entry, module=module, info=info)


def _load_entry_point(entry: PluginEntry) -> ModuleType:
    found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=entry.entry_point or "")
    if not found:
        raise PluginLoadError(
            entry.name,
            f"no installed package provides entry point {ENTRY_POINT_GROUP}:{entry.entry_point}",
        )
    return next(iter(found)).load()


def _dependency_order(candidates: dict[str, LoadedPlugin], platform: Platform) -> list[str]:
    """Order families so each comes after those it requires; a cycle is an error.

    Families keep their ``plugins.toml`` order where requirements allow it.
    """
    graph = {
        name: [r for r in plugin.requires if r in candidates] for name, plugin in candidates.items()
    }
    sorter = TopologicalSorter(graph)
    try:
        sorter.prepare()
    except CycleError as error:
        cycle = error.args[1]  # each family, then one it requires
        raise ConfigError(f"plugin '{cycle[0]}': dependency cycle {' -> '.join(cycle)}") from error
    position = {name: index for index, name in enumerate(candidates)}
    ready: list[tuple[int, str]] = []
    order: list[str] = []
    while sorter.is_active():
        for name in sorter.get_ready():
            heapq.heappush(ready, (position[name], name))
        _, name = heapq.heappop(ready)
        order.append(name)
        sorter.done(name)
    return order


def _register(platform: Platform, plugin: LoadedPlugin) -> None:
    try:
        platform.pm.register(plugin.module, name=plugin.name)
    except pluggy.PluginValidationError as error:
        raise PluginLoadError(plugin.name, _validation_problem(platform, error)) from error
    except ValueError as error:
        raise PluginLoadError(plugin.name, f"cannot register: {error}") from error
    platform.plugins[plugin.name] = plugin
    platform.by_package[plugin.package] = plugin
    hook_name = "add_hookspecs"
    try:
        for impl in _own_impls(platform, hook_name, plugin.name):
            _synchronous(
                hook_name, impl.function(*[{"pm": platform.pm}[arg] for arg in impl.argnames])
            )
        hook_name = "settings_model"
        plugin.settings = _validate_settings(platform, plugin)
    except Exception as error:
        del platform.plugins[plugin.name]
        platform.by_package.pop(plugin.package, None)
        platform.pm.unregister(name=plugin.name)
        if isinstance(error, PluginLoadError):
            raise
        raise PluginLoadError(plugin.name, f"hook {hook_name} failed: {error!r}") from error


def _validation_problem(platform: Platform, error: pluggy.PluginValidationError) -> str:
    """pluggy's three-line message as one line that says what the hook takes."""
    lines = str(error).splitlines()
    hook_name = lines[0].rpartition("for hook ")[2].strip("'") if lines else ""
    caller = getattr(platform.pm.hook, hook_name, None)
    spec = getattr(caller, "spec", None)
    if spec is None or len(lines) < 3:
        return "cannot register: " + " ".join(line.strip() for line in lines)
    definition = lines[1].removeprefix("hookimpl definition: ")
    return (
        f"hook {definition}: {lines[2].split(' are declared')[0].lower()} not among the "
        f"arguments of {hook_name} ({', '.join(spec.argnames)}); an implementation may "
        "take any of them, by these names"
    )


def _synchronous(hook_name: str, result: Any) -> Any:
    """A hook's result; an ``async`` implementation of a synchronous hook is refused."""
    if inspect.isawaitable(result):
        getattr(result, "close", lambda: None)()
        raise TypeError(f"hook {hook_name} must not be async (core calls it while building)")
    return result


def _own_impls(platform: Platform, hook_name: str, plugin_name: str) -> Iterable[pluggy.HookImpl]:
    caller = getattr(platform.pm.hook, hook_name)
    return [impl for impl in caller.get_hookimpls() if impl.plugin_name == plugin_name]


def _validate_settings(platform: Platform, plugin: LoadedPlugin) -> BaseModel | None:
    impls = list(_own_impls(platform, "settings_model", plugin.name))
    model: type[BaseModel] | None = (
        _synchronous("settings_model", impls[0].function()) if impls else None
    )
    raw = plugin.entry.raw_settings
    if model is None:
        if raw:
            raise PluginLoadError(plugin.name, f"takes no settings, but got {sorted(raw)}")
        return None
    if model.model_config.get("extra") != "forbid":
        strict_config = ConfigDict(**{**model.model_config, "extra": "forbid"})
        model = type(model.__name__, (model,), {"model_config": strict_config})
    try:
        resolved = resolve_secrets(raw)
        return model.model_validate(resolved)
    except PydanticValidationError as error:
        problems = "; ".join(
            f"setting '{'.'.join(str(p) for p in e['loc']) or '<table>'}': {e['msg']}"
            for e in error.errors()
        )
        raise PluginLoadError(plugin.name, problems) from error
    except ConfigError as error:
        raise PluginLoadError(plugin.name, str(error)) from error
