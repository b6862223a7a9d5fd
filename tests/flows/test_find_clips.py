"""Clips a person can find: `generate` prints the clip's short id, `clips` lists it, and `show`
and `extend` take it (any unique prefix) — the ids never have to be copied from a path."""

import json
import re
import uuid

import pytest

from cli.main import main

pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]


def test_the_short_id_generate_prints_finds_the_clip_everywhere(home, sandbox, capsys):
    prompt = f"A paper boat drifts {uuid.uuid4().hex[:6]}"
    assert main(["generate", "--prompt", prompt, "--duration", "5", "--resolution", "720p",
                 "--policy", "kling-v3"]) == 0
    short = re.match(r"clip ([0-9a-f]{12}): ", capsys.readouterr().out).group(1)

    assert main(["clips", "--model", "kling-v3"]) == 0
    assert capsys.readouterr().out.startswith(f"{short}  done")
    assert main(["show", short[:8]]) == 0
    shown = capsys.readouterr().out
    assert f"clip {short}  done" in shown and prompt in shown and "charge:" in shown
    assert main(["extend", short, "--prompt", "it sails on", "--seconds", "5"]) == 0
    capsys.readouterr()
    assert main(["show", short, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert len(shown["children"]) == 1
    # money is a number in every --json
    assert isinstance(shown["record"]["spent_usd"], float)
    assert all(isinstance(c["cost_usd"], float) for c in shown["charges"])
    assert main(["show", "0000"]) == 2 and "reelflow: clip_id" in capsys.readouterr().err
