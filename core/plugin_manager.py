"""The plugin manager: built-in plugins, installed plugins, and calling hooks with named errors.

Built-in plugins are listed in ``DEFAULT_PLUGINS`` and registered exactly like third-party ones,
which are found through the entry-point group ``tuneloop``. ``TUNELOOP_LOAD_PLUGINS`` restricts the
installed plugins that load (comma-separated entry-point names; set but empty means none), so a
broken plugin can always be switched off. Loading is lazy and idempotent: ``tuneloop --help`` never
imports a plugin module.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import os
import threading
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Iterator

import pluggy

from tuneloop import hookspecs
from tuneloop.errors import PluginError, TuneloopError

PROJECT_NAME = "tuneloop"
ENTRY_POINT_GROUP = "tuneloop"

DEFAULT_PLUGINS: tuple[str, ...] = (
    "tuneloop.plugins.sources",
    "tuneloop.plugins.cleaners",
    "tuneloop.plugins.augmenters",
    "tuneloop.plugins.regularizers",
    "tuneloop.plugins.trainers",
    "tuneloop.plugins.metrics",
    "tuneloop.plugins.feedback",
    "tuneloop.plugins.samplers",
)

pm = pluggy.PluginManager(PROJECT_NAME)
pm.add_hookspecs(hookspecs)

_lock = threading.Lock()
_loaded = False


@dataclass
class PluginInfo:
    """What ``tuneloop plugins list`` shows and what a cycle records about each plugin."""

    name: str
    version: str
    builtin: bool
    hooks: list[str] = field(default_factory=list)
    distribution: str | None = None


_distributions: dict[str, tuple[str, str]] = {}  # plugin name -> (distribution, version)


def tuneloop_version() -> str:
    try:
        return importlib.metadata.version("tuneloop")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree
        return "0+unknown"


def allowed_entry_points() -> set[str] | None:
    """Names in ``TUNELOOP_LOAD_PLUGINS``; ``None`` when unset (load every installed plugin)."""
    value = os.environ.get("TUNELOOP_LOAD_PLUGINS")
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def load_plugins() -> pluggy.PluginManager:
    """Register the built-ins and the allowed installed plugins once; return the manager."""
    global _loaded
    with _lock:
        if _loaded:
            return pm
        for module_name in DEFAULT_PLUGINS:
            if pm.get_plugin(module_name) is None:
                pm.register(importlib.import_module(module_name), name=module_name)
        _load_entry_points()
        _check_pending()
        _loaded = True
    return pm


def _load_entry_points() -> None:
    allowed = allowed_entry_points()
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if allowed is not None and entry_point.name not in allowed:
            continue
        if pm.get_plugin(entry_point.name) is not None:
            continue
        try:
            plugin = entry_point.load()
        except Exception as error:  # any import failure is the plugin's, and must not be silent
            raise PluginError(
                entry_point.name,
                f"failed to import ({type(error).__name__}: {error}); "
                f"set TUNELOOP_LOAD_PLUGINS to load only the plugins you need",
            ) from error
        check_compatibility(entry_point.name, plugin)
        pm.register(plugin, name=entry_point.name)
        if entry_point.dist is not None:
            _distributions[entry_point.name] = (entry_point.dist.name, entry_point.dist.version)


def check_compatibility(name: str, plugin: Any) -> None:
    """Refuse a plugin whose ``TUNELOOP_REQUIRES`` version specifier excludes this tuneloop."""
    requires = getattr(plugin, "TUNELOOP_REQUIRES", None)
    if not requires:
        return
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        spec = SpecifierSet(requires)
    except InvalidSpecifier as error:
        raise PluginError(name, f"TUNELOOP_REQUIRES is not a version specifier: {error}") from error
    version = tuneloop_version()
    if version != "0+unknown" and not spec.contains(version, prereleases=True):
        raise PluginError(name, f"needs tuneloop {requires}, this is tuneloop {version}")


def _check_pending() -> None:
    """A hookimpl whose name matches no hookspec is a typo: fail loudly, naming the plugin."""
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as error:
        plugin_name = pm.get_name(error.plugin) or repr(error.plugin)
        raise PluginError(plugin_name, str(error)) from error


def register(plugin: Any, name: str | None = None) -> str:
    """Register a plugin object (a module or an instance with hookimpls) and validate it."""
    load_plugins()
    try:
        registered = pm.register(plugin, name=name)
    except ValueError as error:
        raise PluginError(name or repr(plugin), str(error)) from error
    except pluggy.PluginValidationError as error:
        raise PluginError(name or repr(plugin), str(error)) from error
    assert registered is not None
    try:
        _check_pending()
    except PluginError:
        pm.unregister(plugin)
        raise
    return registered


def unregister(plugin_or_name: Any) -> None:
    if isinstance(plugin_or_name, str):
        pm.unregister(name=plugin_or_name)
    else:
        pm.unregister(plugin_or_name)


def _raising_plugin(hook_name: str, error: BaseException) -> str | None:
    """Which plugin's hookimpl the traceback passed through last: the one that raised."""
    codes = {
        impl.function.__code__: impl.plugin_name
        for impl in getattr(pm.hook, hook_name).get_hookimpls()
        if hasattr(impl.function, "__code__")
    }
    culprit = None
    traceback = error.__traceback__
    while traceback is not None:
        name = codes.get(traceback.tb_frame.f_code)
        if name is not None:
            culprit = name
        traceback = traceback.tb_next
    return culprit


