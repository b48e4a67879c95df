"""A real S3-compatible server for tests: s3proxy started once per session (tests/support/plugin.py),
or an existing store named by ANOMSTREAM_TEST_S3_ENDPOINT (credentials from the AWS_* variables).

A test that needs an ``s3://`` registry asks for ``s3_registry_url`` (a fresh bucket of its own) and
builds its settings with :meth:`S3Endpoint.settings`, e.g. for worker processes::

    settings = make_settings(bootstrap, registry_dir, registry_url=s3_registry_url, s3=s3.settings())
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

from pydantic import SecretStr

from stream.objectstore import ObjectStore, parse_s3_url
from stream.settings import ObjectStoreSettings


@dataclass(frozen=True)
class S3Endpoint:
    endpoint: str
    access_key_id: str
    secret_access_key: str
    region: str = "us-east-1"

    def settings(self, **overrides: object) -> ObjectStoreSettings:
        """The ``ANOMSTREAM_S3__*`` settings that reach this store."""
        values: dict[str, object] = {
            "endpoint_url": self.endpoint,
            "region": self.region,
            "access_key_id": self.access_key_id,
            "secret_access_key": SecretStr(self.secret_access_key),
            **overrides,
        }
        return ObjectStoreSettings(**values)  # type: ignore[arg-type]

    def new_bucket(self, prefix: str = "registry") -> str:
        """A bucket of its own for one test; returns ``s3://<bucket>/<prefix>``."""
        url = f"s3://t-{uuid.uuid4().hex[:12]}/{prefix}"
        store = ObjectStore(url, self.settings())
        store.client.create_bucket(Bucket=parse_s3_url(url)[0])
        return url

    @classmethod
    def from_environment(cls) -> S3Endpoint | None:
        endpoint = os.environ.get("ANOMSTREAM_TEST_S3_ENDPOINT")
        if not endpoint:
            return None
        return cls(
            endpoint,
            os.environ.get("AWS_ACCESS_KEY_ID", ""),
            os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
            os.environ.get("AWS_REGION", "us-east-1"),
        )
