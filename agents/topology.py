"""Which stages a worker runs and the topics between them.

A role is a subset of `WORKER_STAGES`: `ingest` (the entry from the `alerts` topic) and the
stages of the graph (`pipeline.graph`). Each stage reads its own topic,
`<TOPIC_STAGE_PREFIX><stage>`, and sends what it made to the next stage's topic; the last one
sends to `ready`. Model stages run on the process's one GPU thread, the others on CPU threads
beside it.
"""

from __future__ import annotations

from alertanim.pipeline import graph

INGEST = "ingest"
WORKER_STAGES: tuple[str, ...] = (INGEST, *graph.NAMES)
FIRST = graph.NAMES[0]


def parse_stages(spec: str) -> tuple[str, ...]:
    if spec.strip() == "all":
        return WORKER_STAGES
    wanted = tuple(s.strip() for s in spec.split(",") if s.strip())
    unknown = [s for s in wanted if s not in WORKER_STAGES]
    if unknown or not wanted:
        raise ValueError(f"unknown stages {unknown or spec!r}; choose from "
                         f"{', '.join(WORKER_STAGES)} or all")
    return tuple(s for s in WORKER_STAGES if s in wanted)


def source_topic(settings, stage: str) -> str:
    return settings.topic_alerts if stage == INGEST else settings.stage_topic(stage)


def all_topics(settings) -> list[str]:
    return [settings.topic_alerts, settings.topic_ready, settings.topic_failed, settings.topic_cap,
            settings.topic_instant, *(settings.stage_topic(s) for s in graph.NAMES)]


def uses_gpu(stage: str) -> bool:
    return stage in graph.STAGES and graph.STAGES[stage].uses_models


def batched(settings, stage: str) -> bool:
    return settings.batching and stage != INGEST and graph.STAGES[stage].batched


def front(stage: str) -> bool:
    """Ingest and the subject stage: cheap, CPU only, a batch at a time (ingest sends the
    instant events)."""
    return stage in (INGEST, FIRST)
