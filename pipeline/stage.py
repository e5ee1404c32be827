"""What a stage of the method declares about itself, so that anything can walk the graph: the
in-process workflow, the stream adapter, the compile warm-up.

A stage names the model parts it needs (`components`), the values it reads (`inputs`) and the
ones it writes (`outputs`, each a `Port` with a kind that says how it travels between processes:
images go to the object store, values ride in the message). `run` takes a batch of rows, one per
alert, each a mapping of its inputs, and returns one mapping of outputs per row. A stage whose
`batched` is true makes one model call for the whole batch; the others are called row by row.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .config import MethodConfig

Progress = Callable[[str, int, int], None]  # (stage, done, total)


class Kind(enum.Enum):
    IMAGES = "images"  # list of RGB PIL images
    IMAGE = "image"  # one RGB PIL image
    MASK = "mask"  # one L-mode PIL image
    VALUE = "value"  # a small JSON-able value of the port's type
    ANIMATIONS = "animations"  # list of encoded animations (pipeline.animate.Animation)


@dataclass(frozen=True)
class Port:
    name: str
    kind: Kind
    type: Any = None  # VALUE ports: the Python type, used to read the value back from JSON
    example: Callable[[], Any] | None = None  # a stand-in value, for warming up a stage alone


@dataclass
class Context:
    """What a stage runs with: the loaded models, the method's settings, a progress callback."""

    models: Any  # pipeline.models.Models
    config: MethodConfig
    progress: Progress | None = None

    def steps(self, stage: str) -> Callable[[int, int], None] | None:
        if self.progress is None:
            return None
        report = self.progress
        return lambda done, total: report(stage, done, total)


Row = Mapping[str, Any]
RunFn = Callable[[Context, Sequence[Row]], list[dict[str, Any]]]


@dataclass(frozen=True)
class Stage:
    name: str
    run: RunFn
    inputs: tuple[str, ...]
    outputs: tuple[Port, ...]
    components: tuple[str, ...] = ()  # model parts (pipeline.models.PARTS) it runs on
    batched: bool = False  # one model call for several alerts
    doc: str = field(default="", compare=False)

    @property
    def uses_models(self) -> bool:
        return bool(self.components)

    def output(self, name: str) -> Port:
        return next(p for p in self.outputs if p.name == name)


def row_by_row(fn: Callable[..., dict[str, Any]]) -> RunFn:
    """A stage body written for one alert (`fn(ctx, row)`), as a `RunFn`."""
    def run(ctx: Context, rows: Sequence[Row]) -> list[dict[str, Any]]:
        return [fn(ctx, row) for row in rows]
    run.__name__ = run.__qualname__ = fn.__name__
    run.__doc__ = fn.__doc__
    return run
