"""Cropping a 24-megapixel JPEG to each ratio, against Pillow decoding and re-encoding the same
image alone (the floor any tool pays), and what JPEG draft mode saves when the crop is
downscaled (Sora's exact 1280x720 input). The floor is measured again beside each case (the two
alternate, best of ROUNDS each), so a ratio compares two figures from the same moments."""

import io
import json
import time

import numpy as np
from PIL import Image

from providers.catalog import load_catalog
from tasks.image_files import prepare_image_bytes


def source() -> bytes:
    y, x = np.mgrid[0:4000, 0:6000]
    rng = np.random.default_rng(0)
    rgb = np.stack([(x / 6000 * 255), (y / 4000 * 255), ((x + y) / 10000 * 255)], axis=-1)
    rgb = (rgb + rng.normal(0, 12, rgb.shape)).clip(0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=90)
    return out.getvalue()


ROUNDS = 3


def timed(fn, rounds: int = ROUNDS) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def beside(floor, fn) -> tuple[float, float]:
    """(floor, fn) best times, each round running both."""
    floors, times = [], []
    for _ in range(ROUNDS):
        floors.append(timed(floor, 1))
        times.append(timed(fn, 1))
    return min(floors), min(times)


def main() -> None:
    data = source()
    catalog = load_catalog()

    def floor():
        image = Image.open(io.BytesIO(data))
        image.load()
        image.save(io.BytesIO(), "JPEG", quality=92)

    base = timed(floor)
    print(f"crop of a 24 MP JPEG ({len(data) / 1e6:.1f} MB); floor = decode + encode "
          f"{base * 1e3:.0f} ms (lower is better)")
    figures: dict[str, dict] = {}
    for model, resolution in (("kling-v3", "1080p"), ("sora-2", "720p")):
        row = catalog.row(model)
        for aspect in row.image.aspect_ratios:
            floor_s, ours = beside(floor, lambda r=row, a=aspect, res=resolution:
                                   prepare_image_bytes(data, r, aspect=a, resolution=res))
            figures[f"{model} {aspect}"] = {"floor_ms": round(floor_s * 1e3),
                                            "crop_ms": round(ours * 1e3),
                                            "ratio": round(ours / floor_s, 3)}
            print(f"  {model:<9} {aspect:<5} {ours * 1e3:7.0f} ms  floor {floor_s * 1e3:5.0f} ms"
                  f"  {ours / floor_s:5.2f}x floor")
    row = catalog.row("sora-2")
    with_draft, without = beside(
        lambda: prepare_image_bytes(data, row, aspect="16:9", resolution="720p"),
        lambda: prepare_image_bytes(data, row, aspect="16:9", resolution="720p", draft=False))
    print(f"  draft mode, sora-2 16:9 720p: {with_draft * 1e3:.0f} ms with, "
          f"{without * 1e3:.0f} ms without: {without / with_draft:.1f}x faster")
    print(json.dumps({"crop": figures, "draft_speedup": round(without / with_draft, 2),
                      "worst_ratio": max(f["ratio"] for f in figures.values())},
                     sort_keys=True))


if __name__ == "__main__":
    main()
