"""A batch whose manifest and images live on an object store (moto's S3 server, reached through
fsspec/s3fs as a real bucket is): chunk runs on a worker whose home is empty and shares no disk
with the batch's read every image from the bucket; a manifest at fault is refused before
anything is paid — the sandbox's usage log is the judge."""

import asyncio
import io
import json
import uuid

import pytest
from PIL import Image

from flows.batch import run_batch
from models.batch import BatchRequest
from tasks.manifest import ManifestError
from tests.cli.test_hostile_input import one_line_exit_2
from tests.flows.conftest import assert_reconciled
from tests.flows.test_batch import chunks_run_here

pytest_plugins = ("tests.object_store",)  # s3
pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]

# a product shot per aspect ratio Kling takes (and one it must crop to the nearest): the file's
# size and format, and the ratio the crop must give
SHOTS = {"wide": ((1800, 1000), "JPEG", "16:9"), "tall": ((1000, 1700), "JPEG", "9:16"),
         "square": ((1000, 1000), "PNG", "1:1"), "squarish": ((1200, 1000), "JPEG", "1:1")}
RATIOS = {"16:9": 16 / 9, "9:16": 9 / 16, "1:1": 1.0}


def product_shot(size: tuple[int, int], fmt: str) -> bytes:
    """A picture with detail off-centre (what the saliency crop keeps)."""
    image = Image.new("RGB", size, (235, 235, 230))
    w, h = size
    image.paste((180, 40, 30), (w // 5, h // 4, w // 5 + w // 4, h // 4 + h // 3))
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


@pytest.fixture
def store(s3, monkeypatch, tmp_path):
    """A bucket that holds the inputs, the archive and the ledger; the journal in a folder of
    its own (as PostgreSQL would be, shared by every worker). Returns (s3, bucket)."""
    bucket = s3.new_bucket("reelflow-inputs")
    options = json.dumps(s3.options)
    for name, value in {"INPUTS_OPTIONS": options, "ARCHIVE": f"s3://{bucket}/archive",
                        "ARCHIVE_OPTIONS": options, "LEDGER": f"s3://{bucket}/ledger",
                        "LEDGER_OPTIONS": options,
                        "JOURNAL": str(tmp_path / "shared-journal")}.items():
        monkeypatch.setenv(f"REELFLOW_{name}", value)
    return s3, bucket


def put(s3, bucket: str, key: str, data: bytes) -> str:
    s3.client.put_object(Bucket=bucket, Key=key, Body=data)
    return f"s3://{bucket}/{key}"


def manifest_csv(rows: list[tuple[str, str]]) -> bytes:
    """Image-to-video rows (prompt, image path) at 5 s 720p, the ratio left to the image."""
    lines = ["prompt,duration,resolution,mode,aspect_ratio,image"]
    lines += [f"{prompt},5,720p,image,auto,{image}" for prompt, image in rows]
    return "\n".join(lines).encode()


def test_a_manifest_and_its_images_on_the_store_run_on_a_worker_with_an_empty_home(
        home, sandbox, store, tmp_path, monkeypatch):
    s3, bucket = store
    tag = uuid.uuid4().hex[:8]
    for name, (size, fmt, _) in SHOTS.items():
        put(s3, bucket, f"spring/img/{name}.{fmt.lower()}", product_shot(size, fmt))
    url = put(s3, bucket, "spring/batch.csv", manifest_csv(
        [(f"The {name} product turns ({tag})", f"img/{name}.{fmt.lower()}")
         for name, (_, fmt, _) in SHOTS.items()]))
    worker = tmp_path / "worker-home"
    sent = chunks_run_here(monkeypatch, worker_home=worker)
    paid = len(sandbox.usage())

    result = asyncio.run(run_batch(BatchRequest(manifest=url, fan_out="deployments",
                                                chunk_size=2)))

    assert (result.done, result.failed, len(sent)) == (4, 0, 2)
    jobs = sandbox.jobs(prompt=tag)
    assert len(jobs) == 4 and len(sandbox.usage()) - paid == 4  # each row generated once
    assert_reconciled(home, sandbox, ledger=f"s3://{bucket}/ledger", options=s3.options)
    stored = s3.objects(bucket)
    for item, (size, _, ratio) in zip(result.items, SHOTS.values(), strict=True):
        sidecar = json.loads(stored[item.path.removeprefix(f"s3://{bucket}/")
                                    .replace(".mp4", ".json")])
        assert sidecar["crop"]["source_size"] == list(size)
        assert sidecar["crop"]["aspect_ratio"] == ratio
    for job in jobs:  # what the provider received: each image cropped to its ratio
        received = sandbox.admin.get(f"/jobs/{job['id']}").json()["image"]
        width, height = Image.open(sandbox.state / "media" / received).size
        shot = next(s for name, s in SHOTS.items() if f"The {name} product" in job["prompt"])
        assert width / height == pytest.approx(RATIOS[shot[2]], rel=0.01)
    # nothing of the batch's inputs or outputs on either machine's disk
    kept = [p for folder in (home, worker) if folder.exists() for p in folder.rglob("*")
            if p.suffix in (".jpg", ".png", ".csv", ".mp4", ".parquet")]
    assert kept == []


@pytest.mark.parametrize(("image", "field", "said"), [
    ("../private/cat.jpg", "row 1: image", "outside the manifest's folder"),
    ("img/../../private/cat.jpg", "row 1: image", "outside the manifest's folder"),
    ("/private/cat.jpg", "row 1: image", "outside the manifest's folder"),
    ("s3://{bucket}/private/cat.jpg", "row 1: image", "--absolute-images"),
    ("img/gone.jpg", "row 1: image", "no such file: s3://{bucket}/spring/img/gone.jpg"),
])
def test_an_image_outside_the_prefix_or_missing_is_refused_before_anything_is_paid(
        home, sandbox, store, capsys, image, field, said):
    s3, bucket = store
    put(s3, bucket, "private/cat.jpg", product_shot((800, 450), "JPEG"))
    url = put(s3, bucket, "spring/batch.csv",
              manifest_csv([("A cat", image.format(bucket=bucket))]))
    paid = len(sandbox.usage())
    assert said.format(bucket=bucket) in one_line_exit_2(capsys, ["batch", url], field)
    with pytest.raises(ManifestError, match="row 1: image"):  # the deployment's path
        asyncio.run(run_batch(BatchRequest(manifest=url)))
    assert len(sandbox.usage()) == paid


def test_a_missing_manifest_or_an_unreachable_store_is_one_line_naming_the_manifest(
        home, sandbox, store, capsys, monkeypatch):
    _, bucket = store
    paid = len(sandbox.usage())
    said = one_line_exit_2(capsys, ["batch", f"s3://{bucket}/spring/none.csv"], "manifest")
    assert f"no such file: s3://{bucket}/spring/none.csv" in said
    said = one_line_exit_2(capsys, ["batch", "s3://no-such-bucket-here/batch.csv"],
                           "manifest")
    assert "no such file" in said
    monkeypatch.setenv("REELFLOW_INPUTS_OPTIONS", json.dumps({
        "client_kwargs": {"endpoint_url": "http://127.0.0.1:9"},
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1}}))
    said = one_line_exit_2(capsys, ["batch", f"s3://{bucket}/spring/batch.csv"], "manifest")
    assert "cannot read" in said and "Could not connect" in said
    assert len(sandbox.usage()) == paid
