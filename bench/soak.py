"""The chaos soak: a batch across every protocol against a sandbox whose fault knobs are high,
its worker SIGKILLed every few seconds and rerun until it finishes; then the sandbox's own bill
and job list are set against reelflow's journal and ledger.

What is measured (every figure read from the provider side, whatever reelflow believes):

- `double_charges`: provider jobs created for a request (found by the unique tag its prompt
  carries) that no journal step holds and that the sandbox billed: paid twice. A take-1 twin
  shares its prompt, so jobs are grouped per prompt against the steps of every clip of it. One
  billed orphan per clip left `unknown` is that clip's single payment: lost, not double.
- `shared_jobs`: provider job ids held by more than one clip step in the journal.
- `lost_clips`: clips not `done` at the end although a provider job of theirs was billed (paid,
  not delivered), broken down by protocol; `unknown_clips` are those in state `unknown` (fal and
  AtlasCloud have no lookup after an ambiguous submit, so a reset there leaves one).
- `ledger_minus_bill_usd`: per job id, the ledger's cost (without `reconciled` rows) minus the
  sandbox's bill, each rounded to cents, summed; the non-zero ones in `per_job_differences`.
  `unknown_unpaid` counts those with no billed job (a worker killed mid-submit leaves one too).
- `reconciled_rows`: ledger rows whose event or charge kind is `reconciled`.
- `faults`: the sandbox's `fault:<kind>:<protocol>` and `429:<protocol>` counters.

Plain functions, no pytest: `bench/soak_bench.py` and `tests/flows/test_chaos.py` call `soak()`.
"""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

REPO = Path(__file__).resolve().parents[1]
WORLDS = ("openai", "fal", "kling", "atlascloud")
SUBSCRIPTIONS = "kling:standard,fal:standard,sora:api,atlascloud:payg"
_HANDLE_PROTOCOL = {"openai_videos": "openai", "fal_queue": "fal", "kling_native": "kling",
                    "atlascloud": "atlascloud"}
_POLICY_PROTOCOL = {None: "kling", "kling-v3": "kling", "sora-2": "openai",
                    "kling-v3-fal": "fal", "wan-2.6": "atlascloud"}
_TAG = re.compile(r"\[soak-[0-9a-f]{8}-\d{6}\]")


class FaultPlan(BaseModel):
    """The fault knobs every protocol world gets (per-world overrides in `per_world`)."""

    failure_multiplier: float = Field(default=5.0, description="× the seed's failure_rate.")
    error_5xx_rate: float = 0.05
    reset_rate: float = 0.03
    truncate_rate: float = 0.05
    requeue_rate: float = 0.2
    per_world: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="world -> knob -> value, applied last "
        "(e.g. {'fal': {'reset_rate': 0}}).")

    def knobs(self) -> dict[str, dict[str, float]]:
        from sandbox.knobs import Knobs

        seed = Knobs()
        patch = {}
        for world in WORLDS:
            patch[world] = {
                "failure_rate": getattr(seed, world).failure_rate * self.failure_multiplier,
                "error_5xx_rate": self.error_5xx_rate, "reset_rate": self.reset_rate,
                "truncate_rate": self.truncate_rate, "requeue_rate": self.requeue_rate,
                **self.per_world.get(world, {}),
            }
        return patch


class Mix(BaseModel):
    """Shares of the manifest's rows per policy (the rest is Kling native); `twins` rows repeat
    an earlier request with `take: 1`."""

    sora: float = 0.1
    fal: float = 0.1
    wan: float = 0.1
    twins: float = 0.03


