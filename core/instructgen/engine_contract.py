"""The engine contract: ``Request`` in, ``Completion`` out.

An engine turns one ``Request`` into a ``Completion`` with one async call. An engine whose
provider takes several prompts in one request (OpenAI's legacy completions: ``prompt`` as a
list) also declares ``max_prompts_per_request`` and implements ``acomplete_prompts``; the
dispatcher then sends independent requests of the same parameters together (``prompt_lists.py``).

Engines translate; they never retry, sleep or cache. The dispatcher (``dispatch.py``) does all of
that for every engine, built-in or third-party. SDK clients are created with their own retries
switched off, and SDK imports happen inside methods so registering an engine costs nothing.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from instructgen.endpoints import check_base_url, endpoint
from instructgen.errors import ConfigError, MissingKeyError
from instructgen.limits import DEFAULT_REQUEST_TIMEOUT

__all__ = [
    "Completion",
    "Engine",
    "ListCompletion",
    "Message",
    "Price",
    "Request",
    "Usage",
    "price_of",
]

EngineKind = Literal["chat", "completion"]
StructuredOutput = Literal["json_schema", "json_object"]


@dataclass(frozen=True)
class Message:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class Request:
    """One generation request, chat (``messages``) or completion (``prompt``).

    Engines of either kind accept both shapes: ``as_messages()`` / ``as_prompt()`` convert.
    ``extra`` carries provider-specific options; it is part of the cache key.
    ``json_schema``: the reply must be a JSON object following this JSON Schema (its
    ``title`` names it). Engines that declare ``structured_output`` pass it to their
    provider's JSON mode; others ignore it (the prompt itself asks for the JSON).
    """

    messages: tuple[Message, ...] = ()
    prompt: str | None = None
    max_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    n: int = 1
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    extra: Mapping[str, Any] = field(default_factory=dict)
    json_schema: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.messages and self.prompt is None:
            raise ValueError("a Request needs messages or a prompt")

    @classmethod
    def chat(cls, content: str, *, system: str | None = None, **options: Any) -> Request:
        msgs = [Message("system", system)] if system else []
        msgs.append(Message("user", content))
        return cls(messages=tuple(msgs), **options)

    def as_messages(self) -> list[dict[str, str]]:
        if self.messages:
            return [{"role": m.role, "content": m.content} for m in self.messages]
        return [{"role": "user", "content": self.prompt or ""}]

    def as_prompt(self) -> str:
        if self.prompt is not None:
            return self.prompt
        return "\n\n".join(m.content for m in self.messages)

    def canonical(self) -> dict[str, Any]:
        """A JSON-ready, order-stable form used for cache keys (never includes credentials).
        ``json_schema`` appears only when set, so keys of plain requests never change."""
        out: dict[str, Any] = {
            "messages": [[m.role, m.content] for m in self.messages],
            "prompt": self.prompt,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "stop": list(self.stop),
            "n": self.n,
            "seed": self.seed,
            "presence_penalty": self.presence_penalty,
            "frequency_penalty": self.frequency_penalty,
            "extra": {k: self.extra[k] for k in sorted(self.extra)},
        }
        if self.json_schema is not None:
            out["json_schema"] = self.json_schema
        return out


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )


@dataclass(frozen=True)
class Completion:
    """What came back: one text per sample, its finish reason (``stop``, ``length``, ...)."""

    texts: tuple[str, ...]
    finish_reasons: tuple[str | None, ...] = ()
    usage: Usage = field(default_factory=Usage)
    model: str | None = None

    @property
    def text(self) -> str:
        return self.texts[0] if self.texts else ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "texts": list(self.texts),
            "finish_reasons": list(self.finish_reasons),
            "usage": [self.usage.prompt_tokens, self.usage.completion_tokens],
            "model": self.model,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Completion:
        pt, ct = d.get("usage") or (0, 0)
        return cls(
            texts=tuple(d["texts"]),
            finish_reasons=tuple(d.get("finish_reasons") or ()),
            usage=Usage(int(pt), int(ct)),
            model=d.get("model"),
        )


@dataclass(frozen=True)
class ListCompletion:
    """What one request carrying several prompts (``Engine.acomplete_prompts``) returned.

    ``completions``: one per prompt, in the order of the requests, each with its texts and
    finish reasons (its ``usage`` is ignored), or ``None`` where the reply holds no usable
    answer for that prompt (a choice missing or malformed): the dispatcher sends that prompt
    again on its own. ``usage``: the reply's usage for all the prompts together; the
    dispatcher attributes it to the prompts (``prompt_lists.split_usage``)."""

    completions: tuple[Completion | None, ...]
    usage: Usage = field(default_factory=Usage)
    model: str | None = None


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens; ``batch_input`` / ``batch_output`` for requests sent
    through a batch API (``None``: half the online price, the usual batch discount)."""

    input: float
    output: float
    batch_input: float | None = None
    batch_output: float | None = None

    def cost(self, usage: Usage) -> float:
        return (usage.prompt_tokens * self.input + usage.completion_tokens * self.output) / 1e6


