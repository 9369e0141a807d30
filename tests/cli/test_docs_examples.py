"""The commands and code in README.md and docs/ still match the CLI and the API.

Every `flowood ...` line in a shell block is parsed by the real CLI (options, arguments and their types,
without running the command); README's Python example runs; the Python snippets in docs/ import names
that exist and call them with arguments their signatures accept.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import math
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer

from flowood.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]


def _blocks(path: Path, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", path.read_text(), re.S)


def _cli_lines() -> list[tuple[str, str]]:
    lines = []
    for path in DOCS:
        for block in _blocks(path, "(?:bash|sh|console)?"):
            for line in block.splitlines():
                for part in line.split("&&"):
                    part = part.strip().replace("python -m flowood", "flowood")
                    if part.startswith("flowood "):
                        lines.append((path.name, part))
    return lines


CLI_LINES = _cli_lines()


def test_docs_have_cli_examples() -> None:
    assert len(CLI_LINES) >= 20


@pytest.mark.parametrize(
    "line", [line for _, line in CLI_LINES], ids=[f"{name}:{i}" for i, (name, _) in enumerate(CLI_LINES)]
)
def test_documented_command_parses(line: str) -> None:
    # Drop the comment, and read `[--opt X]` (optional) and `...` (more of the same) as plain text.
    cmd = re.split(r"\s#", line)[0].replace("[", " ").replace("]", " ").replace("...", " ")
    args = shlex.split(cmd)[1:]
    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="flowood")
    sub = root.get_command(ctx, args[0])
    assert sub is not None, f"no command {args[0]!r} in: {line}"
    try:
        sub.make_context(args[0], args[1:], parent=ctx)
    except Exception as err:  # the CLI library's UsageError/BadParameter (click or typer's vendored copy)
        message = err.format_message() if hasattr(err, "format_message") else repr(err)
        pytest.fail(f"documented command does not parse: {line}\n  -> {message}")


def test_readme_python_example_runs_and_does_what_its_comments_say() -> None:
    block = _blocks(ROOT / "README.md", "python")[0]  # the flows example; the trained-run one is a snippet below
    ns: dict[str, Any] = {}
    exec(compile(block, "README.md", "exec"), ns)
    torch, flow, x, images = ns["torch"], ns["flow"], ns["x"], ns["images"]
    # Every `expression  # (shape)` line: the expression evaluates to a tensor of that shape.
    shapes = 0
    for line in block.splitlines():
        code, _, comment = line.partition("#")
        found = re.match(r"\s*\(([\d, ]+)\)", comment)
        if found and code.strip() and isinstance(ast.parse(code.strip()).body[0], ast.Expr):
            shape = tuple(int(n) for n in found.group(1).replace(" ", "").strip(",").split(","))
            assert tuple(eval(code.strip(), ns).shape) == shape, line
            shapes += 1
    assert shapes >= 2
    # `z, logdet = flow(x)  # z: (8, 1, 28, 28), logdet: (8,)` and the round trip.
    assert ns["z"].shape == (8, 1, 28, 28) and ns["logdet"].shape == (8,)
    assert torch.allclose(ns["x_back"], x, atol=1e-4)
    # The flows the first comment lists exist.
    listed = re.findall(r"'([\w-]+)'", block.splitlines()[2])
    assert listed and set(listed) <= set(ns["flowood"].available_flows())
    # bits/dim = −log-likelihood / (D · ln 2) on the same dequantisation noise; for images, log_likelihood
    # is the discrete 8-bit likelihood.
    with torch.no_grad():
        flow.set_dequantization_rng(torch.Generator().manual_seed(0))
        nats = flow.log_likelihood_8bit(images)
        flow.set_dequantization_rng(torch.Generator().manual_seed(0))
        bpd = flow.bits_per_dim(images)
        flow.set_dequantization_rng(torch.Generator().manual_seed(0))
        same = flow.log_likelihood(images)
    assert torch.allclose(bpd, -nats / (images[0].numel() * math.log(2.0)), rtol=1e-5)
    assert torch.allclose(same, nats)
    assert bool((nats < 0).all())  # a discrete likelihood is a probability: log p < 0
    # Finest first: the pieces of a 2-scale flow hold all D dimensions, the first at half resolution.
    pieces = flow.split_latent(ns["z"])
    assert len(pieces) == 2 and pieces[0].shape[-1] == 14 and sum(p[0].numel() for p in pieces) == 28 * 28


def _snippets() -> list[tuple[str, str]]:
    readme = [("README.md", b) for b in _blocks(ROOT / "README.md", "python")[1:]]
    return readme + [(p.name, b) for p in DOCS if p.name != "README.md" for b in _blocks(p, "python")]


@pytest.mark.parametrize("snippet", [b for _, b in _snippets()], ids=[n for n, _ in _snippets()])
def test_docs_snippet_names_and_signatures_exist(snippet: str) -> None:
    # The snippets use placeholders (images, RUN, a weights path), so they are checked, not run.
    tree = ast.parse(snippet)
    imported: dict[str, Any] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("flowood"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{node.module} has no {alias.name}"
                imported[alias.asname or alias.name] = getattr(module, alias.name)
    assert imported, "snippet imports nothing from flowood"
    calls = 0
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in imported):
            continue
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            continue
        signature = inspect.signature(imported[node.func.id])
        try:
            signature.bind(*node.args, **{k.arg: k.value for k in node.keywords if k.arg})
        except TypeError as err:
            pytest.fail(f"{ast.unparse(node)} does not fit {node.func.id}{signature}: {err}")
        calls += 1
    assert calls, "snippet calls nothing it imports"
