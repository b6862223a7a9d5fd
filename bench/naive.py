"""The pipeline a competent team writes without reelflow: the baseline of the cost benchmark.

Written from Kling's public API (JWT from the access/secret pair, text2video / image2video,
`multi_shot` storyboards, polling the task) with httpx, PyJWT, PyAV and Prefect only — no
reelflow code, nothing from the sandbox. Each choice is what the seed's own code sample and a
team's first month look like:

- One model for everything: Kling v3 on the Standard plan, the seed's "pragmatic default",
  on the native API — the protocol and plan reelflow's default plan picks, so protocol prices
  play no part. The key is on one plan for the month: nobody re-plans the tier at volume.
- A Prefect task per clip, `retries=2` around submit-and-wait (`retry_delay_seconds=10`): the
  decorator everyone writes first. A retry after a timeout or an error submits again — the
  task cannot know whether the job it gave up on will still finish (and bill).
- Polling every second with a 10-minute timeout: the tutorial loop; the seed's p95 is 94 s.
- Ten clips at once (a thread pool of 10): the Standard plan's documented 10 jobs.
- An edit of an approved clip is regenerated from scratch at the new length (Kling's
  video-extend is documented for v1.x videos only, so a team does not build on it); a length
  past the 15 s the v3 wire takes is made as a 15 s clip plus the rest.
- A storyboard is one `multi_shot` task (Kling's documented storyboard mode).
- A product photo is sent as it is; on Kling's aspect-ratio refusal (400, code 1201) it is
  centre-cropped to the nearest of 16:9, 9:16 and 1:1 and sent again.
- A prompt refused by the content policy is retried as it is (the task's retries): nobody
  special-cases an error they have not seen yet.
- A final check of each clip — duration, frame size, and the last frame (the seed documents
  Kling's ~3% flash frame) — regenerates a failing clip once; a second failure is not accepted.

Time runs at the sandbox's `time_scale`: every wait (poll, timeout, retry delay) is the real
one multiplied by it, as the provider's own latencies are.
"""

import base64
import io
import time
from pathlib import Path
from typing import Literal

import av
import httpx
import jwt
from PIL import Image
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel

MODEL = "kling-v3"
MAX_WIRE_S = 15
POLL_S, TIMEOUT_S, RETRY_DELAY_S = 1.0, 600.0, 10.0
PLAN_JOBS = 10
RATIOS = {"16:9": 16 / 9, "9:16": 9 / 16, "1:1": 1.0}
FLASH_JUMP = 60  # grey levels between the last two frames: a white flash, not motion


class KlingError(RuntimeError):
    def __init__(self, status: int, code: int, message: str):
        super().__init__(f"Kling {status} code {code}: {message}")
        self.status, self.code = status, code


class Account(BaseModel):
    """Where and as whom the pipeline sends, and how fast the provider's clock runs."""

    base_url: str
    access_key: str
    secret_key: str
    time_scale: float
    folder: Path

    def token(self) -> str:
        now = int(time.time())
        return jwt.encode({"iss": self.access_key, "exp": now + 1800, "nbf": now - 5},
                          self.secret_key, algorithm="HS256")


class Clip(BaseModel):
    """One generation: what is sent, and what the check expects back."""

    tag: str
    prompt: str
    seconds: int
    resolution: Literal["720p", "1080p"]
    aspect: str = "16:9"
    scenes: list[str] = []
    photo: Path | None = None


class Delivered(BaseModel):
    tag: str
    seconds: int
    accepted: bool
    error: str | None = None


def _call(account: Account, method: str, path: str, **kwargs) -> dict:
    response = httpx.request(method, account.base_url + path, timeout=30,
                             headers={"Authorization": f"Bearer {account.token()}"}, **kwargs)
    try:
        body = response.json()
    except ValueError:
        body = {"code": response.status_code, "message": response.text[:200]}
    if response.status_code >= 400 or body.get("code", 0) != 0:
        raise KlingError(response.status_code, int(body.get("code") or 0),
                         str(body.get("message")))
    return body["data"]


def _centre_crop(photo: bytes) -> bytes:
    image = Image.open(io.BytesIO(photo)).convert("RGB")
    ratio = min(RATIOS.values(), key=lambda r: abs(r - image.width / image.height))
    width = min(image.width, round(image.height * ratio))
    height = min(image.height, round(width / ratio))
    left, top = (image.width - width) // 2, (image.height - height) // 2
    out = io.BytesIO()
    image.crop((left, top, left + width, top + height)).save(out, "JPEG", quality=90)
    return out.getvalue()


