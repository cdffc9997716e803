"""List prompts: independent requests of the same parameters share one provider request.

Some providers take several prompts in one request: OpenAI's legacy completions and the
``/v1/completions`` of OpenAI-compatible servers (vLLM, llama.cpp server) take ``prompt`` as a
list and answer with choices whose ``index`` is the prompt's position × ``n`` + the choice's.
Quotas count requests, not prompts, so under a requests-per-minute limit a list of 20 prompts
multiplies the throughput by up to 20. An engine declares it (``max_prompts_per_request``
above 1, ``acomplete_prompts``); the dispatcher then hands every online request it may coalesce
(``Engine.accepts_prompt_list``) to ``PromptLists`` here:

- Requests that are equal but for their prompt (model, max_tokens, temperature, top_p, stop,
  n, seed, penalties, extra options, JSON schema) wait together, up to ``size`` of them (the
  smaller of ``--prompts-per-request`` and the engine's maximum). A list goes out when it is
  full, or ``delay`` seconds (a few ms) after its first request arrived if the dispatcher
  could send it at once; while every slot of the concurrency gate is taken (or the RPM bucket
  is empty, or a 429 paused the run) it keeps filling instead (for 2 s at most), so a busy
  run sends full lists and a quiet one loses only the delay.
- A list is one request to the dispatcher's limits: one slot of ``--concurrency``, one request
  of ``--rpm``, the sum of its prompts' tokens for ``--tpm``, the sum of their worst-case costs
  reserved against ``--max-cost``. A list that does not fit the budget is sent prompt by
  prompt, so each reserves its own cost.
- Each prompt's answer is stored in the cache under the key the same request sent alone has,
  so a rerun with another list size, or with ``--prompts-per-request 1``, finds every answer.
- Failures: a list is retried as a whole on errors worth retrying (429, 5xx, timeouts). On
  one that is not (HTTP 400: one prompt too long, or a server that refuses lists), each
  prompt is sent on its own, so only a bad prompt fails. When all of them then succeed, the
  server does not take lists: the rest of the run sends one prompt a request (logged once).
  A prompt whose choices are missing or malformed in the reply is sent again on its own; a
  server that answers only a list's first prompt is taken as one that does not take lists.
- Usage: the reply's usage is split between its prompts, the prompt tokens in proportion to
  each prompt's estimated prompt tokens (``tokens.prompt_tokens``), the completion tokens in
  proportion to the characters of each prompt's answers; shares are whole tokens that add
  up to the reply's (largest remainder). Each cached answer carries its share; the run's
  statistics count the reply's usage and cost once.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from instructgen.engine_contract import Completion, ListCompletion, Request, Usage
from instructgen.engine_errors import from_exception
from instructgen.errors import EngineError, ReplyTooLargeError
from instructgen.limits import with_timeout
from instructgen.reply_size import check_reply_size, reply_size_limit
from instructgen.tokens import prompt_tokens

if TYPE_CHECKING:
    from instructgen.dispatch import Dispatcher

log = logging.getLogger("instructgen.dispatch")


class SplitRequest(Exception):
    """Raised by ``Dispatcher._send`` for a request carrying several prompts that failed for
    good (``error``) or did not fit the budget (``error`` is ``None``): its prompts are to be
    sent on their own, so that one bad prompt fails alone and each reserves its own cost."""

    def __init__(self, error: EngineError | None) -> None:
        super().__init__(str(error) if error is not None else "over the budget")
        self.error = error


__all__ = ["PromptLists", "list_group", "split_usage"]

MAX_FILLING = 2.0
"""Seconds a list keeps filling at most while the dispatcher has no room for it: then it
waits for its turn like any request (requests the dispatcher sends alone may keep the gate
busy for longer)."""


def list_group(request: Request) -> str:
    """What requests sharing one provider request must have in common: everything but the
    prompt (and the sample index, which only tells cache entries apart)."""
    fields = request.canonical()
    del fields["messages"], fields["prompt"]
    return json.dumps(fields, sort_keys=True, ensure_ascii=False, default=str)


def _shares(total: int, weights: Sequence[int]) -> list[int]:
    """``total`` split in proportion to ``weights`` (equally when they are all 0): whole
    numbers that add up to ``total``, the remainder going to the largest fractions."""
    n = len(weights)
    if n == 0:
        return []
    if sum(weights) <= 0:
        weights = [1] * n
    whole = sum(weights)
    exact = [total * w / whole for w in weights]
    out = [int(x) for x in exact]
    order = sorted(range(n), key=lambda i: (out[i] - exact[i], i))
    for i in order[: total - sum(out)]:
        out[i] += 1
    return out


def split_usage(
    usage: Usage, requests: Sequence[Request], completions: Sequence[Completion | None]
) -> list[Usage]:
    """The share of a list reply's ``usage`` each prompt is charged: prompt tokens in
    proportion to the prompts' estimated tokens, completion tokens in proportion to the
    characters of each prompt's answers (``None``: no answer, no completion tokens)."""
    prompt = _shares(usage.prompt_tokens, [prompt_tokens(r) for r in requests])
    answered = [sum(len(t) for t in c.texts) if c is not None else 0 for c in completions]
    if not any(answered):  # empty answers: the completion tokens go to those that answered
        answered = [int(c is not None) for c in completions]
    completion = _shares(usage.completion_tokens, answered)
    return [Usage(p, c) for p, c in zip(prompt, completion, strict=True)]


