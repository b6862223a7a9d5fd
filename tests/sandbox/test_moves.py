"""The camera move the sandbox draws: Kling's control, else the prompt's words."""

import pytest

from sandbox.moves import Move, from_kling, from_words


@pytest.mark.parametrize(("text", "move"), [
    ("Slow push in on the keeper's face", Move(zoom=3)),
    ("a fast pull back from the harbour", Move(zoom=-8)),
    ("camera pans left across the market", Move(pan=-5)),
    ("the drone trucks right, gently", Move(pan=3)),
    ("tilt up to the sky", Move(tilt=5)),
    ("crane down into the street, then pan right", Move(tilt=-5)),  # the first move wins
    ("a fox in snow", None),
])
def test_the_prompt_words_set_the_move_and_its_speed(text, move):
    assert from_words(text) == move


def test_kling_camera_control_maps_to_the_same_axes():
    assert from_kling({"type": "simple", "config": {"zoom": 4}}) == Move(zoom=4)
    assert from_kling({"type": "simple", "config": {"horizontal": -2}}) == Move(pan=-2)
    assert from_kling({"type": "simple", "config": {"vertical": 6}}) == Move(tilt=6)
    assert from_kling({"type": "down_back"}) == Move(zoom=-5, tilt=-5)
    assert from_kling({"type": "simple", "config": {"roll": 3}}) is None  # not drawn
    assert from_kling(None) is None
