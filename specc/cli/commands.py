"""The verbs of the command line; each returns an exit code."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import attrs

from specc import diagnostics as dg
from specc.catalogue import components as C
from specc.cli.main import EXIT_DIAG, EXIT_OK, EXIT_USAGE
from specc.compiler import ir
from specc.compiler.pipeline import Result, compile_file
from specc.lang.source import SourceError, read_source
from specc.store.urls import redact


def expand(paths: list[str]) -> list[str]:
    """Files as given, directories as the .exp files below them (sorted)."""
    out: list[str] = []
    for p in paths:
        path = Path(p)
        out.extend(sorted(str(f) for f in path.rglob("*.exp")) if path.is_dir() else [p])
    return out


def _emit(result: Result, as_json: bool) -> None:
    if as_json:
        return
    if result.diagnostics:
        sys.stderr.write(result.render() + "\n")


def cmd_check(args: argparse.Namespace) -> int:
    diags: list[dict[str, Any]] = []
    failed = False
    for f in expand(args.files):
        result = compile_file(f, backend=args.backend, profile=args.profile, stop_after="check")
        failed |= not result.ok
        if args.json:
            diags.extend(d.to_json() for d in result.diagnostics)
        else:
            _emit(result, False)
    if args.json:
        print(json.dumps(diags, indent=2))
    elif not failed:
        n = len(expand(args.files))
        print(f"ok: {n} file{'s' if n != 1 else ''} checked")
    return EXIT_DIAG if failed else EXIT_OK


def cmd_fmt(args: argparse.Namespace) -> int:
    from specc import format_source

    changed, failed = [], False
    for f in expand(args.files):
        path = Path(f)
        where = dg.Span(file=f, line=0, col=0, end_line=0, end_col=0)
        sources = dg.Sources()
        try:
            text = read_source(path)
        except FileNotFoundError as exc:
            d = dg.make("io-error", where, path=f, reason=exc.strerror or str(exc))
            sys.stderr.write(dg.render(d, sources) + "\n")
            failed = True
            continue
        except SourceError as exc:
            sys.stderr.write(dg.render(exc.diagnostic(where, sources), sources) + "\n")
            failed = True
            continue
        out, diags = format_source(text, f)
        if out is None:
            sources = dg.Sources()
            sources.add(f, text)
            sys.stderr.write(dg.render_all(diags, sources) + "\n")
            failed = True
            continue
        if args.stdout:
            sys.stdout.write(out)
        elif out != text:
            changed.append(f)
            if not args.check:
                path.write_text(out)
    for f in changed:
        print(f"{'would reformat' if args.check else 'reformatted'} {f}")
    if failed:
        return EXIT_DIAG
    return EXIT_DIAG if args.check and changed else EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    result = compile_file(args.file, backend=args.backend, profile=args.profile)
    _emit(result, False)
    if result.plan is None:
        return EXIT_DIAG
    plan = result.plan
    if args.dump_ir:
        assert result.program is not None
        print(ir.dumps(result.program))
        return EXIT_OK
    if args.json:
        _plan_json(plan)
        return EXIT_OK
    print(f"plan {plan.hash} for {args.file}"
          + (f" (profile {args.profile})" if args.profile else ""))
    for ep in plan.experiments:
        cost = ep.cost()
        bound = "" if ep.count_exact else "at most "
        print(f"\nexperiment {ep.experiment.name}: {ep.strategy}, {bound}{cost.runs:,} run"
              f"{'s' if cost.runs != 1 else ''}")
        flops = f"{cost.flops:.3g} FLOPs" if cost.flops is not None else \
            "FLOPs unknown (a model's shape is not known at check time)"
        print(f"  cost: {cost.steps:,} steps, {cost.tokens:,} {cost.unit}, {flops}"
              + (f", model {ep.experiment.params:,} params" if ep.experiment.params else ""))
        first = next(iter(ep.runs()), None)
        if first is not None:  # Note [Rewrites]: the first run's (explain says why)
            applied = first.config.get("train", {}).get("rewrites") or []
            print(f"  rewrites: {', '.join(applied) or 'none'}"
                  f" (specc explain {args.file} {ep.experiment.name}.train.rewrites)")
        for c in ep.experiment.checks:
            print(f"  check {c.text}: {'passed' if c.passed else 'at run time'}")
        space = ep.search_space()
        if space is not None:
            print(f"  search space ({space['kind']}):")
            for k, v in (space.get("params") or space.get("axes") or {}).items():
                print(f"    {k}: {json.dumps(v)}")
            for k, v in (space.get("settings") or {}).items():  # storage, sampler, targets...
                if k == "storage":
                    v = redact(str(v))
                print(f"    {k} = {json.dumps(v)}")
        limit = None if args.all else 20
        counts = ep.run_params()
        for shown, run in enumerate(ep.runs()):
            if limit is not None and shown >= limit:
                print(f"  ... {'at most ' if not ep.count_exact else ''}"
                      f"{ep.count - shown:,} more (--all lists them)")
                break
            print(f"  {run.hash}  {run.name}{_params_text(counts(run))}")
    return EXIT_OK


def _params_text(n: dict[str, int | None]) -> str:
    if n["model"] is None:
        return "  (parameters unknown at check time)"
    if n["trainable"] is None or n["trainable"] == n["model"]:
        return f"  ({n['model']:,} params)"
    return f"  ({n['trainable']:,} of {n['model']:,} params trained)"


def _plan_json(plan: Any) -> None:
    """Stream the plan as one JSON document without holding every run in memory."""
    w = sys.stdout.write
    w('{"hash": ' + json.dumps(plan.hash) + ', "experiments": [')
    for i, ep in enumerate(plan.experiments):
        if i:
            w(", ")
        head = {"name": ep.experiment.name, "strategy": ep.strategy,
                "cost": ep.cost().to_json(), "search_space": ep.search_space(),
                "checks": [{"text": c.text, "passed": c.passed} for c in ep.experiment.checks]}
        w(json.dumps(head, sort_keys=True)[:-1] + ', "runs": [')
        counts = ep.run_params()
        for j, run in enumerate(ep.runs()):
            w((", " if j else "") + json.dumps({**run.to_json(), "params": counts(run)},
                                               sort_keys=True))
        w("]}")
    w("]}\n")


def cmd_explain(args: argparse.Namespace) -> int:
    result = compile_file(args.file, profile=args.profile, backend=args.backend,
                          stop_after="check")
    _emit(result, False)
    if result.program is None or not result.ok:
        return EXIT_DIAG
    exps = result.program.experiments
    parts = args.name.split(".")
    exp = next((e for e in exps if e.name == parts[0]), None)
    if exp is not None:
        parts = parts[1:]
    elif len(exps) == 1:
        exp = exps[0]
    else:
        sys.stderr.write(f"specc: error: say which experiment: "
                         f"{', '.join(e.name + '.' + args.name for e in exps)}\n")
        return EXIT_USAGE
    from specc.catalogue.components import using
    from specc.cli.explain import explain

    with using(result.registry or C.builtin_registry()):
        text = explain(exp, ".".join(parts))
    if text is None:
        names = [f.path for f in exp.fields] + [d.name for d in exp.decls]
        hint = dg.did_you_mean(".".join(parts), names)
        sys.stderr.write(f"specc: error: {exp.name} has no value named {'.'.join(parts)!r}"
                         + (f"; {hint}" if hint else "") + "\n")
        return EXIT_USAGE
    print(text)
    counted = _explain_params(exp, ".".join(parts))
    if counted:
        print(f"  {counted}")
    if ".".join(parts) == "train.rewrites":
        print(_explain_rewrites(args, exp))
    return EXIT_OK


def _explain_rewrites(args: argparse.Namespace, exp: ir.Experiment) -> str:
    """Each rewrite: applied or skipped, why, the expected effect (Note [Rewrites]); per group
    of runs that decide alike."""
    from specc.compiler import rewrites

    result = compile_file(args.file, profile=args.profile, backend=args.backend)
    ep = next((e for e in (result.plan.experiments if result.plan else [])
               if e.experiment.name == exp.name),
              None)
    if ep is None:
        return "  rewrites: decided per run when the experiment plans"
    asked = ir.plain(exp.field("train.rewrites")) if exp.field("train.rewrites") else "auto"
    groups: dict[tuple[rewrites.Decision, ...], int] = {}
    for run in ep.runs():
        config = {**run.config, "train": {**run.config["train"], "rewrites": asked}}
        if args.backend:  # as lowered for this backend
            config["backend"] = args.backend
        key = tuple(rewrites.decide(config))
        groups[key] = groups.get(key, 0) + 1
    lines = []
    for decisions, n in groups.items():
        if len(groups) > 1:
            lines.append(f"  {n} run(s):")
        for d in decisions:
            lines.append(f"  {d.name}: {'applied: ' if d.applied else ''}{d.why}")
    return "\n".join(lines)


def _explain_params(exp: ir.Experiment, name: str) -> str | None:
    """What a model or policy value counts: its parameters, or those it trains."""
    from pathlib import Path

    from specc.compiler import params as P

    decl = exp.decl(name)
    value = decl.value if decl is not None else exp.field(name)
    if isinstance(value, ir.Ref):
        found = exp.decl(value.name)
        value = found.value if found is not None else value
    if not isinstance(value, ir.Comp):
        return None
    if value.kind == "policy":
        n = P.policy_params(value, exp.shape) if exp.shape is not None else None
        total = exp.params
        return (f"params: trains {n:,} of {total:,}" if n is not None and total
                else "params: unknown at check time (the model's shape is not known)")
    if value.kind == "model":
        model = P.with_local_shapes(value, Path(exp.file).parent)
        n = P.model_params(model) if model is not None else None
        n = exp.params if n is None and value.name == "checkpoint" else n
        return f"params: {n:,}" if n is not None else "params: unknown at check time"
    return None


def cmd_components(args: argparse.Namespace) -> int:
    """The catalogue: built-ins, installed plug-ins (read, never imported) and, with a spec,
    its `import python` files; each with its origin."""
    from specc.catalogue.pyread import plugin_reads
    from specc.compiler.load_modules import load_modules
    from specc.compiler.pipeline import registry_for

    sources, out = dg.Sources(), dg.Collector()
    for ep, path, read in plugin_reads():  # a plug-in's mistakes are shown here, as warnings
        if read is None:
            where = f"{path}" if path is not None else "its module cannot be found"
            sys.stderr.write(f"specc: warning: plug-in {ep.name} ({ep.module}): cannot read "
                             f"{where}\n")
            continue
        sources.add(str(path), read.text)
        for d in read.diagnostics:
            out.add(attrs.evolve(d, severity="warning"))
    loaded = None
    if args.file is not None:
        try:
            text = read_source(args.file)
        except (OSError, SourceError) as exc:
            sys.stderr.write(f"specc: error: {exc}\n")
            return EXIT_USAGE
        loaded = load_modules(text, args.file, sources, out)
    if out.items:
        sys.stderr.write(dg.render_all(out.items, sources) + "\n")
    if loaded is None and args.file is not None:
        return EXIT_DIAG
    registry = registry_for(loaded) if loaded is not None else registry_for(None)
    catalogue = registry.components
    kinds = sorted({c.kind for c in catalogue})
    if args.kind is not None and args.kind not in kinds:
        hint = dg.did_you_mean(args.kind, kinds) or f"kinds: {', '.join(kinds)}"
        sys.stderr.write(f"specc: error: unknown component kind {args.kind!r}; {hint}\n")
        return EXIT_USAGE
    comps = [c for c in catalogue if args.kind is None or c.kind == args.kind]
    if args.json:
        print(json.dumps([_component_json(c) for c in comps], indent=2))
        return EXIT_DIAG if out.has_errors else EXIT_OK
    kind = None
    for c in sorted(comps, key=lambda c: (c.kind, c.name, c.origin.provider)):
        if c.kind != kind:
            kind = c.kind
            print(f"\n{kind}:")
        sig = ", ".join(f"{p.name}: {p.type}" + ("" if p.default == "<required>"
                                                 else f" = {p.default}") for p in c.params)
        if c.variadic is not None:
            sig = f"*{c.variadic.name}"
        origin = "" if c.origin.provider == "specc" else f"   [{c.origin.where()}]"
        print(f"  {c.name}({sig}){origin}\n      {c.doc}")
    return EXIT_DIAG if out.has_errors else EXIT_OK


def _component_json(c: Any) -> dict[str, Any]:
    return {
        "name": c.name, "kind": c.kind, "doc": c.doc, "provides": list(c.provides),
        "requires": list(c.requires), "provider": c.origin.provider,
        "origin": c.origin.where(), "module": c.origin.module or None,
        "members": dict(c.members),
        "params": [{"name": p.name, "type": str(p.type),
                    "default": None if p.default == "<required>" else p.default,
                    "required": p.default == "<required>", "lo": p.lo, "hi": p.hi,
                    "lo_open": p.lo_open, "hi_open": p.hi_open,
                    "doc": p.doc} for p in c.params],
        "variadic": c.variadic.name if c.variadic else None,
    }


def cmd_run(args: argparse.Namespace) -> int:
    from specc.orchestrate import run_spec

    return run_spec(args)


def cmd_worker(args: argparse.Namespace) -> int:
    from specc.sweeps.worker import Sweep

    result = compile_file(args.file, backend=args.backend, profile=args.profile)
    _emit(result, False)
    if result.program is None or not result.ok:
        return EXIT_DIAG
    if getattr(args, "no_python", False):
        from specc.orchestrate import refuse_python

        if refuse_python(result.program, result.sources):
            return EXIT_DIAG
    exps = [e for e in result.program.experiments if e.search is not None
            and (args.experiment is None or e.name == args.experiment)]
    if len(exps) != 1:
        sys.stderr.write("specc: error: say which search experiment to join (--experiment)\n")
        return EXIT_USAGE
    index = args.worker_index if args.worker_index is not None else os.getpid()
    storage = args.storage or os.environ.get("SPECC_STORAGE") or None
    from specc.store.location import store_root

    sweep = Sweep(args.file, exps[0], store_root(args.root, args.file), storage=storage,
                  profile=args.profile, backend=args.backend, worker=index)
    ran = sweep.work(log=lambda text: print(text, flush=True),
                     max_trials=getattr(args, "max_trials", None))
    print(f"worker {os.getpid()}: ran {ran} trial{'s' if ran != 1 else ''}")
    return EXIT_OK


def cmd_runs(args: argparse.Namespace) -> int:
    from specc.store.index import list_runs_cmd

    return list_runs_cmd(args)


def cmd_report(args: argparse.Namespace) -> int:
    from specc.report.html import report_cmd

    return report_cmd(args)


def cmd_completion(args: argparse.Namespace) -> int:
    """The completion script of a shell, for `eval "$(specc completion bash)"` (or zsh's
    equivalent, or `specc completion fish | source`)."""
    import argcomplete

    print(argcomplete.shellcode(["specc"], shell=args.shell))
    return EXIT_OK


def cmd_lsp(args: argparse.Namespace) -> int:
    """The language server on stdio (specc/lsp.py)."""
    from specc.lsp import main

    return main()


def cmd_launch(args: argparse.Namespace) -> int:
    from specc.cli.launch import cmd_launch

    return cmd_launch(args)
