from pathlib import Path

import av
import pytest

from sandbox.render import FPS, Shot, probe, read_strip, render


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
