"""How the code imports, read from the source with `ast`: a test never imports another test
module nor a benchmark (what they share lives in tests/support/), and nothing imports the
packages by the folder names they have in the tree (`agents`, `pipeline`, `schemas`), only as
installed (`alertanim.agents`, ...) or relatively."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
TREE_NAMES = {"agents", "pipeline", "schemas"}
SOURCES = sorted(p for folder in ("agents", "pipeline", "schemas", "tests", "deploy")
                 for p in (ROOT / folder).rglob("*.py"))
TEST_MODULES = sorted(p for p in TESTS.rglob("*.py")
                      if p.name.startswith("test_") or p.name == "conftest.py")


def imported(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """Every module `path` imports, anywhere in it, as an absolute dotted name with its line;
    for `from X import y`, both `X` and `X.y` (y may be a module)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = list(path.relative_to(root).parts[:-1])
                base = package[:len(package) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def imports_of_tests_or_benchmarks(path: Path, root: Path = ROOT) -> list[str]:
    """What `path` imports that is a test module or lies under tests.bench."""
    bad = set()
    for line, name in imported(path, root):
        parts = name.split(".")
        if parts[0] != "tests":
            continue
        if parts[:2] == ["tests", "bench"] or any(p.startswith("test_") for p in parts):
            bad.add(f"line {line}: {name}")
    return sorted(bad)


def by_tree_name(path: Path) -> list[str]:
    """The absolute imports in `path` of `agents`, `pipeline` or `schemas` by that bare name."""
    bad = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        else:
            continue
        bad |= {f"line {node.lineno}: {n}" for n in names if n.split(".")[0] in TREE_NAMES}
    return sorted(bad)


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", TEST_MODULES, ids=_id)
def test_no_test_module_imports_another_test_module_or_a_benchmark(path):
    assert imports_of_tests_or_benchmarks(path) == []


@pytest.mark.parametrize("path", SOURCES, ids=_id)
def test_nothing_imports_the_packages_by_their_folder_names(path):
    assert by_tree_name(path) == []


def test_the_checks_catch_each_form_of_import_and_pass_the_allowed_ones(tmp_path):
    folder = tmp_path / "tests" / "agents"
    folder.mkdir(parents=True)
    probe = folder / "test_probe.py"
    probe.write_text("from .test_other import make\n"
                     "from . import test_sibling\n"
                     "from ..bench import bench_x\n"
                     "import tests.bench.flops\n"
                     "def f():\n"
                     "    from tests.agents.test_deep import g\n"
                     "from tests.support.kafka import consume\n"
                     "from .conftest import fixture_helper\n"
                     "import pipeline.mask\n"
                     "from schemas import Alert\n"
                     "from alertanim.agents import app\n"
                     "from .pipeline import x\n"
                     "import agents\n")
    assert imports_of_tests_or_benchmarks(probe, tmp_path) == [
        "line 1: tests.agents.test_other", "line 1: tests.agents.test_other.make",
        "line 2: tests.agents.test_sibling", "line 3: tests.bench",
        "line 3: tests.bench.bench_x", "line 4: tests.bench.flops",
        "line 6: tests.agents.test_deep", "line 6: tests.agents.test_deep.g"]
    assert by_tree_name(probe) == ["line 10: schemas", "line 13: agents", "line 9: pipeline.mask"]
