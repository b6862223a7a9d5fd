"""What a user asks for: one clip, or one storyboard of scenes.

The idempotency key is the clip id: sha256 of the normalised request and its `take`. Two runs of
one request therefore find the same journal record and pay once; a user who wants a second take
raises `take`. Fields that only steer execution (budget cap, fallback wait, downgrade policy) are
left out of the key, so raising a budget resumes the same clip instead of paying for another.

Labels (`customer=acme`) are accounting, not content: left out of the key too, so tagging a
request, or tagging it again differently, never pays for a new clip. A rerun of a clip with other
labels finds the first run's journal record, which keeps the first run's request (labels and
all); the ledger rows a run writes carry the labels of that run's own request, and rows written
from the journal alone (the sweep finishing a pending job, a reconciled charge) carry the
record's. So a clip's spend is attributed to whoever asked for each charge.
"""

import hashlib
import json
import re
import unicodedata
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from models.terms import AspectRatio, DowngradePolicy, Mode, Resolution

# The longest prompt any of our protocols documents (OpenAI Videos: prompt maxLength 32000);
# a longer one is refused before anything is planned. Models with a token budget get it
# compressed to that budget (tasks/prompts.py).
MAX_PROMPT_CHARS = 32_000
# How a clip is run and accounted for, not what it shows: not part of its clip id.
_EXECUTION_ONLY = {"budget_usd", "fallback_wait_s", "downgrade", "storyboard_id", "batch_id",
                   "labels"}
MAX_LABELS = 16
LABEL_KEY = re.compile(r"[a-z0-9_-]{1,32}")
MAX_LABEL_VALUE = 128
LABELS_ALLOWED = (f"up to {MAX_LABELS} key=value pairs, keys 1-32 lowercase letters, digits, "
                  f"_ or -, values 1-{MAX_LABEL_VALUE} printable characters "
                  "(e.g. customer=acme;campaign=spring)")


def as_labels(value: Any) -> dict[str, str]:
    """Labels from a mapping, a list of `key=value` texts (or of pairs, as Parquet reads a map)
    or one text of pairs separated by `;` (`customer=acme;campaign=spring`; a value holding `;`
    needs the mapping form). A key is split off at the first `=`; spaces around keys and values
    go. Raises ValueError naming the label at fault and what is allowed."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        value = [item for item in value.split(";") if item.strip()]
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list | tuple):
        pairs = [_pair(item) for item in value]
    else:
        raise ValueError(f"labels must be key=value pairs, not {type(value).__name__}; "
                         f"allowed: {LABELS_ALLOWED}")
    labels: dict[str, str] = {}
    for key, text in pairs:
        if not isinstance(key, str) or not LABEL_KEY.fullmatch(key.strip()):
            raise ValueError(f"label key {key!r:.40}: a key is 1-32 lowercase letters, digits, _ "
                             "or - (e.g. customer)")
        key = key.strip()
        if not isinstance(text, str) or not (text := text.strip()) or \
                len(text) > MAX_LABEL_VALUE or not text.isprintable():
            raise ValueError(f"label {key}: a value is 1-{MAX_LABEL_VALUE} printable "
                             f"characters of text (got {text!r:.40})")
        if key in labels:
            raise ValueError(f"label {key} is given twice; give each key once")
        labels[key] = text
    if len(labels) > MAX_LABELS:
        raise ValueError(f"{len(labels)} labels: at most {MAX_LABELS}")
    return labels


def _pair(item: Any) -> tuple[Any, Any]:
    if isinstance(item, str):
        key, equals, text = item.partition("=")
        if not equals:
            raise ValueError(f"label {item!r} is not key=value (e.g. customer=acme)")
        return key, text
    if isinstance(item, list | tuple) and len(item) == 2:
        return item[0], item[1]
    raise ValueError(f"label {item!r} is not key=value (e.g. customer=acme)")


def normalise_text(text: str) -> str:
    """NFC, collapsed whitespace: two spellings of one prompt are one request."""
    return " ".join(unicodedata.normalize("NFC", text).split())


class Scene(BaseModel):
    """One scene of a storyboard."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    prompt: str = Field(
        min_length=1,
        max_length=MAX_PROMPT_CHARS,
        description="What happens in this scene.",
        examples=["A lighthouse keeper climbs the spiral stairs at dusk"],
    )
    duration: float = Field(
        gt=0, le=180, description="Scene length in seconds.", examples=[5]
    )
    image: str | None = Field(
        default=None,
        description="Optional path of an image that starts this scene.",
        examples=["examples/lighthouse.jpg"],
    )
    camera: str | None = Field(
        default=None,
        description="Camera move in plain words, e.g. 'slow push in'.",
        examples=["slow push in"],
    )

    @field_validator("prompt")
    @classmethod
    def _prompt_has_words(cls, value: str) -> str:
        value = normalise_text(value)
        if not value:
            raise ValueError("prompt must contain words, not only whitespace")
        return value


