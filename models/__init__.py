"""Domain types every folder shares (pydantic v2)."""

from models.endpoint import Endpoint
from models.job import ClipRecord, JobHandle, JobState, JobStatus
from models.ledger import LEDGER_SCHEMA, LedgerRow, rows_to_table
from models.plan import Candidate, GenerationStep, MonthlyCost, RoutePlan
from models.request import ClipRequest, Scene, normalise_text
from models.terms import (
    ASPECT_RATIOS,
    POLICIES,
    PROTOCOLS,
    RESOLUTIONS,
    USD,
    AspectRatio,
    DowngradePolicy,
    EndpointKind,
    Mode,
    Policy,
    Protocol,
    Resolution,
    cents,
    resolution_rank,
    usd_text,
)

__all__ = [
    "ASPECT_RATIOS",
    "LEDGER_SCHEMA",
    "POLICIES",
    "PROTOCOLS",
    "RESOLUTIONS",
    "USD",
    "AspectRatio",
    "Candidate",
    "ClipRecord",
    "ClipRequest",
    "DowngradePolicy",
    "Endpoint",
    "EndpointKind",
    "GenerationStep",
    "JobHandle",
    "JobState",
    "JobStatus",
    "LedgerRow",
    "Mode",
    "MonthlyCost",
    "Policy",
    "Protocol",
    "Resolution",
    "RoutePlan",
    "Scene",
    "cents",
    "normalise_text",
    "resolution_rank",
    "rows_to_table",
    "usd_text",
]
