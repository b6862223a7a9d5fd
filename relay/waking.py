"""Waking a suspended run: the Prefect API's resume (the server reschedules the run; a live
worker starts it again from the top, and it continues from the journal without sending
anything again). A run no longer suspended (resumed by the backstop, cancelled, timed out)
refuses the resume: nothing to do. A run not suspended yet refuses it too: its last job came
back while it was writing its group, a moment before its suspension — so the resume is asked
again, in the background, until the run has suspended or ended (the backstop is behind it)."""

import asyncio
import logging

import httpx

from relay.app import WakeFailed
from storage.callbacks import WaitGroup

RETRY_EVERY_S, RETRY_FOR_S = 1.0, 120.0
log = logging.getLogger("reelflow.relay")
_retrying: set[asyncio.Task] = set()  # held, so a pending retry is not collected


async def _resumed(flow_run_id: str) -> tuple[bool, bool]:
    """(accepted, the run is still before its suspension)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.responses import SetStateStatus

    async with get_client() as client:
        result = await client.resume_flow_run(flow_run_id)
        if result.status == SetStateStatus.ACCEPT:
            return True, False
        state = (await client.read_flow_run(flow_run_id)).state
        return False, state is not None and not (state.is_final() or state.is_paused())


async def _until_suspended(flow_run_id: str) -> None:
    loop = asyncio.get_running_loop()
    until = loop.time() + RETRY_FOR_S
    while loop.time() < until:
        await asyncio.sleep(RETRY_EVERY_S)
        try:
            accepted, early = await _resumed(flow_run_id)
        except (httpx.HTTPError, OSError) as err:
            log.warning("resuming run %s again failed: %s", flow_run_id, err)
            continue
        if accepted or not early:
            log.info("run %s %s", flow_run_id, "resumed" if accepted else "ended meanwhile")
            return
    log.warning("run %s did not suspend within %.0f s: the backstop resumes it", flow_run_id,
                RETRY_FOR_S)


async def resume(group: WaitGroup) -> bool:
    """Whether the run was suspended and is now rescheduled, or is about to suspend and will
    be resumed once it has."""
    from prefect.exceptions import ObjectNotFound

    try:
        accepted, early = await _resumed(group.flow_run_id)
    except ObjectNotFound:  # the run was deleted
        return False
    except (httpx.HTTPError, OSError) as err:
        raise WakeFailed(f"{type(err).__name__}: {err}") from err
    if early:
        retry = asyncio.create_task(_until_suspended(group.flow_run_id))
        _retrying.add(retry)
        retry.add_done_callback(_retrying.discard)
    return accepted or early
