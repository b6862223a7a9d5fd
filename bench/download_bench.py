"""Downloads: throughput and peak memory of providers.download.stream_to (checks, sha256,
resume bookkeeping) against a bare httpx stream of the same 1 GB file to disk, each in its own
process so that peak RSS is its own; served over loopback by the sandbox's own file server
code (Range-capable)."""

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

CLIENT = """
import asyncio, hashlib, sys, time, httpx
sys.path.insert(0, {root!r})
from providers.download import stream_to
url, out, mode = sys.argv[1], sys.argv[2], sys.argv[3]
async def main():
    async with httpx.AsyncClient(timeout=60) as client:
        start = time.perf_counter()
        with open(out, "wb") as sink:
            if mode == "ours":
                await stream_to(client, url, sink, trusted_hosts=frozenset({{"127.0.0.1"}}))
            else:
                async with client.stream("GET", url) as response:
                    async for chunk in response.aiter_bytes():
                        sink.write(chunk)
        print(time.perf_counter() - start)
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


def measure(mode: str, url: str, out: Path) -> tuple[float, float]:
    root = str(Path(__file__).resolve().parents[1])
    proc = subprocess.Popen([sys.executable, "-c", CLIENT.format(root=root), url, str(out),
                             mode], stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = float(proc.stdout.read().strip())
    proc.stdout.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return seconds, usage.ru_maxrss / 1024  # MiB


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source.mp4"
        with source.open("wb") as handle:
            block = os.urandom(1 << 20)
            for _ in range(SIZE >> 20):
                handle.write(block)
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
            bare = measure("bare", url, Path(tmp) / "bare.mp4")
            ours = measure("ours", url, Path(tmp) / "ours.mp4")
        finally:
            server.terminate()
            server.wait()
    mb = SIZE / (1 << 20)
    print("download of a 1 GiB file over loopback (higher MB/s, lower peak RSS is better)")
    print(f"  stream_to   {mb / ours[0]:7.0f} MB/s  peak RSS {ours[1]:6.0f} MiB")
    print(f"  bare httpx  {mb / bare[0]:7.0f} MB/s  peak RSS {bare[1]:6.0f} MiB")
    print(f"  ratio       {bare[0] / ours[0]:7.2f}x throughput, {ours[1] / bare[1]:.2f}x memory")


if __name__ == "__main__":
    main()
