"""Spend by label: a request's accounting labels (customer=acme, campaign=spring) reach every
ledger row it pays for, and the report groups the period's spend, clips, delivered seconds and
cost per delivered second by the value of one label key (`reelflow report --by customer`).

The grouping is DuckDB's (`spend_by_label` in views.sql, the key bound as a parameter). Rows
without the label — a request that had none, or a part written before the ledger had the
column — are grouped as "(none)", so the groups add up to the headline's spend."""

import html

import duckdb
from pydantic import BaseModel, Field, field_serializer

from analytics import tables as human
from models.request import LABEL_KEY

NONE = "(none)"


class LabelSpend(BaseModel):
    label: str = Field(description="The label key grouped by.")
    rows: list[dict] = Field(
        description="One per value of the label, the most spent first, then '(none)' (rows "
        "without it): cost_usd, clips_delivered, delivered_seconds, cost_per_delivered_second.")

    @field_serializer("rows", when_used="json")
    def _rows(self, value: list[dict]) -> list[dict]:
        return human.json_rows(value)


def check_key(key: str) -> str:
    """A label key to group by, or ValueError saying what a key is."""
    if not LABEL_KEY.fullmatch(key):
        raise ValueError(f"{key!r} is not a label key: 1-32 lowercase letters, digits, _ or -")
    return key


def label_keys(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every label key the ledger's rows carry, sorted."""
    return [key for (key,) in con.execute("SELECT label FROM label_keys").fetchall()]


def spend_by_label(con: duckdb.DuckDBPyConnection, key: str) -> LabelSpend:
    cursor = con.execute("SELECT * FROM spend_by_label(?)", [check_key(key)])
    columns = [c[0] for c in cursor.description]
    rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:
        row["label_value"] = NONE if row["label_value"] is None else row["label_value"]
    return LabelSpend(label=key, rows=rows)


def to_html(spend: LabelSpend | None, seen: list[str]) -> str:
    """The by-label table (with --by), else the label keys seen and how to group by one."""
    keys = ", ".join(seen)
    if spend is None:
        return (f"<p class='note' id='label-keys'>Labels in this period: {html.escape(keys)} "
                "(<code>reelflow report --by KEY</code> groups spend by one)</p>"
                if seen else "")
    note = ("" if spend.label in seen else
            f"<p class='note'>no row in this period carries the label "
            f"{html.escape(spend.label)}" + (f"; labels seen: {html.escape(keys)}" if seen
                                             else "") + "</p>")
    return (f"<h2>Spend by {html.escape(spend.label)}</h2>{note}<section id='by-label'>"
            + human.to_html(spend.rows, headers={"label_value": spend.label.capitalize()})
            + "</section>")
