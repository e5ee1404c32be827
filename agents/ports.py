"""How a stage's ports travel between workers: values inline in the stage message, typed by
their ports; images in the object store as PNG, named in the message by key (the claim-check
pattern); and what the alert itself gives the graph.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from PIL import Image
from pydantic import TypeAdapter

from alertanim.pipeline import graph
from alertanim.pipeline.stage import Kind, Port
from alertanim.schemas import InvalidMessage, StageMessage, Value

from .storage import png_image

# What the alert itself provides to the graph, by port name.
FROM_ALERT = {"text": lambda m: m.alert.text, "event": lambda m: m.alert.event,
              "language": lambda m: m.alert.language, "seed": lambda m: m.seed,
              "event_codes": lambda m: m.alert.code_pairs()}
IMAGE_KINDS = (Kind.IMAGES, Kind.IMAGE, Kind.MASK)


@lru_cache(maxsize=None)
def codec(port: Port) -> TypeAdapter:
    return TypeAdapter(port.type)


def value_of(name: str, port: Port, artifact: Value, msg: StageMessage) -> Any:
    """A value artifact read back as its port's type; a message that lies about it is refused."""
    try:
        return codec(port).validate_python(artifact.value)
    except ValueError as exc:
        raise InvalidMessage(f"{name!r} is not a {port.type}: {str(exc)[:300]}",
                             alert_id=msg.alert_id) from None


def values_of(artifacts: dict[str, Any], msg: StageMessage) -> dict[str, Any]:
    """A run's values (not its images), typed by their ports."""
    return {name: value_of(name, graph.PORTS[name], artifact, msg)
            for name, artifact in artifacts.items()
            if isinstance(artifact, Value) and name in graph.PORTS
            and graph.PORTS[name].kind is Kind.VALUE}


def fetch_images(store, port: Port, keys: list[str], each=map) -> list[Image.Image]:
    """An image port's images from the store, in its mode (`each`: how to map the fetch over
    the keys, e.g. on the IO threads)."""
    mode = "L" if port.kind is Kind.MASK else "RGB"
    return list(each(lambda k: png_image(store.get(k), mode), keys))
