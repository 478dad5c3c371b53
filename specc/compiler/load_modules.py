"""Read a spec and everything it imports (relative to the importing file), reporting cycles."""

from __future__ import annotations

import os
from pathlib import Path

import attrs

from specc import diagnostics as dg
from specc.catalogue.components import Component, Origin
from specc.lang import syntax as S
from specc.lang.parser import parse_text
from specc.lang.source import SourceError, project_root, read_source


@attrs.frozen(kw_only=True)
class Loaded:
    """The root module, every module by path, and which modules each imports."""

    root: str
    modules: dict[str, S.Module]
    imports: dict[str, tuple[str, ...]]
    components: tuple[Component, ...] = ()  # from `import python` files, in import order

    def visible(self, path: str) -> list[str]:
        """The modules whose names ``path`` sees: itself, then its imports, transitively."""
        seen: list[str] = []
        stack = [path]
        while stack:
            p = stack.pop(0)
            if p in seen or p not in self.modules:
                continue
            seen.append(p)
            stack.extend(self.imports.get(p, ()))
        return seen


def load_modules(root_text: str, root_file: str, sources: dg.Sources,
                 out: dg.Collector) -> Loaded | None:
    """Parse the root text and, depth first, every file it imports.

    Example:
        ``import "tiny_models.exp"`` in ``specs/a.exp`` reads ``specs/tiny_models.exp``.
    """
    modules: dict[str, S.Module] = {}
    imports: dict[str, tuple[str, ...]] = {}
    python: dict[str, tuple[Component, ...]] = {}
    project = project_root(root_file)

    def visit(text: str, file: str, stack: list[str]) -> None:
        sources.add(file, text)
        module, diags = parse_text(text, file)
        for d in diags:
            out.add(d)
        if module is None:
            return
        modules[file] = module
        mine: list[str] = []
        for item in module.items:
            if not isinstance(item, S.Import):
                continue
            if item.python:
                _read_python(item, file, project, sources, out, python)
                continue
            target = _display(str(Path(file).parent / item.path))
            if _outside(target, project, item, out):
                continue
            if target in stack:
                cycle = " -> ".join([*stack[stack.index(target):], target])
                out.error("import-cycle", item.span, cycle=cycle)
                continue
            mine.append(target)
            if target in modules:
                continue
            try:
                child = read_source(target, imported=True)
            except FileNotFoundError:
                out.error("import-not-found", item.span, path=item.path,
                          help=f"looked for {target}; paths are relative to {file}")
                continue
            except SourceError as exc:
                out.add(exc.diagnostic(item.span, sources))
                continue
            visit(child, target, [*stack, target])
        imports[file] = tuple(mine)

    visit(root_text, root_file, [root_file])
    if root_file not in modules:
        return None
    return Loaded(root=root_file, modules=modules, imports=imports,
                  components=tuple(c for comps in python.values() for c in comps))


def _outside(target: str, project: Path, item: S.Import, out: dg.Collector) -> bool:
    """An import (a spec or a component file) that leads outside the project is refused."""
    real = Path(os.path.realpath(target))
    if real == project or project in real.parents:
        return False
    out.error("import-refused", item.span, path=item.path,
              reason=f"it lies outside the project folder {project}",
              help="imports stay inside the folder holding .git, pyproject.toml or specc.toml "
                   "above the spec")
    return True


def _read_python(item: S.Import, file: str, project: Path, sources: dg.Sources,
                 out: dg.Collector, seen: dict[str, tuple[Component, ...]]) -> None:
    """``import python "x.py"``: the file's components, read with ``ast`` (never executed).
    A component file is a ``.py`` file inside the project, like an imported spec."""
    target = _display(str(Path(file).parent / item.path))
    real = Path(os.path.realpath(target))
    if real.suffix != ".py" or Path(target).suffix != ".py":
        out.error("import-refused", item.span, path=item.path,
                  reason="`import python` reads .py component files only",
                  help='write import "x.exp" for a spec, import python "x.py" for components')
        return
    if _outside(target, project, item, out):
        return
    if target in seen:
        return
    from specc.catalogue.pyread import read_file

    if not Path(target).exists():
        out.error("import-not-found", item.span, path=item.path,
                  help=f"looked for {target}; paths are relative to {file}")
        return
    try:
        read = read_file(Path(target), target, Origin(Path(target).stem))
    except SourceError as exc:
        out.add(exc.diagnostic(item.span, sources))
        return
    sources.add(target, read.text)
    for d in read.diagnostics:
        out.add(d)
    seen[target] = read.components


def _display(path: str) -> str:
    """A normalized path, relative to the working directory when it lies below it."""
    p = Path(path)
    try:
        resolved = p.resolve()
        return str(resolved.relative_to(Path.cwd()))
    except ValueError:
        return str(p.resolve())
