"""Seed tasks: the ``tasks.jsonl`` format, validated line by line against the JSON Schema.

Every problem is reported as ``FILE:LINE: FIELD: message``; ``load_tasks`` collects all of them
before raising one ``TaskFileError``, so a user fixes a file in one pass.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from instructgen.errors import Problem, TaskFileError

__all__ = [
    "MAX_DEPTH",
    "MAX_INSTRUCTION_CHARS",
    "MAX_LINE_BYTES",
    "Instance",
    "SeedTask",
    "check_tasks",
    "load_tasks",
    "task_schema",
]

MAX_LINE_BYTES = 1_000_000
"""A task line longer than this is refused unread (a prompt that size fits no model)."""
MAX_INSTRUCTION_CHARS = 20_000
"""The longest instruction a seed task may have."""
MAX_DEPTH = 64
"""How deeply the JSON of one task line may nest (a task needs three levels)."""


@dataclass(frozen=True)
class Instance:
    input: str
    output: str


@dataclass(frozen=True)
class SeedTask:
    id: str
    instruction: str
    instances: tuple[Instance, ...]
    name: str = ""
    is_classification: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    line: int | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.extra,
            "id": self.id,
            "name": self.name,
            "instruction": self.instruction,
            "instances": [{"input": i.input, "output": i.output} for i in self.instances],
            "is_classification": self.is_classification,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], line: int | None = None) -> SeedTask:
        known = {"id", "name", "instruction", "instances", "is_classification"}
        return cls(
            id=d["id"],
            instruction=d["instruction"],
            instances=tuple(Instance(i["input"], i["output"]) for i in d["instances"]),
            name=d.get("name") or d["id"],
            is_classification=bool(d.get("is_classification", False)),
            extra={k: v for k, v in d.items() if k not in known},
            line=line,
        )


@cache
def task_schema() -> dict[str, Any]:
    text = resources.files("instructgen").joinpath("schemas/tasks.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _field_path(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _validator() -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(task_schema())


_CHUNK = 1 << 20  # bytes read at a time while skipping a line over MAX_LINE_BYTES
_SNIFF = 512  # bytes looked at to recognise a file that is not JSON Lines in UTF-8
_JSONL = "JSON Lines (one task object per line, UTF-8)"


def _read_line(fh: Any) -> tuple[bytes | None, int] | None:
    """The next line without its end, and its length in bytes (without its end); None at the
    end of the file. A line over ``MAX_LINE_BYTES`` comes back as ``(None, length)``: it is
    counted in chunks of ``_CHUNK`` bytes, never held whole (a 1 GB line costs 1 MB)."""
    raw = fh.readline(MAX_LINE_BYTES + 2)  # the limit, then "\r\n"
    if not raw:
        return None
    if raw.endswith(b"\n") or len(raw) < MAX_LINE_BYTES + 2:
        raw = raw.rstrip(b"\r\n")
        return raw, len(raw)
    size, last = len(raw), raw
    while not last.endswith(b"\n"):
        chunk = fh.readline(_CHUNK)
        if not chunk:
            break
        size += len(chunk)
        last = last[-1:] + chunk[-2:]  # enough to see the line's end
    return None, size - (len(last) - len(last.rstrip(b"\r\n")))


def _utf16(head: bytes) -> tuple[str, str] | None:
    """How ``head`` shows the file is UTF-16 or UTF-32 (its byte order mark, or a NUL byte
    between ASCII characters) and iconv's name for that encoding; None for neither."""
    for bom, what, iconv in (
        (b"\xff\xfe\x00\x00", "UTF-32 (byte order mark FF FE 00 00)", "UTF-32"),
        (b"\x00\x00\xfe\xff", "UTF-32 (byte order mark 00 00 FE FF)", "UTF-32"),
        (b"\xff\xfe", "UTF-16 (byte order mark FF FE)", "UTF-16"),
        (b"\xfe\xff", "UTF-16 (byte order mark FE FF)", "UTF-16"),
    ):
        if head.startswith(bom):
            return what, iconv
    sample = head[: len(head) - len(head) % 2]
    if not sample:
        return None
    half = len(sample) // 2
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    # ASCII in UTF-16: NUL bytes on one side only (a run of NUL bytes is not text at all)
    if odd * 2 >= half and even * 4 <= half:
        return "UTF-16 little-endian (a NUL byte after every character)", "UTF-16LE"
    if even * 2 >= half and odd * 4 <= half:
        return "UTF-16 big-endian (a NUL byte before every character)", "UTF-16BE"
    return None


