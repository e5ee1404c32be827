"""Shared fixtures. Nothing here downloads: the hub is off and models are the tiny preset,
written with save_pretrained into a per-session cache and loaded back with from_pretrained."""

from __future__ import annotations

import os

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
    from pipeline.models import load_models

    return load_models("tiny", cache_dir=model_cache)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    # A developer's ALERTANIM_* settings must not leak into tests.
    for key in list(os.environ):
        if key.startswith("ALERTANIM_") and key != "ALERTANIM_CACHE":
            monkeypatch.delenv(key, raising=False)
