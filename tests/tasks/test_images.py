import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tasks.image_files import MAX_PIXELS, ImageError, prepare_image_bytes


def encode(image: Image.Image, fmt: str = "JPEG", **kw) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kw)
    return out.getvalue()


def photo(width: int, height: int, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(width * 7 + height)
    data = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(data, "RGB").convert(mode) if mode != "RGB" else Image.fromarray(
        data, "RGB")


def decoded(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(300, 2400), st.integers(300, 2400), st.sampled_from(["16:9", "9:16", "1:1"]))
def test_kling_output_is_the_exact_ratio_with_even_sides(width, height, aspect):
    from providers.catalog import load_catalog

    data, result = prepare_image_bytes(encode(photo(width, height)),
                                       load_catalog().row("kling-v3"), aspect=aspect)
    w, h = decoded(data).size
    a, b = {"16:9": (16, 9), "9:16": (9, 16), "1:1": (1, 1)}[aspect]
    assert (w, h) == result.output_size and w * b == h * a and w % 2 == 0 == h % 2
    left, top, right, bottom = result.box
    assert 0 <= left < right <= width and 0 <= top < bottom <= height


@settings(max_examples=15, deadline=None)
@given(st.integers(300, 3000), st.integers(300, 3000), st.sampled_from(["16:9", "9:16"]),
       st.sampled_from(["720p", "1080p"]))
def test_a_size_enum_model_gets_exactly_one_of_its_sizes(width, height, aspect, resolution):
    from providers.catalog import load_catalog

    row = load_catalog().row("sora-2")
    data, _ = prepare_image_bytes(encode(photo(width, height)), row, aspect=aspect,
                                  resolution=resolution)
    assert "x".join(map(str, decoded(data).size)) == row.wire[resolution].sizes[aspect]


def test_only_cropping_means_no_resampling(catalog):
    _, result = prepare_image_bytes(encode(photo(1600, 1200)), catalog.row("kling-v3"),
                                    aspect="16:9")
    assert not result.resized and result.output_size == (1600, 900)


def test_large_jpegs_use_draft_mode(catalog):
    _, result = prepare_image_bytes(encode(photo(6000, 4000), quality=80),
                                    catalog.row("sora-2"), aspect="16:9", resolution="720p")
    assert result.draft_scale is not None and result.draft_scale <= 0.5
    assert result.output_size == (1280, 720)


def test_a_given_focus_stays_inside_the_crop(catalog):
    _, result = prepare_image_bytes(encode(photo(3000, 1000)), catalog.row("kling-v3"),
                                    aspect="1:1", focus=(0.9, 0.5))
    left, _, right, _ = result.box
    assert left <= 0.9 * 3000 <= right and result.focus_source == "given"


def test_saliency_finds_the_detail(catalog):
    image = Image.new("RGB", (2000, 1000), (120, 120, 120))
    image.paste(photo(300, 300), (1600, 350))
    _, result = prepare_image_bytes(encode(image), catalog.row("kling-v3"), aspect="1:1")
    assert result.focus[0] > 0.7 and result.box[2] >= 1750


def test_exif_orientation_is_applied(catalog):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90°: a 1600x900 sensor image is really 900x1600
    data = encode(photo(1600, 900), exif=exif)
    _out, result = prepare_image_bytes(data, catalog.row("kling-v3"), aspect="auto")
    assert result.source_size == (900, 1600) and result.aspect_ratio == "9:16"
    assert any("orientation" in c for c in result.conversions)


@pytest.mark.parametrize(("mode", "fmt", "note"), [
    ("CMYK", "JPEG", "CMYK converted to RGB"),
    ("RGBA", "PNG", "alpha flattened onto white"),
    ("LA", "PNG", "alpha flattened onto white"),
    ("P", "PNG", "P converted to RGB"),
    ("L", "PNG", "L converted to RGB"),
])
def test_colour_modes_are_converted_and_said_so(catalog, mode, fmt, note):
    data, result = prepare_image_bytes(encode(photo(800, 450, mode), fmt),
                                       catalog.row("kling-v3"), aspect="16:9")
    assert decoded(data).mode == "RGB" and any(note in c for c in result.conversions)


def test_16_bit_images_are_scaled_to_8_bit(catalog):
    array = (np.linspace(0, 65535, 640 * 360).reshape(360, 640)).astype(np.uint16)
    data, result = prepare_image_bytes(encode(Image.fromarray(array), "PNG"),
                                       catalog.row("kling-v3"), aspect="16:9")
    assert any("8-bit" in c for c in result.conversions)
    assert np.asarray(decoded(data).convert("L")).max() > 200


def test_animated_images_give_their_first_frame(catalog):
    frames = [photo(640, 360), Image.new("RGB", (640, 360), (255, 0, 0))]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:])
    _, result = prepare_image_bytes(out.getvalue(), catalog.row("kling-v3"), aspect="16:9")
    assert any("first frame" in c for c in result.conversions)


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty"),
    (b"this is not an image at all", "not an image"),
])
def test_empty_and_non_images_are_refused(catalog, data, message):
    with pytest.raises(ImageError, match=message):
        prepare_image_bytes(data, catalog.row("kling-v3"))


