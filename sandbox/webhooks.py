"""Webhook delivery, the way each provider does it: fal POSTs once at the terminal state (signed,
sandbox/signing.py), Kling POSTs the task object on every status change (unsigned), AtlasCloud
POSTs once at the terminal state (signed). Each protocol module says what it sends (a `Hook`);
this module decides when, and retries until a 2xx.

A job's states are read off the clock lazily (`Job.state(now)`), so nothing happens when a job
finishes: a background worker (one thread running an asyncio loop, so request handling never
waits on a receiver) wakes when the next transition or delivery falls due (at most `IDLE_S`
apart, at least `TICK_S`; a new subscription wakes it at once), finds the subscribed jobs whose
next transition the clock has passed, and enqueues one delivery per transition, its body as of
that instant. Due deliveries are POSTed concurrently (at most `MAX_IN_FLIGHT`), one job's one at
a time in the order they fell due, so Kling's status callbacks arrive in order unless a knob or a
retry says otherwise; a non-2xx, an error or a timeout is retried after `backoff_s` (scaled),
doubling, up to `max_attempts`. Signatures carry the sandbox clock's unix seconds at the attempt
(real time unless a test moved the clock), so a retry is signed afresh.

Subscriptions, deliveries and attempts are rows in the sandbox's SQLite store, so a restarted
sandbox sends what was pending; a delivery in flight when it stopped is sent again (at least
once, as the providers promise). The knobs (`Knobs.webhooks`) add a delay, duplicates, deliveries
held back so later ones overtake them, dropped deliveries and wrong signatures, each drawn from
the seeded world. `GET /_admin/webhooks` lists every delivery with its attempts.
"""

import asyncio
import json
import logging
import threading
import uuid
from typing import Literal, Protocol

import httpx
from pydantic import BaseModel

from sandbox.jobs import Job
from sandbox.service import Sandbox
from sandbox.signing import Signer

TICK_S = 0.02
IDLE_S = 0.5
RETRY_BODY_S = 1.0
MAX_IN_FLIGHT = 64
SCHEDULE_BATCH = 500
log = logging.getLogger("sandbox.webhooks")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hooks (
    job_id TEXT PRIMARY KEY, protocol TEXT, url TEXT, base TEXT, sent INTEGER DEFAULT 0,
    next_at REAL, done INTEGER DEFAULT 0);
CREATE INDEX IF NOT EXISTS hooks_due ON hooks(done, next_at);
CREATE TABLE IF NOT EXISTS deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE, job_id TEXT, state TEXT,
    due_at REAL, data TEXT);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(state, due_at);
CREATE TABLE IF NOT EXISTS attempts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, delivery_id TEXT, attempt INTEGER, at REAL,
    status_code INTEGER, error TEXT);
"""

State = Literal["pending", "sending", "delivered", "failed", "dropped"]


class Delivery(BaseModel):
    """One POST to make (and retry): its body is fixed when enqueued, its signature is made at
    each attempt (timestamps must be fresh)."""

    id: str
    job_id: str
    protocol: str
    account: str
    url: str
    event: str
    body: str
    attempt: int = 0
    copy_of: str | None = None       # a duplicate (the knob) of this delivery
    held_back: bool = False           # delayed so later deliveries overtake it (the knob)
    wrong_signature: bool = False


class Hook(Protocol):
    """What a protocol delivers."""

    def events(self, job: Job) -> list[tuple[float, str]]:
        """The (instant, event) pairs the protocol calls back for, in order, known so far."""

    def callback(self, job: Job, at: float, base: str) -> dict:
        """The body as of `at`; `base`: the sandbox's URL as the submitting client saw it."""

    def headers(self, delivery: Delivery, body: bytes, timestamp: str) -> dict[str, str]:
        """The protocol's own headers (its signature) for one attempt."""


