"""The archive on an object store: a local S3-compatible server (moto's server mode) started by
the test, reached through fsspec/s3fs exactly as a real bucket would be."""

import asyncio
import hashlib
import json
import tempfile
import uuid

import boto3
import pytest
from moto.server import ThreadedMotoServer

from flows.generate import generate_clip
from models import ClipRequest
from storage.archive import AlreadyArchived, Archive
from storage.journal import Journal
from tests.flows.conftest import assert_reconciled

pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]
BUCKET = "reelflow-archive"


@pytest.fixture(scope="module")
def s3_server():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_server, monkeypatch):
    """A fresh bucket; credentials only in the store's own environment variables."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = boto3.client("s3", endpoint_url=s3_server)
    name = f"{BUCKET}-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=name)
    monkeypatch.setenv("REELFLOW_ARCHIVE", f"s3://{name}/studio")
    monkeypatch.setenv("REELFLOW_ARCHIVE_OPTIONS",
                       json.dumps({"client_kwargs": {"endpoint_url": s3_server}}))
    return client, name


def objects(client, name: str) -> dict[str, bytes]:
    listing = client.list_objects_v2(Bucket=name).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=name, Key=o["Key"])["Body"].read()
            for o in listing}


def test_a_clip_its_trimmed_copy_and_sidecar_land_in_the_bucket_once(home, sandbox, bucket):
    client, name = bucket
    request = ClipRequest(prompt=f"A paper boat drifts ({uuid.uuid4().hex[:8]})", duration=5,
                          policy="sora-2", resolution="720p")
    result = asyncio.run(generate_clip(request))
    assert result.path.startswith(f"s3://{name}/studio/clips/2026/")
    stored = objects(client, name)
    key = result.path.removeprefix(f"s3://{name}/")
    assert hashlib.sha256(stored[key]).hexdigest() == result.sha256
    trimmed = result.trimmed_path.removeprefix(f"s3://{name}/")
    sidecar = json.loads(stored[key.replace(".mp4", ".json")])
    assert sidecar["trimmed_sha256"] == hashlib.sha256(stored[trimmed]).hexdigest()
    assert not (home / "clips").exists()  # nothing archived locally
    assert Journal(home / "journal").read(result.clip_id).archive.path == result.path

    again = asyncio.run(generate_clip(request))
    assert again.path == result.path and objects(client, name) == stored
    assert_reconciled(home, sandbox)


def test_the_bucket_is_write_once(bucket, s3_server, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the staging files go
    _, name = bucket
    archive = Archive(f"s3://{name}/studio", {"client_kwargs": {"endpoint_url": s3_server}})
    target = f"s3://{name}/studio/clips/2026/11/25/x.mp4"
    with archive.writing(target) as sink:
        sink.write(b"first")
    with pytest.raises(AlreadyArchived), archive.writing(target) as sink:
        sink.write(b"second")
    assert archive.sha256(target) == hashlib.sha256(b"first").hexdigest()
    assert list(tmp_path.iterdir()) == []
