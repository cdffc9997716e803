"""An engine for a small JSON completion API ("hello-api"), as a template for plugin authors.

The API: ``POST {base_url}/v1/generate`` with ``{"model", "prompt", "max_tokens",
"temperature", "top_p", "stop", "seed", "presence_penalty", "frequency_penalty"}`` and a bearer
key; it answers one text: ``{"text", "finish_reason", "usage": {"input_tokens",
"output_tokens"}}``. Replace the request and reply mapping with your provider's and keep the
rest: every ``Request`` field is mapped (the Self-Instruct stages send ``presence_penalty`` 2.0
and 1.5, ``n`` samples and a ``seed``; ``extra`` carries provider options), the error mapping
is what lets instructgen's dispatcher retry the right failures, and the lazy ``httpx`` import
keeps ``instructgen --help`` fast.
"""

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
    from_exception,
    from_status,
    hookimpl,
)

__all__ = ["HelloEngine"]

# US dollars per million tokens; users can override with prices={...}.
PRICES = {"hello-small": Price(0.10, 0.20), "hello-large": Price(1.00, 2.00)}


class HelloEngine(Engine):
    name = "hello-api"
    kind = "completion"  # the API takes a prompt; chat requests are flattened by as_prompt()
    default_model = "hello-small"
    key_env_vars = ("HELLO_API_KEY",)
    prices = PRICES
    # The provider's own URL: cache keys name the endpoint only for other servers.
    default_base_url = "http://127.0.0.1:8765"

    def __init__(
        self, api_key: str | None = None, *, base_url: str | None = None, **kwargs: Any
    ) -> None:
        base_url = base_url or os.environ.get("HELLO_API_URL") or self.default_base_url
        super().__init__(api_key, base_url=base_url, **kwargs)
        self._client: Any = None

    def _http(self) -> Any:
        if self._client is None:
            import httpx  # imported when the engine is used, never at registration

            self._client = httpx.AsyncClient(base_url=self.base_url or "", timeout=self.timeout)
        return self._client

    async def acomplete(self, request: Request) -> Completion:
        if request.n == 1:
            return await self._one(request)
        # The API returns one text per call: n samples are n calls, joined in order.
        import asyncio

        parts = await asyncio.gather(*(self._one(request) for _ in range(request.n)))
        return Completion(
            tuple(p.text for p in parts),
            tuple(p.finish_reasons[0] for p in parts),
            sum((p.usage for p in parts), Usage()),
            self.model,
        )

    def _payload(self, request: Request) -> dict[str, Any]:
        """Every ``Request`` field in the API's names (see docs/plugins/guide.md's table)."""
        payload: dict[str, Any] = {
            "model": self.model,
            "prompt": request.as_prompt(),  # a chat API would send request.as_messages()
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "stop": list(request.stop),
        }
        if request.seed is not None:
            payload["seed"] = request.seed
        if request.presence_penalty:
            payload["presence_penalty"] = request.presence_penalty
        if request.frequency_penalty:
            payload["frequency_penalty"] = request.frequency_penalty
        payload.update(request.extra)  # provider-specific options, part of the cache key
        return payload

    async def _one(self, request: Request) -> Completion:
        payload = self._payload(request)
        try:
            r = await self._http().post(
                "/v1/generate", json=payload, headers={"Authorization": f"Bearer {self.api_key}"}
            )
        except Exception as exc:  # timeouts, resets, refused connections
            raise from_exception(exc, engine=self.name) from None
        if r.status_code != 200:
            raise from_status(
                r.status_code, r.text[:300], engine=self.name, headers=dict(r.headers)
            )
        try:
            body = r.json()
            usage = body.get("usage") or {}
            return Completion(
                (str(body["text"]),),
                (body.get("finish_reason") or "stop",),
                Usage(int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))),
                self.model,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise from_exception(ValueError(f"malformed reply: {exc}"), engine=self.name) from None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


@hookimpl
def register_engines(registry: EngineRegistry) -> None:
    registry.add(HelloEngine, aliases=("hello",), seed_name="Hello")
