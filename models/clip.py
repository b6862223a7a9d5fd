"""A finished clip: the archived file, what inspection measured, what was trimmed, and the
answer every flow returns. The journal keeps these as typed fields, so a reader never digs
through dicts by string keys."""

from datetime import datetime

from pydantic import BaseModel, Field


class Archived(BaseModel):
    """An original in the archive, written once."""

    path: str = Field(description="Archive path or URL of the original.")
    sha256: str = Field(description="Checksum of the original, computed while writing.")
    bytes: int | None = Field(default=None, description="Size of the original.")
    download_s: float = Field(default=0.0, description="Wall time of the download.")
    submitted_at: datetime | None = Field(
        default=None, description="When its first job was submitted: the archive's date "
        "folder. None on a stitched clip recorded before it was kept.")


class Inspection(BaseModel):
    """What was really delivered (tasks/inspection.py measures it)."""

    seconds: float
    frames: int
    width: int
    height: int
    fps: float
    codec: str
    b_frames: bool
    last_luma: float
    neighbour_luma: float
    flash_frame: bool
    audio: bool = Field(default=False, description="The file has a soundtrack.")

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


class Trim(BaseModel):
    """What was cut from the original, and where the cut copy is."""

    inspection_s: float = Field(default=0.0, description="Wall time of inspection and trim.")
    trimmed_path: str | None = Field(default=None, description="The trimmed copy, if any.")
    trimmed_sha256: str | None = None
    trim_reasons: list[str] = Field(default_factory=list, description="Why it was trimmed.")
    trim_method: str | None = Field(default=None, description="remux or re-encode.")
    too_long: bool = Field(default=False, description="Cut to the length asked.")
    kept_s: float | None = Field(
        default=None, description="Seconds the trimmed copy keeps (None before it was kept).")
    audio_removed: bool = Field(
        default=False, description="The copy has the original's soundtrack removed.")
    audio_mismatch: str | None = Field(
        default=None, description="How the soundtrack differs from what was asked, if it does.")


class ClipResult(BaseModel):
    """The answer of generate_clip (and of every flow that makes a clip)."""

    clip_id: str = Field(description="Idempotency key of the request.")
    model: str
    tier: str
    path: str = Field(description="Archived original.")
    sha256: str
    trimmed_path: str | None = None
    seconds_delivered: float
    resolution_actual: str
    downgraded: bool
    flash_frame: bool
    audio: bool = Field(default=False, description="The published copy has a soundtrack.")
    cost_usd: float = Field(description="Every charge of this clip, from the ledger.")
    job_ids: list[str]
    scene_clip_ids: list[str] = Field(
        default_factory=list, description="An emulated storyboard's scenes, in order.")
    stitch_method: str | None = Field(
        default=None, description="How its scenes were joined: remux or re-encode.")


class ClipOutcome(BaseModel):
    """What the journal keeps of a finished clip."""

    result: ClipResult
    inspection: Inspection
    trim: Trim | None = Field(default=None, description="None on a stitched clip.")
    stitch: str | None = Field(default=None, description="How a stitched clip was joined.")
    rejected: str | None = Field(
        default=None, description="Why a later take replaced it (it stays paid and archived).")