class ClipRequest(BaseModel):
    """A request for one finished clip (text, image, extension or storyboard)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    mode: Mode = Field(
        default="text",
        description="text: text-to-video; image: image-to-video; extend: continue an archived "
        "clip; storyboard: several scenes into one clip.",
        examples=["text"],
    )
    prompt: str = Field(
        default="",
        max_length=MAX_PROMPT_CHARS,
        description="What the clip shows. Required except for storyboards, whose scenes carry "
        "their own prompts.",
        examples=["Aerial shot of a coastal city at golden hour"],
    )
    negative_prompt: str | None = Field(
        default=None,
        max_length=MAX_PROMPT_CHARS,
        description="What the clip must not show.",
        examples=["blur, watermark, text"],
    )
    duration: float | None = Field(
        default=None,
        gt=0,
        description="Seconds of output asked for (for extend: the seconds to add). "
        "A storyboard's duration is the sum of its scenes.",
        examples=[5],
    )
    resolution: Resolution = Field(
        default="1080p", description="Output resolution: 720p, 1080p or 4k.", examples=["1080p"]
    )
    audio: bool = Field(
        default=False, description="A soundtrack with the video. Off: a model that always "
        "makes one has its track removed from the published copy (the original is kept).")
    aspect_ratio: AspectRatio = Field(
        default="16:9",
        description="16:9, 9:16, 1:1, or auto (nearest to the input image).",
        examples=["16:9"],
    )
    image: str | None = Field(
        default=None,
        description="Path of the input image (image mode), or its object-store URL "
        "(s3://bucket/key): a JPEG, PNG, WebP or HEIC file.",
        examples=["examples/harbour-4x3.jpg"],
    )
    image_sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="Checksum of the image's bytes, filled in when the request is made: part of "
        "the clip id, so a new photo at the same path is a new clip.",
    )
    focus: tuple[float, float] | None = Field(
        default=None,
        description="Point to keep inside the crop, as (x, y) fractions of width and height.",
        examples=[(0.5, 0.4)],
    )
    source_clip: str | None = Field(
        default=None,
        description="Clip id of the archived clip to extend (extend mode).",
        examples=["3f2a9c0d5e7b"],
    )
    scenes: list[Scene] = Field(
        default_factory=list,
        description="Scenes of a storyboard, in order.",
    )
    camera: str | None = Field(
        default=None,
        description="Camera move in plain words, e.g. 'slow push in', 'pan left'.",
        examples=["slow push in"],
    )
    policy: str = Field(
        default="cheapest",
        description="How the model is chosen: cheapest, fastest, best_quality, or a catalog "
        "model id to use that model.",
        examples=["cheapest"],
    )
    budget_usd: float | None = Field(
        default=None,
        gt=0,
        description="Refuse any plan that would cost more than this, in USD.",
        examples=[1.0],
    )
    downgrade: DowngradePolicy = Field(
        default="accept",
        description="When the provider silently delivers a lower resolution: accept it, "
        "regenerate as the next take, or fail.",
        examples=["accept"],
    )
    fallback_wait_s: float = Field(
        default=600,
        ge=0,
        description="How long to wait for capacity on the chosen model before falling back.",
        examples=[600],
    )
    take: int = Field(
        default=0,
        ge=0,
        description="0 for the first take; raise it to pay for another take of the same request.",
        examples=[0],
    )
    storyboard_id: str | None = Field(
        default=None,
        description="Set by generate_storyboard on each scene it generates: the storyboard's "
        "clip id, written to the ledger.",
    )
    batch_id: str | None = Field(
        default=None, description="Set by run_batch: the manifest's batch id, for the ledger."
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Accounting labels, e.g. customer=acme, campaign=spring: written to the "
        "ledger with every charge, so the report can group spend by any of them (reelflow "
        "report --by customer). Not part of the clip id: changing them never pays for a new "
        f"clip. {LABELS_ALLOWED[0].upper()}{LABELS_ALLOWED[1:]}.",
        examples=[{"customer": "acme", "campaign": "spring"}],
    )

    @field_validator("prompt", "negative_prompt")
    @classmethod
    def _normalise(cls, value: str | None) -> str | None:
        return None if value is None else normalise_text(value)

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, value: Any) -> dict[str, str]:
        return as_labels(value)

    @field_validator("focus")
    @classmethod
    def _focus_inside(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not all(0.0 <= v <= 1.0 for v in value):
            raise ValueError("focus must be (x, y) with each between 0 and 1")
        return value

    @model_validator(mode="after")
    def _mode_has_what_it_needs(self) -> Self:
        if self.mode == "storyboard":
            if not self.scenes:
                raise ValueError("a storyboard needs at least one scene")
            total = sum(scene.duration for scene in self.scenes)
            if self.duration is None:
                self.duration = total
            elif abs(self.duration - total) > 1e-9:
                raise ValueError(
                    f"duration {self.duration:g} s differs from the sum of the scenes ({total:g} s)"
                )
            return self
        if not self.prompt:
            raise ValueError("prompt is required and must contain words")
        if self.duration is None:
            raise ValueError("duration is required (seconds, greater than 0)")
        if self.scenes:
            raise ValueError("scenes are only for mode 'storyboard'")
        if self.mode == "image" and not self.image:
            raise ValueError("image mode needs an image (path or URL)")
        if self.mode == "extend" and not self.source_clip:
            raise ValueError("extend mode needs source_clip (the clip id to continue)")
        return self

    @property
    def seconds(self) -> float:
        """Duration after validation (always set)."""
        assert self.duration is not None
        return self.duration

    def ledger_columns(self) -> dict:
        """What every ledger row of this clip says about the request."""
        return {"clip_id": self.clip_id, "parent_clip_id": self.source_clip,
                "storyboard_id": self.storyboard_id, "batch_id": self.batch_id,
                "mode": self.mode, "seconds_asked": self.seconds,
                "resolution_asked": self.resolution, "audio": self.audio,
                "labels": dict(self.labels)}

    @property
    def clip_id(self) -> str:
        """The idempotency key: sha256 of the normalised request and its take."""
        # with the image's checksum known, where the file lies is not part of what is made
        exclude = _EXECUTION_ONLY | ({"image"} if self.image_sha256 else set())
        if not self.audio:  # the clips asked for before audio was a field keep their ids
            exclude |= {"audio"}
        content = self.model_dump(mode="json", exclude=exclude)
        blob = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()
