"""Real H.264 MP4s whose content follows the request, drawn so a person can read them.

Every frame shows what scene.py draws: the whole prompt, the model, the size, the scene and a
frame counter on a band over the picture (the input image of an image-to-video request, else a
colour card), moved the way the camera was asked to move. Along the top edge, on its own flat
band, a machine-readable strip (16 blocks: frame number; 8 blocks: scene index; 16x16 luma
blocks, aligned to macroblocks) lets a test check continuity and cuts after H.264 compression,
also over a moving picture. An extension remuxes its parent's packets unchanged and encodes
only the new segment with the same encoder settings. A flash frame is a full-white last frame.
A clip that has sound (the request asked for it, or the model always makes it) carries an AAC
soundtrack: a quiet 440 Hz tone, one second per second of video.

Speed: each scene is drawn once (scene.py); per frame only the strip and digits change (numpy),
and a moving picture's window every other frame, so encoding dominates (libx264 ultrafast).
"""

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from sandbox.moves import Move
from sandbox.scene import Scene

FPS = 24
BLOCK = 16
FRAME_BITS = 16
SCENE_BITS = 8
# keyframes every 2 s, as providers deliver: inspection seeks instead of decoding from 0
_X264 = {"preset": "ultrafast", "tune": "zerolatency", "crf": "30", "bframes": "0",
         "x264-params": "keyint=48:min-keyint=48:scenecut=0"}
RATE = 48000
CHUNK = 1024


@dataclass(frozen=True)
class Shot:
    """One scene of the render: its prompt, whole frames and the camera move over them."""

    text: str
    frames: int
    move: Move | None = None


def _stamp(yuv: np.ndarray, width: int, frame: int, scene: int) -> None:
    """Write the barcode strip into the luma plane, in place."""
    bits = [(frame >> i) & 1 for i in range(FRAME_BITS)] + [(scene >> i) & 1
                                                             for i in range(SCENE_BITS)]
    for i, bit in enumerate(bits):
        x = i * BLOCK
        if x + BLOCK <= width:
            yuv[0:BLOCK, x:x + BLOCK] = 235 if bit else 16


def read_strip(luma: np.ndarray) -> tuple[int, int]:
    """(frame, scene) decoded from a frame's luma plane (what tests use to check continuity)."""
    values = [luma[4:BLOCK - 4, i * BLOCK + 4:(i + 1) * BLOCK - 4].mean() > 125
              for i in range(FRAME_BITS + SCENE_BITS)]
    frame = sum(int(b) << i for i, b in enumerate(values[:FRAME_BITS]))
    scene = sum(int(b) << i for i, b in enumerate(values[FRAME_BITS:]))
    return frame, scene


