from types import SimpleNamespace

import pytest

from providers.errors import JobFailed, Rejected, Transient
from tasks.fallback import FallBack, Fallbacks, Retry, Stop

PLAN = SimpleNamespace(model="kling-v3-atlas", provider="atlascloud", tier="payg")


@pytest.mark.parametrize("err", [Rejected("400 policy", status=400),
                                 JobFailed("blocked by our moderation", policy=True)])
def test_a_content_policy_refusal_stops_the_clip_instead_of_falling_back(err):
    step = Fallbacks(60).after(err, PLAN, 1.0)
    assert isinstance(step, Stop) and "content policy" in step.why


def test_a_failed_job_that_is_not_the_policy_s_is_retried_then_fallen_back_from():
    fallbacks = Fallbacks(60)
    assert isinstance(fallbacks.after(JobFailed("failed"), PLAN, 1.0), Retry)
    assert isinstance(fallbacks.after(Transient("503"), PLAN, 1.0), FallBack)
