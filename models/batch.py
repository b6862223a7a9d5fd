"""A batch: its parameters (the forms the Prefect UI renders), its manifest's rows, and what it
answers — per request and in all."""

from typing import Annotated, Literal

from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema

from models.request import ClipRequest

Status = Literal["done", "already_done", "failed", "left"]
FanOut = Literal["tasks", "deployments"]
Wait = Literal["poll", "suspend"]
# Chunks are runs of the run-batch flow too (`run_batch_chunk` carries the flow's name), so the
# UI lists a batch and its chunks under one flow.
CHUNK_DEPLOYMENT = "run-batch/chunk"


class BatchRequest(BaseModel):
    """What run-batch is asked to do."""

    manifest: str = Field(description="A CSV, JSONL or Parquet file of requests: a path "
                          "every worker can read, or an object-store URL (s3://bucket/prefix/"
                          "batch.csv) whose image paths name objects under its prefix.")
    # no null branch in the form (the UI renders one as a type switch): left empty, not sent
    budget_usd: Annotated[float, Field(gt=0)] | SkipJsonSchema[None] = Field(
        default=None, description="USD the batch may spend in all, across reruns.")
    fan_out: FanOut = Field(
        default="tasks", description="tasks: async tasks in this run; deployments: chunks "
        "sent as runs of the run-batch/chunk deployment, shared by every worker of the pool.")
    chunk_size: int = Field(default=25, gt=0, description="Requests per chunk run.")
    wait: Wait | SkipJsonSchema[None] = Field(
        default=None, description="How runs wait while the provider renders: poll, or "
        "suspend (no process waits: the relay's callbacks resume each chunk run once its "
        "jobs are back; with fan_out=tasks, this run). Left empty: REELFLOW_WAIT, else poll.")
    absolute_images: bool = Field(
        default=False, description="Let rows name images by absolute path; otherwise image "
        "paths stay inside the manifest's folder.")


class ManifestRow(BaseModel):
    row: int = Field(description="Row of the manifest (1 = first request).")
    request: ClipRequest


class Manifest(BaseModel):
    path: str
    batch_id: str
    rows: list[ManifestRow]

    def unique(self) -> list[ManifestRow]:
        """The first row of each clip id, in manifest order."""
        seen: set[str] = set()
        first = []
        for item in self.rows:
            if item.request.clip_id not in seen:
                seen.add(item.request.clip_id)
                first.append(item)
        return first


class BatchChunk(BaseModel):
    """What a run-batch/chunk run receives from its batch's run."""

    batch_id: str = Field(description="The batch the chunk is part of.")
    rows: list[ManifestRow] = Field(description="The chunk's requests, with their rows.")
    budget_usd: float | None = Field(
        default=None, description="The chunk's share of the batch's budget.")
    wait: Wait = Field(default="poll", description="The batch's way to wait.")


class BatchItem(BaseModel):
    row: int = Field(description="Row of the manifest (1 = first request).")
    clip_id: str
    status: Status
    model: str | None = None
    estimate_usd: float | None = None
    cost_usd: float = 0.0
    path: str | None = None
    error: str | None = None
    duplicates: list[int] = Field(default_factory=list, description="Rows asking the same.")


class BatchResult(BaseModel):
    batch_id: str
    manifest: str
    rows: int
    unique: int
    done: int
    already_done: int
    failed: int
    left: int
    spent_usd: float = Field(description="Every charge of this batch's clips, all runs.")
    estimated_usd: float = Field(description="The plans' estimate for every unique request.")
    budget_usd: float | None
    peak_in_flight: dict[str, int] = Field(
        default_factory=dict, description="Most jobs held at once per provider limit.")
    reconciled_usd: float = Field(
        default=0.0, description="Charges found only on the provider's bill at the end, now "
        "in the ledger as `reconciled` rows (0 when the ledger's own capture is complete).")
    not_reconcilable: list[str] = Field(
        default_factory=list, description="Accounts whose usage API names no job.")
    items: list[BatchItem]
