"""AI21 engine ``ai21`` (Jamba chat completions; seed name J2Grande)."""

from __future__ import annotations

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

__all__ = ["AI21Engine"]

# US dollars per million tokens (ai21.com/pricing); override with prices={...}.
PRICES = {
    "jamba-mini": Price(0.20, 0.40),
    "jamba-large": Price(2.00, 8.00),
    "jamba-1.5-mini": Price(0.20, 0.40),
    "jamba-1.5-large": Price(2.00, 8.00),
}


class AI21Engine(Engine):
    name = "ai21"
    kind = "chat"
    default_model = "jamba-mini"
    key_env_vars = ("AI21_API_KEY",)
    prices = PRICES
    requires = ("ai21",)
    install_with = "instructgen[ai21]"
    structured_output = "json_object"  # response_format json_object (no schema)
    default_base_url = "https://api.ai21.com/studio/v1"

    def __init__(
        self,
        api_key: str | None = None,
        *,
        model: str | None = None,
        base_url: str | None = None,
        api_host: str | None = None,
        **kwargs: Any,
    ) -> None:
        host = api_host or base_url or os.environ.get("AI21_API_HOST") or None
        if host:  # a bare host gets AI21's /studio/v1, where the SDK posts chat/completions
            host = api_base_url(host, add="/studio/v1")
        super().__init__(api_key, model=model, base_url=host, **kwargs)
        self._client: Any = None
        self._http: Any = None  # the SDK's httpx client, built here to cap replies

    def client(self) -> Any:
        if self._client is None:
            import httpx
            from ai21 import AsyncAI21Client

            self._http = limit_reply_size(httpx.AsyncClient())
            kw: dict[str, Any] = {
                "api_key": self.api_key,
                "timeout_sec": self.timeout,
                "num_retries": 0,
                # the SDK's default client, stopping a reply at the reply-size limit
                "http_client": self._http,
            }
            if self.base_url:
                kw["api_host"] = self.base_url
            self._client = AsyncAI21Client(**kw)
        return self._client

    async def acomplete(self, request: Request) -> Completion:
        from ai21.errors import AI21APIError
        from ai21.models.chat import ChatMessage

        params: dict[str, Any] = {
            "model": self.model,
            "messages": [
                ChatMessage(role=m["role"], content=m["content"]) for m in request.as_messages()
            ],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "n": request.n,
        }
        if request.stop:
            params["stop"] = list(request.stop)
        if request.json_schema is not None:
            params["response_format"] = {"type": "json_object"}
        params.update(request.extra)
        try:
            r = await self.client().chat.completions.create(**params)
        except AI21APIError as exc:
            raise from_status(exc.status_code, str(exc.details or ""), engine=self.name) from None
        except Exception as exc:
            raise from_exception(exc, engine=self.name) from None
        try:
            texts = tuple(c.message.content or "" for c in r.choices)
            reasons = tuple(c.finish_reason for c in r.choices)
            usage = Usage(int(r.usage.prompt_tokens or 0), int(r.usage.completion_tokens or 0))
        except (AttributeError, TypeError) as exc:
            raise from_exception(exc, engine=self.name) from None
        return Completion(texts, reasons, usage, getattr(r, "model", None) or self.model)

    async def aclose(self) -> None:
        http, self._client, self._http = self._http, None, None
        if http is not None:
            await http.aclose()


@hookimpl
def register_engines(registry: EngineRegistry) -> None:
    registry.add(AI21Engine, aliases=("j2-grande",), seed_name="J2Grande")
