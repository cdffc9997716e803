"""Make ``unstructured`` work without network.

Its sentence tokenizer loads the spaCy model ``en_core_web_sm`` and downloads it at first use,
which fails offline. A blank English pipeline with a rule-based ``sentencizer`` gives the same
sentence splitting without any download; only part-of-speech hints (used to label elements as
narrative text or titles) are lost, and the text itself is unchanged.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

_patched = False


def ensure_offline() -> None:
    """Patch ``unstructured.nlp.tokenize`` once per process (idempotent)."""
    global _patched
    if _patched:
        return
    import os

    os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
    import spacy
    from unstructured.nlp import tokenize

    @lru_cache(maxsize=1)
    def blank_english() -> Any:
        try:
            return spacy.load("en_core_web_sm", exclude=["ner", "lemmatizer"])
        except OSError:  # not installed: no download, use the rule-based pipeline
            nlp = spacy.blank("en")
            nlp.add_pipe("sentencizer")
            return nlp

    tokenize._get_nlp = blank_english
    if hasattr(tokenize, "_process_cached"):
        tokenize._process_cached.cache_clear()
    _patched = True
