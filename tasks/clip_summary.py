"""A finished clip's summary as the Prefect UI shows it, built from its journal record: what
was sent and why there, every job tried (outcome and charge, replaced ones too), lineage, the
checks of the delivered file, a thumbnail and the archive location as text to copy.

The thumbnail is embedded as a JPEG data: URI (the UI's browser cannot load a local path, and
nothing here serves files over HTTP); a file that cannot be read leaves the summary without
one, never a failed run. Money is in dollars to the cent, as everywhere a person reads it.
"""

import logging
from decimal import Decimal

from prefect.artifacts import acreate_link_artifact, acreate_markdown_artifact

from analytics.gallery import thumbnail
from models import ClipResult, Inspection, Trim, usd_text
from storage.records import ClipJournal
from tasks.runtime import Runtime

log = logging.getLogger(__name__)


def _prompt_section(record: ClipJournal, sent: str | None) -> list[str]:
    request = record.request
    if request.scenes and not sent:
        lines = ["## Scenes as asked"]
        lines += [f"{i}. {scene.prompt} ({scene.duration:g} s)"
                  for i, scene in enumerate(request.scenes, 1)]
        return lines
    text = sent or request.prompt
    lines = ["## Prompt as sent", *(f"> {line}" for line in text.splitlines() or [""])]
    if sent and sent != request.prompt:
        lines += ["", "Asked:", *(f"> {line}" for line in request.prompt.splitlines())]
    return lines


def _attempts(record: ClipJournal) -> list[str]:
    lines = ["## Jobs", "| # | job | model · tier | outcome | charged | note |",
             "|---|---|---|---|---|---|"]
    for n, step in enumerate(record.every_step(), 1):
        job = f"`{step.handle.job_id}`" if step.handle else "—"
        note = (step.message or "").replace("|", "/").replace("\n", " ")[:200]
        lines.append(f"| {n} | {job} | {step.model} · {step.tier} | {step.state} | "
                     f"{usd_text(step.spent_usd)} | {note} |")
    if record.attempts:
        lines += ["", "Moved on:", *(f"- {attempt}" for attempt in record.attempts)]
    return lines


def _lineage(record: ClipJournal, result: ClipResult) -> list[str]:
    request = record.request
    lines = []
    if record.parent_clip_id:
        lines.append(f"- extends clip `{record.parent_clip_id[:12]}`")
    if request.storyboard_id:
        lines.append(f"- scene of storyboard `{request.storyboard_id[:12]}`")
    if request.batch_id:
        lines.append(f"- row of batch `{request.batch_id}`")
    lines += [f"- scene {i}: clip `{clip[:12]}`"
              for i, clip in enumerate(result.scene_clip_ids, 1)]
    return ["## Lineage", *lines] if lines else []


def _checks(record: ClipJournal, result: ClipResult, found: Inspection,
            trim: Trim | None) -> list[str]:
    request, plan = record.request, record.plan
    billed = f", billed {plan.seconds_billed} s" if plan else ""
    lines = ["## Checks",
             f"- seconds: asked {request.seconds:g}{billed}, delivered {found.seconds:g}",
             f"- frame size {result.resolution_actual} (asked {request.resolution} "
             f"{request.aspect_ratio})" + (" — **silently downgraded**"
                                           if result.downgraded else ""),
             f"- flash frame: {'yes, trimmed' if found.flash_frame else 'no'}",
             f"- soundtrack: {'yes' if result.audio else 'no'} (asked: "
             f"{'yes' if request.audio else 'no'})"]
    if trim and trim.audio_mismatch:
        lines.append(f"- **soundtrack mismatch**: {trim.audio_mismatch}")
    if trim and trim.trimmed_path:
        lines.append(f"- trimmed copy ({trim.trim_method}, "
                     f"{'; '.join(trim.trim_reasons)}): `{trim.trimmed_path}`")
    return lines


def summary_markdown(record: ClipJournal, result: ClipResult, found: Inspection, *,
                     trim: Trim | None = None, sent: str | None = None,
                     picture: str | None = None, extra: list[str] = ()) -> str:
    """The summary of `record`'s clip: `sent` is the prompt as sent (after preparation),
    `picture` a thumbnail's data: URI, `extra` sections of the caller's (a stitch's parts)."""
    plan = record.plan
    cost = usd_text(Decimal(str(result.cost_usd)))
    title = f"{plan.model_name} · {plan.tier}" if plan else f"{result.model} · {result.tier}"
    via = f"; sent through {plan.protocol} ({plan.endpoint})" if plan else ""
    lines = [f"# Clip `{result.clip_id[:12]}` · {title} · {cost}", "",
             f"Clip id `{result.clip_id}`; {record.request.mode}, "
             f"{found.seconds:g} s at {result.resolution_actual}{via}.", ""]
    if picture:
        lines += [f"![a frame of clip {result.clip_id[:12]}]({picture})", ""]
    lines += [*_prompt_section(record, sent), ""]
    if plan:
        lines += [f"## Why {plan.model_name} · {plan.tier}",
                  *(f"- {reason}" for reason in plan.reasons), ""]
    lines += [*_attempts(record), "", *_lineage(record, result)]
    lines += ["", *_checks(record, result, found, trim), "", *extra, "", "## Archive",
              "```text", result.path, "```", f"sha256 `{result.sha256}`", ""]
    return "\n".join(lines)


def picture_of(rt: Runtime, location: str) -> str | None:
    """A thumbnail of the archived file, or None when it cannot be read."""
    try:
        return thumbnail(rt.archive, location)
    except Exception as err:  # the summary matters more than its picture
        log.warning("no thumbnail of %s: %s", location, err)
        return None


async def publish_summary(rt: Runtime, result: ClipResult, found: Inspection, *,
                          trim: Trim | None = None, sent: str | None = None,
                          extra: list[str] = ()) -> None:
    """The clip's summary and a link to its file, one artifact key each per clip."""
    record = rt.journal.read(result.clip_id)
    key = f"clip-{result.clip_id[:16]}"
    plan = record.plan
    await acreate_markdown_artifact(
        key=key, description=f"{plan.model_name if plan else result.model} "
        f"{result.tier}: {usd_text(Decimal(str(result.cost_usd)))}",
        markdown=summary_markdown(record, result, found, trim=trim, sent=sent,
                                  picture=picture_of(rt, result.path), extra=extra))
    await acreate_link_artifact(key=f"{key}-file", link=rt.archive.link(result.path),
                                link_text=result.path.rsplit("/", 1)[-1])
