"""A batch's manifest: a CSV, JSONL or Parquet file of requests, one per row.

Columns are ClipRequest's fields (`aspect_ratio`, `budget_usd`, ...); an empty cell is an absent
field; `scenes` is JSON and `focus` is "x,y" in CSV. `labels` (accounting, not part of the clip
id) is `customer=acme;campaign=spring` in CSV — pairs separated by `;`, a key split off at the
first `=` — and in JSONL or Parquet an object (a map or struct column) or that same text.
Image paths are relative to the manifest and stay inside its folder; absolute paths only when
the batch allows them (a manifest from elsewhere must not read any file the worker can).
A manifest may be an object on a store (s3://bucket/prefix/batch.csv, read with fsspec storage
options): its image paths then name objects under the manifest's prefix (img/a.jpg →
s3://bucket/prefix/img/a.jpg), kept inside it the same way, and every row carries that URL, so a
chunk run on a machine that shares no disk with this one reads the same image from the store.
An image URL in a row (s3://...) is an absolute name: allowed only as absolute paths are.
Every row is validated before anything is paid, and every row at fault is reported by its row
number (1 = the first request) and field. Rows asking for the same clip (the same clip id) are
one request: generated once, under the first such row's labels. The batch id is derived from
the set of clip ids, so rerunning the same manifest is the same batch and skips what is done.
"""

import csv
import hashlib
import posixpath
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from models import ClipRequest
from models.batch import Manifest, ManifestRow
from tasks.image_files import ImageError, with_image_digest
from tasks.input_files import (
    MAX_MANIFEST_BYTES,
    InputError,
    is_store_url,
    parse_json,
    read_bytes,
    read_text,
)

FORMATS = (".csv", ".jsonl", ".ndjson", ".parquet")
MAX_REPORTED = 20


class ManifestError(ValueError):
    """A manifest a user must fix: the field at fault (row-qualified), why, what would work."""

    def __init__(self, field: str, message: str, allowed: list[str] | None = None,
                 problems: list[tuple[str, str]] | None = None):
        self.field, self.message, self.allowed = field, message, allowed or []
        self.problems = problems or [(field, message)]
        super().__init__("; ".join(f"{f}: {m}" for f, m in self.problems))


def read_manifest(location: str | Path, *, absolute_images: bool = False,
                  options: dict[str, Any] | None = None) -> Manifest:
    """The manifest at `location`: a path, or an object-store URL read with fsspec storage
    `options` (which its images on that store are read with too)."""
    stored = is_store_url(location)
    name = PurePosixPath(str(location)).name
    if PurePosixPath(name).suffix.lower() not in FORMATS:
        raise ManifestError("manifest", f"{name}: unknown manifest format", list(FORMATS))
    if not stored and not Path(location).is_file():
        raise ManifestError("manifest", f"no such file: {location}")
    where = str(location) if stored else str(Path(location).resolve())
    records = _records(str(location), options)
    if not records:
        raise ManifestError("manifest", f"{location} holds no requests")
    rows, problems = [], []
    for number, data in enumerate(records, start=1):
        try:
            _locate_images(data, where, number, absolute_images)
            rows.append(ManifestRow(row=number, request=with_image_digest(
                ClipRequest.model_validate(data), options)))
        except ValidationError as err:
            problems += [(f"row {number}: {'.'.join(map(str, e['loc'])) or 'request'}",
                          e["msg"].removeprefix("Value error, ")) for e in err.errors()]
        except InputError as err:
            problems.append((err.field, err.message))
        except ImageError as err:
            problems.append((f"row {number}: image", str(err)))
    if problems:
        field, message = problems[0]
        raise ManifestError(field, message, problems=problems[:MAX_REPORTED])
    ids = sorted({item.request.clip_id for item in rows})
    batch_id = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]
    return Manifest(path=where, batch_id=batch_id, rows=rows)


def _locate_images(data: dict, manifest: str, number: int, absolute: bool) -> None:
    """The row's image, and each of its scenes' images, named where the manifest says
    (`_located`), in place: a storyboard row's scenes obey the manifest's folder too."""
    places = [(data, f"row {number}: image")]
    if isinstance(data.get("scenes"), list):
        places += [(scene, f"row {number}: scenes.{index}.image")
                   for index, scene in enumerate(data["scenes"]) if isinstance(scene, dict)]
    for holder, field in places:
        image = holder.get("image")
        if isinstance(image, str) and image:
            holder["image"] = _located(manifest, image, field, absolute)


def _located(manifest: str, image: str, field: str, absolute: bool) -> str:
    """An image named in the manifest's folder (or, for a manifest on a store, under its
    prefix) and refused if it leaves it — unless absolute names are allowed and this is one
    (an absolute path, or a store's URL). A web URL is left as given: the image reader
    refuses it."""
    outside = InputError(field, f"{image} is outside the manifest's folder; give a path "
                         "inside it, or allow absolute paths (reelflow batch "
                         "--absolute-images, absolute_images in the UI form)")
    if is_store_url(image):
        if absolute:
            return image
        raise outside
    if "://" in image:
        return image
    if is_store_url(manifest):
        return _under_prefix(manifest, image, outside)
    folder = Path(manifest).parent
    try:
        if absolute and Path(image).is_absolute():
            return str(Path(image).resolve())
        resolved = (folder / image).resolve()
    except ValueError:  # a NUL byte: no file can have that name
        raise InputError(field, f"{image!r} is not a file path") from None
    if not resolved.is_relative_to(folder.resolve()):
        raise outside
    return str(resolved)


def _under_prefix(manifest: str, image: str, outside: InputError) -> str:
    """The URL of `image`, a path relative to a manifest on a store, if it stays under the
    manifest's prefix (`..` is resolved first; a key starting with / is outside)."""
    protocol, key = manifest.split("://", 1)
    prefix = posixpath.dirname(key)
    resolved = posixpath.normpath(posixpath.join(prefix, image))
    if not resolved.startswith(prefix + "/"):
        raise outside
    return f"{protocol}://{resolved}"


def _records(location: str, options: dict[str, Any] | None) -> list[dict]:
    suffix = PurePosixPath(location).suffix.lower()
    try:
        if suffix == ".parquet":
            data = read_bytes(location, "manifest", MAX_MANIFEST_BYTES, options)
            return [{k: v for k, v in r.items() if v is not None}
                    for r in pq.read_table(pa.BufferReader(data)).to_pylist()]
        text = read_text(location, "manifest", MAX_MANIFEST_BYTES, options)
    except InputError as err:
        raise ManifestError(err.field, err.message) from None
    except pa.ArrowException as err:  # a file that is not Parquet
        raise ManifestError("manifest", f"{location} is not a Parquet file: {err}") from None
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
