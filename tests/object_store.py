"""A local S3-compatible server (moto's server mode) for the object-store backends' tests,
reached through fsspec/s3fs exactly as a real bucket would be; credentials only in the store's
own environment variables. A plugin: `pytest_plugins = ("tests.object_store",)`."""

import uuid

import boto3
import pytest
from moto.server import ThreadedMotoServer


class S3:
    """The server as a test sees it: fresh buckets, what they hold, the storage options."""

    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        self.client = boto3.client("s3", endpoint_url=endpoint)
        self.options = {"client_kwargs": {"endpoint_url": endpoint}}

    def new_bucket(self, prefix: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.client.create_bucket(Bucket=name)
        return name

    def objects(self, bucket: str) -> dict[str, bytes]:
        listing = self.client.list_objects_v2(Bucket=bucket).get("Contents", [])
        return {o["Key"]: self.client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
                for o in listing}


@pytest.fixture(scope="module")
def s3_server():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch) -> S3:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return S3(s3_server)
