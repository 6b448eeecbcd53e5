"""The plugin manager: built-in plugins, installed plugins, and calling hooks with named errors.

Built-in plugins are listed in ``DEFAULT_PLUGINS`` and registered exactly like third-party ones,
which are found through the entry-point group ``tuneloop``. ``TUNELOOP_LOAD_PLUGINS`` restricts the
installed plugins that load (comma-separated entry-point names; set but empty means none), and
``tuneloop --no-plugins`` (or ``TUNELOOP_NO_PLUGINS=1``) starts with the built-ins only, so a broken
plugin can always be switched off and removed. Loading is lazy and idempotent: ``tuneloop --help``
never imports a plugin module.

Before an installed plugin is imported, the ``tuneloop`` requirement of its distribution is checked
against the running tuneloop; after, its ``TUNELOOP_REQUIRES``. Either refusal names the plugin and
says why, so an incompatible plugin never fails later with an obscure error from inside a hook.
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
    "tuneloop.plugins.lm_eval",
    "tuneloop.plugins.feedback",
    "tuneloop.plugins.samplers",
)

pm = pluggy.PluginManager(PROJECT_NAME)
pm.add_hookspecs(hookspecs)

_lock = threading.Lock()
_loaded = False
_builtins_only = False  # set by ``tuneloop --no-plugins``


@dataclass
class PluginInfo:
    """What ``tuneloop plugins list`` shows and what a cycle records about each plugin.

    ``loaded`` is false for an installed plugin that ``TUNELOOP_LOAD_PLUGINS`` or ``--no-plugins``
    left out: it is listed (so it can be found and removed) but has no hooks.
    """

    name: str
    version: str
    builtin: bool
    hooks: list[str] = field(default_factory=list)
    distribution: str | None = None
    loaded: bool = True
    module: str | None = None
    requires: str | None = None  # the plugin's TUNELOOP_REQUIRES


@dataclass(frozen=True)
class InstalledPlugin:
    """An entry point in the group ``tuneloop``, read from package metadata without importing it."""

    name: str
    value: str
    distribution: str | None
    version: str | None


_distributions: dict[str, tuple[str, str]] = {}  # plugin name -> (distribution, version)
RECOVERY_HINT = ('to start without it run "tuneloop --no-plugins ...", to remove it '
                 '"tuneloop --no-plugins plugins uninstall {name}"')


def tuneloop_version() -> str:
    try:
        return importlib.metadata.version("tuneloop")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree
        return "0+unknown"


def builtins_only() -> bool:
    """Whether installed plugins are switched off (``--no-plugins`` or ``TUNELOOP_NO_PLUGINS``)."""
    flag = os.environ.get("TUNELOOP_NO_PLUGINS", "")
    return _builtins_only or flag.strip().lower() not in ("", "0", "false", "no")


def allowed_entry_points() -> set[str] | None:
    """Names in ``TUNELOOP_LOAD_PLUGINS``; ``None`` when unset (load every installed plugin)."""
    if builtins_only():
        return set()
    value = os.environ.get("TUNELOOP_LOAD_PLUGINS")
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def not_loaded_reason() -> str:
    """Why an installed plugin is not loaded, in the words the user switched it off with."""
    return "--no-plugins" if builtins_only() else "not in TUNELOOP_LOAD_PLUGINS"


def use_builtins_only() -> None:
    """Start with the built-in plugins only, even if installed ones are loaded already.

    ``tuneloop --no-plugins`` calls this before anything loads, so a plugin that breaks at import
    cannot stop the command that removes it.
    """
    global _builtins_only, _loaded
    with _lock:
        _builtins_only = True
        for name in list(_distributions):
            plugin = pm.get_plugin(name)
            if plugin is not None:
                pm.unregister(plugin)
        _distributions.clear()
        _loaded = False


def installed_plugins() -> list[InstalledPlugin]:
    """Every installed plugin, loaded or not, from package metadata alone (nothing is imported)."""
    found = []
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry_point.dist
        found.append(InstalledPlugin(
            name=entry_point.name, value=entry_point.value,
            distribution=dist.name if dist is not None else None,
            version=dist.version if dist is not None else None))
    return sorted(found, key=lambda plugin: plugin.name)


def unloadable(name: str, message: str, hook: str | None = None) -> PluginError:
    """A load-time error for an installed plugin, saying how to start without it."""
    return PluginError(name, f"{message}; {RECOVERY_HINT.format(name=name)}", hook=hook)


def with_recovery_hint(error: TuneloopError) -> TuneloopError:
    """Add the way out to an error an installed plugin raised in a hook.

    A hook that raises breaks every command that calls it (``register_commands``: all of them),
    so the message says how to start without the plugin. Load errors say it already.
    """
    if (not isinstance(error, PluginError) or error.plugin not in _distributions
            or error.hook is None):
        return error
    if RECOVERY_HINT.format(name=error.plugin) in str(error):
        return error
    hinted = unloadable(error.plugin, _reason(error), hook=error.hook)
    hinted.__cause__ = error.__cause__
    return hinted


def _reason(error: PluginError) -> str:
    """A plugin error's message without its ``plugin "name" [in hook h]: `` prefix."""
    prefix = f'plugin "{error.plugin}"' + (f" in hook {error.hook}" if error.hook else "") + ": "
    text = str(error)
    return text[len(prefix):] if text.startswith(prefix) else text


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
        dist = entry_point.dist
        try:
            if dist is not None:
                check_distribution_requires(entry_point.name, dist)
            try:
                plugin = entry_point.load()
            except Exception as error:  # any import failure is the plugin's, and must not be silent
                raise PluginError(entry_point.name, f"failed to import ({type(error).__name__}: "
                                                    f"{error})") from error
            check_compatibility(entry_point.name, plugin)
            try:
                pm.register(plugin, name=entry_point.name)
            except (ValueError, pluggy.PluginValidationError) as error:
                raise PluginError(entry_point.name, str(error)) from error
        except PluginError as error:
            raise unloadable(entry_point.name, _reason(error)) from error
        _distributions[entry_point.name] = ((dist.name, dist.version) if dist is not None
                                            else (None, None))


