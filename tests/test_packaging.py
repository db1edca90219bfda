"""Packaging that holds on a fresh machine.

Every third-party module that ``seqcast/`` imports is declared in ``pyproject.toml``: in the
base dependencies when the import can run without an extra, else in the extra that names it.
One test installs the package *without extras* into a new virtual environment (torch pinned by
``constraints.txt``) and runs a backtest from the command line.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "seqcast"
#: Import name -> distribution name, where they differ in more than case.
DISTRIBUTIONS = {"pydantic_core": "pydantic-core", "yaml": "pyyaml"}
#: The modules allowed to import what an extra brings, and which extra.
EXTRA_USERS = {
    "serving": "serve",
    "plotting": "plot",
    "data/loading.py": "parquet",
    "engines/ray_engine.py": "ray",
    "engines/dask_engine.py": "dask",
}


def declared() -> tuple[set[str], dict[str, set[str]]]:
    """The base dependencies and each extra's, as lower-case distribution names."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in requirements}

    extras = {k: names(v) for k, v in project["optional-dependencies"].items()}
    return names(project["dependencies"]), extras


def third_party_imports() -> list[tuple[Path, str]]:
    """(file, distribution) of every import that is neither seqcast nor the standard library."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            modules: list[str] = []
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            for module in modules:
                top = module.split(".")[0]
                if top == "seqcast" or top in sys.stdlib_module_names:
                    continue
                found.append((path, DISTRIBUTIONS.get(top, top).replace("_", "-").lower()))
    return found


def test_every_import_is_declared_where_it_is_used() -> None:
    base, extras = declared()
    problems = []
    for path, distribution in third_party_imports():
        if distribution in base:
            continue
        relative = path.relative_to(PACKAGE).as_posix()
        extra = next((e for user, e in EXTRA_USERS.items() if relative.startswith(user)), None)
        if extra is None or distribution not in extras.get(extra, set()):
            problems.append(f"{relative} imports {distribution}, declared for it in no extra")
    assert problems == []


def test_the_base_install_needs_no_click() -> None:
    """typer vendors click now; only uvicorn (the serve extra) brought it in."""
    assert all(distribution != "click" for _, distribution in third_party_imports())


@pytest.mark.skipif(
    os.environ.get("SEQCAST_SKIP_INSTALL_TEST") == "1", reason="SEQCAST_SKIP_INSTALL_TEST=1"
)
def test_a_fresh_install_without_extras_runs_a_backtest(tmp_path: Path) -> None:
    """pip install -c constraints.txt . into a new environment, then the command line."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "-c", str(ROOT / "constraints.txt"), str(ROOT)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    installed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True
    ).stdout.lower()
    assert "torch==2.13.0" in installed  # the pinned CPU build, never another
    assert not any(extra in installed for extra in ("fastapi==", "matplotlib==", "pyarrow=="))
    seqcast = venv / "bin" / "seqcast"
    run = subprocess.run(
        [str(seqcast), "backtest", "synthetic", "-m", "naive", "--quiet"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "5.938" in run.stdout  # the course's naive MAE
    # A neural model and the compiled recurrence work in the base install too.
    run = subprocess.run(
        [str(python), "-c", "import seqcast, seqcast._native as n; print(n.available()); "
         "print(seqcast.create('rnn', epochs=1).name)"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["True", "rnn"]
    # What an extra brings is named with an install hint, in one line.
    serve = subprocess.run(
        [str(seqcast), "serve", str(tmp_path)], capture_output=True, text=True, cwd=tmp_path
    )
    assert serve.returncode == 2 and "seqcast[serve]" in serve.stderr
