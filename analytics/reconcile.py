"""Reconciliation: reelflow's ledger against the provider's own usage, job by job.

The provider side arrives as rows (the sandbox's /_admin/usage, or a usage export file) with at
least job_id and usd; it is registered with DuckDB as a relation and joined — nothing is pasted
into SQL. Every charge is matched, or listed with the difference.
"""

from decimal import Decimal

import duckdb
import pyarrow as pa
from pydantic import BaseModel

from models import cents


class Mismatch(BaseModel):
    job_id: str
    ledger_usd: Decimal
    provider_usd: Decimal
    difference_usd: Decimal
    problem: str


class Reconciliation(BaseModel):
    matched_jobs: int
    ledger_usd: Decimal
    provider_usd: Decimal
    mismatches: list[Mismatch]

    @property
    def ok(self) -> bool:
        return not self.mismatches


def reconcile(con: duckdb.DuckDBPyConnection, usage: list[dict], *,
              listed_jobs_only: bool = False) -> Reconciliation:
    """Compare per-job totals to the cent. `listed_jobs_only`: the usage covers some of the
    ledger's jobs (one provider's reconcilable accounts), so only those are compared."""
    provider = pa.table({"job_id": [str(u["job_id"]) for u in usage],
                         "usd": pa.array([Decimal(str(u["usd"])) for u in usage],
                                         pa.decimal128(18, 6))})
    con.register("provider_usage", provider)
    rows = con.execute("""
        WITH ours AS (
            SELECT job_id, sum(cost_usd) AS usd FROM ledger
            WHERE job_id IS NOT NULL AND (NOT $listed OR job_id IN (
                SELECT job_id FROM provider_usage)) GROUP BY job_id),
        theirs AS (SELECT job_id, sum(usd) AS usd FROM provider_usage GROUP BY job_id)
        SELECT coalesce(o.job_id, t.job_id) AS job_id, coalesce(o.usd, 0) AS ours,
               coalesce(t.usd, 0) AS theirs, o.job_id IS NULL AS missing_in_ledger,
               t.job_id IS NULL AS missing_at_provider
        FROM ours o FULL OUTER JOIN theirs t USING (job_id)
        ORDER BY job_id""", {"listed": listed_jobs_only}).fetchall()
    con.unregister("provider_usage")
    mismatches, matched = [], 0
    total_ours, total_theirs = Decimal(0), Decimal(0)
    for job_id, ours, theirs, no_ledger, no_provider in rows:
        ours, theirs = Decimal(ours), Decimal(theirs)
        total_ours, total_theirs = total_ours + ours, total_theirs + theirs
        if cents(ours) == cents(theirs):
            matched += 1
            continue
        problem = ("charged by the provider, missing from the ledger" if no_ledger else
                   "in the ledger, not on the provider's bill" if no_provider else
                   "amounts differ")
        mismatches.append(Mismatch(job_id=job_id, ledger_usd=ours, provider_usd=theirs,
                                   difference_usd=theirs - ours, problem=problem))
    return Reconciliation(matched_jobs=matched, ledger_usd=total_ours,
                          provider_usd=total_theirs, mismatches=mismatches)
