"""Where images live between stages and where animations are published: the claim check.

`S3Store` speaks to any S3-compatible server through boto3 (AWS, MinIO, moto); `LocalStore` keeps
the same keys in a directory for the embedded default. Both map their errors into the project's
family at this edge: `StoreUnavailable` (transient: unreachable, timeouts, server errors,
throttling), `StoreRefused` (credentials, permissions, no such bucket), `ArtifactMissing`.
"""

from __future__ import annotations

import io
import os
import time
import uuid
from pathlib import Path
from typing import Protocol

from PIL import Image

from alertanim.schemas.errors import ArtifactMissing, StoreRefused, StoreUnavailable

# S3 error codes that waiting can fix; any 5xx is treated the same.
TRANSIENT_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout",
                   "RequestTimeTooSkewed", "ServiceUnavailable", "InternalError"}
MISSING_CODES = {"404", "NoSuchKey", "NotFound"}


class ObjectStore(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> str: ...  # returns the URI
    def put_if_absent(self, key: str, data: bytes, content_type: str) -> bool: ...
    def get(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def url(self, key: str, expires_s: int) -> tuple[str, float]: ...  # (url, expires_at)
    def uri(self, key: str) -> str: ...  # what `put` returns for `key`, without writing


class S3Store:
    def __init__(self, client, bucket: str, prefix: str = ""):
        self._s3 = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    @classmethod
    def from_settings(cls, settings) -> "S3Store":
        import boto3
        from botocore.config import Config
        from botocore.handlers import add_expect_header

        def secret(s):
            return s.get_secret_value() if s is not None else None

        client = boto3.client(
            "s3", endpoint_url=settings.s3_endpoint_url, region_name=settings.s3_region,
            aws_access_key_id=secret(settings.s3_access_key_id),
            aws_secret_access_key=secret(settings.s3_secret_access_key),
            # a connection for every thread that may call at once (IO, CPU, GPU, page threads),
            # so none is opened and discarded per request
            config=Config(connect_timeout=3, read_timeout=10,
                          max_pool_connections=settings.io_threads + 8,
                          retries={"max_attempts": 2, "mode": "standard"},
                          signature_version="s3v4",
                          # checksums where S3 requires them, not on every request: a plain
                          # body instead of an aws-chunked one with a trailer (which not every
                          # S3-compatible server takes), and no CRC of every image on a thread
                          request_checksum_calculation="when_required",
                          response_checksum_validation="when_required"))
        # Every write is small (a claim, a marker, an image, a rendition of some 100 KB): its body
        # goes with its headers, without waiting a round trip for the server's 100 Continue.
        client.meta.events.unregister("before-call.s3", add_expect_header)
        return cls(client, settings.s3_bucket, settings.s3_prefix)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, fn, **kw):
        from botocore.exceptions import (BotoCoreError, ClientError,
                                         ConnectionError as BotoConnectionError, HTTPClientError)

        try:
            return fn(Bucket=self.bucket, **kw)
        except (BotoConnectionError, HTTPClientError) as exc:
            raise StoreUnavailable(f"S3 unreachable: {exc}") from exc
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status >= 500 or code in TRANSIENT_CODES:
                raise StoreUnavailable(f"S3 error {code or status}: {exc}") from exc
            if code in MISSING_CODES:
                raise ArtifactMissing(f"no object {kw.get('Key')!r} in the store") from exc
            raise StoreRefused(f"S3 refused the request ({code or status})") from exc
        except BotoCoreError as exc:  # no credentials, bad endpoint, ...
            raise StoreRefused(f"S3 client error: {type(exc).__name__}") from exc
        except OSError as exc:  # reading a response body off a dropped connection
            raise StoreUnavailable(f"S3 unreachable: {exc}") from exc

    def put(self, key: str, data: bytes, content_type: str) -> str:
        self._call(self._s3.put_object, Key=self._key(key), Body=data, ContentType=content_type)
        return self.uri(key)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def get(self, key: str) -> bytes:
        return self._call(self._s3.get_object, Key=self._key(key))["Body"].read()

    def exists(self, key: str) -> bool:
        try:
            self._call(self._s3.head_object, Key=self._key(key))
            return True
        except ArtifactMissing:
            return False

    def put_if_absent(self, key: str, data: bytes, content_type: str) -> bool:
        """Write `key` only if no object is there (S3's conditional write, If-None-Match: *);
        True when this call wrote it. Two writers racing for one key: exactly one wins."""
        try:
            self._call(self._s3.put_object, Key=self._key(key), Body=data,
                       ContentType=content_type, IfNoneMatch="*")
            return True
        except StoreRefused as exc:
            cause = exc.__cause__
            code = getattr(cause, "response", {}).get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise

    def url(self, key: str, expires_s: int) -> tuple[str, float]:
        url = self._s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._key(key)},
            ExpiresIn=expires_s)
        return url, time.time() + expires_s


class LocalStore:
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise StoreRefused(f"key escapes the store: {key!r}", reason="invalid_message")
        return path

    def put(self, key: str, data: bytes, content_type: str) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")  # one per writer
        tmp.write_bytes(data)
        tmp.replace(path)  # readers never see half an object
        return path.as_uri()

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ArtifactMissing(f"no object {key!r} in the store") from None

    def put_if_absent(self, key: str, data: bytes, content_type: str) -> bool:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
        tmp.write_bytes(data)
        try:
            os.link(tmp, path)  # atomic, and fails if the name is taken
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def url(self, key: str, expires_s: int) -> tuple[str, float]:
        return self._path(key).as_uri(), time.time() + expires_s


def store_from_settings(settings) -> ObjectStore:
    if settings.store == "s3":
        return S3Store.from_settings(settings)
    if settings.store == "local":
        return LocalStore(settings.local_dir)
    raise ValueError(f"unknown store {settings.store!r} (s3 or local)")  # pragma: no cover


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)  # intermediate: speed over size
    return buf.getvalue()


def png_image(data: bytes, mode: str = "RGB") -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image.convert(mode)
