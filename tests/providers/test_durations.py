import pytest
from hypothesis import given
from hypothesis import strategies as st

from models import Scene
from providers.durations import Unplannable, plan_steps, storyboard_steps


def seconds_of(steps):
    return [s.seconds for s in steps]


def test_a_duration_the_wire_spells_is_not_snapped(catalog):
    assert seconds_of(plan_steps(catalog.row("kling-v3"), "text", 5)) == [5]
    assert seconds_of(plan_steps(catalog.row("sora-2"), "text", 8)) == [8]


@pytest.mark.parametrize(("asked", "billed"), [(4, 4), (5, 8), (8.01, 12), (12, 12)])
def test_sora_snaps_up_to_the_nearest_spelling_that_covers(catalog, asked, billed):
    assert seconds_of(plan_steps(catalog.row("sora-2"), "text", asked)) == [billed]


@pytest.mark.parametrize(("model", "asked"), [("sora-2", 1), ("sora-2", 3.9), ("kling-v3", 1),
                                             ("kling-v3", 0.0001)])
def test_a_clip_shorter_than_the_model_s_shortest_is_not_snapped_up_and_billed(catalog, model,
                                                                               asked):
    """0.0001 s snapped to 3 s would bill 3 s for one frame: the minimum is the model's."""
    with pytest.raises(Unplannable, match="shorter than its shortest clip"):
        plan_steps(catalog.row(model), "text", asked)


def test_kling_snaps_fractions_up_to_whole_seconds(catalog):
    kling = catalog.row("kling-v3")
    assert seconds_of(plan_steps(kling, "text", 5.2)) == [6]
    assert seconds_of(plan_steps(kling, "text", 3)) == [3]


def test_a_clip_longer_than_one_generation_becomes_an_extension_chain(catalog):
    steps = plan_steps(catalog.row("kling-v3"), "text", 30)
    assert [(s.kind, s.seconds) for s in steps] == [("generate", 15)] + [("extend", 5)] * 3


def test_the_chain_bills_the_shortest_covering_total(catalog):
    assert sum(seconds_of(plan_steps(catalog.row("kling-v3"), "text", 32))) == 32
    assert sum(seconds_of(plan_steps(catalog.row("sora-2"), "text", 30))) == 32


def test_longer_than_the_maximum_clip_is_unplannable(catalog):
    with pytest.raises(Unplannable, match="180 s maximum clip"):
        plan_steps(catalog.row("kling-v3"), "text", 181)


def test_a_protocol_without_extension_stops_at_one_generation(catalog):
    with pytest.raises(Unplannable, match="15 s maximum clip"):
        plan_steps(catalog.row("kling-v3-fal"), "text", 16)
    with pytest.raises(Unplannable, match="no extension"):
        plan_steps(catalog.row("kling-v3-fal"), "extend", 5)


def test_extend_mode_bills_only_the_added_steps(catalog):
    assert seconds_of(plan_steps(catalog.row("kling-v3"), "extend", 12)) == [5, 5, 5]
    assert seconds_of(plan_steps(catalog.row("sora-2"), "extend", 10)) == [12]


@given(st.floats(min_value=3, max_value=180))
def test_kling_chains_always_cover_and_never_overshoot_by_a_second(seconds):
    from providers.catalog import load_catalog

    steps = plan_steps(load_catalog().row("kling-v3"), "text", seconds)
    total = sum(seconds_of(steps))
    assert seconds <= total + 1e-9 and total < seconds + 1  # within _needed's epsilon
    assert steps[0].kind == "generate" and all(s.kind == "extend" for s in steps[1:])


def test_native_storyboard_is_one_generation_of_the_summed_shots(catalog):
    scenes = [Scene(prompt=f"s{i}", duration=4) for i in range(3)]
    kind, steps = storyboard_steps(catalog.row("kling-v3"), scenes)
    assert (kind, seconds_of(steps)) == ("native", [12])


def test_storyboard_beyond_one_generation_is_emulated_scene_by_scene(catalog):
    scenes = [Scene(prompt=f"s{i}", duration=6) for i in range(3)]
    kind, steps = storyboard_steps(catalog.row("kling-v3"), scenes)
    assert (kind, seconds_of(steps)) == ("emulated", [6, 6, 6])


def test_sora_storyboards_are_emulated_with_snapped_scenes(catalog):
    scenes = [Scene(prompt="a", duration=4), Scene(prompt="b", duration=5)]
    kind, steps = storyboard_steps(catalog.row("sora-2"), scenes)
    assert (kind, seconds_of(steps)) == ("emulated", [4, 8])
