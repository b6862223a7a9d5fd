"""inspect_clip: what was really delivered — duration, frame size, fps, codec — and a flash frame.

Duration, size, rate and streams come from the container; only the tail is decoded: a seek to
the last keyframe before the final 2 x KEEP frames, then forward to the end, so inspection time
does not grow with the clip's length (one GOP at most, plus 2 x KEEP frames). The last KEEP
frames alone are kept and converted to grey. Should that tail hold fewer than KEEP frames (a
container whose duration is off), the first method is used again: a seek to the last keyframe
before the final TAIL_S seconds. Frames decoded from any keyframe are the same frames, so the
result does not depend on which keyframe the decode started from. A flash frame is a last frame
whose mean luma jumps from its neighbours' (the KEEP - 1 before it) by more than FLASH_JUMP
(Kling's ~3% gotcha). A flash frame, or a clip longer than asked (a snapped duration), is
trimmed by remuxing without re-encoding when the stream has no B-frames (cutting packets is then
safe); otherwise the kept part is re-encoded.
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
from providers.catalog import Audio
from storage.archive import AlreadyArchived
from tasks import run_names
from tasks.runtime import Runtime

FLASH_JUMP = 60.0
TAIL_S = 1.5
KEEP = 6  # the last frame and the neighbours it is compared with


def inspect_file(source: str | Path | BinaryIO) -> Inspection:
    """`source`: a path, or a seekable file (an object-store archive)."""
    with av.open(_openable(source)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(24)
        base = stream.time_base
        length = float(stream.duration * base) if stream.duration else (
            container.duration or 0) / 1e6
        # slice threads only: frame threads cost more CPU per clip (78 vs 71 ms on a 5 s 1080p
        # sandbox clip, 125 vs 95 ms on 10 s), and a batch already inspects one clip per core
        stream.thread_type = "SLICE"
        start = float((stream.start_time or 0) * base)
        tail = _tail(container, stream, start + length - 2 * KEEP / float(rate),
                     start + length - (KEEP + 0.5) / float(rate))
        if len(tail) < KEEP:  # the tail was not where the container said: the first method
            tail = _tail(container, stream, max(0.0, length - TAIL_S), None)
        *before, (last_pts, last_luma) = tail
        neighbours = [luma for _, luma in before] or [last_luma]
        reference = statistics.median(neighbours)
        seconds = float(last_pts * base) + 1 / float(rate)
        context = stream.codec_context
        return Inspection(
            seconds=round(seconds, 4), frames=round(seconds * float(rate)),
            width=context.width, height=context.height, fps=float(rate), codec=context.name,
            b_frames=bool(getattr(context, "has_b_frames", 0)), last_luma=last_luma,
            neighbour_luma=reference, flash_frame=abs(last_luma - reference) > FLASH_JUMP,
            audio=bool(container.streams.audio))


def _tail(container: av.container.InputContainer, stream: av.video.VideoStream,
          seek_s: float, keep_from_s: float | None) -> deque[tuple[int, float]]:
    """(pts, mean grey) of the last KEEP frames decoded from the keyframe at or before `seek_s`,
    counting from the first frame shown at `keep_from_s` or later (earlier ones are decoded for
    their references, not measured). A frame is measured as it comes, then let go."""
    base = stream.time_base
    container.seek(int(max(0.0, seek_s) / base), stream=stream, backward=True)
    threshold = None if keep_from_s is None else keep_from_s / base
    tail: deque[tuple[int, float]] = deque(maxlen=KEEP)
    for frame in container.decode(stream):
        if tail or threshold is None or (frame.pts is not None and frame.pts >= threshold):
            tail.append((frame.pts, float(frame.to_ndarray(format="gray").mean())))
    return tail


def trim(source: str | Path | BinaryIO, sink: BinaryIO, seconds: float, *, b_frames: bool,
         audio: bool = True) -> str:
    """Keep the first `seconds` of `source`, its soundtrack too unless `audio` is False;
    'remux' or 're-encode' (the video), as it had to. Sound is always remuxed."""
    with av.open(_openable(source)) as src:
        stream = src.streams.video[0]
        sound = src.streams.audio[0] if audio and src.streams.audio else None
        with av.open(sink, "w", format="mp4") as out:
            if not b_frames:
                target = out.add_stream_from_template(stream)
                _copy(src, out, [(stream, target), *_sound_track(out, sound)], seconds)
                return "remux"
            target = out.add_stream("libx264", rate=stream.average_rate or 24)
            target.width, target.height = stream.codec_context.width, \
                stream.codec_context.height
            target.pix_fmt = "yuv420p"
            tracks = _sound_track(out, sound)
            cut = seconds / float(stream.time_base) - 0.5
            for frame in src.decode(stream):
                if frame.pts is not None and frame.pts < cut:
                    frame.pict_type = av.video.frame.PictureType.NONE
                    out.mux(target.encode(frame))
            out.mux(target.encode(None))
            if tracks:
                src.seek(0)
                _copy(src, out, tracks, seconds)
            return "re-encode"


def _sound_track(out: av.container.OutputContainer, sound: av.audio.AudioStream | None
                 ) -> list[tuple[av.stream.Stream, av.stream.Stream]]:
    return [(sound, out.add_stream_from_template(sound))] if sound is not None else []


def _copy(src: av.container.InputContainer, out: av.container.OutputContainer,
          tracks: list[tuple[av.stream.Stream, av.stream.Stream]], seconds: float) -> None:
    """Remux the packets of each (input, output) stream pair that start before `seconds`."""
    targets = {source.index: (target, seconds / float(source.time_base) - 0.5)
               for source, target in tracks}
    for packet in src.demux(*(source for source, _ in tracks)):
        target, cut = targets[packet.stream.index]
        if packet.size and packet.pts is not None and packet.pts < cut:
            packet.stream = target
            out.mux(packet)


def _openable(source: str | Path | BinaryIO) -> str | BinaryIO:
    return str(source) if isinstance(source, Path) else source


def inspect_and_trim(rt: Runtime, request: ClipRequest, archived: Archived,
                     expected_seconds: float | None = None,
                     sound: Audio = "none") -> tuple[Inspection, Trim]:
    """Inspect the original; write a trimmed copy when a flash frame, extra seconds or a
    soundtrack nobody asked for call for it (an extension is expected to be parent + added).
    `sound`: the model's audio (none, optional, always): a soundtrack is expected when asked
    for or always made, and one always made but not asked for leaves the published copy."""
    expected = request.seconds if expected_seconds is None else expected_seconds
    started = time.monotonic()
    with rt.archive.reading(archived.path) as source:
        found = inspect_file(source)
    keep = found.seconds
    outcome = Trim()
    strip = found.audio and sound == "always" and not request.audio
    if found.audio != (request.audio or sound == "always"):
        outcome.audio_mismatch = ("a soundtrack was asked for and none was delivered"
                                  if request.audio else "a soundtrack nobody asked for")
    if strip:
        outcome.audio_mismatch = None  # expected: it is removed as the request says
        outcome.audio_removed = True
        outcome.trim_reasons.append("soundtrack removed: audio was not asked for")
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
                    outcome.trim_method = trim(source, sink, keep, b_frames=found.b_frames,
                                               audio=not strip)
            except AlreadyArchived:
                pass
        outcome.trimmed_path = trimmed
        outcome.trimmed_sha256 = rt.archive.sha256(trimmed)
    outcome.inspection_s = round(time.monotonic() - started, 3)
    return found, outcome


@task(name="inspect clip", task_run_name=run_names.labelled("inspect clip"), retries=0,
      cache_policy=NO_CACHE)
async def inspect_clip(rt: Runtime, request: ClipRequest, archived: Archived,
                       expected_seconds: float, sound: Audio = "none"
                       ) -> tuple[Inspection, Trim]:
    """CPU work, in a thread, at most `inspection_concurrency` at once: the event loop keeps
    polling other jobs, and the pool keeps threads for the journal's writes."""
    async with rt.inspecting:
        return await asyncio.to_thread(inspect_and_trim, rt, request, archived,
                                       expected_seconds, sound)
