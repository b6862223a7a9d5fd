"""What the journal holds per clip: typed fields, read back from any version written so far.

Records written by earlier code (the first wave, commit 057e390, and the code before typed
fields) load through `ClipJournal.upgraded`: `inspection` became `outcome`, budget notes kept as
text in `attempts` became `left_for_budget`, attempts became models. Nothing is rewritten on
read; a record takes the new shape at its next transition.
"""

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from models import Archived, ClipOutcome, ClipRequest, JobHandle, RemoteVideo, RoutePlan

StepState = Literal["intent", "submitted", "succeeded", "failed", "pending", "unknown",
                    "cancelled"]
ClipState = Literal["intent", "running", "done", "failed", "lost", "pending", "unknown",
                    "unarchived"]
# what a run or the sweep must still finish: unarchived is paid and waits for its download
OPEN_STATES: tuple[ClipState, ...] = ("intent", "running", "pending", "unknown", "unarchived")
# charge kinds a step may carry more than once: each re-queue, each reconciliation
REPEATABLE = ("requeue", "reconciled")
LEGACY_BUDGET_NOTE = re.compile(r"^left by the budget in run (?P<run>[^:]+): (?P<why>.*)$",
                                re.S)
LEGACY_ATTEMPT = re.compile(r"^(?P<model>[a-z0-9][a-z0-9._-]*): (?P<why>.*)$", re.S)


class StepRecord(BaseModel):
    """One paid generation of the clip."""

    index: int
    kind: str
    seconds: int
    state: StepState = "intent"
    model: str
    tier: str
    key: str | None = Field(
        default=None, description="The idempotency key this step is sent with (Kling's "
        "external_task_id): a rerun looks the job up by the key the send used.")
    send_started_at: datetime | None = Field(
        default=None, description="When the last send of this step began: recovery by listing "
        "looks only at jobs created since.")
    handle: JobHandle | None = None
    remote: RemoteVideo | None = None
    charges: list[str] = Field(default_factory=list, description="Ledger events written.")
    spent_usd: Decimal = Field(default=Decimal(0), description="What those events charged.")
    message: str | None = None
    provider_deleted: bool = Field(
        default=False, description="The provider's copy was deleted by the sweep (retention).")

    def charged(self, kind: str) -> int:
        """How many charges of `kind` this step has written."""
        return sum(c == kind or c.startswith(f"{kind}:") for c in self.charges)


class Attempt(BaseModel):
    """A model given up on for this clip, or a retry on it, and why."""

    model: str | None = Field(default=None, description="Catalog model id tried.")
    why: str
    at: datetime | None = Field(default=None, description="None on records before it was kept.")

    def __str__(self) -> str:
        return f"{self.model}: {self.why}" if self.model else self.why


class BudgetLeft(BaseModel):
    """A batch run's budget guard refused this clip's next submit."""

    run_id: str = Field(description="The flow run whose guard left it.")
    why: str


class ClipJournal(BaseModel):
    clip_id: str
    state: ClipState = "intent"
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    request: ClipRequest
    plan: RoutePlan | None = None
    steps: list[StepRecord] = Field(default_factory=list)
    replaced: list[StepRecord] = Field(
        default_factory=list, description="Steps a later attempt took the place of (a failed "
        "job, another model's): still paid for, still on the bill, so still reconciled.")
    archive: Archived | None = None
    outcome: ClipOutcome | None = None
    attempts: list[Attempt] = Field(default_factory=list, description="Models tried, with why.")
    left_for_budget: BudgetLeft | None = None
    reason: str | None = Field(
        default=None, description="Why the clip is unarchived or lost (cleared when done).")
    spent_usd: Decimal = Field(default=Decimal(0), description="Every charge recorded.")
    local_copies_deleted: bool = Field(
        default=False, description="Retention deleted the local files: the replica holds them.")
    parent_clip_id: str | None = None

    @model_validator(mode="before")
    @classmethod
    def upgraded(cls, data: Any) -> Any:
        """A record of any earlier version, in today's shape."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "inspection" in data:
            data.setdefault("outcome", data.pop("inspection"))
        if isinstance(data.get("outcome"), dict) and isinstance(data["outcome"].get("trim"),
                                                                  dict):
            trim = data["outcome"]["trim"]
            trim.setdefault("too_long", any(r.startswith("longer than asked")
                                            for r in trim.get("trim_reasons", [])))
        attempts = []
        for attempt in data.get("attempts", []):
            if not isinstance(attempt, str):
                attempts.append(attempt)
            elif note := LEGACY_BUDGET_NOTE.match(attempt):
                data["left_for_budget"] = {"run_id": note["run"], "why": note["why"]}
            elif named := LEGACY_ATTEMPT.match(attempt):
                attempts.append({"model": named["model"], "why": named["why"]})
            else:
                attempts.append({"why": attempt})
        data["attempts"] = attempts
        return data

    @property
    def job_ids(self) -> list[str]:
        return [s.handle.job_id for s in self.steps if s.handle]

    def every_step(self) -> list[StepRecord]:
        """Every step that was sent, in the order they were tried."""
        return [*self.replaced, *self.steps]

    def files(self) -> list[tuple[str, str]]:
        """(location, sha256) of the clip's archived files: the original, the trimmed copy."""
        found = [(self.archive.path, self.archive.sha256)] if self.archive else []
        trim = self.outcome.trim if self.outcome else None
        if trim and trim.trimmed_path and trim.trimmed_sha256:
            found.append((trim.trimmed_path, trim.trimmed_sha256))
        return found

    @property
    def is_open(self) -> bool:
        """A run or the sweep must still finish it."""
        return self.state in OPEN_STATES
