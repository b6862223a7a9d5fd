import io
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageFont

from sandbox.moves import Move
from sandbox.render import FPS, Shot, probe, read_strip, render
from sandbox.scene import MAX_LINES, STRIP_ROWS, fit_lines, wrap_lines


def strips(path: Path) -> list[tuple[int, int]]:
    with av.open(str(path)) as container:
        return [read_strip(f.to_ndarray(format="gray")) for f in container.decode(video=0)]


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (720, 1280), (720, 720)])
def test_renders_decode_to_the_asked_duration_and_size(tmp_path, width, height):
    info = probe(render(tmp_path / "a.mp4", width, height, [Shot("hello", 2 * FPS)]))
    assert (info["seconds"], info["width"], info["height"], info["codec"]) == (2.0, width,
                                                                                height, "h264")


def test_frames_carry_their_number_and_scene(tmp_path):
    path = render(tmp_path / "s.mp4", 640, 360, [Shot("a", 10), Shot("b", 5)])
    assert strips(path) == [(i, 0) for i in range(10)] + [(i, 1) for i in range(10, 15)]


def test_an_extension_remuxes_its_parent_and_continues(tmp_path):
    parent = render(tmp_path / "p.mp4", 640, 360, [Shot("a", 24)])
    child = render(tmp_path / "c.mp4", 1280, 720, [Shot("b", 24)], parent=parent)
    info = probe(child)
    assert (info["seconds"], info["width"]) == (2.0, 640)  # continues at the parent's size
    assert strips(child) == [(i, 0) for i in range(24)] + [(i, 1) for i in range(24, 48)]
    with av.open(str(parent)) as a, av.open(str(child)) as b:
        first = [bytes(p) for p in a.demux(video=0) if p.size]
        copied = [bytes(p) for p in b.demux(video=0) if p.size][:len(first)]
    assert first == copied  # the parent's packets are copied, not re-encoded


# what a person reads: the prompt whole, the input image, the camera move

PROMPT_200 = ("A lighthouse keeper climbs the spiral stairs at dusk with a lantern in hand while "
              "storm clouds gather over a grey sea and gulls wheel overhead as the beam sweeps "
              "across the rain-streaked glass of the tower")


