from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from models import LEDGER_SCHEMA, ClipRequest, LedgerRow, Scene, rows_to_table


def test_clip_id_is_stable_across_spellings_of_one_prompt():
    a = ClipRequest(prompt="Aerial  shot\tof a city", duration=5)
    b = ClipRequest(prompt=" Aerial shot of a city ", duration=5.0)
    assert a.clip_id == b.clip_id and len(a.clip_id) == 64


def test_a_second_take_is_a_new_clip():
    first = ClipRequest(prompt="x", duration=5)
    assert ClipRequest(prompt="x", duration=5, take=1).clip_id != first.clip_id


def test_execution_settings_do_not_change_the_clip():
    base = ClipRequest(prompt="x", duration=5)
    steered = ClipRequest(prompt="x", duration=5, budget_usd=3, fallback_wait_s=5,
                          downgrade="fail")
    assert base.clip_id == steered.clip_id
    assert ClipRequest(prompt="x", duration=5, resolution="720p").clip_id != base.clip_id


def test_labels_are_accounting_and_leave_the_clip_id_alone():
    base = ClipRequest(prompt="x", duration=5)
    tagged = ClipRequest(prompt="x", duration=5, labels={"customer": "acme", "campaign": "spring"})
    assert tagged.clip_id == base.clip_id
    assert tagged.ledger_columns()["labels"] == {"customer": "acme", "campaign": "spring"}
    assert base.ledger_columns()["labels"] == {}
    assert ClipRequest.model_validate_json(tagged.model_dump_json()).clip_id == base.clip_id
    # the id this request had before labels existed: every archived clip keeps its id
    assert base.clip_id == "f5dbbc493a086b97509a7302ca625cca361ae542b31335e33f06af3328bba18b"


@pytest.mark.parametrize("given_as", [
    "customer=acme; campaign=spring", ["customer=acme", "campaign=spring"],
    [("customer", "acme"), ("campaign", "spring")], {"customer": " acme ", "campaign": "spring"}])
def test_labels_read_from_text_pairs_or_a_mapping(given_as):
    request = ClipRequest(prompt="x", duration=5, labels=given_as)
    assert request.labels == {"customer": "acme", "campaign": "spring"}


def test_a_label_value_may_hold_an_equals_sign():
    assert ClipRequest(prompt="x", duration=5, labels="ref=a=b").labels == {"ref": "a=b"}


@pytest.mark.parametrize(("labels", "says"), [
    ("Customer=acme", "lowercase letters, digits, _ or -"),
    ({"k" * 33: "v"}, "1-32"),
    ("customer", "not key=value"),
    ("customer=", "1-128 printable"),
    ({"customer": "x" * 129}, "1-128 printable"),
    ({"customer": "a\nb"}, "1-128 printable"),
    ({"year": 2026}, "of text"),
    ("customer=a;customer=b", "given twice"),
    (";".join(f"k{i}=v" for i in range(17)), "at most 16"),
    (42, "key=value pairs"),
])
def test_bad_labels_are_refused_naming_the_field_and_what_is_allowed(labels, says):
    with pytest.raises(ValidationError) as caught:
        ClipRequest(prompt="x", duration=5, labels=labels)
    (error,) = caught.value.errors()
    assert error["loc"] == ("labels",) and says in error["msg"]


@given(st.floats(max_value=0, allow_nan=False))
def test_zero_or_negative_duration_is_refused(duration):
    with pytest.raises(ValidationError, match="duration"):
        ClipRequest(prompt="x", duration=duration)


@given(st.text().filter(lambda s: s not in ("720p", "1080p", "4k")))
def test_unknown_resolution_is_refused_with_the_allowed_values(resolution):
    with pytest.raises(ValidationError, match="'720p', '1080p' or '4k'"):
        ClipRequest(prompt="x", duration=5, resolution=resolution)


@given(st.text().filter(lambda s: s not in ("16:9", "9:16", "1:1", "auto")))
def test_unknown_aspect_ratio_is_refused(aspect):
    with pytest.raises(ValidationError, match="aspect_ratio"):
        ClipRequest(prompt="x", duration=5, aspect_ratio=aspect)


