"""Names a person can read in the Prefect UI, made from what a run or task is about (a
flow's `flow_run_name`, a task's `task_run_name`): `clip · A heron lands… · 5s 1080p`, not
`fierce-carp`. Each reads the run's own parameters (which a deployment run passes as plain
JSON, a direct call as the models themselves)."""

from contextvars import ContextVar
from pathlib import Path
from typing import Any

from prefect.runtime import flow_run, task_run
from prefect.utilities.annotations import BaseAnnotation


def _field(value: Any, name: str, default: Any = None) -> Any:
    if isinstance(value, BaseAnnotation):  # a parameter passed as quote(...)
        value = value.unwrap()
    return value.get(name, default) if isinstance(value, dict) else getattr(value, name, default)


def _short(text: str, size: int = 32) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= size else text[:size - 1].rstrip() + "…"


def clip() -> str:
    params = flow_run.parameters
    request = params.get("request", params.get("storyboard", {}))
    scenes = _field(request, "scenes") or []
    prompt = _field(request, "prompt") or (_field(scenes[0], "prompt") if scenes else "")
    seconds = _field(request, "duration") or sum(float(_field(s, "duration", 0) or 0)
                                                 for s in scenes)
    kind = "storyboard" if scenes else "clip"
    return (f"{kind} · {_short(prompt)} · {float(seconds or 0):g}s "
            f"{_field(request, 'resolution', '1080p')}")


def extension() -> str:
    params = flow_run.parameters
    return (f"extend · {str(params.get('clip_id', ''))[:12]} · +"
            f"{float(params.get('seconds') or 0):g}s · {_short(params.get('prompt', ''), 24)}")


def batch() -> str:
    request = flow_run.parameters.get("batch", {})
    return f"batch · {Path(str(_field(request, 'manifest', '?'))).name}"


def chunk() -> str:
    request = flow_run.parameters.get("chunk", {})
    rows = [_field(r, "row") for r in _field(request, "rows") or []]
    span = f"rows {min(rows)}–{max(rows)}" if rows else "no rows"
    return f"batch chunk · {str(_field(request, 'batch_id', ''))[:8]} · {span}"


# the manifest row a batch's task works for: set per request by tasks/fan_out_tasks.py (each
# request runs in its own asyncio task, which copies the context), read when a task is named
ROW: ContextVar[int | None] = ContextVar("reelflow_row", default=None)


def _row(name: str) -> str:
    row = ROW.get()
    return name if row is None else f"row {row} · {name}"


def labelled(name: str):
    """A task's run name: its step, with the batch row it works for."""
    return lambda: _row(name)


def row() -> str:
    """A batch row's one task run: `row 3 · clip · A heron lands… · 5s 720p`."""
    request = task_run.parameters.get("request")
    return _row(f"clip · {_short(_field(request, 'prompt') or '', 24)} · "
                f"{float(_field(request, 'duration') or 0):g}s "
                f"{_field(request, 'resolution', '1080p')}")


def submit() -> str:
    params = task_run.parameters
    plan, index = params.get("plan"), params.get("index", 0)
    return _row(f"submit {_field(plan, 'model', '?')}/{_field(plan, 'tier', '?')} step {index}")


def await_() -> str:
    params = task_run.parameters
    handle = params.get("handle")
    return _row(f"await {_field(params.get('plan'), 'model', '?')} job "
                f"{_field(handle, 'job_id', '?')}")
