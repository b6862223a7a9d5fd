"""inspect_file reads the tail from the last keyframe it needs and gives, field for field, what
the method it replaced gave (bench/inspection_bench.py keeps that one as its baseline)."""

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from bench.inspection_bench import inspect_baseline
from sandbox.render import FPS, Shot, render
from tasks.inspection import inspect_file


def encode(path: Path, frames: int, *, keyint: int, bframes: int = 0,
           flash_last: bool = False, width: int = 320, height: int = 240) -> Path:
    """An H.264 MP4 of moving noise (every frame differs) with a keyframe every `keyint`."""
    rng = np.random.default_rng(frames + keyint + bframes)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS, options={
            "preset": "ultrafast",
            "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0:bframes={bframes}"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        base = rng.integers(40, 200, (height * 3 // 2, width), dtype=np.uint8)
        for index in range(frames):
            yuv = np.roll(base, index * 3, axis=1)
            if flash_last and index == frames - 1:
                yuv = np.full_like(base, 235)
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.mark.parametrize(("seconds", "flash", "audio"), [
    (5, False, False), (5, True, False), (3, True, True), (10, False, True)])
def test_a_sandbox_clip_is_inspected_as_before(tmp_path, seconds, flash, audio):
    path = render(tmp_path / "clip.mp4", 640, 360, [Shot("inspect me", seconds * FPS)],
                  flash_last=flash, audio=audio)
    found = inspect_file(path)
    assert found == inspect_baseline(path)
    assert (found.flash_frame, found.audio, found.frames) == (flash, audio, seconds * FPS)


@pytest.mark.parametrize(("frames", "keyint", "bframes", "flash"), [
    (240, 300, 0, True),    # one GOP for the whole clip: decoded from the first frame
    (240, 300, 0, False),
    (200, 250, 3, True),    # B-frames: frames come out of the decoder reordered
    (130, 7, 2, False),     # a keyframe every 7 frames: the tail starts close to the end
    (4, 48, 0, True),       # fewer frames than are compared: the first method again
])
def test_any_gop_is_inspected_as_before(tmp_path, frames, keyint, bframes, flash):
    path = encode(tmp_path / "gop.mp4", frames, keyint=keyint, bframes=bframes,
                  flash_last=flash)
    found = inspect_file(path)
    assert found == inspect_baseline(path)
    assert found.frames == frames and found.flash_frame == flash
    assert found.b_frames == bool(bframes)


def test_an_archive_file_object_is_inspected_as_a_path_is(tmp_path):
    path = encode(tmp_path / "gop.mp4", 96, keyint=40, flash_last=True)
    assert inspect_file(io.BytesIO(path.read_bytes())) == inspect_file(path)
