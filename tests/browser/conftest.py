"""Headless Debian Chromium (/usr/bin/chromium, installed by .ci/run). A missing browser fails
these tests: a report nobody opened is not a tested report."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

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

    def run(page: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        profile = tmp_path_factory.mktemp("chromium-profile")
        return subprocess.run(
            [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args, page.resolve().as_uri()],
            capture_output=True, text=True, timeout=timeout, check=True)
    return run