class SoakResult(BaseModel):
    jobs: int = Field(description="Requests in the manifest (rows).")
    clips: int = Field(description="Distinct clip ids among them.")
    provider_jobs: int = Field(description="Jobs the sandbox created for them.")
    billed_usd: float
    kills: int
    timeouts: int = 0
    rounds: int
    exit_codes: list[int]
    seconds: float
    faults: dict[str, int]
    double_charges: int
    double_charged: list[dict] = Field(default_factory=list)
    unbilled_orphans: int = 0
    failed_retries: int = Field(default=0, description="Jobs the provider failed that the "
                                "ledger charges to the clip, sent again: not double charges.")
    shared_jobs: int
    shared: list[dict] = Field(default_factory=list)
    lost_clips: int
    lost_by_protocol: dict[str, int] = Field(default_factory=dict)
    lost: list[dict] = Field(default_factory=list)
    unknown_clips: int
    unknown_by_protocol: dict[str, int] = Field(default_factory=dict)
    unknown_unpaid: int = Field(default=0, description="Unknown clips with no billed job: "
                                "never delivered, but not paid either (e.g. killed mid-submit).")
    unknown: list[dict] = Field(default_factory=list)
    states: dict[str, int] = Field(default_factory=dict)
    reconciled_rows: int
    ledger_minus_bill_usd: float
    per_job_differences: list[dict] = Field(default_factory=list)
    knobs: dict[str, dict[str, float]] = Field(default_factory=dict)
    last_output: str = ""

    def summary(self) -> dict[str, Any]:
        """The headline figures (the benchmark's one line of JSON)."""
        return self.model_dump(include={
            "jobs", "clips", "provider_jobs", "billed_usd", "kills", "timeouts", "rounds",
            "seconds", "double_charges", "unbilled_orphans", "failed_retries", "shared_jobs",
            "lost_clips", "lost_by_protocol", "unknown_clips", "unknown_by_protocol",
            "unknown_unpaid", "reconciled_rows", "ledger_minus_bill_usd", "faults"})


# the manifest

def write_manifest(path: Path, n: int, seed: int = 0, mix: Mix | None = None) -> list[dict]:
    """N rows across protocols, each prompt carrying a unique fixed-width tag (no tag is a
    substring of another); about `mix.twins` of them a take-1 twin of an earlier row."""
    mix = mix or Mix()
    rng = random.Random(seed)
    run = uuid.uuid4().hex[:8]
    rows: list[dict] = []
    for i in range(n):
        if rows and rng.random() < mix.twins:
            original = rng.choice([r for r in rows if not r.get("take")])
            rows.append({**original, "take": 1})
            continue
        draw = rng.random()
        policy = ("sora-2" if draw < mix.sora else
                  "kling-v3-fal" if draw < mix.sora + mix.fal else
                  "wan-2.6" if draw < mix.sora + mix.fal + mix.wan else
                  rng.choice([None, "kling-v3"]))
        row = {"prompt": f"A paper boat drifts down a rain gutter, shot {i} "
                         f"[soak-{run}-{i:06d}]",
               "duration": 5, "resolution": "720p"}
        if policy:
            row["policy"] = policy
        rows.append(row)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return rows


# the worker, killed and rerun

def start_prefect_server() -> tuple[Any, str]:
    """A Prefect server every worker run talks to (no temporary server per process)."""
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start()
    return server, server.api_url


def worker_env(home: Path, sandbox_url: str, time_scale: float, prefect_api_url: str,
               extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("REELFLOW_") and not k.startswith(("OPENAI_", "FAL_", "KLING_",
                                                                   "ATLASCLOUD_"))}
    env.update({
        "PYTHONPATH": str(REPO), "REELFLOW_HOME": str(home), "REELFLOW_SANDBOX": sandbox_url,
        "REELFLOW_SANDBOX_TIME_SCALE": str(time_scale), "REELFLOW_RETRY_DEADLINE_S": "10",
        "REELFLOW_SUBSCRIPTIONS": SUBSCRIPTIONS, "PREFECT_API_URL": prefect_api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **(extra or {}),
    })
    return env


