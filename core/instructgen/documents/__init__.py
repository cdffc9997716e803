"""Directory-to-dataset: discovery, extraction via the extractor registry, chunking,
question/answer generation.

Names are resolved lazily: importing one module of this package (the extraction workers, the
discovery) does not import the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY: dict[str, str] = {
    "Chunk": "instructgen.documents.types",
    "chunk_text": "instructgen.documents.chunking",
    "Found": "instructgen.documents.discovery",
    "discover": "instructgen.documents.discovery",
    "ExtractOptions": "instructgen.documents.types",
    "ExtractResult": "instructgen.documents.types",
    "extract_one": "instructgen.documents.routing",
    "parse_qa": "instructgen.documents.qa",
    "qa_for_chunk": "instructgen.documents.qa",
    "stream_extract": "instructgen.documents.stream",
    "qa_request": "instructgen.documents.qa",
}

__all__ = [
    "Chunk",
    "ExtractOptions",
    "ExtractResult",
    "Found",
    "chunk_text",
    "discover",
    "extract_one",
    "parse_qa",
    "qa_for_chunk",
    "qa_request",
    "stream_extract",
]

if TYPE_CHECKING:
    from instructgen.documents.chunking import chunk_text
    from instructgen.documents.discovery import Found, discover
    from instructgen.documents.qa import parse_qa, qa_for_chunk, qa_request
    from instructgen.documents.routing import extract_one
    from instructgen.documents.stream import stream_extract
    from instructgen.documents.types import Chunk, ExtractOptions, ExtractResult


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'instructgen.documents' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
