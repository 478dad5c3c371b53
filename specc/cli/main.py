"""Entry point of the ``specc`` command: parse arguments, dispatch, map failures to exit codes."""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from specc import DISTRIBUTION
from specc import diagnostics as dg

EXIT_OK, EXIT_DIAG, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 70


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"specc: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


def _shard(text: str) -> tuple[int, int]:
    """``I/N`` with 0 <= I < N."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not I/N (for example 0/4)") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"{text!r}: I must be in 0..N-1")
    return i, n


STORE_HELP = ("results store (default: $SPECC_STORE, else runs/ in the spec's project: "
              "Note [Store location])")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="specc", description="A declarative, spec-driven experiment compiler.")
    p.add_argument("--version", action="version", version="specc 0.1.0")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    c = sub.add_parser("check", help="check specs for every mistake, without running anything")
    c.add_argument("files", nargs="+")
    c.add_argument("--backend", help="cpu, cuda, xla or auto (overrides the spec)")
    c.add_argument("--profile", help="apply a named profile")
    c.add_argument("--json", action="store_true", help="diagnostics as JSON")

    f = sub.add_parser("fmt", help="print specs in canonical form (in place)")
    f.add_argument("files", nargs="+")
    f.add_argument("--check", action="store_true", help="only report files that would change")
    f.add_argument("--stdout", action="store_true", help="print instead of writing")

    pl = sub.add_parser("plan", help="the runs a spec implies, their hashes and cost")
    pl.add_argument("file")
    pl.add_argument("--profile")
    pl.add_argument("--backend")
    pl.add_argument("--json", action="store_true", help="the plan as JSON (streams runs)")
    pl.add_argument("--all", action="store_true", help="list every run, not the first 20")
    pl.add_argument("--dump-ir", action="store_true", help="print the IR as JSON")

    e = sub.add_parser("explain", help="where a value came from")
    e.add_argument("file")
    e.add_argument("name", help="experiment.path, e.g. quickstart.train.batch, or a path")
    e.add_argument("--profile")
    e.add_argument("--backend", help="as lowered for this backend (e.g. xla's shape policy)")

    k = sub.add_parser("components", help="list the component catalogue (with a spec: its "
                       "`import python` components too), each with its origin")
    k.add_argument("file", nargs="?", help="a spec whose component files are listed too")
    k.add_argument("--json", action="store_true")
    k.add_argument("--kind", help="only this kind (model, policy, ...)")

    r = sub.add_parser("run", help="run the experiments of a spec")
    r.add_argument("file")
    r.add_argument("--profile")
    r.add_argument("--backend")
    r.add_argument("--root", "--store", dest="root", help=STORE_HELP)
    r.add_argument("--force", action="store_true", help="rerun finished runs")
    r.add_argument("--experiment", help="only this experiment")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--max-runs", type=int, default=None, metavar="N",
                   help="refuse a grid of more than N runs (default: 10,000)")
    r.add_argument("--workers", type=int,
                   help="local workers sharing a grid or a search (default: the spec's)")
    r.add_argument("--shard", type=_shard, metavar="I/N",
                   help="only every N-th run of a grid, from the I-th (0-based): a static split")
    r.add_argument("--storage", help="study storage: a journal file or postgresql:// URL")
    r.add_argument("--no-python", action="store_true",
                   help="refuse to import component files and plug-ins (specc.api components)")
    r.add_argument("--rdzv", metavar="HOST:PORT",
                   help="a multi-node run's rendezvous (train.nodes > 1): the first node's "
                   "address, the same on every node (default: $SPECC_RDZV)")
    r.add_argument("--json", action="store_true",
                   help="print the plan's runs (status, directory, last row) as JSON on stdout; "
                   "progress goes to stderr")
    r.add_argument("--tracker", action="append", choices=("tensorboard", "mlflow", "wandb"),
                   help="also log to this tracker, with its defaults (repeatable; the spec's "
                   "`trackers = [...]` sets arguments)")

    w = sub.add_parser("worker", help="join a search's study and run trials until it is done")
    w.add_argument("file")
    w.add_argument("--storage", help="the study storage (default: $SPECC_STORAGE, then the "
                   "spec's); prefer the variable for a URL with a password")
    w.add_argument("--experiment", help="the search experiment (default: the only one)")
    w.add_argument("--profile")
    w.add_argument("--backend")
    w.add_argument("--root", "--store", dest="root", help=STORE_HELP)
    w.add_argument("--no-python", action="store_true",
                   help="refuse to import component files and plug-ins")
    w.add_argument("--max-trials", type=int, default=None, metavar="K",
                   help="run at most K trials, then exit (one SLURM array task's share)")
    w.add_argument("--worker-index", type=int, default=None,
                   help="this worker's index among local workers (default: from its pid)")

    rs = sub.add_parser("runs", help="list recorded runs")
    rs.add_argument("--root", "--store", dest="root", help=STORE_HELP)
    rs.add_argument("--json", action="store_true")

    rp = sub.add_parser("report", help="tables and plots for a run or a spec's runs")
    rp.add_argument("target", help="a run hash (or prefix), a run directory, or a spec")
    rp.add_argument("--root", "--store", dest="root", help=STORE_HELP)
    rp.add_argument("--out", help="where the HTML report goes")
    rp.add_argument("--profile", help="a spec's runs under this profile")
    rp.add_argument("--all", action="store_true",
                    help="every stored run of the spec's experiments, not only its current plan")
    rp.add_argument("--json", action="store_true",
                    help="print the report's runs, sections and figures as JSON")
    rp.add_argument("--storage", help="a search's study storage, e.g. the postgresql:// URL "
                    "its workers used (default: $SPECC_STORAGE, then the spec's)")

    la = sub.add_parser("launch", help="hand a spec's sweeps to a cluster (submitit): one job "
                        "array of workers per experiment sharing its runs")
    la.add_argument("file")
    la.add_argument("--executor", choices=("slurm", "local"), default="slurm")
    la.add_argument("--workers", type=int, help="array tasks per grid or search (default 1)")
    la.add_argument("--partition", help="SLURM partition")
    la.add_argument("--gpus-per-node", type=int, help="GPUs per task's node")
    la.add_argument("--array-parallelism", type=int, help="tasks of an array running at once")
    la.add_argument("--timeout-min", type=int, default=60 * 24,
                    help="a task's time limit; a task cut by it is requeued and resumes")
    la.add_argument("--folder", help="submitit's logs and pickles (default: STORE/launch)")
    la.add_argument("--root", "--store", dest="root", help=STORE_HELP)
    la.add_argument("--storage", help="a search's study storage (postgresql:// across nodes)")
    la.add_argument("--profile")
    la.add_argument("--backend")
    la.add_argument("--experiment", help="only this experiment")
    la.add_argument("--wait", action="store_true", help="wait for the tasks and report them")

    sub.add_parser("lsp", help="the language server for .exp files, on stdio (editors start it)")

    sh = sub.add_parser("completion", help="print the shell completion script: "
                        "eval \"$(specc completion bash)\" (bash, zsh or fish)")
    sh.add_argument("shell", choices=("bash", "zsh", "fish"))
    _completers(p)
    return p


def _completers(parser: argparse.ArgumentParser) -> None:
    """Shell completion (argcomplete): spec paths for files, a spec's profiles and experiments
    for --profile and --experiment, directories for --root and --out."""
    try:
        from argcomplete.completers import DirectoriesCompleter, FilesCompleter
    except ImportError:  # completion is a courtesy: the command works without it
        return
    specs = FilesCompleter(allowednames=("exp",), directories=True)

    def names(which: int) -> object:
        def complete(prefix: str, parsed_args: argparse.Namespace, **_: object) -> list[str]:
            from specc.compiler.pipeline import names_in

            files = getattr(parsed_args, "file", None) or (
                getattr(parsed_args, "files", None) or [None])[0]
            if not files:
                return []
            return [n for n in names_in(str(files))[which] if n.startswith(prefix)]
        return complete

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _completers(sub)
        elif action.dest in ("file", "files", "target"):
            action.completer = specs  # type: ignore[attr-defined]
        elif action.dest == "profile":
            action.completer = names(1)  # type: ignore[attr-defined]
        elif action.dest == "experiment":
            action.completer = names(0)  # type: ignore[attr-defined]
        elif action.dest in ("root", "out"):
            action.completer = DirectoriesCompleter()  # type: ignore[attr-defined]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    if "_ARGCOMPLETE" in os.environ:  # a shell asks for completions
        import argcomplete

        argcomplete.autocomplete(parser)  # prints them and exits
    args = parser.parse_args(argv)
    try:
        from specc.cli import commands

        return int(getattr(commands, f"cmd_{args.command}")(args))
    except dg.SpeccError as exc:
        sys.stderr.write(dg.render_all(exc.diagnostics) + "\n")
        return EXIT_DIAG
    except KeyboardInterrupt:
        sys.stderr.write("specc: interrupted\n")
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except ModuleNotFoundError as exc:
        hint = install_hint(exc.name or "")
        if hint is None:
            raise
        sys.stderr.write(f"specc: error: `specc {args.command}` needs {exc.name}, which is not "
                         f"installed; install it with:\n  {hint}\n")
        return 1
    except Exception:  # noqa: BLE001 - anything else is our bug, reported as such
        sys.stderr.write(traceback.format_exc())
        sys.stderr.write("specc: internal error (this is a bug in specc, not in your spec); "
                         "please report it with the spec and the lines above\n")
        return EXIT_INTERNAL


# What each optional extra of pyproject.toml brings (a core install: lark, attrs, argcomplete).
EXTRAS = {"torch": "torch", "transformers": "torch", "peft": "torch", "datasets": "torch",
          "matplotlib": "torch", "tqdm": "torch", "tokenizers": "torch", "pygls": "lsp",
          "lsprotocol": "lsp", "scipy": "torch", "numpy": "torch", "optuna": "sweeps",
          "cmaes": "sweeps",
          "psycopg": "sweeps", "torch_xla": "xla", "tensorboard": "trackers",
          "mlflow": "trackers", "wandb": "trackers", "liger_kernel": "fused",
          "submitit": "cluster", "cloudpickle": "cluster"}


def install_hint(module: str) -> str | None:
    """The exact install line for a missing optional dependency (None: not one of ours)."""
    extra = EXTRAS.get(module.split(".")[0])
    if extra is None:
        return None
    try:
        from importlib.metadata import packages_distributions

        dist = (packages_distributions().get("specc") or [DISTRIBUTION])[0]
    except Exception:  # noqa: BLE001 - metadata is a courtesy here
        dist = DISTRIBUTION
    return f"pip install '{dist}[{extra}]'"


def _json(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=True, default=str)


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["EXIT_DIAG", "EXIT_INTERNAL", "EXIT_OK", "EXIT_USAGE", "Path", "_json", "main"]
