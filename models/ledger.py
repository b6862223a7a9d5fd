"""The ledger row and its one pyarrow schema.

The ledger is append-only Parquet; every part file is written with `LEDGER_SCHEMA`, derived here
from `LedgerRow`'s fields so the two cannot drift. Changing a field changes every future part
file: a reader (DuckDB with union_by_name) must still read the old ones, so fields are only ever
added, never renamed or retyped.

`labels` (the request's accounting labels, e.g. customer=acme) is a map<string, string>: DuckDB
reads it as a MAP (`labels['customer']`), and a part written before the column existed reads as
NULL there — no labels.
"""

import types
import typing
from datetime import datetime
from decimal import Decimal
from typing import Literal

import pyarrow as pa
from pydantic import BaseModel, Field

from models.terms import USD, Mode, Resolution

# rejection: a delivered clip that a later take replaced (its charge stays; it is not accepted)
# reconciled: a charge found only on the provider's own bill (tasks/reconciling.py)
EventKind = Literal["submit", "complete", "fail", "requeue", "storage", "inspection",
                   "rejection", "reconciled"]
ChargeKind = Literal["generation", "failed_generation", "requeue", "storage", "reconciled",
                     "none"]

_ARROW_TYPES: dict[type, pa.DataType] = {
    str: pa.string(),
    bool: pa.bool_(),
    int: pa.int64(),
    float: pa.float64(),
    Decimal: pa.decimal128(18, 6),
    datetime: pa.timestamp("us", tz="UTC"),
}


class LedgerRow(BaseModel):
    """One billable or timed event."""

    event_id: str = Field(description="Unique id of this event (dedupes re-flushed rows).")
    event_time: datetime = Field(description="When it happened, UTC.")
    event_kind: EventKind = Field(description="What happened: submit, complete, fail, ...")
    provider: str = Field(description="Provider account family, e.g. kling.")
    model: str = Field(description="Catalog model id.")
    tier: str = Field(description="Tier billed.")
    account: str = Field(description="Account the charge lands on, e.g. kling:standard.")
    endpoint: str = Field(description="sandbox or real: sandbox spend is never mixed with real.")
    job_id: str | None = Field(default=None, description="Provider job id.")
    clip_id: str = Field(description="Idempotency key of the request.")
    parent_clip_id: str | None = Field(default=None, description="Clip this one extends.")
    storyboard_id: str | None = Field(default=None, description="Storyboard this clip is part of.")
    batch_id: str | None = Field(default=None, description="Batch this clip came from.")
    mode: Mode = Field(description="text, image, extend or storyboard.")
    seconds_asked: float | None = Field(default=None, description="Seconds asked for.")
    seconds_billed: float | None = Field(default=None, description="Seconds billed.")
    seconds_delivered: float | None = Field(default=None, description="Seconds measured.")
    resolution_asked: Resolution | None = Field(default=None, description="Resolution asked.")
    resolution_actual: str | None = Field(default=None, description="Measured frame size.")
    audio: bool | None = Field(default=None, description="A soundtrack was asked for.")
    queued_s: float | None = Field(default=None, description="Time in the provider's queue.")
    running_s: float | None = Field(default=None, description="Time generating.")
    detection_delay_s: float | None = Field(
        default=None, description="From the job's completion to our noticing it."
    )
    download_s: float | None = Field(default=None, description="Time to archive the output.")
    inspection_s: float | None = Field(default=None, description="Time to inspect the clip.")
    cost_usd: USD = Field(default=Decimal(0), description="Charge of this event, USD.")
    charge_kind: ChargeKind = Field(default="none", description="What the charge is for.")
    inspection_outcome: str | None = Field(
        default=None, description="ok, downgraded, flash_frame_trimmed, too_long_trimmed, ...; "
        "on a rejection row: rejected: <why>"
    )
    flow_run_id: str | None = Field(default=None, description="Prefect flow run that wrote it.")
    labels: dict[str, str] = Field(
        default_factory=dict, description="The accounting labels of the request of the run "
        "that wrote it, e.g. customer=acme.")


def _arrow_type(annotation: object) -> tuple[pa.DataType, bool]:
    """Map a field annotation to (arrow type, nullable)."""
    nullable = False
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(annotation))
        (annotation,) = args
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) is Literal:
        annotation = type(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) is dict:
        key, value = (_arrow_type(a)[0] for a in typing.get_args(annotation))
        # nullable: parts written before the column read (and are compacted) as null
        return pa.map_(key, value), True
    return _ARROW_TYPES[annotation], nullable


def _schema() -> pa.Schema:
    fields = []
    for name, info in LedgerRow.model_fields.items():
        arrow_type, nullable = _arrow_type(info.annotation)
        fields.append(pa.field(name, arrow_type, nullable=nullable))
    return pa.schema(fields)


LEDGER_SCHEMA: pa.Schema = _schema()


def rows_to_table(rows: list[LedgerRow]) -> pa.Table:
    """Rows as one table with exactly the ledger schema."""
    columns = {name: [getattr(row, name) for row in rows] for name in LEDGER_SCHEMA.names}
    return pa.table(columns, schema=LEDGER_SCHEMA)
