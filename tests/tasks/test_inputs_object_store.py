"""A manifest and images on an object store (moto's S3 server through fsspec/s3fs): a manifest's
image paths name objects under its prefix, its limits are a local manifest's; a request's image
may be an object, never a web URL."""

import hashlib
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from models import ClipRequest
from tasks.image_files import ImageError, with_image_digest
from tasks.manifest import ManifestError, read_manifest

pytest_plugins = ("tests.object_store",)  # s3


@pytest.fixture
def bucket(s3):
    name = s3.new_bucket("reelflow-manifests")
    photo = io.BytesIO()
    Image.new("RGB", (640, 360), (200, 120, 40)).save(photo, "JPEG")
    for key in ("spring/img/cat.jpg", "elsewhere/cat.jpg"):
        s3.client.put_object(Bucket=name, Key=key, Body=photo.getvalue())
    return s3, name


def parquet_manifest(s3, bucket: str, image: str) -> str:
    table = pa.table({"mode": ["image"], "prompt": ["A cat"], "duration": [5],
                      "image": [image]})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    s3.client.put_object(Bucket=bucket, Key="spring/batch.parquet", Body=sink.getvalue())
    return f"s3://{bucket}/spring/batch.parquet"


def test_an_image_path_resolves_under_the_manifest_s_prefix(bucket):
    s3, name = bucket
    url = parquet_manifest(s3, name, "img/../img/cat.jpg")
    manifest = read_manifest(url, options=s3.options)
    assert manifest.path == url
    request = manifest.rows[0].request
    assert request.image == f"s3://{name}/spring/img/cat.jpg" and request.image_sha256


def test_an_image_url_is_an_absolute_name_allowed_only_as_absolute_paths_are(bucket):
    s3, name = bucket
    elsewhere = f"s3://{name}/elsewhere/cat.jpg"
    url = parquet_manifest(s3, name, elsewhere)
    with pytest.raises(ManifestError, match="--absolute-images"):
        read_manifest(url, options=s3.options)
    allowed = read_manifest(url, absolute_images=True, options=s3.options)
    assert allowed.rows[0].request.image == elsewhere


def test_a_manifest_on_the_store_keeps_the_size_cap(bucket, monkeypatch):
    s3, name = bucket
    url = parquet_manifest(s3, name, "img/cat.jpg")
    monkeypatch.setattr("tasks.manifest.MAX_MANIFEST_BYTES", 100)
    with pytest.raises(ManifestError, match=r"bytes; at most 100 are read"):
        read_manifest(url, options=s3.options)


def test_a_request_s_image_may_be_an_object_and_a_web_url_is_still_refused(bucket):
    s3, name = bucket
    kept = s3.objects(name)["spring/img/cat.jpg"]
    request = with_image_digest(ClipRequest(mode="image", prompt="A cat", duration=5,
                                            image=f"s3://{name}/spring/img/cat.jpg"),
                                s3.options)
    assert request.image_sha256 == hashlib.sha256(kept).hexdigest()
    with pytest.raises(ImageError, match="not fetched from URLs"):
        with_image_digest(ClipRequest(mode="image", prompt="A cat", duration=5,
                                      image="https://example.com/cat.jpg"))


def test_a_storyboard_row_s_scene_images_resolve_under_the_prefix_too(bucket):
    s3, name = bucket
    scenes = [{"prompt": "Dawn", "duration": 4, "image": "img/cat.jpg"},
              {"prompt": "Dusk", "duration": 4, "image": "../elsewhere/cat.jpg"}]
    row = {"mode": "storyboard", "prompt": "A day", "scenes": scenes}
    s3.client.put_object(Bucket=name, Key="spring/board.jsonl", Body=json.dumps(row).encode())
    with pytest.raises(ManifestError, match=r"row 1: scenes\.1\.image: .* outside"):
        read_manifest(f"s3://{name}/spring/board.jsonl", options=s3.options)
    scenes.pop()
    s3.client.put_object(Bucket=name, Key="spring/board.jsonl", Body=json.dumps(row).encode())
    board = read_manifest(f"s3://{name}/spring/board.jsonl", options=s3.options)
    assert board.rows[0].request.scenes[0].image == f"s3://{name}/spring/img/cat.jpg"
