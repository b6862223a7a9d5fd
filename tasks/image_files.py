"""Image pre-cropping for the chosen model, before anything is paid.

Kling answers 422 outside 16:9, 9:16 and 1:1; Sora wants the input exactly the output size. Any
image Pillow reads (HEIC where pillow-heif is installed) is oriented by its EXIF, cropped to the
ratio asked (or the nearest the model takes) around a focus point (given, or the centroid of edge
energy — a cheap saliency), and fitted to the model's rules from its catalog row. Only cropping
when that is enough (no resampling); JPEG draft mode when a large JPEG is downscaled anyway.
No pixel is copied for nothing: an upright image is not transposed (exif_transpose would return a
copy of the same pixels), and the crop box is read by the resize itself (Pillow's `box`), never
cut into a copy first.

The resize filter follows the scale (`resample_filter`): below a halving, JPEG draft mode has
already done the bulk of the reduction in the DCT and LANCZOS (reducing_gap 3) takes the rest;
a milder reduction (Kling's 4096 px side from a 24 MP photo, scale 0.68) uses Pillow's
antialiased BILINEAR, whose kernel still spans every source pixel (43 dB PSNR against LANCZOS on
the crop bench's photo) at half LANCZOS's cost there. Draft decoding stays at scale <= 0.5: at a
milder scale the smallest draft (1/2) would be smaller than the output, which is not lossless.
Resizing in bands on two threads (Pillow releases the GIL) was tried and left: Pillow 13 gives a
band's rows bitwise the whole resize's only at some scales, and the output is pinned exact.

Guard rails, each a clear ImageError or a documented conversion: zero-byte, truncated and
non-image files, decompression bombs (over MAX_PIXELS) are refused; CMYK, 16-bit and palette
images are converted to RGB; alpha is flattened onto white; an animated image gives its first
frame (said so); an image below the model's minimum side is refused.
"""

import hashlib
import io
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError
from pydantic import BaseModel

from models import Resolution
from providers.catalog import ModelRow
from tasks import framing
from tasks.input_files import InputError, is_store_url, read_bytes

MAX_PIXELS = 100_000_000
MAX_IMAGE_BYTES = 50 << 20  # well above any provider's input limit (Kling 10 MB, OpenAI 20 MiB)
STILL_FORMATS = ("JPEG", "PNG", "WEBP", "HEIF", "MPO")
JPEG_QUALITIES = (92, 85, 75, 65)
_ROTATED = {5, 6, 7, 8}
_TRANSPOSED = {2, 3, 4, 5, 6, 7, 8}  # the orientations ImageOps.exif_transpose acts on

try:  # optional: HEIC/HEIF support where the wheel installs
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - depends on the machine
    pass


class ImageError(ValueError):
    """An image reelflow cannot use, with what to do about it."""


class CropResult(BaseModel):
    """What was done to the image, and why."""

    source_size: tuple[int, int]
    aspect_ratio: str
    box: tuple[int, int, int, int]
    output_size: tuple[int, int]
    resized: bool
    draft_scale: float | None
    focus: tuple[float, float]
    focus_source: str
    conversions: list[str]
    reason: str
    format: str
    bytes: int


def _open(data: bytes) -> Image.Image:
    if not data:
        raise ImageError("the image file is empty (0 bytes)")
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageError(f"refusing a decompression bomb: {err}") from None
    except UnidentifiedImageError:
        raise ImageError("not an image Pillow can read (JPEG, PNG, WebP; HEIC with "
                         "pillow-heif)") from None


