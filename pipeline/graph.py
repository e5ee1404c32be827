"""The method as one ordered graph of stages: the only place their order is written.

Each stage module declares its own `STAGE` (name, model parts, inputs, outputs, body; see
`pipeline.stage`). The in-process workflow (`pipeline.workflow`) and the stream adapter
(`agents.adapter`) both walk `GRAPH`; so does the compile warm-up below. Adding a stage is one
module and one entry here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from . import animate, generate, mask, sample, score, select, subject
from .stage import Context, Kind, Port, Stage


# What every run starts from: the alert itself and its seed.
ALERT_INPUTS: tuple[Port, ...] = (
    Port("text", Kind.VALUE, str),
    Port("event", Kind.VALUE, str | None),
    Port("language", Kind.VALUE, str | None),
    Port("event_codes", Kind.VALUE, tuple[tuple[str, str], ...], example=lambda: ()),
    Port("seed", Kind.VALUE, int, example=lambda: 0),
)

GRAPH: tuple[Stage, ...] = (subject.STAGE, generate.STAGE, score.STAGE, mask.STAGE,
                            sample.STAGE, select.STAGE, animate.STAGE)
NAMES: tuple[str, ...] = tuple(s.name for s in GRAPH)
STAGES: dict[str, Stage] = {s.name: s for s in GRAPH}
NEXT: dict[str, str | None] = {a: b for a, b in zip(NAMES, (*NAMES[1:], None))}


def _ports() -> dict[str, Port]:
    """Every value's port, by name; checks that each input is made before it is read."""
    made = {p.name: p for p in ALERT_INPUTS}
    for stage in GRAPH:
        missing = [name for name in stage.inputs if name not in made]
        if missing:
            raise TypeError(f"stage {stage.name!r} reads {missing}, which no earlier stage writes")
        for port in stage.outputs:
            if port.name in made:
                raise TypeError(f"{port.name!r} is written twice (again by {stage.name!r})")
            made[port.name] = port
    return made


PORTS: dict[str, Port] = _ports()


def stages(names: Iterable[str] | None = None) -> tuple[Stage, ...]:
    """The graph's stages among `names` (all by default), in graph order."""
    if names is None:
        return GRAPH
    wanted = set(names)
    unknown = wanted - set(NAMES)
    if unknown:
        raise ValueError(f"unknown stages {sorted(unknown)}; the graph has {', '.join(NAMES)}")
    return tuple(s for s in GRAPH if s.name in wanted)


def components(names: Iterable[str] | None = None) -> set[str]:
    """The model parts the stages among `names` need."""
    return {part for stage in stages(names) for part in stage.components}


def placeholder(port: Port, models) -> object:
    """A stand-in value for `port`, for running a stage with nothing before it."""
    from PIL import Image

    size = models.image_size
    if port.kind is Kind.IMAGE:
        return Image.new("RGB", (size, size))
    if port.kind is Kind.MASK:
        return Image.new("L", (size, size), 255)
    if port.kind is Kind.IMAGES:
        return [Image.new("RGB", (size, size))]
    if port.example is not None:
        return port.example()
    raise TypeError(f"port {port.name!r} has no example value to warm up with")


def warm_up(models, config, batch_sizes: Iterable[int],
            names: Sequence[str] | None = None) -> list[tuple[str, int]]:
    """Run each batched model stage among `names` once at every batch size it will see, with two
    steps, so that a compiled UNet builds its graphs (one per shape) before the first alert
    rather than during it. Returns the (stage, alerts per batch) pairs run."""
    quick = Context(models, config.model_copy(update={"steps": 2}))
    todo = [s for s in stages(names) if s.batched and s.uses_models]
    done = []
    for b in batch_sizes:
        for stage in todo:
            row = {name: placeholder(PORTS[name], models) for name in stage.inputs}
            stage.run(quick, [row] * b)
            done.append((stage.name, b))
    return done
