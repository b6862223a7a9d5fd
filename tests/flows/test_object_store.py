"""The archive and the ledger on an object store: a local S3-compatible server (moto's server
mode) started by the test, reached through fsspec/s3fs exactly as a real bucket would be."""

import asyncio
import hashlib
import json
import re
import tempfile
import uuid
from decimal import Decimal

import pytest

from cli.main import main
from flows.generate import generate_clip
from models import ClipRequest
from storage.archive import AlreadyArchived, Archive
from tests.flows.conftest import assert_reconciled
from tests.flows.journals import journal_of

pytest_plugins = ("tests.object_store",)  # s3
pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]
BUCKET = "reelflow-archive"


@pytest.fixture
def bucket(s3, monkeypatch):
    """A fresh bucket holding the archive."""
    name = s3.new_bucket(BUCKET)
    monkeypatch.setenv("REELFLOW_ARCHIVE", f"s3://{name}/studio")
    monkeypatch.setenv("REELFLOW_ARCHIVE_OPTIONS",
                       json.dumps(s3.options))
    return s3, name


def test_a_clip_its_trimmed_copy_and_sidecar_land_in_the_bucket_once(home, sandbox, bucket):
    s3, name = bucket
    request = ClipRequest(prompt=f"A paper boat drifts ({uuid.uuid4().hex[:8]})", duration=5,
                          policy="sora-2", resolution="720p")
    result = asyncio.run(generate_clip(request))
    assert result.path.startswith(f"s3://{name}/studio/clips/2026/")
    stored = s3.objects(name)
    key = result.path.removeprefix(f"s3://{name}/")
    assert hashlib.sha256(stored[key]).hexdigest() == result.sha256
    trimmed = result.trimmed_path.removeprefix(f"s3://{name}/")
    sidecar = json.loads(stored[key.replace(".mp4", ".json")])
    assert sidecar["trimmed_sha256"] == hashlib.sha256(stored[trimmed]).hexdigest()
    assert not (home / "clips").exists()  # nothing archived locally
    assert journal_of(home).read(result.clip_id).archive.path == result.path

    again = asyncio.run(generate_clip(request))
    assert again.path == result.path and s3.objects(name) == stored
    assert_reconciled(home, sandbox)


def test_the_bucket_is_write_once(bucket, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the staging files go
    s3, name = bucket
    archive = Archive(f"s3://{name}/studio", s3.options)
    target = f"s3://{name}/studio/clips/2026/11/25/x.mp4"
    with archive.writing(target) as sink:
        sink.write(b"first")
    with pytest.raises(AlreadyArchived), archive.writing(target) as sink:
        sink.write(b"second")
    assert archive.sha256(target) == hashlib.sha256(b"first").hexdigest()
    assert list(tmp_path.iterdir()) == []


def test_a_run_with_the_ledger_in_the_bucket_reconciles_to_the_bill(home, sandbox, bucket,
                                                                    monkeypatch, capsys):
    """Every charge is a create-only put of its own part under ledger/; read back from the
    bucket (DuckDB through the registered filesystem) it equals the sandbox's bill to the
    cent, and the report over it counts the same spend."""
    s3, name = bucket
    monkeypatch.setenv("REELFLOW_LEDGER", f"s3://{name}/ledger")
    monkeypatch.setenv("REELFLOW_LEDGER_OPTIONS", json.dumps(s3.options))
    request = ClipRequest(prompt=f"A lantern on a pier ({uuid.uuid4().hex[:8]})", duration=5)
    result = asyncio.run(generate_clip(request))
    parts = [key for key in s3.objects(name) if key.startswith("ledger/")]
    assert parts and all(re.fullmatch(r"ledger/date=[\d-]+/run=[\w-]+/part-\d{5}\.parquet", key)
                         for key in parts)
    assert not (home / "ledger").exists()
    billed = assert_reconciled(home, sandbox, ledger=f"s3://{name}/ledger",
                               options=s3.options)
    assert sum(billed.values()) == round(Decimal(str(result.cost_usd)), 2) > 0
    capsys.readouterr()
    assert main(["report", "--json", "--period", "all"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert float(out["report"]["budget"]["spent_usd"]) == pytest.approx(result.cost_usd)
    assert out["report"]["warnings"] == []
