"""The cost report: every view as a table, the projection and advice, the budget, and charts,
as a self-contained HTML page (inline SVG from matplotlib: it opens from disk with no network
and references no external URL) plus Parquet and CSV exports of each table."""

import html
import io
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from analytics.projection import Advice, Budget, Workload, advise, budget, measured_workload
from providers.catalog import Catalog
from providers.pricebook import cost_at_scale

TABLES = ("spend_by_day", "unit_costs", "hidden_costs", "latency", "quality_rates",
          "continuation_savings", "price_drift")
DRIFT_WARNING = Decimal("0.05")  # billed this much above the catalog's estimate: say so
DEFAULT_WORKLOAD = Workload(clips_per_month=1000, seconds_per_clip=5, resolution="1080p",
                            measured=False)


class Report(BaseModel):
    generated_at: datetime
    period: str
    since: date | None
    tables: dict[str, list[dict]]
    advice: Advice
    budget: Budget
    scale: list[dict]
    warnings: list[str] = Field(
        default_factory=list, description="What the report could not read, by path.")


def period_start(period: str, today: date) -> date | None:
    """month (default), 7d, 30d, all, or YYYY-MM."""
    if period == "all":
        return None
    if period == "month":
        return today.replace(day=1)
    if re.fullmatch(r"\d+d", period):
        days = int(period[:-1])
        if days >= today.toordinal():
            raise ValueError(f"period {period!r}: reaches back before the year 1")
        return date.fromordinal(today.toordinal() - days)
    if re.fullmatch(r"\d{4}-\d{2}", period):
        return date(int(period[:4]), int(period[5:]), 1)
    raise ValueError(f"period {period!r}: allowed month, all, Nd (e.g. 30d), YYYY-MM")


def collect(con: duckdb.DuckDBPyConnection, catalog: Catalog, *, period: str = "month",
            now: datetime | None = None, budget_usd: Decimal | None = None) -> Report:
    now = now or datetime.now(UTC)
    since = period_start(period, now.date())
    # One deduplicated snapshot for the whole report: every view then reads this temp table
    # (it shadows main.ledger) instead of re-reading and re-deduplicating the part files.
    con.execute("CREATE OR REPLACE TEMP TABLE ledger AS SELECT * FROM main.ledger")
    tables = {}
    for name in TABLES:
        if name == "spend_by_day" and since is not None:
            cursor = con.execute("SELECT * FROM spend_by_day WHERE day >= ?", [since])
        else:
            cursor = con.execute(f"SELECT * FROM {name}")  # names from TABLES, not input
        columns = [c[0] for c in cursor.description]
        tables[name] = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    workload = measured_workload(con, now) or DEFAULT_WORKLOAD
    return Report(generated_at=now, period=period, since=since, tables=tables,
                  advice=advise(catalog, workload, now=now),
                  budget=budget(con, now, budget_usd),
                  scale=[r.model_dump() for r in cost_at_scale(catalog)],
                  warnings=drift_warnings(tables["price_drift"]))


def drift_warnings(rows: list[dict]) -> list[str]:
    """A model and tier the provider billed more than 5% above the catalog's prices."""
    return [f"{r['model']} {r['tier']}: billed ${r['billed_usd']:.2f} against an estimate of "
            f"${r['estimated_usd']:.2f} ({Decimal(r['drift']) * 100:+.1f}%): the catalog's "
            "price is out of date; the budget guard now uses the billed rate"
            for r in rows if r["drift"] is not None and Decimal(r["drift"]) > DRIFT_WARNING]


def _svg(fig) -> str:
    out = io.StringIO()
    fig.savefig(out, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = out.getvalue()
    text = re.sub(r"<\?xml[^>]*>|<!DOCTYPE[^>]*>", "", text)
    return re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)