class Webhooks:
    def __init__(self, sandbox: Sandbox):
        self.sandbox, self.store = sandbox, sandbox.store
        self.store.script(_SCHEMA)
        self.store.query("UPDATE deliveries SET state = 'pending' WHERE state = 'sending'")
        self.signer = Signer(self.store)
        self._hooks: dict[str, Hook] = {}
        self._stop, self._wake = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None

    def register(self, protocol: str, hook: Hook) -> None:
        self._hooks[protocol] = hook

    # subscriptions
    def subscribe(self, job: Job, url: str, base: str) -> None:
        self.store.query("INSERT OR REPLACE INTO hooks (job_id, protocol, url, base, next_at) "
                         "VALUES (?, ?, ?, ?, ?)", (job.id, job.protocol, url, base,
                                                   job.created_at))
        self._wake.set()

    def poke(self, job_id: str) -> None:
        """The job's timeline changed (a cancel): look at it on the next tick."""
        self.store.query("UPDATE hooks SET next_at = 0 WHERE job_id = ? AND done = 0",
                         (job_id,))
        self._wake.set()

    def clear(self) -> None:
        """Forget open subscriptions and unsent deliveries (an admin reset)."""
        self.store.query("UPDATE hooks SET done = 1")
        self.store.query("UPDATE deliveries SET state = 'dropped' WHERE state = 'pending'")

    # the log
    def deliveries(self, job_id: str | None = None) -> list[dict]:
        query, args = "SELECT id, state, due_at, data FROM deliveries", []
        if job_id:
            query, args = query + " WHERE job_id = ?", [job_id]
        # the deliveries before their attempts: an attempt is written before the state it
        # leads to, so a state read first never shows fewer attempts than led to it (read the
        # other way round, a delivery failing in between showed `failed` after 2 of 3)
        found = self.store.query(query + " ORDER BY seq", args)
        attempts: dict[str, list[dict]] = {}
        for delivery_id, attempt, at, code, error in self.store.query(
                "SELECT delivery_id, attempt, at, status_code, error FROM attempts ORDER BY seq"):
            attempts.setdefault(delivery_id, []).append(
                {"attempt": attempt, "at": at, "status_code": code, "error": error})
        rows = []
        for delivery_id, state, due_at, data in found:
            delivery = Delivery.model_validate_json(data)
            rows.append({**delivery.model_dump(exclude={"body", "attempt"}), "state": state,
                         "due_at": due_at, "attempts": attempts.get(delivery_id, [])})
        return rows

    # the worker
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()),
                                        name="sandbox-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    async def _run(self) -> None:
        in_flight: set[asyncio.Task] = set()
        async with httpx.AsyncClient() as client:
            while not self._stop.is_set():
                self._wake.clear()
                pause = TICK_S
                try:
                    await asyncio.to_thread(self._schedule)
                    for delivery in self._take_due(MAX_IN_FLIGHT - len(in_flight)):
                        task = asyncio.create_task(self._send(client, delivery))
                        in_flight.add(task)
                        task.add_done_callback(in_flight.discard)
                    pause = self._pause()
                except Exception:  # one bad job must not stop every delivery
                    log.exception("webhook worker tick failed")
                await asyncio.to_thread(self._wake.wait, pause)
            for task in in_flight:
                task.cancel()

    def _schedule(self) -> None:
        now = self.sandbox.clock.now()
        for job_id, protocol, url, base, sent in self.store.query(
                "SELECT job_id, protocol, url, base, sent FROM hooks WHERE done = 0 AND "
                "next_at <= ? ORDER BY next_at LIMIT ?", (now, SCHEDULE_BATCH)):
            job, hook = self.store.get(job_id), self._hooks.get(protocol)
            if job is None or hook is None:
                self.store.query("UPDATE hooks SET done = 1 WHERE job_id = ?", (job_id,))
                continue
            try:
                self._schedule_job(job, hook, url, base, sent, now)
            except Exception:  # a job whose body cannot be made must not hold up the others
                log.exception("webhook for job %s: the body could not be made", job_id)
                self.store.query("UPDATE hooks SET next_at = ? WHERE job_id = ?",
                                 (now + RETRY_BODY_S, job_id))

    def _schedule_job(self, job: Job, hook: Hook, url: str, base: str, sent: int,
                      now: float) -> None:
        """Enqueue the job's transitions the clock has passed since the `sent` first ones,
        counting each as it is enqueued (a failure part-way resumes after the last)."""
        events = hook.events(job)
        due = [e for e in events[sent:] if e[0] <= now]
        for at, event in due:
            self._enqueue(job, url, event, hook.callback(job, at, base), now)
            sent += 1
            self.store.query("UPDATE hooks SET sent = ? WHERE job_id = ?", (sent, job.id))
        left = events[sent:]
        self.store.query("UPDATE hooks SET next_at = ?, done = ? WHERE job_id = ?",
                         (left[0][0] if left else now, int(not left), job.id))

    def _pause(self) -> float:
        """Real seconds until the next transition or delivery falls due (the virtual clock
        runs at real speed; only durations are scaled)."""
        ((hook,),) = self.store.query("SELECT MIN(next_at) FROM hooks WHERE done = 0")
        ((delivery,),) = self.store.query(
            "SELECT MIN(due_at) FROM deliveries WHERE state = 'pending'")
        due = min((at for at in (hook, delivery) if at is not None), default=None)
        wait = IDLE_S if due is None else due - self.sandbox.clock.now()
        return min(max(wait, TICK_S), IDLE_S)

    def _draw(self, purpose: str, rate: float) -> bool:
        return rate > 0 and self.sandbox.rng(f"webhook:{purpose}").random() < rate

    def _enqueue(self, job: Job, url: str, event: str, body: dict, now: float) -> None:
        knobs = self.sandbox.knobs.webhooks
        original = Delivery(id=uuid.uuid4().hex, job_id=job.id, protocol=job.protocol,
                            account=job.account, url=url, event=event,
                            body=json.dumps(body, separators=(",", ":")))
        copies = knobs.duplicates if self._draw("duplicate", knobs.duplicate_rate) else 0
        for n in range(1 + copies):
            delivery = original if n == 0 else original.model_copy(
                update={"id": uuid.uuid4().hex, "copy_of": original.id})
            delivery.held_back = self._draw("order", knobs.out_of_order_rate)
            delivery.wrong_signature = self._draw("signature", knobs.wrong_signature_rate)
            state = "dropped" if self._draw("drop", knobs.drop_rate) else "pending"
            due = now + self.sandbox.scaled(
                knobs.delay_s + (knobs.out_of_order_s if delivery.held_back else 0.0))
            self.store.query("INSERT INTO deliveries (id, job_id, state, due_at, data) VALUES "
                             "(?, ?, ?, ?, ?)", (delivery.id, job.id, state, due,
                                                 delivery.model_dump_json()))

    def _take_due(self, limit: int) -> list[Delivery]:
        if limit <= 0:
            return []
        with self.store.lock:
            busy = {r[0] for r in self.store.query(
                "SELECT DISTINCT job_id FROM deliveries WHERE state = 'sending'")}
            rows = []
            for delivery_id, job_id, data in self.store.query(
                    "SELECT id, job_id, data FROM deliveries WHERE state = 'pending' AND "
                    "due_at <= ? ORDER BY due_at, seq", (self.sandbox.clock.now(),)):
                if job_id not in busy and len(rows) < limit:
                    busy.add(job_id)
                    rows.append((delivery_id, data))
            self.store.query(
                f"UPDATE deliveries SET state = 'sending' WHERE id IN "
                f"({','.join('?' * len(rows))})", [r[0] for r in rows])
        return [Delivery.model_validate_json(data) for _, data in rows]

    async def _send(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        knobs = self.sandbox.knobs.webhooks
        body = delivery.body.encode()
        timestamp = str(int(self.sandbox.clock.now()))
        headers = {"content-type": "application/json", "user-agent": "reelflow-sandbox",
                   **self._hooks[delivery.protocol].headers(delivery, body, timestamp)}
        code = error = None
        try:
            answer = await client.post(delivery.url, content=body, headers=headers,
                                       timeout=knobs.timeout_s)
            code = answer.status_code
        except Exception as err:  # whatever fails an attempt (refused, timeout, bad URL) is one
            error = f"{type(err).__name__}: {err}"
        attempt, at = delivery.attempt + 1, self.sandbox.clock.now()
        self.store.query("INSERT INTO attempts (delivery_id, attempt, at, status_code, error) "
                         "VALUES (?, ?, ?, ?, ?)", (delivery.id, attempt, at, code, error))
        delivery.attempt = attempt
        state, due = "pending", at + self.sandbox.scaled(knobs.backoff_s * 2 ** (attempt - 1))
        if code is not None and 200 <= code < 300:
            state = "delivered"
        elif attempt >= knobs.max_attempts:
            state = "failed"
        self.store.query("UPDATE deliveries SET state = ?, due_at = ?, data = ? WHERE id = ?",
                         (state, due, delivery.model_dump_json(), delivery.id))
        self._wake.set()
