"""The report's charts as inline SVG (matplotlib, text kept as <text> so a reader can search
and select it): every bar and point carries its value, money axes are in dollars, the hour axis
runs 00–23, and the tier cost chart uses a log scale when a $2,000 tier would flatten a $1 one,
the recommended tier drawn in its own colour."""

import io
import re
from datetime import date, timedelta
from decimal import Decimal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from analytics.tables import rate
from models import usd_text

STYLE = {"svg.fonttype": "none", "text.parse_math": False, "font.size": 8,
         "axes.spines.top": False, "axes.spines.right": False}
BLUE, ORANGE, GREEN, GREY, RED = "#3b6ea8", "#c0713d", "#2e7d32", "#9aa8b5", "#b23b3b"
DAILY_UP_TO = 62  # days; a longer period is drawn by month
LABELLED_UP_TO = 31  # bars; more would overlap, so only the largest is labelled


def _dollars(value: float, _position: object = None) -> str:
    return usd_text(Decimal(str(value)))


def _svg(fig) -> str:
    out = io.StringIO()
    fig.savefig(out, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = out.getvalue()
    text = re.sub(r"<\?xml[^>]*>|<!DOCTYPE[^>]*>", "", text)
    return re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)


def _empty(ax, what: str) -> None:
    ax.text(0.5, 0.5, what, ha="center", va="center", transform=ax.transAxes, color="#666")


def charts(report) -> dict[str, str]:
    """Named inline SVG charts (each draws its marks as <path> elements)."""
    with plt.rc_context(STYLE):
        return {"spend-by-day": spend_by_day(report), "unit-costs": unit_costs(report),
                "projection": tier_costs(report), "latency": latency(report)}


def _days(report) -> tuple[list[tuple[str, float]], bool]:
    """((label, dollars) for each day of the period, days without charges as 0; by month)."""
    spend: dict[date, float] = {}
    for row in report.tables["spend_by_day"]:
        spend[row["day"]] = spend.get(row["day"], 0.0) + float(row["cost_usd"] or 0)
    if not spend:
        return [], False
    first, last = report.since or min(spend), max(spend)
    if report.since is not None:
        today = report.generated_at.date()
        end = min(today, report.until - timedelta(days=1)) if report.until else today
        last = max(last, end)
    if (last - first).days + 1 > DAILY_UP_TO:
        months: dict[str, float] = {}
        for day, usd in sorted(spend.items()):
            months[f"{day:%Y-%m}"] = months.get(f"{day:%Y-%m}", 0.0) + usd
        return list(months.items()), True
    return [(f"{first + timedelta(days=n):%b %d}", spend.get(first + timedelta(days=n), 0.0))
            for n in range((last - first).days + 1)], False


def spend_by_day(report) -> str:
    days, by_month = _days(report)
    fig, ax = plt.subplots(figsize=(7, 2.8))
    if days:
        bars = ax.bar([d for d, _ in days], [v for _, v in days], color=BLUE)
        labelled = [v for _, v in days if v > 0]
        top = max(labelled, default=0)
        ax.bar_label(bars, labels=[_dollars(v) if v > 0 and (len(labelled) <= LABELLED_UP_TO
                                                             or v == top) else ""
                                   for _, v in days], fontsize=7, padding=2)
        ax.margins(y=0.18)
        step = max(1, len(days) // 16)
        ax.set_xticks(range(0, len(days), step), [d for d, _ in days][::step], rotation=45,
                      ha="right", fontsize=7)
    else:
        _empty(ax, "no charges in this period")
    ax.yaxis.set_major_formatter(FuncFormatter(_dollars))
    ax.set_ylabel("spend")
    ax.set_title("Spend by month (UTC)" if by_month else "Spend by day (UTC)")
    return _svg(fig)


def unit_costs(report) -> str:
    units = [r for r in report.tables["unit_costs"] if r["cost_per_delivered_second"]]
    fig, ax = plt.subplots(figsize=(7, 0.9 + 0.35 * max(len(units), 2)))
    if units:
        values = [float(r["cost_per_delivered_second"]) for r in units]
        bars = ax.barh([f"{r['model']} {r['tier']}" for r in units], values, color=ORANGE)
        ax.bar_label(bars, labels=[f"${rate(Decimal(str(v)))}/s" for v in values], fontsize=7,
                     padding=3)
        ax.margins(x=0.2)
        ax.invert_yaxis()
    else:
        _empty(ax, "no delivered seconds in this period")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"${v:.3f}"))
    ax.set_xlabel("dollars per delivered second, failures and re-queues included")
    ax.set_title("Cost per delivered second")
    return _svg(fig)


def tier_costs(report) -> str:
    """The cheapest tiers for the workload, and the one the clips are made on now."""
    advice = report.advice
    shown = advice.tiers[:8]
    current = next((t for t in advice.tiers if t.name == advice.workload.current), None)
    if current is not None and current not in shown:
        shown = [*shown, current]
    fig, ax = plt.subplots(figsize=(7, 0.9 + 0.32 * max(len(shown), 2)))
    if shown:
        values = [float(t.effective_usd) for t in shown]
        colours = [GREEN if t is advice.best else RED if t is current else GREY for t in shown]
        bars = ax.barh([t.name for t in shown], values, color=colours)
        ax.bar_label(bars, padding=3, fontsize=7, labels=[
            _dollars(v) + (" ← cheapest" if t is advice.best else "")
            + (" ← yours" if t is current and t is not advice.best else "")
            for t, v in zip(shown, values, strict=True)])
        ax.invert_yaxis()
        positive = [v for v in values if v > 0]
        if positive and max(positive) / min(positive) >= 20:
            ax.set_xscale("log")
            ax.set_xlim(min(positive) / 2, max(positive) * 8)
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("monthly cost (log scale: each step is ten times the last)")
        else:
            ax.margins(x=0.25)
            ax.set_xlabel("monthly cost")
    else:
        _empty(ax, "no model can serve this workload")
    ax.xaxis.set_major_formatter(FuncFormatter(_dollars))
    w = advice.workload
    ax.set_title(f"A month of {w.clips_per_month:,} clips of "
                 f"{w.seconds_per_clip:.1f}".removesuffix(".0")
                 + f" s at {w.resolution}, on each tier")
    return _svg(fig)


def latency(report) -> str:
    rows = report.latency_by_hour
    fig, ax = plt.subplots(figsize=(7, 2.8))
    colours = [BLUE, ORANGE, GREEN, RED, "#7a5195", "#444"]
    for n, model in enumerate(sorted({r["model"] for r in rows})):
        points = sorted((r["hour_utc"], r["p95_s"]) for r in rows if r["model"] == model)
        hours, p95 = [h for h, _ in points], [s for _, s in points]
        ax.plot(hours, p95, marker="o", label=model, color=colours[n % len(colours)])
        for hour, seconds in points:
            ax.annotate(f"{seconds:.0f} s", (hour, seconds), textcoords="offset points",
                        xytext=(0, 5), ha="center", fontsize=7)
    if rows:
        ax.legend(fontsize=7, frameon=False)
        ax.set_ylim(0, max(r["p95_s"] for r in rows) * 1.25)
    else:
        _empty(ax, "no finished jobs in this period")
    ax.set_xlim(-0.5, 23.5)
    ax.set_xticks(range(24), [f"{h:02d}" for h in range(24)], fontsize=7)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("hour the job finished (UTC)")
    ax.set_ylabel("p95 seconds, submit to done")
    ax.set_title("How long jobs take by hour of day (95th percentile)")
    return _svg(fig)
