"""A job at a provider, as reelflow tracks it. Handles carry a credential reference, never a key."""

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field

from models.terms import AspectRatio, EndpointKind, Mode, Protocol, Resolution

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
    extra: dict[str, str] = Field(
        default_factory=dict,
        description="Protocol details needed to find the job again (fal URLs, Kling family).",
    )


class JobStatus(BaseModel):
    """A provider's status, normalised."""

    state: JobState = Field(description="queued, running, succeeded or failed.")
    progress: float | None = Field(default=None, description="Percent done, when reported.")
    queue_position: int | None = Field(default=None, description="Place in the queue, 0-based.")
    message: str | None = Field(default=None, description="The provider's own words.")
    error_code: str | None = Field(default=None, description="The provider's failure code.")
    policy: bool = Field(default=False, description="Failed on the content policy.")
    poll_after_s: float | None = Field(
        default=None, description="The provider's hint for the next poll, in seconds."
    )
    billed_units: float | None = Field(
        default=None, description="What the provider says it deducted for the finished job, "
        "in output-seconds at the key's plan (Kling's final_unit_deduction), re-queues "
        "included; None where the protocol does not say.")


class Shot(BaseModel):
    """One shot of a native multi-shot generation."""

    prompt: str = Field(description="What the shot shows.")
    seconds: int = Field(gt=0, description="Whole seconds of the shot.")


class SubmitRequest(BaseModel):
    """One paid generation, as prepared for the chosen model (wire-neutral)."""

    model: str = Field(description="Catalog model id.")
    endpoint: str = Field(description="Wire model name or app id from the catalog row.")
    mode: Mode = Field(description="text, image, extend or storyboard.")
    prompt: str = Field(description="The prepared prompt.")
    negative_prompt: str | None = Field(default=None, description="What to avoid.")
    seconds: int = Field(gt=0, description="Seconds as the wire spells them.")
    resolution: Resolution = Field(description="Resolution asked.")
    aspect_ratio: AspectRatio = Field(description="Aspect ratio sent (never auto here).")
    wire_params: dict[str, str] = Field(
        default_factory=dict, description="Fields the catalog row adds for this resolution."
    )
    size: str | None = Field(default=None, description="Exact size for size-enum wires.")
    audio: bool = Field(default=False, description="A soundtrack asked for (sent where the "
                        "protocol takes it: fal's generate_audio).")
    image: bytes | None = Field(default=None, description="The prepared input image.")
    image_type: str = Field(default="image/png", description="MIME type of the image.")
    camera_control: dict | None = Field(default=None, description="Kling camera control.")
    shots: list[Shot] = Field(default_factory=list, description="Native storyboard shots.")
    parent_video_id: str | None = Field(
        default=None, description="The provider's video id to extend."
    )
    callback_url: str | None = Field(
        default=None, description="Where the provider calls back when the job ends (the "
        "relay's URL for this step: fal's fal_webhook, Kling's callback_url, AtlasCloud's "
        "webhook_url); None: no callback, the run polls.")


class RemoteVideo(BaseModel):
    """Where a finished job's output can be fetched, and what the provider says it is."""

    url: str = Field(description="Public URL, or the authenticated content endpoint.")
    authenticated: bool = Field(default=False, description="Send the credential to fetch it.")
    expires_at: datetime | None = Field(default=None, description="When the URL stops working.")
    seconds: float | None = Field(default=None, description="Duration the provider reports.")
    size: str | None = Field(default=None, description="Frame size the provider reports.")
    video_id: str | None = Field(default=None, description="Id to extend this video with.")


class ProviderCharge(BaseModel):
    """One charge on the provider's own bill, as its usage API reports it."""

    job_id: str = Field(description="The provider's job id the charge is for.")
    usd: Decimal = Field(description="Amount charged, USD.")
    at: datetime = Field(description="When the provider recorded it (UTC).")


class Download(BaseModel):
    """What a streamed download wrote."""

    bytes: int = Field(description="Bytes written.")
    sha256: str = Field(description="Checksum computed while streaming.")
    content_type: str = Field(description="Content-Type the server sent.")
    resumed: int = Field(default=0, description="Times the transfer resumed with Range.")
    seconds: float = Field(description="Wall time of the transfer.")

