"""The model host: a worker's models, loaded once for the stages its role runs, then tuned (the
fast path), then warmed (a compiled UNet built at every batch shape), in three separate steps.
`ready` turns true only after all three, so readiness means fast.
"""

from __future__ import annotations

import threading

from alertanim.pipeline import graph
from alertanim.pipeline.accel import FastPath, tune
from alertanim.pipeline.models import DEFAULT_IDS, Models, deterministic, load_models, resolve_device


class ModelHost:
    def __init__(self, settings, stage_names):
        self.settings = settings
        # the graph's stages among the role's (ingest runs no model)
        self.stage_names = tuple(s for s in stage_names if s in graph.STAGES)
        self.parts = graph.components(self.stage_names)
        self._models: Models | None = None
        self._lock = threading.Lock()

    @property
    def needed(self) -> bool:
        return bool(self.parts)

    @property
    def ready(self) -> bool:
        return self._models is not None or not self.needed

    def models(self) -> Models | None:
        """The loaded, tuned and warmed models (loading them on first call); None for a role
        that runs no model."""
        if not self.needed:
            return None
        with self._lock:
            if self._models is None:
                s = self.settings
                deterministic()  # as `alertanim run` does: the same alert, the same bytes
                device, dtype = resolve_device(s.device, s.dtype)
                models = load_models(s.models, device=device, dtype=dtype, parts=self.parts)
                tune(models, FastPath.named(s.fast_path, device, s.compile))
                if s.compile != "off":
                    self.warm(models)
                self._models = models
            return self._models

    def warm(self, models: Models) -> list[tuple[str, int]]:
        """Every batch shape the worker will see, once, before the first alert."""
        s = self.settings
        sizes = range(1, (s.batch_max if s.batching else 1) + 1)
        return graph.warm_up(models, s.method, sizes, self.stage_names)

    def model_ids(self) -> dict[str, str]:
        if self.settings.models == "default":
            return dict(DEFAULT_IDS)
        return {name: f"{self.settings.models}:{name}" for name in DEFAULT_IDS}
