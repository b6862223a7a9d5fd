"""The report's gallery: the period's most recent delivered clips (at most GALLERY_SIZE, so a
large ledger stays fast), each with its prompt (from the journal), model, tier, cost, length, a
thumbnail and a link to its archived file.

A thumbnail is one keyframe near the clip's middle (only keyframes are decoded), scaled to fit
THUMB_PX and embedded as a JPEG data: URI, so the HTML stays self-contained. A clip whose
record or file is missing, or whose file cannot be decoded, gets a placeholder saying so: the
gallery never fails the report.
"""

import base64
import io
from datetime import datetime

import av
import duckdb
from pydantic import BaseModel, Field

from analytics.tables import Cents
from storage.archive import Archive
from storage.journal import Journal
from storage.records import ClipJournal

GALLERY_SIZE = 24
THUMB_PX = 240
PROMPT_CHARS = 160


class GalleryClip(BaseModel):
    clip_id: str
    prompt: str | None = Field(description="What was asked (None without a journal record).")
    model: str
    tier: str
    mode: str
    cost_usd: Cents = Field(description="Every charge of the clip in the period.")
    seconds: float | None = Field(description="Seconds delivered.")
    made_at: datetime = Field(description="The clip's first ledger event.")
    location: str | None = Field(description="The archived original, path or URL.")
    link: str | None = Field(description="file:// URI of a local file, the URL otherwise.")
    missing: str | None = Field(default=None, description="Why there is no thumbnail.")
    thumbnail: str | None = Field(default=None, exclude=True,
                                  description="JPEG data: URI (in the HTML, not in JSON).")


def delivered(con: duckdb.DuckDBPyConnection, limit: int = GALLERY_SIZE
              ) -> tuple[list[tuple], int]:
    """(the most recent delivered clips of `ledger`, newest first; how many there are)."""
    rows = con.execute("""
        SELECT clip_id, model, tier, mode, cost_usd, seconds_delivered, first_event
        FROM clips WHERE delivered ORDER BY first_event DESC, clip_id LIMIT ?""",
                       [limit]).fetchall()
    total = con.execute("SELECT count(*) FROM clips WHERE delivered").fetchone()[0]
    return rows, total


def gallery(rows: list[tuple], journal: Journal | None, archive: Archive | None
            ) -> list[GalleryClip]:
    clips = []
    for clip_id, model, tier, mode, cost, seconds, made_at in rows:
        record = journal.read(clip_id) if journal and clip_id.isalnum() else None
        location = record.archive.path if record and record.archive else None
        clip = GalleryClip(clip_id=clip_id, prompt=_prompt(record), model=model, tier=tier,
                           mode=mode, cost_usd=cost or 0, seconds=seconds, made_at=made_at,
                           location=location,
                           link=archive.link(location) if archive and location else None)
        clip.thumbnail, clip.missing = _picture(record, archive)
        clips.append(clip)
    return clips


def _prompt(record: ClipJournal | None) -> str | None:
    if record is None:
        return None
    request = record.request
    text = request.prompt or " / ".join(s.prompt for s in request.scenes)
    return text if len(text) <= PROMPT_CHARS else text[:PROMPT_CHARS - 1] + "…"


def _picture(record: ClipJournal | None, archive: Archive | None
             ) -> tuple[str | None, str | None]:
    """(data URI, None) or (None, why there is none)."""
    if record is None:
        return None, "no journal record for this clip"
    if record.archive is None:
        return None, f"not archived ({record.state})"
    location = record.archive.path
    if archive is None:
        return None, "no archive configured"
    if record.local_copies_deleted and archive.local:
        return None, "deleted here by retention; the replica keeps it"
    try:
        if not archive.exists(location):
            return None, f"file missing: {location}"
        return thumbnail(archive, location), None
    except Exception as err:  # any unreadable file: a placeholder, never a failed report
        return None, f"no frame could be read: {type(err).__name__}: {err}"[:300]


def thumbnail(archive: Archive, location: str) -> str:
    """One keyframe near the middle of the clip, as a JPEG data: URI at most THUMB_PX wide."""
    with archive.reading(location) as source, av.open(source) as container:
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = "NONKEY"  # decode keyframes only: one frame
        if stream.duration:
            container.seek(stream.duration // 2, stream=stream, backward=True)
        frame = next(container.decode(stream), None)
        if frame is None:  # past the last keyframe: the first one
            container.seek(0, stream=stream)
            frame = next(container.decode(stream))
        image = frame.to_image()
    image.thumbnail((THUMB_PX, THUMB_PX))
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")
