"""The report's tables for a person and for a machine: human headers, dollars to the cent
(`models.usd_text`, half up — the plan and the result round the same way), yes/no, 0 for a sum
with nothing in it; and, in JSON, every amount a number (cents; a per-second price to 1/100 of
a cent, where cents would read $0.00)."""

import html
from datetime import date
from decimal import Decimal
from typing import Annotated

from pydantic import PlainSerializer

from models import cents, usd_text

RATE = Decimal("0.0001")


def rate(amount: Decimal) -> Decimal:
    """A per-second price: cents would read $0.03 for both $0.028 and $0.034."""
    return Decimal(amount).quantize(RATE)


# Exact inside, a number rounded the way it is printed outside (report --json).
Cents = Annotated[Decimal, PlainSerializer(lambda v: float(cents(v)), return_type=float,
                                           when_used="json")]
PerSecond = Annotated[Decimal, PlainSerializer(lambda v: float(rate(v)), return_type=float,
                                               when_used="json")]

LABELS = {
    "day": "Day", "provider": "Provider", "model": "Model", "tier": "Tier", "mode": "Mode",
    "cost_usd": "Cost", "charges": "Charges", "accepted_clips": "Accepted clips",
    "delivered_seconds": "Delivered seconds",
    "cost_per_delivered_second": "Cost per delivered second ($/s)",
    "cost_per_accepted_clip": "Cost per accepted clip",
    "failed_generations_usd": "Failed generations", "requeues_usd": "Re-queues",
    "storage_usd": "Storage", "rejected_clips_usd": "Rejected takes",
    "snapped_seconds_usd": "Seconds billed beyond those asked",
    "seconds": "Clip length (s)", "resolution": "Resolution", "hour_utc": "Hour (UTC)",
    "jobs": "Jobs", "p50_s": "Median wait", "p95_s": "p95 wait", "p99_s": "p99 wait",
    "completed": "Completed", "failed": "Failed", "success_rate": "Success rate",
    "downgrade_rate": "Downgraded", "flash_frame_rate": "Flash frames",
    "paid_usd": "Paid", "from_scratch_usd": "Generating it whole would cost",
    "saved_usd": "Saved", "estimated_usd": "Catalog estimate", "billed_usd": "Billed",
    "drift": "Billed above the estimate", "billed_seconds": "Seconds billed a clip",
    "metered_usd": "Metered", "minimum_usd": "Monthly minimum",
    "effective_usd": "Monthly cost", "per_clip_usd": "Per clip", "volume": "Clips a month",
    "seed_metered_usd": "Seed table (seconds asked)",
    "wire_billed_seconds": "Seconds billed on the wire",
    "wire_effective_usd": "Monthly cost as billed", "price_assumed": "Price assumed",
    "clips_delivered": "Clips delivered",
}
PER_SECOND = {"cost_per_delivered_second"}
# a ratio with nothing to divide by has no value ("—"); a sum or a count of nothing is 0
RATIOS = {"cost_per_accepted_clip", "success_rate", "downgrade_rate", "flash_frame_rate",
          "drift", "p50_s", "p95_s", "p99_s"}
COUNTS = {"charges", "accepted_clips", "clips_delivered", "jobs", "completed", "failed",
          "volume", "billed_seconds", "wire_billed_seconds", "delivered_seconds", "seconds"}


def label(column: str) -> str:
    return LABELS.get(column, column.replace("_", " ").capitalize())


def _money(column: str) -> bool:
    return column.endswith("_usd") or column == "cost_per_accepted_clip"


def cell(column: str, value: object) -> str:
    """One value as a person reads it."""
    if value is None:
        return "—" if column in RATIOS | PER_SECOND else "$0.00" if _money(column) else (
            "0" if column in COUNTS else "—")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if column in PER_SECOND:
        return f"${rate(Decimal(str(value)))}"
    if _money(column):
        return usd_text(Decimal(str(value)))
    if column.endswith("_rate") or column == "drift":
        return f"{float(value):.1%}"
    if column.endswith("_s"):
        return f"{float(value):,.1f} s"
    if column == "hour_utc":
        return f"{int(value):02d}:00"
    if isinstance(value, float | Decimal):
        return f"{float(value):,.1f}".removesuffix(".0")
    if isinstance(value, int):
        return f"{value:,}"
    return value.isoformat() if isinstance(value, date) else str(value)


def json_value(column: str, value: object) -> object:
    """One value for --json: amounts as numbers rounded the way `cell` prints them."""
    if isinstance(value, bool) or value is None or not isinstance(value, float | Decimal):
        return value.isoformat() if isinstance(value, date) else value
    amount = Decimal(str(value))
    if column in PER_SECOND:
        return float(rate(amount))
    if _money(column):
        return float(cents(amount))
    return float(value)


def json_rows(rows: list[dict]) -> list[dict]:
    return [{k: json_value(k, v) for k, v in row.items()} for row in rows]


def human_rows(rows: list[dict]) -> list[dict[str, str]]:
    """Rows keyed by header, every value as printed (the Prefect table artifact)."""
    return [{label(k): cell(k, v) for k, v in row.items()} for row in rows]


def to_html(rows: list[dict], limit: int = 200, headers: dict[str, str] | None = None) -> str:
    """A table; `headers` names columns whose header is not their label (a label key)."""
    if not rows:
        return "<p class='empty'>nothing in this period</p>"
    headers = headers or {}
    head = "".join(f"<th>{html.escape(headers.get(k) or label(k))}</th>" for k in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td class='{_align(k, v)}'>{html.escape(cell(k, v))}</td>"
                         for k, v in r.items()) + "</tr>" for r in rows[:limit])
    more = (f"<p class='note'>the first {limit:,} of {len(rows):,} rows; the exports hold "
            "them all</p>" if len(rows) > limit else "")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def _align(column: str, value: object) -> str:
    numeric = (column in RATIOS | PER_SECOND | COUNTS or _money(column)
               or column == "hour_utc" or (isinstance(value, int | float | Decimal)
                                           and not isinstance(value, bool)))
    return "num" if numeric else "text"
