"""What a command checks before any flow or temporary Prefect server starts, in about a second:
the request plans (a misspelled policy is named with the closest valid one), the clip an
extension names is archived here (any unique prefix of its id), every row of a batch plans,
and `--fan-out deployments` finds its deployment on a Prefect server. A mistake found here
exits 2 at once instead of after a server start and a failed flow run."""

import asyncio
from datetime import UTC, datetime

from cli.context import load_context
from cli.errors import UserError
from cli.plan import make_plan
from models import ClipRequest, RoutePlan
from models.batch import CHUNK_DEPLOYMENT, Manifest
from providers.router import PlanError
from tasks.parents import archived_parent


def planned(request: ClipRequest) -> RoutePlan:
    """The request's plan, made as `reelflow plan` makes it (nothing is started)."""
    return make_plan(load_context(), request, None, None, datetime.now(UTC))


def archived_clip(prefix: str) -> str:
    """The full id of the archived clip `prefix` starts (the short ids `generate` prints)."""
    journal = load_context().journal()
    matches = journal.matching(prefix) if prefix.isalnum() else []
    if len(matches) > 1:
        raise UserError("clip_id", f"{prefix!r} starts {len(matches)} clips: give more of it",
                        [m[:16] for m in matches[:5]])
    if not matches:
        raise UserError("clip_id", f"no clip {prefix!r} in this home: `reelflow clips` "
                        "lists them")
    archived_parent(journal, matches[0])  # archived, with its plan and outcome
    return matches[0]


def manifest_rows(manifest: Manifest) -> None:
    """Every unique row plans alone; the rows that do not are named with why."""
    context = load_context()
    now = datetime.now(UTC)
    problems = []
    for item in manifest.unique():
        try:
            make_plan(context, item.request, None, None, now)
        except PlanError as err:
            allowed = f" (allowed: {', '.join(err.allowed)})" if err.allowed else ""
            problems.append((f"row {item.row}: {err.field}", err.message + allowed))
    if problems:
        field, message = problems[0]
        raise UserError(field, message, problems=problems[:20])


def chunk_deployment() -> None:
    """`--fan-out deployments` sends chunks to run-batch/chunk on the Prefect server at
    PREFECT_API_URL: both must exist before the batch starts."""
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise UserError("fan_out", "deployments need a Prefect server: start one with "
                        "`scripts/stack.py up` and set PREFECT_API_URL", ["tasks"])

    async def find() -> bool:
        from prefect.client.orchestration import get_client
        from prefect.exceptions import ObjectNotFound

        async with get_client() as client:
            try:
                await client.read_deployment_by_name(CHUNK_DEPLOYMENT)
            except ObjectNotFound:
                return False
        return True

    try:
        found = asyncio.run(find())
    except Exception as err:
        raise UserError("fan_out", f"the Prefect server at {PREFECT_API_URL.value()} did not "
                        f"answer ({type(err).__name__}): start it with `scripts/stack.py up`",
                        ["tasks"]) from None
    if not found:
        raise UserError("fan_out", f"no deployment {CHUNK_DEPLOYMENT} on "
                        f"{PREFECT_API_URL.value()}: deploy the flows with `scripts/stack.py "
                        "up`", ["tasks"])
