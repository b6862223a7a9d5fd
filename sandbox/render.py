"""Real H.264 MP4s whose content follows the request.

Every frame shows the prompt's first words, the scene index and a frame counter a person can
read, plus a machine-readable strip along the top edge (16 blocks: frame number; 8 blocks: scene
index; 16x16 luma blocks, aligned to macroblocks) so a test can check continuity and cuts after
H.264 compression. An extension remuxes its parent's packets unchanged and encodes only the new
segment with the same encoder settings. A flash frame is a full-white last frame. A clip that
has sound (the request asked for it, or the model always makes it) carries an AAC soundtrack:
a quiet 440 Hz tone, one second per second of video.

Speed: each scene's frame is drawn once with Pillow and converted to YUV once; per frame only
the counter strip and digits change (numpy), so encoding dominates (libx264 ultrafast).
"""

import hashlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

FPS = 24
BLOCK = 16
FRAME_BITS = 16
SCENE_BITS = 8
# keyframes every 2 s, as providers deliver: inspection seeks instead of decoding from 0
_X264 = {"preset": "ultrafast", "tune": "zerolatency", "crf": "30", "bframes": "0",
         "x264-params": "keyint=48:min-keyint=48:scenecut=0"}
_DIGIT_CACHE: dict[int, dict[str, np.ndarray]] = {}
RATE = 48000
CHUNK = 1024


@dataclass(frozen=True)
class Shot:
    """One scene of the render: label text and whole frames."""

    text: str
    frames: int


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, TypeError):  # Pillow without FreeType
        return ImageFont.load_default()


def _colour(text: str, scene: int) -> tuple[int, int, int]:
    digest = hashlib.sha256(f"{scene}:{text}".encode()).digest()
    return (40 + digest[0] % 140, 40 + digest[1] % 140, 40 + digest[2] % 140)


def _scene_yuv(width: int, height: int, text: str, scene: int) -> np.ndarray:
    image = Image.new("RGB", (width, height), _colour(text, scene))
    draw = ImageDraw.Draw(image)
    size = max(12, height // 18)
    words = " ".join(text.split()[:8])
    draw.text((width // 20, height // 3), words, fill=(255, 255, 255), font=_font(size))
    draw.text((width // 20, height // 3 + int(size * 1.6)), f"scene {scene}",
              fill=(255, 255, 200), font=_font(size))
    frame = av.VideoFrame.from_image(image).reformat(format="yuv420p")
    return frame.to_ndarray()


def _digits(size: int) -> dict[str, np.ndarray]:
    if size not in _DIGIT_CACHE:
        glyphs = {}
        for ch in "0123456789f ":
            img = Image.new("L", (size * 2 // 3, size), 16)
            ImageDraw.Draw(img).text((0, 0), ch, fill=235, font=_font(size - 2))
            glyphs[ch] = np.asarray(img)
        _DIGIT_CACHE[size] = glyphs
    return _DIGIT_CACHE[size]


def _stamp(yuv: np.ndarray, width: int, height: int, frame: int, scene: int) -> None:
    """Write the barcode strip and the readable counter into the luma plane, in place."""
    bits = [(frame >> i) & 1 for i in range(FRAME_BITS)] + [(scene >> i) & 1
                                                             for i in range(SCENE_BITS)]
    for i, bit in enumerate(bits):
        x = i * BLOCK
        if x + BLOCK <= width:
            yuv[0:BLOCK, x:x + BLOCK] = 235 if bit else 16
    size = max(12, height // 20)
    glyphs = _digits(size)
    x, y = width // 20, height - 2 * size
    for ch in f"f {frame:05d}":
        glyph = glyphs[ch]
        gh, gw = glyph.shape
        if y + gh <= height and x + gw <= width:
            yuv[y:y + gh, x:x + gw] = glyph
        x += gw


def read_strip(luma: np.ndarray) -> tuple[int, int]:
    """(frame, scene) decoded from a frame's luma plane (what tests use to check continuity)."""
    values = [luma[4:BLOCK - 4, i * BLOCK + 4:(i + 1) * BLOCK - 4].mean() > 125
              for i in range(FRAME_BITS + SCENE_BITS)]
    frame = sum(int(b) << i for i, b in enumerate(values[:FRAME_BITS]))
    scene = sum(int(b) << i for i, b in enumerate(values[FRAME_BITS:]))
    return frame, scene


def _frames(width: int, height: int, shots: list[Shot], first_frame: int, first_scene: int,
            flash_last: bool):
    total = sum(s.frames for s in shots)
    index = 0
    for offset, shot in enumerate(shots):
        base = _scene_yuv(width, height, shot.text, first_scene + offset)
        for _ in range(shot.frames):
            yuv = base.copy()
            if flash_last and index == total - 1:
                yuv[:height] = 235
                yuv[height:] = 128
            else:
                _stamp(yuv, width, height, first_frame + index, first_scene + offset)
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
            first_scene: int, flash_last: bool, audio: bool = False) -> None:
    with av.open(str(out), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS, options=dict(_X264))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        sound = container.add_stream("aac", rate=RATE, layout="mono") if audio else None
        for frame in _frames(width, height, shots, first_frame, first_scene, flash_last):
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
           parent: Path | None = None, audio: bool = False) -> Path:
    """Write an MP4 at `out`, atomically, with a soundtrack when `audio`. With a parent: its
    packets, then the new shots, encoded at the parent's size with frame numbers and scene
    indexes continuing."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    if parent is None:
        _encode(tmp, width, height, shots, 0, 0, flash_last, audio)
    else:
        width, height, first_frame, first_scene = _tail(parent)
        segment = out.with_name(out.name + ".segment")
        _encode(segment, width, height, shots, first_frame, first_scene, flash_last, audio)
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
