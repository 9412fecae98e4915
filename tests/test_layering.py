"""The house's layering, read from the source: no import circles, no arrow back up, inference loads no training.

Every ``import`` and ``from ... import`` in every module of ``bayesinv/`` counts, including imports inside
functions (a lazy import is still a dependency; it only hides a circle). ``from package import name`` is an
arrow to ``package.name`` when that is a module, else to the package's ``__init__``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bayesinv"

# the foundation: these may import each other but nothing that builds on them
LOWER = ("bayesinv.priors", "bayesinv.operators", "bayesinv.noise", "bayesinv.diagnostics", "bayesinv.errors",
         "bayesinv._validation", "bayesinv.problem", "bayesinv.posterior", "bayesinv.data")
UPPER = ("bayesinv.samplers", "bayesinv.studies", "bayesinv.training", "bayesinv.report", "bayesinv.builders",
         "bayesinv.sampling", "bayesinv.cli", "bayesinv.demo")
# No arrow back up is expected: the schedule maths the diffusion prior needs live in priors/schedules.py.
EXPECTED_UPWARD: set[tuple[str, str]] = set()


def _modules() -> dict[str, tuple[Path, bool]]:
    """``{dotted name: (path, is_package)}`` for every ``.py`` file under ``bayesinv/``."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _imports(module: str, path: Path, is_package: bool, known: dict) -> set[str]:
    """The bayesinv modules ``module`` imports anywhere in its source."""
    package = module if is_package else module.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            for alias in node.names:
                targets.add(f"{name}.{alias.name}" if f"{name}.{alias.name}" in known else name)
    targets = {t for t in targets if t == "bayesinv" or t.startswith("bayesinv.")}
    unknown = targets - set(known)
    assert not unknown, f"{module} imports {sorted(unknown)}, which are not modules of bayesinv"
    return targets - {module}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    known = _modules()
    return {module: _imports(module, path, is_package, known) for module, (path, is_package) in known.items()}


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _cycle_through(start: str, graph: dict[str, set[str]]) -> list[str] | None:
    """A shortest import path ``start -> ... -> start`` (breadth-first), or None."""
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node]):
                if target == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [start] + path[::-1][1:] + [start]
                if target not in parent:
                    parent[target] = node
                    following.append(target)
        frontier = following
    return None


def test_cycle_finder_on_a_known_graph():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"a"}}
    assert _cycle_through("a", graph) == ["a", "b", "c", "a"]
    assert _cycle_through("c", graph) == ["c", "a", "b", "c"]
    assert _cycle_through("d", graph) is None and _cycle_through("e", graph) is None


def _reachable(start: str, graph: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in graph[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def test_the_graph_is_read_from_the_source(graph):
    # a known arrow of each kind, so that a broken parser cannot pass the tests below by finding nothing
    assert "bayesinv.priors.networks.weights" in graph["bayesinv.priors.hub"]  # from x.y import z
    assert "bayesinv.priors.exact" in graph["bayesinv.builders"]  # an import inside a function
    assert "bayesinv.samplers.registry" in graph["bayesinv.samplers"]  # a package __init__


def test_no_import_circles(graph):
    cycles = {tuple(c) for m in graph if (c := _cycle_through(m, graph)) is not None}
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in sorted(cycles))


def test_no_arrow_from_the_foundation_up(graph):
    upward = {(m, t) for m, targets in graph.items() if _under(m, LOWER) for t in targets if _under(t, UPPER)}
    unexpected = upward - EXPECTED_UPWARD
    assert not unexpected, "arrows back up:\n" + "\n".join(f"{m} -> {t}" for m, t in sorted(unexpected))


def test_only_the_training_room_imports_training_and_sampling_needs_no_studies(graph):
    outside = {(m, t) for m, targets in graph.items() if not _under(m, ("bayesinv.training",))
               for t in targets if _under(t, ("bayesinv.training",))}
    assert not outside, f"modules outside bayesinv.training import it: {sorted(outside)}"
    for start in ("bayesinv.sampling", "bayesinv.builders", "bayesinv.samplers"):
        studies = {m for m in _reachable(start, graph) if _under(m, ("bayesinv.studies",))}
        assert not studies, f"{start} reaches the studies layer: {sorted(studies)}"


_LOAD_FOR_INFERENCE = """
import json, sys
import torch
from bayesinv import Gaussian, InverseProblem
from bayesinv.operators import make_operator
from bayesinv.priors.hub import load_prior
from bayesinv.samplers.baselines import unrolled
from bayesinv.samplers.dirac_model import load_dirac

prior = load_prior("phantom32")
dirac = load_dirac("dirac-blur32")
problem = InverseProblem(make_operator("deblur", (1, 32, 32), std=1.5), Gaussian(0.05))
post = unrolled(problem, torch.zeros(1, 1, 32, 32))  # loads unrolled-deblur32 and compares operators
import bayesinv
print(json.dumps({"file": bayesinv.__file__, "loaded": [type(prior).__name__, dirac.name, post.extras["model"]],
                  "modules": sorted(m for m in sys.modules if m.startswith("bayesinv"))}))
"""


def test_loading_for_inference_imports_no_training_and_no_phantom_generator():
    result = subprocess.run([sys.executable, "-c", _LOAD_FOR_INFERENCE], capture_output=True, text=True,
                            check=True, cwd=PACKAGE.parent, timeout=300)
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(out["file"]).resolve() == PACKAGE / "__init__.py"  # this checkout's code, not an installed copy
    assert out["loaded"] == ["DiffusionPrior", "dirac-blur32", "unrolled-deblur32"]
    assert "bayesinv.priors.networks.weights" in out["modules"]  # the loading code did run
    banned = [m for m in out["modules"] if _under(m, ("bayesinv.training", "bayesinv.data.phantoms"))]
    assert not banned, f"loading for inference imported {banned}"