@dataclass(eq=False)
class _Waiting:
    request: Request
    key: str
    future: asyncio.Future[Completion]
    urgent: bool = True  # something waits on it (``Dispatcher.complete``): it goes first


class PromptLists:
    """Coalesces a dispatcher's requests into lists of at most ``size`` prompts (see the
    module docstring)."""

    def __init__(self, dispatcher: Dispatcher, size: int, delay: float) -> None:
        self.dispatcher = dispatcher
        self.size = size
        self.delay = delay
        self.refused: str | None = None  # why the server was found not to take lists
        self._open: dict[str, list[_Waiting]] = {}
        self._since: dict[str, float] = {}  # when each open list's first request arrived
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._sending: set[asyncio.Task[None]] = set()

    def accepts(self, request: Request) -> bool:
        return self.refused is None and self.dispatcher.engine.accepts_prompt_list(request)

    async def complete(self, request: Request, key: str, *, urgent: bool = True) -> Completion:
        """``request``'s answer, sent in a list with others of its parameters."""
        loop = asyncio.get_running_loop()
        waiting = _Waiting(request, key, loop.create_future(), urgent)
        group = list_group(request)
        items = self._open.setdefault(group, [])
        if not items:
            self._since[group] = loop.time()
        items.append(waiting)
        if len(items) >= self.size:
            self._seal(group)
        elif group not in self._timers:
            self._timers[group] = loop.call_later(self.delay, self._due, group)
        return await waiting.future

    # -- when a list goes out ---------------------------------------------------------------------

    def _ready(self) -> bool:
        """Whether a list sealed now would be sent at once (else it had better keep filling)."""
        d = self.dispatcher
        if not d._limits().has_room():
            return False
        return d._rpm is None or d._rpm.available() >= 1

    def _due(self, group: str) -> None:
        self._timers.pop(group, None)
        if not self._open.get(group):
            return
        loop = asyncio.get_running_loop()
        waited = loop.time() - self._since.get(group, loop.time())
        if self._ready() or waited >= MAX_FILLING:
            self._seal(group)
        else:
            self._timers[group] = loop.call_later(max(self.delay, 0.001), self._due, group)

    def _seal(self, group: str) -> None:
        timer = self._timers.pop(group, None)
        if timer is not None:
            timer.cancel()
        self._since.pop(group, None)
        items = [w for w in self._open.pop(group, []) if not w.future.done()]
        if not items:
            return
        task = asyncio.ensure_future(self._run(items))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
        abandoned = functools.partial(self._abandoned, task, items)
        for w in items:
            w.future.add_done_callback(abandoned)

    def _abandoned(
        self, task: asyncio.Task[None], items: list[_Waiting], _: asyncio.Future[Completion]
    ) -> None:
        """Every request of a list was cancelled (the run no longer wants them): the list is
        cancelled too, as a request sent alone would be, unless the dispatcher halted (then
        answers in flight are kept: they are paid for)."""
        if task.done() or self.dispatcher._halted is not None:
            return
        if all(w.future.cancelled() for w in items):
            task.cancel()

    # -- sending ----------------------------------------------------------------------------------

    async def _run(self, items: list[_Waiting]) -> None:
        try:
            await self._send(items)
        except asyncio.CancelledError:
            for w in items:  # nobody is left to answer them
                w.future.cancel()
            raise

    async def _send(self, items: list[_Waiting]) -> None:
        if self.refused is not None or len(items) == 1:
            await self._singly(items)
            return

        d = self.dispatcher
        requests = [w.request for w in items]
        est_tokens = sum(prompt_tokens(r) + r.max_tokens * r.n for r in requests)
        answers: list[Completion | EngineError | None] = []

        def deliver(reply: ListCompletion) -> None:
            answers[:] = self._deliver(items, reply, est_tokens)

        async def call() -> ListCompletion:
            return await self._call(requests)

        try:
            await d._send(
                call,
                deliver,
                worst=sum(d.worst_case_cost(r) for r in requests),
                est_tokens=est_tokens,
                prompts=len(items),
                splittable=True,
                kind=(requests[0].max_tokens, 2),  # every list is one kind: see hedging.py
                urgent=any(w.urgent for w in items),
            )
        except SplitRequest as split:
            await self._split(items, split.error)
            return
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # given up, a wrong key, the budget, a halt: for all
            for w in items:
                _fail(w, copy.copy(exc))
            return
        missing = [w for w, a in zip(items, answers, strict=True) if a is None]
        for w, answer in zip(items, answers, strict=True):
            if isinstance(answer, Completion):
                _resolve(w, answer)
            elif answer is not None:
                _fail(w, answer)
        if not missing:
            return
        if len(missing) == len(items) - 1 and answers[0] is not None and self.refused is None:
            self._refuse(f"a list of {len(items)} prompts was answered for its first only")
        d.stats.retried += len(missing)
        log.info("%d prompts of a list had no answer in its reply: sent alone", len(missing))
        await self._singly(missing)

    async def _call(self, requests: list[Request]) -> ListCompletion:
        """The engine's answer to one list, within the timeout; the reply-size limit grows
        with the number of prompts (each prompt's answers are held to the limit alone)."""

        d = self.dispatcher
        with reply_size_limit(d.config.max_reply_bytes * len(requests)):
            reply = await with_timeout(d.engine.acomplete_prompts(requests), d.timeout)
        if not isinstance(reply, ListCompletion) or len(reply.completions) != len(requests):
            got = len(reply.completions) if isinstance(reply, ListCompletion) else reply
            raise from_exception(
                ValueError(f"{len(requests)} prompts sent, {got} answers returned"),
                engine=d.engine.name,
            )
        return reply

    def _deliver(
        self, items: list[_Waiting], reply: ListCompletion, est_tokens: int
    ) -> list[Completion | EngineError | None]:
        """Store each answered prompt under its own key (with its share of the usage) and
        account the reply once; ``None`` for prompts to send again."""

        d = self.dispatcher
        shares = split_usage(reply.usage, [w.request for w in items], reply.completions)
        out: list[Completion | EngineError | None] = []
        for w, c, usage in zip(items, reply.completions, shares, strict=True):
            if c is None:
                out.append(None)
                continue
            answer = Completion(c.texts, c.finish_reasons, usage, c.model or reply.model)
            try:
                check_reply_size(answer, d.config.max_reply_bytes, d.engine.name)
            except ReplyTooLargeError as exc:
                d.stats.failed += 1
                d.stats.errors[type(exc).__name__] += 1
                out.append(exc)
                continue
            if d.cache is not None:
                d._store(w.key, answer, raising=False)  # a failure halts the dispatcher
            out.append(answer)
        s = d.stats
        s.completed += sum(isinstance(a, Completion) for a in out)
        s.list_requests += 1
        s.usage = s.usage + reply.usage
        if d._price is not None:
            s.cost += d._price.cost(reply.usage)
        if d._tpm is not None and reply.usage.total_tokens:
            d._tpm.adjust(reply.usage.total_tokens - est_tokens)
        d._emit()
        return out

    async def _singly(self, items: Sequence[_Waiting]) -> list[Completion | BaseException]:
        """Each request sent on its own; its waiter gets the answer or the error."""
        d = self.dispatcher
        live = [w for w in items if not w.future.done()]
        results = await asyncio.gather(
            *(d._online(w.request, w.key, urgent=w.urgent) for w in live),
            return_exceptions=True,
        )
        for w, result in zip(live, results, strict=True):
            if isinstance(result, asyncio.CancelledError):
                w.future.cancel()
            elif isinstance(result, BaseException):
                _fail(w, result)
            else:
                _resolve(w, result)
        return list(results)

    async def _split(self, items: list[_Waiting], error: EngineError | None) -> None:
        """A list failed for good (``error``) or did not fit the budget (``None``): its prompts
        alone. When every one of them then succeeds, the server does not take lists."""
        results = await self._singly(items)
        if (
            error is not None
            and not isinstance(error, ReplyTooLargeError)
            and all(isinstance(r, Completion) for r in results)
        ):
            self._refuse(f"a list of {len(items)} prompts failed ({error}), each alone did not")

    def _refuse(self, why: str) -> None:
        if self.refused is not None:
            return
        self.refused = why
        log.warning(
            "%s: the server does not take several prompts in one request (%s): one prompt a "
            "request for the rest of the run (--prompts-per-request 1 says so at once)",
            self.dispatcher.engine.name,
            why,
        )
        for group in list(self._open):  # those waiting go out on their own
            self._seal(group)

    async def aclose(self) -> None:
        """The end of the run: nothing waits any more. Lists in flight are cancelled, unless
        the dispatcher halted (a full disk): their answers are paid for, so they are kept."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for items in self._open.values():
            for w in items:
                w.future.cancel()
        self._open.clear()
        self._since.clear()
        sending = list(self._sending)
        if self.dispatcher._halted is None:
            for task in sending:
                task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*sending, return_exceptions=True)


def _resolve(w: _Waiting, answer: Completion) -> None:
    if not w.future.done():
        w.future.set_result(answer)


def _fail(w: _Waiting, error: BaseException) -> None:
    if not w.future.done():
        w.future.set_exception(error)
