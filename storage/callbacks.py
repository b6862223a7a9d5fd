"""What the webhook relay keeps in the journal's store, so that every relay and worker of a
deployment sees the same: the deliveries already taken (a provider retries and duplicates them;
the first one wins, by its delivery id) and the flow runs waiting on jobs.

A run waits on every job it has in flight at once (a chunk of a batch: up to its size), and is
resumed once, when all of them have ended — not once per job. Each step parks first (an entry
per step, replacing the run that waited on the step before it), then the run writes its group
(the suspension's key and its steps) and suspends; a delivery that ends a step's job marks it
ended under the group's key, and the mark that completes the group resumes the run. A mark can
come before the group is written (the run is still parking others): the run counts the marks
when it writes the group, and does not suspend at all when every job is back. A lost delivery id
only lets a duplicate wake a run again, which re-reads the job's status and finds nothing new:
all of it is kept as learned facts, never as charges."""

import hashlib
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from storage.journal import Journal
from storage.learned import parsed

DELIVERIES = "deliveries"
WAITING = "waiting_runs"
GROUPS = "waiting_groups"
ENDED = "ended_jobs"


def _delivery_key(delivery: "Delivery") -> str:
    return hashlib.sha256(f"{delivery.protocol}\n{delivery.id}".encode()).hexdigest()[:40]


class Delivery(BaseModel):
    """A delivery taken: what it said about which job."""

    id: str = Field(description="The provider's delivery id, or what identifies a delivery.")
    protocol: str
    job_id: str
    clip_id: str
    index: int
    terminal: bool = Field(description="The job ended, by this delivery's word.")
    received_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class WaitingRun(BaseModel):
    """A step of a flow run suspended until its job is back."""

    flow_run_id: str
    key: str = Field(description="The run's suspension (its pause key) this step waits in.")
    clip_id: str
    index: int
    job_id: str
    since: datetime = Field(default_factory=lambda: datetime.now(UTC))


class WaitGroup(BaseModel):
    """Every step a run suspends on, resumed once all their jobs have ended."""

    key: str = Field(description="The suspension's pause key.")
    flow_run_id: str
    steps: list[str] = Field(description="The steps' keys (clip id and index).")
    since: datetime = Field(default_factory=lambda: datetime.now(UTC))


def _waiting_key(clip_id: str, index: int) -> str:
    return f"{clip_id}-{index}"


def step_key(run: WaitingRun) -> str:
    return _waiting_key(run.clip_id, run.index)


class Callbacks:
    def __init__(self, journal: Journal):
        self.deliveries, self.waiting = journal.learned(DELIVERIES), journal.learned(WAITING)
        self.groups, self.ended_marks = journal.learned(GROUPS), journal.learned(ENDED)

    def seen(self, delivery: Delivery) -> bool:
        """A delivery of this id was taken before."""
        return bool(self.deliveries.texts(_delivery_key(delivery)))

    def taken(self, delivery: Delivery) -> bool:
        """Keep the delivery unless one with its id was kept: whether this one was."""
        return self.deliveries.add(_delivery_key(delivery), delivery.model_dump_json())

    def wait(self, run: WaitingRun) -> None:
        self.waiting.put(_waiting_key(run.clip_id, run.index), run.model_dump_json())

    def all_waiting(self) -> list[WaitingRun]:
        return parsed(WaitingRun, self.waiting.texts())

    def done_waiting(self, run: WaitingRun) -> None:
        """The step no longer waits (its clip moved on, or its run is gone): its entry goes."""
        self.waiting.remove(step_key(run))

    def suspending(self, group: WaitGroup) -> bool:
        """The run's group written as it is about to suspend: whether every job of it has
        ended already (then it must not suspend: no mark is left to resume it)."""
        self.groups.put(group.key, group.model_dump_json())
        return self._complete(group)

    def ended(self, run: WaitingRun) -> WaitGroup | None:
        """The step's job ended: the group the run suspended on, when that completes it (a run
        not yet suspended has no group yet, and counts the mark itself)."""
        self.ended_marks.put(f"{run.key}-{step_key(run)}", run.model_dump_json())
        group = next(iter(parsed(WaitGroup, self.groups.texts(run.key))), None)
        return group if group is not None and self._complete(group) else None

    def _complete(self, group: WaitGroup) -> bool:
        marked = {step_key(run) for run in
                  parsed(WaitingRun, self.ended_marks.texts(f"{group.key}-"))}
        return set(group.steps) <= marked

    def resumed(self, group: WaitGroup) -> None:
        """The run was resumed: its group, marks and the entries still in it go (a step
        still rendering parks again, in the next suspension)."""
        for step in group.steps:
            self.ended_marks.remove(f"{group.key}-{step}")
            found = parsed(WaitingRun, self.waiting.texts(step))
            if any(w.key == group.key and step_key(w) == step for w in found):
                self.waiting.remove(step)
        self.groups.remove(group.key)

    def waiting_on(self, clip_id: str, index: int) -> WaitingRun | None:
        found = parsed(WaitingRun, self.waiting.texts(_waiting_key(clip_id, index)))
        return next((w for w in found if w.index == index), None)
