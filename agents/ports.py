"""How a stage's ports travel between workers: values inline in the stage message, typed by
their ports; images in the object store as PNG, named in the message by key (the claim-check
pattern); and what the alert itself gives the graph.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
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


class RecentImages:
    """The images this worker itself stored most recently, by key, up to `max_bytes` of pixels:
    the next stage, when it runs on the same worker, reads them here instead of fetching and
    decoding the PNG. Only an image whose write this worker won is kept (a key is written once,
    so what is kept is what the store holds), and only in a mode PNG keeps exactly; each read
    is a copy. Safe to call from several threads."""

    MODES = ("RGB", "L", "RGBA")

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._images: OrderedDict[str, Image.Image] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @staticmethod
    def size(image: Image.Image) -> int:
        return image.width * image.height * len(image.getbands())

    def keep(self, key: str, image: Image.Image) -> None:
        size = self.size(image)
        if image.mode not in self.MODES or size > self.max_bytes:
            return
        image = image.copy()  # the stage's own object stays the stage's
        with self._lock:
            old = self._images.pop(key, None)
            self._bytes += size - (self.size(old) if old is not None else 0)
            self._images[key] = image
            while self._bytes > self.max_bytes:
                _, gone = self._images.popitem(last=False)
                self._bytes -= self.size(gone)

    def get(self, key: str, mode: str) -> Image.Image | None:
        with self._lock:
            image = self._images.get(key)
            if image is None:
                return None
            self._images.move_to_end(key)
        return image.convert(mode)  # a copy, also when the mode is the same

    def __len__(self) -> int:
        return len(self._images)


def fetch_images(store, port: Port, keys: list[str], each=map,
                 recent: RecentImages | None = None) -> list[Image.Image]:
    """An image port's images, in its mode: from `recent` where it has them, else from the
    store (`each`: how to map the fetch over the keys, e.g. on the IO threads)."""
    mode = "L" if port.kind is Kind.MASK else "RGB"

    def one(key: str) -> Image.Image:
        kept = recent.get(key, mode) if recent is not None else None
        return kept if kept is not None else png_image(store.get(key), mode)
    return list(each(one, keys))
