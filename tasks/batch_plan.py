"""A manifest planned before anything is paid: every unique request routed, rows no model can
serve named (the batch stops there). A credit-limited account (Kling Free: 66 s a month) takes
rows in manifest order until its credits are used; later rows are routed elsewhere, saying why —
each row alone would fit, so the router cannot see it, and the provider would refuse them
mid-batch. Where the provider has billed a model and tier above the catalog's price (the
report's price drift), that row's estimate is raised to the billed rate: the budget guard
counts the larger of the two."""

from decimal import Decimal

from pydantic import BaseModel

from models import RoutePlan, usd_text
from models.batch import Manifest, ManifestRow
from providers.router import PlanError
from tasks.edits import is_edit, plan_edit
from tasks.manifest import ManifestError
from tasks.reporting import known_drift
from tasks.routing import route
from tasks.runtime import Runtime


class BatchPlan(BaseModel):
    """Each unique request's plan, and the rows that ask for each clip."""

    plans: dict[str, RoutePlan]
    rows_of: dict[str, list[int]]

    def estimate(self, clip_id: str) -> Decimal:
        return Decimal(self.plans[clip_id].cost_usd)

    def total(self) -> Decimal:
        return sum((Decimal(p.cost_usd) for p in self.plans.values()), Decimal(0))

    def columns(self, item: ManifestRow) -> dict:
        """What a batch item says before its outcome is known."""
        clip = item.request.clip_id
        return {"row": item.row, "clip_id": clip, "estimate_usd": float(self.estimate(clip)),
                "model": self.plans[clip].model, "duplicates": self.rows_of[clip][1:]}


def plan_manifest(rt: Runtime, manifest: Manifest, *, budgeted: bool = False) -> BatchPlan:
    """`budgeted`: the estimates guard a budget, so they are raised to the billed rate where
    drift is known (which reads the ledger: only then)."""
    rows_of: dict[str, list[int]] = {}
    for item in manifest.rows:
        rows_of.setdefault(item.request.clip_id, []).append(item.row)
    drift = known_drift(rt.settings) if budgeted else {}
    return BatchPlan(plans=plan_all(rt, manifest.unique(), drift), rows_of=rows_of)


def plan_all(rt: Runtime, rows: list[ManifestRow],
             drift: dict[tuple[str, str], Decimal] | None = None) -> dict[str, RoutePlan]:
    plans, problems = {}, []
    drift = drift or {}
    used: dict[str, float] = {}
    full: dict[str, str] = {}
    for item in rows:
        try:
            # an edit of an archived clip is estimated as what it will run as
            request = plan_edit(rt, item.request).request if is_edit(item.request) \
                else item.request
            while True:  # ends: each turn rules out one more account
                decision = route(request, rt, full=full)
                tier = rt.catalog.row(decision.model).tier_named(decision.tier)
                cap = tier.monthly_seconds_cap
                if cap is None or used.get(decision.account, 0) + decision.seconds_billed <= cap:
                    break
                full[decision.account] = (f"its {tier.monthly_credits} credits a month "
                                          f"({cap:g} s) are taken by earlier rows of this batch")
            used[decision.account] = used.get(decision.account, 0) + decision.seconds_billed
            plans[item.request.clip_id] = at_billed_rate(decision, drift)
        except PlanError as err:
            problems.append((f"row {item.row}: {err.field}", err.message))
    if problems:
        raise ManifestError(problems[0][0], problems[0][1], problems=problems[:20])
    return plans


def at_billed_rate(plan: RoutePlan, drift: dict[tuple[str, str], Decimal]) -> RoutePlan:
    """The plan with its estimate raised by the drift its model and tier have shown."""
    above = drift.get((plan.model, plan.tier))
    if not above:
        return plan
    raised = (Decimal(plan.cost_usd) * (1 + above)).quantize(Decimal("0.000001"))
    return plan.model_copy(update={"cost_usd": raised, "reasons": [*plan.reasons, (
        f"estimate raised {above:.1%} to {usd_text(raised)}: the provider has billed "
        f"{plan.model} {plan.tier} that much above the catalog's price")]})
