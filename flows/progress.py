"""A progress artifact per provider job, fed by the poller, so the Prefect UI shows how far a
job has come (the provider's own percentage when it reports one, else the latency curve's).

Updates go out when the shown percentage moves by STEP points or the state changes: a long job
costs a handful of API calls, not one per poll. They are chained (never out of order) and
best-effort: a failed update is logged and never fails the job it describes.
"""

import asyncio
import logging

from prefect.artifacts import acreate_progress_artifact, aupdate_progress_artifact

from models import JobStatus

STEP = 5.0
log = logging.getLogger(__name__)


class JobProgress:
    def __init__(self, key: str, label: str):
        self.key, self.label = key, label
        self.artifact_id = None
        self.shown, self.state = 0.0, "submitted"
        self.last: asyncio.Future | None = None

    async def __aenter__(self) -> "JobProgress":
        self.artifact_id = await acreate_progress_artifact(
            0.0, key=self.key, description=f"{self.label}: submitted")
        return self

    async def __aexit__(self, *exc) -> None:
        if self.last is not None:
            await self.last

    def seen(self, status: JobStatus, done: float) -> None:
        percent = round(done * 100, 1)
        if status.state == self.state and percent - self.shown < STEP:
            return
        self.shown, self.state = percent, status.state
        self.last = asyncio.ensure_future(self._send(self.last, percent, status.state))

    async def _send(self, previous: asyncio.Future | None, percent: float, state: str) -> None:
        if previous is not None:
            await previous
        try:
            await aupdate_progress_artifact(self.artifact_id, percent,
                                            description=f"{self.label}: {state}")
        except Exception as err:  # the job matters, its progress bar does not
            log.warning("progress of %s not updated: %s", self.label, err)
