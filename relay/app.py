"""The relay's web app: one route per step's callback, `POST /hooks/{protocol}/{clip}/{step}/
{secret}`, answering in the order a delivery is checked — nothing changes until every check
passed:

1. a JSON body (415 otherwise) of at most 1 MiB (413);
2. the per-job secret in the path (401: a URL we did not hand out);
3. the provider's signature and timestamp where it signs (fal, AtlasCloud; 401 forged or stale,
   logged);
4. the protocol's body (400 when it is not one);
5. a journaled step whose job is the one the delivery names (404 unknown job; 409 while the
   step's submit is still being journaled, so the provider delivers again);
6. the first delivery of its id (a provider's retry or duplicate: 200, nothing more);
7. a delivery that ends the job marks the step ended, and when that completes the group of
   jobs the run suspended on (a chunk's clips, or one clip's), wakes the run (200 with its
   id; 503 when the Prefect API cannot be reached, so that the provider delivers again — the
   delivery is kept as taken only once it did what it is for).

No delivery records a charge or a state: the woken run asks the provider for the job's status
and acts on that answer, as a polling run would.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from models.callback import HOOKED, Callback
from relay.deliveries import Malformed, Said, said_by_atlascloud, said_by_fal, said_by_kling
from relay.signatures import Forged, Jwks, verify_atlascloud, verify_fal
from storage.callbacks import Callbacks, Delivery, WaitGroup
from storage.journal import Journal

MAX_BODY = 1 << 20
log = logging.getLogger("reelflow.relay")

Wake = Callable[[WaitGroup], Awaitable[bool]]


class TooLarge(Exception):
    pass


class WakeFailed(Exception):
    """The Prefect API could not be asked to resume the run: answered 503, so the provider
    delivers again."""


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _refused(status: int, why: str) -> JSONResponse:
    return JSONResponse({"error": why}, status_code=status)


class Relay:
    def __init__(self, journal: Journal, secret: str, keys: dict[str, Jwks], wake: Wake,
                 clock: Callable[[], float] = time.time):
        self.journal, self.secret, self.keys, self.wake = journal, secret, keys, wake
        self.callbacks = Callbacks(journal)
        self.clock = clock

    def said(self, protocol: str, headers, body: bytes) -> Said:
        """What the delivery says, once its signature checks (Forged, Malformed otherwise)."""
        now = self.clock()
        if protocol == "fal_queue":
            return said_by_fal(body, verify_fal(headers, body, self._keys(protocol), now))
        if protocol == "atlascloud":
            verify_atlascloud(headers, body, self._keys(protocol), now)
            return said_by_atlascloud(body)
        return said_by_kling(body)

    def _keys(self, protocol: str) -> Jwks:
        if protocol not in self.keys:
            raise Forged(f"no keys configured for {protocol}'s signatures")
        return self.keys[protocol]

    async def receive(self, request: Request) -> JSONResponse:
        params = request.path_params
        if params["protocol"] not in HOOKED:
            return _refused(404, f"no callbacks for {params['protocol']!r}: one of "
                            f"{', '.join(HOOKED)}")
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json":
            return _refused(415, "content-type must be application/json")
        try:
            body = await _body(request)
        except TooLarge:
            return _refused(413, f"the body is over {MAX_BODY} bytes")
        try:
            hook = Callback(protocol=params["protocol"], clip_id=params["clip"],
                            index=params["index"])
        except ValueError:
            return _refused(404, "not a callback path this relay hands out")
        if not hook.matches(params["token"], self.secret):
            log.warning("refused a delivery for clip %s step %d: the path's secret is wrong",
                        hook.clip_id[:12], hook.index)
            return _refused(401, "the callback's secret does not match")
        try:  # in a thread: a key fetch must not hold up every other delivery
            said = await asyncio.to_thread(self.said, hook.protocol, request.headers, body)
        except Forged as err:
            log.warning("refused a %s delivery for clip %s: %s", hook.protocol,
                        hook.clip_id[:12], err)
            return _refused(401, str(err))
        except Malformed as err:
            return _refused(400, str(err))
        return await self._taken(hook, said)

    async def _taken(self, hook: Callback, said: Said) -> JSONResponse:
        record = await asyncio.to_thread(self.journal.read, hook.clip_id)
        step = record.steps[hook.index] if record and hook.index < len(record.steps) else None
        if step is not None and step.handle is None and step.state in ("intent", "unknown"):
            # the submit's answer is not journaled yet (Kling calls back at `submitted`, as
            # the send returns): the provider delivers again
            return _refused(409, "the step's job is not journaled yet: deliver again")
        if step is None or step.handle is None or (step.handle.protocol, step.handle.job_id) \
                != (hook.protocol, said.job_id):
            return _refused(404, f"no job {said.job_id} journaled for this step")
        delivery = Delivery(id=said.delivery_id, protocol=hook.protocol, job_id=said.job_id,
                            clip_id=hook.clip_id, index=hook.index, terminal=said.terminal)
        if await asyncio.to_thread(self.callbacks.seen, delivery):
            return JSONResponse({"duplicate": True, "woke": None})
        waiting = await asyncio.to_thread(self.callbacks.waiting_on, hook.clip_id, hook.index)
        woke = None
        group = await asyncio.to_thread(self.callbacks.ended, waiting) \
            if said.terminal and waiting is not None and waiting.job_id == said.job_id else None
        if group is not None:
            try:
                woke = group.flow_run_id if await self.wake(group) else None
            except WakeFailed as err:  # the provider retries; the backstop is behind it
                log.warning("could not wake run %s: %s", group.flow_run_id, err)
                return _refused(503, f"could not wake the waiting run: {err}")
            await asyncio.to_thread(self.callbacks.resumed, group)
        if not await asyncio.to_thread(self.callbacks.taken, delivery):
            return JSONResponse({"duplicate": True, "woke": woke})
        log.info("%s delivery for job %s (%s): %s", hook.protocol, said.job_id,
                 "ended" if said.terminal else "in progress",
                 f"woke run {woke}" if woke else "no run to wake")
        return JSONResponse({"duplicate": False, "woke": woke})


def create_app(relay: Relay) -> Starlette:
    return Starlette(routes=[
        Route("/hooks/{protocol}/{clip}/{index:int}/{token}", relay.receive, methods=["POST"]),
        Route("/healthz", lambda _: JSONResponse({"ok": True}), methods=["GET"]),
    ])
