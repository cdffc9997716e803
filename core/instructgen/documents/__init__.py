"""Directory-to-dataset: discovery, extraction via the extractor registry, chunking,
question/answer generation, optional Self-Instruct on top."""

from __future__ import annotations

from instructgen.documents.chunking import chunk_text
from instructgen.documents.discovery import Found, discover
from instructgen.documents.extraction import ExtractResult, extract_many, extract_one
from instructgen.documents.pipeline import (
    Chunk,
    ScanResult,
    agenerate_from_dir,
    generate_chunk_pairs,
    scan,
)
from instructgen.documents.qa import parse_qa, qa_request

__all__ = [
    "Chunk",
    "ExtractResult",
    "Found",
    "ScanResult",
    "agenerate_from_dir",
    "chunk_text",
    "discover",
    "extract_many",
    "extract_one",
    "generate_chunk_pairs",
    "parse_qa",
    "qa_request",
    "scan",
]
