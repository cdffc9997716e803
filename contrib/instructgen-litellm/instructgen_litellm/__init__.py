"""The ``litellm`` engine: every provider LiteLLM reaches, through instructgen's dispatcher.

``--engine litellm --model anthropic/claude-haiku-4-5`` (or ``openai/gpt-4o-mini``,
``ollama/llama3``, ``gemini/...``, ``bedrock/...``, ``mistral/...``): the model name's prefix picks
the provider, as in LiteLLM. Keys come from the provider's usual variable (``ANTHROPIC_API_KEY``,
``OPENAI_API_KEY``, ...), read by LiteLLM, or from ``api_key=``; ``--base-url`` becomes LiteLLM's
``api_base`` (a local server then needs no key).

LiteLLM's own retries are off (``num_retries=0``, ``max_retries=0``): the dispatcher retries,
paces and caches, as for every engine. LiteLLM's exceptions become instructgen's typed errors,
with ``Retry-After`` from the response headers. Prices come from LiteLLM's cost map
(``litellm.model_cost``), the local copy shipped with LiteLLM unless
``LITELLM_LOCAL_MODEL_COST_MAP=False`` asks it to fetch the current one at import.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from typing import Any, ClassVar

from instructgen import (
    Completion,
    ConfigError,
    Engine,
    Price,
    ReplyTooLargeError,
    Request,
    Usage,
    from_exception,
    from_status,
    hookimpl,
    limit_reply_size,
    redact,
    tiktoken_counter,
)

__all__ = ["LiteLLMEngine", "LiteLLMPrices"]

# The Request fields LiteLLM takes as OpenAI parameters; those a provider does not support
# (seed or presence_penalty on Anthropic) are dropped by LiteLLM (``drop_params``).
_SAMPLE_PARAMS = ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty")


@cache
def _litellm() -> Any:
    """LiteLLM, imported on first use (about a second): quiet, offline cost map, no retries."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True  # else it prints "Give Feedback / Get Help" on errors
    return litellm


class LiteLLMPrices(Mapping[str, Price]):
    """LiteLLM's cost map as instructgen prices (US dollars per million tokens), loaded on first
    use. Each model is listed under its own name and under ``provider/name``, the form
    ``--model`` takes."""

    def __init__(self) -> None:
        self._table: dict[str, Price] | None = None

    def _load(self) -> dict[str, Price]:
        if self._table is None:
            table: dict[str, Price] = {}
            for name, info in _litellm().model_cost.items():
                if not isinstance(info, dict):
                    continue
                price_in = info.get("input_cost_per_token")
                price_out = info.get("output_cost_per_token")
                if price_in is None or price_out is None:
                    continue
                price = Price(float(price_in) * 1e6, float(price_out) * 1e6)
                table.setdefault(name, price)
                provider = info.get("litellm_provider")
                if provider and not name.startswith(f"{provider}/"):
                    table.setdefault(f"{provider}/{name}", price)
            self._table = table
        return self._table

    def __getitem__(self, model: str) -> Price:
        return self._load()[model]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    def __contains__(self, model: object) -> bool:
        return model in self._load()


