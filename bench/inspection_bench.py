"""Inspection: tasks.inspection.inspect_file against the method it replaced (kept below as the
baseline: a seek to the last keyframe before the final 1.5 s, every frame after it decoded and
the last six kept), on sandbox-rendered 1080p clips of 5 s and 10 s, with and without a flash
frame. The two must give the same Inspection; the figures are the time and the CPU per clip."""

import json
import statistics
import tempfile
import time
from collections import deque
from fractions import Fraction
from pathlib import Path

import av

from models import Inspection
from sandbox.render import FPS, Shot, render
from tasks.inspection import FLASH_JUMP, inspect_file

ROUNDS = 7


def inspect_baseline(source: str | Path) -> Inspection:
    """The inspection as it was before issue 22: every frame of the last 1.5 s and the GOP
    before it decoded."""
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(24)
        base = stream.time_base
        length = float(stream.duration * base) if stream.duration else (
            container.duration or 0) / 1e6
        stream.thread_type = "AUTO"
        container.seek(int(max(0.0, length - 1.5) / base), stream=stream, backward=True)
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
            neighbour_luma=reference, flash_frame=abs(last_luma - reference) > FLASH_JUMP,
            audio=bool(container.streams.audio))


def timed(fn, path: Path) -> tuple[float, float]:
    """(wall, CPU of every thread of this process) seconds: a batch pays the CPU."""
    start, cpu = time.perf_counter(), time.process_time()
    fn(path)
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        clips = {}
        for seconds in (5, 10):
            for flash in (False, True):
                name = f"{seconds}s{' flash' if flash else ''}"
                clips[name] = render(Path(tmp) / f"{seconds}-{flash}.mp4", 1920, 1080,
                                     [Shot("an inspection bench clip", seconds * FPS)],
                                     flash_last=flash)
        figures = {}
        print("inspection of a 1080p clip, best of "
              f"{ROUNDS} interleaved rounds (lower is better)")
        for name, path in clips.items():
            if inspect_file(path) != inspect_baseline(path):
                raise SystemExit(f"{name}: the new inspection differs from the baseline")
            old, new = [], []
            for _ in range(ROUNDS):  # interleaved: both see the same machine
                old.append(timed(inspect_baseline, path))
                new.append(timed(inspect_file, path))
            base, ours = min(t for t, _ in old), min(t for t, _ in new)
            base_cpu, cpu = min(c for _, c in old), min(c for _, c in new)
            figures[name] = {"baseline_ms": round(base * 1e3, 1), "new_ms": round(ours * 1e3, 1),
                             "ratio": round(ours / base, 3),
                             "baseline_cpu_ms": round(base_cpu * 1e3, 1),
                             "cpu_ms": round(cpu * 1e3, 1), "cpu_ratio": round(cpu / base_cpu, 3)}
            print(f"  {name:<9} baseline {base * 1e3:6.1f} ms  new {ours * 1e3:6.1f} ms  "
                  f"{ours / base:5.2f}x   CPU {base_cpu * 1e3:6.1f} -> {cpu * 1e3:6.1f} ms  "
                  f"{cpu / base_cpu:5.2f}x")
    print(json.dumps({"inspection": figures}, sort_keys=True))


if __name__ == "__main__":
    main()
