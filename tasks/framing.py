"""Crop geometry, pure: exact ratios with even sides, boxes around a focus point, fitting.

Exactness: for a target a:b (reduced), the crop is (a*n, b*n) with n even, so that both sides
are even (H.264 wants even frame sizes) and width * b == height * a holds exactly.
"""

import math

RATIOS: dict[str, tuple[int, int]] = {"16:9": (16, 9), "9:16": (9, 16), "1:1": (1, 1)}


def reduced(width: int, height: int) -> tuple[int, int]:
    g = math.gcd(width, height)
    return width // g, height // g


def nearest_ratio(width: int, height: int, allowed: tuple[str, ...]) -> str:
    """The allowed ratio closest to width:height, in log space (2:1 and 1:2 are as far from
    1:1); a tie goes to the ratio with the source's orientation."""
    ratio = math.log(width / height)

    def distance(name: str) -> tuple[float, bool]:
        target = math.log(RATIOS[name][0] / RATIOS[name][1])
        # ties (4:3 is as far from 16:9 as from 1:1) go to the source's own orientation
        return round(abs(ratio - target), 9), (target > 0) != (ratio > 0)

    return min(allowed, key=distance)


def largest_exact(width: int, height: int, a: int, b: int, even: bool = True
                  ) -> tuple[int, int]:
    """The largest (a*n, b*n) inside width x height; n even when `even` (both sides even)."""
    a, b = reduced(a, b)
    n = min(width // a, height // b)
    if even and (a % 2 or b % 2):
        n -= n % 2
    if n <= 0:
        raise ValueError(f"{width}x{height} cannot hold a {a}:{b} crop")
    return a * n, b * n


def fit_within(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Scale an exact-ratio size down (keeping ratio and even sides) until it fits max_side."""
    if max(width, height) <= max_side:
        return width, height
    a, b = reduced(width, height)
    return largest_exact(max_side if a >= b else max_side * a // b,
                         max_side if b >= a else max_side * b // a, a, b)


def box_around(width: int, height: int, crop_w: int, crop_h: int,
               focus: tuple[float, float]) -> tuple[int, int, int, int]:
    """A crop_w x crop_h box centred on the focus (fractions), moved inside the image."""
    cx, cy = focus[0] * width, focus[1] * height
    left = min(max(round(cx - crop_w / 2), 0), width - crop_w)
    top = min(max(round(cy - crop_h / 2), 0), height - crop_h)
    return left, top, left + crop_w, top + crop_h


def asked_size(resolution: str, aspect: str) -> tuple[int, int]:
    """The frame size a request asked for: its resolution's short side at its aspect ratio."""
    short = {"720p": 720, "1080p": 1080, "4k": 2160}[resolution]
    a, b = RATIOS.get(aspect, RATIOS["16:9"])
    return (round(short * a / b), short) if a >= b else (short, round(short * b / a))
