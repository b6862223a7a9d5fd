"""A batch's manifest: a CSV, JSONL or Parquet file of requests, one per row.

Columns are ClipRequest's fields (`aspect_ratio`, `budget_usd`, ...); an empty cell is an absent
field; `scenes` is JSON and `focus` is "x,y" in CSV. Image paths are relative to the manifest.
Every row is validated before anything is paid, and every row at fault is reported by its row
number (1 = the first request) and field. Rows asking for the same clip (the same clip id) are
one request: generated once. The batch id is derived from the set of clip ids, so rerunning the
same manifest is the same batch and skips what is done.
"""

import csv
import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from models import ClipRequest
from models.batch import Manifest, ManifestRow
from tasks.images import ImageError, with_image_digest

FORMATS = (".csv", ".jsonl", ".ndjson", ".parquet")
MAX_REPORTED = 20


class ManifestError(ValueError):
    """A manifest a user must fix: the field at fault (row-qualified), why, what would work."""

    def __init__(self, field: str, message: str, allowed: list[str] | None = None,
                 problems: list[tuple[str, str]] | None = None):
        self.field, self.message, self.allowed = field, message, allowed or []
        self.problems = problems or [(field, message)]
        super().__init__("; ".join(f"{f}: {m}" for f, m in self.problems))


def read_manifest(path: str | Path) -> Manifest:
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise ManifestError("manifest", f"{path.name}: unknown manifest format",
                            list(FORMATS))
    if not path.is_file():
        raise ManifestError("manifest", f"no such file: {path}")
    records = _records(path)
    if not records:
        raise ManifestError("manifest", f"{path} holds no requests")
    rows, problems = [], []
    for number, data in enumerate(records, start=1):
        try:
            if data.get("image") and "://" not in data["image"] and \
                    not Path(data["image"]).is_absolute():
                data["image"] = str(path.parent / data["image"])
            rows.append(ManifestRow(row=number, request=with_image_digest(
                ClipRequest.model_validate(data))))
        except ValidationError as err:
            problems += [(f"row {number}: {'.'.join(map(str, e['loc'])) or 'request'}",
                          e["msg"].removeprefix("Value error, ")) for e in err.errors()]
        except ImageError as err:
            problems.append((f"row {number}: image", str(err)))
    if problems:
        field, message = problems[0]
        raise ManifestError(field, message, problems=problems[:MAX_REPORTED])
    ids = sorted({item.request.clip_id for item in rows})
    batch_id = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]
    return Manifest(path=str(path.resolve()), batch_id=batch_id, rows=rows)


def _records(path: Path) -> list[dict]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return [{k: v for k, v in r.items() if v is not None}
                    for r in pq.read_table(path).to_pylist()]
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise ManifestError("manifest", f"cannot read {path}: {err}") from None
    except pa.ArrowException as err:  # a file that is not Parquet
        raise ManifestError("manifest", f"{path} is not a Parquet file: {err}") from None
    if suffix == ".csv":
        return [_csv_record(number, row) for number, row in
                enumerate(csv.DictReader(text.splitlines()), start=1)]
    records = []
    for number, line in enumerate((ln for ln in text.splitlines() if ln.strip()), start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ManifestError(f"row {number}", f"not valid JSON: {err}") from None
        if not isinstance(record, dict):
            raise ManifestError(f"row {number}", "each line must hold one JSON object")
        records.append(record)
    return records


def _csv_record(number: int, row: dict) -> dict:
    record = {k.strip(): v.strip() for k, v in row.items() if k and v and v.strip()}
    if "scenes" in record:
        try:
            record["scenes"] = json.loads(record["scenes"])
        except json.JSONDecodeError as err:
            raise ManifestError(f"row {number}: scenes", f"not valid JSON: {err}") from None
    if "focus" in record:
        record["focus"] = record["focus"].split(",")
    return record
