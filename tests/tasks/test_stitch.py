"""Stitching on real MP4s rendered by the sandbox: frame counters and scene indexes in each
frame's strip show where every cut landed."""

import io

import av
import numpy as np
import pytest
from PIL import Image

from sandbox.render import Shot, read_strip, render
from tasks.stitch import last_frame_jpeg, stitch


def strips(data: bytes, native: list[tuple[int, int]] | None = None) -> list[tuple[int, int]]:
    """(frame, scene) of every frame; `native` = each frame's original size, to read a strip
    that re-encoding scaled."""
    found = []
    with av.open(io.BytesIO(data)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if native:
                frame = frame.reformat(width=native[i][0], height=native[i][1])
            found.append(read_strip(frame.to_ndarray(format="gray")))
    return found


def scene(tmp_path, name: str, size=(640, 360), frames=24, text="scene") -> str:
    return str(render(tmp_path / f"{name}.mp4", *size, [Shot(text=text, frames=frames)]))


def test_matching_scenes_are_remuxed_with_cuts_at_each_scene_s_first_frame(tmp_path):
    sources = [scene(tmp_path, "a", frames=24), scene(tmp_path, "b", frames=48, text="two"),
               scene(tmp_path, "c", frames=12, text="three")]
    sink = io.BytesIO()
    result = stitch(sources, sink, (640, 360))
    assert result.method == "remux"
    assert result.cuts_s == pytest.approx([0, 1, 3]) and result.seconds == pytest.approx(3.5)
    frames = [f for f, _ in strips(sink.getvalue())]
    assert frames == list(range(24)) + list(range(48)) + list(range(12))


def test_a_downgraded_scene_makes_everything_re_encoded_to_the_asked_size(tmp_path):
    sources = [scene(tmp_path, "a"), scene(tmp_path, "b", size=(426, 240), text="low"),
               scene(tmp_path, "c", text="three")]
    sink = io.BytesIO()
    result = stitch(sources, sink, (640, 360))
    assert result.method == "re-encode" and result.cuts_s == pytest.approx([0, 1, 2])
    with av.open(io.BytesIO(sink.getvalue())) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (640, 360)
    native = [(640, 360)] * 24 + [(426, 240)] * 24 + [(640, 360)] * 24
    frames = [f for f, _ in strips(sink.getvalue(), native)]
    assert frames == list(range(24)) * 3


def test_the_last_frame_is_a_deterministic_jpeg_of_the_final_frame(tmp_path):
    source = scene(tmp_path, "a", frames=30)
    first, again = last_frame_jpeg(source), last_frame_jpeg(source)
    assert first == again
    image = Image.open(io.BytesIO(first))
    assert image.size == (640, 360)
    luma = image.convert("L")
    assert read_strip(np.asarray(luma))[0] == 29
