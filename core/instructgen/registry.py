"""Typed registries handed to the collector hooks (``register_engines(registry)``, ...).

A plugin calls ``registry.add(...)``; the plugin manager records which plugin registered each
entry, so ``instructgen plugins`` can show it and name clashes can be reported. The first
registration of a name wins (plugins are called in a deterministic order, see ``plugins.py``);
a later one is dropped with a warning naming both plugins.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from instructgen.engine_contract import Engine
from instructgen.errors import MissingDependencyError, UnknownNameError
from instructgen.executor import Executor
from instructgen.exporter import Exporter
from instructgen.extractor import Extractor
from instructgen.filter import Filter
from instructgen.method import Method

log = logging.getLogger("instructgen.plugins")

T = TypeVar("T")

__all__ = [
    "MISSING_REQUIREMENT",
    "EngineRegistry",
    "Entry",
    "ExecutorRegistry",
    "ExporterRegistry",
    "ExtractorRegistry",
    "FilterRegistry",
    "MethodRegistry",
    "Registry",
    "missing_requirement",
]

MISSING_REQUIREMENT = "needs pip install"
"""How every reason from ``missing_requirement`` starts."""


def _installed(module: str) -> bool:
    top = module.partition(".")[0]  # find_spec on a dotted name would import its parents
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def missing_requirement(obj: object) -> str | None:
    """Why a plugin class (engine, extractor, ...) cannot run here for want of a Python
    module: ``needs pip install 'instructgen[cohere]' (missing module: cohere)``; ``None`` when
    every module in its ``requires`` is installed. Looks for the modules without importing
    them, so it is cheap enough for listings and for every file of a run."""
    missing = [m for m in getattr(obj, "requires", ()) or () if not _installed(m)]
    if not missing:
        return None
    what = f"missing module{'s' if len(missing) > 1 else ''}: {', '.join(missing)}"
    install = getattr(obj, "install_with", "") or " ".join(missing)
    return f"{MISSING_REQUIREMENT} '{install}' ({what})"


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    plugin: str
    aliases: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """Name → object, with aliases, case-insensitive lookup and the registering plugin."""

    kind = "entry"

    def __init__(self) -> None:
        self._entries: dict[str, Entry[T]] = {}
        self._lookup: dict[str, str] = {}
        self._plugin = "<unknown>"
        self.conflicts: list[str] = []

    # The plugin manager sets the current plugin before calling each hook implementation.
    def _set_plugin(self, plugin: str) -> None:
        self._plugin = plugin

    def _add(self, name: str, obj: T, aliases: Sequence[str] = (), **meta: Any) -> Entry[T]:
        if not name or not isinstance(name, str):
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")
        entry = Entry(name, obj, self._plugin, tuple(aliases), dict(meta))
        for key in (name, *aliases):
            owner = self._lookup.get(key.lower())
            if owner is not None:
                first = self._entries[owner].plugin
                msg = (
                    f"{self.kind} {key!r} from plugin {self._plugin!r} ignored: "
                    f"already registered by plugin {first!r}"
                )
                self.conflicts.append(msg)
                log.warning(msg)
                if key == name:
                    return self._entries[owner]
                continue
            self._lookup[key.lower()] = name
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        """The object registered as ``name``; ``MissingDependencyError`` (exit 2) when it needs
        a module that is not installed, with the pip command that brings it."""
        entry = self.entry(name)
        why = missing_requirement(entry.obj)
        if why:
            raise MissingDependencyError(self.kind, entry.name, why)
        return entry.obj

    def unavailable(self) -> dict[str, str]:
        """Registered names that cannot be used here, each with the fix."""
        found = {e.name: missing_requirement(e.obj) for e in self}
        return {name: why for name, why in found.items() if why}

    def entry(self, name: str) -> Entry[T]:
        key = self._lookup.get(name.lower())
        if key is None:
            raise UnknownNameError(self.kind, name, self.names(), {e.name: e.aliases for e in self})
        return self._entries[key]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lookup

    def names(self) -> list[str]:
        return list(self._entries)

    def entries(self) -> list[Entry[T]]:
        return list(self._entries.values())

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self.entries())

    def __len__(self) -> int:
        return len(self._entries)

    def by_plugin(self, plugin: str) -> list[str]:
        return [e.name for e in self._entries.values() if e.plugin == plugin]


class EngineRegistry(Registry[type[Engine]]):
    """Engine classes. ``add(SomeEngine, aliases=("x",), seed_name="ChatGPT")``."""

    kind = "engine"

    def add(
        self,
        engine_cls: type[Engine],
        *,
        name: str | None = None,
        aliases: Sequence[str] = (),
        seed_name: str | None = None,
    ) -> None:
        self._add(name or engine_cls.name, engine_cls, aliases, seed_name=seed_name)

    def seed_names(self) -> dict[str, str]:
        """Seed class names (``ChatGPT``...) → engine names."""
        return {e.meta["seed_name"]: e.name for e in self if e.meta.get("seed_name")}


class ExtractorRegistry(Registry[type[Extractor]]):
    """Extractor classes, indexed by the extensions and MIME types they read."""

    kind = "extractor"

    def add(
        self,
        extractor_cls: type[Extractor],
        *,
        name: str | None = None,
        extensions: Sequence[str] | None = None,
        mime_types: Sequence[str] | None = None,
        priority: int | None = None,
    ) -> None:
        exts = extensions if extensions is not None else getattr(extractor_cls, "extensions", ())
        mimes = mime_types if mime_types is not None else getattr(extractor_cls, "mime_types", ())
        prio = priority if priority is not None else getattr(extractor_cls, "priority", 0)
        self._add(
            name or extractor_cls.name,
            extractor_cls,
            extensions=tuple(e.lower().lstrip(".") for e in exts),
            mime_types=tuple(mimes),
            priority=prio,
        )

    def unavailable(self) -> dict[str, str]:
        """Missing modules first, then each extractor's own ``unavailable_reason()`` (a
        program such as tesseract not installed, no transcriber configured)."""
        found = super().unavailable()
        for e in self:
            if e.name in found:
                continue
            try:
                why = e.obj().unavailable_reason()
            except Exception as exc:  # a broken plugin must not break the listing
                why = f"unavailable_reason() raised {type(exc).__name__}: {exc}"
            if why:
                found[e.name] = why
        return found

    def for_extension(self, ext: str) -> list[Entry[type[Extractor]]]:
        """Extractors reading ``ext``, highest priority first, then by name."""
        ext = ext.lower().lstrip(".")
        found = [e for e in self if ext in e.meta["extensions"]]
        return sorted(found, key=lambda e: (-e.meta["priority"], e.name))

    def for_mime(self, mime: str) -> list[Entry[type[Extractor]]]:
        """Extractors reading the MIME type ``mime``, highest priority first, then by name:
        how files with an extension no extractor names are routed (``documents/routing.py``)."""
        found = [e for e in self if mime in e.meta["mime_types"]]
        return sorted(found, key=lambda e: (-e.meta["priority"], e.name))


class FilterRegistry(Registry[type[Filter]]):
    """Filter classes: for generated instructions (``stage="instruction"``) and row judges
    (``stage="row"``, ``RowJudge``: run on finished rows); a filter declaring another stage is
    left out, with a warning."""

    kind = "filter"

    def add(
        self,
        filter_cls: type[Filter],
        *,
        name: str | None = None,
        aliases: Sequence[str] = (),
        default: bool = True,
    ) -> None:
        stage = getattr(filter_cls, "stage", "instruction")
        if stage not in ("instruction", "row"):
            log.warning(
                "filter %r from plugin %r ignored: stage %r is not run by any pipeline "
                "(filters judge generated instructions)",
                name or filter_cls.name,
                self._plugin,
                stage,
            )
            return
        self._add(name or filter_cls.name, filter_cls, aliases, default=default, stage=stage)


class ExporterRegistry(Registry[type[Exporter]]):
    """Dataset output formats."""

    kind = "exporter"

    def add(
        self, exporter_cls: type[Exporter], *, name: str | None = None, aliases: Sequence[str] = ()
    ) -> None:
        self._add(name or exporter_cls.name, exporter_cls, aliases)


class ExecutorRegistry(Registry[type[Executor]]):
    """Executors for directory runs; ``local`` is built in."""

    kind = "executor"

    def add(
        self,
        executor_cls: type[Executor],
        *,
        name: str | None = None,
        aliases: Sequence[str] = (),
    ) -> None:
        self._add(name or executor_cls.name, executor_cls, aliases)


class MethodRegistry(Registry[type[Method]]):
    """Generation methods (``instructgen methods`` lists them). ``add(AlpacaMethod)``;
    the name is the class's ``name`` unless given."""

    kind = "method"

    def add(
        self,
        method_cls: type[Method],
        *,
        name: str | None = None,
        aliases: Sequence[str] = (),
    ) -> None:
        if not (isinstance(method_cls, type) and issubclass(method_cls, Method)):
            raise TypeError(f"register_methods: {method_cls!r} is not a subclass of Method")
        self._add(name or method_cls.name, method_cls, aliases)
