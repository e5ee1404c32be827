"""The example `ready` consumer (deploy/examples/ready_consumer.py) handling events whose URLs
point at a local http.server standing in for the store: what it fetches, from where, and how
much. Over the real broker and store: tests/stream/test_end_to_end.py."""

from __future__ import annotations

import hashlib
import http.server
import importlib.util
import threading
import time
from pathlib import Path

import pytest

from alertanim.schemas import AnimationReady

EXAMPLE = Path(__file__).parents[2] / "deploy" / "examples" / "ready_consumer.py"
GIF = b"GIF89a" + bytes(range(256)) * 4


@pytest.fixture(scope="module")
def consumer():
    spec = importlib.util.spec_from_file_location("ready_consumer", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Store(http.server.BaseHTTPRequestHandler):
    """/gif: the GIF; /big: twice what the events say, without a length; /redirect: elsewhere."""

    hits: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        Store.hits.append(self.path)
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://example.org/gif")
            self.end_headers()
            return
        body = GIF * 2 if self.path == "/big" else GIF
        self.send_response(200)
        self.send_header("Content-Type", "image/gif")
        if self.path != "/big":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def store():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Store)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def event(url: str, alert_id: str = "a-1", size: int = len(GIF), **rendition) -> bytes:
    return AnimationReady(
        alert_id=alert_id, run="0123456789ab", renditions=[{
            "media_type": "image/gif", "s3_uri": "s3://b/k", "url": url,
            "url_expires_at": time.time() + 600, "bytes": size, "width": 8, "height": 8,
            "frame_count": 2, "duration_ms": 100, **rendition}], subject="fire",
        prompt="fire", clip_score=20.0, stage_seconds={}, latency_seconds=1.0, model_ids={},
        pipeline_version="0", alt_text="A fire").to_bytes()


def test_an_event_on_the_store_is_fetched_checked_and_recorded_once(consumer, store, tmp_path):
    value = event(f"http://{store}/gif", sha256=hashlib.sha256(GIF).hexdigest())
    said = consumer.handle(value, tmp_path, 300_000, (store,))
    assert said == f"attached image/gif ({len(GIF)} bytes)"
    assert (tmp_path / "a-1.gif").read_bytes() == GIF
    assert consumer.handle(value, tmp_path, 300_000, (store,)) == "skipped: already handled"
    # the default store is the local harness's: any port on loopback
    assert consumer.handle(event(f"http://{store}/gif", "a-2"), tmp_path, 300_000).startswith(
        "attached")


def test_a_url_off_the_store_is_never_fetched(consumer, store, tmp_path):
    Store.hits.clear()
    port = store.rsplit(":", 1)[1]
    for url in (f"http://localhost:{port}/gif",  # a host the store is not configured as
                f"file://{tmp_path}/x", f"ftp://{store}/gif",
                f"http://user:pw@{store}/gif"):
        said = consumer.handle(event(url), tmp_path, 300_000, (store,))
        assert said.startswith("refused: not a URL on the store"), (url, said)
    assert Store.hits == [] and not list(tmp_path.iterdir())


def test_no_more_than_the_events_bytes_are_read_and_redirects_are_not_followed(consumer, store,
                                                                                 tmp_path):
    short = consumer.handle(event(f"http://{store}/gif", size=len(GIF) - 1), tmp_path, 300_000,
                            (store,))
    assert short.startswith("refused: the store says")  # its Content-Length is over
    big = consumer.handle(event(f"http://{store}/big"), tmp_path, 300_000, (store,))
    assert big == f"refused: more than the {len(GIF)} bytes the event says"
    moved = consumer.handle(event(f"http://{store}/redirect"), tmp_path, 300_000, (store,))
    assert moved.startswith("refused: the store answered 302")
    wrong = consumer.handle(event(f"http://{store}/gif", sha256="0" * 64), tmp_path, 300_000,
                            (store,))
    assert wrong == "refused: the bytes do not match the event's sha256"
    assert not list(tmp_path.iterdir())


def test_events_are_validated_with_the_pipelines_model(consumer, store, tmp_path):
    good = AnimationReady.from_bytes(event(f"http://{store}/gif")).model_dump(mode="json")
    import json

    def said(body) -> str:
        return consumer.handle(json.dumps(body).encode(), tmp_path, 300_000, (store,))
    assert said({**good, "schema_version": 3}) == "skipped: schema_version 3 is not supported"
    assert said({**good, "alert_id": "../../etc/cron.d/x"}).startswith(
        "skipped: not a valid AnimationReady")
    assert said({**good, "renditions": []}).startswith("skipped: not a valid AnimationReady")
    assert consumer.handle(b"[1, 2]", tmp_path, 300_000, (store,)) == (
        "skipped: not a JSON object")
    assert not list(tmp_path.iterdir())


def test_a_store_that_does_not_answer_raises_so_the_event_is_not_committed(consumer, tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(OSError):
        consumer.handle(event(f"http://127.0.0.1:{port}/gif"), tmp_path, 300_000)
