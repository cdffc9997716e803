"""How many modules a setting and a document cross on their way to the HTTP call: a tiny
``instructgen from-dir`` run in this process, against the local OpenAI-format server
(benchmarks/_server.py), traced with ``sys.setprofile``. Prints JSON.

    python benchmarks/hops.py

Two paths, each the distinct instructgen modules (core and plugins) the value reaches on its
way, in the order it first reaches them (``Path_`` says which count):

- ``concurrency``: ``--concurrency 29`` from the command line to the engine's HTTP call. A
  function carries it when one of its arguments is the value, or holds it (a mapping, a
  dataclass or an object whose attributes hold it, two levels deep: ``**common``,
  ``DispatchConfig``, a ``Dispatcher``). The chain ends at the first call of the engine's HTTP
  method (``instructgen_openai``'s ``_call``), and takes in the modules on the call stack between
  the innermost carrier and that call.
- ``document``: one file, from discovery to the first request about it: a function carries it
  when an argument holds its name or its text (a string, a path, a ``Found``, a result, a chunk,
  a request: four levels deep). The chain ends at the engine's HTTP call that sends it.

Extraction runs in this process (``--workers 0``) so that it is traced too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

HERE = Path(__file__).resolve().parent
CONCURRENCY = 29  # a value no other setting of the run has
MARK = "zqxhopsdoc"  # the traced document's name and a word of its text
OURS = ("instructgen", "instructgen_")
HTTP = ("instructgen_openai", "_call")


def _module(frame: Any) -> str | None:
    name = frame.f_globals.get("__name__", "")
    return name if isinstance(name, str) and name.startswith(OURS) else None


def _children(v: Any) -> list[Any]:
    if isinstance(v, Mapping):
        return [*list(v.keys())[:64], *list(v.values())[:64]]
    if isinstance(v, (list, tuple, set, frozenset)):
        return list(v)[:64]
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return [getattr(v, f.name, None) for f in dataclasses.fields(v)]
    d = getattr(v, "__dict__", None)
    if isinstance(d, dict) and not isinstance(v, type):
        return list(d.values())[:64]
    return []


def _has_concurrency(v: Any, depth: int = 2) -> bool:
    if type(v) is int:
        return v == CONCURRENCY
    if depth == 0 or isinstance(v, (str, bytes, float, bool, type(None))):
        return False
    return any(_has_concurrency(c, depth - 1) for c in _children(v))


def _has_document(v: Any, depth: int = 4) -> bool:
    if isinstance(v, str):
        return MARK in v
    if isinstance(v, bytes):
        return MARK.encode() in v
    if isinstance(v, PurePath):
        return MARK in str(v)
    if depth == 0 or isinstance(v, (int, float, bool, type(None))):
        return False
    return any(_has_document(c, depth - 1) for c in _children(v))


def _arguments(frame: Any) -> list[Any]:
    code = frame.f_code
    n = code.co_argcount + code.co_kwonlyargcount
    n += bool(code.co_flags & 0x04) + bool(code.co_flags & 0x08)  # *args, **kwargs
    return [frame.f_locals.get(name) for name in code.co_varnames[:n]]


class Path_:
    """One traced path, as a graph of modules: an edge A → B when a function of A that got the
    value calls a function of B that gets it (the nearest caller on the stack holding it), or
    a function of A returns (or yields) the value to a function of B. The path is every module
    the value reaches from ``origin`` and that leads on to the engine's HTTP call: helpers
    that look at the value and lead nowhere (a cache key, a token count, a progress line) are
    not on it."""

    def __init__(self, carries: Any, origin: str) -> None:
        self.carries = carries
        self.origin = origin
        self.first: dict[str, str] = {}  # module → its first function that got the value
        self.edges: dict[str, set[str]] = {}
        self.frames: dict[int, tuple[Any, str]] = {}  # id(frame) → (code, module)
        self.target: str | None = None
        self.returned: dict[int, str] = {}  # id(value) → the module that returned it

    @property
    def done(self) -> bool:
        return self.target is not None

    def _carrier(self, f: Any) -> str | None:
        rec = self.frames.get(id(f))
        return rec[1] if rec is not None and rec[0] is f.f_code else None

    def _edge(self, a: str, b: str) -> None:
        if a != b:
            self.edges.setdefault(a, set()).add(b)

    def _holds(self, value: Any, depth: int | None = None) -> bool:
        try:
            return bool(self.carries(value) if depth is None else self.carries(value, depth))
        except Exception:  # an object that refuses to be looked at carries nothing
            return False

    def _holding(self, f: Any) -> list[int]:
        """The ids of ``f``'s local variables that hold the value, at most two levels down
        (a list of files, a file's result; not a progress display that shows its name)."""
        try:
            return [id(v) for v in list(f.f_locals.values()) if self._holds(v, depth=2)]
        except Exception:
            return []

    def call(self, module: str, frame: Any) -> bool:
        if not any(self._holds(a) for a in _arguments(frame)):
            return False
        self.first.setdefault(module, frame.f_code.co_name)
        self.frames[id(frame)] = (frame.f_code, module)
        # the caller: the nearest function on the stack that holds the value (an argument or
        # a local variable, e.g. a list a thread handed back)
        f = frame.f_back
        while f is not None:
            parent = _module(f)
            if parent is not None:
                held = self._holding(f)
                if held or self._carrier(f) is not None:
                    self.first.setdefault(parent, f.f_code.co_name)
                    self._edge(parent, module)
                    for i in held:  # handed back by a function run in another thread
                        if i in self.returned:
                            self._edge(self.returned[i], parent)
                    break
            f = f.f_back
        return True

    def ret(self, module: str, frame: Any, value: Any) -> None:
        if value is None or not self._holds(value):
            return
        f = frame.f_back
        while f is not None:
            caller = _module(f)
            if caller is not None:
                if caller != module:
                    self.first.setdefault(module, frame.f_code.co_name)
                    self.first.setdefault(caller, f.f_code.co_name)
                    self.frames[id(f)] = (f.f_code, caller)
                    self._edge(module, caller)
                return
            f = f.f_back
        self.first.setdefault(module, frame.f_code.co_name)
        self.returned[id(value)] = module  # to whoever picks it up (asyncio.to_thread)

    def reach(self, frame: Any) -> None:
        """The HTTP call: the modules on the stack down to the innermost carrier lead to it."""
        target = _module(frame)
        assert target is not None
        below = target
        f = frame.f_back
        while f is not None:
            m = _module(f)
            if m is not None and m != below:
                self.first.setdefault(m, f.f_code.co_name)
                self._edge(m, below)
                below = m
                if self._carrier(f) is not None:
                    break
            f = f.f_back
        self.first.setdefault(target, frame.f_code.co_name)
        self.target = target

    def modules(self) -> list[str]:
        """The modules the value reaches from the origin and from which it goes on to the HTTP
        call, in the order the value first reached them."""
        if self.target is None:
            return []

        def reach(start: str, edges: dict[str, set[str]]) -> set[str]:
            seen, todo = {start}, [start]
            while todo:
                for nxt in edges.get(todo.pop(), ()):
                    if nxt not in seen:
                        seen.add(nxt)
                        todo.append(nxt)
            return seen

        back: dict[str, set[str]] = {}
        for x, ys in self.edges.items():
            for y in ys:
                back.setdefault(y, set()).add(x)
        on = reach(self.origin, self.edges) & reach(self.target, back)
        return [m for m in self.first if m in on]

    def to_dict(self) -> dict[str, Any]:
        chain = self.modules()
        return {
            "modules": chain,
            "count": len(chain),
            "first_function": {m: self.first[m] for m in chain},
            "looked_at_only": [m for m in self.first if m not in chain],
            "reached_http_call": self.done,
            "edges": {a: sorted(b) for a, b in self.edges.items()},
        }


def trace(argv: list[str]) -> dict[str, Any]:
    from instructgen.cli import main

    conc = Path_(_has_concurrency, origin="instructgen.cli._common")
    doc = Path_(_has_document, origin="instructgen.documents.discovery")
    lock = threading.Lock()

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event not in ("call", "return") or (conc.done and doc.done):
            return
        module = _module(frame)
        if module is None:
            return
        with lock:
            for p in (conc, doc):
                if p.done:
                    continue
                if event == "return":
                    p.ret(module, frame, arg)
                else:
                    got = p.call(module, frame)
                    # the setting reaches the call through the dispatcher's limits; the
                    # document, in the request the call sends
                    if (module, frame.f_code.co_name) == HTTP and (got or p is conc):
                        p.reach(frame)

    sys.setprofile(profile)
    threading.setprofile(profile)
    try:
        quiet = io.StringIO()
        with (
            contextlib.redirect_stdout(quiet),
            contextlib.redirect_stderr(quiet),
            contextlib.suppress(SystemExit),
        ):
            main(argv)
    finally:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]
    return {"concurrency": conc.to_dict(), "document": doc.to_dict()}


def main() -> None:
    server = subprocess.Popen(
        [sys.executable, str(HERE / "_server.py"), "0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        with tempfile.TemporaryDirectory() as tmp:
            docs = Path(tmp) / "docs"
            docs.mkdir()
            (docs / f"{MARK}.txt").write_text(
                f"The {MARK} report describes how a small town planned its water supply. " * 20,
                encoding="utf-8",
            )
            os.environ["OPENAI_API_KEY"] = "sk-hops"
            result = trace(
                [
                    "from-dir",
                    str(docs),
                    "--engine",
                    "openai",
                    "--base-url",
                    f"http://127.0.0.1:{port}/v1",
                    "--concurrency",
                    str(CONCURRENCY),
                    "--workers",
                    "0",
                    "--samples-per-chunk",
                    "1",
                    "--out",
                    str(Path(tmp) / "out"),
                    "--json",
                ]
            )
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=10)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
