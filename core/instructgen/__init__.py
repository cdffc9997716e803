"""instructgen: instruction-tuning datasets from seed tasks or documents, Self-Instruct style.

Names are resolved lazily so that ``import instructgen`` imports no SDK, no ``datasets`` and no
``unstructured``.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# A library logs; the application decides where it goes (no "No handlers" fallback to stderr).
logging.getLogger(__name__).addHandler(logging.NullHandler())

_LAZY: dict[str, str] = {
    # contracts
    "Engine": "instructgen.engines",
    "Request": "instructgen.engines",
    "Completion": "instructgen.engines",
    "Message": "instructgen.engines",
    "Usage": "instructgen.engines",
    "Price": "instructgen.engines",
    "Extractor": "instructgen.extractor",
    "Extracted": "instructgen.extractor",
    "report_progress": "instructgen.extractor",
    "extract_file": "instructgen.extractor",
    "Filter": "instructgen.filter",
    "Exporter": "instructgen.exporter",
    "hookimpl": "instructgen.hookspecs",
    # plugin manager
    "register_plugin": "instructgen.plugins",
    "unregister_plugin": "instructgen.plugins",
    "load_plugins": "instructgen.plugins",
    # tasks
    "SeedTask": "instructgen.tasks",
    "load_tasks": "instructgen.tasks",
    # datasets
    "InstructionDataset": "instructgen.dataset",
    # errors
    "InstructgenError": "instructgen.errors",
    "UsageError": "instructgen.errors",
    "ConfigError": "instructgen.errors",
    "TaskFileError": "instructgen.errors",
    "EngineError": "instructgen.errors",
    "RateLimitError": "instructgen.errors",
    "TransientEngineError": "instructgen.errors",
    "AuthenticationError": "instructgen.errors",
    "BadRequestError": "instructgen.errors",
    "MalformedResponseError": "instructgen.errors",
    "MissingDependencyError": "instructgen.errors",
    "MissingKeyError": "instructgen.errors",
    "ExtractionError": "instructgen.errors",
    "PluginError": "instructgen.errors",
    "BudgetExceededError": "instructgen.errors",
    "DatasetError": "instructgen.errors",
    "UnknownNameError": "instructgen.errors",
}

__all__ = [*sorted(_LAZY), "__version__", "engine"]

if TYPE_CHECKING:
    from instructgen.engines import Engine


def engine(spec: str, **kwargs: Any) -> Engine:
    """Resolve any registered engine: ``instructgen.engine("openai:gpt-4o-mini", base_url=...)``."""
    from instructgen.engines import create_engine

    return create_engine(spec, **kwargs)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'instructgen' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
