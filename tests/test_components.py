"""Open components: signatures read by AST (never executed), plug-ins through the entry point,
user components checked, run, stored, reloaded and reported like built-ins."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from specc.catalogue import types as T
from specc.catalogue.components import REQUIRED, Origin
from specc.catalogue.pyread import read_text
from specc.cli.main import main
from specc.store.runs import MetricsLog

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "plugin"


# ----------------------------------------------------------------------------- reading signatures
_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda s: s not in {"ctx", "if", "in", "is", "or", "and", "not", "for", "def", "del", "as",
                        "try", "with", "from", "pass", "none", "true", "false", "lambda"})
_WORDS = st.lists(st.from_regex(r"[a-z][a-z_]{0,6}", fullmatch=True), min_size=1, max_size=4,
                  unique=True)


@st.composite
def _annotation(draw: st.DrawFn, depth: int = 0) -> tuple[str, T.Type, st.SearchStrategy]:
    """(source, the catalogue type, a strategy of literal defaults as Python source)."""
    prims = [("int", T.INT, st.integers(-1000, 1000).map(repr)),
             ("float", T.FLOAT, st.floats(-1e6, 1e6, allow_nan=False).filter(
                 lambda x: x == 0 or abs(x) >= 1e-300).map(repr)),
             ("str", T.STR, st.text("abc xyz", max_size=5).map(repr)),
             ("bool", T.BOOL, st.booleans().map(repr))]
    choice = draw(st.integers(0, 7 if depth < 2 else 4))
    if choice < 4:
        return prims[choice]
    if choice == 4:
        words = draw(_WORDS)
        src = "Literal[" + ", ".join(repr(w) for w in words) + "]"
        return src, T.Enum(tuple(words)), st.sampled_from(words).map(repr)
    inner_src, inner_t, inner_d = draw(_annotation(depth + 1))
    if choice == 5:
        return (f"list[{inner_src}]", T.ListOf(inner_t),
                st.lists(inner_d, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"))
    if choice == 6:
        if isinstance(inner_t, T.Optional_):  # X | None | None is X | None
            return inner_src, inner_t, inner_d
        return (f"{inner_src} | None", T.Optional_(inner_t),
                st.one_of(st.just("None"), inner_d))
    other_src, other_t, other_d = draw(_annotation(depth + 1))
    return (f"tuple[{inner_src}, {other_src}]", T.TupleOf((inner_t, other_t)),
            st.tuples(inner_d, other_d).map(lambda p: f"({p[0]}, {p[1]})"))


@st.composite
def _signature(draw: st.DrawFn) -> tuple[str, list[tuple[str, T.Type, str | None, dict]],
                                         list[str]]:
    """(the parameter list's source, the expected entries, each parameter's source)."""
    names = draw(st.lists(_NAMES, min_size=0, max_size=5, unique=True))
    params: list[tuple[str, T.Type, str | None, dict]] = []
    parts = []
    defaults_started = False
    for name in names:
        src, t, defaults = draw(_annotation())
        bounds: dict = {}
        if t in (T.INT, T.FLOAT) and draw(st.booleans()):
            lo = draw(st.integers(-10, 0))
            hi = draw(st.integers(1, 10))
            bounds = {"lo": lo, "hi": hi, "lo_open": draw(st.booleans()),
                      "hi_open": draw(st.booleans())}
            src = (f"Annotated[{src}, Range(lo={lo}, hi={hi}, lo_open={bounds['lo_open']}, "
                   f"hi_open={bounds['hi_open']})]")
        default = draw(defaults) if defaults_started or draw(st.booleans()) else None
        defaults_started = defaults_started or default is not None
        parts.append(f"{name}: {src}" + (f" = {default}" if default is not None else ""))
        params.append((name, t, default, bounds))
    return ", ".join([*parts, "*", "ctx: BuildContext"]), params, parts


HEADER = ("from typing import Annotated, Literal\n"
          "from specc.api import BuildContext, Range, component\n\n")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_signature())
def test_signatures_read_back_as_catalogue_entries(sig: tuple[str, list, list]) -> None:
    import ast

    text, params, _ = sig
    source = HEADER + f'@component("model")\ndef built({text}):\n    """Doc."""\n'
    read = read_text(source, "gen.py", Origin("gen"))
    assert read.diagnostics == (), source
    [comp] = read.components
    assert [p.name for p in comp.params] == [name for name, *_ in params]
    for p, (name, t, default, bounds) in zip(comp.params, params, strict=True):
        assert p.type == t, (name, source)
        if default is None:
            assert p.default == REQUIRED
        else:  # the .exp text of the default denotes the same value
            assert _exp_value(p.default) == ast.literal_eval(default), (p.default, default)
        for key, value in bounds.items():
            assert getattr(p, key) == value


def _exp_value(text: str) -> object:
    """A default's .exp text read back through the spec grammar (enum words are strings,
    tuples compare as Python tuples)."""
    from specc.lang import syntax as S
    from specc.lang.parser import parse_text

    module, diags = parse_text(f"let x = {text}\n", "d.exp")
    assert module is not None and not diags, (text, diags)

    def value(e: object) -> object:
        match e:
            case S.Number(value=v) | S.String(value=v) | S.Bool(value=v):
                return v
            case S.NoneLit():
                return None
            case S.Name(id=word):
                return word
            case S.ListExpr(items=items):
                return [value(i) for i in items]
            case S.TupleExpr(items=items):
                return tuple(value(i) for i in items)
            case S.UnaryOp(op="-", operand=inner):
                return -value(inner)  # type: ignore[operator]
        raise AssertionError(e)

    return value(module.items[0].value)


BAD_FORMS = [
    ("*rest: int", "*rest is not supported"),
    ("**rest: int", "**rest is not supported"),
    ("x", 'parameter "x" has no type annotation'),
    ("x: int = 2 * 3", "is not a literal"),
    ("x: dict[str, int] = {}", "unsupported annotation `dict[str, int]`"),
    ("x: Annotated[str, Range(lo=1)] = 'a'", "Range bounds apply to int or float"),
    ("x: Literal[1, 2] = 1", "Literal[...] takes strings"),
    ("x: None = None", "None alone is not a parameter type"),
]


@settings(max_examples=80, deadline=None)
@given(_signature(), st.sampled_from(BAD_FORMS), st.integers(0, 5))
def test_every_unsupported_form_is_one_located_diagnostic(sig: tuple[str, list, list[str]],
                                                          bad: tuple[str, str],
                                                          line_offset: int) -> None:
    """One unsupported form among valid keyword-only parameters: exactly one diagnostic, at
    the line of the definition, saying what is wrong."""
    _, _, valid = sig
    form, message = bad
    tail = [*valid, "ctx: BuildContext"]
    if form.startswith("**"):
        args = ", ".join(["*", *tail, form])
    elif form.startswith("*"):
        args = ", ".join([form, *tail])
    else:
        args = ", ".join([form, "*", *tail])
    source = (HEADER + "\n" * line_offset
              + f'@component("model")\ndef built({args}):\n    """D."""\n')
    read = read_text(source, "gen.py", Origin("gen"))
    assert len(read.diagnostics) == 1, (source, read.diagnostics)
    d = read.diagnostics[0]
    assert d.code == "component-signature" and d.span.file == "gen.py"
    assert d.span.line == 5 + line_offset, source
    assert message in d.message, (d.message, source)


def test_docstring_gives_the_help_and_summary() -> None:
    read = read_text(HEADER + textwrap.dedent('''
        @component("data", provides=("vectors",), members=("train", "probe"))
        def patches(d: Annotated[int, Range(lo=2)] = 200, n_snr2: float = 2.0, *,
                    ctx: BuildContext):
            """Two-patch Gaussian data.

            Longer text that is not the summary.

            Args:
                d: dimension of
                    a patch
                n_snr2 (float): n times SNR squared
            """
        '''), "p.py", Origin("p"))
    [c] = read.components
    assert c.doc == "Two-patch Gaussian data" and c.kind == "data"
    assert [p.doc for p in c.params] == ["dimension of a patch", "n times SNR squared"]
    assert c.members == (("train", "split"), ("probe", "split")) and c.provides == ("vectors",)
    assert c.origin.line == 6 and c.origin.function == "patches"  # the def line


# ----------------------------------------------------------------------------- plug-ins
def _fake_dist(tmp: Path, init_raises: bool = True) -> Path:
    """A plug-in 'installed' on a path: dist-info with the entry point, a package whose
    __init__ raises (and leaves a marker) if anything executes it."""
    site = tmp / "site"
    pkg = site / "explodes"
    pkg.mkdir(parents=True)
    marker = tmp / "EXECUTED"
    (pkg / "__init__.py").write_text(
        f"open({str(marker)!r}, 'w').write('x')\n"
        + ("raise RuntimeError('the package was imported')\n" if init_raises else ""))
    (pkg / "parts.py").write_text(HEADER + textwrap.dedent('''
        import torch

        @component("model", provides=("classifier",), requires=("vectors",))
        def boom_net(width: Annotated[int, Range(lo=1)] = 8, *, ctx: BuildContext):
            """A plug-in model.

            Args:
                width: hidden units
            """
    '''))
    info = site / "explodes-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: explodes\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[specc.components]\nboom = explodes.parts\n")
    return site


def test_entry_point_plugin_is_listed_and_checked_without_being_executed(tmp_path: Path) -> None:
    site = _fake_dist(tmp_path)
    (tmp_path / "specc.toml").write_text("")
    spec = tmp_path / "p.exp"
    spec.write_text('import python "data.py"\nexperiment e {\n  data d = blobs()\n'
                    "  model m = boom_net(width = 0)\n}\n")
    (tmp_path / "data.py").write_text(HEADER + '@component("data", provides=("vectors",))\n'
                                      'def blobs(*, ctx: BuildContext):\n    """Blobs."""\n')
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    code = ("import sys\nfrom specc.cli.main import main\n"
            f"rc = main(['check', {str(spec)!r}])\n"
            f"rc2 = main(['components', '--kind', 'model'])\n"
            "print('RC', rc, rc2, 'torch' in sys.modules, 'explodes' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=tmp_path)
    assert "RC 1 0 False False" in out.stdout, out.stdout + out.stderr
    assert "boom_net(width = 0) must be at least 1" in out.stderr or \
        "boom_net(width) must be at least 1, got 0" in out.stderr, out.stderr
    assert "boom_net(width: int = 8)   [" in out.stdout and "parts.py:" in out.stdout
    assert not (tmp_path / "EXECUTED").exists()


def test_collision_between_plugin_and_file_needs_a_qualified_name(tmp_path: Path) -> None:
    site = _fake_dist(tmp_path, init_raises=False)
    (tmp_path / "specc.toml").write_text("")
    (tmp_path / "mine.py").write_text(HEADER + textwrap.dedent('''
        @component("data", provides=("vectors",))
        def blobs(*, ctx: BuildContext):
            """Blobs."""

        @component("model", provides=("classifier",))
        def boom_net(*, ctx: BuildContext):
            """Mine."""
    '''))
    spec = tmp_path / "p.exp"
    spec.write_text('import python "mine.py"\nexperiment e {\n  data d = blobs()\n'
                    "  model m = boom_net()\n}\nexperiment f {\n  data d = blobs()\n"
                    "  model m = boom.boom_net(width = 3)\n}\n")
    out = subprocess.run([sys.executable, "-m", "specc.cli.main", "check", str(spec)],
                         capture_output=True, text=True, env={"PYTHONPATH": str(site)},
                         cwd=tmp_path)
    assert out.returncode == 1
    assert '"boom_net" is defined by boom (' in out.stderr and "and mine (mine.py:" in \
        out.stderr, out.stderr
    assert "boom.boom_net(...) or mine.boom_net(...)" in out.stderr
    assert out.stderr.count("error:") == 1  # the qualified one in f is fine


# ----------------------------------------------------------------------------- running them
def _run(spec: Path, root: Path, *extra: str) -> int:
    return main(["run", str(spec), "--root", str(root), "--quiet", *extra])


def _rows(root: Path, exp: str) -> list[dict]:
    [run] = [p for p in (root / exp).iterdir() if p.is_dir()]
    return MetricsLog(run / "metrics.jsonl").rows()


def test_example_plugin_classifier_trains_stores_and_reloads(tmp_path: Path) -> None:
    spec = EXAMPLE / "classifier.exp"
    root = tmp_path / "runs"
    assert main(["run", str(spec), "--root", str(root), "--quiet", "--profile", "smoke"]) == 0
    rows = _rows(root, "spirals_mlp")
    assert [r["step"] for r in rows] == [10, 20] and rows[-1]["items"] == 20 * 64
    assert rows[-1]["loss"] < rows[0]["loss"]
    assert 0.0 <= rows[-1]["accuracy"] <= 1.0 and 0.0 <= rows[-1]["confidence"] <= 1.0
    assert {f"per_class_accuracy.{k}" for k in "012"} <= rows[-1].keys()
    [run] = [p for p in (root / "spirals_mlp").iterdir() if p.is_dir()]
    manifest = json.loads((run / "manifest.json").read_text())
    origin = manifest["config"]["model"]["python"]
    assert origin["path"] == "specc_example/components.py" and len(origin["sha256"]) == 64
    saved = json.loads((run / "final" / "model" / "component.json").read_text())
    assert saved["model"]["component"] == "mlp_classifier"
    # The same run again is finished: skipped, not retrained.
    assert _run(spec, root, "--profile", "smoke") == 0
    assert len(_rows(root, "spirals_mlp")) == 2


def _project(tmp: Path, components: str, spec: str) -> Path:
    (tmp / "specc.toml").write_text("")
    (tmp / "comps.py").write_text(HEADER + "import torch\n" + textwrap.dedent(components))
    path = tmp / "s.exp"
    path.write_text(textwrap.dedent(spec))
    return path


_BLOBS = '''
    class Feed:
        def __init__(self, seed):
            g = torch.Generator().manual_seed(seed)
            self.x = torch.randn(256, 4, generator=g)
            self.y = (self.x.sum(1) > 0).long()
            self.schema = {"x": (4,)}
        def size(self, split="train"):
            return 256
        def train_batch(self, step, size):
            g = torch.Generator().manual_seed(step)
            i = torch.randint(0, 256, (size,), generator=g)
            return {"x": self.x[i], "y": self.y[i]}
        def eval_batches(self, split, size, *rest):
            for i in range(0, 256, size):
                yield {"x": self.x[i:i + size], "y": self.y[i:i + size]}

    @component("data", provides=("vectors",))
    def blobs(seed: int = 0, *, ctx: BuildContext):
        """Blobs."""
        return Feed(seed)

    @component("model", provides=("classifier",))
    def lin(width: int = 8, *, ctx: BuildContext):
        """A small network."""
        torch.manual_seed(ctx.seed)
        return torch.nn.Sequential(torch.nn.Linear(4, width), torch.nn.Tanh(),
                                   torch.nn.Linear(width, 2))
'''
_SPEC = '''
    import python "comps.py"
    experiment e {
      data d = blobs()
      model m = lin()
      train { steps = 6; batch = 16; accumulate = ACC; optimizer = sgd(lr = 0.5) }
    }
'''


def test_editing_the_component_file_changes_the_run_hash(tmp_path: Path) -> None:
    spec = _project(tmp_path, _BLOBS, _SPEC.replace("ACC", "1"))
    root = tmp_path / "runs"
    assert _run(spec, root) == 0
    before = {p.name for p in (root / "e").iterdir() if p.is_dir()}
    with (tmp_path / "comps.py").open("a") as f:
        f.write("\n# an edit that changes nothing the run computes\n")
    assert _run(spec, root) == 0  # trains again: the old run is of the old file
    after = {p.name for p in (root / "e").iterdir() if p.is_dir()}
    assert len(before) == 1 and len(after) == 2 and before < after


def test_generic_objective_is_exact_under_accumulation(tmp_path: Path) -> None:
    """The loop divides by the summed weight: two micro-batches give the same update as one."""
    losses = []
    for acc in (1, 2):
        d = tmp_path / f"a{acc}"
        d.mkdir()
        spec = _project(d, _BLOBS, _SPEC.replace("ACC", str(acc)).replace(
            "accumulate", "eval_every = 1; accumulate"))
        assert _run(spec, d / "runs") == 0
        losses.append([r["loss"] for r in _rows(d / "runs", "e")])
    assert len(losses[0]) == 6
    for a, b in zip(*losses, strict=True):
        assert abs(a - b) <= 1e-5 * abs(a)


@pytest.mark.slow
def test_generic_objective_ddp_two_cpu_processes_match_one(tmp_path: Path) -> None:
    """Under DDP the summed weight is all-reduced and the gradients divided by it
    (Note [Loss normalization]): two CPU processes train like one."""
    import os

    runs = {}
    for devices in (1, 2):
        d = tmp_path / f"d{devices}"
        d.mkdir()
        spec = _project(d, _BLOBS, _SPEC.replace("ACC", "1").replace(
            "accumulate = 1", f"accumulate = 1; devices = {devices}; eval_every = 6"))
        out = subprocess.run([sys.executable, "-m", "specc.cli.main", "run", str(spec),
                              "--root", str(d / "runs"), "--quiet"], cwd=ROOT,
                             capture_output=True, text=True,
                             env=dict(os.environ, OMP_NUM_THREADS="1"))
        assert out.returncode == 0, out.stderr[-3000:]
        runs[devices] = _rows(d / "runs", "e")[-1]
    assert runs[1]["loss"] == pytest.approx(runs[2]["loss"], rel=1e-5)
    assert runs[1]["train_loss"] == pytest.approx(runs[2]["train_loss"], rel=1e-5)


def test_signature_drift_is_located_before_step_zero(tmp_path: Path, capsys) -> None:
    spec = _project(tmp_path, _BLOBS + '''
    import functools

    def logged(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return fn(*args, **kwargs)
        del wrapper.__wrapped__
        return wrapper

    @logged
    @component("metric")
    def drifting(scale: float = 1.0, *, ctx: BuildContext):
        """Its signature at run time is (*args, **kwargs)."""
    ''', _SPEC.replace("ACC", "1").replace("model m = lin()",
                                            "model m = lin()\n  metrics = [drifting]"))
    assert _run(spec, tmp_path / "runs") == 1
    err = capsys.readouterr().err
    assert "[component-drift]" in err and "comps.py:" in err and "takes *args" in err
    assert not list((tmp_path / "runs").glob("e/*/metrics.jsonl")) or not _rows(
        tmp_path / "runs", "e")


def test_user_code_failure_is_located_in_the_component_file(tmp_path: Path, capsys) -> None:
    spec = _project(tmp_path, _BLOBS + '''
    @component("objective", requires=("classifier",))
    def broken(*, ctx: BuildContext):
        """Raises at the first step."""
        def objective(model, batch):
            raise ValueError("my objective is wrong")
        return objective
    ''', _SPEC.replace("ACC", "1").replace("model m = lin()",
                                            "model m = lin()\n  objective = broken"))
    assert _run(spec, tmp_path / "runs") == 1
    err = capsys.readouterr().err
    assert "[component-error]" in err and "ValueError: my objective is wrong" in err
    assert "comps.py:" in err and "in objective" in err and "Traceback" not in err


def test_no_python_refuses_before_anything_runs(tmp_path: Path, capsys) -> None:
    spec = _project(tmp_path, _BLOBS, _SPEC.replace("ACC", "1"))
    assert _run(spec, tmp_path / "runs", "--no-python") == 1
    err = capsys.readouterr().err
    assert err.count("[python-refused]") == 2 and "s.exp:4:" in err
    assert not (tmp_path / "runs").exists()


def test_checkpoint_of_a_user_model_rebuilds_it(tmp_path: Path) -> None:
    spec = _project(tmp_path, _BLOBS, _SPEC.replace("ACC", "1") + '''
    experiment tune {
      data d = blobs()
      model = checkpoint(e)
      metrics = [loss, accuracy]
      train { steps = 2; batch = 16; eval_every = 1; optimizer = sgd(lr = 1e-12) }
    }
    ''')
    root = tmp_path / "runs"
    assert _run(spec, root) == 0
    trained = _rows(root, "e")[-1]["loss"]
    tuned = _rows(root, "tune")
    assert abs(tuned[0]["loss"] - trained) <= 1e-5 * trained  # a tiny lr: the same weights


def test_evaluation_only_runs(tmp_path: Path) -> None:
    """`train.steps = 0`: a random-weights baseline is evaluated once at step 0, nothing is
    trained, and the model is stored (for a language model and for a specc.api one)."""
    spec = _project(tmp_path, _BLOBS, """
    import python "comps.py"
    experiment base {
      data d = blobs()
      model m = lin()
      metrics = [loss, accuracy]
      train { steps = 0 }
    }
    experiment lm {
      model g = gpt2(layers = 1, heads = 2, width = 16, context = 16, vocab = numbers(0..199))
      data t = arithmetic(max = 20, train = 64, test = 16)
      metrics = [loss, exact_match(t.test)]
      train { steps = 0 }
    }
    """)
    root = tmp_path / "runs"
    assert _run(spec, root) == 0
    for exp, unit in (("base", "items"), ("lm", "tokens")):
        [row] = _rows(root, exp)
        assert row["step"] == 0 and row[unit] == 0 and "train_loss" not in row
        assert row["loss"] > 0
        [run] = [p for p in (root / exp).iterdir() if p.is_dir()]
        assert (run / "final" / "model").is_dir()


def test_report_field_decides_what_the_report_draws(tmp_path: Path) -> None:
    """`report = [...]` was declared and never read: now an explicit list is what is drawn
    (the default draws everything that applies)."""
    spec = _project(tmp_path, _BLOBS, _SPEC.replace("ACC", "1").replace(
        "model m = lin()", "model m = lin()\n  report = [metric_table]") + """
    experiment f extends e {
      report = [loss_curve]
    }
    """)
    root, out = tmp_path / "runs", tmp_path / "report"
    assert _run(spec, root) == 0
    assert main(["report", str(spec), "--root", str(root), "--out", str(out)]) == 0
    [run_e] = [p.name for p in (root / "e").iterdir() if p.is_dir()]
    [run_f] = [p.name for p in (root / "f").iterdir() if p.is_dir()]
    assert not (out / f"e-{run_e}_curves.png").exists()  # e asked for the table only
    assert (out / f"f-{run_f}_curves.png").exists()  # f asked for loss curves
    assert "status" in (out / "index.html").read_text()  # e's table


_REPORT_PART = '''
    @component("report")
    def run_count(*, ctx: BuildContext):
        """How many runs an experiment finished."""
        from specc.report.parts import Report

        def section(exp, drawing):
            runs = [p for p in (drawing.root / exp.name).iterdir() if p.is_dir()]
            return (f"{exp.name} finished {len(runs)} run(s)", [])

        return Report(section=section)

    @component("report")
    def broken(*, ctx: BuildContext):
        """Returns something that is not a report part."""
        return 42
'''


def test_a_component_file_extends_the_report(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """A report builder in a component file draws its own section, where `report = [...]`
    names it; one that returns something else is a clear error."""
    spec = _project(tmp_path, _BLOBS + _REPORT_PART, _SPEC.replace("ACC", "1").replace(
        "model m = lin()", "model m = lin()\n  report = [run_count, metric_table]"))
    root, out = tmp_path / "runs", tmp_path / "report"
    assert _run(spec, root) == 0
    capsys.readouterr()
    assert main(["report", str(spec), "--root", str(root), "--out", str(out)]) == 0
    assert "e finished 1 run(s)" in capsys.readouterr().out
    spec.write_text(spec.read_text().replace("report = [run_count", "report = [broken"))
    assert main(["report", str(spec), "--root", str(root), "--out", str(out)]) != 0
    shown = capsys.readouterr()
    assert "broken returned a int" in shown.out + shown.err


# ----------------------------------------------------------------------------- regression gate
def test_next_token_reproduces_the_quickstart_curve(tmp_path: Path) -> None:
    """`objective = next_token` (the default) is the language-model loop of before: the first 50
    steps' training losses equal the golden stored before open components (CPU, fp32)."""
    golden = json.loads((ROOT / "tests" / "golden" / "quickstart_50.json").read_text())
    text = (ROOT / "specs" / "quickstart.exp").read_text()
    # the loop itself, without the compiler's rewrites (tests/test_rewrites.py holds those to
    # 1e-5 of this baseline)
    text = text.replace("steps = 1500", "steps = 50\n    rewrites = none").replace(
        "eval_every = 250", "eval_every = 1")
    text = text.replace("metrics = [loss, exact_match(task.test)]", "metrics = [loss]")
    for explicit in (False, True):
        d = tmp_path / str(explicit)
        d.mkdir()
        (d / "specc.toml").write_text("")
        spec_text = text.replace("policy = full", "policy = full\n  objective = next_token") \
            if explicit else text
        (d / "q.exp").write_text(spec_text)
        assert _run(d / "q.exp", d / "runs") == 0
        got = [r["train_loss"] for r in _rows(d / "runs", "quickstart")]
        assert len(got) == 50
        worst = max(abs(a - b) / abs(b) for a, b in zip(got, golden["train_loss"], strict=True))
        assert worst <= 1e-6, worst