def _saliency(image: Image.Image) -> tuple[float, float]:
    """Centroid of edge energy on a small grey copy: where the detail is."""
    small = image.reduce(max(1, min(image.size) // 256)).convert("L")
    small.thumbnail((128, 128))
    edges = np.asarray(small.filter(ImageFilter.FIND_EDGES), dtype=np.float64)
    edges[[0, -1], :] = 0
    edges[:, [0, -1]] = 0
    total = edges.sum()
    if total < 1e-6:
        return 0.5, 0.5
    ys, xs = np.indices(edges.shape)
    return (float((xs * edges).sum() / total + 0.5) / edges.shape[1],
            float((ys * edges).sum() / total + 0.5) / edges.shape[0])


def _to_rgb(image: Image.Image, conversions: list[str]) -> Image.Image:
    mode = image.mode
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        conversions.append(f"{mode} with alpha flattened onto white")
        return flat
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = array.max() or 1.0
        conversions.append(f"{mode} ({'16' if '16' in mode else '32'}-bit) scaled to 8-bit")
        return Image.fromarray((array * (255.0 / peak)).astype(np.uint8)).convert("RGB")
    if mode != "RGB":
        conversions.append(f"{mode} converted to RGB")
        return image.convert("RGB")
    return image


def resample_filter(scale: float) -> Image.Resampling:
    """The resize filter for an output `scale` times the crop's size: LANCZOS after a draft
    decode has halved the image (scale <= 0.5), BILINEAR for a milder reduction."""
    return Image.Resampling.LANCZOS if scale <= 0.5 else Image.Resampling.BILINEAR


def prepare_image_bytes(data: bytes, row: ModelRow, *, aspect: str = "auto",
                        resolution: Resolution = "1080p",
                        focus: tuple[float, float] | None = None, draft: bool = True
                        ) -> tuple[bytes, CropResult]:
    """The image as `row`'s model should receive it, and the record of what was done."""
    rules = row.image
    image = _open(data)
    conversions: list[str] = []
    if getattr(image, "n_frames", 1) > 1:
        conversions.append(f"animated ({image.n_frames} frames): the first frame is used")
    orientation = image.getexif().get(0x0112, 1)
    width, height = image.size[::-1] if orientation in _ROTATED else image.size
    if min(width, height) < rules.min_side:
        raise ImageError(f"the image is {width}x{height}; {row.id} needs at least "
                         f"{rules.min_side} px on the short side")
    if aspect == "auto":
        aspect = framing.nearest_ratio(width, height, rules.aspect_ratios)
    if aspect not in rules.aspect_ratios:
        raise ImageError(f"{row.id} takes images in {', '.join(rules.aspect_ratios)}, "
                         f"not {aspect}")
    if rules.match_output_size:
        target = tuple(int(v) for v in row.wire[resolution].sizes[aspect].split("x"))
        crop = framing.largest_exact(width, height, *target, even=False)
        final = target
    else:
        crop = framing.largest_exact(width, height, *framing.RATIOS[aspect])
        final = framing.fit_within(*crop, rules.max_side)
    scale = min(final[0] / crop[0], 1.0)
    draft_scale = None
    if draft and image.format == "JPEG" and scale <= 0.5:
        requested = (math.ceil(image.size[0] * scale), math.ceil(image.size[1] * scale))
        image.draft("RGB", requested)
        draft_scale = image.size[0] / (height if orientation in _ROTATED else width)
    try:
        image.seek(0)
        image.load()
    except (OSError, SyntaxError) as err:
        raise ImageError(f"the image is truncated or corrupt: {err}") from None
    if orientation in _TRANSPOSED:  # else exif_transpose would only copy the pixels
        image = ImageOps.exif_transpose(image)
    image = _to_rgb(image, conversions)
    if orientation != 1:
        conversions.append(f"EXIF orientation {orientation} applied")
    focus_source = "given" if focus else "saliency"
    focus = focus or _saliency(image)
    loaded_w, loaded_h = image.size
    if draft_scale:
        crop_here = framing.largest_exact(loaded_w, loaded_h, *crop, even=False)
    else:
        crop_here = crop
    box = framing.box_around(loaded_w, loaded_h, *crop_here, focus)
    resized = (box[2] - box[0], box[3] - box[1]) != final
    if resized:
        result = image.resize(final, resample_filter(scale), box=box, reducing_gap=3.0)
    else:  # cut, not resampled; the whole picture kept is not even cut
        result = image if box == (0, 0, loaded_w, loaded_h) else image.crop(box)
    factor = width / loaded_w
    original_box = tuple(round(v * factor) for v in box)
    payload = b""
    for quality in JPEG_QUALITIES:
        out = io.BytesIO()
        result.save(out, "JPEG", quality=quality)
        payload = out.getvalue()
        if len(payload) <= rules.max_bytes:
            break
    else:
        raise ImageError(f"the image stays over {rules.max_bytes} bytes even at quality "
                         f"{JPEG_QUALITIES[-1]}")
    reason = (f"{width}x{height} cropped to {aspect} around the {focus_source} focus"
              + (f", resized to {final[0]}x{final[1]}" if resized else ", no resampling")
              + (" (the exact input size the model requires)" if rules.match_output_size
                 else ""))
    return payload, CropResult(
        source_size=(width, height), aspect_ratio=aspect, box=original_box,  # type: ignore
        output_size=result.size, resized=resized, draft_scale=draft_scale, focus=focus,
        focus_source=focus_source, conversions=conversions, reason=reason, format="JPEG",
        bytes=len(payload))


def check_image(data: bytes, name: str) -> None:
    """`data` is a still image we can prepare: not empty, not too large, a format we read,
    one frame, real dimensions — checked by content, at plan time, before anything is paid."""
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageError(f"{name} is {len(data):,} bytes; at most {MAX_IMAGE_BYTES:,}")
    image = _open(data)
    if image.format not in STILL_FORMATS:
        raise ImageError(f"{name} is {image.format}; give a JPEG, PNG, WebP or HEIC image")
    if getattr(image, "n_frames", 1) > 1 and image.format != "MPO":
        raise ImageError(f"{name} is animated ({image.n_frames} frames); give one still frame")
    if min(image.size) < 1:
        raise ImageError(f"{name} has no pixels ({image.size[0]}x{image.size[1]})")


def read_image(image: str | Path, options: dict[str, Any] | None = None) -> bytes:
    """An image's bytes: a file's, or an object's on a store (s3://...; fsspec storage
    `options`), where a manifest on that store names its images and where every worker reads
    them — a worker of a batch's chunk runs has no copy of its own. Web URLs are refused."""
    if is_store_url(image):
        try:
            return read_bytes(image, "image", MAX_IMAGE_BYTES, options)
        except InputError as err:
            raise ImageError(err.message) from None
    if "://" in str(image):
        raise ImageError(f"{image}: images are read from files, not fetched from URLs; "
                         "download it and give its path")
    try:
        return Path(image).read_bytes()
    except OSError as err:
        raise ImageError(f"cannot read the image {image}: {err.strerror}") from None
    except ValueError:  # a NUL byte: no file can have that name
        raise ImageError(f"{image!r} is not a file path") from None


def with_image_digest(request, options: dict[str, Any] | None = None):
    """The request with its image checked by content and its checksum kept (the clip id then
    follows the image's content, not its path); a storyboard's scene images are checked too.
    Requests without an image are returned unchanged. `options`: fsspec storage options for
    images on an object store."""
    for scene in request.scenes:
        if scene.image:
            check_image(read_image(scene.image, options), scene.image)
    if not request.image or request.image_sha256:
        return request
    data = read_image(request.image, options)
    check_image(data, request.image)
    return request.model_copy(update={"image_sha256": hashlib.sha256(data).hexdigest()})


def prepare_image_file(path: Path | str, row: ModelRow, options: dict[str, Any] | None = None,
                       **kwargs) -> tuple[bytes, CropResult]:
    """The image at `path` (a file, or an object on a store read with `options`) prepared for
    `row`'s model."""
    return prepare_image_bytes(read_image(path, options), row, **kwargs)
