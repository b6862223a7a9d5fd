"""The cost report: the period's headline numbers, a gallery of its clips, charts, then every
view as a table, with the projection and advice — as a self-contained HTML page (inline SVG and
data: thumbnails: it opens from disk with no network and references no external URL) plus
Parquet and CSV exports of each table.

The period's tables read one snapshot of the ledger trimmed to the period; the budget, its
projection and the measured workload read the whole snapshot (they are about this month and
the last 30 days, whatever the period). With `by` (a label key) the report adds the period's
spend grouped by that label's value (analytics/labels.py); without, it names the label keys
seen."""

import html
import re
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pydantic import BaseModel, Field, field_serializer

from analytics import labels
from analytics import tables as human
from analytics.charts import charts
from analytics.gallery import GALLERY_SIZE, GalleryClip, delivered, gallery
from analytics.labels import LabelSpend
from analytics.projection import Advice, Budget, Workload, advise, budget, measured_workload
from analytics.tables import Cents, PerSecond
from models import usd_text
from providers.catalog import Catalog
from providers.pricebook import cost_at_scale
from storage.archive import Archive
from storage.journal import Journal

TABLES = ("spend_by_day", "unit_costs", "hidden_costs", "latency", "quality_rates",
          "continuation_savings", "price_drift")
TITLES = {"spend_by_day": "Spend by day",
          "unit_costs": "Cost per delivered second and per accepted clip",
          "hidden_costs": "Hidden costs: failures, re-queues, storage, rejected takes and "
                          "seconds billed beyond those asked",
          "latency": "Wait by model, length, resolution and hour",
          "quality_rates": "Success, downgrade and flash-frame rates",
          "continuation_savings": "What extensions and storyboards saved",
          "price_drift": "Billed against the catalog's estimate"}
DRIFT_WARNING = Decimal("0.05")  # billed this much above the catalog's estimate: say so
DEFAULT_WORKLOAD = Workload(clips_per_month=1000, seconds_per_clip=5, resolution="1080p",
                            measured=False)
__all__ = ["Report", "charts", "collect", "export", "period_start", "to_html"]


class Headline(BaseModel):
    spent_usd: Cents = Field(description="Every charge in the period.")
    clips_delivered: int
    delivered_seconds: float
    cost_per_delivered_second: PerSecond | None = Field(
        description="Spend (failures and re-queues included) per second delivered.")
    budget_used: float | None = Field(
        description="Share of the monthly budget spent this month (None without a budget).")


class Report(BaseModel):
    generated_at: datetime
    period: str
    since: date | None
    until: date | None = Field(default=None, description="The period's end, exclusive.")
    headline: Headline
    gallery: list[GalleryClip] = Field(
        description=f"The period's {GALLERY_SIZE} most recent delivered clips, newest first.")
    clips_in_period: int
    tables: dict[str, list[dict]]
    latency_by_hour: list[dict] = Field(description="p50 and p95 wait by model and hour.")
    advice: Advice
    budget: Budget
    scale: list[dict] = Field(description="The price book at scale, for the period's models.")
    warnings: list[str] = Field(
        default_factory=list, description="What the report could not read, by path.")
    label_keys: list[str] = Field(
        default_factory=list, description="The label keys the period's ledger rows carry.")
    by_label: LabelSpend | None = Field(
        default=None, description="The period's spend by the value of one label (--by).")

    @field_serializer("tables", when_used="json")
    def _tables(self, value: dict[str, list[dict]]) -> dict[str, list[dict]]:
        return {name: human.json_rows(rows) for name, rows in value.items()}

    @field_serializer("scale", when_used="json")
    def _scale(self, value: list[dict]) -> list[dict]:
        return human.json_rows(value)


def period_start(period: str, today: date) -> date | None:
    """month (default), 7d, 30d, all, or YYYY-MM."""
    return period_bounds(period, today)[0]