def run_rounds(manifest: Path, env: dict[str, str], *, kill_every: tuple[float, float],
               kill_rounds: int, max_rounds: int, round_timeout_s: float, seed: int,
               log: Callable[[str], None] = lambda line: None,
               progress: Callable[[], object] = lambda: None) -> dict[str, Any]:
    """`reelflow batch MANIFEST --json` killed (its whole process group, SIGKILL) after a seeded
    random delay in `kill_every`, `kill_rounds` times; then rerun with no kill until a run exits
    0, two unkilled runs in a row leave the same `progress()` (what is left cannot be finished
    by running again: clips whose submit no lookup can resolve), or `max_rounds` runs in all.
    A run past `round_timeout_s` is killed too (a timeout)."""
    rng = random.Random(seed ^ 0x5EED)
    kills = timeouts = rounds = 0
    codes: list[int] = []
    output = ""
    last: object = object()
    while rounds < max_rounds:
        rounds += 1
        killing = kills < kill_rounds
        limit = rng.uniform(*kill_every) if killing else round_timeout_s
        started = time.monotonic()
        with open(manifest.with_suffix(f".round{rounds}.log"), "w+") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "batch", str(manifest), "--json"],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
            try:
                code = proc.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                code = None
            out.seek(0)
            output = out.read()
        elapsed = time.monotonic() - started
        if code is None:
            if killing:
                kills += 1
            else:
                timeouts += 1
            codes.append(-9)
            log(f"  round {rounds}: killed after {elapsed:.1f} s"
                f"{'' if killing else ' (timeout)'}")
            continue
        codes.append(code)
        log(f"  round {rounds}: exit {code} after {elapsed:.1f} s")
        if code == 0:  # done (in the kill phase too: a run that beat its kill finished)
            break
        if not killing:
            now = progress()
            if now == last:
                log(f"  round {rounds} changed nothing: what is left needs more than a rerun")
                break
            last = now
    return {"kills": kills, "timeouts": timeouts, "rounds": rounds, "exit_codes": codes,
            "output": output[-4000:]}


# the audit

def _cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"))


