"""The worker's own Prometheus metrics, served at `/metrics`."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self):
        self.registry = r = CollectorRegistry()
        self.processed = Counter("alertanim_stage_processed", "Messages a stage completed",
                                 ["stage"], registry=r)
        self.failed = Counter("alertanim_stage_failed", "Messages a stage sent to the failed topic",
                              ["stage", "reason"], registry=r)
        self.retries = Counter("alertanim_stage_retries", "Attempts that were retried",
                               ["stage"], registry=r)
        self.seconds = Histogram("alertanim_stage_seconds", "Seconds a stage spent per message",
                                 ["stage"], registry=r,
                                 buckets=(.05, .1, .25, .5, 1, 2, 4, 8, 16, 32, 64))
        self.duplicates = Counter("alertanim_stage_duplicates",
                                  "Redelivered messages whose result had already gone out",
                                  ["stage"], registry=r)
        self.batch_size = Histogram("alertanim_stage_batch_size",
                                    "Inputs per batch: the GPU batches of the batching stages, "
                                    "the front stages' batches", ["stage"],
                                    registry=r, buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32, 64))
        self.lag = Gauge("alertanim_consumer_group_lag",
                         "Messages on a topic the worker group has not yet processed",
                         ["topic"], registry=r)
        self.gpu_bytes = Gauge("alertanim_gpu_memory_bytes", "GPU memory allocated by this worker",
                               registry=r)

    def set_lag(self, lag: dict[str, int]) -> None:
        for topic, n in lag.items():
            self.lag.labels(topic).set(n)

    def value(self, name: str, **labels) -> float:
        """A sample's current value (0 when never set), through the registry's public API."""
        return self.registry.get_sample_value(name, labels or None) or 0.0

    def render(self) -> bytes:
        try:
            import torch

            if torch.cuda.is_available():
                self.gpu_bytes.set(torch.cuda.memory_allocated())
        except ImportError:  # pragma: no cover
            pass
        return generate_latest(self.registry)
