"""The zombie-run automation (scripts/crash-zombie-runs.yaml) marks a run Crashed when its
heartbeats stop without a state that ends them: every state a run's process leaves in on
purpose must be among the expected events — a suspended run (wait=suspend) stops its
heartbeats for minutes, and before Suspended was listed every run suspended longer than 90 s
was marked Crashed and its chunk sent again (bench webhooks, N=1000)."""

from pathlib import Path

import yaml
from prefect import states

AUTOMATION = Path(__file__).resolve().parents[2] / "scripts" / "crash-zombie-runs.yaml"


def test_every_state_that_ends_a_run_s_heartbeats_on_purpose_is_expected():
    trigger = yaml.safe_load(AUTOMATION.read_text())["trigger"]
    ending = {state().name for state in (states.Completed, states.Failed, states.Cancelled,
                                         states.Crashed, states.Suspended, states.Paused)}
    assert ending == {"Completed", "Failed", "Cancelled", "Crashed", "Suspended", "Paused"}
    assert trigger["after"] == ["prefect.flow-run.heartbeat"]
    assert {f"prefect.flow-run.{name}" for name in ending} <= set(trigger["expect"])
