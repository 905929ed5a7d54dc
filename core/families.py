"""What a family knows about itself and about the user: its typed handle, state keys, the user.

A family never names itself by its ``plugins.toml`` key (the deployer chooses that) and never
imports the family that stores users. Instead:

- :class:`Family` is the family's handle on itself, found by its package: typed settings and
  its :class:`Stash` of run-time state in the running app, whatever the deployer called it;
- :class:`StashKey` names one piece of run-time state with its type (pytest's ``Stash``);
- :class:`User` is the local user as every hook and handler sees it, and
  :data:`USER_MODEL` is how a Tortoise model points a foreign key at the user table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast, overload, runtime_checkable

from quart import current_app

if TYPE_CHECKING:
    from core.plugins import LoadedPlugin, Platform

T = TypeVar("T")
D = TypeVar("D")
S = TypeVar("S")

USER_MODEL = "users.User"
"""The Tortoise reference of the user table, for foreign keys:
``fields.ForeignKeyField(USER_MODEL, related_name=..., on_delete=fields.CASCADE)``.

The table belongs to the family that stores users, enabled as ``users`` (Django's
``AUTH_USER_MODEL`` works the same way); a family whose models point at it lists
``"users"`` in ``requires``, and core refuses to start when the reference does not resolve.
"""


@runtime_checkable
class User(Protocol):
    """The caller's local user record, as hooks and handlers receive it.

    ``id`` is the key other families' rows point at (:data:`USER_MODEL`); ``firebase_uid``
    ties it to the Firebase identity. The rest are the user's own preferences, which any
    family may read (to localise, to place dates on the user's calendar).
    """

    @property
    def id(self) -> int: ...
    @property
    def firebase_uid(self) -> str: ...
    @property
    def email(self) -> str | None: ...
    @property
    def display_name(self) -> str | None: ...
    @property
    def locale(self) -> str: ...
    @property
    def timezone(self) -> str: ...
    @property
    def units(self) -> str: ...


class StashKey(Generic[T]):
    """A typed key of a :class:`Stash`: ``ALICE = StashKey[AliceClient]("alice")``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"StashKey({self.name!r})"


class Stash:
    """A family's run-time state (clients, subscribers, registries), typed by its keys."""

    __slots__ = ("_values",)

    def __init__(self) -> None:
        self._values: dict[StashKey[Any], Any] = {}

    def __setitem__(self, key: StashKey[T], value: T) -> None:
        self._values[key] = value

    def __getitem__(self, key: StashKey[T]) -> T:
        try:
            return cast(T, self._values[key])
        except KeyError:
            raise KeyError(f"{key.name} is not set: the family has not started") from None

    @overload
    def get(self, key: StashKey[T]) -> T | None: ...
    @overload
    def get(self, key: StashKey[T], default: D) -> T | D: ...
    def get(self, key: StashKey[T], default: Any = None) -> Any:
        return self._values.get(key, default)

    def __contains__(self, key: StashKey[Any]) -> bool:
        return key in self._values

    def __delitem__(self, key: StashKey[Any]) -> None:
        del self._values[key]


class Family(Generic[S]):
    """A family's handle on itself in the running app, found by its package.

    ``FAMILY = Family(__package__, GearSettings)`` (in the family's ``schemas.py``, next to
    its settings model); then ``FAMILY.settings`` and ``FAMILY.stash[KEY]`` in handlers and
    services, whatever name the deployer gave the family in ``plugins.toml``.
    """

    def __init__(self, package: str | None, settings: type[S] | None = None) -> None:
        if not package:
            raise ValueError("Family(__package__, ...) needs the family's package name")
        self.package = package.partition(".migrations")[0]
        self.settings_model = settings

    def of(self, platform: Platform) -> LoadedPlugin:
        """This family as loaded in ``platform``."""
        plugin = platform.by_package.get(self.package)
        if plugin is None:
            raise LookupError(f"no enabled family is the package {self.package}")
        return plugin

    @property
    def plugin(self) -> LoadedPlugin:
        """This family in the app serving the current request (or app context)."""
        return self.of(current_app.extensions["imperfect"].platform)

    @property
    def name(self) -> str:
        """The name the deployer gave the family in ``plugins.toml``."""
        return self.plugin.name

    @property
    def settings(self) -> S:
        return cast(S, self.plugin.settings)

    @property
    def stash(self) -> Stash:
        return self.plugin.stash

    def __repr__(self) -> str:
        return f"Family({self.package!r})"
