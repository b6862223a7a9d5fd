"""A folder journal copied into PostgreSQL (`reelflow journal migrate --to postgresql://...`):
every record as it was written (any version: records upgrade on read), every claim, and every
quarantined record with what it held — so that no clip that paid is forgotten and none that
lost its record is sent blind. Idempotent: a record or claim already in the database stays as
it is there (it may have moved on), so running it again, or while workers still use the
folder, copies only what is new. Verified by counts: every source record and claim must be in
the target afterwards, claims held by the same step."""

from pathlib import Path

from pydantic import BaseModel, Field

from storage.journal import Claim, JobClaimed, Journal
from storage.journal_postgres import PostgresJournal
from storage.records import ClipJournal


class Migrated(BaseModel):
    """What a migration found, copied and checked."""

    records: int = Field(description="Records in the source.")
    copied: int = Field(description="Records copied now (the rest were there already).")
    claims: int
    claims_copied: int
    quarantined: int = Field(description="Quarantined records in the source.")
    quarantined_copied: int
    missing: list[str] = Field(default_factory=list,
                               description="Source records or claims the target lacks after "
                               "the copy (empty when verified).")
    conflicts: list[str] = Field(default_factory=list,
                                 description="Jobs the target holds for another clip step.")

    @property
    def verified(self) -> bool:
        return not self.missing and not self.conflicts


def migrate(source: Journal, target: PostgresJournal) -> Migrated:
    records = source.records()
    copied = sum(target.adopt(record) for record in records)
    claims, conflicts, claims_copied = source.claims(), [], 0
    held = {(c.protocol, c.job_id) for c in target.claims()}
    for claim in claims:
        try:
            target.claim_job(claim.protocol, claim.job_id, claim.clip_id, claim.step)
        except JobClaimed:
            conflicts.append(f"{claim.protocol} job {claim.job_id}")
            continue
        claims_copied += (claim.protocol, claim.job_id) not in held
    notes = source.quarantined()
    quarantined_copied = sum(target.keep_quarantined(note, _held_text(Path(note.path)))
                             for note in notes)
    return Migrated(records=len(records), copied=copied, claims=len(claims),
                    claims_copied=claims_copied, quarantined=len(notes),
                    quarantined_copied=quarantined_copied,
                    missing=_missing(target, records, claims), conflicts=conflicts)


def _held_text(path: Path) -> str:
    """What a quarantined file held, as text PostgreSQL can keep (no NUL, any bytes)."""
    try:
        return path.read_bytes().decode("utf-8", "replace").replace("\x00", "\ufffd")
    except FileNotFoundError:
        return ""


def _missing(target: PostgresJournal, records: list[ClipJournal], claims: list[Claim]
             ) -> list[str]:
    there = {r.clip_id for r in target.records()}
    missing = [f"record {r.clip_id}" for r in records if r.clip_id not in there]
    held = {(c.protocol, c.job_id): (c.clip_id, c.step) for c in target.claims()}
    missing += [f"claim {c.protocol} {c.job_id}" for c in claims
                if held.get((c.protocol, c.job_id)) != (c.clip_id, c.step)]
    return missing
