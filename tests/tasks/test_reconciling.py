"""The reconciliation table a person reads in the UI: dollars to the cent, a total, and every
job or account the comparison could not cover named with why."""

from decimal import Decimal

from tasks.reconciling import JobBill, ReconciledCharge, Reconciliation, reconciliation_table


def test_the_table_names_each_job_its_difference_and_the_total():
    found = Reconciliation(
        jobs=[JobBill(job_id="job-a", clip_id="a" * 64, account="kling_native:kling:standard",
                      ledger_usd=Decimal("0.14"), provider_usd=Decimal("0.28"),
                      added_usd=Decimal("0.14")),
              JobBill(job_id="job-b", clip_id="b" * 64, account="kling_native:kling:standard",
                      ledger_usd=Decimal("0.139999"), provider_usd=Decimal("0.14")),
              JobBill(job_id="job-c", clip_id="c" * 64, account="kling_native:kling:standard",
                      ledger_usd=Decimal("0.70"), provider_usd=Decimal("0.56"))],
        reconciled=[ReconciledCharge(clip_id="a" * 64, job_id="job-a", usd=Decimal("0.14"))],
        unclaimed_usd={"job-z": Decimal("1.05")},
        not_reconcilable=["openai_videos:sora:api"],
        day_gaps={"openai_videos:sora:api": {"2026-11-30": Decimal("0.28")}})
    rows = {row["job"]: row for row in reconciliation_table(found)}
    assert rows["job-a"] == {
        "job": "job-a", "clip": "a" * 12, "account": "kling_native:kling:standard",
        "ledger": "$0.28", "provider": "$0.28", "difference": "$0.00",
        "note": "$0.14 found only on the bill, added to the ledger"}
    assert (rows["job-b"]["ledger"], rows["job-b"]["difference"]) == ("$0.14", "$0.00")
    assert rows["job-c"]["difference"] == "$0.14"
    assert rows["job-c"]["note"] == "ledger higher than the bill"
    total = rows["total (3 jobs)"]
    assert (total["ledger"], total["provider"], total["difference"]) == ("$1.12", "$0.98",
                                                                         "$0.14")
    assert rows["job-z"]["difference"] == "−$1.05" and "no clip" in rows["job-z"]["note"]
    sora = rows["—"]
    assert sora["account"] == "openai_videos:sora:api"
    assert "2026-11-30: the bill exceeds the ledger by $0.28" in sora["note"]