def audit(server, home: Path, rows: list[dict]) -> dict[str, Any]:
    """Set the sandbox's jobs and bill against the journal and ledger (see the module doc)."""
    from storage.ledger import read_ledger

    # the provider side: every job it created, grouped by the tag its prompt carries (all jobs
    # at once and matched here: the same as server.jobs(prompt=tag) per tag, in one call)
    bill: dict[str, Decimal] = defaultdict(Decimal)
    for row in server.usage():
        bill[row["job_id"]] += Decimal(row["usd"])
    jobs_by_tag: dict[str, list[dict]] = defaultdict(list)
    provider_jobs: dict[str, dict] = {}
    for job in server.jobs():
        match = _TAG.search(job["prompt"])
        if match:
            jobs_by_tag[match.group()].append(job)
            provider_jobs[job["id"]] = job

    # reelflow's side
    from storage.journal_folder import FolderJournal
    records = FolderJournal(home / "journal").records()
    by_clip = {r.clip_id: r for r in records}
    holders: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for record in records:
        for step in record.steps:
            if step.handle is not None:
                holders[step.handle.job_id].append((record.clip_id, step.index))
    ledger = read_ledger(home / "ledger")
    reconciled = 0
    ours: dict[str, Decimal] = defaultdict(Decimal)
    failed_for: dict[str, set[str]] = defaultdict(set)  # job id -> clips its failure is on
    for row in ledger:
        if row["job_id"] and row["event_kind"] == "fail" and row["clip_id"]:
            failed_for[row["job_id"]].add(row["clip_id"])
        if "reconciled" in (row.get("event_kind"), row.get("charge_kind")):
            reconciled += 1
        elif row["job_id"] and row["charge_kind"] != "storage":  # provider charges only
            ours[row["job_id"]] += Decimal(str(row["cost_usd"]))

    # requests: clip ids per tag (a take-1 twin shares its original's tag)
    from models import ClipRequest

    clips_by_tag: dict[str, set[str]] = defaultdict(set)
    protocol_of_tag: dict[str, str] = {}
    for row in rows:
        tag = _TAG.search(row["prompt"]).group()
        clips_by_tag[tag].add(ClipRequest.model_validate(row).clip_id)
        protocol_of_tag[tag] = _POLICY_PROTOCOL.get(row.get("policy"), "kling")

    double, unbilled_orphans, lost, unknown, retried = [], 0, [], [], []
    for tag, clip_ids in clips_by_tag.items():
        held = {job_id for job_id, owners in holders.items()
                if any(clip in clip_ids for clip, _ in owners)}
        # a clip left unknown paid (at most) once for a job it never learnt of: that job is
        # the clip's one payment — a lost clip, counted below, not a double charge
        unresolved = sum(1 for c in clip_ids if c in by_clip and by_clip[c].state == "unknown")
        for job in jobs_by_tag.get(tag, []):
            if job["id"] in held:
                continue
            if failed_for.get(job["id"], set()) & clip_ids:
                # a legitimate retry: the provider failed this job, the ledger holds its failure
                # charge on this clip, and the step was sent again (its handle now the new job)
                retried.append(job["id"])
                held.add(job["id"])
                continue
            if bill.get(job["id"], Decimal(0)) > 0 and unresolved:
                unresolved -= 1
            elif bill.get(job["id"], Decimal(0)) > 0:
                double.append({"tag": tag, "clips": sorted(c[:12] for c in clip_ids),
                               "job_id": job["id"], "protocol": job["protocol"],
                               "usd": float(bill[job["id"]]),
                               "clip_states": sorted(by_clip[c].state if c in by_clip
                                                     else "absent" for c in clip_ids)})
            else:
                unbilled_orphans += 1
        paid = [j for j in jobs_by_tag.get(tag, []) if bill.get(j["id"], Decimal(0)) > 0]
        for clip_id in sorted(clip_ids):
            record = by_clip.get(clip_id)
            state = record.state if record else "absent"
            protocol = _clip_protocol(record, paid) or protocol_of_tag[tag]
            own = {s.handle.job_id for s in record.steps if s.handle} if record else set()
            # a twin's own paid jobs: those its steps hold, or orphans of the tag it may own
            mine = [j for j in paid if j["id"] in own or j["id"] not in held]
            if state == "unknown":
                unknown.append({"clip": clip_id[:12], "tag": tag, "protocol": protocol,
                                "paid": bool(mine),
                                "message": next((s.message for s in reversed(record.steps)
                                                 if s.message), None)})
            if state != "done" and mine:
                lost.append({"clip": clip_id[:12], "tag": tag, "state": state,
                             "protocol": protocol, "jobs": [j["id"] for j in mine],
                             "usd": float(sum(bill[j["id"]] for j in mine))})

    shared = [{"job_id": job_id, "holders": [(c[:12], i) for c, i in owners]}
              for job_id, owners in holders.items() if len({c for c, _ in owners}) > 1]

    differences, total = [], Decimal(0)
    for job_id in sorted(set(ours) | set(bill)):
        diff = _cents(ours.get(job_id, Decimal(0))) - _cents(bill.get(job_id, Decimal(0)))
        total += diff
        if diff:
            job = provider_jobs.get(job_id, {})
            differences.append({"job_id": job_id, "protocol": job.get("protocol", "?"),
                                "ledger_usd": float(ours.get(job_id, 0)),
                                "bill_usd": float(bill.get(job_id, 0)),
                                "diff_usd": float(diff),
                                "held_by": [c[:12] for c, _ in holders.get(job_id, [])]})

    stats = server.stats()
    return {
        "clips": sum(len(c) for c in clips_by_tag.values()),
        "provider_jobs": len(provider_jobs),
        "billed_usd": float(sum(bill.values())),
        "faults": {k: v for k, v in sorted(stats.items())
                   if k.startswith("fault:") or k.startswith("429:")},
        "double_charges": len(double), "double_charged": double,
        "unbilled_orphans": unbilled_orphans, "failed_retries": len(retried),
        "shared_jobs": len(shared), "shared": shared,
        "lost_clips": len(lost), "lost": lost,
        "lost_by_protocol": dict(Counter(c["protocol"] for c in lost)),
        "unknown_clips": len(unknown),
        "unknown_by_protocol": dict(Counter(c["protocol"] for c in unknown)),
        "unknown_unpaid": sum(not c["paid"] for c in unknown), "unknown": unknown,
        "states": dict(Counter(r.state for r in records)),
        "reconciled_rows": reconciled,
        "ledger_minus_bill_usd": float(total),
        "per_job_differences": differences,
    }


