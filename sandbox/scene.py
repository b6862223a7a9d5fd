"""One shot's frames as a person sees them: the picture, the camera's move over it, the caption.

The caption band (bottom) holds the whole prompt wrapped to the frame (at most 8 lines; a font
that shrinks first, an ellipsis only past that), the model, the size and the scene. The picture
is the input image as sent, fitted into the frame (letterboxed, never cropped, so a wrong crop
shows), or a gridded colour card. A move is a window over the picture that zooms, pans or tilts
over the shot; what lies beyond the picture is a dark margin. The top STRIP_ROWS rows stay
flat, whatever the picture does, for the machine-readable strip render.py writes there.

Speed: picture and caption are drawn once with Pillow and converted to YUV once. A still shot
then costs one copy per frame; a moving one takes a window of the YUV planes every MOVE_EVERY
frames (numpy slicing; swscale when it zooms) and lays the band over it with a shift and an add.
"""

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sandbox.moves import Move

STRIP_ROWS = 32  # two macroblock rows: the strip's and a guard row beneath it
MAX_LINES = 8
# the caption band keeps a quarter of the picture: luma = (picture >> 2) + ink, where ink is
# _INK_DARK on the band and up to _INK_TEXT under a letter (never past 255); chroma fades to grey
_INK_DARK, _INK_TEXT, _INK_META = 12, 190, 150
_MARGIN_Y, _MARGIN_UV = 37, 128  # what a move reveals beyond the picture: dark grey
# a move's full extent over its shot, per unit of strength: zoom factor, travel (frame share)
_ZOOM_PER_UNIT, _TRAVEL_PER_UNIT = 0.06, 0.05
MOVE_EVERY = 2  # a moving picture advances every 2nd frame: half the scaling and encoding
_DIGIT_CACHE: dict[int, dict[str, np.ndarray]] = {}


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, TypeError):  # Pillow without FreeType
        return ImageFont.load_default()


def _colour(text: str, scene: int) -> tuple[int, int, int]:
    digest = hashlib.sha256(f"{scene}:{text}".encode()).digest()
    return (40 + digest[0] % 140, 40 + digest[1] % 140, 40 + digest[2] % 140)


