"""Both stores speak one contract, and map their errors into the project's family. The S3 store
is exercised here against an in-process moto backend; the stream tests run it against the real
S3-compatible server."""

import pytest

from alertanim.agents.storage import LocalStore, S3Store
from alertanim.schemas import StoreRefused, StoreUnavailable
from alertanim.schemas.errors import ArtifactMissing


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        yield LocalStore(tmp_path)
        return
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="alertanim-test")
        yield S3Store(client, "alertanim-test", "pfx")


def test_put_get_exists(store):
    uri = store.put("runs/a/b/x.png", b"data", "image/png")
    assert uri and store.get("runs/a/b/x.png") == b"data" and store.exists("runs/a/b/x.png")
    assert not store.exists("runs/a/b/y.png")
    with pytest.raises(ArtifactMissing):
        store.get("runs/a/b/y.png")
    url, expires = store.url("runs/a/b/x.png", 60)
    assert url and expires > 0


def test_put_if_absent_lets_exactly_one_writer_win(store):
    assert store.put_if_absent("alerts/a.json", b"first", "application/json")
    assert not store.put_if_absent("alerts/a.json", b"second", "application/json")
    assert store.get("alerts/a.json") == b"first"


def test_a_racing_claim_has_one_winner(store):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        wins = list(pool.map(lambda i: store.put_if_absent("alerts/r.json", str(i).encode(),
                                                            "x"), range(16)))
    assert wins.count(True) == 1


def test_local_keys_cannot_escape_the_store(tmp_path):
    with pytest.raises(StoreRefused):
        LocalStore(tmp_path / "store").put("../outside", b"x", "x")


def test_s3_errors_are_mapped_into_the_family():
    import boto3
    from botocore.config import Config

    # nothing listens on port 9 of loopback: unreachable, so transient
    client = boto3.client("s3", endpoint_url="http://127.0.0.1:9", region_name="us-east-1",
                          aws_access_key_id="k", aws_secret_access_key="s",
                          config=Config(connect_timeout=1, retries={"max_attempts": 0}))
    with pytest.raises(StoreUnavailable) as caught:
        S3Store(client, "b").get("k")
    assert caught.value.transient


def test_s3_refusals_are_not_transient():
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        with pytest.raises(StoreRefused) as caught:
            S3Store(client, "no-such-bucket").put("k", b"x", "x")
    assert not caught.value.transient and "NoSuchBucket" in str(caught.value)
