"""The code's shape holds: layers (import-linter, run by `make lint` and here), no import cycle,
and no first-party import inside a function unless it defers a heavy library on purpose."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("peak", "glue", "ingestion", "activation", "dashboard", "contracts", "generator")
#: Beyond this a module is several modules in one file (tests excepted).
MAX_MODULE_LINES = 650


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Every set of modules that import each other in a circle (Tarjan's strongly connected
    components with more than one module, or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0

    def visit(module: str) -> None:
        nonlocal counter
        index[module] = low[module] = counter
        counter += 1
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1 or module in graph.find_modules_directly_imported_by(module):
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return cycles


def source_files() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def undeclared_function_imports(path: Path, root: Path = ROOT) -> list[str]:
    """First-party imports inside functions without a ``# deferred: <reason>`` comment."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    found = []
    for function in ast.walk(ast.parse(text)):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if not any(n.split(".")[0] in PACKAGES for n in names):
                continue
            statement = lines[node.lineno - 1 : node.end_lineno]
            if not any("# deferred:" in line for line in statement):
                found.append(f"{path.relative_to(root)}:{node.lineno}: {statement[0].strip()}")
    return found


def test_no_import_cycles():
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False)
    assert import_cycles(graph) == []


def test_the_cycle_check_finds_a_cycle(tmp_path, monkeypatch):
    package = tmp_path / "circle"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from circle import b\n")
    (package / "b.py").write_text("def f():\n    from circle import a\n")
    (package / "c.py").write_text("from circle import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("circle", include_external_packages=False, cache_dir=None)
    assert import_cycles(graph) == [["circle.a", "circle.b"]]


def test_first_party_imports_inside_functions_only_defer_heavy_libraries():
    found = [line for path in source_files() for line in undeclared_function_imports(path)]
    assert found == []


def test_the_deferred_import_check_finds_an_undeclared_one(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "def f():\n    from peak.core import lake\n\n"
        "def g():\n    from glue.engine import build_engine  # deferred: duckdb\n\n"
        "def h():\n    import json\n"
    )
    assert undeclared_function_imports(module, tmp_path) == ["m.py:2: from peak.core import lake"]


def test_the_layers_hold():
    """import-linter's layers contract (pyproject.toml [tool.importlinter])."""
    run = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert "0 broken" in run.stdout


@pytest.mark.parametrize("layer_breach", ["from peak.cli import app\n"])
def test_the_layers_contract_catches_a_lower_layer_importing_a_higher_one(tmp_path, layer_breach):
    """A copy of the layers contract over a miniature tree: the core importing the CLI breaks it."""
    for module in ("cli", "core"):
        (tmp_path / "peak" / module).mkdir(parents=True)
        (tmp_path / "peak" / module / "__init__.py").write_text("")
    (tmp_path / "peak" / "__init__.py").write_text("")
    (tmp_path / "peak" / "cli" / "app.py").write_text("from peak.core import lake\n")
    (tmp_path / "peak" / "core" / "lake.py").write_text(layer_breach)
    config = tmp_path / "layers.toml"
    config.write_text(
        '[tool.importlinter]\nroot_package = "peak"\n\n'
        '[[tool.importlinter.contracts]]\nname = "layers"\ntype = "layers"\n'
        'layers = ["peak.cli", "peak.core"]\n'
    )
    run = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--config", str(config), "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 1, run.stdout
    assert "1 broken" in run.stdout and "peak.core.lake -> peak.cli" in run.stdout


def test_no_module_outside_the_tests_is_several_modules_in_one_file():
    tracked = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "*.py"], capture_output=True, text=True, check=True
    ).stdout.split()
    sizes = {
        name: len((ROOT / name).read_text(encoding="utf-8").splitlines())
        for name in tracked
        if not name.startswith("tests/") and (ROOT / name).exists()
    }
    assert {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES} == {}
