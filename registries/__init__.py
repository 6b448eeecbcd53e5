"""One registry per component kind, filled by the ``register_*`` hooks; lookup by name.

A registry checks every component as it is registered (right base class, a name, pydantic options),
remembers which plugin gave it, rejects a second component of the same name naming both plugins,
and answers an unknown name with the list of names it has and the closest one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Iterator, TypeVar

from pydantic import BaseModel

from tuneloop.components import COMPONENT_KINDS, Component
from tuneloop.errors import DuplicateComponentError, PluginError, UnknownComponentError
from tuneloop.hookspecs import REGISTRATION_HOOKS
from tuneloop.plugin_manager import call_each_impl

C = TypeVar("C", bound=Component)


@dataclass(frozen=True)
class Entry(Generic[C]):
    component: type[C]
    plugin: str


class Registry(Generic[C]):
    """Components of one kind, by name."""

    def __init__(self, kind: str, base: type[C]):
        self.kind = kind  # e.g. "data_sources"
        self.base = base
        self._entries: dict[str, Entry[C]] = {}

    @property
    def label(self) -> str:
        return self.base.kind

    def add(self, component: type[C], plugin: str) -> None:
        if not (isinstance(component, type) and issubclass(component, self.base)):
            raise PluginError(plugin, f"registered {component!r} as a {self.label}, but it is not "
                                      f"a subclass of tuneloop.{self.base.__name__}")
        name = getattr(component, "name", "")
        if not isinstance(name, str) or not name:
            raise PluginError(plugin, f"{self.label} {component.__name__} has no name")
        options = getattr(component, "Options", None)
        if not (isinstance(options, type) and issubclass(options, BaseModel)):
            raise PluginError(plugin, f"{self.label} {name}: Options must be a pydantic model")
        if name in self._entries:
            raise DuplicateComponentError(self.label, name, self._entries[name].plugin, plugin)
        self._entries[name] = Entry(component, plugin)

    def get(self, name: str) -> type[C]:
        return self.entry(name).component

    def entry(self, name: str) -> Entry[C]:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownComponentError(self.label, name, list(self._entries)) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[C]]:
        return iter(self._entries[name] for name in self.names())


class Registries:
    """All registries, filled from the plugins registered right now."""

    def __init__(self) -> None:
        self.by_kind: dict[str, Registry] = {
            kind: Registry(kind, base) for kind, base in COMPONENT_KINDS.items()
        }
        for hook_name, kind in REGISTRATION_HOOKS.items():
            registry = self.by_kind[kind]
            call_each_impl(hook_name, lambda plugin, registry=registry: {
                "register": lambda component: registry.add(component, plugin)})

    def __getitem__(self, kind: str) -> Registry:
        return self.by_kind[kind]

    def __getattr__(self, kind: str) -> Registry:
        try:
            return self.__dict__["by_kind"][kind]
        except KeyError:
            raise AttributeError(kind) from None

    def components_of(self, plugin: str) -> dict[str, list[str]]:
        """Which components a plugin registered, by kind."""
        found: dict[str, list[str]] = {}
        for kind, registry in self.by_kind.items():
            names = [entry.component.name for entry in registry if entry.plugin == plugin]
            if names:
                found[kind] = names
        return found


def build() -> Registries:
    """Fresh registries from the plugins registered now (cheap: classes only, nothing imported)."""
    return Registries()