def charts(report: Report) -> dict[str, str]:
    """Named inline SVG charts (each draws its marks as <path> elements)."""
    out = {}
    spend: dict[str, float] = {}
    for row in report.tables["spend_by_day"]:
        spend[str(row["day"])] = spend.get(str(row["day"]), 0.0) + float(row["cost_usd"] or 0)
    fig, ax = plt.subplots(figsize=(7, 2.6))
    ax.bar(list(spend) or ["(none)"], list(spend.values()) or [0.0], color="#3b6ea8")
    ax.set_title("Spend by day (USD)")
    ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    out["spend-by-day"] = _svg(fig)
    units = report.tables["unit_costs"]
    fig, ax = plt.subplots(figsize=(7, 2.6))
    ax.barh([f"{r['model']} {r['tier']}" for r in units] or ["(none)"],
            [float(r["cost_per_delivered_second"] or 0) for r in units] or [0.0],
            color="#c0713d")
    ax.set_title("Cost per delivered second (USD)")
    out["unit-costs"] = _svg(fig)
    tiers = report.advice.tiers[:8]
    fig, ax = plt.subplots(figsize=(7, 2.6))
    ax.barh([f"{t.model} {t.tier}" for t in tiers] or ["(none)"],
            [float(t.effective_usd) for t in tiers] or [0.0], color="#5a9e5a")
    ax.set_title(f"A month of {report.advice.workload.clips_per_month:,} clips: effective cost")
    out["projection"] = _svg(fig)
    latency = report.tables["latency"]
    fig, ax = plt.subplots(figsize=(7, 2.6))
    for model in sorted({r["model"] for r in latency}) or ["(none)"]:
        points = sorted((r["hour_utc"], float(r["p95_s"])) for r in latency
                        if r["model"] == model)
        ax.plot([p[0] for p in points] or [0], [p[1] for p in points] or [0], marker="o",
                label=model)
    ax.set_title("p95 latency by hour (UTC)")
    ax.legend(fontsize=7)
    out["latency"] = _svg(fig)
    return out


def _table(rows: list[dict]) -> str:
    if not rows:
        return "<p class='empty'>no rows</p>"
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in r.values())
                   + "</tr>" for r in rows[:200])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.4f}"
    if isinstance(value, Decimal):
        return f"{value:,.4f}"
    return "" if value is None else str(value)


def _warnings(warnings: list[str]) -> str:
    if not warnings:
        return ""
    items = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
    return f"<h2>Warnings</h2><ul id='warnings'>{items}</ul>"


def to_html(report: Report) -> str:
    svgs = charts(report)
    sections = "".join(f"<section class='chart' id='{name}'>{svg}</section>"
                       for name, svg in svgs.items())
    tables = "".join(f"<h2>{name.replace('_', ' ')}</h2>{_table(rows)}"
                     for name, rows in report.tables.items())
    b = report.budget
    budget_text = (f"{b.month}: spent ${b.spent_usd:,.2f}, projected ${b.projected_usd:,.2f}"
                   + (f" against a budget of ${b.budget_usd:,.2f}"
                      + (" — OVER" if b.over_budget else "") if b.budget_usd else ""))
    advice = report.advice
    tiers = [t.model_dump() for t in advice.tiers]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>reelflow cost report</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;font-size:12px;margin-bottom:1.5em}}
td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}
th{{background:#eee}} .chart svg{{max-width:100%;height:auto}}</style></head>
<body><h1>reelflow cost report</h1>
<p>Generated {report.generated_at:%Y-%m-%d %H:%M} UTC; period {html.escape(report.period)}
{f"(since {report.since})" if report.since else ""}.</p>
{_warnings(report.warnings)}<h2>Advice</h2><p id="advice">{html.escape(advice.advice)}</p>
<p id="budget">{html.escape(budget_text)}</p>
{sections}
<h2>Monthly cost by tier ({'measured' if advice.workload.measured else 'assumed'} workload)</h2>
{_table(tiers)}
<h2>Seed cost-at-scale table</h2>{_table(report.scale)}
{tables}
</body></html>"""


def export(report: Report, folder: Path) -> list[Path]:
    """Each table as Parquet and CSV."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, rows in report.tables.items():
        if not rows:
            continue
        table = pa.Table.from_pylist(rows)
        for suffix, writer in ((".parquet", pq.write_table), (".csv", pacsv.write_csv)):
            path = folder / f"{name}{suffix}"
            writer(table, path)
            written.append(path)
    return written
