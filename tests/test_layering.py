"""The package's imports run one way, downwards (README, "Architecture").

Every ``import`` and ``from ... import`` in ``seqcast/`` is read with :mod:`ast` (those inside
functions and ``TYPE_CHECKING`` blocks too); a module may import its own package and any layer
below its own, never one above or beside it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "seqcast"

#: Layers from the top; each entry is a module or package under ``seqcast``.
LAYERS: list[tuple[str, ...]] = [
    ("__init__", "__main__"),
    ("cli",),
    ("cli_options", "console"),
    ("serving", "report"),
    ("plotting",),
    ("prediction", "frames", "batch"),
    ("engines",),
    ("evaluation",),
    ("persistence",),
    ("forecasters",),
    ("training",),
    ("networks",),
    ("_native", "data"),
    ("errors", "atomic", "_version"),
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def unit(module: str) -> str:
    """The layer unit of a dotted module name under seqcast: 'seqcast.data.windows' -> 'data'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path, root: Path = PACKAGE) -> str:
    relative = path.relative_to(root.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1] if len(parts) > 2 else [*parts[:-1], "__init__"]
    return ".".join(parts)


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every seqcast import in the file at ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("seqcast")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "seqcast":  # from seqcast import _native, plotting, ...
                found += [(node.lineno, f"seqcast.{a.name}") for a in node.names]
            elif node.module.startswith("seqcast."):
                found.append((node.lineno, node.module))
    return found


def upward_imports(root: Path) -> list[str]:
    problems = []
    for path in sorted(root.rglob("*.py")):
        source = unit(module_name(path, root))
        for line, target in imported(path):
            other = unit(target)
            if other == source:
                continue
            if RANK[other] <= RANK[source]:  # a layer above, or the same layer
                where = path.relative_to(root.parent)
                problems.append(f"{where}:{line} ({source}) imports {target} ({other})")
    return problems


def test_every_module_belongs_to_a_layer() -> None:
    units = {unit(module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert units <= set(RANK), f"no layer for {sorted(units - set(RANK))}"


def test_imports_run_downwards() -> None:
    assert upward_imports(PACKAGE) == []


@pytest.mark.parametrize(
    ("importer", "statement"),
    [
        ("networks/net.py", "from seqcast.training.loop import train"),
        ("training/loop.py", "import seqcast.forecasters.base"),
        ("_native/stack.py", "from seqcast import networks"),
        ("data/windows.py", "from seqcast._native import compiled"),  # beside, not below
        ("forecasters/neural.py", "def f():\n    from seqcast.cli import main"),
    ],
)
def test_an_upward_or_sideways_import_is_caught(
    tmp_path: Path, importer: str, statement: str
) -> None:
    root = tmp_path / "seqcast"
    file = root / importer
    file.parent.mkdir(parents=True)
    file.write_text(statement + "\n")
    assert len(upward_imports(root)) == 1


def test_the_core_never_prints() -> None:
    """Only the faces (command line, service, report, plots) write to a screen."""
    faces = {"cli", "cli_options", "console", "serving", "report", "plotting", "__main__"}
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if unit(module_name(path)) in faces:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            name = None
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                name = node.func.id
            if name == "print":
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} print")
            if isinstance(node, ast.ImportFrom | ast.Import):
                modules = (
                    [node.module]
                    if isinstance(node, ast.ImportFrom)
                    else [a.name for a in node.names]
                )
                if any(m and m.split(".")[0] in ("rich", "matplotlib") for m in modules):
                    offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} imports a screen")
    assert offenders == []