def _frames(width: int, height: int, shots: list[Shot], first_frame: int, first_scene: int,
            flash_last: bool, label: str, image: bytes | Path | None):
    total = sum(s.frames for s in shots)
    scenes = first_scene + len(shots)
    index = 0
    for offset, shot in enumerate(shots):
        number = first_scene + offset
        meta = f"{label or 'sandbox'} · {width}x{height} · scene {number + 1}/{scenes}"
        scene = Scene(width, height, shot.text, shot.frames, shot.move, number, meta,
                      image if offset == 0 else None)
        for at in range(shot.frames):
            if flash_last and index == total - 1:
                yuv = np.empty((height * 3 // 2, width), np.uint8)
                yuv[:height] = 235
                yuv[height:] = 128
            else:
                yuv = scene.frame(at)
                _stamp(yuv, width, first_frame + index, number)
                scene.count(yuv, first_frame + index)
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.pts = index
            frame.time_base = Fraction(1, FPS)
            yield frame
            index += 1


def _tone(seconds: float):
    """The soundtrack: mono float frames of a quiet tone, `seconds` long."""
    total = round(seconds * RATE)
    for start in range(0, total, CHUNK):
        t = (np.arange(start, min(start + CHUNK, total)) / RATE).astype(np.float32)
        frame = av.AudioFrame.from_ndarray((0.1 * np.sin(2 * np.pi * 440 * t)).reshape(1, -1),
                                           format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = RATE, start, Fraction(1, RATE)
        yield frame


def _encode(out: Path, width: int, height: int, shots: list[Shot], first_frame: int,
            first_scene: int, flash_last: bool, audio: bool = False, label: str = "",
            image: bytes | Path | None = None) -> None:
    with av.open(str(out), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS, options=dict(_X264))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        sound = container.add_stream("aac", rate=RATE, layout="mono") if audio else None
        for frame in _frames(width, height, shots, first_frame, first_scene, flash_last,
                             label, image):
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if sound is not None:
            for chunk in _tone(sum(s.frames for s in shots) / FPS):
                container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))


def _concat(parts: list[Path], out: Path) -> None:
    """Remux MP4s with identical codec settings into one, without re-encoding; their
    soundtracks too when every part has one."""
    sources = [av.open(str(p)) for p in parts]
    try:
        streams = [src.streams.video[0] for src in sources]
        extradata = {bytes(s.codec_context.extradata or b"") for s in streams}
        if len(extradata) != 1:
            raise ValueError("parts were encoded with different settings")
        sounds = [src.streams.audio[0] for src in sources if src.streams.audio]
        with av.open(str(out), "w", format="mp4") as container:
            targets = [container.add_stream_from_template(streams[0])]
            tracks = [[s] for s in streams]
            if len(sounds) == len(sources):
                targets.append(container.add_stream_from_template(sounds[0]))
                tracks = [[v, a] for v, a in zip(streams, sounds, strict=True)]
            offsets = [0] * len(targets)  # per track, in its own time base
            for inputs in tracks:
                ends, shift = list(offsets), {}
                for packet in inputs[0].container.demux(*inputs):
                    if packet.size == 0:
                        continue
                    track = inputs.index(packet.stream)
                    # AAC starts with priming at a negative dts: it goes after the last end too
                    shift.setdefault(track, offsets[track] - min(0, packet.dts))
                    packet.pts += shift[track]
                    packet.dts += shift[track]
                    ends[track] = max(ends[track], packet.pts + (packet.duration or 0))
                    packet.stream = targets[track]
                    container.mux(packet)
                offsets = ends
    finally:
        for source in sources:
            source.close()


def _tail(parent: Path) -> tuple[int, int, int, int]:
    """(width, height, next frame number, next scene index) of a clip to continue."""
    with av.open(str(parent)) as source:
        stream = source.streams.video[0]
        last = None
        for last in source.decode(stream):  # noqa: B007 - keep the final frame
            pass
        if last is None:
            raise ValueError(f"{parent} has no frames")
        frame, scene = read_strip(last.to_ndarray(format="gray"))
        return last.width, last.height, frame + 1, scene + 1


def render(out: Path, width: int, height: int, shots: list[Shot], *, flash_last: bool = False,
           parent: Path | None = None, audio: bool = False, label: str = "",
           image: bytes | Path | None = None) -> Path:
    """Write an MP4 at `out`, atomically, with a soundtrack when `audio`. `label` (the model)
    is printed on every frame; `image` (bytes or a file), the input of an image-to-video
    request, is the first shot's picture. With a parent: its packets, then the new shots,
    encoded at the parent's size with frame numbers and scene indexes continuing."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    if parent is None:
        _encode(tmp, width, height, shots, 0, 0, flash_last, audio, label, image)
    else:
        width, height, first_frame, first_scene = _tail(parent)
        segment = out.with_name(out.name + ".segment")
        _encode(segment, width, height, shots, first_frame, first_scene, flash_last, audio,
                label, image)
        _concat([parent, segment], tmp)
        segment.unlink()
    tmp.replace(out)
    return out


def probe(path: Path) -> dict:
    """Duration (s), frame count, size and fps of an MP4, by decoding its frames."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return {
            "frames": frames,
            "seconds": frames / FPS,
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "codec": stream.codec_context.name,
        }
