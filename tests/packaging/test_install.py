"""alertanim installs under its own name: distributions (or an application's own modules) named
`agents`, `pipeline` and `schemas`, all three of which exist on PyPI, import beside it."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NAMES = ("agents", "pipeline", "schemas")


def _stub(root: Path, name: str) -> Path:
    """A distribution named `name` that installs a top-level module `name`."""
    project = root / f"stub-{name}"
    (project / name).mkdir(parents=True)
    (project / name / "__init__.py").write_text(f"STUB = {name!r}\n")
    (project / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{name}"
        version = "9.9.9"

        [tool.setuptools]
        packages = ["{name}"]
        """))
    return project


def _pip(python: Path, *args: str) -> None:
    """This interpreter's pip installing into the venv of `python`, offline, building with the
    setuptools the tests already have."""
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                           "--no-deps", "--no-build-isolation", "--no-index", "-q", *args],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("editable", [False, True], ids=["wheel", "editable"])
def test_alertanim_imports_beside_distributions_named_agents_pipeline_and_schemas(tmp_path,
                                                                                 editable):
    venv = tmp_path / "venv"
    # the system's packages (torch, pydantic, …) stay visible; the stubs and alertanim are the
    # venv's own
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    _pip(python, *(str(_stub(tmp_path, n)) for n in NAMES))
    _pip(python, *(["-e", str(REPO)] if editable else [str(REPO)]))
    probe = textwrap.dedent("""\
        import json
        import agents, pipeline, schemas
        import alertanim.agents.topology, alertanim.pipeline.stage, alertanim.schemas.errors
        from importlib.metadata import version
        print(json.dumps({
            "stubs": [agents.STUB, pipeline.STUB, schemas.STUB],
            "ours": [alertanim.agents.topology.__file__, alertanim.pipeline.stage.__file__,
                     alertanim.schemas.errors.__file__],
            "version": version("alertanim")}))
        """)
    # run outside the repository, so its folders are not on the path by accident
    out = subprocess.run([str(python), "-c", probe], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    import json

    found = json.loads(out.stdout)
    assert found["stubs"] == list(NAMES)
    ours = [Path(f) for f in found["ours"]]
    assert [p.parent.name for p in ours] == list(NAMES)
    if editable:  # the tree's own folders, mapped under alertanim
        assert all(p.is_relative_to(REPO) for p in ours)
    else:  # copies inside the venv, under alertanim/
        assert all(p.is_relative_to(venv) and p.parent.parent.name == "alertanim" for p in ours)
    assert found["version"] == "0.1.0"