def _clip_protocol(record, paid: list[dict]) -> str | None:
    if record is not None:
        for step in reversed(record.steps):
            if step.handle is not None:
                return _HANDLE_PROTOCOL.get(step.handle.protocol, step.handle.protocol)
    return paid[0]["protocol"] if paid else None


# the whole soak

def _quiet(log_path: Path, start: Callable[[], Any]) -> Any:
    """Start a child process with its stderr (the sandbox's tracebacks of every injected
    reset) going to `log_path` rather than ours."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(log_path, "ab") as log_file:
        os.dup2(log_file.fileno(), 2)
        try:
            return start()
        finally:
            os.dup2(saved, 2)
            os.close(saved)

def _journal_states(home: Path) -> dict[str, int]:

    states: dict[str, int] = defaultdict(int)
    from storage.journal_folder import FolderJournal
    for record in FolderJournal(home / "journal").records():
        states[record.state] += 1
    return dict(states)


def soak(workdir: Path, *, jobs: int = 2000, seed: int = 0, time_scale: float = 0.02,
         kill_every: tuple[float, float] = (3.0, 6.0), kill_rounds: int = 8,
         max_rounds: int = 20, round_timeout_s: float = 600.0,
         faults: FaultPlan | None = None, mix: Mix | None = None,
         prefect_api_url: str | None = None, extra_env: dict[str, str] | None = None,
         log: Callable[[str], None] = lambda line: None) -> SoakResult:
    """Start a sandbox under `workdir`, raise its fault knobs, run the batch with kills, audit.
    Without `prefect_api_url` a Prefect server is started (and stopped) here."""
    from tests.sandbox_process import start_sandbox

    workdir.mkdir(parents=True, exist_ok=True)
    faults = faults or FaultPlan()
    prefect = None
    if prefect_api_url is None:
        prefect, prefect_api_url = start_prefect_server()
    server = _quiet(workdir / "sandbox.log", lambda: start_sandbox(
        workdir / "sandbox", "--calm", "--shared-render", time_scale=time_scale))
    try:
        knobs = faults.knobs()
        server.knobs(seed=seed, **knobs)
        manifest = workdir / "soak.jsonl"
        rows = write_manifest(manifest, jobs, seed, mix)
        home = workdir / "home"
        env = worker_env(home, server.url, time_scale, prefect_api_url, extra_env)
        log(f"soak: {jobs} requests, time_scale {time_scale}, kills every "
            f"{kill_every[0]}–{kill_every[1]} s × {kill_rounds}, at most {max_rounds} rounds")
        started = time.monotonic()
        runs = run_rounds(manifest, env, kill_every=kill_every, kill_rounds=kill_rounds,
                          max_rounds=max_rounds, round_timeout_s=round_timeout_s, seed=seed,
                          log=log, progress=lambda: _journal_states(home))
        seconds = time.monotonic() - started
        found = audit(server, home, rows)
    finally:
        server.stop()
        if prefect is not None:
            prefect.stop()
    return SoakResult(jobs=jobs, kills=runs["kills"], timeouts=runs["timeouts"],
                      rounds=runs["rounds"], exit_codes=runs["exit_codes"],
                      seconds=round(seconds, 1), knobs=knobs, last_output=runs["output"],
                      **found)
