"""The camera move a request asks for, as the renderer draws it: Kling's `camera_control`, or
the prompt's own words ("slow push in", "pan left") for every protocol that has no control.

Axes in [-10, 10], the sign convention reelflow's tasks/camera.py uses: positive = closer
(zoom), right (pan, truck), up (tilt, crane). Speed words set the strength: slow/gentle 3,
default 5, fast/dramatic 8. Roll is not drawn (the clip stays still).
"""

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Move:
    """A camera move over one shot."""

    zoom: float = 0.0
    """+ pushes in (the frame's centre grows), - pulls out."""
    pan: float = 0.0
    """+ turns or trucks right (the picture slides left), - left."""
    tilt: float = 0.0
    """+ looks or cranes up (the picture slides down), - down."""

    def __bool__(self) -> bool:
        return bool(self.zoom or self.pan or self.tilt)


# Kling's predefined moves, drawn as the nearest combination of the three axes
_KLING_TYPES = {"down_back": Move(zoom=-5, tilt=-5), "forward_up": Move(zoom=5, tilt=5),
                "right_turn_forward": Move(zoom=5, pan=5),
                "left_turn_forward": Move(zoom=5, pan=-5)}
_KLING_AXES = {"zoom": "zoom", "pan": "pan", "horizontal": "pan", "tilt": "tilt",
               "vertical": "tilt"}

_SIDEWAYS = r"(?:truck|track|strafe|slide|dolly|orbit|arc)(?:s|ing)?"
_LIFT = r"(?:crane|boom|pedestal|jib)(?:s|ing)?"
# (pattern, axis, sign); first match in the text wins
_WORDS: list[tuple[str, str, int]] = [
    (r"push(?:es|ing)? (?:in|forward)|dolly(?:ing)? (?:in|forward)|zoom(?:s|ing)? in|"
     r"mov(?:e|es|ing) (?:in|closer)|track(?:s|ing)? in|creep(?:s|ing)? in", "zoom", +1),
    (r"pull(?:s|ing)? (?:back|out|away)|dolly(?:ing)? (?:out|back)|zoom(?:s|ing)? out|"
     r"track(?:s|ing)? out|mov(?:e|es|ing) away", "zoom", -1),
    (rf"pan(?:s|ning)? left|{_SIDEWAYS} (?:to the )?left|mov(?:e|es|ing) left", "pan", -1),
    (rf"pan(?:s|ning)? right|{_SIDEWAYS} (?:to the )?right|mov(?:e|es|ing) right", "pan", +1),
    (rf"tilt(?:s|ing)? up|{_LIFT} up|ris(?:e|es|ing) up|camera rises", "tilt", +1),
    (rf"tilt(?:s|ing)? down|{_LIFT} down|descend(?:s|ing)?|camera lowers", "tilt", -1),
]
_SLOW = r"slow(?:ly)?|gentl[ey]|subtl[ey]|soft(?:ly)?|steady|smooth(?:ly)?"
_FAST = r"fast|quick(?:ly)?|rapid(?:ly)?|dramatic(?:ally)?|sudden(?:ly)?|whip"


def from_words(text: str) -> Move | None:
    """The first camera direction in a prompt, with the speed word next to it."""
    lowered = text.lower()
    found = [(m, axis, sign) for pattern, axis, sign in _WORDS
             if (m := re.search(rf"\b(?:{pattern})\b", lowered))]
    if not found:
        return None
    match, axis, sign = min(found, key=lambda f: f[0].start())
    near = lowered[max(0, match.start() - 24):match.end() + 12]
    strength = 8 if re.search(rf"\b(?:{_FAST})\b", near) else 3 if re.search(
        rf"\b(?:{_SLOW})\b", near) else 5
    return Move(**{axis: sign * strength})


def from_kling(control: dict | None) -> Move | None:
    """Kling's `camera_control` (already validated by the API) as a move; None for none."""
    if not control:
        return None
    if control.get("type") != "simple":
        return _KLING_TYPES.get(control.get("type"))
    config = control.get("config") or {}
    axes = {_KLING_AXES[k]: float(v) for k, v in config.items() if k in _KLING_AXES and v}
    return Move(**axes) if axes else None