def test_every_builtin_component_is_its_builder() -> None:
    """There is no hand-written table of components: every built-in a spec can name (outside
    the language's search forms and functions) is a specc.api builder whose signature is its
    catalogue entry, so a declared-but-missing component is impossible (faithfulness once
    passed check and was refused at run time)."""
    from pathlib import Path

    from specc.catalogue.components import LANGUAGE_FORMS, builtin_registry
    from specc.components import builtin
    from specc.runtime.plugins import check_drift

    forms = {c.name for c in LANGUAGE_FORMS}
    assert {c.kind for c in LANGUAGE_FORMS} <= {"sampler", "pruner", "retry", "distribution",
                                                "function"}
    names = [c for c in builtin_registry().components if c.name not in forms]
    assert len(names) >= 67
    kinds = {c.kind for c in names}
    assert {"model", "data", "vocab", "policy", "optimizer", "schedule", "objective", "metric",
            "circuit", "circuit_metric", "corruption", "targets", "selector", "report"} <= kinds
    for c in names:
        fn = builtin(c.name)
        assert fn is not None and fn.__specc__.kind == c.kind, c.name
        check_drift(fn, Path(fn.__code__.co_filename), c.origin.function, None)


def test_builtin_metrics_build_what_the_loop_computes() -> None:
    from specc.catalogue.components import builtin_registry
    from specc.components import build
    from specc.components import metrics as M

    split = {"member": "validation"}
    s = {"loss_sum": 6.0, "tokens": 3.0, "correct": 2.0, "exact": 1.0, "examples": 4.0}
    assert build({"component": "loss", "split": split}).value(s) == 2.0
    assert build({"component": "loss", "split": split}).split == "validation"
    assert build({"component": "token_accuracy"}).value(s) == 2.0 / 3.0
    assert build({"component": "exact_match", "split": split, "limit": 3}).limit == 3
    assert build({"component": "exact_match", "split": split}).value(s) == 0.25
    for m in builtin_registry().of_kind("metric"):
        if m.origin.module == "specc.components.metrics":
            args = {p.name: {"member": "test"} for p in m.params if p.default == "<required>"}
            built = build({"component": m.name, **args})
            assert isinstance(built, (M.TokenStatistic, M.CircuitStatistic)), m.name
