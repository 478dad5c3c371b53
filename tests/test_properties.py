"""Hypothesis properties of the front end: parse, fmt, IR round trip, hashing, grids, mutations."""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark

import specc
from specc.compiler import ir
from specc.lang.parser import _GRAMMAR, _lark

SPECS = sorted(Path(__file__).resolve().parents[1].glob("specs/*.exp"))
KEYWORDS = {"experiment", "extends", "import", "let", "check", "measure", "checkpoints", "every",
            "profile", "in", "race", "when", "zip", "true", "false", "none", "and", "or", "not",
            "maximize", "minimize"}
FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def _terminal_strategies() -> dict[str, st.SearchStrategy[str]]:
    """Every terminal followed by a space (the grammar ignores whitespace between tokens)."""
    lark = _lark()
    out: dict[str, st.SearchStrategy[str]] = {}
    for term in lark.terminals:
        pattern = term.pattern
        if term.name == "NAME":
            s = st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True).filter(
                lambda n: n not in KEYWORDS)
        elif term.name == "NUMBER":
            s = st.sampled_from(["0", "7", "32", "3e-4", "1.5", "10k", "2M", "1.5B", "5%", "20%"])
        elif term.name == "STRING":
            s = st.text("abc xyz./*", max_size=8).map(lambda t: '"' + t + '"')
        elif term.name == "COMMENT":
            s = st.sampled_from(["# c\n", "#\n", "# x = 1 { }\n"])
        elif pattern.type == "str":
            s = st.just(pattern.value)
        else:
            s = st.from_regex(pattern.to_regexp(), fullmatch=True)
        out[term.name] = s.map(lambda t: t + " ")
    return out


def _fresh_lark():  # type: ignore[no-untyped-def]
    from lark import Lark

    return Lark(_GRAMMAR.read_text(), parser="lalr", lexer="contextual")


SOURCES = from_lark(_fresh_lark(), explicit=_terminal_strategies())


@FAST
@given(SOURCES)
def test_generated_specs_parse_and_format_stably(src: str) -> None:
    module, diags = specc.parse(src)
    assert module is not None, diags
    out, diags = specc.format_source(src)
    assert out is not None, diags
    again, _ = specc.format_source(out)
    assert again == out, "fmt is not idempotent"
    reparsed, _ = specc.parse(out)
    assert reparsed == module, "parse(fmt(x)) != parse(x)"


# ------------------------------------------------------------------ valid experiments

_names = st.sampled_from(["a", "b", "lr", "width"])
_layers = st.integers(1, 6)
_lr = st.sampled_from(["1e-3", "3e-4", "0.01", "2e-5"])


