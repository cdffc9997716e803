"""The method contract: registering a method, its typed options, and the listing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

import instructgen
from instructgen import (
    ConfigError,
    Method,
    MethodOptions,
    MethodResult,
    Request,
    RequestEstimate,
    UnknownNameError,
    hookimpl,
)
from instructgen import plugins as pm


class Shout(Method):
    name = "shout"
    title = "Answers every seed instruction in capitals"
    paper = "none"
    inputs = ("tasks", "instructions")
    roles = ("answers",)

    @dataclass(frozen=True)
    class Options(MethodOptions):
        times: int = field(default=1, metadata={"help": "answers per instruction"})
        temperature: float = 0.0
        loud: bool = True
        style: Literal["plain", "bold"] = "plain"
        prefix: str | None = None

        def __post_init__(self) -> None:
            if self.times < 1:
                raise ValueError(f"times must be at least 1, got {self.times}")

    def estimate(self, source, size, *, chat):  # type: ignore[no-untyped-def]
        req = Request(prompt="x", max_tokens=10)
        return [RequestEstimate("answers", req, size.n, upper=size.n, role="answers")]

    async def run(self, source, ctx):  # type: ignore[no-untyped-def]
        return MethodResult([], {})


class ShoutPlugin:
    @hookimpl
    def register_methods(self, registry: instructgen.MethodRegistry) -> None:
        registry.add(Shout, aliases=("loud",))


def test_hook_register_methods() -> None:
    name = instructgen.register_plugin(ShoutPlugin(), name="shout-plugin")
    try:
        entry = pm.methods().entry("loud")
        assert entry.obj is Shout and entry.plugin == "shout-plugin"
        assert "shout" in pm.methods().names()
    finally:
        instructgen.unregister_plugin(name)
    assert "shout" not in pm.methods()


def test_options_are_converted_from_strings_and_checked() -> None:
    m = Shout({"times": "3", "temperature": "0.5", "loud": "no", "style": "bold"})
    assert m.options == Shout.Options(times=3, temperature=0.5, loud=False, style="bold")
    assert Shout({"prefix": "none"}).options.prefix is None
    with pytest.raises(UnknownNameError, match=r"option of method 'shout' 'colour'.*times"):
        Shout({"colour": "red"})
    with pytest.raises(ConfigError, match=r"'three' is not a int; e.g. -m times 3"):
        Shout({"times": "three"})
    with pytest.raises(ConfigError, match="not one of plain, bold"):
        Shout({"style": "italic"})
    with pytest.raises(ConfigError, match="times must be at least 1"):
        Shout({"times": 0})


def test_describe_lists_paper_inputs_options() -> None:
    d = Shout.describe()
    assert d["inputs"] == ["tasks", "instructions"] and d["roles"] == ["answers"]
    times = next(o for o in d["options"] if o["name"] == "times")
    assert times == {
        "name": "times",
        "type": "int",
        "default": 1,
        "help": "answers per instruction",
    }
    style = next(o for o in d["options"] if o["name"] == "style")
    assert style["choices"] == ["plain", "bold"]


def test_an_input_the_method_does_not_read_is_refused() -> None:
    from pathlib import Path

    with pytest.raises(ConfigError, match=r"method 'shout' reads tasks or instructions, not"):
        Shout().check_input(instructgen.MethodInput("documents", Path("docs")))


def test_only_method_classes_register() -> None:
    reg = instructgen.MethodRegistry()
    with pytest.raises(TypeError, match="not a subclass of Method"):
        reg.add(object)  # type: ignore[arg-type]
