"""The images a worker stored last, kept for the next stage on the same worker: a stage reads
them without a store round trip, gets exactly what the store holds, and never what another
writer's won write replaced."""

from __future__ import annotations

import hashlib
import json

import numpy as np
from PIL import Image

from alertanim.agents.ports import RecentImages
from alertanim.agents.storage import png_bytes, png_image
from alertanim.schemas import AnimationReady
from tests.support.processor import drive, make, records


def noise(size=(16, 12), mode="RGB", seed=0) -> Image.Image:
    bands = len(Image.new(mode, (1, 1)).getbands())
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], bands), np.uint8)
    return Image.fromarray(pixels.squeeze(-1) if bands == 1 else pixels, mode)


def test_a_kept_image_reads_back_as_its_png_would_and_as_a_copy():
    recent = RecentImages(2**20)
    for mode in RecentImages.MODES:
        image = noise(mode=mode)
        recent.keep(f"k-{mode}", image)
        for want in ("RGB", "L"):
            got = recent.get(f"k-{mode}", want)
            assert got.tobytes() == png_image(png_bytes(image), want).tobytes()
    kept = recent.get("k-RGB", "RGB")
    kept.paste((0, 0, 0), (0, 0, 16, 12))
    assert recent.get("k-RGB", "RGB").tobytes() == noise().tobytes(), "each read is a copy"
    original = noise(seed=1)
    recent.keep("k-own", original)
    original.paste((0, 0, 0), (0, 0, 16, 12))
    assert recent.get("k-own", "RGB").tobytes() == noise(seed=1).tobytes(), "kept as stored"


def test_it_holds_at_most_its_bytes_and_lets_the_least_recent_go():
    one = RecentImages.size(noise())
    recent = RecentImages(3 * one)
    for k in "abc":
        recent.keep(k, noise())
    assert recent.get("a", "RGB") is not None  # a is now the most recent
    recent.keep("d", noise())
    assert recent.get("b", "RGB") is None and len(recent) == 3
    assert all(recent.get(k, "RGB") is not None for k in "acd")
    recent.keep("big", noise((64, 64)))
    assert recent.get("big", "RGB") is None, "larger than the whole budget: not kept"
    assert RecentImages(0).get("x", "RGB") is None
    off = RecentImages(0)
    off.keep("x", noise())
    assert len(off) == 0, "0 keeps nothing"
    recent.keep("f", noise().convert("I"))
    assert recent.get("f", "RGB") is None, "a mode PNG does not keep exactly is not kept"


class Counting:
    """The store, counting each image read; `first` writes another writer's image under a key
    before this worker's conditional write of it, so that write loses."""

    def __init__(self, store, first: set[str] = frozenset()):
        self.store, self.first, self.reads = store, first, []

    def get(self, key):
        if key.endswith(".png"):
            self.reads.append(key)
        return self.store.get(key)

    def put_if_absent(self, key, data, content_type):
        if any(key.endswith(k) for k in self.first):
            self.store.put_if_absent(key, png_bytes(noise((64, 64), seed=7)), content_type)
        return self.store.put_if_absent(key, data, content_type)

    def __getattr__(self, name):
        return getattr(self.store, name)


def animation(tmp_path, alert_id="r1", **kw):
    proc, sent = make(tmp_path, **kw)
    proc.adapter.store = proc.adapter.completion.store = counting = Counting(proc.adapter.store)
    out = drive(proc, sent, json.dumps({"id": alert_id, "text": "fire"}).encode())
    [(_, value)] = records(out, proc.settings.topic_ready)
    ready = AnimationReady.from_bytes(value)
    gif = next(r for r in ready.renditions if r.media_type == "image/gif")
    return proc, counting, gif


def test_stages_on_one_worker_read_no_image_from_the_store_and_make_the_same_animation(
        tmp_path, tiny):
    proc, counting, gif = animation(tmp_path / "kept")
    assert counting.reads == [], "every image came from the stage before, on this worker"
    assert len(proc.adapter.recent) > 0
    proc.adapter.completion.drain(30)
    _, fetched, gif_off = animation(tmp_path / "off", image_cache_mb=0)
    assert fetched.reads, "with the setting at 0 each stage reads the store"
    assert gif.sha256 == gif_off.sha256, "the same animation either way"


def test_an_image_another_writer_stored_first_is_read_from_the_store(tmp_path, tiny):
    proc, sent = make(tmp_path)
    counting = Counting(proc.adapter.store, first={"/generate/00.png"})
    proc.adapter.store = proc.adapter.completion.store = counting
    drive(proc, sent, json.dumps({"id": "r2", "text": "fire"}).encode())
    won = [k for k in counting.reads if k.endswith("/generate/00.png")]
    assert won, "the image whose write was lost is read back from the store"
    stored = hashlib.sha256(counting.store.get(won[0])).hexdigest()
    assert stored == hashlib.sha256(png_bytes(noise((64, 64), seed=7))).hexdigest()
    assert all(k.endswith("/generate/00.png") for k in counting.reads)
