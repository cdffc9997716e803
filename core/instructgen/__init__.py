"""instructgen: instruction-tuning datasets from seed tasks or documents, Self-Instruct style.

This module is the public API, for users and for plugins alike: plugins (built-in, contrib and
third-party) import from here only, never from the modules behind it. Names are resolved lazily
so that ``import instructgen`` imports no SDK, no ``datasets`` and no ``unstructured``.
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
    "Engine": "instructgen.engine_contract",
    "Request": "instructgen.engine_contract",
    "Completion": "instructgen.engine_contract",
    "ListCompletion": "instructgen.engine_contract",
    "Message": "instructgen.engine_contract",
    "Usage": "instructgen.engine_contract",
    "Price": "instructgen.engine_contract",
    "BatchEngine": "instructgen.batch_contract",
    "BatchStatus": "instructgen.batch_contract",
    "BATCH_TOKEN_FIELD": "instructgen.batch_contract",
    "Extractor": "instructgen.extractor",
    "Extracted": "instructgen.extractor",
    "report_progress": "instructgen.extractor",
    "Filter": "instructgen.filter",
    "RowJudge": "instructgen.filter",
    "Exporter": "instructgen.exporter",
    "Executor": "instructgen.executor",
    "atomic_path": "instructgen.atomic",
    "write_atomic": "instructgen.atomic",
    # generation methods (for method plugins)
    "Method": "instructgen.method",
    "MethodContext": "instructgen.method",
    "MethodInput": "instructgen.method",
    "MethodOptions": "instructgen.method",
    "MethodResult": "instructgen.method",
    "OptionSpec": "instructgen.method",
    "RequestEstimate": "instructgen.method",
    "RunSize": "instructgen.method",
    "WindowStats": "instructgen.method",
    "parse_options": "instructgen.method",
    "ReadJob": "instructgen.executor",
    "ProgressEvent": "instructgen.progress",
    "ProgressCallback": "instructgen.progress",
    # engine failures → typed errors (for engine plugins)
    "from_status": "instructgen.engine_errors",
    "from_exception": "instructgen.engine_errors",
    "redact": "instructgen.engine_errors",
    # the reply-size limit (for engine plugins: their HTTP client enforces it)
    "DEFAULT_MAX_REPLY_BYTES": "instructgen.reply_size",
    "capped_lines": "instructgen.reply_size",
    "custom_id_in": "instructgen.reply_size",
    "limit_reply_size": "instructgen.reply_size",
    "max_reply_bytes": "instructgen.reply_size",
    "reply_size_limit": "instructgen.reply_size",
    # base URLs with or without the provider's version path
    "api_base_url": "instructgen.endpoints",
    # token counts (Engine.token_counter)
    "tiktoken_counter": "instructgen.tokenizers",
    # hooks and registries
    "hookimpl": "instructgen.hookspecs",
    "EngineRegistry": "instructgen.registry",
    "ExtractorRegistry": "instructgen.registry",
    "FilterRegistry": "instructgen.registry",
    "ExporterRegistry": "instructgen.registry",
    "ExecutorRegistry": "instructgen.registry",
    "MethodRegistry": "instructgen.registry",
    # plugin manager
    "register_plugin": "instructgen.plugins",
    "unregister_plugin": "instructgen.plugins",
    "load_plugins": "instructgen.plugins",
    "create_engine": "instructgen.engines",
    "EngineSpec": "instructgen.engines",
    # documents (for extractor and executor plugins)
    "Found": "instructgen.documents.discovery",
    "Chunk": "instructgen.documents.types",
    "ExtractOptions": "instructgen.documents.types",
    "DirRunOptions": "instructgen.documents.stream",
    "ExtractResult": "instructgen.documents.types",
    "timeout_reason": "instructgen.documents.types",
    "crash_reason": "instructgen.documents.types",
    "extract_file": "instructgen.documents.routing",
    "extract_one": "instructgen.documents.routing",
    # helpers extractors share: text decoding, content sniffing (instructgen.content)
    "BOMS": "instructgen.content",
    "MIME_TYPES": "instructgen.content",
    "OLE_MAGIC": "instructgen.content",
    "check_container": "instructgen.content",
    "decode_bytes": "instructgen.content",
    "failure_reason": "instructgen.content",
    "head_text": "instructgen.content",
    "looks_like_email": "instructgen.content",
    "looks_like_html": "instructgen.content",
    "looks_like_office": "instructgen.content",
    "resolve_kind": "instructgen.content",
    "sniff_kind": "instructgen.content",
    "unicode_encoding": "instructgen.content",
    # running
    "DispatchConfig": "instructgen.dispatch",
    "BatchConfig": "instructgen.batching",
    "SelfInstructOptions": "instructgen.selfinstruct.options",
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
    "ReplyTooLargeError": "instructgen.errors",
    "TransientEngineError": "instructgen.errors",
    "AuthenticationError": "instructgen.errors",
    "BadRequestError": "instructgen.errors",
    "MalformedResponseError": "instructgen.errors",
    "MissingDependencyError": "instructgen.errors",
    "MissingKeyError": "instructgen.errors",
    "ExtractionError": "instructgen.errors",
    "PluginError": "instructgen.errors",
    "BudgetExceededError": "instructgen.errors",
    "ConnectionFailedError": "instructgen.errors",
    "ServerUnreachableError": "instructgen.errors",
    "DatasetError": "instructgen.errors",
    "UnknownNameError": "instructgen.errors",
}

__all__ = [
    "BATCH_TOKEN_FIELD",
    "BOMS",
    "DEFAULT_MAX_REPLY_BYTES",
    "MIME_TYPES",
    "OLE_MAGIC",
    "AuthenticationError",
    "BadRequestError",
    "BatchConfig",
    "BatchEngine",
    "BatchStatus",
    "BudgetExceededError",
    "Chunk",
    "Completion",
    "ConfigError",
    "DatasetError",
    "DirRunOptions",
    "DispatchConfig",
    "Engine",
    "EngineError",
    "EngineRegistry",
    "EngineSpec",
    "Executor",
    "ExecutorRegistry",
    "Exporter",
    "ExporterRegistry",
    "ExtractOptions",
    "ExtractResult",
    "Extracted",
    "ExtractionError",
    "Extractor",
    "ExtractorRegistry",
    "Filter",
    "FilterRegistry",
    "Found",
    "InstructgenError",
    "InstructionDataset",
    "ListCompletion",
    "MalformedResponseError",
    "Message",
    "Method",
    "MethodContext",
    "MethodInput",
    "MethodOptions",
    "MethodRegistry",
    "MethodResult",
    "MissingKeyError",
    "OptionSpec",
    "PluginError",
    "Price",
    "ProgressCallback",
    "ProgressEvent",
    "RateLimitError",
    "ReadJob",
    "ReplyTooLargeError",
    "Request",
    "RequestEstimate",
    "RowJudge",
    "RunSize",
    "SeedTask",
    "SelfInstructOptions",
    "TaskFileError",
    "TransientEngineError",
    "UnknownNameError",
    "Usage",
    "UsageError",
    "WindowStats",
    "__version__",
    "api_base_url",
    "atomic_path",
    "capped_lines",
    "check_container",
    "crash_reason",
    "create_engine",
    "custom_id_in",
    "decode_bytes",
    "engine",
    "extract_file",
    "extract_one",
    "failure_reason",
    "from_exception",
    "from_status",
    "head_text",
    "hookimpl",
    "limit_reply_size",
    "load_plugins",
    "load_tasks",
    "looks_like_email",
    "looks_like_html",
    "looks_like_office",
    "max_reply_bytes",
    "parse_options",
    "redact",
    "register_plugin",
    "reply_size_limit",
    "report_progress",
    "resolve_kind",
    "sniff_kind",
    "tiktoken_counter",
    "timeout_reason",
    "unicode_encoding",
    "unregister_plugin",
    "write_atomic",
]

if TYPE_CHECKING:
    from instructgen.atomic import atomic_path, write_atomic
    from instructgen.batch_contract import BATCH_TOKEN_FIELD, BatchEngine, BatchStatus
    from instructgen.batching import BatchConfig
    from instructgen.content import (
        BOMS,
        MIME_TYPES,
        OLE_MAGIC,
        check_container,
        decode_bytes,
        failure_reason,
        head_text,
        looks_like_email,
        looks_like_html,
        looks_like_office,
        resolve_kind,
        sniff_kind,
        unicode_encoding,
    )
    from instructgen.dataset import InstructionDataset
    from instructgen.dispatch import DispatchConfig
    from instructgen.documents.discovery import Found
    from instructgen.documents.routing import extract_file, extract_one
    from instructgen.documents.types import (
        Chunk,
        ExtractOptions,
        ExtractResult,
        crash_reason,
        timeout_reason,
    )
    from instructgen.endpoints import api_base_url
    from instructgen.engine_contract import (
        Completion,
        Engine,
        ListCompletion,
        Message,
        Price,
        Request,
        Usage,
    )
    from instructgen.engine_errors import from_exception, from_status, redact
    from instructgen.engines import EngineSpec, create_engine
    from instructgen.errors import (
        AuthenticationError,
        BadRequestError,
        BudgetExceededError,
        ConfigError,
        DatasetError,
        EngineError,
        ExtractionError,
        InstructgenError,
        MalformedResponseError,
        MissingKeyError,
        PluginError,
        RateLimitError,
        ReplyTooLargeError,
        TaskFileError,
        TransientEngineError,
        UnknownNameError,
        UsageError,
    )
    from instructgen.executor import Executor, ReadJob
    from instructgen.exporter import Exporter
    from instructgen.extractor import Extracted, Extractor, report_progress
    from instructgen.filter import Filter, RowJudge
    from instructgen.hookspecs import hookimpl
    from instructgen.method import (
        Method,
        MethodContext,
        MethodInput,
        MethodOptions,
        MethodResult,
        OptionSpec,
        RequestEstimate,
        RunSize,
        WindowStats,
        parse_options,
    )
    from instructgen.plugins import load_plugins, register_plugin, unregister_plugin
    from instructgen.progress import ProgressCallback, ProgressEvent
    from instructgen.registry import (
        EngineRegistry,
        ExecutorRegistry,
        ExporterRegistry,
        ExtractorRegistry,
        FilterRegistry,
        MethodRegistry,
    )
    from instructgen.reply_size import (
        DEFAULT_MAX_REPLY_BYTES,
        capped_lines,
        custom_id_in,
        limit_reply_size,
        max_reply_bytes,
        reply_size_limit,
    )
    from instructgen.selfinstruct.options import SelfInstructOptions
    from instructgen.tasks import SeedTask, load_tasks
    from instructgen.tokenizers import tiktoken_counter


def engine(spec: str, **options: Any) -> Engine:
    """Resolve any registered engine: ``instructgen.engine("openai:gpt-4o-mini", base_url=...)``;
    ``options`` go to the engine's constructor."""
    from instructgen.engines import create_engine

    return create_engine(spec, **options)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'instructgen' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