def test_truncated_images_are_refused(catalog):
    data = encode(photo(800, 600))
    with pytest.raises(ImageError, match="truncated"):
        prepare_image_bytes(data[: len(data) // 2], catalog.row("kling-v3"), aspect="16:9")


def test_decompression_bombs_are_refused(catalog):
    side = int(MAX_PIXELS ** 0.5) + 1000
    bomb = encode(Image.new("1", (side, side)), "PNG")
    with pytest.raises(ImageError, match="decompression bomb"):
        prepare_image_bytes(bomb, catalog.row("kling-v3"))


def test_images_below_the_provider_minimum_are_refused(catalog):
    with pytest.raises(ImageError, match="at least 300 px"):
        prepare_image_bytes(encode(photo(640, 299)), catalog.row("kling-v3"))


def test_an_aspect_the_model_does_not_take_is_refused(catalog):
    with pytest.raises(ImageError, match="16:9, 9:16"):
        prepare_image_bytes(encode(photo(800, 800)), catalog.row("sora-2"), aspect="1:1")


def test_webp_is_read(catalog):
    data, _ = prepare_image_bytes(encode(photo(800, 450), "WEBP"), catalog.row("kling-v3"))
    assert decoded(data).format == "JPEG"


def test_the_clip_id_follows_the_image_s_content_not_its_path(tmp_path):
    from models import ClipRequest
    from tasks.image_files import with_image_digest

    path = tmp_path / "photo.jpg"
    path.write_bytes(encode(photo(800, 450)))
    first = with_image_digest(ClipRequest(mode="image", prompt="x", duration=5, image=str(path)))
    copy = tmp_path / "copy.jpg"
    copy.write_bytes(path.read_bytes())
    moved = with_image_digest(ClipRequest(mode="image", prompt="x", duration=5, image=str(copy)))
    path.write_bytes(encode(photo(900, 450)))
    changed = with_image_digest(ClipRequest(mode="image", prompt="x", duration=5,
                                            image=str(path)))
    assert first.image_sha256 == moved.image_sha256 != changed.image_sha256
    assert first.clip_id == moved.clip_id != changed.clip_id
    with pytest.raises(ImageError, match="cannot read the image"):
        with_image_digest(ClipRequest(mode="image", prompt="x", duration=5,
                                      image=str(tmp_path / "gone.jpg")))


def _saved(image: Image.Image) -> bytes:
    return encode(image.convert("RGB"), quality=92)


@pytest.mark.parametrize(("size", "orientation", "aspect"), [
    ((1600, 900), None, "16:9"),    # the whole picture kept: neither transposed nor cut
    ((1600, 1200), None, "16:9"),   # cut, not resampled
    ((1600, 1200), 1, "16:9"),      # an explicit upright tag
    ((1600, 1200), 3, "16:9"),      # turned half-way round, then cut
    ((5000, 2812), None, "16:9"),   # resampled to kling's 4096 px side, no draft (scale > 0.5)
    ((6000, 4000), 3, "16:9"),      # turned, then resampled (scale 0.68)
])
def test_the_output_is_exactly_what_pillow_gives_for_the_same_box(catalog, size, orientation,
                                                                    aspect):
    from PIL import ImageOps

    kw = {}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kw["exif"] = exif
    data = encode(photo(*size), **kw)
    payload, result = prepare_image_bytes(data, catalog.row("kling-v3"), aspect=aspect,
                                          focus=(0.3, 0.6))
    expected = ImageOps.exif_transpose(decoded(data))
    if result.resized:  # the box read by the resize itself, BILINEAR above a halving
        expected = expected.resize(result.output_size, Image.Resampling.BILINEAR,
                                   box=result.box)
    else:
        expected = expected.crop(result.box)
    assert result.draft_scale is None and payload == _saved(expected)

