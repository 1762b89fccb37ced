"""The layers keep their direction: the numerical core imports none of the layers above it, nothing
in the product imports the experiments, and the commands answer --help without loading torch."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = sorted(p for p in (ROOT / "pdekit").glob("*.py")) + sorted((ROOT / "pdekit" / "files").glob("*.py"))
# a deprecated name kept for old code: pdekit.precond.load resolves, lazily, to its new place
DEPRECATION_SHIMS = {("precond.py", "pdekit.learning.solvers")}


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _under(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_core_imports_no_layer_above_it(path):
    above = {name for name in imported_modules(path)
             if _under(name, "models", "datagen", "experiments", "pdekit.learning", "pdekit.problems", "lightning")}
    above -= {module for file, module in DEPRECATION_SHIMS if path.name == file}
    assert not above, f"{path.relative_to(ROOT)} imports {sorted(above)}"


def test_pdekit_imports_neither_models_nor_datagen_and_nothing_imports_experiments():
    for package, forbidden in (("pdekit", ("models", "datagen", "experiments")), ("models", ("datagen", "experiments")),
                               ("datagen", ("experiments",))):
        for path in (ROOT / package).rglob("*.py"):
            bad = {name for name in imported_modules(path) if _under(name, *forbidden)}
            assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


@pytest.mark.parametrize("module,parser", [("pdekit.learning.cli", "build_parser"), ("datagen.cli", "build_parser")])
def test_help_does_not_load_torch(module, parser):
    code = (f"import sys; from {module} import {parser}; {parser}().format_help(); "
            "heavy = [m for m in ('torch', 'lightning', 'neuralop', 'scipy', 'h5py') if m in sys.modules]; "
            "print(heavy); assert not heavy")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
