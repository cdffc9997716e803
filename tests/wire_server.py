"""A local HTTP server that speaks the OpenAI, Cohere v2 and AI21 wire formats.

Tests point the real SDKs at it (no network, no keys). It can inject latency and faults
(429 with Retry-After, 500, connection resets, malformed JSON, truncated output, 401) and counts
requests per body hash and per API key, so tests can prove that nothing finished is paid twice.

    server = WireServer().start()
    server.responder = lambda call: "text for " + call.prompt[:20]
    server.inject("429", times=2, retry_after=0.1)
    ...
    server.stop()

``overload(share, retry_after)`` answers a random share of requests 429 with Retry-After (an
overloaded provider); ``limit(per_minute, headers=True)`` enforces a true per-minute limit with
``x-ratelimit-*`` headers (or only ``retry-after-ms``); ``answered_429`` and ``max_in_flight``
count what happened.

Completion requests may carry ``prompt`` as a list, as OpenAI's legacy completions take it:
the responder is asked once per prompt (a ``WireCall`` with that prompt alone), choices come
back with ``index`` = prompt position × n + choice and the usage is the sum. Each prompt
answered counts in ``successes`` under the hash of the body it would have alone, so
``paid_twice()`` spans lists and single requests; ``prompts_answered`` counts those answered
in lists.
``shuffle_choices`` returns a list's choices out of order; ``drop_choices(call)`` (a
predicate on the per-prompt call) leaves a prompt's choices out of the reply;
``refuse_lists`` answers lists with HTTP 400 (a server that takes one prompt a request);
``first_prompt_only`` answers only a list's first prompt (servers that did so).

``kill()`` plays a server that died: the port is closed and every open connection is cut, so
requests in flight fail and new ones are refused; ``revive()`` listens on the same port again
with the counters kept. ``closed_port()`` is a local port nothing listens on.

Usage counts whitespace-separated words unless ``tokenizer`` is set: with
``server.tokenizer = openai_tokenizer()`` it bills prompts and replies as OpenAI does (tiktoken,
chat messages framed as OpenAI's cookbook counts them).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = (
    "429",
    "500",
    "503",
    "408",
    "reset",
    "malformed",
    "truncate",
    "401",
    "400",
    "hang",
    "huge",
    "endless",
    "hugejson",
    "gzipbomb",
)
# Oversized replies (HTTP 200): "huge" declares and sends ``huge_bytes`` of padding (not JSON);
# "endless" sends a chunked body that never ends (until the client hangs up); "hugejson" a
# valid reply in the provider's format whose text has ``huge_bytes`` characters, chunked (no
# Content-Length, so only counting while reading can stop it); "gzipbomb" the same reply
# gzip-compressed (a Content-Length of a few kilobytes). ``body_bytes_sent`` counts what they
# wrote (compressed for the bomb).


@dataclass
class WireCall:
    provider: str  # "openai" | "cohere" | "ai21" | "anthropic"
    kind: str  # "chat" | "completion"
    path: str
    body: dict[str, Any]
    api_key: str | None
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def prompt(self) -> str:
        if self.kind == "completion":
            p = self.body.get("prompt", "")
            return p if isinstance(p, str) else "\n\n".join(p)
        return "\n\n".join(_content_text(m.get("content")) for m in self.messages)

    @property
    def key(self) -> str:
        return body_hash(self.body)

    def one_per_prompt(self) -> list[WireCall]:
        """The calls this one stands for: a completion request whose ``prompt`` is a list is
        one call per prompt, as each would have been sent alone."""
        prompts = self.body.get("prompt") if self.kind == "completion" else None
        if not isinstance(prompts, list):
            return [self]
        return [
            WireCall(self.provider, self.kind, self.path, {**self.body, "prompt": p}, self.api_key)
            for p in prompts
        ]


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(c.get("text", "") for c in content if isinstance(c, dict))
    return ""


def body_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def default_responder(call: WireCall) -> str:
    digest = hashlib.sha256(call.prompt.encode()).hexdigest()[:8]
    return f"Answer {digest} to a prompt of {len(call.prompt)} characters."


@dataclass
class Fault:
    kind: str
    times: int
    retry_after: float | None = None
    match: Callable[[WireCall], bool] | None = None


class WireServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.responder: Callable[[WireCall], str | list[str]] = default_responder
        self.latency = 0.0
        self.faults: list[Fault] = []
        self.calls: list[WireCall] = []
        self.successes: Counter[str] = Counter()
        self.by_api_key: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.model_seen: Counter[str] = Counter()
        self.transcriptions: list[bytes] = []  # multipart bodies sent to /v1/audio/...
        self.transcription_key = "sk-test-DO-NOT-LEAK-0123456789"
        self.transcription_text = "A transcript from the transcription API."
        self.transcription_numbered = False  # reply "piece N" to the N-th upload instead
        # response_format types answered with HTTP 400, as servers without them do
        # (e.g. {"json_schema"}: a server with JSON mode but no schemas).
        self.reject_response_formats: set[str] = set()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self.port = port
        # Rate limiting: an overloaded server answers a random share of requests 429 with
        # Retry-After; a true limit allows so many requests a minute (a token bucket holding a
        # second's worth) and answers the rest 429 at once, with x-ratelimit headers or not.
        self.overload_share = 0.0
        self.overload_retry_after = 1.0
        self._rng = random.Random(1)
        self.limit_per_minute: int | None = None
        self.ratelimit_headers = True
        self._bucket = 0.0
        self._bucket_at = 0.0
        self.answered_429 = 0
        self.in_flight = 0
        self.max_in_flight = 0
        # Oversized replies: their size, and the bytes each kind managed to send.
        self.huge_bytes = 20 * 1024 * 1024
        self.endless_max = 2 * 1024 * 1024 * 1024  # a runaway test still ends
        self.endless_rate: float | None = None  # bytes a second of the endless body
        self.body_bytes_sent: Counter[str] = Counter()
        # Counts a text's tokens for the usage in replies; None: whitespace-separated words.
        self.tokenizer: Callable[[str], int] | None = None
        # Lists of prompts (completions): how they are answered, and how many were.
        self.shuffle_choices = False
        self.drop_choices: Callable[[WireCall], bool] | None = None
        self.refuse_lists = False
        self.first_prompt_only = False
        self.prompts_answered = 0
        self.list_sizes: list[int] = []  # prompts in each list request that arrived

    def usage(self, call: WireCall, texts: list[str]) -> tuple[int, int]:
        """The prompt and completion tokens billed for ``call`` answered with ``texts``."""
        count = self.tokenizer
        if count is None:
            return max(1, len(call.prompt.split())), sum(max(1, len(t.split())) for t in texts)
        if call.kind == "chat":  # 3 a message, its role, its content; 3 priming the reply
            prompt = sum(
                3 + count(str(m.get("role", ""))) + count(_content_text(m.get("content")))
                for m in call.messages
            )
            prompt += 3
        else:
            prompt = count(call.prompt)
        return max(1, prompt), sum(count(t) for t in texts)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> WireServer:
        server = self

        base = self.handler_base() or _Handler

        class Handler(base):  # type: ignore[valid-type,misc]
            owner = server

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 512

            def server_bind(self) -> None:
                self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                super().server_bind()

            def handle_error(self, request: Any, client_address: Any) -> None:
                # A client that hung up (a cancelled request) is not a server error; anything
                # else is printed as usual.
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self._httpd = Server((self.host, self.port), Handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def kill(self) -> None:
        """Die: stop listening (new connections are refused) and cut every open connection
        (requests in flight fail; their answers are never sent or counted)."""
        self.stop()
        with self._lock:
            conns, self._connections = list(self._connections), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def revive(self) -> WireServer:
        """Listen again on the same port, keeping every counter."""
        return self.start()

    def __enter__(self) -> WireServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def handler_base(self) -> type[BaseHTTPRequestHandler] | None:
        """The request handler class to serve with (subclasses add routes: batch_server.py)."""
        return None

    # -- addresses for the SDKs -------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url  # the SDKs add /v1/messages

    @property
    def cohere_base_url(self) -> str:
        return self.url

    @property
    def ai21_api_host(self) -> str:
        return f"{self.url}/studio/v1"

    def base_url_for(self, engine_name: str) -> str:
        if engine_name.startswith("openai"):
            return self.openai_base_url
        if engine_name == "cohere":
            return self.cohere_base_url
        if engine_name == "ai21":
            return self.ai21_api_host
        raise ValueError(engine_name)

    # -- faults and counters --------------------------------------------------------------

    def inject(
        self,
        kind: str,
        *,
        times: int = 1,
        retry_after: float | None = None,
        match: Callable[[WireCall], bool] | None = None,
    ) -> None:
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; known: {FAULTS}")
        with self._lock:
            self.faults.append(Fault(kind, times, retry_after, match))

    def reset_counts(self) -> None:
        with self._lock:
            self.list_sizes.clear()
            self.prompts_answered = 0
            self.calls.clear()
            self.successes.clear()
            self.by_api_key.clear()
            self.failures.clear()

    @property
    def requests(self) -> list[WireCall]:
        return list(self.calls)

    @property
    def prompt_calls(self) -> list[WireCall]:
        """Every prompt sent, as the call it would have been alone (a list of prompts in one
        completion request counts once per prompt): what a run asked for, however the
        dispatcher grouped it on the wire."""
        with self._lock:
            return [one for call in self.calls for one in call.one_per_prompt()]

    def success_count_by_request(self) -> dict[str, int]:
        return dict(self.successes)

    def paid_twice(self) -> list[str]:
        return [k for k, n in self.successes.items() if n > 1]

    def overload(self, share: float, retry_after: float = 1.0, seed: int = 1) -> None:
        """Answer ``share`` of the requests (at random, seeded) 429 with ``Retry-After``."""
        self.overload_share, self.overload_retry_after = share, retry_after
        self._rng = random.Random(seed)

    def limit(self, per_minute: int, *, headers: bool = True) -> None:
        """Allow ``per_minute`` requests a minute; the rest get 429 (with
        ``x-ratelimit-remaining-requests: 0`` unless ``headers=False``) and ``retry-after-ms``."""
        self.limit_per_minute, self.ratelimit_headers = per_minute, headers
        self._bucket, self._bucket_at = per_minute / 60, time.monotonic()

    def _overloaded(self) -> bool:
        with self._lock:
            hit = bool(self.overload_share) and self._rng.random() < self.overload_share
            self.answered_429 += hit
        return hit

    def _over_limit(self) -> dict[str, str] | None:
        if not self.limit_per_minute:
            return None
        rate = self.limit_per_minute / 60
        with self._lock:
            now = time.monotonic()
            self._bucket = min(rate, self._bucket + (now - self._bucket_at) * rate)
            self._bucket_at = now
            if self._bucket >= 1:
                self._bucket -= 1
                return None
            self.answered_429 += 1
            wait_ms = max(1, int((1 - self._bucket) / rate * 1000))
        headers = {"retry-after-ms": str(wait_ms)}
        if self.ratelimit_headers:
            headers["x-ratelimit-limit-requests"] = str(self.limit_per_minute)
            headers["x-ratelimit-remaining-requests"] = "0"
            headers["x-ratelimit-reset-requests"] = f"{wait_ms}ms"
        return headers

    def _take_fault(self, call: WireCall) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and (fault.match is None or fault.match(call)):
                    fault.times -= 1
                    return fault
        return None


class _Handler(BaseHTTPRequestHandler):
    owner: WireServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # silence
        pass

    def setup(self) -> None:
        super().setup()
        with self.owner._lock:
            self.owner._connections.add(self.connection)

    def finish(self) -> None:
        with self.owner._lock:
            self.owner._connections.discard(self.connection)
        with contextlib.suppress(OSError):  # the connection was cut by kill()
            super().finish()

    def do_POST(self) -> None:
        srv = self.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.split("?")[0].endswith("/v1/audio/transcriptions"):
            with srv._lock:
                srv.transcriptions.append(raw)
            auth = self.headers.get("Authorization", "")
            if auth != "Bearer " + srv.transcription_key:
                self._json(401, {"error": {"message": "invalid api key"}})
            elif srv.transcription_numbered:
                self._json(200, {"text": f"piece {len(srv.transcriptions)}."})
            else:
                self._json(200, {"text": srv.transcription_text})
            return
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._json(400, {"error": {"message": "invalid JSON body"}})
            return
        path = self.path.split("?")[0]
        auth = self.headers.get("Authorization", "")
        api_key = auth[7:] if auth.startswith("Bearer ") else None
        messages = list(body.get("messages") or [])
        if path.endswith("/v1/messages"):  # Anthropic: x-api-key, system apart from messages
            provider, kind = "anthropic", "chat"
            api_key = self.headers.get("x-api-key")
            if body.get("system"):
                messages.insert(0, {"role": "system", "content": body["system"]})
        elif path.endswith("/v1/chat/completions") and not path.startswith("/studio"):
            provider, kind = "openai", "chat"
        elif path.endswith("/v1/completions"):
            provider, kind = "openai", "completion"
        elif path.endswith("/v2/chat"):
            provider, kind = "cohere", "chat"
        elif path.startswith("/studio/v1") and path.endswith("/chat/completions"):
            provider, kind = "ai21", "chat"
        else:
            self._json(404, {"error": {"message": f"no route {path}"}})
            return
        call = WireCall(provider, kind, path, body, api_key, messages)
        with srv._lock:
            srv.calls.append(call)
            srv.model_seen[str(body.get("model"))] += 1
            if kind == "completion" and isinstance(body.get("prompt"), list):
                srv.list_sizes.append(len(body["prompt"]))
        limited = srv._over_limit()
        if limited is not None:  # a true limit answers at once
            self._json(429, {"error": {"message": "rate limit reached"}}, limited)
            return
        with srv._lock:
            srv.in_flight += 1
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
        try:
            if srv.latency:
                time.sleep(srv.latency)
        finally:
            with srv._lock:
                srv.in_flight -= 1
        if srv._overloaded():
            headers = {"Retry-After": f"{srv.overload_retry_after:g}"}
            self._json(429, {"error": {"message": "overloaded, retry later"}}, headers)
            return
        fmt = body.get("response_format")
        if isinstance(fmt, dict) and fmt.get("type") in srv.reject_response_formats:
            with srv._lock:
                srv.failures["response_format"] += 1
            msg = f"response_format type {fmt.get('type')!r} is not supported by this server"
            self._json(400, {"error": {"message": msg, "type": "invalid_request_error"}})
            return
        fault = srv._take_fault(call)
        truncate = False
        if fault is not None:
            with srv._lock:
                srv.failures[fault.kind] += 1
            if fault.kind == "truncate":
                truncate = True
            else:
                self._fault(fault, call)
                return
        if api_key in (None, "", "invalid"):
            msg = f"Incorrect API key provided: {api_key}"  # providers echo what they got
            self._json(401, _error_body(call, msg, "authentication_error"))
            return
        if call.kind == "completion" and isinstance(body.get("prompt"), list):
            self._prompt_list(call, body["prompt"], truncate, api_key)
            return
        out = srv.responder(call)
        texts = [out] if isinstance(out, str) else list(out)
        n = int(body.get("n") or 1)
        if len(texts) < n:
            texts = (texts * n)[:n]
        finish = "length" if truncate else "stop"
        if truncate:
            texts = [t[: max(1, len(t) // 2)] for t in texts]
        prompt_tokens, completion_tokens = srv.usage(call, texts)
        if self._json(200, _reply(call, texts, finish, prompt_tokens, completion_tokens)):
            with srv._lock:  # counted once the answer reached the socket
                srv.successes[call.key] += 1
                srv.by_api_key[api_key or ""] += 1

    def _prompt_list(
        self, call: WireCall, prompts: list[Any], truncate: bool, api_key: str | None
    ) -> None:
        """A completion request with ``prompt`` as a list, answered as OpenAI does."""
        srv = self.owner
        if srv.refuse_lists:
            msg = "'prompt' must be a string"  # as servers without list prompts answer
            self._json(400, {"error": {"message": msg, "type": "invalid_request_error"}})
            return
        n = int(call.body.get("n") or 1)
        finish = "length" if truncate else "stop"
        choices: list[dict[str, Any]] = []
        pt = ct = 0
        answered: list[str] = []
        for position, prompt in enumerate(prompts):
            one = WireCall(
                call.provider, call.kind, call.path, {**call.body, "prompt": prompt}, api_key
            )
            if srv.first_prompt_only and position > 0:
                continue
            out = srv.responder(one)
            texts = [out] if isinstance(out, str) else list(out)
            if len(texts) < n:
                texts = (texts * n)[:n]
            if truncate:
                texts = [t[: max(1, len(t) // 2)] for t in texts]
            p, c = srv.usage(one, texts)
            pt, ct = pt + p, ct + c
            if srv.drop_choices is not None and srv.drop_choices(one):
                continue
            answered.append(one.key)
            choices += [
                {"index": position * n + j, "text": t, "finish_reason": finish, "logprobs": None}
                for j, t in enumerate(texts[:n])
            ]
        if srv.shuffle_choices:
            random.Random(len(choices)).shuffle(choices)
        reply = {
            "id": "r-" + call.key,
            "object": "text_completion",
            "created": 0,
            "model": call.body.get("model", "model"),
            "choices": choices,
            "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct},
        }
        if self._json(200, reply):
            with srv._lock:
                for key in answered:
                    srv.successes[key] += 1
                srv.prompts_answered += len(answered)
                srv.by_api_key[api_key or ""] += 1

    def _fault(self, fault: Fault, call: WireCall) -> None:
        kind = fault.kind
        if kind == "reset":
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            self.connection.close()
            self.close_connection = True
            return
        if kind == "hang":
            time.sleep(fault.retry_after or 30)
            self.close_connection = True
            return
        if kind in ("huge", "endless", "hugejson", "gzipbomb"):
            self._oversized(kind, call)
            return
        if kind == "malformed":
            payload = b'{"choices": [ this is not json'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        status = int(kind)
        key = self.headers.get("Authorization", "")[7:] or self.headers.get("x-api-key", "")
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = f"{fault.retry_after:g}"
        messages = {
            429: "rate limit exceeded",
            500: "internal error",
            503: "overloaded",
            408: "timeout",
            401: f"Incorrect API key provided: {key}",
            400: f"bad request from key {key}",
        }
        self._json(status, _error_body(call, messages[status], f"http_{status}"), headers)

    def _oversized(self, kind: str, call: WireCall) -> None:
        srv = self.owner
        self.close_connection = True
        piece = 64 * 1024
        chunked = kind in ("endless", "hugejson")
        encoding: str | None = None
        if kind == "huge":
            body: bytes | None = None
            length: int | None = srv.huge_bytes
        elif kind == "endless":
            body, length = None, None
        else:
            text = "All work and no play makes a reply long. " * (srv.huge_bytes // 41 + 1)
            reply = _reply(call, [text[: srv.huge_bytes]], "stop", 1, srv.huge_bytes // 4)
            body = json.dumps(reply).encode()
            if kind == "gzipbomb":
                import gzip

                body, encoding = gzip.compress(body, compresslevel=9), "gzip"
            length = None if chunked else len(body)
        sent = 0
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            if encoding:
                self.send_header("Content-Encoding", encoding)
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(length))
            self.end_headers()
            offset = 0
            while True:
                if body is not None:
                    data = body[offset : offset + piece]
                    offset += len(data)
                    if not data:
                        break
                elif kind == "huge":
                    data = b" " * min(piece, srv.huge_bytes - sent)
                    if not data:
                        break
                else:  # endless
                    if sent >= srv.endless_max or srv._httpd is None:
                        break
                    data = b"x" * piece
                    if srv.endless_rate:
                        time.sleep(piece / srv.endless_rate)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                sent += len(data)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client hung up: what it refused to read
            pass
        finally:
            with srv._lock:
                srv.body_bytes_sent[kind] += sent

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> bool:
        payload = json.dumps(obj).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return False  # the client is gone (killed or timed out)
        return True


def _error_body(call: WireCall, message: str, kind: str) -> dict[str, Any]:
    if call.provider == "anthropic":
        return {"type": "error", "error": {"type": kind, "message": message}}
    error = (
        {"message": message, "type": "auth"}
        if kind == "authentication_error"
        else {"message": message}
    )
    return {"error": error, "message": message}


def openai_tokenizer(model: str = "gpt-4o-mini") -> Callable[[str], int]:
    """tiktoken's encoding of ``model``, loaded from the vocabularies LiteLLM ships (tests have
    no network to download them); raises LookupError when tiktoken or LiteLLM is missing."""
    import importlib.util
    import os
    from pathlib import Path

    spec = importlib.util.find_spec("litellm")
    if spec is None or importlib.util.find_spec("tiktoken") is None:
        raise LookupError("counting OpenAI tokens here needs tiktoken and litellm installed")
    folder = Path(next(iter(spec.submodule_search_locations or []))) / "litellm_core_utils"
    import tiktoken

    before = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = str(folder / "tokenizers")
    try:
        enc = tiktoken.encoding_for_model(model)
    finally:
        if before is None:
            del os.environ["TIKTOKEN_CACHE_DIR"]
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = before
    return lambda text: len(enc.encode(text, disallowed_special=()))


def closed_port(host: str = "127.0.0.1") -> int:
    """A local port with nothing listening on it: connecting is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _reply(call: WireCall, texts: list[str], finish: str, pt: int, ct: int) -> dict[str, Any]:
    model = call.body.get("model", "model")
    rid = "r-" + call.key
    if call.provider == "anthropic":  # the Messages API: one message, content blocks
        return {
            "id": "msg_" + call.key,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": texts[0]}],
            "stop_reason": "max_tokens" if finish == "length" else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": pt, "output_tokens": ct},
        }
    if call.provider == "openai" and call.kind == "chat":
        return {
            "id": rid,
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": t},
                    "finish_reason": finish,
                }
                for i, t in enumerate(texts)
            ],
            "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct},
        }
    if call.provider == "openai":
        return {
            "id": rid,
            "object": "text_completion",
            "created": 0,
            "model": model,
            "choices": [
                {"index": i, "text": t, "finish_reason": finish, "logprobs": None}
                for i, t in enumerate(texts)
            ],
            "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct},
        }
    if call.provider == "cohere":
        return {
            "id": rid,
            "finish_reason": "MAX_TOKENS" if finish == "length" else "COMPLETE",
            "message": {"role": "assistant", "content": [{"type": "text", "text": texts[0]}]},
            "usage": {
                "billed_units": {"input_tokens": pt, "output_tokens": ct},
                "tokens": {"input_tokens": pt, "output_tokens": ct},
            },
        }
    return {  # ai21
        "id": rid,
        "model": model,
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": finish}
            for i, t in enumerate(texts)
        ],
        "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct},
    }


