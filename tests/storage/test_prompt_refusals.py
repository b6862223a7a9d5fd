from datetime import UTC, datetime, timedelta

from models import Endpoint
from storage.learned import FolderLearned
from storage.prompt_refusals import PromptRefusal, RefusedPrompts, prompt_digest

SANDBOX = {"kling_native": Endpoint(protocol="kling_native", kind="sandbox",
                                    base_url="http://127.0.0.1:1")}


def refusal(prompt: str, **fields) -> PromptRefusal:
    base = dict(protocol="kling_native", kind="sandbox", base_url="http://127.0.0.1:9",
                provider="kling", model="kling-v3", prompt=prompt_digest(prompt),
                excerpt=prompt, message="content security policy triggered")
    return PromptRefusal(**{**base, **fields})


def test_one_prompt_is_one_digest_whatever_its_case_and_spacing_but_not_its_image():
    assert prompt_digest("A  Gore scene\n") == prompt_digest("a gore SCENE")
    assert prompt_digest("a gore scene") != prompt_digest("a gore scene", "ab" * 32)
    assert prompt_digest("a gore scene") != prompt_digest("a calm scene")


def test_a_refusal_is_found_for_its_prompt_on_this_home_s_sandbox_whatever_its_port(tmp_path):
    store = RefusedPrompts(FolderLearned(tmp_path / "refused_prompts"))
    store.learn(refusal("a gore scene"))
    store.learn(refusal("a gore scene", learned_at=datetime.now(UTC) + timedelta(seconds=1)))
    store.learn(refusal("another prompt"))
    found = store.refused_here(prompt_digest("A gore scene"), SANDBOX)
    assert list(found) == ["kling"] and "kling's content policy refused" in found["kling"]
    assert len(store.refusals()) == 2  # learned twice: one file, the later one
    assert store.refused_here(prompt_digest("a calm scene"), SANDBOX) == {}


def test_a_sandbox_s_refusal_says_nothing_of_a_real_endpoint_nor_one_real_of_another(tmp_path):
    store = RefusedPrompts(FolderLearned(tmp_path / "refused_prompts"))
    store.learn(refusal("a gore scene"))
    store.learn(refusal("a gore scene", kind="real", base_url="https://api.a.example",
                        provider="fal", protocol="fal_queue"))
    real = {"kling_native": Endpoint(protocol="kling_native", kind="real",
                                     base_url="https://api.klingai.com"),
            "fal_queue": Endpoint(protocol="fal_queue", kind="real",
                                  base_url="https://api.b.example")}
    assert store.refused_here(prompt_digest("a gore scene"), real) == {}


def test_an_unreadable_refusal_is_skipped_and_forget_clears_them(tmp_path):
    store = RefusedPrompts(FolderLearned(tmp_path / "refused_prompts"))
    store.learn(refusal("a gore scene"))
    (store.store.root / f"{prompt_digest('a gore scene')[:24]}-broken.json").write_text("{")
    assert list(store.refused_here(prompt_digest("a gore scene"), SANDBOX)) == ["kling"]
    assert store.forget() == 2 and store.refusals() == []
