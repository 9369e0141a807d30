"""The package's layering, checked statically and by importing.

Layers, lowest first (docs/ARCHITECTURE.md): utilities (errors, perf, host_allocator) → {flows, data, runs}
→ {train, ood, analysis, features} → experiments → cli. A module may import modules of its own layer or
below, never above — at module level *or* inside a function. A function-level import of a flowood
module whose own imports lead back to the importer is a cycle hidden from the import system; it is
forbidden too. Every module must import on its own (a fresh interpreter state per module).

Today's code has violations that other work in progress removes; they are listed, each with a reason and
the work that removes it, in :data:`KNOWN_VIOLATIONS`. The list can only shrink: a listed violation that
no longer exists fails the test too, so whoever fixes one deletes its entry.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.tiny import HANG_SECONDS

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "flowood"

#: Layer of each module, by longest matching name prefix (0 = bottom). A new module outside these
#: prefixes fails :func:`test_every_module_has_a_layer`: decide where it belongs and add it here and to
#: docs/ARCHITECTURE.md.
LAYERS: dict[str, int] = {
    "flowood.errors": 0,
    "flowood.atomic": 0,
    "flowood.settings": 0,
    "flowood.devices": 0,
    "flowood.perf": 0,
    "flowood.host_allocator": 0,
    "flowood.version": 0,
    "flowood": 5,  # the package root: the public API of every layer (flows eagerly, load_run on first use)
    "flowood.flows": 1,
    "flowood.data": 1,
    "flowood.runs": 1,
    "flowood.evaluation": 1,
    "flowood.train": 2,
    "flowood.ood": 2,
    "flowood.analysis": 2,
    "flowood.features": 2,
    "flowood.convert": 2,
    "flowood.experiments": 3,
    "flowood.cli": 4,
    "flowood.__main__": 4,
}


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    function_level: bool
    line: int


def module_names() -> list[str]:
    """Every module under src/flowood, as dotted names (packages by their own name)."""
    names = []
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def _path(module: str) -> Path:
    base = SRC.joinpath(*module.split("."))
    return base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"


def _resolve(importer: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = importer.split(".") if _path(importer).name == "__init__.py" else importer.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, known: set[str]) -> list[Import]:
    """flowood imports in ``module``'s source: ``from pkg import submodule`` counts as the submodule."""
    tree = ast.parse(_path(module).read_text())
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.split(".")[0] == PACKAGE:
                        found.append(Import(module, alias.name, in_function, child.lineno))
            elif isinstance(child, ast.ImportFrom):
                target = _resolve(module, child)
                if target.split(".")[0] == PACKAGE:
                    for alias in child.names:
                        sub = f"{target}.{alias.name}"
                        found.append(Import(module, sub if sub in known else target, in_function, child.lineno))
            visit(child, inner)

    visit(tree, False)
    return found


def layer(module: str) -> int | None:
    matches = [p for p in LAYERS if module == p or module.startswith(p + ".")]
    return LAYERS[max(matches, key=len)] if matches else None


def _graph() -> tuple[list[str], list[Import]]:
    names = module_names()
    known = set(names)
    edges = [imp for name in names for imp in imports_of(name, known)]
    return names, edges


