"""The store as an outsider meets it: the bucket is not public, and a presigned URL works until
the moment it names and not after. Against the tests' real S3-compatible server, with the
worker's own store code making the URLs."""

import time
import urllib.error
import urllib.request

import pytest

from alertanim.agents.settings import Settings
from alertanim.agents.storage import store_from_settings


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def store(s3):
    settings = Settings(s3_endpoint_url=s3.endpoint, s3_bucket=s3.bucket, s3_prefix="access",
                        s3_access_key_id=s3.access_key, s3_secret_access_key=s3.secret_key,
                        s3_region=s3.region)
    return store_from_settings(settings)


def test_the_bucket_and_its_objects_are_not_public(store, s3):
    store.put("runs/a/animation.gif", b"GIF89a-not-public", "image/gif")
    assert status_of(f"{s3.endpoint}/{s3.bucket}/access/runs/a/animation.gif") in (401, 403)
    assert status_of(f"{s3.endpoint}/{s3.bucket}") in (401, 403)  # no anonymous listing


def test_a_presigned_url_expires_when_it_says(store):
    store.put("runs/b/animation.gif", b"GIF89a-presigned", "image/gif")
    url, expires_at = store.url("runs/b/animation.gif", 3)
    assert abs(expires_at - (time.time() + 3)) < 2
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.read() == b"GIF89a-presigned"
    time.sleep(max(0.0, expires_at - time.time()) + 2)
    assert status_of(url) in (401, 403)
    tampered = url.replace("X-Amz-Expires=3", "X-Amz-Expires=3600")
    assert tampered != url and status_of(tampered) in (401, 403)  # the signature covers it
