"""The animated WebP as a browser shows it: every frame decoded and composited by Chromium's own
image decoder (WebCodecs' ImageDecoder), not only by libwebp's as Pillow uses it. The WebP's
in-betweens are frames the decoder alpha-blends over the canvas, so how the browser blends is
what the viewer sees.

The page is served from loopback (a secure context, which ImageDecoder needs) and posts the
frames back; until then it holds a request open, which keeps headless Chromium's virtual time
(and so its exit) waiting for the decoder."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from alertanim.pipeline.animate import crossfade, encode_webp
from tests.support.photos import key_frames
from tests.support.webp import shown, still

SIDE = 96

PAGE = """<!doctype html><meta charset="utf-8"><body><script>
fetch("/hold");  // answered once the frames are posted
(async () => {
  const frames = [];
  try {
    const decoder = new ImageDecoder({data: await (await fetch("/webp")).arrayBuffer(),
                                      type: "image/webp"});
    await decoder.tracks.ready;
    const canvas = new OffscreenCanvas(%d, %d);
    const ctx = canvas.getContext("2d", {willReadFrequently: true});
    for (let j = 0; j < decoder.tracks.selectedTrack.frameCount; j++) {
      const {image} = await decoder.decode({frameIndex: j});
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      ctx.drawImage(image, 0, 0);
      const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      let s = "";
      for (let i = 0; i < px.length; i += 8192) s += String.fromCharCode(...px.subarray(i, i + 8192));
      frames.push({duration_us: image.duration, rgba: btoa(s)});
      image.close();
    }
    await fetch("/frames", {method: "POST", body: JSON.stringify({frames})});
  } catch (e) {
    await fetch("/frames", {method: "POST", body: JSON.stringify({error: String(e)})});
  }
})();
</script></body>"""


class Browser:
    """The loopback server the page is read from and posts its frames to."""

    def __init__(self, webp: bytes):
        self.webp, self.posted, self.done = webp, None, threading.Event()
        browser = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/hold":
                    browser.done.wait(60)
                    return self.reply(b"", "text/plain")
                served = {"/": ((PAGE % (SIDE, SIDE)).encode(), "text/html"),
                          "/webp": (browser.webp, "image/webp")}
                if self.path not in served:  # the browser's own asks, such as /favicon.ico
                    return self.send_error(404)
                self.reply(*served[self.path])

            def do_POST(self):
                browser.posted = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                browser.done.set()
                self.reply(b"", "text/plain")

            def reply(self, body, kind):
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/"

    def close(self):
        self.done.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def decoded(chromium, artifacts):
    keys = key_frames("astronaut", n=4, size=SIDE, seed=2)
    anim = encode_webp(keys, 3, frame_ms=110)
    (artifacts / "crossfade.webp").write_bytes(anim.data)
    browser = Browser(anim.data)
    try:
        chromium(browser.url, "--dump-dom", "--virtual-time-budget=5000")
        assert browser.done.is_set(), "the page posted no frames"
    finally:
        browser.close()
    assert "error" not in browser.posted, browser.posted["error"]
    return keys, anim, browser.posted["frames"]


def test_chromium_shows_each_frame_as_the_crossfade(decoded):
    keys, anim, frames = decoded
    clip = crossfade(keys, 3)
    pillow = shown(anim.data)
    assert len(frames) == len(clip) == len(pillow) == anim.frame_count == 16
    for frame, want, (libwebp, _) in zip(frames, clip, pillow):
        assert frame["duration_us"] == 110_000
        rgba = np.frombuffer(base64.b64decode(frame["rgba"]), np.uint8).reshape(SIDE, SIDE, 4)
        assert (rgba[..., 3] == 255).all()  # opaque: every blend is drawn over the first frame
        rgb, alone, want = rgba[..., :3].astype(float), still(want), np.asarray(want, float)
        # as close to the crossfade's frame as a still of that frame is, and what libwebp's own
        # decoder shows, up to how the browser rounds its blends
        assert np.abs(rgb - want).mean() <= 1.05 * np.abs(alone - want).mean() + 0.2
        assert np.abs(rgb - libwebp).mean() < 0.6
