"""inspect_clip: what was really delivered — duration, frame size, fps, codec — and a flash frame.

Only the tail is decoded (a seek to the last keyframe before the final 1.5 s), so inspection
time does not grow with the clip's length. A flash frame is a last frame whose mean luma jumps
from its neighbours' by more than FLASH_JUMP (Kling's ~3% gotcha). A flash frame, or a clip
longer than asked (a snapped duration), is trimmed by remuxing without re-encoding when the
stream has no B-frames (cutting packets is then safe); otherwise the kept part is re-encoded.
The original is always kept; the trimmed copy sits beside it.
"""

import asyncio
import statistics
import time
from collections import deque
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
from prefect import task
from prefect.cache_policies import NO_CACHE

from models import Archived, ClipRequest, Inspection, Trim
from storage.archive import AlreadyArchived
from tasks.runtime import Runtime

FLASH_JUMP = 60.0
TAIL_S = 1.5


def inspect_file(source: str | Path | BinaryIO) -> Inspection:
    """`source`: a path, or a seekable file (an object-store archive)."""
    with av.open(_openable(source)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(24)
        base = stream.time_base
        length = float(stream.duration * base) if stream.duration else (
            container.duration or 0) / 1e6
        stream.thread_type = "AUTO"
        container.seek(int(max(0.0, length - TAIL_S) / base), stream=stream, backward=True)
        frames: deque = deque(maxlen=6)
        for frame in container.decode(stream):
            frames.append(frame)
        tail = [(f.pts, float(f.to_ndarray(format="gray").mean())) for f in frames]
        last_pts, last_luma = tail[-1]
        neighbours = [luma for _, luma in tail[:-1]] or [last_luma]
        reference = statistics.median(neighbours)
        seconds = float(last_pts * base) + 1 / float(rate)
        context = stream.codec_context
        return Inspection(
            seconds=round(seconds, 4), frames=round(seconds * float(rate)),
            width=context.width, height=context.height, fps=float(rate), codec=context.name,
            b_frames=bool(getattr(context, "has_b_frames", 0)), last_luma=last_luma,
            neighbour_luma=reference, flash_frame=abs(last_luma - reference) > FLASH_JUMP)


def trim(source: str | Path | BinaryIO, sink: BinaryIO, seconds: float, *, b_frames: bool
         ) -> str:
    """Keep the first `seconds` of `source`; 'remux' or 're-encode', as it had to."""
    with av.open(_openable(source)) as src:
        stream = src.streams.video[0]
        cut = seconds / float(stream.time_base) - 0.5
        with av.open(sink, "w", format="mp4") as out:
            if not b_frames:
                target = out.add_stream_from_template(stream)
                for packet in src.demux(stream):
                    if packet.size and packet.pts is not None and packet.pts < cut:
                        packet.stream = target
                        out.mux(packet)
                return "remux"
            target = out.add_stream("libx264", rate=stream.average_rate or 24)
            target.width, target.height = stream.codec_context.width, \
                stream.codec_context.height
            target.pix_fmt = "yuv420p"
            for frame in src.decode(stream):
                if frame.pts is not None and frame.pts < cut:
                    frame.pict_type = av.video.frame.PictureType.NONE
                    out.mux(target.encode(frame))
            out.mux(target.encode(None))
            return "re-encode"


def _openable(source: str | Path | BinaryIO) -> str | BinaryIO:
    return str(source) if isinstance(source, Path) else source


def inspect_and_trim(rt: Runtime, request: ClipRequest, archived: Archived,
                     expected_seconds: float | None = None) -> tuple[Inspection, Trim]:
    """Inspect the original; write a trimmed copy when a flash frame or extra seconds call for
    it (an extension is expected to be parent + added)."""
    expected = request.seconds if expected_seconds is None else expected_seconds
    started = time.monotonic()
    with rt.archive.reading(archived.path) as source:
        found = inspect_file(source)
    keep = found.seconds
    outcome = Trim()
    if found.flash_frame:
        keep -= 1 / found.fps
        outcome.trim_reasons.append("flash frame on the last frame")
    if keep > expected + 0.5 / found.fps:
        keep = expected
        outcome.too_long = True
        outcome.trim_reasons.append(f"longer than asked ({found.seconds:g} s for "
                                    f"{expected:g} s)")
    if outcome.trim_reasons:
        outcome.kept_s = keep
        trimmed = rt.archive.beside(archived.path, ".trimmed.mp4")
        if not rt.archive.exists(trimmed):
            try:
                with rt.archive.writing(trimmed) as sink, \
                        rt.archive.reading(archived.path) as source:
                    outcome.trim_method = trim(source, sink, keep, b_frames=found.b_frames)
            except AlreadyArchived:
                pass
        outcome.trimmed_path = trimmed
        outcome.trimmed_sha256 = rt.archive.sha256(trimmed)
    outcome.inspection_s = round(time.monotonic() - started, 3)
    return found, outcome


@task(name="inspect clip", retries=0, cache_policy=NO_CACHE)
async def inspect_clip(rt: Runtime, request: ClipRequest, archived: Archived,
                       expected_seconds: float) -> tuple[Inspection, Trim]:
    """CPU work, in a thread: the event loop keeps polling other jobs."""
    return await asyncio.to_thread(inspect_and_trim, rt, request, archived, expected_seconds)