def check_distribution_requires(name: str, dist: importlib.metadata.Distribution) -> None:
    """Refuse a plugin whose distribution requires a tuneloop other than this one.

    pip checks this at install time, but not after tuneloop is upgraded or with ``--no-deps``;
    checking before the import turns an API mismatch into a reason, not an ``ImportError``.
    """
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    version = tuneloop_version()
    if version == "0+unknown":
        return
    for text in dist.requires or []:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue  # pip would not have installed it; not ours to judge
        if canonicalize_name(requirement.name) != PROJECT_NAME:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        if not requirement.specifier.contains(version, prereleases=True):
            raise PluginError(name, f"needs tuneloop {requirement.specifier} (distribution "
                                    f"{dist.name} {dist.version} requires it), this is "
                                    f"tuneloop {version}")


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
        if plugin_name in _distributions:
            raise unloadable(plugin_name, str(error)) from error
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
        module = _module_of(plugin)
        requires = getattr(plugin, "TUNELOOP_REQUIRES", None)
        infos.append(PluginInfo(name=name, version=version, builtin=builtin, hooks=hooks,
                                distribution=distribution, module=module.__name__,
                                requires=str(requires) if requires else None))
    return sorted(infos, key=lambda info: (not info.builtin, info.name))


def plugin_listing() -> list[PluginInfo]:
    """The loaded plugins, then the installed ones that were left out (marked ``loaded=False``).

    A plugin switched off with ``TUNELOOP_LOAD_PLUGINS`` or ``--no-plugins`` still appears, read
    from its package metadata without importing it, so a broken plugin can be found and removed.
    """
    infos = plugin_infos()
    loaded = {info.name for info in infos}
    for plugin in installed_plugins():
        if plugin.name not in loaded:
            infos.append(PluginInfo(name=plugin.name, version=plugin.version or "unknown",
                                    builtin=False, distribution=plugin.distribution,
                                    loaded=False, module=plugin.value.split(":")[0]))
    return infos


def _module_of(plugin: Any) -> ModuleType:
    if isinstance(plugin, ModuleType):
        return plugin
    owner = plugin if isinstance(plugin, type) else type(plugin)
    return importlib.import_module(owner.__module__)


def _module_version(plugin: Any) -> str:
    return str(getattr(_module_of(plugin), "__version__", "unversioned"))


def reset_for_tests() -> None:
    """Forget installed plugins so the next ``load_plugins()`` reads the environment again."""
    global _loaded, _builtins_only
    with _lock:
        _builtins_only = False
        for name, plugin in list(pm.list_name_plugin()):
            if name not in DEFAULT_PLUGINS and plugin is not None:
                pm.unregister(plugin)
        _distributions.clear()
        _loaded = False
