"""Engines by name: ``create_engine("openai:gpt-4o-mini")``, the seed's class names
(``from instructgen.engines import ChatGPT``) and ``EngineSpec``, an engine rebuilt in another
process.

The contract itself (``Request``, ``Completion``, ``Engine``, ...) lives in
``engine_contract.py`` and is re-exported here, so ``from instructgen.engines import Engine``
keeps working. This module sits on the plugin manager's floor: it looks names up in the engine
registry the plugins fill.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import instructgen.plugins as plugins
from instructgen.engine_contract import (
    Completion,
    Engine,
    EngineKind,
    Message,
    Price,
    Request,
    Usage,
)

__all__ = [
    "Completion",
    "Engine",
    "EngineKind",
    "EngineSpec",
    "Message",
    "Price",
    "Request",
    "Usage",
    "create_engine",
    "engine_class",
]


def engine_class(name: str) -> type[Engine]:
    """The engine class registered as ``name`` (or an alias), from the loaded plugins."""
    return plugins.engines().get(name)


def create_engine(spec: str | Engine, **options: Any) -> Engine:
    """Build an engine from ``"name"`` or ``"name:model"`` (e.g. ``"openai:gpt-4o-mini"``);
    ``options`` go to the engine's constructor (``api_key``, ``base_url``, ``timeout``, ...).

    An ``Engine`` instance is returned as is.
    """
    if isinstance(spec, Engine):
        return spec
    name, _, model = spec.partition(":")
    if model and "model" not in options:
        options["model"] = model
    return engine_class(name)(**options)


@dataclass(frozen=True)
class EngineSpec:
    """How to rebuild an engine in another process. Holds no key: workers read it from the
    environment variable named by ``key_env_var`` (executors forward it without logging it)."""

    name: str
    model: str
    base_url: str | None = None
    timeout: float = 60.0
    options: dict[str, Any] = field(default_factory=dict)
    key_env_var: str | None = None

    @classmethod
    def of(cls, engine: Engine) -> EngineSpec:
        return cls(
            engine.name,
            engine.model,
            engine.base_url,
            engine.timeout,
            dict(engine.options),
            engine.key_env_vars[0] if engine.key_env_vars else None,
        )

    def build(self) -> Engine:
        kwargs: dict[str, Any] = {"model": self.model, "timeout": self.timeout, **self.options}
        if self.base_url:
            kwargs["base_url"] = self.base_url
        key = os.environ.get(self.key_env_var) if self.key_env_var else None
        if key:
            kwargs["api_key"] = key
        return create_engine(self.name, **kwargs)


def __getattr__(attr: str) -> type[Engine]:
    # The seed's class names (ChatGPT, Davinci, Medium, J2Grande, ...) resolve lazily through
    # the engine registry, so importing this module imports no SDK.
    if attr[:1].isupper():
        seeds = plugins.engines().seed_names()
        if attr in seeds:
            return engine_class(seeds[attr])
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
