"""Progress artifacts: a provider job's (fed by the poller — the provider's own percentage when
it reports one, else the latency curve's) and a batch's (requests finished of all).

Updates go out when the shown percentage moves by STEP points or the state changes: a long job
costs a handful of API calls, not one per poll. They are chained (never out of order) and
best-effort: a failed update is logged and never fails the work it describes.
"""

import asyncio
import logging
import re

from prefect.artifacts import acreate_progress_artifact, aupdate_progress_artifact

STEP = 5.0
log = logging.getLogger(__name__)


def job_key(clip_id: str, job_id: str) -> str:
    """One artifact key per provider job (a retry or fallback is a new job, a new bar): keys
    take lowercase letters, digits and dashes only."""
    job = re.sub(r"[^a-z0-9]+", "-", job_id.lower()).strip("-")[-40:]
    return f"job-{clip_id[:16]}-{job}"


class Progress:
    def __init__(self, key: str, label: str, state: str = "submitted"):
        self.key, self.label = key, label
        self.artifact_id = None
        self.shown, self.state = 0.0, state
        self.last: asyncio.Future | None = None

    async def __aenter__(self) -> "Progress":
        self.artifact_id = await acreate_progress_artifact(
            0.0, key=self.key, description=f"{self.label}: {self.state}")
        return self

    async def __aexit__(self, *exc) -> None:
        if self.last is not None:
            await self.last

    def report(self, done: float, state: str, note: str | None = None, *,
               detail: str | None = None) -> None:
        """`done` in [0, 1]; `state` in words (queued, running, done, ...); `note` a failed
        job's reason; `detail` what the bar stands at (12 of 200 requests), sent with an update
        but never the reason for one — a 1,000-row batch's bar costs ~20 API calls, not 1,000.
        A failed job's bar stays where it was (it did not finish: 100% would say it did)."""
        percent = self.shown if state == "failed" else round(done * 100, 1)
        if state == self.state and percent - self.shown < STEP and percent < 100:
            return
        self.shown, self.state = percent, state
        words = f"{state}: {note}" if state == "failed" and note else state
        if detail:
            words = f"{words} · {detail}"
        self.last = asyncio.ensure_future(self._send(self.last, percent, words))

    async def _send(self, previous: asyncio.Future | None, percent: float, state: str) -> None:
        if previous is not None:
            await previous
        try:
            await aupdate_progress_artifact(self.artifact_id, percent,
                                            description=f"{self.label}: {state}")
        except Exception as err:  # the work matters, its progress bar does not
            log.warning("progress of %s not updated: %s", self.label, err)
