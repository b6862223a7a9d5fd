"""Live progress while a command's flow runs: plain `progress:` lines on a non-terminal (the
clip's short id, model and tier, its job, state and elapsed against the expected median), none
with --quiet or --json, and all of them before the command's last line."""

import uuid

import pytest

import cli.progress
from cli.main import main
from cli.progress import batch_line

pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]


@pytest.mark.parametrize("flag", [None, "--quiet", "--json"])
def test_generate_shows_its_job_while_it_waits(home, sandbox, capsys, monkeypatch, flag):
    monkeypatch.setattr(cli.progress, "PLAIN_EVERY_S", 0.05)
    monkeypatch.setenv("REELFLOW_POLL_DEADLINE_K", "200")  # the prior says 0.1 s; allow ~19 s
    sandbox.knobs(kling={"p50_5s": 1500, "p95_5s": 1600, "p50_30s": 1600})  # ~1.5 s
    argv = ["generate", "--prompt", f"A heron waits {uuid.uuid4().hex[:6]}", "--duration", "5",
            "--resolution", "720p", "--policy", "kling-v3"]
    assert main(argv + ([flag] if flag else [])) == 0
    out = capsys.readouterr()
    shown = [line for line in out.err.splitlines() if line.startswith("progress: ")]
    if flag:
        assert shown == []
        return
    short = out.out.split()[1].rstrip(":")
    assert any(f"{short} · kling-v3 standard · job " in line and " s of ~" in line
               for line in shown), shown


def test_a_batch_line_counts_what_is_done_in_flight_and_left():
    line = batch_line([None, None], None, started=0.0)
    assert line.startswith("batch: 0 done · 0 in flight · 2 left · 0 failed · $0.00")
