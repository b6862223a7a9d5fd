"""The sandbox's cost: CPU seconds per rendered second by resolution, against PyAV encoding
the same number of plain frames (the floor); and its request throughput on protocol calls,
against its own /_admin/health (the HTTP stack's floor) on the same server. Ends with one line
of JSON."""

import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import av
import httpx
import numpy as np

from sandbox.render import FPS, Shot, render
from tests.sandbox_process import start_sandbox

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160)}
SECONDS = {"720p": 5, "1080p": 5, "4k": 2}


def _floor(path: Path, width: int, height: int, frames: int) -> None:
    """Encode flat frames with the same codec settings: what any MP4 of this size costs."""
    yuv = np.full((height * 3 // 2, width), 128, np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS, options={
            "preset": "ultrafast", "tune": "zerolatency", "crf": "30", "bframes": "0"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def render_cost() -> dict[str, dict]:
    print("sandbox render: CPU seconds per rendered second (lower is better)")
    print(f"  {'size':<6} {'render':>8} {'floor':>8} {'ratio':>6}")
    figures: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (width, height) in SIZES.items():
            seconds = SECONDS[name]
            start = time.process_time()
            render(Path(tmp) / f"{name}.mp4", width, height,
                   [Shot("Aerial shot of a coastal city at golden hour", seconds * FPS)])
            ours = (time.process_time() - start) / seconds
            start = time.process_time()
            _floor(Path(tmp) / f"{name}-floor.mp4", width, height, seconds * FPS)
            floor = (time.process_time() - start) / seconds
            print(f"  {name:<6} {ours:8.3f} {floor:8.3f} {ours / floor:6.2f}x")
            figures[name] = {"cpu_s_per_s": round(ours, 4), "floor_cpu_s_per_s": round(floor, 4),
                             "ratio": round(ours / floor, 3)}
    return figures


def throughput(requests: int = 600, workers: int = 8) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        server = start_sandbox(Path(tmp), "--calm")
        try:
            with httpx.Client(base_url=server.url, timeout=30, headers={
                    "Authorization": "Bearer bench"}) as client:
                video = client.post("/openai/v1/videos", json={"prompt": "bench"}).json()

                def rate(path: str) -> float:
                    start = time.perf_counter()
                    with ThreadPoolExecutor(workers) as pool:
                        list(pool.map(lambda _: client.get(path).raise_for_status(),
                                      range(requests)))
                    return requests / (time.perf_counter() - start)

                rate("/_admin/health")  # warm up
                floor = rate("/_admin/health")
                status = rate(f"/openai/v1/videos/{video['id']}")
        finally:
            server.stop()
    print("sandbox throughput: requests per second, 8 client threads (higher is better)")
    print(f"  status poll {status:8.0f}/s  health floor {floor:8.0f}/s  "
          f"ratio {status / floor:5.2f}")
    return {"status_per_s": round(status), "health_per_s": round(floor),
            "ratio": round(status / floor, 3)}


def main() -> None:
    render = render_cost()
    print(json.dumps({"sandbox": {"render": render, "throughput": throughput()}},
                     sort_keys=True))


if __name__ == "__main__":
    main()