def price_of(model: str, prices: Mapping[str, Price]) -> Price | None:
    """``model``'s price in ``prices``: exact name first, then the longest matching prefix."""
    if model in prices:
        return prices[model]
    best = [k for k in prices if model.startswith(k)]
    return prices[max(best, key=len)] if best else None


class Engine(ABC):
    """Base class of every engine.

    Subclasses set the capability attributes and implement ``acomplete``. The constructor takes
    the key positionally (the seed's ``ChatGPT("sk-...")``) or reads ``key_env_vars``; the key is
    kept in a private attribute and never shown by ``repr``.
    """

    name: ClassVar[str] = ""
    kind: ClassVar[EngineKind] = "chat"
    default_model: ClassVar[str] = ""
    key_env_vars: ClassVar[tuple[str, ...]] = ()
    needs_key: ClassVar[bool] = True
    """False for engines that never take a key (a local model server)."""
    missing_key_hint: ClassVar[str | None] = None
    """Added to the missing-key error, e.g. how to run without a key against a local server."""
    prices: ClassVar[Mapping[str, Price]] = {}
    option_types: ClassVar[Mapping[str, type]] = {}
    """The options users may set (``-o KEY VALUE`` on the command line, ``KEY=value`` in
    Python) and their types (str, int, float, bool, dict or list). Unknown options are refused;
    the options given enter ``identity()``, so a different option is a different cache entry."""
    requires: ClassVar[tuple[str, ...]] = ()
    """Top-level modules the engine imports when used (e.g. its SDK). Checked without importing
    them: an engine whose module is missing stays listed as unavailable, and asking for it
    fails with ``install_with``."""
    install_with: ClassVar[str] = ""
    """The pip requirement that brings ``requires``, e.g. ``instructgen[cohere]``."""
    structured_output: ClassVar[StructuredOutput | None] = None
    """The provider's JSON mode, used for requests that carry ``json_schema`` (instructgen's
    own prompts, e.g. the document Q/A; never the Self-Instruct paper's): ``"json_schema"``
    (the reply follows the schema), ``"json_object"`` (the reply is a JSON object), ``None``."""
    max_prompts_per_request: ClassVar[int] = 1
    """How many prompts one request to the provider may carry: more than 1 for engines that
    implement ``acomplete_prompts`` (a request with ``prompt`` as a list). The dispatcher
    coalesces up to ``min(this, DispatchConfig.prompts_per_request)`` independent requests
    of the same parameters into one; 1 (the default): one request per prompt."""
    default_base_url: ClassVar[str | None] = None
    """The provider's own URL: requests sent there (or with no base URL) keep cache keys
    without an endpoint, so caches made before endpoints entered the key stay valid."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        model: str | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
        prices: Mapping[str, Price] | None = None,
        **options: Any,
    ) -> None:
        if base_url:
            check_base_url(base_url)  # a ConfigError (exit 2) before anything is sent
        self._api_key = api_key or self._key_from_env()
        if self.needs_key and not self._api_key and not self._key_optional(base_url):
            raise MissingKeyError(
                self.name or type(self).__name__, self.key_env_vars, self.missing_key_hint
            )
        self.model = model or self.default_model
        self.base_url = base_url
        # Seconds the HTTP client waits for an answer. Without one of the engine's own, the run's
        # (``DispatchConfig.timeout``, ``--timeout``), which the dispatcher sets.
        self.timeout: float = DEFAULT_REQUEST_TIMEOUT if timeout is None else timeout
        self.timeout_given = timeout is not None
        self.options = self.check_options(options)
        self._prices = {**self.prices, **(prices or {})}

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` checked against ``option_types``; strings (from the command line) are
        converted to the declared type. Raises ``ConfigError`` naming the known options."""
        out: dict[str, Any] = {}
        for key, value in options.items():
            want = cls.option_types.get(key)
            if want is None:
                known = ", ".join(sorted(cls.option_types)) or "none"
                raise ConfigError(
                    f"engine {cls.name or cls.__name__!r} has no option {key!r}; "
                    f"its options: {known}"
                )
            out[key] = _convert_option(cls.name or cls.__name__, key, value, want)
        return out

    def _key_from_env(self) -> str | None:
        for var in self.key_env_vars:
            value = os.environ.get(var)
            if value:
                return value
        return None

    def _key_optional(self, base_url: str | None) -> bool:
        """Engines pointed at a local server may run without a key; override to allow it."""
        return False

    @property
    def api_key(self) -> str | None:
        return self._api_key

    def warm_up(self) -> None:
        """Import what the first request needs, before a run starts. Runs in a worker thread,
        so that a slow import (an SDK takes 0.5-2 s) never holds the caller's event loop.
        Default: the modules in ``requires``; override to add lazily imported parts."""
        import importlib

        for module in self.requires:
            importlib.import_module(module)

    @abstractmethod
    async def acomplete(self, request: Request) -> Completion:
        """Send one request and return the completion, or raise an ``EngineError`` subclass."""

    def accepts_prompt_list(self, request: Request) -> bool:
        """Whether ``request`` may share one provider request with others of the same
        parameters (everything but the prompt equal). Default: every request, when the
        engine declares ``max_prompts_per_request`` above 1."""
        return self.max_prompts_per_request > 1

    async def acomplete_prompts(self, requests: Sequence[Request]) -> ListCompletion:
        """Send ``requests`` (2 to ``max_prompts_per_request`` of them, equal but for their
        prompts) as one provider request; return one completion per request, in order
        (``None`` for a prompt the reply has no usable answer for), and the reply's usage.
        Raise an ``EngineError`` subclass when the request fails, as ``acomplete`` does.
        Only called on engines with ``max_prompts_per_request`` above 1."""
        raise NotImplementedError(f"{type(self).__name__} sends one prompt per request")

    async def aclose(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Release clients; the dispatcher calls it when a run ends."""

    def price(self) -> Price | None:
        """The price for ``self.model``: exact name first, then the longest matching prefix."""
        return price_of(self.model, self._prices)

    @classmethod
    def model_price(cls, model: str | None = None) -> Price | None:
        """The price of ``model`` (default: ``default_model``) from the class's price table,
        without building an engine (no key needed): what dry runs estimate with."""
        return price_of(model or cls.default_model, cls.prices)

    @classmethod
    def token_counter(cls, model: str | None = None) -> Callable[[str], int] | None:
        """A function counting a text's tokens as the provider bills them for ``model``
        (default: ``default_model``), or ``None`` when no tokenizer for it is on this machine.
        Dry runs use it for the expected prompt tokens; without it they estimate about 4
        characters a token. It must work offline (never download a vocabulary) and be cheap
        to call again (cache what it loads). Default: ``None``."""
        return None

    def endpoint(self) -> str | None:
        """The server this engine talks to, normalised (``scheme://host:port/path``, no
        credentials or query); ``None`` for the provider's default URL or no URL at all."""
        if not self.base_url:
            return None
        mine = endpoint(self.base_url)
        if self.default_base_url and mine == endpoint(self.default_base_url):
            return None
        return mine

    def identity(self) -> dict[str, Any]:
        """What identifies this engine's outputs in a cache key (no credentials).

        Engine name, model and kind; the options given (none: the key of earlier versions);
        and the endpoint when the engine talks to a server other than the provider's default:
        the same model name on another server is another model. Override to add what else
        changes the replies (keep what is there, add keys).
        """
        ident: dict[str, Any] = {"engine": self.name, "model": self.model, "kind": self.kind}
        if self.options:
            ident["options"] = {k: self.options[k] for k in sorted(self.options)}
        where = self.endpoint()
        if where is not None:
            ident["endpoint"] = where
        return ident

    def __repr__(self) -> str:
        base = f", base_url={self.base_url!r}" if self.base_url else ""
        return f"{type(self).__name__}(model={self.model!r}{base}, api_key=***)"

    def __reduce__(self) -> tuple[Any, ...]:
        raise TypeError("engines hold credentials and are not picklable; build one per process")


def _convert_option(engine: str, key: str, value: Any, want: type) -> Any:
    if isinstance(value, want) and not (want is int and isinstance(value, bool)):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            if want is bool and text.lower() in (
                "1",
                "true",
                "yes",
                "on",
                "0",
                "false",
                "no",
                "off",
            ):
                return text.lower() in ("1", "true", "yes", "on")
            if want in (int, float):
                return want(text)
            if want in (dict, list):
                import json

                parsed = json.loads(text)
                if isinstance(parsed, want):
                    return parsed
        except ValueError:
            pass
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    raise ConfigError(
        f"engine {engine!r} option {key!r}: expected {want.__name__}"
        + (" (JSON)" if want in (dict, list) else "")
        + f", got {value!r}"
    )
