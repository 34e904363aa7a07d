"""The package's layering runs one way (docs/design.md): every module imports alone, and no module
imports one above it, function-level imports included.

    app/ -> training/ -> tasks/ -> models/ -> config -> core/layers -> core/ (cells, time loops)

``data/`` and the core's ``losses``, ``activation_reg``, ``attention``, ``decoding`` and
``evaluation`` are leaves: anything may import them, and they import only the base
(``errors``, ``importpath``, ``runtime/``) and their own group. ``config`` (the option schema)
sits between the layers and ``models/``: its choices come from the cell registry and the
layers, and the models' recurrent spec takes its defaults from it.
"""

from __future__ import annotations

import ast
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "seqjax"

#: group -> (rank, module prefixes); a module may import lower ranks and its own group
LAYERS = {
    # errors, the import-path table and the process plumbing of seqjax/runtime/
    "base": (0, ("seqjax.errors", "seqjax.importpath", "seqjax.runtime")),
    "data": (1, ("seqjax.data",)),
    "losses": (1, ("seqjax.core.losses", "seqjax.core.activation_reg")),
    "attention": (1, ("seqjax.core.attention",)),
    "decoding": (1, ("seqjax.core.decoding",)),
    "evaluation": (1, ("seqjax.core.evaluation",)),
    "cells": (2, ("seqjax.core", "seqjax.core.cellbase", "seqjax.core.cells", "seqjax.core.mincells",
                  "seqjax.core.paracells", "seqjax.core.recurrence", "seqjax.core.newton",
                  "seqjax.core.loops", "seqjax.core.weight_drop", "seqjax.core.embedding_dropout")),
    "layers": (3, ("seqjax.core.layers",)),
    "config": (4, ("seqjax.config",)),  # the option schema: choices from cells and layers
    "models": (5, ("seqjax.models",)),  # the spec's defaults come from config
    "tasks": (6, ("seqjax.tasks",)),
    "training": (7, ("seqjax.training",)),
    "app": (8, ("seqjax.app", "seqjax.__main__")),
}
LEAVES = {"data", "losses", "attention", "decoding", "evaluation"}


def modules() -> list[str]:
    """Every module of the package (``seqjax.x.y``; a package as its own name)."""
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


def source(module: str) -> pathlib.Path:
    path = ROOT.parent.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def group(module: str) -> str | None:
    """The layer of ``module`` (longest matching prefix), ``None`` when it has none."""
    best = None
    for name, (_, prefixes) in LAYERS.items():
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and (best is None or len(p) > best[1]):
                best = (name, len(p))
    return best and best[0]


def imports(module: str) -> set[str]:
    """seqjax modules that ``module`` imports anywhere in its file (function bodies included)."""
    tree = ast.parse(source(module).read_text(encoding="utf-8"))
    pkg = module if source(module).name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from seqjax import config` imports seqjax.config; `from seqjax.x import f` imports seqjax.x
            names = [f"{base}.{a.name}" for a in node.names]
            out |= {n if n in ALL else base for n in names}
    return {m for m in out if m == "seqjax" or m.startswith("seqjax.")}


ALL = set(modules())


@pytest.mark.parametrize("module", sorted(ALL - {"seqjax"}))
def test_import_order(module):
    assert group(module) is not None, f"{module}: not in tests/test_layering.py LAYERS; give it a layer"
    name = group(module)
    rank = LAYERS[name][0]
    for dep in sorted(imports(module) - {"seqjax"}):
        dep_group = group(dep)
        assert dep_group is not None, f"{module} imports {dep}, which has no layer"
        if dep_group == name:
            continue
        if name in LEAVES:
            assert LAYERS[dep_group][0] == 0, f"{module} (a leaf) imports {dep} ({dep_group})"
        assert LAYERS[dep_group][0] < rank, f"{module} ({name}) imports {dep} ({dep_group}), a layer above it"


def test_the_scan_sees_function_level_imports():
    """The AST scan finds imports inside functions (the ones a lazy import would hide)."""
    assert "seqjax.training.inference" in imports("seqjax.app.commands")
    assert "seqjax.tasks" in imports("seqjax.app.bench")
    assert group("seqjax.data.vocab") == "data" and group("seqjax.models.seq2seq") == "models"


def test_every_module_imports_alone():
    """One interpreter imports each module with no seqjax module loaded before it: an import
    cycle fails as a partially initialised module."""
    code = (
        "import importlib, sys, traceback\n"
        "bad = []\n"
        "for name in sys.argv[1:]:\n"
        "    for m in [m for m in sys.modules if m == 'seqjax' or m.startswith('seqjax.')]:\n"
        "        del sys.modules[m]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as e:\n"
        "        bad.append(f'{name}: {type(e).__name__}: {e}')\n"
        "print('\\n'.join(bad))\n"
    )
    names = sorted(ALL - {"seqjax.__main__"})  # __main__ runs the CLI
    out = subprocess.run(
        [sys.executable, "-c", code, *names],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def import_circles() -> list[list[str]]:
    """The import circles between seqjax modules (function-level imports included): each a
    list of modules where each imports the next and the last the first."""
    graph = {m: sorted(imports(m) & ALL - {m}) for m in ALL}
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(m):  # Tarjan's strongly connected components
        index[m] = low[m] = len(index)
        stack.append(m)
        on_stack.add(m)
        for dep in graph[m]:
            if dep not in index:
                visit(dep)
                low[m] = min(low[m], low[dep])
            elif dep in on_stack:
                low[m] = min(low[m], index[dep])
        if low[m] == index[m]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == m:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for m in sorted(graph):
        if m not in index:
            visit(m)
    return circles


def test_no_import_circle_between_modules():
    """Registries live in base modules (seqjax.core.cellbase, seqjax.data.synthetic,
    seqjax.models.spec): a module that registers imports the registry, never the reverse."""
    # the package's __init__ imports its public names; no module imports the package back
    assert import_circles() == []


def test_the_circle_scan_finds_a_circle(monkeypatch):
    real = imports

    def fake(module):
        return real(module) | ({"seqjax.core.mincells"} if module == "seqjax.core.cellbase" else set())

    monkeypatch.setitem(globals(), "imports", fake)
    assert ["seqjax.core.cellbase", "seqjax.core.mincells"] in import_circles()


#: a file the code cites: a path below one of the repository's folders, or a top-level document
CITED = re.compile(r"(?<![\w./-])((?:seqjax|docs|experiments|tests|benchmarks|scripts|\.ci)/[\w./-]*\.\w+"
                   r"|[A-Z]+\.md)(?![\w/])")


def test_every_cited_file_exists():
    """Docstrings and comments cite files (``docs/design.md``, ``experiments/results/ptb.md``,
    ``seqjax/core/recurrence.py``): each exists in the repository."""
    repo = ROOT.parent
    missing = []
    for folder in ("seqjax", "tests", "benchmarks", "scripts", "experiments"):
        for path in sorted((repo / folder).rglob("*.py")):
            for match in CITED.finditer(path.read_text(encoding="utf-8")):
                cited = match.group(1).rstrip(".")
                if not (repo / cited).exists():
                    missing.append(f"{path.relative_to(repo)} cites {cited}")
    assert missing == []


def test_every_document_link_resolves():
    """The relative links of README.md and docs/*.md point at files of the repository."""
    repo = ROOT.parent
    missing = []
    for doc in [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text(encoding="utf-8")):
            if "://" not in target and not (doc.parent / target).exists():
                missing.append(f"{doc.relative_to(repo)} links {target}")
    assert missing == []
