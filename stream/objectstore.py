"""An S3-compatible object store under one ``s3://bucket/prefix``, with the three writes a sealed
registry needs: plain, create-only (``If-None-Match: *``) and compare-and-swap on the ETag
(``If-Match``).

Credentials, region and endpoint come from :class:`~stream.settings.ObjectStoreSettings`
(``ANOMSTREAM_S3__*``); whatever those leave unset comes from boto3's standard chain
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION``,
``AWS_ENDPOINT_URL``, ``AWS_PROFILE``, instance and web-identity roles).

>>> parse_s3_url("s3://models/prod/registry")
('models', 'prod/registry')
>>> parse_s3_url("s3://models")
('models', '')
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

from stream.errors import AnomstreamError, ConfigurationError
from stream.settings import ObjectStoreSettings


class ObjectStoreError(AnomstreamError, RuntimeError):
    """The object store cannot be reached, refuses the credentials, or lacks the bucket."""


class PreconditionFailed(ObjectStoreError):
    """A conditional write lost: the key exists (create-only) or changed (compare-and-swap)."""


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix without surrounding slashes)."""
    if not url.startswith("s3://") or not url[5:].split("/", 1)[0]:
        raise ConfigurationError(f"{url!r} is not an s3://bucket/prefix URL")
    bucket, _, prefix = url[5:].partition("/")
    return bucket, prefix.strip("/")


def _client(settings: ObjectStoreSettings) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:  # pragma: no cover - a dependency of the package
        raise ObjectStoreError("boto3 is not installed: pip install 'anomstream'") from None
    # botocore says at INFO where it found credentials, on every client: noise in the CLI's log.
    logging.getLogger("botocore.credentials").setLevel(logging.WARNING)
    logging.getLogger("botocore.utils").setLevel(logging.WARNING)
    logging.getLogger("botocore.configprovider").setLevel(logging.WARNING)
    options: dict[str, Any] = {}
    if settings.access_key_id:
        options["aws_access_key_id"] = settings.access_key_id
    if settings.secret_access_key is not None:
        options["aws_secret_access_key"] = settings.secret_access_key.get_secret_value()
    if settings.session_token is not None:
        options["aws_session_token"] = settings.session_token.get_secret_value()
    # Checksums only when an operation requires them: S3-compatible servers (s3proxy among them)
    # answer 501 to the streaming checksum trailers boto3 sends by default since 1.36.
    config = Config(
        s3={"addressing_style": settings.addressing_style},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": 5, "mode": "standard"},
    )
    return boto3.session.Session().client(
        "s3", endpoint_url=settings.endpoint_url, region_name=settings.region, config=config, **options
    )


class ObjectStore:
    """The keys under ``s3://bucket/prefix``; every key given to a method is relative to the prefix."""

    def __init__(self, url: str, settings: ObjectStoreSettings) -> None:
        self.url = url.rstrip("/")
        self.bucket, self.prefix = parse_s3_url(url)
        self.settings = settings
        self._local = threading.local()  # boto3 clients are not shared between threads

    @property
    def client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = _client(self.settings)
        return client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, operation: str, key: str, **params: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, operation)(Bucket=self.bucket, **params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
                raise PreconditionFailed(f"{self.url}/{key}: {code or status}") from None
            if code in ("NoSuchKey", "404"):
                raise KeyError(key) from None
            if code == "NoSuchBucket":
                raise ObjectStoreError(
                    f"bucket {self.bucket!r} does not exist at {self.settings.endpoint_url or 'AWS'}: "
                    f"create it (aws s3 mb s3://{self.bucket}) or fix ANOMSTREAM_REGISTRY_URL"
                ) from None
            raise ObjectStoreError(f"{operation} {self.url}/{key} failed: {code} {exc}") from None
        except BotoCoreError as exc:
            raise ObjectStoreError(
                f"{operation} {self.url}/{key} failed: {exc}; check ANOMSTREAM_S3__ENDPOINT_URL "
                "(or AWS_ENDPOINT_URL) and the credentials"
            ) from None

    def get(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and ETag, or None when there is no such key."""
        try:
            response = self._call("get_object", key, Key=self._key(key))
        except KeyError:
            return None
        return response["Body"].read(), response["ETag"]

    def put(self, key: str, data: bytes) -> str:
        """Write unconditionally (mutable records only); returns the new ETag."""
        return str(self._call("put_object", key, Key=self._key(key), Body=data)["ETag"])

    def put_new(self, key: str, data: bytes) -> str:
        """Create-only (``If-None-Match: *``); :class:`PreconditionFailed` when the key exists."""
        response = self._call("put_object", key, Key=self._key(key), Body=data, IfNoneMatch="*")
        return str(response["ETag"])

    def put_if(self, key: str, data: bytes, etag: str | None) -> str:
        """Compare-and-swap: replace the object whose ETag is ``etag`` (None: create it, only if it
        does not exist); :class:`PreconditionFailed` when it changed meanwhile."""
        if etag is None:
            return self.put_new(key, data)
        return str(self._call("put_object", key, Key=self._key(key), Body=data, IfMatch=etag)["ETag"])

    def exists(self, key: str) -> bool:
        try:
            self._call("head_object", key, Key=self._key(key))
        except KeyError:
            return False
        except ObjectStoreError as exc:
            if "404" in str(exc) or "Not Found" in str(exc):
                return False
            raise
        return True

    def list(self, prefix: str = "", delimiter: str | None = None) -> Iterator[str]:
        """Keys (or, with ``delimiter``, the sub-folders ending in it) under ``prefix``, relative to
        the store's prefix."""
        full = self._key(prefix)
        strip = len(self._key(""))
        params: dict[str, Any] = {"Prefix": full, **({"Delimiter": delimiter} if delimiter else {})}
        while True:
            page = self._call("list_objects_v2", prefix, **params)
            if delimiter:
                yield from (p["Prefix"][strip:] for p in page.get("CommonPrefixes", []))
            else:
                yield from (o["Key"][strip:] for o in page.get("Contents", []))
            if not page.get("IsTruncated"):
                return
            params["ContinuationToken"] = page["NextContinuationToken"]
