"""A manifest's `labels` column: read from CSV, JSONL and Parquet, refused by row and field, and
carried into the ledger rows of its clips."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from models import rows_to_table
from providers.router import parse_subscriptions, plan
from storage.ledger import event_row
from tasks.manifest import ManifestError, read_manifest

ACME = {"customer": "acme", "campaign": "spring"}


def write_csv(path, *lines):
    path.write_text("\n".join(["prompt,duration,labels", *lines]) + "\n")
    return path


def test_a_csv_manifest_reads_labels_separated_by_semicolons(tmp_path):
    manifest = read_manifest(write_csv(tmp_path / "m.csv", "A heron lands,5,"
                                       "customer=acme;campaign=spring", "A fox runs,5,"))
    assert [row.request.labels for row in manifest.rows] == [ACME, {}]


def test_jsonl_and_parquet_manifests_take_labels_as_an_object_a_map_or_the_text(tmp_path):
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text("\n".join(json.dumps({"prompt": p, "duration": 5, "labels": labels})
                               for p, labels in (("A heron lands", ACME),
                                                 ("A fox runs", "customer=acme;campaign=spring"))))
    assert [r.request.labels for r in read_manifest(jsonl).rows] == [ACME, ACME]
    parquet = tmp_path / "m.parquet"
    pq.write_table(pa.table({
        "prompt": ["A heron lands", "A fox runs"], "duration": [5.0, 5.0],
        "labels": pa.array([ACME, None], pa.map_(pa.string(), pa.string()))}), parquet)
    assert [r.request.labels for r in read_manifest(parquet).rows] == [ACME, {}]


def test_labels_are_not_part_of_the_batch(tmp_path):
    """Relabelling a manifest is the same batch of the same clips: nothing is paid again."""
    first = read_manifest(write_csv(tmp_path / "a.csv", "A heron lands,5,customer=acme"))
    again = read_manifest(write_csv(tmp_path / "b.csv", "A heron lands,5,customer=globex"))
    assert first.batch_id == again.batch_id
    assert first.rows[0].request.clip_id == again.rows[0].request.clip_id


def test_a_bad_label_is_reported_by_its_row_and_field(tmp_path):
    with pytest.raises(ManifestError) as caught:
        read_manifest(write_csv(tmp_path / "m.csv", "A heron lands,5,customer=acme",
                                "A fox runs,5,Customer=acme"))
    assert caught.value.field == "row 2: labels"
    assert "lowercase letters, digits, _ or -" in caught.value.message


def test_a_manifest_s_labels_reach_the_ledger_column(tmp_path, catalog, now, sandbox_endpoints):
    manifest = read_manifest(write_csv(tmp_path / "m.csv", "A heron lands,5,"
                                       "customer=acme;campaign=spring"))
    request = manifest.rows[0].request.model_copy(update={"batch_id": manifest.batch_id})
    decision = plan(request, catalog, now=now, endpoints=sandbox_endpoints,
                    subscriptions=parse_subscriptions("kling:standard", catalog))
    row = event_row("submit", request, decision, "run-1", key=(0, "submit"))
    assert row.labels == ACME and row.batch_id == manifest.batch_id
    table = rows_to_table([row])
    assert dict(table.column("labels")[0].as_py()) == ACME
