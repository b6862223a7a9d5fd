"""An edit of an archived clip — a batch row naming its source clip at a new, longer length —
is continued (extended) when that is cheaper and the model allows it, else made from scratch;
the sandbox's bill is the judge of which was paid for."""

import asyncio
import json
import logging
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from flows.batch import run_batch
from flows.generate import generate_clip
from models import ClipRequest
from models.batch import BatchRequest
from tasks.inspection import inspect_file
from tests.flows.conftest import assert_reconciled
from tests.flows.journals import journal_of

pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]


def edit(tmp_path: Path, source: str, prompt: str, resolution: str = "720p"):
    """A one-row batch: `prompt` as an edit of `source` at 10 s; its item."""
    manifest = tmp_path / f"edits-{uuid.uuid4().hex[:6]}.jsonl"
    manifest.write_text(json.dumps({"prompt": prompt, "source_clip": source, "duration": 10,
                                    "resolution": resolution}), encoding="utf-8")
    (item,) = asyncio.run(run_batch(BatchRequest(manifest=str(manifest)))).items
    return item


def five_seconds(text: str):
    return asyncio.run(generate_clip(ClipRequest(prompt=text, duration=5, resolution="720p")))


def billed(sandbox, text: str) -> list[tuple[str, float, Decimal]]:
    """(kind, seconds, USD) of every charge on a job whose prompt holds `text`."""
    jobs = {j["id"] for j in sandbox.jobs(text)}
    return [(r["kind"], r["seconds"], Decimal(r["usd"])) for r in sandbox.usage()
            if r["job_id"] in jobs]


def test_an_edit_at_a_longer_length_is_an_extension_paying_only_the_added_seconds(
        home, sandbox, tmp_path, caplog):
    tag = uuid.uuid4().hex[:6]
    source = five_seconds(f"A heron on a post {tag}")
    caplog.set_level(logging.INFO)
    item = edit(tmp_path, source.clip_id[:12], f"it takes off {tag}")
    assert item.status == "done"
    # one job, billed for the 5 s it adds (Kling Standard: $0.14), not 10 s from scratch
    assert billed(sandbox, f"it takes off {tag}") == [("complete", 5, Decimal("0.14"))]
    assert inspect_file(Path(item.path)).seconds == pytest.approx(10)
    made = journal_of(home).read(Path(item.path).name.split(".")[0])
    assert made.parent_clip_id == source.clip_id and made.request.mode == "extend"
    said = [r.getMessage() for r in caplog.records]
    planned = (f"plan: edit of {source.clip_id[:12]} planned as an extension: 5 s added to its "
               "5 s on kling-v3 for $0.14 instead of $0.28")
    assert any(m.startswith(planned) for m in said)
    paid = len(sandbox.usage())  # the same edit again pays nothing
    again = edit(tmp_path, source.clip_id[:12], f"it takes off {tag}")
    assert again.status in ("done", "already_done") and len(sandbox.usage()) == paid
    assert_reconciled(home, sandbox)


def test_an_edit_the_source_cannot_continue_is_made_from_scratch_and_says_why(
        home, sandbox, tmp_path, caplog):
    tag = uuid.uuid4().hex[:6]
    source = five_seconds(f"A kettle boils {tag}")
    caplog.set_level(logging.INFO)
    # another resolution than the source's: an extension could not give it
    item = edit(tmp_path, source.clip_id, f"steam fills the room {tag}", resolution="1080p")
    assert item.status == "done"
    assert billed(sandbox, f"steam fills the room {tag}") == [("complete", 10, Decimal("0.28"))]
    said = [r.getMessage() for r in caplog.records]
    assert any("made from scratch at 10 s: it asks 1080p 16:9, the source is 720p 16:9" in m
               for m in said)
    assert_reconciled(home, sandbox)
