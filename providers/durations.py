"""Duration snapping: from the seconds a user asks for to the generations the wire can spell.

A wire spells a fixed set of lengths (Sora: 4 | 8 | 12; Kling v3: 3..15) and extends in fixed
steps (Kling: +5 s; Sora: +4..20 s). A request is snapped to the shortest total that covers it,
then to the fewest paid generations; the plan bills that total and the clip is trimmed to what was
asked (DESIGN.md §3). A clip longer than one generation is an extension chain, capped by the
model's maximum clip length.
"""

import math

from models import GenerationStep, Mode, Scene
from providers.catalog import ModelRow


class Unplannable(ValueError):
    """The model cannot make this duration; the message says why, for the plan's reasons."""


def _needed(seconds: float) -> int:
    return max(1, math.ceil(seconds - 1e-9))


def _cheapest_chain(
    needed: int, firsts: tuple[int, ...], extensions: tuple[int, ...], cap: int, first_kind: str
) -> list[GenerationStep]:
    """Shortest total >= needed reachable as one first step plus extensions, fewest steps."""
    best: dict[int, list[int]] = {}
    for first in sorted(firsts):
        if first <= cap:
            best.setdefault(first, [first])
    for total in range(1, cap + 1):
        if total not in best:
            continue
        for ext in extensions:
            nxt = total + ext
            if nxt <= cap and (nxt not in best or len(best[nxt]) > len(best[total]) + 1):
                best[nxt] = [*best[total], ext]
    covering = [t for t in best if t >= needed]
    if not covering:
        raise Unplannable(f"cannot reach {needed} s within the {cap} s cap")
    lengths = best[min(covering)]
    return [
        GenerationStep(kind=first_kind if i == 0 else "extend", seconds=s)
        for i, s in enumerate(lengths)
    ]


def plan_steps(row: ModelRow, mode: Mode, seconds: float) -> list[GenerationStep]:
    """The paid generations that make `seconds` of `mode` on this model."""
    needed = _needed(seconds)
    if needed > row.max_clip_seconds:
        raise Unplannable(f"{seconds:g} s is longer than its {row.max_clip_seconds} s maximum clip")
    if mode == "extend":
        if not row.extension_seconds:
            raise Unplannable("no extension on this protocol")
        return _cheapest_chain(
            needed, row.extension_seconds, row.extension_seconds, row.max_clip_seconds, "extend"
        )
    shortest, longest = min(row.wire_durations), max(row.wire_durations)
    if seconds < shortest:  # snapping 0.0001 s up to 3 s would bill 3 s for one frame
        raise Unplannable(f"{seconds:g} s is shorter than its shortest clip ({shortest} s)")
    if needed > longest and not row.extension_seconds:
        raise Unplannable(f"{seconds:g} s exceeds one {longest} s generation and it cannot extend")
    return _cheapest_chain(
        needed, row.wire_durations, row.extension_seconds, row.max_clip_seconds, "generate"
    )


def native_storyboard_seconds(row: ModelRow, scenes: list[Scene]) -> int | None:
    """Total of a native multi-shot generation, or None when the model cannot do it natively.

    Native shots are whole seconds (at least 1) that must add up to one wire duration.
    """
    if row.storyboard != "native" or not 0 < len(scenes) <= row.max_storyboard_shots:
        return None
    total = sum(_needed(scene.duration) for scene in scenes)
    return total if total in row.wire_durations else None


def storyboard_steps(row: ModelRow, scenes: list[Scene]) -> tuple[str, list[GenerationStep]]:
    """('native' | 'emulated', steps): one multi-shot generation, or scene by scene."""
    total = native_storyboard_seconds(row, scenes)
    if total is not None:
        return "native", [GenerationStep(kind="generate", seconds=total)]
    steps: list[GenerationStep] = []
    for index, scene in enumerate(scenes, start=1):
        try:
            steps.extend(plan_steps(row, "text", scene.duration))
        except Unplannable as err:
            raise Unplannable(f"scene {index}: {err}") from None
    if sum(step.seconds for step in steps) > row.max_clip_seconds:
        raise Unplannable(f"the scenes add up to more than its {row.max_clip_seconds} s maximum")
    return "emulated", steps