def _reachable(edges: list[Import]) -> dict[str, set[str]]:
    """The modules each module may end up importing, through module- and function-level imports (and
    the packages the imported modules sit in)."""
    direct: dict[str, set[str]] = {}
    for e in edges:
        if e.imported != e.importer:
            targets = direct.setdefault(e.importer, set())
            parts = e.imported.split(".")
            # Importing a.b.c executes a.b's __init__ as well (the root package only re-exports flows).
            targets.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))
    closure: dict[str, set[str]] = {}
    for start in direct:
        seen: set[str] = set()
        stack = [start]
        while stack:
            for nxt in direct.get(stack.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        closure[start] = seen
    return closure


def violations() -> set[tuple[str, str, str]]:
    """``(kind, importer, imported)`` for every upward import and every cycle-dodging function import."""
    _, edges = _graph()
    found: set[tuple[str, str, str]] = set()
    for e in edges:
        a, b = layer(e.importer), layer(e.imported)
        if a is not None and b is not None and b > a:
            found.add(("upward", e.importer, e.imported))
    # A function-level import of a module that leads back to the importer closes an import cycle: at
    # module level the cycle would fail (or half-initialise a module); inside a function it only hides.
    reach = _reachable(edges)
    for e in edges:
        if e.function_level and e.imported != e.importer and e.importer in reach.get(e.imported, set()):
            found.add(("cycle-dodging function import", e.importer, e.imported))
    # Reading a run (its files, its flow) and evaluating it must not import the training loop.
    for e in edges:
        if e.importer in RUN_READERS and e.imported in TRAINING_LOOP:
            found.add(("run reader imports the training loop", e.importer, e.imported))
    # One home per helper: a function defined in two modules is a copy waiting to diverge.
    for name in ONE_HOME:
        homes = sorted(m for m in module_names() if _defines(m, name))
        if len(homes) > 1:
            found.update((f"{name} defined in {len(homes)} modules", m, name) for m in homes)
    return found


#: Modules that read or evaluate a finished run ("loading a run must not import the training loop").
RUN_READERS = {"flowood.runs", "flowood.experiments.runs", "flowood.experiments.evaluate"}
TRAINING_LOOP = {"flowood.train.trainer", "flowood.train.loop", "flowood.train.step"}
#: Functions that must have exactly one definition under src/flowood.
ONE_HOME = ["resolve_device"]


def _defines(module: str, name: str) -> bool:
    tree = ast.parse(_path(module).read_text())
    return any(isinstance(n, ast.FunctionDef) and n.name == name for n in tree.body)


#: Violations in today's code, each removed by work in progress.
#: Delete an entry when its import is gone; never add one (fix the import instead).
KNOWN_VIOLATIONS: dict[tuple[str, str, str], str] = {}


def test_every_module_has_a_layer():
    missing = [m for m in module_names() if layer(m) is None]
    assert not missing, f"modules without a layer in tests/test_layering.py LAYERS: {missing}"


def test_no_upward_or_cycle_dodging_imports():
    found = violations()
    new = sorted(found - set(KNOWN_VIOLATIONS))
    lines = [f"  {kind}: {a} -> {b}" for kind, a, b in new]
    assert not new, "imports against the layering (docs/ARCHITECTURE.md):\n" + "\n".join(lines)


def test_known_violations_still_exist():
    """The known list only shrinks: an entry whose import is gone must be deleted."""
    gone = sorted(set(KNOWN_VIOLATIONS) - violations())
    assert not gone, f"fixed, delete from KNOWN_VIOLATIONS in tests/test_layering.py: {gone}"


_IMPORT_EACH = """
import importlib, json, sys, traceback
failures = {}
for name in json.loads(sys.argv[1]):
    for key in [k for k in sys.modules if k == "flowood" or k.startswith("flowood.")]:
        del sys.modules[key]
    try:
        importlib.import_module(name)
    except Exception:
        failures[name] = traceback.format_exc(limit=3)[-600:]
print(json.dumps(failures))
"""


@pytest.mark.timeout(HANG_SECONDS)
def test_every_module_imports_on_its_own():
    """Each module imported first, with no flowood module loaded before it (third-party modules stay
    loaded: that is what makes one interpreter for all of them fast enough)."""
    names = [m for m in module_names() if m != "flowood.__main__"]  # importing it runs the CLI, by design
    env = {**os.environ, "PYTHONPATH": str(SRC), "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH, json.dumps(names)],
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_SECONDS,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    failures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not failures, "\n".join(f"{k}:\n{v}" for k, v in failures.items())


def test_the_checker_sees_upward_and_hidden_imports(tmp_path, monkeypatch):
    """The static checker itself: a planted upward import and a planted function-level cycle are found."""
    pkg = tmp_path / PACKAGE
    for sub, text in {
        "__init__.py": "",
        "errors.py": "from flowood.cli import app\n",  # utilities -> cli: upward
        "flows/__init__.py": "",
        "flows/a.py": "from flowood.flows import b\n",
        "flows/b.py": "def f():\n    from flowood.flows.a import x\n",  # a imports b at module level: cycle
        "cli/__init__.py": "",
        "cli/app.py": "",
        "data/__init__.py": "def resolve_device():\n    pass\n",
        "ood/__init__.py": "def resolve_device():\n    pass\n",
    }.items():
        (pkg / sub).parent.mkdir(parents=True, exist_ok=True)
        (pkg / sub).write_text(text)
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path)
    assert violations() == {
        ("upward", "flowood.errors", "flowood.cli.app"),
        ("cycle-dodging function import", "flowood.flows.b", "flowood.flows.a"),
        ("resolve_device defined in 2 modules", "flowood.data", "resolve_device"),
        ("resolve_device defined in 2 modules", "flowood.ood", "resolve_device"),
    }


if __name__ == "__main__":  # print today's violations in KNOWN_VIOLATIONS' format
    for v in sorted(violations()):
        print(f'    {v!r}: "",')
