"""A mistake found inside a flow still ends in one line and exit 2: Prefect's traceback of the
failed run is dropped for failures the CLI explains (`--debug` keeps it), and nothing is paid."""

import pytest

from cli.main import main

pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]
TYPO = ["generate", "--prompt", "A paper boat drifts", "--duration", "5", "--policy",
        "cheepest"]


def traced(caplog) -> list[str]:
    """Prefect run-log records that carry a traceback."""
    return [r.getMessage() for r in caplog.records
            if r.name.startswith("prefect.") and r.exc_info]


def test_a_policy_typo_inside_the_flow_is_one_line_and_exit_2(home, sandbox, capsys, caplog):
    paid = len(sandbox.usage())
    assert main(TYPO) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and traced(caplog) == []
    assert err.strip().splitlines()[-1].startswith("reelflow: policy")
    assert len(sandbox.usage()) == paid

    caplog.clear()
    assert main([*TYPO, "--debug"]) == 2  # the traceback is there for whoever asks
    assert traced(caplog)
