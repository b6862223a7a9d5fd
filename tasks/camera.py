"""Camera directions in plain words -> Kling's `camera_control`, or left in words for Sora.

Kling's simple control moves exactly one axis in [-10, 10]; its predefined moves are the four
`type`s. Our sign convention (Kling documents the axes, not their signs): positive = right,
up, clockwise, closer. Speed words set the magnitude: slow/gentle/subtle 3, default 5,
fast/quick/rapid/dramatic 8.
"""

import re

from pydantic import BaseModel

# (pattern, type, axis, sign); first match wins, so longer phrases come first.
_MOVES: list[tuple[str, str, str | None, int]] = [
    (r"orbit(?:s|ing)? (?:to the )?left|arc(?:s|ing)? left", "left_turn_forward", None, 0),
    (r"orbit(?:s|ing)?(?: (?:to the )?right| around| round)?|arc shot|arc(?:s|ing)? right|"
     r"circl(?:e|es|ing) around", "right_turn_forward", None, 0),
    (r"(?:rising|rise and) push(?: in)?|push(?:es|ing)? forward and up|forward and up",
     "forward_up", None, 0),
    (r"pull(?:s|ing)? back and down|down and back", "down_back", None, 0),
    (r"push(?:es|ing)? in|dolly(?:ing)? in|mov(?:e|es|ing) (?:in|closer)|zoom(?:s|ing)? in|"
     r"push(?:es|ing)? forward|dolly(?:ing)? forward|track(?:s|ing)? in|creep(?:s|ing)? in",
     "simple", "zoom", +1),
    (r"pull(?:s|ing)? (?:back|out|away)|dolly(?:ing)? (?:out|back)|zoom(?:s|ing)? out|"
     r"mov(?:e|es|ing) away|track(?:s|ing)? out", "simple", "zoom", -1),
    (r"pan(?:s|ning)? left", "simple", "pan", -1),
    (r"pan(?:s|ning)? right", "simple", "pan", +1),
    (r"tilt(?:s|ing)? up", "simple", "tilt", +1),
    (r"tilt(?:s|ing)? down", "simple", "tilt", -1),
    (r"(?:truck|track|strafe|slide|dolly)(?:s|ing)? left|mov(?:e|es|ing) left", "simple",
     "horizontal", -1),
    (r"(?:truck|track|strafe|slide|dolly)(?:s|ing)? right|mov(?:e|es|ing) right", "simple",
     "horizontal", +1),
    (r"(?:crane|boom|pedestal|jib)(?:s|ing)? up|ris(?:e|es|ing) up|camera rises", "simple",
     "vertical", +1),
    (r"(?:crane|boom|pedestal|jib)(?:s|ing)? down|descend(?:s|ing)?|camera lowers", "simple",
     "vertical", -1),
    (r"roll(?:s|ing)? (?:clockwise|right)|dutch (?:angle|tilt)", "simple", "roll", +1),
    (r"roll(?:s|ing)? (?:counter-?clockwise|left)", "simple", "roll", -1),
]
_SLOW = r"slow(?:ly)?|gentl[ey]|subtl[ey]|soft(?:ly)?|steady|smooth(?:ly)?"
_FAST = r"fast|quick(?:ly)?|rapid(?:ly)?|dramatic(?:ally)?|sudden(?:ly)?|whip"
_AXES = ("horizontal", "vertical", "pan", "tilt", "roll", "zoom")


class CameraMove(BaseModel):
    """A camera direction found in words."""

    phrase: str
    control: dict
    magnitude: int


def find_move(text: str) -> CameraMove | None:
    """The first camera direction in `text`, with the words around it that set its speed."""
    lowered = text.lower()
    for pattern, kind, axis, sign in _MOVES:
        match = re.search(
            rf"(?:\b(?:a |the )?(?:(?P<speed>{_SLOW}|{_FAST})[ ,]+)?(?:camera )?)"
            rf"\b(?P<move>{pattern})\b(?:[ ,]+(?P<after>{_SLOW}|{_FAST}))?", lowered)
        if not match:
            continue
        speed = match.group("speed") or match.group("after") or ""
        magnitude = 3 if re.fullmatch(_SLOW, speed) else 8 if re.fullmatch(_FAST, speed) else 5
        if kind == "simple":
            config = dict.fromkeys(_AXES, 0)
            config[axis] = sign * magnitude
            control = {"type": "simple", "config": config}
        else:
            control = {"type": kind}
        return CameraMove(phrase=text[match.start():match.end()].strip(" ,"),
                          control=control, magnitude=magnitude)
    return None
