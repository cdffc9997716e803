"""The one plugin manager: entry points in the ``instructgen`` group plus in-process plugins.

Loading is idempotent and each entry point is loaded in isolation: a plugin that fails to import
or raises in a hook becomes one warning naming it (``INSTRUCTGEN_STRICT_PLUGINS=1`` raises a
``PluginError`` instead) and everything else keeps working.

Environment:
    INSTRUCTGEN_LOAD_PLUGINS   comma list of entry-point names to load (set but empty: none)
    INSTRUCTGEN_BLOCK_PLUGINS  comma list of entry-point names never to load
    INSTRUCTGEN_STRICT_PLUGINS 1 to raise on a broken plugin
    INSTRUCTGEN_TRACE_PLUGINS  1 to trace hook calls on stderr
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pluggy

import instructgen.hookspecs as hookspecs
from instructgen.errors import PluginError
from instructgen.registry import (
    EngineRegistry,
    ExecutorRegistry,
    ExporterRegistry,
    ExtractorRegistry,
    FilterRegistry,
    MethodRegistry,
    Registry,
)

log = logging.getLogger("instructgen.plugins")

GROUP = "instructgen"

__all__ = [
    "GROUP",
    "PluginInfo",
    "get_registries",
    "load_plugins",
    "pm",
    "register_builtin",
    "register_plugin",
]

R = TypeVar("R", bound=Registry[Any])


@dataclass
class PluginInfo:
    name: str
    version: str | None = None
    distribution: str | None = None
    module: str | None = None
    source: str = "entry point"  # or "in-process"
    error: str | None = None
    blocked: bool = False


@dataclass
class _State:
    loaded: bool = False
    infos: dict[str, PluginInfo] = field(default_factory=dict)
    registries: dict[str, Registry[Any]] | None = None


pm = pluggy.PluginManager(GROUP)
pm.add_hookspecs(hookspecs)
_state = _State()
_lock = threading.RLock()

_COLLECTORS: dict[str, tuple[str, Callable[[], Registry[Any]]]] = {
    "engines": ("register_engines", EngineRegistry),
    "extractors": ("register_extractors", ExtractorRegistry),
    "filters": ("register_filters", FilterRegistry),
    "exporters": ("register_exporters", ExporterRegistry),
    "executors": ("register_executors", ExecutorRegistry),
    "methods": ("register_methods", MethodRegistry),
}

# What the core itself registers (the ``local`` executor), by registry: name → object. Filled by
# the modules that define those objects, which sit above this floor (see register_builtin).
_BUILTINS: dict[str, dict[str, object]] = {key: {} for key in _COLLECTORS}


def _env_list(var: str) -> list[str] | None:
    value = os.environ.get(var)
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _strict() -> bool:
    return os.environ.get("INSTRUCTGEN_STRICT_PLUGINS", "") not in ("", "0", "false")


def _fail(info: PluginInfo, message: str, exc: BaseException | None = None) -> None:
    info.error = message
    if _strict():
        raise PluginError(info.name, message) from exc
    log.warning("plugin %r disabled: %s", info.name, message)


def _trace(msg: str) -> None:
    if os.environ.get("INSTRUCTGEN_TRACE_PLUGINS", "") not in ("", "0"):
        print(f"[instructgen.plugins] {msg}", file=sys.stderr)


def _entry_points() -> list[Any]:
    from importlib_metadata import entry_points

    return sorted(entry_points(group=GROUP), key=lambda ep: ep.name)


def load_plugins() -> dict[str, PluginInfo]:
    """Load every allowed entry point once; return what was found (idempotent)."""
    with _lock:
        if _state.loaded:
            return _state.infos
        allow = _env_list("INSTRUCTGEN_LOAD_PLUGINS")
        block = set(_env_list("INSTRUCTGEN_BLOCK_PLUGINS") or [])
        for ep in _entry_points():
            dist = getattr(ep, "dist", None)
            info = PluginInfo(
                name=ep.name,
                version=getattr(dist, "version", None),
                distribution=getattr(dist, "name", None),
                module=ep.value,
            )
            if ep.name in _state.infos:
                continue
            _state.infos[ep.name] = info
            if (allow is not None and ep.name not in allow) or ep.name in block:
                info.blocked = True
                pm.set_blocked(ep.name)
                _trace(f"blocked {ep.name}")
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken plugin must not break the host
                _fail(info, f"import failed: {type(exc).__name__}: {exc}", exc)
                continue
            try:
                pm.register(plugin, name=ep.name)
            except Exception as exc:
                _fail(info, f"registration failed: {type(exc).__name__}: {exc}", exc)
                continue
            _trace(f"loaded {ep.name} from {ep.value}")
        try:
            pm.check_pending()
        except pluggy.PluginValidationError as exc:
            if _strict():
                raise PluginError("<pending>", str(exc)) from exc
            log.warning("%s", exc)
        _state.loaded = True
        return _state.infos


def register_plugin(plugin: object, name: str | None = None) -> str:
    """Register an in-process plugin (module, class or instance with hook implementations).

    For notebooks and embedding tools: no packaging needed. Registries are rebuilt on next use.
    Returns the plugin's name, to pass to ``unregister_plugin``.
    """
    load_plugins()
    with _lock:
        pname = pm.register(plugin, name=name)
        if pname is None:
            raise PluginError(name or repr(plugin), "blocked or already registered")
        _state.infos[pname] = PluginInfo(
            name=pname, source="in-process", module=getattr(plugin, "__name__", None)
        )
        _state.registries = None
        return pname


def register_builtin(kind: str, name: str, obj: object) -> None:
    """Register something the core itself provides, e.g. ``register_builtin("executors",
    "local", LocalExecutor)``: listed as plugin ``instructgen``, ahead of every plugin's
    registrations, and kept across ``reset()``. Called by the module that defines ``obj``, so
    this module imports nothing above its floor."""
    if kind not in _BUILTINS:
        raise ValueError(f"unknown registry {kind!r}; one of {', '.join(_BUILTINS)}")
    with _lock:
        _BUILTINS[kind][name] = obj
        _state.registries = None


def unregister_plugin(name: str) -> None:
    with _lock:
        pm.unregister(name=name)
        _state.infos.pop(name, None)
        _state.registries = None


def _plugin_order() -> list[tuple[str, object]]:
    """Built-in plugins first, then third-party entry points by name, then in-process plugins
    in registration order: a third-party plugin cannot silently take a built-in name."""
    registered = [(n, p) for n, p in pm.list_name_plugin() if p is not None]

    def rank(item: tuple[int, tuple[str, object]]) -> tuple[int, str, int]:
        index, (name, _) = item
        info = _state.infos.get(name)
        if info is None or info.source == "in-process":
            return (2, "", index)
        return (0 if info.distribution == "instructgen" else 1, name, index)

    return [item for _, item in sorted(enumerate(registered), key=rank)]


def _collect(hook_name: str, registry: Registry[Any]) -> None:
    for pname, plugin in _plugin_order():
        impl = getattr(plugin, hook_name, None)
        if impl is None or not hasattr(impl, "instructgen_impl"):
            continue
        info = _state.infos.setdefault(pname, PluginInfo(name=pname, source="in-process"))
        registry._set_plugin(pname)
        _trace(f"{hook_name} -> {pname}")
        try:
            impl(registry=registry)
        except Exception as exc:
            _fail(info, f"{hook_name} raised {type(exc).__name__}: {exc}", exc)
    registry._set_plugin("<unknown>")


def get_registries() -> dict[str, Registry[Any]]:
    """All registries, built once per plugin set: ``engines``, ``extractors``, ..."""
    load_plugins()
    with _lock:
        if _state.registries is None:
            regs: dict[str, Registry[Any]] = {}
            for key, (hook_name, factory) in _COLLECTORS.items():
                reg = factory()
                reg._set_plugin("instructgen")  # the core's own entries, before any plugin
                for name, obj in _BUILTINS[key].items():
                    reg._add(name, obj)
                _collect(hook_name, reg)
                regs[key] = reg
            _state.registries = regs
        return _state.registries


def engines() -> EngineRegistry:
    reg = get_registries()["engines"]
    assert isinstance(reg, EngineRegistry)
    return reg


def extractors() -> ExtractorRegistry:
    reg = get_registries()["extractors"]
    assert isinstance(reg, ExtractorRegistry)
    return reg


def filters() -> FilterRegistry:
    reg = get_registries()["filters"]
    assert isinstance(reg, FilterRegistry)
    return reg


def exporters() -> ExporterRegistry:
    reg = get_registries()["exporters"]
    assert isinstance(reg, ExporterRegistry)
    return reg


def executors() -> ExecutorRegistry:
    reg = get_registries()["executors"]
    assert isinstance(reg, ExecutorRegistry)
    return reg


def methods() -> MethodRegistry:
    reg = get_registries()["methods"]
    assert isinstance(reg, MethodRegistry)
    return reg


def plugin_infos() -> list[PluginInfo]:
    """Every known plugin with what it registered; registries are built so hook errors show."""
    get_registries()
    return list(_state.infos.values())


def in_process_plugins() -> list[tuple[str, object]]:
    """The plugins registered with ``register_plugin`` (name, object), in registration order."""
    return [
        (name, pm.get_plugin(name))
        for name, info in _state.infos.items()
        if info.source == "in-process" and pm.get_plugin(name) is not None
    ]


def reset() -> None:
    """Forget everything loaded (tests; a fresh ``load_plugins()`` re-reads the environment)."""
    with _lock:
        for name, plugin in list(pm.list_name_plugin()):
            if plugin is None:  # a block marker: drop it so a reset really starts over
                pm.unblock(name)
            else:
                pm.unregister(name=name)
        _state.loaded = False
        _state.infos.clear()
        _state.registries = None