def pattern(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A picture whose every region differs: stripes of three periods, one per channel."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = [np.sin(x / (19 + seed)), np.sin(y / 13), np.sin((x + 2 * y) / (29 + seed))]
    return np.stack([128 + 100 * c for c in channels], axis=-1).astype(np.uint8)


def png(picture: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(picture).save(out, "PNG")
    return out.getvalue()


def end_frames(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return frames[0].astype(np.int16), frames[-1].astype(np.int16)


def picture_rows(height: int) -> slice:
    """Rows below the strip's band and above the caption band (a short prompt)."""
    return slice(STRIP_ROWS + 8, int(height * 0.6))


def view(picture: np.ndarray, zoom: float, dx: float, dy: float) -> np.ndarray:
    """What a camera zoomed by `zoom` and moved by (dx, dy) frame widths/heights sees of
    `picture` (black beyond it)."""
    height, width = picture.shape[:2]
    w, h = width / zoom, height / zoom
    cx, cy = width * (0.5 + dx), height * (0.5 + dy)
    box = (round(cx - w / 2), round(cy - h / 2), round(cx + w / 2), round(cy + h / 2))
    seen = Image.fromarray(picture).crop(box).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(seen).astype(np.int16)


def difference(a: np.ndarray, b: np.ndarray) -> float:
    rows = picture_rows(a.shape[0])
    return float(np.abs(a[rows] - b[rows]).mean())


def test_a_long_prompt_is_wrapped_whole_to_the_frame_width():
    assert len(PROMPT_200) >= 200
    font = ImageFont.load_default(size=32)
    lines = wrap_lines(PROMPT_200, font, 680)  # 720 px portrait, less its margins
    assert len(lines) >= 4
    assert " ".join(lines).split() == PROMPT_200.split()
    assert all(font.getlength(line) <= 680 for line in lines)


def test_a_prompt_too_long_for_eight_lines_shrinks_then_ends_in_an_ellipsis():
    lines, size = fit_lines(PROMPT_200, 680, 32)
    assert (len(lines), size) == (len(wrap_lines(PROMPT_200, ImageFont.load_default(size=32),
                                                 680)), 32)  # fits: nothing shrinks
    lines, size = fit_lines(PROMPT_200 * 8, 680, 32)
    assert len(lines) == MAX_LINES and size < 32 and lines[-1].endswith("…")
    assert " ".join(lines).split()[:40] == (PROMPT_200 * 8).split()[:40]


def test_an_image_to_video_clip_starts_from_the_input_image(tmp_path):
    picture = pattern(640, 360)
    first, _ = end_frames(render(tmp_path / "i.mp4", 640, 360, [Shot("a fox", 12)],
                                 image=png(picture)))
    assert difference(first, picture.astype(np.int16)) < 12
    assert difference(first, pattern(640, 360, seed=7).astype(np.int16)) > 30  # not just any


def test_an_image_of_another_aspect_is_letterboxed_not_cropped(tmp_path):
    picture = pattern(480, 360)  # 4:3 into 16:9: the whole image, bars left and right
    first, _ = end_frames(render(tmp_path / "l.mp4", 640, 360, [Shot("a fox", 12)],
                                 image=png(picture)))
    assert difference(first[:, 80:560], picture.astype(np.int16)) < 12
    assert first[picture_rows(360), :72].mean() < 30 and first[picture_rows(360), 568:].mean() < 30


@pytest.mark.parametrize(("move", "expect"), [
    (Move(zoom=5), lambda z, dx, dy: z > 1.15),    # push in: the centre grows
    (Move(zoom=-5), lambda z, dx, dy: z < 0.85),   # pull out: the image shrinks in a margin
    (Move(pan=-5), lambda z, dx, dy: dx <= -0.15),  # pan left: the view moves left
    (Move(pan=5), lambda z, dx, dy: dx >= 0.15),
    (Move(tilt=5), lambda z, dx, dy: dy <= -0.15),  # tilt up: the view moves up
])
def test_a_camera_move_carries_the_last_frame_the_way_it_says(tmp_path, move, expect):
    picture = pattern(640, 360)
    first, last = end_frames(render(tmp_path / "m.mp4", 640, 360, [Shot("a fox", 48, move)],
                                    image=png(picture)))
    assert difference(first, picture.astype(np.int16)) < 12  # it starts from the image
    candidates = [(z, dx, dy) for z in (1 / 1.4, 1 / 1.2, 1.0, 1.2, 1.4)
                  for dx in (-0.25, -0.1, 0.0, 0.1, 0.25) for dy in (-0.25, 0.0, 0.25)]
    best = min(candidates, key=lambda c: difference(last, view(picture, *c)))
    assert expect(*best), best
    assert difference(last, view(picture, *best)) < difference(last, first) / 2


def test_without_a_move_the_picture_stays_still(tmp_path):
    first, last = end_frames(render(tmp_path / "s.mp4", 640, 360, [Shot("a fox", 24)],
                                    image=png(pattern(640, 360))))
    assert difference(first, last) < 3


def test_the_strip_decodes_on_every_frame_over_moving_pictures(tmp_path):
    noise = np.random.default_rng(1).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    shots = [Shot("push in", 30, Move(zoom=8)), Shot("pan", 30, Move(pan=-8, tilt=3)),
             Shot("pull out", 30, Move(zoom=-8))]
    path = render(tmp_path / "n.mp4", 1280, 720, shots, image=png(noise), label="kling-v3")
    assert strips(path) == [(i, i // 30) for i in range(90)]
    child = render(tmp_path / "c.mp4", 1280, 720, [Shot("then tilt down", 24, Move(tilt=-5))],
                   parent=path)
    assert strips(child) == [(i, i // 30) for i in range(90)] + [(i, 3) for i in range(90, 114)]


def test_a_text_to_video_move_shows_on_its_card(tmp_path):
    first, last = end_frames(render(tmp_path / "t.mp4", 640, 360,
                                    [Shot("a fox", 24, Move(zoom=8))]))
    card = first.astype(np.uint8)
    best = min((1.0, 1.2, 1.4, 1.6), key=lambda z: difference(last, view(card, z, 0, 0)))
    assert best >= 1.4  # the grid grows: strength 8 ends near 1.48x
