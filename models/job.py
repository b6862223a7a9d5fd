"""A job at a provider, as reelflow tracks it. Handles carry a credential reference, never a key."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from models.terms import EndpointKind, Protocol, Resolution

JobState = Literal["queued", "running", "succeeded", "failed"]


class JobHandle(BaseModel):
    """Enough to find a submitted job again from another process."""

    protocol: Protocol = Field(description="Wire protocol of the job.")
    endpoint: str = Field(description="Base URL, host or app id the job was sent to.")
    endpoint_kind: EndpointKind = Field(description="sandbox or real.")
    account: str = Field(description="Account family and tier, e.g. kling:standard.")
    credential_ref: str = Field(
        description="Where the key comes from (env var or Secret block name), never the key."
    )
    job_id: str = Field(description="The provider's job id.")
    submitted_at: datetime = Field(description="When the submit returned (UTC).")


class JobStatus(BaseModel):
    """A provider's status, normalised."""

    state: JobState = Field(description="queued, running, succeeded or failed.")
    progress: float | None = Field(default=None, description="Percent done, when reported.")
    queue_position: int | None = Field(default=None, description="Place in the queue, 0-based.")
    message: str | None = Field(default=None, description="The provider's own words.")


class ClipRecord(BaseModel):
    """A finished, archived clip."""

    clip_id: str = Field(description="Idempotency key of the request.")
    model: str = Field(description="Catalog model id that made it.")
    tier: str = Field(description="Tier billed.")
    job: JobHandle = Field(description="The provider job.")
    path: str = Field(description="Archive path or URL of the original.")
    sha256: str = Field(description="Checksum of the original.")
    trimmed_path: str | None = Field(default=None, description="Trimmed copy, when one was made.")
    trimmed_sha256: str | None = Field(default=None, description="Checksum of the trimmed copy.")
    seconds_delivered: float = Field(description="Measured duration of the original.")
    resolution_actual: str = Field(description="Measured frame size, e.g. 1920x1080.")
    resolution_asked: Resolution = Field(description="Resolution asked for.")
    cost_usd: float = Field(description="What this clip cost, all charges included.")
