"""Storyboards end to end against the sandbox: native multi-shot on Kling, and scene by scene on
Sora 2 with last-frame continuity and stitching; every cut is read back from the frames'
strips, and the ledger agrees with the sandbox's usage log."""

import asyncio
import uuid

import av
import pytest

from flows.storyboard import generate_storyboard
from models import ClipRequest, Scene
from sandbox.render import FPS, read_strip
from storage.ledger import read_ledger
from tests.flows.conftest import assert_reconciled
from tests.flows.journals import journal_of

pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]


def board(model: str, seconds: list[float], tag: str, **fields) -> ClipRequest:
    words = ["A lighthouse keeper climbs the stairs", "A red lantern swings in the storm",
             "Dawn breaks over calm water"]
    return ClipRequest(mode="storyboard", policy=model, resolution="720p", scenes=[
        Scene(prompt=f"{w} ({tag})", duration=s) for w, s in zip(words, seconds, strict=True)],
        **fields)


def frames_of(path: str, native: list[tuple[int, int]] | None = None) -> list[tuple[int, int]]:
    """(frame counter, scene index) of every frame, each read at its scene's native size."""
    found = []
    with av.open(path) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if native:
                frame = frame.reformat(width=native[i][0], height=native[i][1])
            found.append(read_strip(frame.to_ndarray(format="gray")))
    return found


def test_a_native_storyboard_is_one_kling_generation_with_cuts_at_the_shots(home, sandbox):
    request = board("kling-v3", [3, 4, 3], uuid.uuid4().hex[:8])
    result = asyncio.run(generate_storyboard(request))
    assert result.model == "kling-v3" and len(result.job_ids) == 1
    assert result.seconds_delivered == pytest.approx(10.0)
    scenes = [scene for _, scene in frames_of(result.path)]
    assert scenes == [0] * 3 * FPS + [1] * 4 * FPS + [2] * 3 * FPS
    assert_reconciled(home, sandbox)


def test_an_emulated_storyboard_on_sora_continues_each_scene_from_the_last_frame(home, sandbox):
    sandbox.knobs(openai={"downgrade_patterns": [r"\blantern\b"]})  # scene 2 comes back low
    request = board("sora-2", [4, 4, 4], uuid.uuid4().hex[:8])
    result = asyncio.run(generate_storyboard(request))
    assert result.model == "sora-2" and len(result.scene_clip_ids) == 3
    assert result.stitch_method == "re-encode" and result.downgraded
    assert result.resolution_actual == "1280x720"
    assert result.seconds_delivered == pytest.approx(12.0)
    assert result.cost_usd == pytest.approx(3 * 4 * 0.071)  # Sora 2 720p, $0.071 per s

    journal = journal_of(home)
    scenes = [journal.read(clip) for clip in result.scene_clip_ids]
    assert [s.request.mode for s in scenes] == ["text", "image", "image"]
    assert all(s.request.storyboard_id == request.clip_id for s in scenes)
    sizes = [tuple(map(int, s.outcome.result.resolution_actual.split("x"))) for s in scenes]
    assert sizes[1] < sizes[0] == sizes[2] == (1280, 720)
    native = [size for size in sizes for _ in range(4 * FPS)]
    counters = [frame for frame, _ in frames_of(result.path, native)]
    assert counters == list(range(4 * FPS)) * 3  # a cut (counter back to 0) at 4 s and 8 s

    rows = read_ledger(home / "ledger")
    charged = [r for r in rows if r["event_kind"] == "complete"]
    assert len(charged) == 3 and {r["storyboard_id"] for r in charged} == {request.clip_id}
    assert journal.read(request.clip_id).state == "done"
    assert_reconciled(home, sandbox)

    usage = len(sandbox.usage())
    again = asyncio.run(generate_storyboard(request))
    assert again.path == result.path and len(sandbox.usage()) == usage


def test_matching_scenes_are_stitched_without_re_encoding(home, sandbox):
    result = asyncio.run(generate_storyboard(board("sora-2", [4, 4, 4],
                                                   uuid.uuid4().hex[:8])))
    assert result.stitch_method == "remux" and not result.downgraded
    with av.open(result.path) as container:
        assert container.streams.video[0].frames == 12 * FPS
    assert [f for f, _ in frames_of(result.path)] == list(range(4 * FPS)) * 3
    assert_reconciled(home, sandbox)


def test_scenes_with_their_own_image_run_in_parallel_chains():
    from tasks.storyboards import chains

    request = ClipRequest(mode="storyboard", scenes=[
        Scene(prompt="a", duration=4), Scene(prompt="b", duration=4),
        Scene(prompt="c", duration=4, image="examples/harbour-4x3.jpg"),
        Scene(prompt="d", duration=4)])
    assert chains(request) == [[0, 1], [2, 3]]
