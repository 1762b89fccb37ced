"""Every shell and Python block of the README and of the manual (docs/) runs as written, page by
page in a fresh working folder, in the order the page gives them; YAML blocks parse.

A block that would take long at its documented sizes is preceded by a marker saying how the test
shrinks it (the one mechanism; shown in the page source, never in the rendered page):

    <!-- docs-test: replace "--n 800" "--n 8" ; replace "max_epochs 20" "max_epochs 1" -->

The working folder holds copies of experiments/ and docs/examples/ (blocks may write under them)
and links to the Makefile, pyproject.toml and constraints.txt; `make` uses this environment's .venv.
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md"] + sorted(p for p in (ROOT / "docs").rglob("*.md")
                                      if "_build" not in p.parts and "generated" not in p.parts)


def blocks(page: Path):
    """(language, code, line) of each fenced block, with its marker's replacements applied."""
    text = page.read_text()
    for match in re.finditer(r"```(?P<lang>[a-z]*)\n(?P<body>.*?)```", text, re.S):
        body = match.group("body")
        before = text[:match.start()].rstrip("\n")
        marker = re.search(r"<!-- docs-test: ([^\n]*?) -->\s*$", before)  # the line right above the block
        if marker:
            for directive in (d.strip() for d in marker.group(1).split(";") if d.strip()):
                words = shlex.split(directive)
                assert words[0] == "replace" and len(words) == 3, f"{page.name}: bad docs-test directive {directive!r}"
                assert words[1] in body, f"{page.name}: {words[1]!r} is not in the block it shrinks"
                body = body.replace(words[1], words[2])
        yield match.group("lang"), body, text[:match.start()].count("\n") + 1


def _workdir(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(ROOT / "experiments", work / "experiments", ignore=shutil.ignore_patterns("results", "__pycache__"))
    shutil.copytree(ROOT / "docs" / "examples", work / "docs" / "examples")
    for name in ("Makefile", "pyproject.toml", "constraints.txt"):
        (work / name).symlink_to(ROOT / name)
    return work


def _environment(work: Path) -> dict:
    venv = Path(sys.executable).parent
    return {**os.environ, "PATH": f"{venv}{os.pathsep}{os.environ['PATH']}", "VENV": str(venv.parent),
            "PYTHONPATH": str(work), "MPLBACKEND": "Agg"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_block_of_the_page_runs(page, tmp_path):
    work = _workdir(tmp_path)
    env = _environment(work)
    for lang, code, line in blocks(page):
        where = f"{page.relative_to(ROOT)}:{line}"
        if lang == "yaml":
            yaml.safe_load(code)
        elif lang in ("bash", "sh"):
            done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", code], cwd=work, env=env,
                                  capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, f"{where}: exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        elif lang == "python":
            done = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True,
                                  timeout=600)
            assert done.returncode == 0, f"{where}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"


def test_the_marker_mechanism_shrinks_only_what_it_names(tmp_path):
    page = tmp_path / "page.md"
    page.write_text('text\n\n<!-- docs-test: replace "--n 800" "--n 8" -->\n```bash\ndatagen --n 800\n```\n'
                    '```bash\ndatagen --n 800\n```\n')
    assert [code for _, code, _ in blocks(page)] == ["datagen --n 8\n", "datagen --n 800\n"]


def test_the_safety_page_names_every_loadable_class():
    from pdekit.learning.registry import LOADABLE

    text = (ROOT / "docs" / "guides" / "safety.md").read_text()
    missing = [path for path in sorted(LOADABLE) if path.rsplit(".", 1)[1] not in text]
    assert not missing, f"docs/guides/safety.md does not name {missing}"


def test_one_version_in_the_package_changelog_citation_and_pdekit_info():
    import pdekit

    changelog = re.search(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), re.M).group(1)
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())["version"]
    info = subprocess.run([str(Path(sys.executable).parent / "pdekit"), "info"], capture_output=True, text=True)
    assert changelog == citation == pdekit.__version__, (changelog, citation, pdekit.__version__)
    assert info.stdout.splitlines()[0] == f"pdekit {pdekit.__version__}"
    from importlib.metadata import version

    assert version("pdekit") == pdekit.__version__  # what pip installed