def _submit(account: Account, clip: Clip) -> tuple[str, str]:
    """The task's family and id; a photo Kling refuses for its ratio is cropped and resent."""
    body = {"model_name": MODEL, "prompt": clip.prompt, "duration": str(clip.seconds),
            "mode": "pro" if clip.resolution == "1080p" else "std"}
    if clip.scenes:
        per = clip.seconds // len(clip.scenes)
        body.update(multi_shot=True, shot_type="customize", multi_prompt=[
            {"index": n + 1, "prompt": text, "duration": str(per)}
            for n, text in enumerate(clip.scenes)])
    if clip.photo is None:
        data = _call(account, "POST", "/v1/videos/text2video",
                     json={**body, "aspect_ratio": clip.aspect})
        return "text2video", data["task_id"]
    photo = clip.photo.read_bytes()
    try:
        data = _call(account, "POST", "/v1/videos/image2video",
                     json={**body, "image": base64.b64encode(photo).decode()})
    except KlingError as err:
        if err.code != 1201:
            raise
        data = _call(account, "POST", "/v1/videos/image2video",
                     json={**body, "image": base64.b64encode(_centre_crop(photo)).decode()})
    return "image2video", data["task_id"]


@task(retries=2, retry_delay_seconds=RETRY_DELAY_S, cache_policy=NO_CACHE,
      task_run_name="generate {clip.tag}")
def generate(account: Account, clip: Clip) -> Path:
    """Submit, poll every second for up to 10 minutes, download."""
    family, task_id = _submit(account, clip)
    deadline = time.monotonic() + TIMEOUT_S * account.time_scale
    while True:
        time.sleep(POLL_S * account.time_scale)
        data = _call(account, "GET", f"/v1/videos/{family}/{task_id}")
        if data["task_status"] == "succeed":
            break
        if data["task_status"] == "failed":
            raise RuntimeError(f"task {task_id} failed: {data.get('task_status_msg')}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"task {task_id} not done after {TIMEOUT_S:.0f} s")
    path = account.folder / f"{clip.tag}-{task_id}.mp4"
    with httpx.stream("GET", data["task_result"]["videos"][0]["url"], timeout=60) as response:
        response.raise_for_status()
        with path.open("wb") as sink:
            for chunk in response.iter_bytes():
                sink.write(chunk)
    return path


def expected_size(clip: Clip) -> tuple[int, int] | None:
    """(width, height) Kling should deliver; None for a photo (its ratio decides)."""
    if clip.photo is not None:
        return None
    short = 1080 if clip.resolution == "1080p" else 720
    ratio = RATIOS[clip.aspect]
    long = round(short * max(ratio, 1 / ratio) / 2) * 2
    return (long, short) if ratio >= 1 else (short, long)


def passes_check(path: Path, clip: Clip) -> bool:
    """Duration and frame size as asked, and no white flash on the last frame."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        seconds = float(stream.frames / stream.average_rate) if stream.frames else float(
            container.duration / av.time_base)
        size = expected_size(clip)
        if abs(seconds - clip.seconds) > 0.25 or (
                size is not None and (stream.width, stream.height) != size):
            return False
        container.seek(int(max(0.0, seconds - 1.0) / stream.time_base), stream=stream)
        greys = [frame.to_ndarray(format="gray").mean() for frame in container.decode(stream)]
    return len(greys) < 2 or abs(greys[-1] - greys[-2]) <= FLASH_JUMP


def deliver(make, account: Account, clip: Clip) -> Delivered:
    """Generate (`make`: the generate task); a clip failing the check is regenerated once."""
    try:
        for _ in range(2):
            if passes_check(make(account, clip), clip):
                return Delivered(tag=clip.tag, seconds=clip.seconds, accepted=True)
        return Delivered(tag=clip.tag, seconds=clip.seconds, accepted=False,
                         error="failed the check twice")
    except Exception as err:  # a clip lost after its retries: the month goes on
        return Delivered(tag=clip.tag, seconds=clip.seconds, accepted=False,
                         error=f"{type(err).__name__}: {err}"[:300])


def regenerated(clip: Clip) -> list[Clip]:
    """An edit at a length past the wire's 15 s, as 15 s clips and the rest; each part's
    prompt starts with the clip's tag and `p<n>`, so the bill tells the parts apart."""
    if clip.seconds <= MAX_WIRE_S:
        return [clip]
    text = clip.prompt.removeprefix(clip.tag).lstrip()
    return [clip.model_copy(update={"seconds": min(MAX_WIRE_S, clip.seconds - start),
                                    "prompt": f"{clip.tag}p{n + 1} {text}"})
            for n, start in enumerate(range(0, clip.seconds, MAX_WIRE_S))]


@task(cache_policy=NO_CACHE, task_run_name="request {chain[0].tag}")
def request(account: Account, chain: list[Clip]) -> list[Delivered]:
    """One request's clips in order: an edit comes after the clip it edits was approved."""
    make = generate.with_options(retry_delay_seconds=RETRY_DELAY_S * account.time_scale)
    out = []
    for clip in chain:
        parts = [deliver(make, account, part) for part in regenerated(clip)]
        out.append(Delivered(tag=clip.tag, seconds=clip.seconds,
                             accepted=all(p.accepted for p in parts),
                             error=next((p.error for p in parts if p.error), None)))
    return out


@flow(name="naive-month", task_runner=ThreadPoolTaskRunner(max_workers=PLAN_JOBS))
def naive_month(account: Account, requests: list[list[Clip]]) -> list[Delivered]:
    """Every request of the month, ten at a time (the plan's job limit)."""
    account.folder.mkdir(parents=True, exist_ok=True)
    futures = [request.submit(account, chain) for chain in requests]
    return [d for future in futures for d in future.result()]
