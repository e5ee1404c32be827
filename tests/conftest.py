"""Shared fixtures. Nothing here downloads: the hub is off and models are the tiny preset,
written with save_pretrained into a per-session cache and loaded back with from_pretrained."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("alertanim-cache")
    os.environ["ALERTANIM_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def tiny(model_cache):
    from alertanim.pipeline.models import load_models

    return load_models("tiny", cache_dir=model_cache)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    # A developer's ALERTANIM_* settings must not leak into tests.
    for key in list(os.environ):
        if key.startswith("ALERTANIM_") and key not in ("ALERTANIM_CACHE", "ALERTANIM_TEST_LOGS"):
            monkeypatch.delenv(key, raising=False)


# -- headless Debian Chromium (/usr/bin/chromium, installed by .ci/run). A missing browser fails
# the browser tests: a page nobody opened is not a tested page.
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--force-device-scale-factor=1")


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> Path:
    """Where screenshots are kept: $ALERTANIM_TEST_LOGS when set (CI), else a pytest temp dir.
    Session-scoped, so it reads the variable before the per-test environment cleaning."""
    logs = os.environ.get("ALERTANIM_TEST_LOGS")
    path = Path(logs) / "browser" if logs else tmp_path_factory.mktemp("browser")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def chromium(tmp_path_factory) -> Callable[..., subprocess.CompletedProcess]:
    assert os.access(CHROMIUM, os.X_OK), (
        f"{CHROMIUM} is missing: apt-get install -y chromium (see .ci/run)")

    def run(page: Path | str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Open `page` (a file, or a URL such as a worker's status page) with `args`."""
        profile = tmp_path_factory.mktemp("chromium-profile")
        target = page if isinstance(page, str) else page.resolve().as_uri()
        return subprocess.run(
            [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args, target],
            capture_output=True, text=True, timeout=timeout, check=True)
    return run