def _converted(path: Path) -> str:
    """Where a conversion command in a message writes: next to the file, never the file."""
    target = path.with_suffix(".jsonl")
    if target.name == path.name:
        target = path.with_name(f"{path.stem}.converted.jsonl")
    return shlex.quote(str(target))


def _not_jsonl(path: Path, head: bytes) -> Problem | None:
    """One problem for a whole file that is not JSON Lines in UTF-8 but says what it is (a JSON
    array, a pretty-printed object, UTF-16): instead of an error on every line, what JSON Lines
    is and the command that converts the file."""
    name, quoted = str(path), shlex.quote(str(path))
    encoding = _utf16(head)
    if encoding is not None:
        return Problem(
            name,
            1,
            None,
            f"the file is {encoding[0]}; task files are {_JSONL}: "
            f"convert it with iconv -f {encoding[1]} -t UTF-8 {quoted} > {_converted(path)}",
        )
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"["):
        return Problem(
            name,
            1,
            None,
            f"the file is a JSON array; task files are {_JSONL}, without [ ] around them: "
            f"convert it with jq -c '.[]' {quoted} > {_converted(path)}",
        )
    if text.startswith(b"{") and text[1:].split(b"\n", 1)[0].strip() == b"":
        return Problem(
            name,
            1,
            None,
            f"a task is spread over several lines; task files are {_JSONL}: "
            f"convert it with jq -c . {quoted} > {_converted(path)}",
        )
    return None


