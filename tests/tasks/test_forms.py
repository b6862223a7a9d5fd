"""The forms the Prefect UI renders, judged by the schema Prefect itself builds from the flows
and by the validator its server runs on a deployment's parameters."""

import json
from pathlib import Path

import pytest
import yaml
from prefect.utilities.callables import parameter_schema
from prefect.utilities.schema_tools.validation import validate

from flows.batch import run_batch
from flows.extend import extend_clip
from flows.generate import generate_clip
from flows.report import cost_report
from flows.storyboard import generate_storyboard
from models import ClipRequest

REPO = Path(__file__).resolve().parents[2]
FLOWS = {"generate-clip": generate_clip, "generate-storyboard": generate_storyboard,
         "extend-clip": extend_clip, "run-batch": run_batch, "cost-report": cost_report}


def schema(flow) -> dict:
    return parameter_schema(flow).model_dump()


def errors(flow, parameters: dict, *, deploying: bool = False) -> list[str]:
    """What the server says of a deployment run's parameters (its own validator), or, when
    `deploying`, of a deployment's defaults (checked with `required` removed)."""
    return [e.message for e in validate(parameters, schema(flow), ignore_required=deploying,
                                        allow_none_with_default=not deploying)]


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_a_form_has_no_internal_field_and_no_null_switch(name):
    text = json.dumps(schema(FLOWS[name]))
    for internal in ("image_sha256", "storyboard_id", "batch_id", "source_clip"):
        assert f'"{internal}"' not in text, internal
    assert '{"type": "null"}' not in text  # the UI renders X | None as a type switch


def test_each_kind_of_clip_requires_what_it_needs():
    assert errors(generate_clip, {"request": {"prompt": "A heron lands", "duration": 5}}) == []
    image = {"prompt": "The boats leave", "duration": 5, "image": "examples/harbour-4x3.jpg"}
    assert errors(generate_clip, {"request": image}) == []
    assert errors(generate_clip, {"request": {"prompt": "A heron lands"}})  # no duration
    assert errors(generate_clip, {"request": {"mode": "image", "prompt": "x", "duration": 5}})
    assert errors(generate_clip, {"request": {"prompt": "", "duration": 5}})
    assert errors(extend_clip, {"clip_id": "abc", "prompt": "more", "seconds": 5})
    assert errors(generate_storyboard, {"storyboard": {"scenes": []}})


def test_the_policy_is_a_choice_from_the_catalog():
    ok = {"prompt": "A heron lands", "duration": 5, "policy": "kling-v3-atlas"}
    assert errors(generate_clip, {"request": ok}) == []
    typo = errors(generate_clip, {"request": {**ok, "policy": "cheepest"}})
    assert typo


def test_the_deployments_defaults_are_valid_forms():
    project = yaml.safe_load((REPO / "prefect.yaml").read_text())
    for deployment in project["deployments"]:
        flow = next((f for f in FLOWS.values()
                     if deployment["entrypoint"].endswith(f":{f.fn.__name__}")), None)
        if flow is None or not deployment.get("parameters"):
            continue
        parameters = json.loads(json.dumps(deployment["parameters"]).replace(
            "{{ $REELFLOW_HOME }}", "/home"))
        assert errors(flow, parameters, deploying=True) == [], deployment["name"]
        assert errors(flow, parameters) == [], deployment["name"]


def test_a_caller_s_clip_request_keeps_its_clip_id():
    """The CLI and the tests pass ClipRequests: the form reads their fields, and the request
    the flow works on is the same clip."""
    from pydantic import TypeAdapter

    from tasks.forms import ClipForm

    asked = ClipRequest(prompt="A heron lands", duration=5, resolution="720p", camera="pan left",
                        batch_id="b1")
    form = TypeAdapter(ClipForm).validate_python(asked)
    assert form.to_request().clip_id == asked.clip_id
    board = ClipRequest(mode="storyboard", scenes=[{"prompt": "a", "duration": 4}])
    assert TypeAdapter(ClipForm).validate_python(board).to_request().clip_id == board.clip_id


def test_every_clip_form_offers_labels_and_the_server_checks_them():
    text = {"prompt": "A heron lands", "duration": 5}
    for flow, parameter, form in ((generate_clip, "request", text), (generate_storyboard,
                                  "storyboard", {"scenes": [{"prompt": "a", "duration": 4}]})):
        forms = schema(flow)["definitions"]
        assert all(forms[name]["properties"]["labels"]["default"] == {}
                   for name in forms if "policy" in forms[name].get("properties", {}))
        labelled = {**form, "labels": {"customer": "acme"}}
        assert errors(flow, {parameter: labelled}) == []
        assert errors(flow, {parameter: {**form, "labels": {"Customer": "acme"}}})
        assert errors(flow, {parameter: {**form, "labels": {"customer": ""}}})


def test_a_form_s_labels_reach_the_request_and_leave_its_clip_id():
    from pydantic import TypeAdapter

    from tasks.forms import ClipForm

    plain = TypeAdapter(ClipForm).validate_python({"prompt": "A heron lands", "duration": 5})
    tagged = TypeAdapter(ClipForm).validate_python(
        {"prompt": "A heron lands", "duration": 5, "labels": {"customer": "acme"}})
    assert tagged.to_request().labels == {"customer": "acme"}
    assert tagged.to_request().clip_id == plain.to_request().clip_id
    asked = ClipRequest(prompt="A heron lands", duration=5, labels="customer=acme")
    assert TypeAdapter(ClipForm).validate_python(asked).to_request().labels == asked.labels
