"""OpenAI engines: ``openai`` (chat; seed name ChatGPT) and ``openai-completions`` (Davinci).

``base_url`` / ``OPENAI_BASE_URL`` point them at any OpenAI-compatible server (vLLM, Ollama,
llama.cpp server, LM Studio); a key is then optional.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from instructgen import (
    BatchEngine,
    BatchStatus,
    Completion,
    Engine,
    EngineError,
    EngineRegistry,
    ListCompletion,
    Price,
    ReplyTooLargeError,
    Request,
    Usage,
    api_base_url,
    capped_lines,
    custom_id_in,
    from_exception,
    from_status,
    hookimpl,
    limit_reply_size,
    max_reply_bytes,
    reply_size_limit,
    tiktoken_counter,
)

log = logging.getLogger("instructgen.engines.openai")

__all__ = ["OpenAIChatEngine", "OpenAICompletionsEngine"]

# US dollars per million tokens (openai.com/api/pricing); override with prices={...}. Batch
# API requests cost half (Price's batch columns default to 50 %).
PRICES = {
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-3.5-turbo-instruct": Price(1.50, 2.00),
    "gpt-3.5-turbo": Price(0.50, 1.50),
}


class _OpenAIBase(Engine, BatchEngine):
    key_env_vars = ("OPENAI_API_KEY",)
    requires = ("openai",)
    install_with = "instructgen"
    missing_key_hint = (
        "a local OpenAI-compatible server such as Ollama, vLLM or llama.cpp needs none: set "
        "OPENAI_BASE_URL to its URL instead"
    )
    prices = PRICES

    @classmethod
    def token_counter(cls, model: str | None = None) -> Callable[[str], int] | None:
        """tiktoken's encoding of ``model``, where its vocabulary is already on disk."""
        return tiktoken_counter(model or cls.default_model)

    # Request-body options of OpenAI's API a user may set with -o KEY VALUE (sent as given).
    option_types: ClassVar[Mapping[str, type]] = {
        "reasoning_effort": str,
        "service_tier": str,
        "user": str,
        "logit_bias": dict,
        "metadata": dict,
    }
    default_base_url = "https://api.openai.com/v1"

    json_mode: str = "none"  # the chat engine's JSON mode (instance attribute there)

    def __init__(
        self,
        api_key: str | None = None,
        *,
        model: str | None = None,
        base_url: str | None = None,
        organization: str | None = None,
        **kwargs: Any,
    ) -> None:
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        if base_url:  # a bare host gets OpenAI's /v1 (http://localhost:11434 → .../v1)
            base_url = api_base_url(base_url, add="/v1")
        super().__init__(api_key, model=model, base_url=base_url, **kwargs)
        self.organization = organization
        self._client: Any = None
        self._http: Any = None  # the SDK's aiohttp-backed client, when we built it
        self._endpoint = ""
        self._headers: dict[str, str] = {}

    def warm_up(self) -> None:
        """Build the SDK client before the run: the SDK's imports and the TLS context (loading
        the CA certificates) take about a second together. Safe off the loop: the aiohttp
        session behind the client is created at the first request, on the run's loop."""
        super().warm_up()
        self.client()

    def _key_optional(self, base_url: str | None) -> bool:
        return bool(base_url)  # local OpenAI-compatible servers usually need no key

    def client(self) -> Any:
        if self._client is None:
            from openai import AsyncOpenAI

            self._http = _http_client(self.timeout)
            # Either client stops reading a reply at the reply-size limit (max_reply_bytes).
            self._client = AsyncOpenAI(
                api_key=self.api_key or "no-key",
                base_url=self.base_url,
                organization=self.organization,
                max_retries=0,
                timeout=self.timeout,
                http_client=limit_reply_size(self._http or _httpx_client(self.timeout)),
            )
            if self._http is not None:
                # The SDK's own headers (auth, organization, user agent, platform) and base URL,
                # computed once; each request then only serialises its body.
                headers = {**self._client.default_headers, **self._client.auth_headers}
                self._headers = {k: v for k, v in headers.items() if isinstance(v, str)}
                self._headers["Content-Type"] = "application/json"
                self._endpoint = str(self._client.base_url).rstrip("/")
        return self._client

    def _common(self, request: Request) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "n": request.n,
        }
        if request.stop:
            params["stop"] = list(request.stop)[:4]
        if request.seed is not None:
            params["seed"] = request.seed
        if request.presence_penalty:
            params["presence_penalty"] = request.presence_penalty
        if request.frequency_penalty:
            params["frequency_penalty"] = request.frequency_penalty
        params.update(self.options)  # -o KEY VALUE, checked against option_types
        params.update(request.extra)
        return params

    async def _call(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        """POST plain JSON with the SDK client's configuration (base URL, auth, organization
        and default headers) through the SDK's aiohttp HTTP client, without the SDK's
        per-request option and response models: those cost about 0.4 ms of CPU per request,
        which at 64 requests in flight is about 5 % of the throughput (benchmarks). With the
        SDK's default client (``INSTRUCTGEN_OPENAI_HTTPX=1``) requests go through its
        ``post()`` and typed status errors instead."""
        client = self.client()
        if self._http is None:
            body = await self._call_sdk(client, path, params)
        else:
            body = await self._call_http(path, params)
        if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
            raise from_exception(
                ValueError(f"unexpected reply: {str(body)[:200]}"), engine=self.name
            )
        return body

    async def _call_http(self, path: str, params: dict[str, Any]) -> Any:
        try:
            response = await self._http.post(
                self._endpoint + path, content=json.dumps(params).encode(), headers=self._headers
            )
        except Exception as exc:
            raise from_exception(exc, engine=self.name) from None
        if response.status_code >= 400:
            raise from_status(
                response.status_code,
                _error_text(response),
                engine=self.name,
                headers=dict(response.headers),
            ) from None
        try:
            return response.json()
        except ValueError as exc:
            raise from_exception(exc, engine=self.name) from None

    async def _call_sdk(self, client: Any, path: str, params: dict[str, Any]) -> Any:
        return await self._sdk(client.post(path, cast_to=object, body=params))

    # -- the Batch API (files + batches, through the same SDK client) -------------------------

    batch_path: ClassVar[str] = ""  # the endpoint each batch line posts to, under /v1

    def batch_body(self, request: Request) -> dict[str, Any]:
        """The request body of one batch line (what ``acomplete`` would post)."""
        raise NotImplementedError

    async def abatch_submit(self, items: Any, *, metadata: Mapping[str, str] | None = None) -> str:
        endpoint = "/v1" + self.batch_path
        lines = [
            json.dumps(
                {
                    "custom_id": custom_id,
                    "method": "POST",
                    "url": endpoint,
                    "body": self.batch_body(request),
                },
                ensure_ascii=False,
            )
            for custom_id, request in items
        ]
        data = ("\n".join(lines) + "\n").encode("utf-8")
        client = self.client()

        async def submit() -> str:
            uploaded = await client.files.create(
                file=("instructgen-batch.jsonl", data), purpose="batch"
            )
            batch = await client.batches.create(
                input_file_id=uploaded.id,
                endpoint=endpoint,
                completion_window="24h",
                metadata=dict(metadata or {}),
            )
            return str(batch.id)

        result: str = await self._sdk(submit())
        return result

    async def abatch_poll(self, batch_id: str) -> BatchStatus:
        batch = await self._sdk(self.client().batches.retrieve(batch_id))
        return _batch_status(batch)

    async def abatch_cancel(self, batch_id: str) -> BatchStatus:
        batch = await self._sdk(self.client().batches.cancel(batch_id))
        return _batch_status(batch)

    async def abatch_lookup(self, token: str) -> str | None:
        """The batch created with this submission token, among the 1,000 most recent."""
        from instructgen import BATCH_TOKEN_FIELD as TOKEN_FIELD

        async def find() -> str | None:
            seen = 0
            async for batch in self.client().batches.list(limit=100):
                if (getattr(batch, "metadata", None) or {}).get(TOKEN_FIELD) == token:
                    return str(batch.id)
                seen += 1
                if seen >= 1000:
                    break
            return None

        found: str | None = await self._sdk(find())
        return found

    async def abatch_fetch(self, batch_id: str) -> dict[str, Completion | EngineError]:
        """The output and error files, read line by line as they arrive: a line (one reply)
        over the reply-size limit becomes ``ReplyTooLargeError`` for its custom id without
        being held, and a file is read no further than its batch's line count, so memory
        stays bounded whatever the file holds (its time is bounded by the dispatcher's
        timeout on the call)."""
        client = self.client()
        batch = await self._sdk(client.batches.retrieve(batch_id))
        counts = getattr(batch, "request_counts", None)
        lines = int(getattr(counts, "total", 0) or 0) or self.max_batch_requests
        out: dict[str, Completion | EngineError] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                await self._sdk(self._read_results(client, file_id, lines, out))
        return out

    async def _read_results(
        self, client: Any, file_id: str, lines: int, out: dict[str, Completion | EngineError]
    ) -> None:
        per_line = max_reply_bytes()
        seen = 0
        # The file holds many replies: no limit on its size, each line is capped instead (and
        # their number), so one oversized line costs only its own result.
        with reply_size_limit(None):
            files = client.files.with_streaming_response
            async with files.content(file_id) as response:
                async for line, complete in capped_lines(response.iter_bytes(), per_line):
                    if not line.strip():
                        continue
                    seen += 1
                    if seen > lines:
                        break  # more lines than the batch has requests: not a result file
                    if complete:
                        custom_id, result = self._batch_line(line.decode("utf-8", "replace"))
                    else:
                        custom_id = custom_id_in(line)
                        result = ReplyTooLargeError(per_line or 0, partial=True, engine=self.name)
                    if custom_id is not None:
                        out[custom_id] = result

    def _batch_line(self, line: str) -> tuple[str | None, Completion | EngineError]:
        try:
            item = json.loads(line)
            custom_id = str(item["custom_id"])
        except (ValueError, KeyError, TypeError) as exc:
            return None, from_exception(exc, engine=self.name)
        response = item.get("response") or {}
        status = int(response.get("status_code") or 0)
        body = response.get("body")
        if status == 200 and isinstance(body, dict) and isinstance(body.get("choices"), list):
            try:
                return custom_id, self.batch_completion(body)
            except EngineError as exc:
                return custom_id, exc
        error = item.get("error") or (body.get("error") if isinstance(body, dict) else None)
        message = _body_message({"error": error}) if isinstance(error, dict) else None
        error_: EngineError = from_status(
            status or 500, message or str(error or body)[:300], engine=self.name
        )
        mode: str = getattr(self, "json_mode", _JSON_MODES[-1])
        if mode != _JSON_MODES[-1] and _rejects_format(error_):
            # the server refused the JSON mode: the next batch uses the next one
            following = _JSON_MODES[_JSON_MODES.index(mode) + 1]
            self.json_mode = following
            error_ = from_status(503, f"{error_} (sent again with {following})", engine=self.name)
        return custom_id, error_

    def batch_completion(self, body: dict[str, Any]) -> Completion:
        raise NotImplementedError

    async def _sdk(self, call: Any) -> Any:
        """Await an SDK call, its failures mapped to typed errors (statuses with Retry-After)."""
        import openai

        try:
            return await call
        except openai.APIStatusError as exc:
            raise from_status(
                exc.status_code, _message(exc), engine=self.name, headers=dict(exc.response.headers)
            ) from None
        except Exception as exc:
            raise from_exception(exc, engine=self.name) from None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = self._http = None


def _http_client(timeout: float | None) -> Any:
    """The SDK's aiohttp transport (``openai[aiohttp]``, which the SDK documents for
    concurrency): at 64 requests in flight it costs about half the CPU per request of the
    default httpx pool, which scans every connection on each request. ``None`` (the SDK's
    default client) when aiohttp is not installed or ``INSTRUCTGEN_OPENAI_HTTPX=1``."""
    if os.environ.get("INSTRUCTGEN_OPENAI_HTTPX") == "1":
        return None
    try:
        from openai import DefaultAioHttpClient

        kwargs: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        return DefaultAioHttpClient(**kwargs)
    except (ImportError, RuntimeError):
        return None


def _httpx_client(timeout: float | None) -> Any:
    """The SDK's default httpx client, as it would build it itself (its limits, redirects)."""
    from openai import DefaultAsyncHttpxClient

    kwargs: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
    return DefaultAsyncHttpxClient(**kwargs)


def _error_text(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or f"HTTP {response.status_code}"
    err = body.get("error", body) if isinstance(body, dict) else body
    return _body_message(body) or str(err)[:300]


def _message(exc: Any) -> str:
    return _body_message(getattr(exc, "body", None)) or str(
        getattr(exc, "message", "") or type(exc).__name__
    )


def _body_message(body: Any) -> str | None:
    """``error.message`` of an OpenAI-format error body (or a bare ``message``)."""
    if not isinstance(body, dict):
        return None
    err = body.get("error", body)
    if isinstance(err, dict) and err.get("message"):
        return str(err["message"])
    return None


def _batch_status(batch: Any) -> BatchStatus:
    counts = getattr(batch, "request_counts", None)
    return BatchStatus(
        id=str(batch.id),
        state=str(batch.status),
        total=int(getattr(counts, "total", 0) or 0),
        completed=int(getattr(counts, "completed", 0) or 0),
        failed=int(getattr(counts, "failed", 0) or 0),
    )


def _usage(u: Any) -> Usage:
    if not isinstance(u, dict):
        return Usage()
    return Usage(int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0))


def _completion(engine: _OpenAIBase, body: dict[str, Any], text_of: Any) -> Completion:
    try:
        choices = sorted(body["choices"], key=lambda c: c.get("index", 0))
        texts = tuple(text_of(c) or "" for c in choices)
        reasons = tuple(c.get("finish_reason") for c in choices)
    except (AttributeError, KeyError, TypeError) as exc:
        raise from_exception(ValueError(f"unexpected reply: {exc}"), engine=engine.name) from None
    return Completion(texts, reasons, _usage(body.get("usage")), body.get("model"))


def _prompt_list(engine: _OpenAIBase, body: dict[str, Any], prompts: int, n: int) -> ListCompletion:
    """A list reply split by prompt: choice ``index`` = prompt position × ``n`` + choice. A
    prompt with a choice missing, repeated or malformed (no integer index, no text) gets
    ``None`` (the dispatcher sends it again alone); choices whose index is out of range are
    ignored."""
    found: dict[int, dict[str, Any]] = {}
    broken: set[int] = set()
    for choice in body["choices"]:
        index = choice.get("index") if isinstance(choice, dict) else None
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < prompts * n:
            continue
        if index in found or not isinstance(choice.get("text"), str):
            broken.add(index // n)
        found[index] = choice
    completions: list[Completion | None] = []
    for p in range(prompts):
        choices = [found.get(p * n + j) for j in range(n)]
        if p in broken or any(c is None for c in choices):
            completions.append(None)
            continue
        completions.append(
            Completion(
                tuple(str(c["text"]) for c in choices if c is not None),
                tuple(c.get("finish_reason") for c in choices if c is not None),
                model=body.get("model"),
            )
        )
    return ListCompletion(tuple(completions), _usage(body.get("usage")), body.get("model"))


# What a request with a JSON schema sends, best first; a server that rejects one (HTTP 400
# naming response_format or the schema) gets the next for the rest of the run.
_JSON_MODES = ("json_schema", "json_object", "none")


def response_format(mode: str, schema: Any) -> dict[str, Any] | None:
    """The ``response_format`` body field for ``mode``: OpenAI Structured Outputs (a strict
    JSON schema, named by its ``title``), JSON mode, or nothing."""
    if mode == "json_schema":
        body = {k: v for k, v in dict(schema).items() if k != "title"}
        name = "".join(c if c.isalnum() or c in "_-" else "_" for c in str(schema.get("title")))
        return {
            "type": "json_schema",
            "json_schema": {"name": (name or "reply")[:64], "schema": body, "strict": True},
        }
    if mode == "json_object":
        return {"type": "json_object"}
    return None


def _rejects_format(error: EngineError) -> bool:
    """A refusal of the request's response_format: HTTP 400/422 (or a server's 500/501)
    whose message names it or the schema."""
    if error.status not in (400, 422, 500, 501):
        return False
    text = str(error).lower()
    return any(w in text for w in ("response_format", "json_schema", "schema", "json_object"))


class OpenAIChatEngine(_OpenAIBase):
    """OpenAI chat completions (``/v1/chat/completions``).

    Requests with ``json_schema`` use Structured Outputs; servers without schema support
    (found by their HTTP 400) get JSON mode instead, and servers without JSON mode plain
    requests, remembered for the engine's lifetime (a run)."""

    name = "openai"
    kind = "chat"
    default_model = "gpt-4o-mini"
    structured_output = "json_schema"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.json_mode = _JSON_MODES[0]

    batch_path = "/chat/completions"

    def batch_body(self, request: Request) -> dict[str, Any]:
        params = self._common(request)
        params["messages"] = request.as_messages()
        fmt = response_format(self.json_mode, request.json_schema) if request.json_schema else None
        if fmt is not None and "response_format" not in request.extra:
            params["response_format"] = fmt
        return params

    def batch_completion(self, body: dict[str, Any]) -> Completion:
        return _completion(self, body, lambda c: (c.get("message") or {}).get("content"))

    async def acomplete(self, request: Request) -> Completion:
        params = self._common(request)
        params["messages"] = request.as_messages()
        while True:
            mode = self.json_mode
            fmt = response_format(mode, request.json_schema) if request.json_schema else None
            if fmt is not None and "response_format" not in request.extra:
                params["response_format"] = fmt
            else:
                params.pop("response_format", None)
            try:
                body = await self._call("/chat/completions", params)
            except EngineError as exc:
                if fmt is None or mode == _JSON_MODES[-1] or not _rejects_format(exc):
                    raise
                following = _JSON_MODES[_JSON_MODES.index(mode) + 1]
                if self.json_mode == mode:
                    self.json_mode = following
                    log.info(
                        "%s: the server refused response_format %s (%s); using %s for this run",
                        self.name,
                        mode,
                        exc,
                        following,
                    )
                continue
            return _completion(self, body, lambda c: (c.get("message") or {}).get("content"))


class OpenAICompletionsEngine(_OpenAIBase):
    """OpenAI legacy completions (``/v1/completions``), as the Self-Instruct paper used.

    Several prompts go in one request (``prompt`` as a list, as the paper's code sent 20):
    the dispatcher coalesces up to ``--prompts-per-request`` of them; the choices come back
    with ``index`` = prompt position × n + choice."""

    name = "openai-completions"
    kind = "completion"
    default_model = "gpt-3.5-turbo-instruct"
    max_prompts_per_request = 128

    batch_path = "/completions"

    def batch_body(self, request: Request) -> dict[str, Any]:
        params = self._common(request)
        params["prompt"] = request.as_prompt()
        return params

    def batch_completion(self, body: dict[str, Any]) -> Completion:
        return _completion(self, body, lambda c: c.get("text"))

    async def acomplete(self, request: Request) -> Completion:
        params = self._common(request)
        params["prompt"] = request.as_prompt()
        body = await self._call("/completions", params)
        return _completion(self, body, lambda c: c.get("text"))

    async def acomplete_prompts(self, requests: Sequence[Request]) -> ListCompletion:
        params = self._common(requests[0])  # equal for all but the prompt
        params["prompt"] = [r.as_prompt() for r in requests]
        body = await self._call("/completions", params)
        return _prompt_list(self, body, len(requests), requests[0].n)


@hookimpl
def register_engines(registry: EngineRegistry) -> None:
    registry.add(OpenAIChatEngine, aliases=("chatgpt",), seed_name="ChatGPT")
    registry.add(OpenAICompletionsEngine, aliases=("davinci",), seed_name="Davinci")