class LiteLLMEngine(Engine):
    """Chat completions through ``litellm.acompletion``; a completion prompt is sent as one
    user message."""

    name = "litellm"
    kind = "chat"
    default_model = "openai/gpt-4o-mini"
    needs_key = False  # LiteLLM reads each provider's own key variable
    prices: ClassVar[Mapping[str, Price]] = LiteLLMPrices()
    requires = ("litellm",)
    install_with = "instructgen-litellm"
    # -o KEY VALUE / engine(..., KEY=value): passed to litellm.acompletion as given;
    # litellm_params holds any other of its arguments (a JSON object on the command line).
    option_types: ClassVar[Mapping[str, type]] = {
        "reasoning_effort": str,
        "user": str,
        "api_version": str,
        "custom_llm_provider": str,
        "litellm_params": dict,
    }

    def __init__(
        self,
        api_key: str | None = None,
        *,
        model: str | None = None,
        base_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(api_key, model=model, base_url=base_url, **kwargs)
        self._provider: str | None = None
        self._supports_n: bool | None = None
        self._http: Any = None  # the client LiteLLM is given, capping replies (see _client)
        self._route()  # a model LiteLLM cannot route is a usage error now, not failed requests

    @classmethod
    def token_counter(cls, model: str | None = None) -> Callable[[str], int] | None:
        """OpenAI's tokenizer for OpenAI models (``openai/gpt-4o-mini``, ``gpt-4o``), where its
        vocabulary is on disk (LiteLLM ships it); ``None`` for other providers' models."""
        name = model or cls.default_model
        provider, _, rest = name.partition("/")
        if rest:
            if provider not in ("openai", "text-completion-openai"):
                return None
            name = rest
        return tiktoken_counter(name)

    def identity(self) -> dict[str, Any]:
        """Model, options and server identify the outputs (the same model name on another
        server is another model); the key never does. ``api_base`` names the server, so the
        core's normalised ``endpoint`` is left out and earlier caches keep their keys."""
        ident = super().identity()
        ident.pop("endpoint", None)
        return {**ident, "api_base": self.base_url}

    def _route(self) -> tuple[str, bool]:
        """The provider LiteLLM picks for ``self.model`` and whether it takes ``n``."""
        if self._provider is None:
            litellm = _litellm()
            try:
                model, provider, _, _ = litellm.get_llm_provider(self.model)
            except Exception as exc:
                raise ConfigError(
                    f"engine 'litellm': LiteLLM cannot route model {self.model!r} (no known "
                    "provider); name it provider/model, e.g. openai/gpt-4o-mini, "
                    "anthropic/claude-haiku-4-5, ollama/llama3.1"
                ) from exc
            self._provider = str(provider)
            try:
                params = litellm.get_supported_openai_params(
                    model=model, custom_llm_provider=provider
                )
            except Exception:
                params = None
            self._supports_n = bool(params) and "n" in params
        return self._provider, bool(self._supports_n)

    def _params(self, request: Request, n: int) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.model,
            "messages": request.as_messages(),
            "max_tokens": request.max_tokens,
            "timeout": self.timeout,
            "num_retries": 0,  # LiteLLM's retry wrapper
            "max_retries": 0,  # the provider SDK's own retries
            "drop_params": True,  # parameters this provider lacks are dropped, not an error
        }
        for field in _SAMPLE_PARAMS:
            value = getattr(request, field)
            if value is not None and not (field.endswith("_penalty") and not value):
                params[field] = value
        if request.stop:
            params["stop"] = list(request.stop)
        if n > 1:
            params["n"] = n
        if self.base_url:
            params["api_base"] = self.base_url
        key = self.api_key or (self._placeholder_key() if self.base_url else None)
        if key:
            params["api_key"] = key
        params.update({k: v for k, v in self.options.items() if k != "litellm_params"})
        params.update(self.options.get("litellm_params") or {})
        params.update(request.extra)
        # LiteLLM writes into dicts it is given (metadata gains its hidden params): copies,
        # so the options and the request, which are the cache key, stay as they were.
        return copy.deepcopy(params)

    def _placeholder_key(self) -> str | None:
        """A local OpenAI-compatible server needs no key, but the OpenAI SDK under LiteLLM
        refuses to start without one: give it a placeholder unless the environment has one."""
        provider, _ = self._route()
        if provider in ("openai", "text-completion-openai") and not os.environ.get(
            "OPENAI_API_KEY"
        ):
            return "no-key"
        return None

    def _client(self) -> Any:
        """An HTTP client that stops reading a reply at the reply-size limit, for the routes
        whose client LiteLLM takes from the caller: an ``AsyncOpenAI`` for OpenAI models, an
        ``AsyncHTTPHandler`` for Anthropic's. ``None`` for other providers: LiteLLM then uses
        its own clients, and the dispatcher refuses (never caches) an oversized reply only
        once it has been read."""
        if self._http is None:
            provider, _ = self._route()
            try:
                if provider in ("openai", "text-completion-openai"):
                    import openai

                    key = self.api_key or (self._placeholder_key() if self.base_url else None)
                    self._http = openai.AsyncOpenAI(
                        api_key=key,
                        base_url=self.base_url,
                        max_retries=0,
                        timeout=self.timeout,
                        http_client=limit_reply_size(
                            openai.DefaultAsyncHttpxClient(timeout=self.timeout)
                        ),
                    )
                elif provider == "anthropic":
                    from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler

                    handler = AsyncHTTPHandler(timeout=self.timeout)
                    limit_reply_size(handler.client)
                    handler.event_hooks = handler.client.event_hooks  # kept if it is rebuilt
                    self._http = handler
            except Exception:  # no key for the SDK, another LiteLLM: LiteLLM's own clients
                self._http = None
        return self._http

    async def _one(self, request: Request, n: int) -> Completion:
        litellm = _litellm()
        params = self._params(request, n)
        client = self._client()
        if client is not None:
            params["client"] = client
        try:
            response = await litellm.acompletion(**params)
        except Exception as exc:
            raise self._error(exc) from None
        try:
            choices = sorted(response.choices, key=lambda c: getattr(c, "index", 0) or 0)
            texts = tuple((c.message.content or "") for c in choices)
            reasons = tuple(c.finish_reason for c in choices)
            usage = getattr(response, "usage", None)
            tokens = Usage(
                int(getattr(usage, "prompt_tokens", 0) or 0),
                int(getattr(usage, "completion_tokens", 0) or 0),
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise from_exception(ValueError(f"unexpected reply: {exc}"), engine=self.name) from None
        return Completion(texts, reasons, tokens, getattr(response, "model", None) or self.model)

    async def acomplete(self, request: Request) -> Completion:
        _, supports_n = self._route()
        if request.n == 1 or supports_n:
            return await self._one(request, request.n)
        # Providers without ``n`` (Anthropic, Ollama): n samples are n calls.
        parts = await asyncio.gather(*(self._one(request, 1) for _ in range(request.n)))
        return Completion(
            tuple(p.text for p in parts),
            tuple(p.finish_reasons[0] if p.finish_reasons else None for p in parts),
            sum((p.usage for p in parts), Usage()),
            parts[0].model,
        )

    def _error(self, exc: BaseException) -> Exception:
        """LiteLLM's exception as instructgen's typed error (keys masked)."""
        import openai

        too_large = from_exception(exc, engine=self.name)
        if isinstance(too_large, ReplyTooLargeError):  # stopped by the reply-size limit
            return too_large

        if isinstance(exc, openai.APITimeoutError | openai.APIConnectionError):
            error = from_exception(
                TimeoutError(str(exc))
                if isinstance(exc, openai.APITimeoutError)
                else ConnectionError(str(exc)),
                engine=self.name,
            )
        else:
            status = getattr(exc, "status_code", None)
            if isinstance(status, int) and status >= 400:
                error = from_status(status, _message(exc), engine=self.name, headers=_headers(exc))
            else:
                error = from_exception(exc, engine=self.name)
        for secret in self._secrets():
            error = redact(error, secret)
        return error

    def _secrets(self) -> list[str]:
        """The key given, and every key-like variable LiteLLM may have read for the provider."""
        found = [self.api_key] if self.api_key else []
        found += [
            v
            for k, v in os.environ.items()
            if k.endswith(("_API_KEY", "_KEY", "_TOKEN", "_SECRET")) and len(v) >= 8
        ]
        return found

    async def aclose(self) -> None:
        """Run LiteLLM's queued logging callbacks while their event loop is still open (else
        Python warns that they were never awaited when the run's loop ends); LiteLLM keeps its
        HTTP clients per event loop and closes them itself; the capping client given to it is
        closed here."""
        http, self._http = self._http, None
        if http is not None:
            with contextlib.suppress(Exception):
                await http.close()
        try:
            from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER
        except ImportError:  # another LiteLLM version: nothing to drain
            return
        with contextlib.suppress(Exception):
            for _ in range(3):  # let the last calls' logging helper tasks enqueue theirs
                await asyncio.sleep(0)
            await GLOBAL_LOGGING_WORKER.clear_queue()
            await GLOBAL_LOGGING_WORKER.stop()


def _message(exc: BaseException) -> str:
    """The provider's own words: LiteLLM wraps them as ``litellm.RateLimitError:
    RateLimitError: OpenAIException - rate limit exceeded``, or passes the error body's JSON
    followed by ``. Handle with `litellm.InternalServerError`.``."""
    text = str(getattr(exc, "message", "") or exc)
    text = text.split(". Handle with `litellm.", 1)[0]
    if " - " in text:
        text = text.split(" - ", 1)[1]
    start = text.find("{")
    if start >= 0:
        try:
            body = json.loads(text[start:])
        except ValueError:
            return text
        error = body.get("error", body) if isinstance(body, dict) else body
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return text


def _headers(exc: BaseException) -> dict[str, str]:
    headers: dict[str, str] = {}
    for source in (
        getattr(getattr(exc, "response", None), "headers", None),
        getattr(exc, "litellm_response_headers", None),
        getattr(exc, "headers", None),
    ):
        if source:
            try:
                headers.update({str(k): str(v) for k, v in dict(source).items()})
            except (TypeError, ValueError):
                continue
    return headers


@hookimpl
def register_engines(registry: Any) -> None:
    registry.add(LiteLLMEngine)
