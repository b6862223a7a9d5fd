"""The flows' parameter forms, as the Prefect UI renders them from a deployment's schema.

A form holds what a person fills in and nothing reelflow sets itself (an image's checksum, the
storyboard or batch a clip belongs to). What each kind of clip needs is required by the schema
itself, so the UI refuses an incomplete form before a run exists: a text clip needs a prompt
and a duration, an image clip an image too (the two are one parameter, switched by `mode`). The
policy is a choice built from the catalog when the flow is deployed (a model added to the
catalog later needs a redeploy to be offered). Optional fields have no null branch in the
schema: the UI renders `X | None` as a type switch ("Property is type None"); left empty, the
field is simply not sent. Each form becomes the ClipRequest the tasks work on; descriptions are
ClipRequest's own, so a field reads the same in the form, the CLI's help and the docs. A caller
that has a ClipRequest passes it as it is: the forms read its fields (`from_attributes`).
"""

import functools
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag
from pydantic.json_schema import SkipJsonSchema

from models import POLICIES, AspectRatio, ClipRequest, DowngradePolicy, Resolution, Scene
from models.request import LABEL_KEY, MAX_LABEL_VALUE, MAX_LABELS, MAX_PROMPT_CHARS, as_labels
from providers.catalog import CatalogError, load_catalog
from settings import load_settings


def _about(name: str, model: type[BaseModel] = ClipRequest) -> str | None:
    return model.model_fields[name].description


@functools.cache
def policy_choices() -> tuple[str, ...]:
    """The policies, then every model of the catalog this flow is deployed with."""
    try:
        return (*POLICIES, *load_catalog(load_settings().catalog).ids)
    except (CatalogError, OSError):  # the run itself names a broken catalog; the form stays
        return POLICIES


def _offer_policies(schema: dict[str, Any]) -> None:
    schema["enum"] = list(policy_choices())


def _leading(*names: str):
    """A form's own fields first (the UI shows them in schema order; the shared ones follow)."""
    def reorder(schema: dict[str, Any]) -> None:
        props = schema["properties"]
        schema["properties"] = {**{n: props[n] for n in names if n in props}, **props}
    return reorder


Prompt = Annotated[str, Field(max_length=MAX_PROMPT_CHARS)]
_FORM = ConfigDict(extra="forbid", allow_inf_nan=False, from_attributes=True)
Policy = Annotated[str, Field(default="cheapest", title="Policy", description=_about("policy"),
                              json_schema_extra=_offer_policies)]
# ClipRequest's own check (its messages), and the same limits in the schema for the UI
Labels = Annotated[dict[str, str], BeforeValidator(as_labels), Field(
    default={}, description=_about("labels"), examples=[{"customer": "acme"}],
    json_schema_extra={"propertyNames": {"pattern": f"^{LABEL_KEY.pattern}$"},
                       "maxProperties": MAX_LABELS,
                       "additionalProperties": {"type": "string", "minLength": 1,
                                                "maxLength": MAX_LABEL_VALUE}})]


class _Delivery(BaseModel):
    """What every form says about the output and its price."""

    model_config = _FORM

    resolution: Resolution = Field(default="1080p", description=_about("resolution"))
    aspect_ratio: AspectRatio = Field(default="16:9", description=_about("aspect_ratio"))
    negative_prompt: Prompt | SkipJsonSchema[None] = Field(
        default=None, description=_about("negative_prompt"))
    policy: Policy
    budget_usd: Annotated[float, Field(gt=0)] | SkipJsonSchema[None] = Field(
        default=None, title="Budget (USD)", description=_about("budget_usd"))
    downgrade: DowngradePolicy = Field(default="accept", description=_about("downgrade"))
    fallback_wait_s: float = Field(default=600, ge=0, title="Fallback wait (s)",
                                   description=_about("fallback_wait_s"))
    take: int = Field(default=0, ge=0, description=_about("take"))
    labels: Labels

    def to_request(self) -> ClipRequest:
        """The ClipRequest this form asks for."""
        return ClipRequest(**self.model_dump(exclude_none=True))


class TextClip(_Delivery):
    """Text to video: one clip from a prompt."""

    model_config = ConfigDict(title="Text to video", json_schema_extra=_leading(
        "mode", "prompt", "duration", "image", "focus", "camera", "audio"))

    mode: Literal["text"] = Field(default="text", description="Text to video.")
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS,
                        description="What the clip shows.",
                        examples=["Aerial shot of a coastal city at golden hour"])
    duration: float = Field(gt=0, title="Duration (s)", description="Seconds of output.",
                            examples=[5])
    audio: bool = Field(default=False, title="Soundtrack", description=_about("audio"))
    camera: str | SkipJsonSchema[None] = Field(default=None, description=_about("camera"))


class ImageClip(TextClip):
    """Image to video: one clip that starts from a photo, cropped to the asked aspect."""

    model_config = ConfigDict(title="Image to video", json_schema_extra=_leading(
        "mode", "prompt", "duration", "image", "focus", "camera", "audio"))

    mode: Literal["image"] = Field(default="image", description="Image to video.")
    image: str = Field(min_length=1, description="Path of the input image on the worker, or "
                       "its object-store URL (s3://bucket/key, read with "
                       "REELFLOW_INPUTS_OPTIONS): a JPEG, PNG, WebP or HEIC file.",
                       examples=["examples/harbour-4x3.jpg"])
    focus: tuple[float, float] | SkipJsonSchema[None] = Field(
        default=None, description=_about("focus"))


class SceneForm(BaseModel):
    """One scene of a storyboard."""

    model_config = ConfigDict(_FORM, title="Scene")

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS,
                        description=_about("prompt", Scene))
    duration: float = Field(gt=0, le=180, title="Duration (s)",
                            description=_about("duration", Scene))
    image: str | SkipJsonSchema[None] = Field(default=None, description=_about("image", Scene))
    camera: str | SkipJsonSchema[None] = Field(default=None,
                                               description=_about("camera", Scene))


class StoryboardForm(_Delivery):
    """Scenes into one clip (generate-clip takes one only where the model makes it in one
    multi-shot generation; generate-storyboard everywhere)."""

    model_config = ConfigDict(title="Storyboard", json_schema_extra=_leading("mode", "scenes"))

    mode: Literal["storyboard"] = Field(default="storyboard", description="Storyboard.")
    scenes: list[SceneForm] = Field(min_length=1, description=_about("scenes"))


def _kind(value: Any) -> str:
    """`mode` picks the form; without one, a request with scenes is a storyboard and one with
    an image is image to video (the README's `--param request={"prompt": ..., "duration": 5}`
    sends no mode)."""
    if not isinstance(value, dict):
        return getattr(value, "mode", "text")
    return value.get("mode") or ("storyboard" if value.get("scenes") else
                                 "image" if value.get("image") else "text")


class _AnyOf:
    """The union's schema as anyOf, not oneOf: Prefect's server checks a deployment's default
    parameters with `required` removed, under which a text request matches the image form too
    (and so not exactly one)."""

    def __get_pydantic_json_schema__(self, core_schema, handler) -> dict[str, Any]:
        schema = handler(core_schema)
        if "oneOf" in schema:
            schema["anyOf"] = schema.pop("oneOf")
            schema.pop("discriminator", None)
        return schema


ClipForm = Annotated[Annotated[TextClip, Tag("text")] | Annotated[ImageClip, Tag("image")]
                     | Annotated[StoryboardForm, Tag("storyboard")], Discriminator(_kind),
                     _AnyOf()]
