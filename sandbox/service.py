"""The engine every protocol shares: accounts, concurrency, the seeded world, billing, media.

Protocol modules parse and spell the wire; this module decides what happens. Jobs and the usage
log live in the Store (disk), so a restart loses nothing.
"""

import hashlib
import json
import random
import re
import threading
import uuid
from dataclasses import asdict
from pathlib import Path

from sandbox import moves
from sandbox import render as media
from sandbox.clock import Clock
from sandbox.errors import AccountProblem, NotFound, PolicyRejected, RateLimited
from sandbox.jobs import Job, Shot, charges_due, latency_s
from sandbox.knobs import Knobs, World, load_prices
from sandbox.moves import Move
from sandbox.store import Store

_DOWNGRADE = {2160: 1080, 1080: 720, 720: 480, 480: 360}
_ACCOUNT_PROBLEMS = ("suspended", "arrears", "exhausted", "forbidden", "ip_blocked")


def account_of(credential: str) -> str:
    """A stable account name for a credential that never shows the credential itself."""
    return "acct_" + hashlib.sha256(credential.encode()).hexdigest()[:12]


class Sandbox:
    def __init__(self, state: Path, knobs: Knobs | None = None):
        self.state = state
        self.store = Store(state)
        saved = self.store.setting("knobs")
        self.knobs = knobs or (Knobs.model_validate(saved) if saved else Knobs())
        self.clock = Clock(self.store.setting("clock_offset_s") or 0.0)
        self.prices = load_prices()
        self._render_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self.save_knobs()

    # configuration
    def save_knobs(self) -> None:
        self.store.save_setting("knobs", self.knobs.model_dump(mode="json"))

    def set_knobs(self, knobs: Knobs) -> None:
        self.knobs = knobs
        self.save_knobs()

    def set_clock(self, offset_s: float) -> None:
        self.clock = Clock(offset_s)
        self.store.save_setting("clock_offset_s", offset_s)

    def world(self, protocol: str) -> World:
        return getattr(self.knobs, protocol)

    def scaled(self, seconds: float) -> float:
        """Every duration the sandbox emits goes through here."""
        return seconds * self.knobs.time_scale

    def rng(self, purpose: str) -> random.Random:
        """Seeded randomness: the n-th draw for a purpose is the same in every run."""
        n = self.store.count(f"rng:{purpose}")
        return random.Random(f"{self.knobs.seed}:{purpose}:{n}")

    # accounts
    def tier_for_key(self, protocol: str, credential: str) -> str:
        keys = self.knobs.api_keys
        default = self.prices[protocol].default_tier
        if keys and credential not in keys:
            raise AccountProblem("unknown key", status=401, code="invalid_api_key")
        return keys.get(credential, default)

    def check_account(self, account: str) -> None:
        status = self.knobs.account_status.get(account, "ok")
        if status in _ACCOUNT_PROBLEMS:
            raise AccountProblem(f"account {status}", code=status)

    def active(self, protocol: str, account: str, tier: str, now: float) -> int:
        return sum(
            1 for job in self.store.jobs(protocol, account, open_only=True)
            if job.tier == tier and job.state(now) in ("queued", "running")
        )

    # jobs
    def submit(self, *, protocol: str, family: str, account: str, tier: str, model: str,
               kind: str, prompt: str, shots: list[Shot], seconds: int, total_seconds: int,
               width: int, height: int, resolution: str, parent_id: str | None = None,
               external_id: str | None = None, job_id: str | None = None,
               policy_as_failure: bool = False, extra: dict | None = None,
               audio: bool = False, image: bytes | None = None,
               camera: Move | None = None) -> Job:
        """Create a job, or refuse it before generation (nothing billed). `image`: the input
        image's bytes as sent (image-to-video); `camera`: a move asked by a control."""
        self.check_account(account)
        world = self.world(protocol)
        now = self.clock.now()
        limit = self.prices[protocol].tiers[tier].concurrency
        in_use = self.active(protocol, account, tier, now)
        if in_use >= limit:
            self.store.count(f"429:{protocol}")
            raise RateLimited(f"{in_use} jobs in flight; the {tier} tier allows {limit}",
                              retry_after_s=self.scaled(world.retry_after_s))
        text = " ".join([prompt, *(s.text for s in shots)])
        blocked = next((p for p in world.policy_patterns if re.search(p, text, re.I)), None)
        if blocked and not policy_as_failure:
            raise PolicyRejected("the request was rejected by the content policy")
        rng = self.rng(protocol)
        hour = self.clock.now_dt().hour
        latency = self.scaled(latency_s(world, seconds, width * height, hour, rng))
        started = now + latency * world.queued_share
        completes = now + latency
        requeued = restarted = None
        if rng.random() < world.requeue_rate:
            requeued = started + (completes - started) / 2
            restarted = requeued + latency * world.queued_share
            completes = restarted + (completes - started)
        fails = rng.random() < world.failure_rate
        flash = rng.random() < world.flash_frame_rate
        actual_w, actual_h = width, height
        loaded = in_use + 1 >= world.downgrade_load * limit
        if (loaded and rng.random() < world.downgrade_rate) or any(
                re.search(p, text, re.I) for p in world.downgrade_patterns):
            actual_w, actual_h = _downgraded(width, height)
        code = message = None
        if blocked:
            fails, code, message = True, "policy", "Your request was blocked by our moderation"
            completes = started = now + self.scaled(1.0)
            requeued = restarted = None
        elif fails:
            code, message = "generation_failed", "The generation failed; please try again"
        job = Job(
            id=job_id or uuid.uuid4().hex, protocol=protocol, family=family, account=account,
            tier=tier, model=model, kind=kind, prompt=prompt, shots=shots, seconds=seconds,
            total_seconds=total_seconds, width=width, height=height, actual_width=actual_w,
            actual_height=actual_h, resolution=resolution, parent_id=parent_id,
            external_id=external_id, created_at=now, started_at=started, requeued_at=requeued,
            restarted_at=restarted, completes_at=completes,
            outcome="failed" if fails else "succeeded", failure_code=code,
            failure_message=message, flash=flash, audio=audio,
            image=self.keep_image(image) if image is not None else None, camera=camera,
            expires_at=completes + self.scaled(self.prices[protocol].url_lifetime_s),
            extra=extra or {},
        )
        self.store.put(job)
        self.store.count(f"jobs:{protocol}")
        return job

    def job(self, job_id: str, protocol: str | None = None) -> Job:
        job = self.store.get(job_id)
        if job is None or job.deleted or (protocol and job.protocol != protocol):
            raise NotFound(f"no job {job_id}")
        return self.settle(job)

    def settle(self, job: Job, now: float | None = None) -> Job:
        """Bill the charge events the clock has passed (by `now`, when an answer must show
        the job as of one instant); mark the job final when done."""
        if job.final:
            return job
        now = self.clock.now() if now is None else now
        rows = charges_due(job, now, self.prices[job.protocol])
        for row in rows:
            self.store.bill(row)
        billed = [*job.billed, *(r["kind"] for r in rows)]
        if now >= job.completes_at or job.cancelled_at is not None:
            billed.append("done")
        if billed != job.billed:
            job = job.model_copy(update={"billed": billed})
            self.store.put(job)
        return job

    def settle_all(self) -> None:
        for job in self.store.jobs(open_only=True):
            self.settle(job)

    def cancel(self, job: Job) -> Job:
        job = job.model_copy(update={"cancelled_at": self.clock.now()})
        self.store.put(job)
        return self.settle(job)

    def delete(self, job: Job) -> None:
        self.store.put(job.model_copy(update={"deleted": True}))

    # media
    def keep_image(self, data: bytes) -> str:
        """Store an image under the media folder, named by its content; its file name."""
        name = hashlib.sha256(data).hexdigest()[:32] + ".img"
        path = self.state / "media" / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return name

    def video(self, job: Job) -> Path:
        """The job's MP4, rendered once (cached by content) and reused."""
        parent = None
        if job.kind == "extend" and job.parent_id is not None:
            parent = self.video(self.job(job.parent_id))
        elif job.kind == "extend" and job.extra.get("parent_file"):
            parent = Path(job.extra["parent_file"])
        if self.knobs.shared_render:
            key = {"shared": [job.total_seconds, job.actual_width, job.actual_height, job.flash,
                              job.audio]}
            shots = [media.Shot("shared render", job.total_seconds * media.FPS)]
            parent = None
            label, image = "", None
        else:
            shots = [media.Shot(s.text, s.seconds * media.FPS,
                                job.camera or moves.from_words(s.text)) for s in job.shots]
            label = job.model if (job.width, job.height) == (
                job.actual_width, job.actual_height) else (
                f"{job.model} · asked {job.width}x{job.height}")
            image = self.state / "media" / job.image if job.image else None
            key = {"w": job.actual_width, "h": job.actual_height, "flash": job.flash,
                   "shots": [[s.text, s.frames, asdict(s.move) if s.move else None]
                             for s in shots],
                   "parent": parent.name if parent else None, "audio": job.audio,
                   "label": label, "image": job.image}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
        path = self.state / "renders" / f"{digest}.mp4"
        with self._locks_guard:
            lock = self._render_locks.setdefault(digest, threading.Lock())
        with lock:
            if not path.exists():
                media.render(path, job.actual_width, job.actual_height, shots,
                             flash_last=job.flash, parent=parent, audio=job.audio,
                             label=label, image=image)
                self.store.count("renders")
        return path

    def usage(self) -> list[dict]:
        self.settle_all()
        return self.store.usage()


def _downgraded(width: int, height: int) -> tuple[int, int]:
    short = min(width, height)
    lower = _DOWNGRADE.get(short, short * 2 // 3)
    scale = lower / short
    return (round(width * scale / 2) * 2, round(height * scale / 2) * 2)
