"""Scenes into one clip (PyAV), and the last frame that starts the next scene.

Remux without re-encoding when every scene has the same codec, frame size, time base, codec
extradata (SPS/PPS) and no B-frames: packets are copied with their timestamps shifted by the
length of what came before, so quality and time are untouched. Anything else — a scene the
provider silently downgraded makes exactly that mix — is decoded and re-encoded to one common
size (the size asked for) with libx264; which one happened is returned, never hidden.
"""

import io
from collections.abc import Sequence
from contextlib import ExitStack
from fractions import Fraction
from typing import BinaryIO

import av
from pydantic import BaseModel

from tasks.inspection import TAIL_S


class Stitched(BaseModel):
    method: str  # "remux" or "re-encode"
    cuts_s: list[float]  # where each scene starts in the stitched clip
    seconds: float


def _signature(stream) -> tuple:
    context = stream.codec_context
    return (context.name, context.width, context.height, stream.time_base,
            bytes(context.extradata or b""), bool(getattr(context, "has_b_frames", 0)))


def stitch(sources: Sequence[str | BinaryIO], sink: BinaryIO, size: tuple[int, int]
           ) -> Stitched:
    """Concatenate `sources` (paths or seekable files, in order) into `sink` as MP4."""
    with ExitStack() as stack:
        inputs = [stack.enter_context(av.open(source)) for source in sources]
        streams = [container.streams.video[0] for container in inputs]
        signatures = {_signature(stream) for stream in streams}
        remux = len(signatures) == 1 and not next(iter(signatures))[-1]
        with av.open(sink, "w", format="mp4") as out:
            if remux:
                return _remux(inputs, streams, out)
            return _reencode(inputs, streams, out, size)


def _remux(inputs, streams, out) -> Stitched:
    target = out.add_stream_from_template(streams[0])
    base = streams[0].time_base
    offset, cuts = 0, []
    for container, stream in zip(inputs, streams, strict=True):
        cuts.append(float(offset * base))
        end = offset
        for packet in container.demux(stream):
            if packet.dts is None:  # the demuxer's final empty packet
                continue
            packet.pts += offset
            packet.dts += offset
            end = max(end, packet.pts + (packet.duration or 0))
            packet.stream = target
            out.mux(packet)
        offset = end
    return Stitched(method="remux", cuts_s=cuts, seconds=float(offset * base))


def _reencode(inputs, streams, out, size: tuple[int, int]) -> Stitched:
    rate = streams[0].average_rate or Fraction(24)
    target = out.add_stream("libx264", rate=rate)
    target.width, target.height = size
    target.pix_fmt = "yuv420p"
    index, cuts = 0, []
    for container, stream in zip(inputs, streams, strict=True):
        cuts.append(float(index / rate))
        for frame in container.decode(stream):
            frame = frame.reformat(width=size[0], height=size[1], format="yuv420p")
            frame.pts, frame.time_base = index, 1 / rate
            index += 1
            out.mux(target.encode(frame))
    out.mux(target.encode(None))
    return Stitched(method="re-encode", cuts_s=cuts, seconds=float(index / rate))


def last_frame_jpeg(source: str | BinaryIO) -> bytes:
    """The last frame as a JPEG (the next scene's image-to-video input); only the tail is
    decoded. The bytes are deterministic, so the next scene's clip id is too."""
    with av.open(source) as container:
        stream = container.streams.video[0]
        base = stream.time_base
        length = float(stream.duration * base) if stream.duration else (
            container.duration or 0) / 1e6
        container.seek(int(max(0.0, length - TAIL_S) / base), stream=stream, backward=True)
        last = None
        for last in container.decode(stream):  # noqa: B007 — we want the final frame
            pass
        if last is None:
            raise ValueError("no frame to continue from")
        out = io.BytesIO()
        last.to_image().save(out, "JPEG", quality=92)
        return out.getvalue()