@contextlib.contextmanager
def blame(plugin: str, what: str) -> Iterator[None]:
    """Turn an unexpected exception inside a component into a ``PluginError`` naming its plugin.

    The cycle calls component methods directly (not through pluggy), so without this a bug in a
    third-party metric would surface as a bare traceback deep inside the cycle.
    """
    try:
        yield
    except TuneloopError:
        raise
    except Exception as error:
        raise PluginError(plugin, f"{what}: {type(error).__name__}: {error}") from error


def call_hook(hook_name: str, **kwargs: Any) -> list[Any]:
    """Call a hook through pluggy; an exception from a plugin becomes a ``PluginError`` naming it."""
    load_plugins()
    hook = getattr(pm.hook, hook_name)
    try:
        return hook(**kwargs)
    except TuneloopError:
        raise
    except Exception as error:
        plugin = _raising_plugin(hook_name, error) or "unknown"
        raise PluginError(plugin, f"{type(error).__name__}: {error}", hook=hook_name) from error


def call_each_impl(hook_name: str, make_kwargs: Callable[[str], dict[str, Any]]) -> None:
    """Call each implementation of a hook separately, with arguments made for its plugin.

    Registration uses this to know which plugin registered which component, so a duplicate name
    can name both plugins and a cycle can record the versions of the plugins it used.
    """
    load_plugins()
    for impl in getattr(pm.hook, hook_name).get_hookimpls():  # registration order
        kwargs = make_kwargs(impl.plugin_name)
        try:
            impl.function(**{name: kwargs[name] for name in impl.argnames})
        except TuneloopError:
            raise
        except Exception as error:
            raise PluginError(impl.plugin_name, f"{type(error).__name__}: {error}",
                              hook=hook_name) from error


def plugin_infos() -> list[PluginInfo]:
    """Every registered plugin with its version and the hooks it implements."""
    load_plugins()
    infos = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:  # blocked
            continue
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        builtin = name in DEFAULT_PLUGINS
        distribution, version = _distributions.get(name, (None, None))
        if version is None:
            version = tuneloop_version() if builtin else _module_version(plugin)
        infos.append(PluginInfo(name=name, version=version, builtin=builtin, hooks=hooks,
                                distribution=distribution))
    return sorted(infos, key=lambda info: (not info.builtin, info.name))


def _module_version(plugin: Any) -> str:
    module = plugin if isinstance(plugin, ModuleType) else importlib.import_module(
        type(plugin).__module__)
    return str(getattr(module, "__version__", "unversioned"))


def reset_for_tests() -> None:
    """Forget installed plugins so the next ``load_plugins()`` reads the environment again."""
    global _loaded
    with _lock:
        for name, plugin in list(pm.list_name_plugin()):
            if name not in DEFAULT_PLUGINS and plugin is not None:
                pm.unregister(plugin)
        _distributions.clear()
        _loaded = False
