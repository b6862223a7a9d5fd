from pathlib import Path

import pytest
from pydantic import ValidationError

from settings import load_settings


def test_home_defaults_to_an_absolute_path_under_the_working_folder(tmp_path):
    settings = load_settings()
    assert Path(settings.home).is_absolute()
    assert Path(settings.home) == (tmp_path / ".reelflow").resolve()


def test_relative_home_from_the_environment_is_made_absolute(monkeypatch, tmp_path):
    monkeypatch.setenv("REELFLOW_HOME", "data/home")
    assert load_settings().home == str((tmp_path / "data/home").resolve())


def test_an_object_store_home_is_refused_with_the_setting_that_fits(monkeypatch):
    monkeypatch.setenv("REELFLOW_HOME", "s3://bucket/reelflow")
    with pytest.raises(ValidationError, match="REELFLOW_ARCHIVE"):
        load_settings()


def test_the_archive_defaults_to_the_home_and_takes_an_object_store_url(monkeypatch):
    assert load_settings().archive_url == load_settings().home
    monkeypatch.setenv("REELFLOW_ARCHIVE", "s3://bucket/clips/")
    monkeypatch.setenv("REELFLOW_ARCHIVE_OPTIONS",
                       '{"client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}}')
    settings = load_settings()
    assert settings.archive_url == "s3://bucket/clips"
    assert settings.archive_options["client_kwargs"]["endpoint_url"] == "http://127.0.0.1:9000"


def test_every_protocol_uses_the_sandbox_by_default():
    endpoints = load_settings().endpoints()
    assert {e.kind for e in endpoints.values()} == {"sandbox"}
    assert set(endpoints) == {"openai_videos", "fal_queue", "kling_native", "atlascloud"}


def test_a_key_alone_never_sends_work_to_a_real_endpoint(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-looking")
    assert load_settings().endpoints()["openai_videos"].kind == "sandbox"


def test_a_real_base_url_without_its_key_names_the_missing_setting(monkeypatch):
    monkeypatch.setenv("KLING_BASE_URL", "https://api-singapore.klingai.com")
    monkeypatch.setenv("KLING_ACCESS_KEY", "ak")
    with pytest.raises(ValidationError, match="KLING_SECRET_KEY must be set"):
        load_settings()


def test_an_empty_key_counts_as_missing(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "https://api.openai.com/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "  ")
    with pytest.raises(ValidationError, match="OPENAI_API_KEY must be set"):
        load_settings()


def test_a_real_endpoint_with_its_key_is_real_and_the_key_stays_secret(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "https://api.openai.com/v1/")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    settings = load_settings()
    endpoint = settings.endpoints()["openai_videos"]
    assert (endpoint.kind, endpoint.base_url) == ("real", "https://api.openai.com/v1")
    assert endpoint.credential_refs == ("OPENAI_API_KEY",)
    assert "sk-very-secret" not in repr(settings) + endpoint.model_dump_json()


def test_sandbox_url_keeps_a_base_url_pointing_at_it_on_the_sandbox(monkeypatch):
    monkeypatch.setenv("REELFLOW_SANDBOX", "http://127.0.0.1:8765")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8765/v1")
    endpoint = load_settings().endpoints()["openai_videos"]
    assert (endpoint.kind, endpoint.base_url) == ("sandbox", "http://127.0.0.1:8765/v1")


def test_sandbox_off_leaves_out_protocols_without_key_or_url(monkeypatch):
    monkeypatch.setenv("REELFLOW_SANDBOX", "off")
    monkeypatch.setenv("FAL_KEY", "fk")
    endpoints = load_settings().endpoints()
    assert set(endpoints) == {"fal_queue"}
    assert endpoints["fal_queue"].base_url == "queue.fal.run"


@pytest.mark.parametrize("value", ["maybe", "ftp://host", ""])
def test_bad_sandbox_setting_names_the_allowed_values(monkeypatch, value):
    monkeypatch.setenv("REELFLOW_SANDBOX", value)
    with pytest.raises(ValidationError, match="auto, off"):
        load_settings()


def test_dotenv_is_read_and_foreign_keys_are_ignored(tmp_path):
    (tmp_path / ".env").write_text(
        "REELFLOW_SUBSCRIPTIONS=kling:pro\nPREFECT_API_URL=http://x\nREELFLOW_UNKNOWN=1\n"
    )
    assert load_settings().subscriptions == "kling:pro"