def wrap_lines(text: str, font, width: float, limit: int | None = None) -> list[str]:
    """`text` broken at spaces into lines no wider than `width` (a word wider than a line is
    cut between letters); only the first `limit` lines when given."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        if limit is not None and len(lines) >= limit:
            return lines[:limit]
        candidate = f"{line} {word}" if line else word
        if font.getlength(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        while font.getlength(word) > width and len(word) > 1:
            cut = max(1, next(i for i in range(len(word), 0, -1)
                              if font.getlength(word[:i]) <= width or i == 1))
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    if line:
        lines.append(line)
    return lines[:limit]


def fit_lines(text: str, width: int, size: int) -> tuple[list[str], int]:
    """The prompt's lines and font size: the size shrinks (to 60%) before lines are cut."""
    smallest = max(12, size * 3 // 5)
    lines = wrap_lines(text, _font(size), width, MAX_LINES + 1)
    if len(lines) <= MAX_LINES:
        return lines, size
    fits, low, high = None, smallest, size - 1  # fewer lines as the size shrinks: bisect
    while low <= high:
        trial = (low + high) // 2
        lines = wrap_lines(text, _font(trial), width, MAX_LINES + 1)
        if len(lines) <= MAX_LINES:
            fits, low = (lines, trial), trial + 1
        else:
            high = trial - 1
    if fits is not None:
        return fits
    font = _font(smallest)
    lines = wrap_lines(text, font, width, MAX_LINES)
    last = lines[-1]
    while last and font.getlength(last + " …") > width:
        last = last[:-1]
    lines[-1] = last.rstrip() + " …"
    return lines, smallest


@dataclass(frozen=True)
class _Caption:
    """The band's first row and its ink (luma, band rows x width); the counter's place."""

    top: int
    ink: np.ndarray
    counter: tuple[int, int, int]  # x, y, glyph height


def _caption(width: int, height: int, text: str, meta: str) -> _Caption:
    short = min(width, height)
    margin = max(8, short // 30)
    size = max(14, short // 22)
    small = max(12, size * 4 // 5)
    lines, size = fit_lines(" ".join(text.split()), width - 2 * margin, size)
    step = round(size * 1.25)
    needed = margin + round(small * 1.4) + len(lines) * step + margin // 2 + small + margin
    top = max(STRIP_ROWS, (height - needed) // 4 * 4)
    cover = Image.new("L", (width, height - top), 0)
    draw = ImageDraw.Draw(cover)
    draw.text((margin, margin), meta, fill=round(255 * _INK_META / _INK_TEXT),
              font=_font(small))
    y = margin + round(small * 1.4)
    font = _font(size)
    for line in lines:
        draw.text((margin, y), line, fill=255, font=font)
        y += step
    ink = _INK_DARK + (np.asarray(cover, np.uint16) * (_INK_TEXT - _INK_DARK) + 127) // 255
    return _Caption(top, ink.astype(np.uint8), (margin, height - margin - small, small))


def _picture(width: int, height: int, text: str, scene: int,
             image: bytes | Path | None) -> Image.Image:
    """The frame's picture before any move: the input image fitted in, or a gridded card."""
    if image is not None:
        source = Image.open(io.BytesIO(image) if isinstance(image, bytes) else image)
        source = source.convert("RGB")
        scale = min(width / source.width, height / source.height)
        if abs(source.width / source.height / (width / height) - 1) <= 0.01:
            scale = max(width / source.width, height / source.height)  # rounding, not a crop
        size = (max(1, round(source.width * scale)), max(1, round(source.height * scale)))
        canvas = Image.new("RGB", (width, height), (20, 20, 20))
        canvas.paste(source.resize(size, Image.Resampling.LANCZOS),
                     ((width - size[0]) // 2, (height - size[1]) // 2))
        return canvas
    colour = _colour(text, scene)
    canvas = Image.new("RGB", (width, height), colour)
    draw = ImageDraw.Draw(canvas)
    lighter = tuple(min(255, c + 36) for c in colour)
    step = max(16, min(width, height) // 6)
    for x in range(width // 2 % step, width, step):
        draw.line([(x, 0), (x, height)], fill=lighter, width=max(1, step // 40))
    for y in range(height // 2 % step, height, step):
        draw.line([(0, y), (width, y)], fill=lighter, width=max(1, step // 40))
    r = min(width, height) // 5
    draw.ellipse([width // 2 - r, height // 2 - r, width // 2 + r, height // 2 + r],
                 outline=lighter, width=max(2, step // 20))
    return canvas


def _yuv(image: Image.Image) -> np.ndarray:
    return av.VideoFrame.from_image(image).reformat(format="yuv420p").to_ndarray()


def _planes(yuv: np.ndarray, width: int, height: int) -> tuple[np.ndarray, ...]:
    """Views of the Y, U and V planes of a (height * 3 / 2, width) yuv420p array."""
    flat = yuv.reshape(-1)
    luma, quarter = width * height, (width // 2) * (height // 2)
    return (flat[:luma].reshape(height, width),
            flat[luma:luma + quarter].reshape(height // 2, width // 2),
            flat[luma + quarter:luma + 2 * quarter].reshape(height // 2, width // 2))


def _dress(yuv: np.ndarray, width: int, height: int, caption: _Caption) -> None:
    """Lay the caption band and the strip's flat band over a picture, in place."""
    y, u, v = _planes(yuv, width, height)
    band = y[caption.top:]
    np.right_shift(band, 2, out=band)
    band += caption.ink
    for chroma in (u, v):
        part = chroma[caption.top // 2:]
        np.right_shift(part, 2, out=part)
        part += 96
        chroma[:STRIP_ROWS // 2] = 128
    y[:STRIP_ROWS] = 16


def _window(move: Move, t: float, width: int, height: int) -> tuple[float, float, float, float]:
    """The part of the picture (x, y, w, h) the camera sees at `t` in [0, 1] of the shot."""
    grow = 1 + _ZOOM_PER_UNIT * abs(move.zoom) * t
    zoom = grow if move.zoom >= 0 else 1 / grow
    w, h = width / zoom, height / zoom
    cx = width / 2 + _TRAVEL_PER_UNIT * move.pan * t * width
    cy = height / 2 - _TRAVEL_PER_UNIT * move.tilt * t * height
    return cx - w / 2, cy - h / 2, w, h


class Scene:
    """One shot's frames: drawn once; per frame a window of the picture when it moves."""

    def __init__(self, width: int, height: int, text: str, frames: int, move: Move | None,
                 scene: int, meta: str, image: bytes | Path | None):
        self.width, self.height, self.frames = width, height, frames
        self.move = move if move else None
        self.cached: tuple[int, np.ndarray] | None = None
        self.caption = _caption(width, height, text, meta)
        picture = _yuv(_picture(width, height, text, scene, image))
        if self.move is None:
            _dress(picture, width, height, self.caption)
            self.still = picture
            return
        self.picture = picture

    def frame(self, index: int) -> np.ndarray:
        """A fresh yuv420p array of the shot's `index`-th frame, dressed, without the strip."""
        if self.move is None:
            return self.still.copy()
        key = index - index % MOVE_EVERY
        if self.cached is None or self.cached[0] != key:
            self.cached = (key, self._moved(key))
        return self.cached[1].copy()

    def count(self, yuv: np.ndarray, frame: int) -> None:
        """Write the readable frame counter into a frame's luma plane, in place."""
        x, y, size = self.caption.counter
        glyphs = _digits(size)
        for ch in f"f {frame:05d}":
            glyph = glyphs[ch]
            gh, gw = glyph.shape
            if y + gh <= self.height and x + gw <= self.width:
                yuv[y:y + gh, x:x + gw] = glyph
            x += gw

    def _moved(self, index: int) -> np.ndarray:
        """The camera's window at this frame, scaled to the frame; what lies beyond the
        picture (a pull-out, a pan past its edge) is a dark margin."""
        width, height = self.width, self.height
        t = index / (self.frames - 1) if self.frames > 1 else 0.0
        x, y, w, h = _window(self.move, t, width, height)
        scale = width / w
        # the part of the picture inside the window, and where it lands in the frame
        sx0, sy0 = _even(max(0.0, x)), _even(max(0.0, y))
        sx1, sy1 = _even(min(width, x + w)), _even(min(height, y + h))
        dx0, dy0 = max(0, _even((sx0 - x) * scale)), max(0, _even((sy0 - y) * scale))
        dw = min(_even((sx1 - sx0) * scale), width - dx0)
        dh = min(_even((sy1 - sy0) * scale), height - dy0)
        out = np.empty((height * 3 // 2, width), np.uint8)
        oy, ou, ov = _planes(out, width, height)
        if (dx0, dy0, dw, dh) != (0, 0, width, height):
            oy[:] = _MARGIN_Y
            ou[:] = ov[:] = _MARGIN_UV
        if sx1 > sx0 and sy1 > sy0 and dw > 0 and dh > 0:
            py, pu, pv = _planes(self.picture, width, height)
            sw, sh = sx1 - sx0, sy1 - sy0
            crop = np.empty((sh * 3 // 2, sw), np.uint8)
            cy, cu, cv = _planes(crop, sw, sh)
            cy[:] = py[sy0:sy1, sx0:sx1]
            cu[:] = pu[sy0 // 2:sy1 // 2, sx0 // 2:sx1 // 2]
            cv[:] = pv[sy0 // 2:sy1 // 2, sx0 // 2:sx1 // 2]
            if (sw, sh) != (dw, dh):
                crop = av.VideoFrame.from_ndarray(crop, format="yuv420p").reformat(
                    width=dw, height=dh, interpolation="BILINEAR").to_ndarray()
                cy, cu, cv = _planes(crop, dw, dh)
            oy[dy0:dy0 + dh, dx0:dx0 + dw] = cy
            ou[dy0 // 2:(dy0 + dh) // 2, dx0 // 2:(dx0 + dw) // 2] = cu
            ov[dy0 // 2:(dy0 + dh) // 2, dx0 // 2:(dx0 + dw) // 2] = cv
        _dress(out, width, height, self.caption)
        return out


def _even(value: float) -> int:
    return round(value / 2) * 2


def _digits(size: int) -> dict[str, np.ndarray]:
    if size not in _DIGIT_CACHE:
        glyphs = {}
        for ch in "0123456789f ":
            img = Image.new("L", (size * 2 // 3, size), 16)
            ImageDraw.Draw(img).text((0, 0), ch, fill=235, font=_font(size - 2))
            glyphs[ch] = np.asarray(img)
        _DIGIT_CACHE[size] = glyphs
    return _DIGIT_CACHE[size]
