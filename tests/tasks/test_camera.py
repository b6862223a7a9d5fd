import pytest

from tasks.camera import find_move

Z, P, T, H, V, R = "zoom", "pan", "tilt", "horizontal", "vertical", "roll"
TABLE = [
    ("slow push in on her face", "simple", Z, 3),
    ("push in", "simple", Z, 5),
    ("the camera pushes in fast", "simple", Z, 8),
    ("gentle dolly in", "simple", Z, 3),
    ("dolly forward through the doorway", "simple", Z, 5),
    ("zoom in on the ring", "simple", Z, 5),
    ("a quick zoom in", "simple", Z, 8),
    ("camera moves closer", "simple", Z, 5),
    ("tracking in slowly", "simple", Z, 3),
    ("dolly out", "simple", Z, -5),
    ("pull back to reveal the valley", "simple", Z, -5),
    ("slowly zoom out", "simple", Z, -3),
    ("pulling away from the crowd", "simple", Z, -5),
    ("pan left", "simple", P, -5),
    ("the camera pans left slowly", "simple", P, -3),
    ("whip pan right", "simple", P, 8),
    ("panning right across the skyline", "simple", P, 5),
    ("tilt up to the sky", "simple", T, 5),
    ("slow tilt down to the floor", "simple", T, -3),
    ("tilting up", "simple", T, 5),
    ("truck left", "simple", H, -5),
    ("tracking right alongside the runner", "simple", H, 5),
    ("camera slides left", "simple", H, -5),
    ("crane up over the rooftops", "simple", V, 5),
    ("boom down", "simple", V, -5),
    ("the camera rises", "simple", V, 5),
    ("descending slowly", "simple", V, -3),
    ("rolls clockwise", "simple", R, 5),
    ("dutch angle", "simple", R, 5),
    ("orbit around the statue", "right_turn_forward", None, 0),
    ("orbiting left around the car", "left_turn_forward", None, 0),
    ("arc shot around the dancers", "right_turn_forward", None, 0),
    ("circling around the tree", "right_turn_forward", None, 0),
    ("rising push in", "forward_up", None, 0),
    ("pull back and down", "down_back", None, 0),
]


@pytest.mark.parametrize(("phrase", "kind", "axis", "value"), TABLE)
def test_camera_phrases_become_kling_controls(phrase, kind, axis, value):
    move = find_move(phrase)
    assert move is not None and move.control["type"] == kind
    if kind == "simple":
        config = move.control["config"]
        assert config[axis] == value
        assert sum(1 for v in config.values() if v) == 1  # Kling: exactly one axis
        assert all(-10 <= v <= 10 for v in config.values())


def test_the_table_is_at_least_30_phrasings():
    assert len(TABLE) >= 30


@pytest.mark.parametrize("text", ["a fox sleeps in the snow", "panda eats bamboo",
                                  "a tilted picture frame", "she zooms past on a bike"])
def test_no_camera_move_in_ordinary_words(text):
    assert find_move(text) is None