def _lines(path: Path, problems: list[Problem]) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` for every line of a task file that is UTF-8 and at most
    ``MAX_LINE_BYTES`` long, read line by line (memory stays bounded whatever the file holds);
    a problem for each other line, or one for the whole file when it is not JSON Lines."""
    name = str(path)
    try:
        fh = path.open("rb")
    except OSError as exc:
        problems.append(Problem(name, None, None, f"cannot read: {exc.strerror or exc}"))
        return
    with fh:
        try:
            head = fh.peek(_SNIFF)[:_SNIFF]
        except OSError as exc:
            problems.append(Problem(name, None, None, f"cannot read: {exc.strerror or exc}"))
            return
        whole = _not_jsonl(path, head)
        if whole is not None:
            problems.append(whole)
            return
        lineno = 0
        while (read := _read_line(fh)) is not None:
            lineno += 1
            raw, size = read
            if raw is None or size > MAX_LINE_BYTES:
                problems.append(
                    Problem(
                        name,
                        lineno,
                        None,
                        f"line too long ({size:,} bytes; at most {MAX_LINE_BYTES:,}): "
                        "a seed task is an instruction and a few short examples",
                    )
                )
                continue
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                problems.append(
                    Problem(
                        name,
                        lineno,
                        None,
                        f"not UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
                        "save the file as UTF-8",
                    )
                )
                continue
            yield lineno, text


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (use a number or a string)")


def _unsafe_value(obj: Any) -> tuple[str | None, str] | None:
    """(field, message) for JSON nested over ``MAX_DEPTH`` levels or a string holding a NUL
    character; walked with a stack, so no depth can exhaust Python's recursion limit."""
    stack: list[tuple[Any, list[Any]]] = [(obj, [])]
    while stack:
        value, where = stack.pop()
        if len(where) > MAX_DEPTH:
            return _field_path(where[:3]) or None, f"JSON nested over {MAX_DEPTH} levels"
        if isinstance(value, str):
            if "\x00" in value:
                return _field_path(where) or None, "NUL character (\\u0000) in a string"
        elif isinstance(value, dict):
            for k, v in value.items():
                if "\x00" in k:
                    return _field_path(where) or None, "NUL character (\\u0000) in a key"
                stack.append((v, [*where, k]))
        elif isinstance(value, list):
            stack.extend((v, [*where, i]) for i, v in enumerate(value))
    return None


def check_tasks(path: str | Path) -> tuple[list[SeedTask], list[Problem]]:
    """Parse and validate a task file; return the good tasks and every problem found."""
    path = Path(path)
    name = str(path)
    problems: list[Problem] = []
    tasks: list[SeedTask] = []
    if path.is_dir():
        return [], [Problem(name, None, None, "is a directory, expected a .jsonl file")]
    validator = _validator()
    first_line: dict[str, int] = {}
    seen_content = False
    for lineno, text in _lines(path, problems):
        if not text.strip():
            continue
        seen_content = True
        try:
            obj = json.loads(text, parse_constant=_no_constant)
        except json.JSONDecodeError as exc:
            problems.append(
                Problem(name, lineno, None, f"invalid JSON: {exc.msg} (column {exc.colno})")
            )
            continue
        except RecursionError:
            problems.append(Problem(name, lineno, None, f"JSON nested over {MAX_DEPTH} levels"))
            continue
        except ValueError as exc:  # NaN, Infinity
            problems.append(Problem(name, lineno, None, str(exc)))
            continue
        bad = _unsafe_value(obj)
        if bad is not None:
            problems.append(Problem(name, lineno, bad[0], bad[1]))
            continue
        if not isinstance(obj, dict):
            problems.append(
                Problem(name, lineno, None, f"expected a JSON object, got {type(obj).__name__}")
            )
            continue
        errors = sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.path)))
        reported: set[tuple[str, str]] = set()  # one schema rule can fail twice on one field
        for err in errors:
            field_name = _field_path(err.path)
            if err.validator == "required":
                missing = err.message.split("'")[1] if "'" in err.message else ""
                field_name = _field_path([*err.path, missing]) if missing else field_name
                msg = "required field is missing"
            elif err.validator == "type":
                msg = f"expected {err.validator_value}, got {type(err.instance).__name__}"
            elif err.validator in ("minLength", "pattern"):
                msg = "must be a non-empty string"
            elif err.validator == "minItems":
                msg = "needs at least one {input, output} instance"
            else:
                msg = err.message
            if (field_name, msg) not in reported:
                reported.add((field_name, msg))
                problems.append(Problem(name, lineno, field_name or None, msg))
        instruction = obj.get("instruction")
        length = len(instruction) if isinstance(instruction, str) else 0
        too_long = length > MAX_INSTRUCTION_CHARS
        if too_long:
            problems.append(
                Problem(
                    name,
                    lineno,
                    "instruction",
                    f"too long ({length:,} characters; at most {MAX_INSTRUCTION_CHARS:,})",
                )
            )
        task_id = obj.get("id")
        first = first_line.get(task_id) if isinstance(task_id, str) else None
        duplicate = first is not None
        if first is not None:  # reported on every line, valid or not
            problems.append(
                Problem(name, lineno, "id", f"duplicate id {task_id!r} (first on line {first})")
            )
        elif isinstance(task_id, str):
            first_line[task_id] = lineno
        if errors or duplicate or too_long:
            continue
        tasks.append(SeedTask.from_dict(obj, line=lineno))
    if not seen_content and not problems:
        problems.append(Problem(name, None, None, "empty file: no tasks found"))
    return tasks, problems


def load_tasks(path: str | Path) -> list[SeedTask]:
    """Load seed tasks, raising ``TaskFileError`` with every problem if the file is not valid."""
    tasks, problems = check_tasks(path)
    if problems:
        raise TaskFileError(problems)
    return tasks
