"""The sandbox's OpenAI side against OpenAI's own OpenAPI description of the Videos endpoints
(specs/openai-videos-openapi.yaml: a copy of ../shared/reference/, the Videos subset of OpenAI's
public spec v2.3.0, kept here so a clone alone runs it) with schemathesis: requests generated
from the spec (valid ones, and ones that violate it) never get a server error, and a request
that violates the spec is never accepted."""

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, openapi
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import negative_data_rejection

SPEC = Path(__file__).with_name("specs") / "openai-videos-openapi.yaml"
SCHEMA = openapi.from_path(SPEC)
# the operations the sandbox speaks (characters and edits are not part of our protocol)
OPERATIONS = [("/videos", "POST"), ("/videos", "GET"), ("/videos/extensions", "POST"),
              ("/videos/{video_id}", "GET"), ("/videos/{video_id}", "DELETE"),
              ("/videos/{video_id}/content", "GET")]
FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_sandbox_answers_as_the_openapi_description_says(sandbox, key, path, method,
                                                             mode):
    base = sandbox.url + "/openai/v1"

    @FUZZ
    @given(case=SCHEMA[path][method].as_strategy(generation_mode=mode))
    def check(case):
        response = case.call(base_url=base, headers={"Authorization": f"Bearer {key}"},
                             timeout=30)
        # a body that violates the spec must be refused; unknown query parameters are
        # ignored, as HTTP APIs commonly do (the spec does not say either way for them)
        strict = mode == GenerationMode.NEGATIVE and method == "POST"
        checks = [not_a_server_error] + ([negative_data_rejection] if strict else [])
        case.validate_response(response, checks=checks)

    check()
