"""Downloads: throughput and memory of providers.download.stream_to (checks, sha256, resume
bookkeeping) against a bare httpx stream of the same 1 GiB file to disk, each in its own process
so that its RSS growth (peak RSS, VmHWM reset just before, minus RSS then) is its own (ru_maxrss
would count the forked parent's pages); served over loopback by the sandbox's own file server
code (Range-capable). The two alternate for ROUNDS rounds and the best of each is compared; the
archived sha256 is checked against the source's."""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from sandbox import files

SIZE = 1 << 30
ROUNDS = 3

CLIENT = """
import asyncio, json, sys, time, httpx
from urllib.parse import urlsplit
sys.path.insert(0, {root!r})
from providers.download import stream_to
url, out, mode = sys.argv[1], sys.argv[2], sys.argv[3]
def status_mib(field):
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024
async def main():
    async with httpx.AsyncClient(timeout=60) as client:
        with open("/proc/self/clear_refs", "w") as refs:  # the peak (VmHWM) restarts here
            refs.write("5")
        before = status_mib("VmRSS")
        start = time.perf_counter()
        sha256 = None
        with open(out, "wb") as sink:
            if mode == "ours":
                done = await stream_to(client, url, sink,
                                       trusted_hosts=frozenset({{urlsplit(url).netloc}}))
                sha256 = done.sha256
            else:
                async with client.stream("GET", url) as response:
                    async for chunk in response.aiter_bytes():
                        sink.write(chunk)
        seconds = time.perf_counter() - start
    peak = status_mib("VmHWM")
    print(json.dumps({{"seconds": seconds, "growth_mib": peak - before, "sha256": sha256}}))
asyncio.run(main())
"""


def serve(path: Path, port: int) -> subprocess.Popen:
    code = f"""
import sys; sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
from bench.download_bench import app
import uvicorn
uvicorn.run(app({str(path)!r}), host="127.0.0.1", port={port}, log_level="warning")
"""
    return subprocess.Popen([sys.executable, "-c", code])


def app(path: str) -> Starlette:
    async def video(request: Request):
        return files.serve(request, Path(path), "video/mp4")
    return Starlette(routes=[Route("/v.mp4", video)])


def measure(mode: str, url: str, out: Path) -> dict:
    """seconds, RSS growth (MiB) and, for stream_to, the sha256 it computed."""
    root = str(Path(__file__).resolve().parents[1])
    done = subprocess.run([sys.executable, "-c", CLIENT.format(root=root), url, str(out), mode],
                          stdout=subprocess.PIPE, text=True, check=True)
    out.unlink()
    return json.loads(done.stdout)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source.mp4"
        digest = hashlib.sha256()
        with source.open("wb") as handle:
            block = os.urandom(1 << 20)
            for _ in range(SIZE >> 20):
                handle.write(block)
                digest.update(block)
        port = 18000 + os.getpid() % 1000
        server = serve(source, port)
        try:
            url = f"http://127.0.0.1:{port}/v.mp4"
            for _ in range(100):
                try:
                    httpx.head(url, timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            runs: dict[str, list[dict]] = {"bare": [], "ours": []}
            for _ in range(ROUNDS):  # alternating: both see the same machine
                for mode in runs:
                    runs[mode].append(measure(mode, url, Path(tmp) / f"{mode}.mp4"))
        finally:
            server.terminate()
            server.wait()
    if any(run["sha256"] != digest.hexdigest() for run in runs["ours"]):
        raise SystemExit("stream_to archived a different sha256 than the source's")
    mb = SIZE / (1 << 20)
    bare = min(run["seconds"] for run in runs["bare"])
    ours = min(run["seconds"] for run in runs["ours"])
    growth = {mode: max(run["growth_mib"] for run in done) for mode, done in runs.items()}
    print(f"download of a 1 GiB file over loopback, best of {ROUNDS} alternating rounds "
          "(higher MB/s, lower RSS growth is better)")
    print(f"  stream_to   {mb / ours:7.0f} MB/s  RSS growth {growth['ours']:6.1f} MiB")
    print(f"  bare httpx  {mb / bare:7.0f} MB/s  RSS growth {growth['bare']:6.1f} MiB")
    print(f"  ratio       {bare / ours:7.2f}x bare httpx's throughput")
    print("  rounds (s): " + ", ".join(
        f"{mode} " + " ".join(f"{run['seconds']:.2f}" for run in done)
        for mode, done in runs.items()))
    print(json.dumps({"download": {
        "bare_mb_s": round(mb / bare), "stream_to_mb_s": round(mb / ours),
        "throughput_ratio": round(bare / ours, 3), "rss_growth_mib": round(growth["ours"], 1),
        "bare_rss_growth_mib": round(growth["bare"], 1)}}, sort_keys=True))


if __name__ == "__main__":
    main()
