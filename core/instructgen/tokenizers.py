"""OpenAI's tokenizers (tiktoken), only where their vocabulary files are already on disk: what
``Engine.token_counter`` returns for OpenAI models (the OpenAI engines, LiteLLM's OpenAI
routes, any engine serving OpenAI models).

tiktoken downloads a vocabulary on first use; a dry run must not reach the network, so the
files are looked for where tiktoken caches them (``TIKTOKEN_CACHE_DIR``, ``DATA_GYM_CACHE_DIR``
or ``$TMPDIR/data-gym-cache``) and where packages ship them (LiteLLM carries cl100k_base,
p50k_base and o200k_base). A file is used only if its SHA-256 is the one tiktoken expects.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path

__all__ = ["tiktoken_counter", "vocabulary_file"]

log = logging.getLogger("instructgen.tokenizers")

_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
# The vocabularies' SHA-256, as tiktoken_ext.openai_public checks them.
_SHA256 = {
    "r50k_base": "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
    "p50k_base": "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}
_ENV_LOCK = threading.Lock()


def _cache_dirs() -> list[Path]:
    dirs: list[Path] = []
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if os.environ.get(var):
            dirs.append(Path(os.environ[var]))
    dirs.append(Path(tempfile.gettempdir()) / "data-gym-cache")
    spec = importlib.util.find_spec("litellm")  # found, not imported (it takes seconds)
    for where in (spec.submodule_search_locations or []) if spec else []:
        dirs.append(Path(where) / "litellm_core_utils" / "tokenizers")
    return dirs


def vocabulary_file(encoding: str) -> Path | None:
    """The verified vocabulary file of ``encoding`` on this machine, or ``None``."""
    want = _SHA256.get(encoding)
    if want is None:
        return None
    name = hashlib.sha1(
        _URL.format(encoding).encode()
    ).hexdigest()  # tiktoken names its cache files so
    for folder in _cache_dirs():
        path = folder / name
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if hashlib.sha256(data).hexdigest() == want:
            return path
        log.debug("%s: not the %s vocabulary (checksum differs); not used", path, encoding)
    return None


@cache
def tiktoken_counter(model: str) -> Callable[[str], int] | None:
    """A function counting the tokens of a text as OpenAI bills ``model`` (tiktoken's encoding
    for it), or ``None``: tiktoken not installed, a model tiktoken does not know (any
    non-OpenAI model), or its vocabulary not on disk. Loads once per model."""
    if importlib.util.find_spec("tiktoken") is None:
        return None
    import tiktoken

    try:
        encoding = tiktoken.encoding_name_for_model(model)
    except KeyError:
        return None
    path = vocabulary_file(
        {"o200k_harmony": "o200k_base", "p50k_edit": "p50k_base"}.get(encoding, encoding)
    )
    if path is None:
        return None
    # tiktoken reads its vocabulary from TIKTOKEN_CACHE_DIR when the file is there: point it at
    # the folder found, for this one load, then restore what the process had.
    with _ENV_LOCK:
        before = os.environ.get("TIKTOKEN_CACHE_DIR")
        os.environ["TIKTOKEN_CACHE_DIR"] = str(path.parent)
        try:
            enc = tiktoken.get_encoding(encoding)
        except Exception as exc:  # a broken install: estimate instead
            log.debug("tiktoken could not load %s: %s", encoding, exc)
            return None
        finally:
            if before is None:
                del os.environ["TIKTOKEN_CACHE_DIR"]
            else:
                os.environ["TIKTOKEN_CACHE_DIR"] = before

    def count(text: str) -> int:
        return len(enc.encode(text, disallowed_special=()))

    return count
