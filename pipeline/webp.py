"""The animated WebP container (RIFF, https://developers.google.com/speed/webp/docs/riff_container),
written here from frames libwebp encodes one by one (Pillow's still encoder), so that a frame's
bitstream can be stored more than once and the frames encoded side by side; `animate.encode_webp`
says why."""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from PIL import Image

VP8X_ALPHA, VP8X_ANIMATION = 0x10, 0x02
ALPH_LOSSLESS = 0x01  # no pre-processing, no filter, the lossless image-stream
VP8L_SIGNATURE, VP8L_HEADER_BYTES = 0x2F, 5  # the signature, 14+14 bits of size, 1+3 of flags
ANMF_NO_BLEND = 0x02  # the frame replaces the canvas under it instead of being alpha-blended
MAX_DURATION_MS = (1 << 24) - 1


def chunk(fourcc: bytes, payload: bytes) -> bytes:
    return fourcc + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) & 1)


def _u24(value: int) -> bytes:
    return struct.pack("<I", value)[:3]


def encode_still(image: Image.Image, quality: int, method: int) -> bytes:
    """`image` as a lossy WebP still: its VP8 chunk, whole. Under an RGBA image's fully
    transparent pixels the colour is libwebp's to choose: it flattens it, so those areas cost
    next to nothing (the alpha itself is left out: `alpha_chunk` makes it)."""
    buf = io.BytesIO()
    image.save(buf, format="WEBP", quality=quality, method=method)
    return _only(buf.getvalue(), b"VP8 ")


def alpha_chunk(alpha: Image.Image) -> bytes:
    """An ALPH chunk of `alpha` (an L image), lossless, as libwebp's alpha encoder stores one:
    the alpha is the green of a lossless image-stream, and ALPH holds that stream without the
    lossless header (the frame's size is implied). libwebp's fastest lossless settings; a
    plane of a few levels in cells, as the frames' masks are, costs about a millisecond."""
    zero = Image.new("L", alpha.size)
    buf = io.BytesIO()
    Image.merge("RGB", (zero, alpha.convert("L"), zero)).save(
        buf, format="WEBP", lossless=True, quality=0, method=0)
    vp8l = _only(buf.getvalue(), b"VP8L")
    stream = vp8l[8:8 + struct.unpack("<I", vp8l[4:8])[0]]
    if stream[0] != VP8L_SIGNATURE:
        raise ValueError("libwebp wrote a lossless frame without its signature")
    return chunk(b"ALPH", bytes([ALPH_LOSSLESS]) + stream[VP8L_HEADER_BYTES:])


def _only(data: bytes, fourcc: bytes) -> bytes:
    found = dict(chunks(data))
    if fourcc not in found:
        raise ValueError(f"libwebp wrote no {fourcc.decode().strip()} chunk ({sorted(found)})")
    return found[fourcc]


def chunks(data: bytes) -> Iterable[tuple[bytes, bytes]]:
    """The top-level chunks of a WebP file, as (FourCC, the whole chunk)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("not a WebP file")
    at, end = 12, min(len(data), 8 + struct.unpack("<I", data[4:8])[0])
    while at + 8 <= end:
        size = struct.unpack("<I", data[at + 4:at + 8])[0]
        yield data[at:at + 4], data[at:at + 8 + size + (size & 1)]
        at += 8 + size + (size & 1)


@dataclass(frozen=True)
class Frame:
    """One frame of an animation: where it is drawn on the canvas (x and y even, as the format
    stores them halved), how long it is shown, whether it is alpha-blended over the canvas, and
    its bitstream (an ALPH chunk, if any, then the VP8 chunk)."""

    x: int
    y: int
    width: int
    height: int
    duration_ms: int
    blend: bool
    data: bytes

    def anmf(self) -> bytes:
        if self.x % 2 or self.y % 2:
            raise ValueError(f"a frame's offset must be even, not ({self.x}, {self.y})")
        flags = 0 if self.blend else ANMF_NO_BLEND  # disposal: none, the next draws over it
        return chunk(b"ANMF", b"".join([
            _u24(self.x // 2), _u24(self.y // 2), _u24(self.width - 1), _u24(self.height - 1),
            _u24(min(self.duration_ms, MAX_DURATION_MS)), bytes([flags]), self.data]))


def animation(width: int, height: int, frames: Iterable[Frame], alpha: bool,
              loops: int = 0) -> bytes:
    """An animated WebP of `frames` on a `width`×`height` canvas (transparent black before the
    first frame), looping `loops` times (0: for ever)."""
    flags = VP8X_ANIMATION | (VP8X_ALPHA if alpha else 0)
    body = b"".join([
        b"WEBP", chunk(b"VP8X", bytes([flags, 0, 0, 0]) + _u24(width - 1) + _u24(height - 1)),
        chunk(b"ANIM", struct.pack("<IH", 0, loops)), *(f.anmf() for f in frames)])
    return b"RIFF" + struct.pack("<I", len(body)) + body
