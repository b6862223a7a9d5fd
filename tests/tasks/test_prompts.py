import pytest

from models import Scene
from tasks.prompt_text import (
    compress,
    estimate_tokens,
    load_rules,
    policy_exclusions,
    policy_hits,
    prepare_prompt_text,
    storyboard_anchors,
)

LONG = ("A lone astronaut walks across a red desert at dawn, very dusty wind blowing, really "
        "dramatic clouds rolling overhead, distant mountains, tiny rover parked nearby, "
        "footprints trailing behind, a flag flapping, glowing visor reflections, cinematic "
        "35mm film look, golden hour lighting, the astronaut stops and looks at the horizon, "
        "she raises a hand to shield her eyes, a sandstorm gathers in the distance, particles "
        "glitter in the sunlight, her breath fogs the visor, radio static crackles, and the "
        "mood is hopeful yet lonely, quite melancholic overall")


def test_token_estimate_is_documented_and_monotone():
    assert estimate_tokens("") == 0
    assert estimate_tokens("one two three") == 4  # ceil(3 * 4/3)
    assert estimate_tokens("x" * 400) == 100      # ceil(400 / 4)
    assert estimate_tokens(LONG) > estimate_tokens(LONG[:200])


def test_kling_prompts_are_compressed_to_the_budget_keeping_subject_style(catalog):
    prepared = prepare_prompt_text(LONG, catalog.row("kling-v3"))
    assert prepared.tokens_before > 120 >= prepared.tokens_after
    assert prepared.prompt.startswith("A lone astronaut walks across a red desert at dawn")
    assert "cinematic 35mm film look" in prepared.prompt
    assert "golden hour lighting" in prepared.prompt
    kinds = {c.kind for c in prepared.changes}
    assert {"filler", "clause"} <= kinds
    assert "very" not in prepared.prompt.split()


def test_compression_is_deterministic():
    assert compress(LONG, 60) == compress(LONG, 60)
    text, changes = compress(LONG, 30)
    assert estimate_tokens(text) <= 30 or all(len(c.split()) <= 3 for c in text.split(","))
    assert changes


def test_a_prompt_within_budget_is_unchanged(catalog):
    prepared = prepare_prompt_text("A red fox in fresh snow", catalog.row("kling-v3"))
    assert prepared.prompt == "A red fox in fresh snow"
    assert [c.kind for c in prepared.changes] == ["negative"]


def test_sora_has_no_budget_and_keeps_camera_words(catalog):
    prepared = prepare_prompt_text(LONG + ", slow push in", catalog.row("sora-2"))
    assert prepared.budget is None and prepared.camera_control is None
    assert "slow push in" in prepared.prompt


def test_kling_gets_camera_control_and_the_words_leave_the_prompt(catalog):
    prepared = prepare_prompt_text("A fox in snow, slow push in, cinematic",
                                   catalog.row("kling-v3"))
    assert prepared.camera_control["config"]["zoom"] == 3
    assert prepared.prompt == "A fox in snow, cinematic"


def test_a_separate_camera_field_is_used_and_kept_in_words_for_sora(catalog):
    kling = prepare_prompt_text("A fox in snow", catalog.row("kling-v3"), camera="pan left")
    assert kling.camera_control["config"]["pan"] == -5
    sora = prepare_prompt_text("A fox in snow", catalog.row("sora-2"), camera="pan left")
    assert sora.prompt.endswith("Camera: pan left.")


def test_fal_kling_has_no_camera_control_so_words_stay(catalog):
    prepared = prepare_prompt_text("A fox, pan left", catalog.row("kling-v3-fal"))
    assert prepared.camera_control is None and "pan left" in prepared.prompt


def test_per_model_negative_prompts(catalog):
    assert prepare_prompt_text("x y", catalog.row("kling-v3")).negative_prompt == (
        "blur, distort, and low quality")
    sora = prepare_prompt_text("x y", catalog.row("sora-2"), negative_prompt="text, logos")
    assert sora.negative_prompt is None and sora.prompt.endswith("Avoid: text, logos.")


def test_unicode_and_whitespace_are_normalised(catalog):
    prepared = prepare_prompt_text("  Cafe\u0301   at\n\tnight ", catalog.row("sora-2"))
    assert prepared.prompt == "Caf\u00e9 at night"


@pytest.mark.parametrize(("text", "category"), [
    ("a stylised gunfight in the rain", "violence"),
    ("a bloody duel", "violence"),
    ("sneakers with the Nike logo", "brands"),
    ("Abraham Lincoln gives a speech", "historical_figures"),
    ("Einstein at the blackboard", "historical_figures"),
])
def test_sora_policy_is_stricter(text, category):
    rules = load_rules()
    assert [h.category for h in policy_hits(text, "sora", rules)] == [category]
    assert policy_hits(text, "kling", rules) == []


def test_graphic_gore_is_refused_everywhere(catalog):
    assert set(policy_exclusions("pure gore", catalog)) == {"kling-v3", "kling-v3-fal",
                                                             "sora-2"}


def test_policy_rules_are_configurable(tmp_path):
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text(r"[kling.policy]" + "\n" + r"rivals = ['\bacme\b']")
    assert policy_hits("an ACME rocket", "kling", load_rules(rules_file))[0].term == "ACME"


def test_storyboard_scenes_carry_subject_and_style_anchors():
    scenes = [Scene(prompt="An old fisherman mends nets, watercolour style", duration=3),
              Scene(prompt="He rows out at dawn", duration=3),
              Scene(prompt="A storm breaks", duration=3)]
    anchored = storyboard_anchors(scenes)
    assert anchored[0] == scenes[0].prompt
    for text in anchored[1:]:
        assert "same subject as before: An old fisherman mends nets" in text
        assert "watercolour style" in text
