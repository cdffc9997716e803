"""Every hook a plugin can implement.

Collector hooks receive a typed registry and call ``registry.add(...)``; they must not import an
SDK or any heavy library (do that inside the registered class's methods), so that loading
plugins stays cheap and ``instructgen --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from instructgen.registry import (
        EngineRegistry,
        ExecutorRegistry,
        ExporterRegistry,
        ExtractorRegistry,
        FilterRegistry,
        MethodRegistry,
    )

hookspec = pluggy.HookspecMarker("instructgen")
hookimpl = pluggy.HookimplMarker("instructgen")


# -- generation -------------------------------------------------------------------------------


@hookspec
def register_engines(registry: EngineRegistry) -> None:
    """Register engine classes (subclasses of ``instructgen.Engine``) with names and aliases."""


@hookspec
def register_methods(registry: MethodRegistry) -> None:
    """Register generation methods (subclasses of ``instructgen.Method``): what turns a tasks
    file, a folder of documents, a saved dataset or a JSONL of instructions into rows by
    sending requests through the core's dispatcher."""


@hookspec
def register_filters(registry: FilterRegistry) -> None:
    """Register instruction and instance filters (subclasses of ``instructgen.Filter``)."""


# -- documents --------------------------------------------------------------------------------


@hookspec
def register_extractors(registry: ExtractorRegistry) -> None:
    """Register extractors (subclasses of ``instructgen.Extractor``) with the extensions and
    MIME types they read."""


# -- output -----------------------------------------------------------------------------------


@hookspec
def register_exporters(registry: ExporterRegistry) -> None:
    """Register dataset output formats (subclasses of ``instructgen.Exporter``)."""


# -- execution --------------------------------------------------------------------------------


@hookspec
def register_executors(registry: ExecutorRegistry) -> None:
    """Register executors (subclasses of ``instructgen.Executor``) that run a
    directory run's extraction and generation somewhere else, e.g. on a cluster."""