def period_bounds(period: str, today: date) -> tuple[date | None, date | None]:
    """(first day, the day after the last) of month, Nd, all or YYYY-MM; None where open."""
    if period == "all":
        return None, None
    if period == "month":
        return today.replace(day=1), None
    if re.fullmatch(r"\d+d", period):
        days = int(period[:-1])
        if days >= today.toordinal():
            raise ValueError(f"period {period!r}: reaches back before the year 1")
        return date.fromordinal(today.toordinal() - days), None
    if re.fullmatch(r"\d{4}-\d{2}", period):
        first = date(int(period[:4]), int(period[5:]), 1)
        after = date(first.year + 1, 1, 1) if first.month == 12 else first.replace(
            month=first.month + 1)
        return first, after
    raise ValueError(f"period {period!r}: allowed month, all, Nd (e.g. 30d), YYYY-MM")


def _period(con: duckdb.DuckDBPyConnection, since: date | None, until: date | None) -> None:
    """The period's rows as a temp table that shadows the ledger for every view, and its
    per-clip roll-up as one that shadows `clip_rollup` (the whole ledger and the file's roll-up,
    not copied, for `all`). Named through its database: `main.ledger` alone would find the temp
    table of an earlier report on this connection."""
    database = con.execute("SELECT current_database()").fetchone()[0]
    source = '"' + database.replace('"', '""') + '".main.ledger'  # DuckDB's own name
    bounds = [(since, "event_time >= ?"), (until, "event_time < ?")]
    kept = [(datetime.combine(day, time(), UTC), test) for day, test in bounds if day]
    if kept:
        con.execute(f"CREATE OR REPLACE TEMP TABLE ledger AS SELECT * FROM {source} "
                    f"WHERE {' AND '.join(test for _, test in kept)}",  # fixed SQL, bound values
                    [value for value, _ in kept])
        # the period's per-clip roll-up, from its rows, shadows the file's likewise
        con.execute("CREATE OR REPLACE TEMP TABLE clip_rollup AS FROM clip_rollup_of()")


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    columns = [c[0] for c in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def collect(con: duckdb.DuckDBPyConnection, catalog: Catalog, *, period: str = "month",
            now: datetime | None = None, budget_usd: Decimal | None = None,
            journal: Journal | None = None, archive: Archive | None = None,
            gallery_size: int = GALLERY_SIZE, by: str | None = None) -> Report:
    now = now or datetime.now(UTC)
    since, until = period_bounds(period, now.date())
    if by is not None:
        labels.check_key(by)
    con.execute("SET TimeZone = 'UTC'")  # days and hours are UTC, as the report says
    con.execute("DROP TABLE IF EXISTS temp.ledger")  # an earlier report's period
    con.execute("DROP TABLE IF EXISTS temp.clip_rollup")
    workload = measured_workload(con, now) or DEFAULT_WORKLOAD
    month = budget(con, now, budget_usd)
    _period(con, since, until)
    tables = {name: _rows(con, f"SELECT * FROM {name}")  # names from TABLES, not input
              for name in TABLES}
    spent, clips, seconds = con.execute("""
        SELECT (SELECT coalesce(sum(cost_usd), 0) FROM ledger),
               count(*) FILTER (WHERE delivered),
               coalesce(sum(seconds_delivered) FILTER (WHERE delivered), 0) FROM clips
        """).fetchone()
    headline = Headline(
        spent_usd=spent, clips_delivered=clips, delivered_seconds=float(seconds),
        cost_per_delivered_second=Decimal(spent) / Decimal(str(seconds)) if seconds else None,
        budget_used=float(month.spent_usd / budget_usd) if budget_usd else None)
    recent, total = delivered(con, gallery_size)
    used = {m for (m,) in con.execute("SELECT DISTINCT model FROM ledger").fetchall()}
    return Report(
        generated_at=now, period=period, since=since, until=until, headline=headline,
        gallery=gallery(recent, journal, archive), clips_in_period=total, tables=tables,
        latency_by_hour=_rows(con, """
            SELECT model, hour(utc_wall(event_time)) AS hour_utc, count(*) AS jobs,
                   quantile_cont(queued_s + running_s, 0.50) AS p50_s,
                   quantile_cont(queued_s + running_s, 0.95) AS p95_s
            FROM ledger WHERE event_kind = 'complete' AND running_s IS NOT NULL
            GROUP BY ALL ORDER BY model, hour_utc"""),
        advice=advise(catalog, workload, now=now), budget=month,
        scale=[r.model_dump() for r in cost_at_scale(catalog) if r.model in used],
        warnings=drift_warnings(tables["price_drift"]), label_keys=labels.label_keys(con),
        by_label=labels.spend_by_label(con, by) if by is not None else None)


def drift_warnings(rows: list[dict]) -> list[str]:
    """A model and tier the provider billed more than 5% above the catalog's prices."""
    return [f"{r['model']} {r['tier']}: billed {usd_text(Decimal(r['billed_usd']))} against an "
            f"estimate of {usd_text(Decimal(r['estimated_usd']))} "
            f"({Decimal(r['drift']) * 100:+.1f}%): the catalog's "
            "price is out of date; the budget guard now uses the billed rate"
            for r in rows if r["drift"] is not None and Decimal(r["drift"]) > DRIFT_WARNING]


def describe_period(report: Report) -> str:
    if report.period == "all":
        return "All time"
    if report.period == "month":
        return f"{report.generated_at:%B %Y} to date (since {report.since})"
    if report.until is not None:
        return f"{report.since:%B %Y}"
    return f"The last {report.period[:-1]} days (since {report.since})"


def budget_sentence(b: Budget) -> str:
    month = datetime.strptime(b.month, "%Y-%m").strftime("%B")
    text = f"{month} so far: {usd_text(b.spent_usd)} spent"
    if b.budget_usd is not None:
        text += f" against a budget of {usd_text(b.budget_usd)}"
    if b.projected_usd is not None:
        text += (f"; projected {usd_text(b.projected_usd)} by the month's end, as "
                 f"{b.projection_method}")
    else:
        text += f"; no projection — {b.projection_reason}"
    return text + (". OVER BUDGET." if b.over_budget else ".")


def _figure(key: str, value: str, caption: str) -> str:
    return (f"<div class='figure' id='headline-{key}'><b class='value'>{html.escape(value)}</b>"
            f"<span class='caption'>{html.escape(caption)}</span></div>")


def _headline(report: Report) -> str:
    h, b = report.headline, report.budget
    month = datetime.strptime(b.month, "%Y-%m").strftime("%B")
    used = (_figure("budget", f"{h.budget_used:.0%}", f"of the {usd_text(b.budget_usd)} "
                    f"{month} budget used") if h.budget_used is not None
            else _figure("budget", "—", "no budget set (--budget)"))
    per_second = ("—" if h.cost_per_delivered_second is None
                  else f"${human.rate(h.cost_per_delivered_second)}")
    length = f"{h.delivered_seconds:,.1f}".removesuffix(".0")
    return ("<section id='headline'>"
            + _figure("spent", usd_text(h.spent_usd), "spent in the period")
            + _figure("clips", f"{h.clips_delivered:,}", f"clips delivered ({length} s)")
            + _figure("per-second", per_second, "per delivered second")
            + used + "</section>")


def _clip(clip: GalleryClip) -> str:
    length = "—" if clip.seconds is None else f"{clip.seconds:.1f}".removesuffix(".0") + " s"
    prompt = html.escape(clip.prompt) if clip.prompt else "<i>prompt unknown</i>"
    link = html.escape(clip.link or "", quote=True)
    if clip.thumbnail:
        picture = (f"<a href='{link}'><img src='{clip.thumbnail}' alt='frame of clip "
                   f"{clip.clip_id[:12]}' width='240'></a>")
    else:
        picture = f"<div class='placeholder'>{html.escape(clip.missing or 'no picture')}</div>"
    opens = (f"<a class='file' href='{link}'>open the file</a>"
             if clip.link and clip.thumbnail else "")
    return (f"<figure class='clip' id='clip-{clip.clip_id[:12]}'>{picture}<figcaption>"
            f"<p class='prompt'>{prompt}</p><p class='meta'>{html.escape(clip.model)} "
            f"{html.escape(clip.tier)} · {usd_text(clip.cost_usd)} · {length} · "
            f"{clip.made_at:%b %d %H:%M} UTC</p>{opens}</figcaption></figure>")


def _gallery(report: Report) -> str:
    if not report.gallery:
        return "<h2>Clips</h2><p class='empty' id='gallery'>no clips delivered in this period</p>"
    shown = len(report.gallery)
    note = (f"The {shown} most recent of {report.clips_in_period:,} clips delivered in the "
            "period." if report.clips_in_period > shown
            else f"All {shown} clips delivered in the period, newest first.")
    return (f"<h2>Clips</h2><p class='note'>{note}</p><section id='gallery'>"
            + "".join(_clip(c) for c in report.gallery) + "</section>")


CHART_TITLES = {"spend-by-day": "Spend by day", "unit-costs": "Cost per delivered second",
                "projection": "Your workload's month on each tier",
                "latency": "Wait by hour of day"}
STYLE = """body{font-family:system-ui,sans-serif;max-width:1040px;margin:2em auto;color:#222;
padding:0 1em}h1{margin-bottom:.2em}.sub,.note{color:#555}
#headline{display:grid;grid-template-columns:repeat(4,1fr);gap:12px;margin:1.2em 0}
.figure{background:#f3f6f9;border-radius:8px;padding:12px 14px}
.figure .value{display:block;font-size:28px}.figure .caption{color:#555;font-size:13px}
#advice{font-size:16px}#gallery{display:grid;gap:14px;
grid-template-columns:repeat(auto-fill,minmax(240px,1fr))}
.clip{margin:0;border:1px solid #ddd;border-radius:6px;padding:8px;font-size:12px}
.clip img{display:block;max-width:100%;height:auto}
.placeholder{height:135px;background:#eee;color:#666;display:flex;align-items:center;
justify-content:center;text-align:center;padding:0 8px;font-size:12px;overflow-wrap:anywhere}
.prompt{margin:.4em 0}.meta{color:#555;margin:.2em 0}
table{border-collapse:collapse;font-size:12px;margin-bottom:1.5em}
td,th{border:1px solid #ccc;padding:3px 7px}th{background:#eee;text-align:left}
td.num{text-align:right}.chart svg{width:100%;max-width:920px;height:auto}
.warnings li{color:#8a1c1c}"""


def to_html(report: Report) -> str:
    svgs = charts(report)
    sections = "".join(f"<h2>{CHART_TITLES[name]}</h2><section class='chart' id='{name}'>"
                       f"{svg}</section>" for name, svg in svgs.items())
    tables = "".join(f"<h2>{TITLES[name]}</h2>{human.to_html(rows)}"
                     for name, rows in report.tables.items())
    advice = report.advice
    warnings = ("<h2>Warnings</h2><ul id='warnings' class='warnings'>"
                + "".join(f"<li>{html.escape(w)}</li>" for w in report.warnings) + "</ul>"
                if report.warnings else "")
    scale = (human.to_html(report.scale) if report.scale else
             "<p class='empty'>no clips in this period: <code>reelflow prices</code> lists "
             "every model</p>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>reelflow cost report</title>
<style>{STYLE}</style></head>
<body><h1>reelflow cost report</h1>
<p class="sub">{html.escape(describe_period(report))} · generated
{report.generated_at:%Y-%m-%d %H:%M} UTC</p>
{_headline(report)}
{warnings}<h2>What to do</h2><p id="advice">{html.escape(advice.advice)}</p>
<p id="budget">{html.escape(budget_sentence(report.budget))}</p>
{labels.to_html(report.by_label, report.label_keys)}
{_gallery(report)}
{sections}
<h2>A month of your workload on each tier
({'measured' if advice.workload.measured else 'assumed'} workload)</h2>
{human.to_html([t.model_dump() for t in advice.tiers])}
<h2>Prices at scale for the models used (5 s clips at 1080p)</h2>{scale}
{tables}
</body></html>"""


def export(report: Report, folder: Path) -> list[Path]:
    """Each table as Parquet and CSV (the by-label one too, named for its key)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    named = dict(report.tables)
    if report.by_label is not None:
        named[f"spend_by_label_{report.by_label.label}"] = report.by_label.rows
    for name, rows in named.items():
        if not rows:
            continue
        table = pa.Table.from_pylist(rows)
        for suffix, writer in ((".parquet", pq.write_table), (".csv", pacsv.write_csv)):
            path = folder / f"{name}{suffix}"
            writer(table, path)
            written.append(path)
    return written
