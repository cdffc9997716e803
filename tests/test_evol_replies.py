"""Evol-Instruct's prompts, reply parsers and elimination rules, on replies as models write
them (preambles, echoed markers, markdown, quotes, fences, closing remarks, verdict styles)."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from conftest import SHARED
from instructgen_evol import elimination, prompts
from instructgen_evol.method import EvolInstruct
from instructgen_evol.replies import clean_reply, parse_equality, parse_evolved
from instructgen_evol.seeds import seeds_of

from instructgen import ConfigError, MethodInput
from instructgen.runs import load_method_input

TARGET = (
    "Write a haiku about autumn leaves that uses a metaphor for aging and ends with a question."
)

EVOLUTION_REPLIES = [
    TARGET,
    f"Here is the rewritten prompt:\n\n{TARGET}",
    f"Sure! Here's a more complex version of the prompt:\n{TARGET}",
    f"#Rewritten Prompt#:\n{TARGET}",
    f"#Rewritten Prompt#: {TARGET}",
    f"**Rewritten Prompt:**\n{TARGET}",
    f"**Rewritten Prompt:** {TARGET}",
    f'"{TARGET}"',
    f"“{TARGET}”",
    f"**{TARGET}**",
    f"```\n{TARGET}\n```",
    f"```text\n{TARGET}\n```",
    f"> {TARGET}",
    f"<think>The user wants one more constraint. Let me add a metaphor.</think>\n{TARGET}",
    f'Rewritten prompt:\n\n"{TARGET}"\n\nThis rewritten prompt adds a constraint on the form.',
    f"{TARGET}\n\nNote: I added the requirement to end with a question.",
    f"#The Given Prompt#:\nWrite a haiku about autumn.\n\n#Rewritten Prompt#:\n{TARGET}",
    f"## Created Prompt\n{TARGET}",
    f"Certainly!\n\n{TARGET}\n\n(I replaced the general topic with a specific image.)",
    f"The rewritten prompt is as follows:\n{TARGET}",
    f"Here you go:\n\n{TARGET}\n\nLet me know if you want it even harder!",
    f"**#Rewritten Prompt#:**\n\n{TARGET}",
]


@pytest.mark.parametrize("reply", EVOLUTION_REPLIES)
def test_the_evolved_prompt_is_read_out_of_any_reply_style(reply: str) -> None:
    assert parse_evolved(reply) == TARGET


def test_a_prompt_with_code_and_its_input_keeps_them() -> None:
    prompt = (
        "Given the following Python function, rewrite it to run in O(n log n) and explain "
        "each step of your reasoning:\n\n```python\ndef pairs(xs):\n    return [(a, b) for a "
        "in xs for b in xs if a < b]\n```"
    )
    assert parse_evolved(prompt) == prompt
    assert parse_evolved(f"Here is the rewritten prompt:\n\n{prompt}") == prompt
    listed = "Here is a list of numbers:\n3, 1, 2\nSort them in descending order."
    assert parse_evolved(listed) == listed
    table = "Using the table below, rank the cities by density.\n| city | km2 |\n| Oslo | 454 |"
    assert parse_evolved(f"#Rewritten Prompt#:\n{table}") == table


def test_replies_without_a_prompt() -> None:
    assert parse_evolved("") is None
    assert parse_evolved("   \n ") is None
    assert parse_evolved("<think>Let me think about this very carefully") is None
    assert parse_evolved("#The Given Prompt#:\nWrite a haiku about autumn.") is None


def test_template_words_left_in_the_prompt_are_kept_for_the_elimination_step() -> None:
    copied = "Rewrite the given prompt so that the haiku also mentions rain."
    assert parse_evolved(copied) == copied
    assert elimination.copies_template(copied)
    echoed = parse_evolved(
        "Sure, here it is:\nWrite a haiku (#Rewritten Prompt#) about autumn rain."
    )
    assert echoed is not None and elimination.copies_template(echoed)


@pytest.mark.parametrize(
    ("reply", "equal"),
    [
        ("Equal", True),
        ("Equal.", True),
        ("**Equal**", True),
        ("Judgement: Equal", True),
        ("Your Judgement: Equal. Both ask for the same haiku.", True),
        ("The two prompts are equal.", True),
        ("Yes, they are equal.", True),
        ("Not Equal", False),
        ("Not Equal.", False),
        ("**Not Equal**", False),
        ("NOT EQUAL", False),
        ("The two prompts are not equal.", False),
        ("Not Equal. The second prompt adds a constraint on the ending.", False),
        ("They are not exactly equal: the second asks for a question.", False),
        ("Unequal", False),
        ("<think>The second adds a question, so they differ.</think>\nNot Equal", False),
        ("No, the second prompt is more demanding.", False),
        ("I cannot judge this.", None),
        ("", None),
    ],
)
def test_equality_verdicts(reply: str, equal: bool | None) -> None:
    assert parse_equality(reply) is equal


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("I'm sorry, but I can't help with creating that content.", elimination.ANSWER_REFUSAL),
        ("Sorry — I don't have access to real-time stock prices.", elimination.ANSWER_REFUSAL),
        ("...", elimination.ANSWER_ONLY_STOP_WORDS),
        ("", elimination.ANSWER_ONLY_STOP_WORDS),
        ("It is what it is.", elimination.ANSWER_ONLY_STOP_WORDS),
        ("- and / or -", elimination.ANSWER_ONLY_STOP_WORDS),
        ("Autumn leaves fall,\nwrinkled hands of the old oak —\nwho will catch my years?", None),
        ("秋の葉が落ちる", None),
        ("Paris.", None),
    ],
)
def test_answer_eliminations(answer: str, reason: str | None) -> None:
    assert elimination.answer_elimination(answer) == reason


def test_a_long_answer_that_says_sorry_is_kept() -> None:
    long = "I'm sorry to hear about the delay. " + "Here is a detailed plan step by step. " * 12
    assert len(long.split()) >= 80
    assert elimination.answer_elimination(long) is None
    seventy_nine = "sorry " + "word " * 78
    assert elimination.is_refusal(seventy_nine)
    assert not elimination.is_refusal("sorry " + "word " * 79)


@pytest.mark.parametrize(
    "text",
    [
        "Rewrite the given prompt to include a deadline.",
        "Using the #Rewritten Prompt#, list three facts.",
        "#Created Prompt#: Describe a rare bird.",
        "Answer the Given_Prompt in French.",
        "In the rewritten prompt, explain recursion.",
        "Explain recursion, as the created prompt requires.",
    ],
)
def test_instructions_that_copy_the_template_words(text: str) -> None:
    assert elimination.copies_template(text)


def test_instructions_that_do_not_copy_the_template() -> None:
    assert not elimination.copies_template("Write a prompt for an image generator about cats.")
    assert not elimination.copies_template("Given a list of prompts, rank them by clarity.")


def test_every_operation_has_a_prompt_with_the_papers_markers() -> None:
    seen = Counter()
    for index in range(600):
        evo = prompts.choose_evolution(7, 1, index)
        seen[evo.operation] += 1
        text = prompts.evolution_prompt(evo, "Name three prime numbers.")
        if evo.operation == prompts.IN_BREADTH:
            assert "#Given Prompt#:\nName three prime numbers.\n" in text
            assert text.endswith("#Created Prompt#:\n")
        else:
            assert "#The Given Prompt#:\nName three prime numbers.\n" in text
            assert text.endswith("#Rewritten Prompt#:\n")
            assert "10 to 20 words" in text
        if evo.operation == prompts.COMPLICATE_INPUT:
            assert evo.input_format in prompts.INPUT_FORMATS
            assert f"{evo.input_format} format data" in text
    assert set(seen) == set(prompts.OPERATIONS)
    assert min(seen.values()) > 600 / 6 * 0.7  # equal probability, roughly
    judge = prompts.equality_prompt("Name three primes.", "Name three primes above 100.")
    assert "Equal or Not Equal" in judge
    assert "The Second Prompt: Name three primes above 100." in judge


def test_choices_depend_on_seed_round_and_index_only() -> None:
    a = [prompts.choose_evolution(42, r, i) for r in (1, 2, 3) for i in range(50)]
    b = [prompts.choose_evolution(42, r, i) for r in (1, 2, 3) for i in range(50)]
    c = [prompts.choose_evolution(43, r, i) for r in (1, 2, 3) for i in range(50)]
    assert a == b and a != c
    only = prompts.choose_evolution(1, 1, 0, (prompts.IN_BREADTH,))
    assert only.operation == prompts.IN_BREADTH


def test_clean_reply_drops_reasoning_blocks() -> None:
    assert clean_reply("<think>hmm</think>\n\n Paris. ") == "Paris."
    assert clean_reply("<reasoning>cut off by the limit") == ""


# -- seeds ----------------------------------------------------------------------------------


def test_seeds_from_a_tasks_file_join_the_first_input(tmp_path: Path) -> None:
    path = tmp_path / "seed_tasks.jsonl"
    shutil.copy(SHARED / "data" / "seed_tasks.jsonl", path)
    seeds = seeds_of(load_method_input(path))
    assert len(seeds) == 175
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    with_input = next(i for i, t in enumerate(lines) if t["instances"][0]["input"].strip())
    task = lines[with_input]
    assert seeds[with_input].id == task["id"]
    assert seeds[with_input].text == (
        task["instruction"].strip() + "\n" + task["instances"][0]["input"].strip()
    )
    without = next(i for i, t in enumerate(lines) if not t["instances"][0]["input"].strip())
    assert seeds[without].text == lines[without]["instruction"].strip()


def test_seeds_from_instruction_lines(tmp_path: Path) -> None:
    lines = tmp_path / "instructions.jsonl"
    lines.write_text(
        '{"instruction": "Give three tips for staying healthy."}\n\n'
        '{"instruction": "Translate \'good morning\' to French."}\n'
    )
    seeds = seeds_of(load_method_input(lines))
    assert [(s.id, s.text) for s in seeds] == [
        ("instruction_0", "Give three tips for staying healthy."),
        ("instruction_1", "Translate 'good morning' to French."),
    ]


def test_seeds_from_a_saved_dataset_join_the_input() -> None:
    rows = (
        {"instruction": "Identify the odd one out.", "text": "Twitter, Instagram, Telegram"},
        {"instruction": "Describe a hard decision you made.", "text": ""},
        {"instruction": "  ", "text": ""},
    )
    seeds = seeds_of(MethodInput("dataset", rows=rows))
    assert [(s.id, s.text) for s in seeds] == [
        ("row_0", "Identify the odd one out.\nTwitter, Instagram, Telegram"),
        ("row_1", "Describe a hard decision you made."),
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rounds": "0"}, "rounds must be at least 1"),
        ({"operations": "deepening,widening"}, "unknown widening"),
        ({"top_p": "0"}, "top_p"),
        ({"window": "-3"}, "window"),
    ],
)
def test_bad_options_are_refused(options: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        EvolInstruct(options)
    assert message in str(info.value)


def test_operations_option() -> None:
    assert EvolInstruct({"operations": "depth"}).options.operation_list == prompts.DEPTH_OPERATIONS
    assert EvolInstruct({"operations": "breadth"}).options.operation_list == ("in-breadth",)
    picked = EvolInstruct({"operations": "in-breadth, deepening"}).options.operation_list
    assert picked == ("in-breadth", "deepening")
