"""A batch's manifest: a CSV, JSONL or Parquet file of requests, one per row.

Columns are ClipRequest's fields (`aspect_ratio`, `budget_usd`, ...); an empty cell is an absent
field; `scenes` is JSON and `focus` is "x,y" in CSV. `labels` (accounting, not part of the clip
id) is `customer=acme;campaign=spring` in CSV — pairs separated by `;`, a key split off at the
first `=` — and in JSONL or Parquet an object (a map or struct column) or that same text.
Image paths are relative to the manifest and stay inside its folder; absolute paths only when
the batch allows them (a manifest from elsewhere must not read any file the worker can).
Every row is validated before anything is paid, and every row at fault is reported by its row
number (1 = the first request) and field. Rows asking for the same clip (the same clip id) are
one request: generated once, under the first such row's labels. The batch id is derived from
the set of clip ids, so rerunning the same manifest is the same batch and skips what is done.
"""

import csv
import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from models import ClipRequest
from models.batch import Manifest, ManifestRow
from tasks.image_files import ImageError, with_image_digest
from tasks.input_files import MAX_MANIFEST_BYTES, InputError, parse_json, read_text

FORMATS = (".csv", ".jsonl", ".ndjson", ".parquet")
MAX_REPORTED = 20


class ManifestError(ValueError):
    """A manifest a user must fix: the field at fault (row-qualified), why, what would work."""

    def __init__(self, field: str, message: str, allowed: list[str] | None = None,
                 problems: list[tuple[str, str]] | None = None):
        self.field, self.message, self.allowed = field, message, allowed or []
        self.problems = problems or [(field, message)]
        super().__init__("; ".join(f"{f}: {m}" for f, m in self.problems))


def read_manifest(path: str | Path, *, absolute_images: bool = False) -> Manifest:
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
            image = data.get("image")
            if isinstance(image, str) and image and "://" not in image:
                data["image"] = str(_located(path.parent, image, number, absolute_images))
            rows.append(ManifestRow(row=number, request=with_image_digest(
                ClipRequest.model_validate(data))))
        except ValidationError as err:
            problems += [(f"row {number}: {'.'.join(map(str, e['loc'])) or 'request'}",
                          e["msg"].removeprefix("Value error, ")) for e in err.errors()]
        except (ImageError, InputError) as err:
            problems.append((f"row {number}: image", getattr(err, "message", str(err))))
    if problems:
        field, message = problems[0]
        raise ManifestError(field, message, problems=problems[:MAX_REPORTED])
    ids = sorted({item.request.clip_id for item in rows})
    batch_id = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]
    return Manifest(path=str(path.resolve()), batch_id=batch_id, rows=rows)


def _located(folder: Path, image: str, number: int, absolute: bool) -> Path:
    """An image path resolved in the manifest's folder and refused if it leaves it — unless
    absolute paths are allowed and this is one."""
    field = f"row {number}: image"
    try:
        if absolute and Path(image).is_absolute():
            return Path(image).resolve()
        resolved = (folder / image).resolve()
    except ValueError:  # a NUL byte: no file can have that name
        raise InputError(field, f"{image!r} is not a file path") from None
    if not resolved.is_relative_to(folder.resolve()):
        raise InputError(field, f"{image} is outside the manifest's folder; give a path "
                         "inside it, or allow absolute paths (reelflow batch "
                         "--absolute-images, absolute_images in the UI form)")
    return resolved


def _records(path: Path) -> list[dict]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return [{k: v for k, v in r.items() if v is not None}
                    for r in pq.read_table(path).to_pylist()]
        text = read_text(path, "manifest", MAX_MANIFEST_BYTES)
    except InputError as err:
        raise ManifestError(err.field, err.message) from None
    except OSError as err:
        raise ManifestError("manifest", f"cannot read {path}: {err}") from None
    except pa.ArrowException as err:  # a file that is not Parquet
        raise ManifestError("manifest", f"{path} is not a Parquet file: {err}") from None
    if suffix == ".csv":
        return _csv_records(text)
    records = []
    for number, line in enumerate((ln for ln in text.splitlines() if ln.strip()), start=1):
        try:
            record = parse_json(line, f"row {number}")
        except InputError as err:
            raise ManifestError(err.field, err.message) from None
        if not isinstance(record, dict):
            raise ManifestError(f"row {number}", "each line must hold one JSON object")
        records.append(record)
    return records


def _csv_records(text: str) -> list[dict]:
    """Rows of a CSV whose header names each column once and whose rows have as many cells."""
    reader = csv.reader(text.splitlines())
    try:
        header = [name.strip() for name in next(reader, [])]
        repeated = sorted({name for name in header if header.count(name) > 1})
        if repeated:
            raise ManifestError("manifest", f"the header names {', '.join(repeated)} more than "
                                "once; name each column once")
        records = []
        for number, cells in enumerate(reader, start=1):
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                raise ManifestError(f"row {number}", f"{len(cells)} cells under a header of "
                                    f"{len(header)} columns; give one cell per column")
            records.append(_csv_record(number, dict(zip(header, cells, strict=True))))
        return records
    except csv.Error as err:  # e.g. a cell over the 128 KB field limit
        # line 1 is the header: row 1 (the first request) is line 2
        raise ManifestError(f"row {reader.line_num - 1}", f"not a CSV row: {err}") from None


def _csv_record(number: int, row: dict) -> dict:
    record = {k: v.strip() for k, v in row.items() if k and v.strip()}
    if "scenes" in record:
        try:
            record["scenes"] = parse_json(record["scenes"], f"row {number}: scenes")
        except InputError as err:
            raise ManifestError(err.field, err.message) from None
    if "focus" in record:
        record["focus"] = record["focus"].split(",")
    return record
