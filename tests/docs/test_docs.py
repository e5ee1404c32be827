"""The documentation: the MkDocs site builds strictly (no broken link or anchor), its settings page
lists every setting, and the README stays a front door that links only to pages that exist."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from alertanim.agents.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MAX_README_LINES = 200


def _hooks():
    spec = importlib.util.spec_from_file_location("alertanim_docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _env_names(settings_cls) -> list[str]:
    config = settings_cls.model_config
    prefix, delimiter = config["env_prefix"], config["env_nested_delimiter"]
    names = []
    for name, info in settings_cls.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names += [f"{prefix}{name.upper()}{delimiter}{sub.upper()}"
                      for sub in annotation.model_fields]
        else:
            names.append(f"{prefix}{name.upper()}")
    return names


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("docs") / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
         str(ROOT / "mkdocs.yml"), "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    return out


def test_the_docs_build_strictly_with_every_page_in_the_nav(site):
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    pages = [next(iter(entry.values())) for entry in nav]
    for page in pages:
        built = site / ("index.html" if page == "index.md" else f"{page[:-3]}/index.html")
        assert built.is_file(), page
    assert not (site / "hooks.py").exists()


def test_the_settings_page_lists_every_setting(site):
    page = (site / "settings" / "index.html").read_text(encoding="utf-8")
    names = _env_names(Settings)
    assert len(names) > len(Settings.model_fields)  # the method's fields are listed one by one
    missing = [name for name in names if f"<code>{name}</code>" not in page]
    assert not missing, f"not on the settings page: {missing}"


def test_the_settings_reference_never_prints_a_secret_default():
    class Demo(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="DEMO_", env_nested_delimiter="__")

        # Connection
        host: str = "example.org"  # where to connect
        token: SecretStr = SecretStr("never-print-this-token")
        spare: SecretStr | None = None

    text = _hooks().settings_reference(Demo)
    assert "never-print-this-token" not in text
    assert "`DEMO_HOST`" in text and "`DEMO_TOKEN`" in text and "`DEMO_SPARE`" in text
    assert "## Connection" in text and "where to connect" in text
    assert text.count("*secret, not shown*") == 2


def test_the_readme_is_a_front_door_linking_only_to_pages_that_exist():
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines"
    nav = {next(iter(entry.values())) for entry in
           yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]}
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    assert targets, "the README links to the docs"
    for target in targets:
        if re.match(r"[a-z]+:", target):
            continue
        path = target.split("#", 1)[0]
        assert path.startswith("docs/") and path.endswith(".md"), target
        assert (ROOT / path).is_file(), target
        assert path.removeprefix("docs/") in nav, target


def test_ci_runs_the_readmes_test_command():
    command = ("deploy/local/chromium.sh && python3 -m pip install -e '.[test]' && "
               "python3 -m pytest")
    assert command in README.read_text(encoding="utf-8")
    assert command in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_every_test_the_docs_name_exists():
    """A guarantee names the tests that hold it; a renamed test must not leave the page naming
    one that no longer runs."""
    named = {name for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
             for name in re.findall(r"`(test_[a-z0-9_]+)`", page.read_text())}
    defined = set(re.findall(r"^\s*def (test_[a-z0-9_]+)\(", "\n".join(
        p.read_text() for p in (ROOT / "tests").rglob("test_*.py")), re.M))
    assert named and sorted(named - defined) == []