# -- question/answer reply styles ---------------------------------------------------------------
# How models really answer the document Q/A prompt. ``server.responder = qa_responder(style)``
# answers Q/A prompts in that style and everything else with ``fallback``.

QA_STYLES = ("asked", "preamble", "bold", "numbered", "json", "short", "nothing", "mixed")
_MIXED = (
    ("asked", 40),
    ("preamble", 12),
    ("bold", 12),
    ("numbered", 12),
    ("json", 12),
    ("short", 8),
    ("nothing", 4),
)


def _qa_wanted(call: WireCall) -> bool:
    return "different question-answer pairs" in call.prompt


def _asks_json(call: WireCall) -> bool:
    return "response_format" in call.body or "Reply with a JSON object" in call.prompt


def qa_pairs_for(call: WireCall, n: int) -> list[tuple[str, str]]:
    """n pairs, unique to the prompt (a follow-up gets new questions)."""
    import re

    name = re.search(r"^Document: (.+)$", call.prompt, re.M)
    part = re.search(r"^Part (\d+) of", call.prompt, re.M)
    doc = name.group(1) if name else "the document"
    digest = hashlib.sha256(call.prompt.encode("utf-8", "surrogatepass")).hexdigest()[:6]
    return [
        (
            f"What does part {part.group(1) if part else 1} of {doc} say about point {digest}-{i}?",
            f"It explains point {digest}-{i} in detail.",
        )
        for i in range(1, n + 1)
    ]


