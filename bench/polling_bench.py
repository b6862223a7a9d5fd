"""Polling: status requests per job and detection delay (completion -> noticed, as a share of
generation time) for the adaptive poller against fixed 1 s polling — what the official SDKs
do by default — first on the seed's latency distributions (simulated clock, 2,000 jobs per
model), then live against the sandbox at time_scale 0.05 (40 Kling jobs each way; at this scale
the HTTP round trip is a visible share of each interval, which the simulation leaves out).
Ends with one line of JSON."""

import asyncio
import json
import math
import random
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from pydantic import SecretStr

from models import Endpoint, JobHandle, JobStatus, SubmitRequest
from providers.credentials import KlingKeys
from providers.kling_native import KlingNative
from providers.poller import PollPlan, await_job
from sandbox.knobs import KLING_ACCESS_KEY, KLING_SECRET_KEY, World
from tests.sandbox_process import start_sandbox

Z95 = 1.6448536269514722
SEED = {"Kling v3 5 s": (38, 94), "Sora 2 5 s": (71, 187), "Sora 2 spike": (71, 340)}
HANDLE = JobHandle(protocol="kling_native", endpoint="x", endpoint_kind="sandbox",
                   account="a", credential_ref="r", job_id="1",
                   submitted_at="2026-11-25T00:00:00Z")


# Real jobs start queued (OpenAI's create answers status "queued", Kling's "submitted", fal's
# IN_QUEUE); the simulated ones queue for the share of their latency the sandbox's world does.
QUEUED_SHARE = World.model_fields["queued_share"].default


class SimulatedJob:
    def __init__(self, done: float):
        self.now, self.done, self.calls = 0.0, done, 0

    async def status(self, handle):
        self.calls += 1
        if self.now >= self.done:
            return JobStatus(state="succeeded")
        return JobStatus(state="queued" if self.now < QUEUED_SHARE * self.done else "running")

    async def sleep(self, seconds):
        self.now += seconds


async def fixed(job: SimulatedJob, interval: float) -> None:
    while (await job.status(HANDLE)).state != "succeeded":
        await job.sleep(interval)


def simulate(jobs: int = 2000) -> dict[str, dict]:
    print("polling, simulated on the seed's distributions (per job; lower is better)")
    print(f"  {'model':<14} {'policy':<9} {'requests':>9} {'delay share':>12}")
    figures: dict[str, dict] = {}
    for name, (p50, p95) in SEED.items():
        sigma = math.log(p95 / p50) / Z95
        rng = random.Random(1)
        done = [p50 * math.exp(sigma * rng.gauss(0, 1)) for _ in range(jobs)]
        plan = PollPlan(p50_s=p50, sigma=sigma, p95_s=p95, k=10)
        rows = {}
        for policy in ("adaptive", "fixed 1s"):
            calls, shares = [], []
            for d in done:
                job = SimulatedJob(d)
                if policy == "adaptive":
                    asyncio.run(await_job(job.status, HANDLE, plan, clock=lambda j=job: j.now,
                                          sleep=job.sleep))
                else:
                    asyncio.run(fixed(job, 1.0))
                calls.append(job.calls)
                shares.append((job.now - d) / d)
            rows[policy] = (statistics.mean(calls), statistics.mean(shares))
            print(f"  {name:<14} {policy:<9} {rows[policy][0]:9.1f} {rows[policy][1]:11.1%}")
        ours, base = rows["adaptive"], rows["fixed 1s"]
        print(f"  {'':<14} ratio     {ours[0] / base[0]:9.2f}x requests, "
              f"detection delay {ours[1] * 100:.1f}% vs {base[1] * 100:.1f}% of generation")
        figures[name] = _figures(ours, base)
    return figures


def _figures(ours: tuple[float, float], base: tuple[float, float]) -> dict:
    """Requests a job and detection delay (share of generation), adaptive against fixed 1 s."""
    return {"requests_per_job": round(ours[0], 2), "fixed_requests_per_job": round(base[0], 2),
            "requests_ratio": round(ours[0] / base[0], 3), "delay_share": round(ours[1], 4),
            "fixed_delay_share": round(base[1], 4)}


async def live(jobs: int = 40, scale: float = 0.05) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        server = start_sandbox(Path(tmp), "--calm", time_scale=scale)
        try:
            server.knobs(kling_keys={KLING_ACCESS_KEY: {"secret": KLING_SECRET_KEY,
                                                        "tier": "master"}})
            keys = KlingKeys(access_key=SecretStr(KLING_ACCESS_KEY),
                             secret_key=SecretStr(KLING_SECRET_KEY))
            endpoint = Endpoint(protocol="kling_native", kind="sandbox", base_url=server.url)
            request = SubmitRequest(model="kling-v3", endpoint="kling-v3", mode="text",
                                    prompt="bench", seconds=5, resolution="1080p",
                                    aspect_ratio="16:9", wire_params={"mode": "pro"})
            sigma = math.log(94 / 38) / Z95
            plan = PollPlan(p50_s=38 * scale, sigma=sigma, p95_s=94 * scale, k=10)
            async with KlingNative(endpoint, keys, account="bench") as adapter, \
                    httpx.AsyncClient(base_url=server.url + "/_admin") as admin:
                print(f"polling, live against the sandbox (time_scale {scale}, {jobs} Kling "
                      "jobs each)")
                results = {}
                for policy in ("adaptive", "fixed 1s"):
                    calls, shares = [], []

                    async def one(i, policy=policy, calls=calls, shares=shares):
                        handle = await adapter.submit(request, f"{policy}-{i}-{time.time()}")
                        counted = {"n": 0}

                        async def status(h, counted=counted):
                            counted["n"] += 1
                            return await adapter.status(h)

                        if policy == "adaptive":
                            await await_job(status, handle, plan)
                        else:
                            while (await status(handle)).state not in ("succeeded", "failed"):
                                await asyncio.sleep(1.0 * scale)
                        noticed = time.time()
                        job = (await admin.get(f"/jobs/{handle.job_id}")).json()
                        generation = job["completes_at"] - job["created_at"]
                        shares.append(max(0.0, noticed - job["completes_at"]) / generation)
                        calls.append(counted["n"])

                    await asyncio.gather(*(one(i) for i in range(jobs)))
                    results[policy] = (statistics.mean(calls), statistics.mean(shares))
                    print(f"  {policy:<9} {results[policy][0]:6.1f} requests/job, detection "
                          f"delay {results[policy][1]:6.1%} of generation")
                ours, base = results["adaptive"], results["fixed 1s"]
                print(f"  ratio     {ours[0] / base[0]:6.2f}x requests")
                return _figures(ours, base)
        finally:
            server.stop()


def main() -> None:
    simulated = simulate()
    print(json.dumps({"polling": {"simulated": simulated, "live": asyncio.run(live())}},
                     sort_keys=True))


if __name__ == "__main__":
    main()
