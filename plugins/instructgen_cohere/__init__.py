"""Cohere engine ``cohere`` (chat, v2 API; seed name Medium)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from instructgen import (
    Completion,
    Engine,
    EngineRegistry,
    Price,
    Request,
    Usage,
    api_base_url,
    from_exception,
    from_status,
    hookimpl,
    limit_reply_size,
)

__all__ = ["CohereEngine"]

# US dollars per million tokens (cohere.com/pricing); override with prices={...}.
PRICES = {
    "command-r7b-12-2024": Price(0.0375, 0.15),
    "command-r-08-2024": Price(0.15, 0.60),
    "command-r-plus-08-2024": Price(2.50, 10.00),
    "command-a-03-2025": Price(2.50, 10.00),
}

_FINISH = {"COMPLETE": "stop", "STOP_SEQUENCE": "stop", "MAX_TOKENS": "length"}


class CohereEngine(Engine):
    name = "cohere"
    kind = "chat"
    default_model = "command-r-08-2024"
    key_env_vars = ("CO_API_KEY", "COHERE_API_KEY")
    prices = PRICES
    requires = ("cohere",)
    install_with = "instructgen[cohere]"
    structured_output = "json_schema"  # v2 response_format json_object with json_schema
    default_base_url = "https://api.cohere.com"

    def __init__(
        self,
        api_key: str | None = None,
        *,
        model: str | None = None,
        base_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        base_url = base_url or os.environ.get("CO_API_URL") or None
        if base_url:  # the SDK adds /v2/chat itself: a /v1 or /v2 given with the host goes
            base_url = api_base_url(base_url, strip=("/v1", "/v2"))
        super().__init__(api_key, model=model, base_url=base_url, **kwargs)
        self._client: Any = None
        self._http: Any = None  # the SDK's httpx client, built here to cap replies
        self.json_mode = True  # False once the server refused response_format (this run)

    def client(self) -> Any:
        if self._client is None:
            import cohere
            import httpx

            self._http = limit_reply_size(
                httpx.AsyncClient(timeout=self.timeout, follow_redirects=True)
            )
            kw: dict[str, Any] = {
                "api_key": self.api_key,
                "timeout": self.timeout,
                "max_retries": 0,
                "log_warning_experimental_features": False,
                # the SDK's own client, stopping a reply at the reply-size limit
                "httpx_client": self._http,
            }
            if self.base_url:
                kw["base_url"] = self.base_url
            self._client = cohere.AsyncClientV2(**kw)
        return self._client

    async def _one(self, request: Request) -> Completion:
        from cohere.core.api_error import ApiError

        params: dict[str, Any] = {
            "model": self.model,
            "messages": request.as_messages(),
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "p": min(max(request.top_p, 0.01), 0.99),
            "request_options": {"max_retries": 0},
        }
        if request.stop:
            params["stop_sequences"] = list(request.stop)
        if request.seed is not None:
            params["seed"] = request.seed
        if request.presence_penalty:
            params["presence_penalty"] = min(request.presence_penalty, 1.0)
        if request.frequency_penalty:
            params["frequency_penalty"] = min(request.frequency_penalty, 1.0)
        json_mode = request.json_schema is not None and self.json_mode
        if json_mode:
            params["response_format"] = {
                "type": "json_object",
                "json_schema": _cohere_schema(request.json_schema),
            }
        params.update(request.extra)
        try:
            r = await self.client().chat(**params)
        except ApiError as exc:
            if exc.status_code is None or exc.status_code == 200:
                raise from_exception(
                    ValueError(f"unparseable body: {exc.body!r}"[:300]), engine=self.name
                ) from None
            message = _message(exc.body)
            if json_mode and exc.status_code in (400, 422) and _names_format(message):
                # A model or endpoint without JSON mode: plain requests for the rest of the run.
                self.json_mode = False
                return await self._one(request)
            raise from_status(
                exc.status_code, message, engine=self.name, headers=exc.headers
            ) from None
        except Exception as exc:
            raise from_exception(exc, engine=self.name) from None
        try:
            text = "".join(c.text for c in (r.message.content or []) if c.type == "text")
        except (AttributeError, TypeError) as exc:
            raise from_exception(exc, engine=self.name) from None
        tokens = getattr(r.usage, "billed_units", None) or getattr(r.usage, "tokens", None)
        usage = Usage(
            int(getattr(tokens, "input_tokens", 0) or 0),
            int(getattr(tokens, "output_tokens", 0) or 0),
        )
        reason = _FINISH.get(str(r.finish_reason), str(r.finish_reason).lower())
        return Completion((text,), (reason,), usage, self.model)

    async def acomplete(self, request: Request) -> Completion:
        if request.n == 1:
            return await self._one(request)
        # The v2 chat API returns one message per call: n samples are n calls.
        parts = await asyncio.gather(*(self._one(request) for _ in range(request.n)))
        usage = sum((p.usage for p in parts), Usage())
        return Completion(
            tuple(p.text for p in parts),
            tuple(p.finish_reasons[0] for p in parts),
            usage,
            self.model,
        )

    async def aclose(self) -> None:
        http, self._client, self._http = self._http, None, None
        if http is not None:
            await http.aclose()


def _cohere_schema(schema: Any) -> Any:
    """The schema without the keywords Cohere's JSON mode does not need (``title``,
    ``additionalProperties``), at every level."""
    if isinstance(schema, dict):
        return {
            k: _cohere_schema(v)
            for k, v in schema.items()
            if k not in ("title", "additionalProperties")
        }
    if isinstance(schema, list):
        return [_cohere_schema(v) for v in schema]
    return schema


def _names_format(message: str) -> bool:
    text = message.lower()
    return any(w in text for w in ("response_format", "json_schema", "schema", "json_object"))


def _message(body: Any) -> str:
    if isinstance(body, dict):
        msg = body.get("message") or body.get("error")
        if isinstance(msg, dict):
            msg = msg.get("message")
        if msg:
            return str(msg)
    return str(body)[:300]


@hookimpl
def register_engines(registry: EngineRegistry) -> None:
    registry.add(CohereEngine, aliases=("medium",), seed_name="Medium")
