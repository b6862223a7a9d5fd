"""Orchestration cost per clip — everything but the provider's generation time and the media
bytes: Prefect tasks, journal, ledger, archive, inspection — against a bare asyncio + httpx script
doing the same submit, poll and download on the same sandbox (time_scale 0.001, shared
rendering, so generation and encoding are ~0), and against a minimal Prefect flow of five
trivial tasks (the floor Prefect itself sets). Each single clip is its own flow run; a batch's
rows share one (two task runs a row). The Prefect server's CPU is counted beside the worker's:
the temporary server is started here, as a process whose CPU /proc reports. Ends with one line
of JSON."""

import asyncio
import json
import os
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from prefect import flow, task

from sandbox.knobs import KLING_ACCESS_KEY
from tests.sandbox.conftest import kling_token
from tests.sandbox_process import start_sandbox

CLIPS = 10
BATCH_ROWS = 50


@task
async def _trivial(i: int) -> int:
    return i


@flow
async def five_tasks() -> None:
    """The floor: a flow run of five trivial tasks, what a single clip's run is shaped like."""
    for i in range(5):
        await _trivial(i)


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


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(fn, n: int, server: int | None = None) -> tuple[float, float, float]:
    """(wall, worker CPU, server CPU) per item, in seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    served = _cpu_s(server) if server else 0.0
    fn()
    served = _cpu_s(server) - served if server else 0.0
    return ((time.perf_counter() - wall) / n, (time.process_time() - cpu) / n, served / n)


def main() -> None:
    from prefect.server.api.server import SubprocessASGIServer

    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    with tempfile.TemporaryDirectory() as tmp:
        server = start_sandbox(Path(tmp) / "sandbox", "--calm", "--shared-render")
        prefect = SubprocessASGIServer()
        prefect.start()
        os.environ["PREFECT_API_URL"] = prefect.api_url
        pid = prefect.server_process.pid
        try:
            os.environ.update({"REELFLOW_HOME": str(Path(tmp) / "home"),
                               "REELFLOW_SANDBOX": server.url,
                               "REELFLOW_SANDBOX_TIME_SCALE": "0.001",
                               "REELFLOW_SUBSCRIPTIONS": "kling:standard"})
            from flows.batch import run_batch
            from flows.generate import generate_clip
            from models import ClipRequest
            from models.batch import BatchRequest

            def run(n: int) -> None:
                for _ in range(n):
                    asyncio.run(generate_clip(ClipRequest(
                        prompt=f"bench {uuid.uuid4().hex}", duration=5)))

            manifest = Path(tmp) / "rows.jsonl"
            manifest.write_text("\n".join(json.dumps(
                {"prompt": f"bench row {i} {uuid.uuid4().hex}", "duration": 5})
                for i in range(BATCH_ROWS)))
            run(1)  # imports and first connections, outside the measurement
            ours = measure(lambda: run(CLIPS), CLIPS, pid)
            batch = measure(lambda: asyncio.run(run_batch(BatchRequest(manifest=str(manifest)))),
                            BATCH_ROWS, pid)
            floor = measure(lambda: [asyncio.run(five_tasks()) for _ in range(CLIPS)], CLIPS, pid)
            (Path(tmp) / "bare").mkdir()
            base = measure(lambda: asyncio.run(bare(server.url, Path(tmp) / "bare")), CLIPS)
        finally:
            server.stop()
            prefect.stop()
    print(f"orchestration per clip (Kling 5 s 1080p clips, generation ~0; {CLIPS} single "
          f"clips, a batch of {BATCH_ROWS} rows)")
    for name, (wall, cpu, served) in (("generate_clip", ours), ("batch row", batch),
                                      ("5-task flow", floor), ("bare httpx", base)):
        print(f"  {name:14s} wall {wall * 1e3:7.0f} ms  worker CPU {cpu * 1e3:6.0f} ms  "
              f"server CPU {served * 1e3:6.0f} ms")
    print(f"  ratio to bare  worker CPU: generate_clip {ours[1] / base[1]:.1f}x, batch row "
          f"{batch[1] / base[1]:.1f}x, 5-task flow {floor[1] / base[1]:.1f}x")
    print("  detection delay at the seed's latencies: see `python -m bench polling` "
          "(adaptive ~5% of generation time vs ~1% for 1 s polling)")
    print(json.dumps({
        "worker_cpu_ms_per_clip": round(ours[1] * 1e3, 1),
        "server_cpu_ms_per_clip": round(ours[2] * 1e3, 1),
        "batch_worker_cpu_ms_per_clip": round(batch[1] * 1e3, 1),
        "batch_server_cpu_ms_per_clip": round(batch[2] * 1e3, 1),
        "five_task_flow_cpu_ms": round(floor[1] * 1e3, 1),
        "five_task_flow_server_cpu_ms": round(floor[2] * 1e3, 1),
        "bare_cpu_ms_per_clip": round(base[1] * 1e3, 1)}))


if __name__ == "__main__":
    main()