@given(st.text(alphabet=" \t\n\r\u3000\u00a0"))
def test_a_prompt_of_only_whitespace_is_refused(prompt):
    with pytest.raises(ValidationError, match="prompt is required"):
        ClipRequest(prompt=prompt, duration=5)


@given(
    prompt=st.text(min_size=1).filter(lambda s: s.split()),
    duration=st.floats(min_value=0.1, max_value=600),
    resolution=st.sampled_from(["720p", "1080p", "4k"]),
    aspect=st.sampled_from(["16:9", "9:16", "1:1", "auto"]),
    take=st.integers(min_value=0, max_value=10),
)
def test_valid_requests_round_trip_through_json_with_the_same_clip_id(
    prompt, duration, resolution, aspect, take
):
    request = ClipRequest(prompt=prompt, duration=duration, resolution=resolution,
                          aspect_ratio=aspect, take=take)
    again = ClipRequest.model_validate_json(request.model_dump_json())
    assert again == request and again.clip_id == request.clip_id


def test_each_mode_needs_what_it_uses():
    with pytest.raises(ValidationError, match="image mode needs an image"):
        ClipRequest(mode="image", prompt="x", duration=5)
    with pytest.raises(ValidationError, match="extend mode needs source_clip"):
        ClipRequest(mode="extend", prompt="x", duration=5)
    with pytest.raises(ValidationError, match="at least one scene"):
        ClipRequest(mode="storyboard")
    with pytest.raises(ValidationError, match="only for mode 'storyboard'"):
        ClipRequest(prompt="x", duration=5, scenes=[Scene(prompt="a", duration=3)])


def test_a_storyboard_duration_is_the_sum_of_its_scenes():
    scenes = [Scene(prompt="a", duration=3), Scene(prompt="b", duration=4.5)]
    assert ClipRequest(mode="storyboard", scenes=scenes).seconds == 7.5
    with pytest.raises(ValidationError, match="differs from the sum"):
        ClipRequest(mode="storyboard", scenes=scenes, duration=10)


def test_unknown_fields_and_bad_focus_are_refused():
    with pytest.raises(ValidationError, match="Extra inputs"):
        ClipRequest(prompt="x", duration=5, colour="red")
    with pytest.raises(ValidationError, match="focus"):
        ClipRequest(prompt="x", duration=5, focus=(1.5, 0.2))


def test_every_field_has_a_description_for_the_prefect_form():
    for model in (ClipRequest, Scene, LedgerRow):
        assert all(f.description for f in model.model_fields.values()), model


def test_ledger_schema_is_derived_from_the_row():
    assert LEDGER_SCHEMA.names == list(LedgerRow.model_fields)
    assert LEDGER_SCHEMA.field("cost_usd").type == pa.decimal128(18, 6)
    assert LEDGER_SCHEMA.field("event_time").type == pa.timestamp("us", tz="UTC")
    assert not LEDGER_SCHEMA.field("clip_id").nullable
    assert LEDGER_SCHEMA.field("job_id").nullable
    # a map DuckDB groups by key; null in (and when compacting) parts older than the column
    assert LEDGER_SCHEMA.field("labels").type == pa.map_(pa.string(), pa.string())
    assert LEDGER_SCHEMA.field("labels").nullable


def test_ledger_rows_become_a_table_with_exact_money():
    row = LedgerRow(
        event_id="e1", event_time=datetime(2026, 11, 25, tzinfo=UTC), event_kind="fail",
        provider="kling", model="kling-v3", tier="standard", account="kling:standard",
        endpoint="sandbox", clip_id="c1", mode="text", cost_usd=Decimal("0.028"),
        charge_kind="failed_generation",
    )
    table = rows_to_table([row, row.model_copy(update={"labels": {"customer": "acme"}})])
    assert table.schema == LEDGER_SCHEMA
    assert table.column("cost_usd")[0].as_py() == Decimal("0.028000")
    assert table.column("labels").to_pylist() == [[], [("customer", "acme")]]
