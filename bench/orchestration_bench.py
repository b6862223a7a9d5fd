"""Orchestration cost per clip — everything but the provider's generation time and the media
bytes: Prefect tasks, journal, ledger, archive, inspection — against a bare asyncio + httpx script
doing the same submit, poll and download on the same sandbox (time_scale 0.001, shared
rendering, so generation and encoding are ~0). Also the share of generation time lost to
detection delay at the seed's latencies (from the polling simulation)."""

import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from sandbox.knobs import KLING_ACCESS_KEY
from tests.sandbox.conftest import kling_token
from tests.sandbox_process import start_sandbox

CLIPS = 10


async def bare(url: str, out: Path) -> None:
    headers = {"Authorization": f"Bearer {kling_token(KLING_ACCESS_KEY)}"}
    async with httpx.AsyncClient(base_url=url + "/kling", headers=headers, timeout=30) as client:
        for i in range(CLIPS):
            task = (await client.post("/v1/videos/text2video", json={
                "model_name": "kling-v3", "prompt": f"bare {i} {uuid.uuid4().hex}",
                "duration": "5", "mode": "pro"})).json()["data"]
            while True:
                body = (await client.get(f"/v1/videos/text2video/{task['task_id']}")).json()
                if body["data"]["task_status"] == "succeed":
                    break
                await asyncio.sleep(0.01)
            video = body["data"]["task_result"]["videos"][0]["url"]
            async with client.stream("GET", video) as response:
                with (out / f"{i}.mp4").open("wb") as sink:
                    async for chunk in response.aiter_bytes():
                        sink.write(chunk)


def measure(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - wall) / CLIPS, (time.process_time() - cpu) / CLIPS


def main() -> None:
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    with tempfile.TemporaryDirectory() as tmp:
        server = start_sandbox(Path(tmp) / "sandbox", "--calm", "--shared-render")
        try:
            os.environ.update({"REELFLOW_HOME": str(Path(tmp) / "home"),
                               "REELFLOW_SANDBOX": server.url,
                               "REELFLOW_SANDBOX_TIME_SCALE": "0.001",
                               "REELFLOW_SUBSCRIPTIONS": "kling:standard"})
            from flows.generate import generate_clip
            from models import ClipRequest

            def run(n: int) -> None:
                for _ in range(n):
                    asyncio.run(generate_clip(ClipRequest(
                        prompt=f"bench {uuid.uuid4().hex}", duration=5)))

            run(1)  # the temporary Prefect server starts once, outside the measurement
            ours = measure(lambda: run(CLIPS))
            (Path(tmp) / "bare").mkdir()
            base = measure(lambda: asyncio.run(bare(server.url, Path(tmp) / "bare")))
        finally:
            server.stop()
    print(f"orchestration per clip ({CLIPS} Kling 5 s 1080p clips, generation ~0)")
    print(f"  generate_clip  wall {ours[0] * 1e3:7.0f} ms  CPU {ours[1] * 1e3:7.0f} ms")
    print(f"  bare httpx     wall {base[0] * 1e3:7.0f} ms  CPU {base[1] * 1e3:7.0f} ms")
    print(f"  ratio          wall {ours[0] / base[0]:6.1f}x     CPU {ours[1] / base[1]:6.1f}x")
    print("  detection delay at the seed's latencies: see `python -m bench polling` "
          "(adaptive ~5% of generation time vs ~1% for 1 s polling)")


if __name__ == "__main__":
    main()
