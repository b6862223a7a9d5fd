"""A mistake found inside a flow still ends in one line and exit 2: Prefect's traceback of the
failed run is dropped for failures the CLI explains (`--debug` keeps it), and nothing is paid."""

import json

import pytest

from cli.main import main

pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]
TYPO = ["generate", "--prompt", "A paper boat drifts", "--duration", "5", "--policy",
        "cheepest"]
# a mistake only the flow finds: generate_clip takes no emulated storyboard (sora-2 has none)
STORYBOARD = {"mode": "storyboard", "policy": "sora-2", "resolution": "720p",
              "scenes": [{"prompt": "a boat", "duration": 4}, {"prompt": "a pier", "duration": 4}]}


def traced(caplog) -> list[str]:
    """Prefect run-log records that carry a traceback."""
    return [r.getMessage() for r in caplog.records
            if r.name.startswith("prefect.") and r.exc_info]


def test_a_policy_typo_is_refused_before_prefect_starts_with_the_closest_policy(
        home, sandbox, capsys, caplog):
    paid = len(sandbox.usage())
    assert main(TYPO) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [err.strip().splitlines()[-1]]  # one line, nothing else
    assert "did you mean cheapest?" in err and "Traceback" not in err
    assert not [r for r in caplog.records if r.name.startswith("prefect")]  # no server, no run
    assert len(sandbox.usage()) == paid


def test_a_mistake_found_inside_the_flow_is_one_line_and_exit_2(home, sandbox, capsys, caplog,
                                                              tmp_path):
    request = tmp_path / "storyboard.json"
    request.write_text(json.dumps(STORYBOARD))
    paid = len(sandbox.usage())
    assert main(["generate", str(request)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and traced(caplog) == []
    assert err.strip().splitlines()[-1].startswith("reelflow: mode")
    assert len(sandbox.usage()) == paid

    caplog.clear()
    assert main(["generate", str(request), "--debug"]) == 2  # the traceback for who asks
    assert traced(caplog)


def test_refused_keys_are_named_as_keys_in_one_line_and_exit_1(home, sandbox, capsys, caplog,
                                                              monkeypatch):
    """Every provider's key refused: each model is given up on in turn with the key named, and
    the run ends in one line that says so and what to do — not a `prompt` error — with
    nothing paid."""
    for name in ("OPENAI_API_KEY", "FAL_KEY", "ATLASCLOUD_API_KEY", "KLING_ACCESS_KEY",
                 "KLING_SECRET_KEY"):
        monkeypatch.setenv(name, "not-a-key-of-this-account-0123456789abcdef")
    sandbox.knobs(api_keys={"reelflow-sandbox": "payg"})  # only the sandbox's own key is known
    paid = len(sandbox.usage())
    assert main(["generate", "--prompt", "A paper boat drifts", "--duration", "5",
                 "--policy", "kling-v3"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and traced(caplog) == []
    last = err.strip().splitlines()[-1]
    assert "key was refused" in last and "fix the key" in last and "prompt" not in last
    assert len(sandbox.usage()) == paid