@st.composite
def experiments(draw: st.DrawFn) -> tuple[str, dict[str, list[str]]]:
    """A valid spec with a grid whose axes are known, and the axes it declares."""
    layers = draw(_layers)
    heads = draw(st.sampled_from([1, 2, 4]))
    width = heads * draw(st.integers(4, 16))
    axes: dict[str, list[str]] = {}
    if draw(st.booleans()):
        axes["seed"] = [str(s) for s in draw(st.lists(st.integers(0, 9), min_size=1, max_size=4,
                                                      unique=True))]
    if draw(st.booleans()):
        axes["train.batch"] = [str(b) for b in draw(st.lists(st.integers(1, 64), min_size=1,
                                                             max_size=3, unique=True))]
    if draw(st.booleans()):
        axes["lr"] = draw(st.lists(_lr, min_size=1, max_size=3, unique=True))
    if draw(st.booleans()):  # a member of a component: the template shares the component
        axes["train.optimizer.weight_decay"] = draw(
            st.lists(st.sampled_from(["0", "0.01", "0.1"]), min_size=1, max_size=3, unique=True))
    lr = "lr" if "lr" in axes else draw(_lr)
    steps = draw(st.integers(1, 500))
    most = draw(st.integers(2, 99))  # the task has most^2 distinct examples: ask for no more
    train = max(1, most * most * 3 // 4)
    lines = [
        "experiment e {",
        f"  model m = gpt2(layers = {layers}, heads = {heads}, width = {width}, "
        f"vocab = numbers(0..{draw(st.integers(10, 300))}))",
        f"  data d = arithmetic(ops = [\"+\"], max = {most}, train = {train}, "
        f"test = {most * most - train})",
        f"  train {{ optimizer = adamw(lr = {lr}); steps = {steps} }}",
    ]
    if axes:
        lines.append("  sweep grid {")
        lines += [f"    {k} in [{', '.join(v)}]" for k, v in axes.items()]
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n", axes


@FAST
@given(experiments())
def test_ir_json_round_trip_is_lossless(case: tuple[str, dict[str, list[str]]]) -> None:
    src, _ = case
    result = specc.compile(src)
    assert result.ok, result.render()
    program = result.program
    assert program is not None
    back = ir.loads(ir.dumps(program))
    assert back == program
    assert ir.dumps(back) == ir.dumps(program)
    assert ir.content_hash(back) == ir.content_hash(program)


@FAST
@given(experiments())
def test_hash_is_stable_under_formatting(case: tuple[str, dict[str, list[str]]]) -> None:
    src, _ = case
    messy = re.sub(r" = ", "=", src).replace("\n", "\n\n  # a comment\n")
    a, b = specc.compile(src), specc.compile(messy)
    formatted, _ = specc.format_source(messy)
    c = specc.compile(formatted or "")
    assert a.program is not None and b.program is not None and c.program is not None
    assert ir.content_hash(a.program) == ir.content_hash(b.program) == ir.content_hash(c.program)


@FAST
@given(experiments(), st.integers(1, 100))
def test_hash_changes_with_any_value(case: tuple[str, dict[str, list[str]]], bump: int) -> None:
    src, _ = case
    before = specc.compile(src).program
    changed = re.sub(r"steps = (\d+)", lambda m: f"steps = {int(m.group(1)) + bump}", src)
    after = specc.compile(changed).program
    assert before is not None and after is not None
    assert ir.content_hash(before) != ir.content_hash(after)


@FAST
@given(experiments())
def test_grid_expansion_is_the_product_of_the_axes(
        case: tuple[str, dict[str, list[str]]]) -> None:
    src, axes = case
    result = specc.plan(src)
    assert result.plan is not None, result.render()
    ep = result.plan.experiments[0]
    runs = list(ep.runs())
    expected = math.prod(len(v) for v in axes.values()) if axes else 1
    assert len(runs) == ep.count == expected
    assert len({r.hash for r in runs}) == expected, "every run has its own hash"
    assert all("\"var\"" not in json.dumps(r.config) for r in runs), "an unbound variable"
    # every run keeps its own configuration once all are materialized (none writes into another)
    from specc.compiler.run_hash import config_hash

    assert all(config_hash(r.config) == r.hash for r in runs)
    for r in runs:
        if "train.optimizer.weight_decay" in axes:
            assert r.config["train"]["optimizer"]["weight_decay"] == \
                r.bindings["train.optimizer.weight_decay"]
    combos = {tuple(str(r.bindings[k]) for k in axes) for r in runs}
    wanted = {tuple(str(specc.syntax and _num(x)) for x in c)
              for c in itertools.product(*axes.values())}
    assert combos == wanted


def _num(text: str) -> object:
    from specc.lang.parser import number_value

    return number_value(text)[0]


# ------------------------------------------------------------------ mutations never crash

_spec_texts = [p.read_text() for p in SPECS]


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(_spec_texts))
    tokens = re.findall(r"\s+|\w+|[^\w\s]", text)
    for _ in range(draw(st.integers(1, 4))):
        if not tokens:
            break
        i = draw(st.integers(0, len(tokens) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "char"]))
        if op == "delete":
            del tokens[i]
        elif op == "duplicate":
            tokens.insert(i, tokens[i])
        elif op == "swap" and i + 1 < len(tokens):
            tokens[i], tokens[i + 1] = tokens[i + 1], tokens[i]
        else:
            tokens[i] = draw(st.sampled_from([*"(){}[]=,.~#\"'%:0", "in", "9e9", ".."]))
    return "".join(tokens)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_specs_give_diagnostics_never_exceptions(src: str) -> None:
    result = specc.plan(src, profile=None)
    for d in result.diagnostics:
        assert d.span.line >= 0 and d.message
    if result.plan is not None:
        for ep in result.plan.experiments:
            for _ in itertools.islice(ep.runs(), 50):
                pass
            ep.cost()
    out, diags = specc.format_source(src)
    assert (out is None) == bool(diags)


@st.composite
def mutated_bytes(draw: st.DrawFn) -> bytes:
    """A mutated spec as bytes, with stray bytes (often not UTF-8) spliced in."""
    data = bytearray(draw(mutated()).encode())
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(data)))
        data[i:i] = draw(st.binary(min_size=1, max_size=3))
    return bytes(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_bytes())
def test_mutated_files_through_the_path_api_give_diagnostics(data: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "mutated.exp"
        path.write_bytes(data)
        result = specc.plan(path)
        for diag in result.diagnostics:
            assert diag.span.line >= 0 and diag.message
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            assert [x.code for x in result.diagnostics] == ["source-not-utf8"]
        assert isinstance(result.render(), str)