def qa_reply_in(style: str, call: WireCall) -> str:
    """The reply a model writing in ``style`` gives to a Q/A prompt."""
    import re

    if style == "mixed":
        h = int(hashlib.sha256(call.prompt.encode("utf-8", "surrogatepass")).hexdigest(), 16)
        roll = h % sum(w for _, w in _MIXED)
        for chosen, weight in _MIXED:
            if roll < weight:
                style = chosen
                break
            roll -= weight
    m = re.search(r"Write (\d+) different question-answer pairs", call.prompt)
    n = int(m.group(1)) if m else 1
    if style == "short":
        n = n - 1 if n > 1 else n  # one pair fewer than asked
    pairs = qa_pairs_for(call, n)
    completion = call.kind == "completion" and call.prompt.rstrip().endswith("Q1:")
    if style == "nothing":
        return "I'm sorry, but I can't produce questions for this excerpt."
    if style == "json":
        items = [{"question": q, "answer": a} for q, a in pairs]
        return "Here are the pairs:\n```json\n" + json.dumps(items, indent=2) + "\n```"
    if style in ("asked", "short") and _asks_json(call):
        return json.dumps({"pairs": [{"question": q, "answer": a} for q, a in pairs]})
    if style in ("asked", "short", "preamble"):
        text = "\n".join(f"Q{i}: {q}\nA{i}: {a}" for i, (q, a) in enumerate(pairs, 1))
        if style == "preamble":
            return (
                f"Sure! Here are {n} question-answer pairs based on the excerpt:\n\n"
                + text
                + "\n\nLet me know if you would like more questions."
            )
        return text[len("Q1:") :] if completion and text else text
    if style == "bold":
        return "\n\n".join(f"**Q{i}:** {q}\n**A{i}:** {a}" for i, (q, a) in enumerate(pairs, 1))
    if style == "numbered":
        return "\n".join(f"{i}. Question: {q}\n   Answer: {a}" for i, (q, a) in enumerate(pairs, 1))
    raise ValueError(f"unknown reply style {style!r}; known: {QA_STYLES}")


def qa_responder(
    style: str, fallback: Callable[[WireCall], str | list[str]] = default_responder
) -> Callable[[WireCall], str | list[str]]:
    """A responder answering Q/A prompts in ``style`` (one of ``QA_STYLES``)."""
    if style not in QA_STYLES:
        raise ValueError(f"unknown reply style {style!r}; known: {QA_STYLES}")

    def respond(call: WireCall) -> str | list[str]:
        return qa_reply_in(style, call) if _qa_wanted(call) else fallback(call)

    return respond
