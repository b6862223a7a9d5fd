import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from cli.errors import UserError, as_user_error
from cli.main import main
from models import ClipRequest
from providers.catalog import CatalogError
from providers.router import PlanError
from tasks.explained import USER_ERRORS
from tasks.image_files import ImageError
from tasks.input_files import InputError
from tasks.manifest import ManifestError

REPO = Path(__file__).resolve().parents[2]
COASTAL = ["--prompt", "Aerial shot of a coastal city at golden hour", "--duration", "5",
           "--resolution", "1080p"]


def run_json(capsys, *argv):
    code = main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_plan_json_picks_kling_standard_and_explains_the_rest(capsys):
    code, decision = run_json(capsys, "plan", *COASTAL, "--policy", "cheapest")
    assert code == 0
    assert (decision["model"], decision["tier"], decision["cost_usd"]) == ("kling-v3",
                                                                           "standard", 0.14)
    reasons = {(c["model"], c["tier"]): c["reason"] for c in decision["rejected"]}
    assert "sunset" in reasons[("sora-2", "api")]
    assert reasons[("kling-v3", "free")] == "720p only"
    assert "not subscribed" in reasons[("kling-v3", "pro")]
    assert "pays off above 3,571" in reasons[("kling-v3", "pro")]
    assert "not subscribed" in reasons[("kling-v3", "master")]


def test_plan_with_pro_and_volume_costs_1100_a_month(capsys):
    code, decision = run_json(capsys, "plan", *COASTAL, "--subscriptions", "kling:pro",
                              "--volume", "10000")
    assert code == 0 and decision["tier"] == "pro"
    assert decision["monthly"]["effective_usd"] == 1100.0


def test_plan_reads_a_request_file_and_flags_override_it(capsys, tmp_path):
    path = tmp_path / "request.json"
    path.write_text(json.dumps({"prompt": "x", "duration": 5, "policy": "sora-2"}))
    code, decision = run_json(capsys, "plan", str(path), "--duration", "12")
    assert code == 0 and decision["model"] == "sora-2" and decision["seconds_billed"] == 12


def test_plan_text_output_is_readable(capsys):
    assert main(["plan", *COASTAL]) == 0
    out = capsys.readouterr().out
    assert "Kling v3 · standard" in out and "$0.14" in out and "other candidates" in out


def test_label_flags_are_repeatable_and_override_the_request_file_s(tmp_path):
    from cli.main import build_parser
    from cli.plan import request_from_args

    path = tmp_path / "request.json"
    path.write_text(json.dumps({"prompt": "x", "duration": 5,
                                "labels": {"customer": "acme", "campaign": "spring"}}))
    args = build_parser().parse_args(["plan", str(path), "--label", "customer=globex",
                                      "--label", "team=video"])
    request = request_from_args(args)
    assert request.labels == {"customer": "globex", "campaign": "spring", "team": "video"}
    assert request.clip_id == ClipRequest(prompt="x", duration=5).clip_id


def test_plan_shows_the_labels_it_read(capsys):
    assert main(["plan", *COASTAL, "--label", "customer=acme", "--label", "campaign=spring"]) == 0
    assert "labels: customer=acme, campaign=spring" in capsys.readouterr().out


@pytest.mark.parametrize("label", ["Customer=acme", "customer", "customer=", "a b=c"])
def test_a_malformed_label_exits_2_naming_labels_and_what_is_allowed(capsys, label):
    code, body = run_json(capsys, "plan", *COASTAL, "--label", label)
    assert code == 2 and body["error"]["field"] == "labels"
    assert "key=value" in " ".join([body["error"]["message"], *body["error"]["allowed"]])
    assert main(["plan", *COASTAL, "--label", label]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("reelflow: labels: ") and "lowercase letters" in line


def test_a_request_file_s_bad_labels_exit_2_naming_labels(capsys, tmp_path):
    path = tmp_path / "request.json"
    path.write_text(json.dumps({"prompt": "x", "duration": 5, "labels": {"Customer": "acme"}}))
    code, body = run_json(capsys, "plan", str(path))
    assert code == 2 and body["error"]["field"] == "labels"


def test_report_by_a_label_gives_its_spend_as_numbers(capsys, tmp_path):
    from analytics.synthetic import clip_rows, write

    kling = {"provider": "kling", "model": "kling-v3", "tier": "standard", "seconds_asked": 5,
             "seconds_billed": 5, "cost": "0.14"}
    write(tmp_path / ".reelflow" / "ledger",
          clip_rows(n=3, **kling, prefix="acme-", labels={"customer": "acme"}),
          clip_rows(n=1, **kling, prefix="plain-"))
    code, body = run_json(capsys, "report", "--period", "all", "--by", "customer")
    assert code == 0
    rows = body["report"]["by_label"]["rows"]
    assert [(r["label_value"], r["cost_usd"], r["clips_delivered"]) for r in rows] == [
        ("acme", 0.42, 3), ("(none)", 0.14, 1)]
    assert rows[0]["cost_per_delivered_second"] == 0.028
    assert main(["report", "--period", "all", "--by", "customer"]) == 0
    assert "by customer:" in capsys.readouterr().out
    code, body = run_json(capsys, "report", "--by", "Customer")
    assert code == 2 and body["error"]["field"] == "by"


@pytest.mark.parametrize(
    ("argv", "field", "allowed"),
    [
        (["--prompt", "x", "--duration", "0"], "duration", None),
        (["--prompt", "x", "--duration", "-3"], "duration", None),
        (["--prompt", "x", "--duration", "5", "--resolution", "8k"], "resolution",
         ["720p", "1080p", "4k"]),
        (["--prompt", "x", "--duration", "5", "--aspect", "4:3"], "aspect_ratio",
         ["16:9", "9:16", "1:1", "auto"]),
        (["--prompt", "   ", "--duration", "5"], "request", None),
        (["--prompt", "x", "--duration", "5", "--policy", "priciest"], "policy",
         ["cheapest", "fastest", "best_quality", "kling-v3", "kling-v3-fal", "sora-2",
          "wan-2.6", "seedance-2", "kling-v3-atlas"]),
        (["--prompt", "x", "--duration", "5", "--budget", "0.05"], "budget_usd", None),
        (["--prompt", "x", "--duration", "5", "--subscriptions", "kling:gold"],
         "subscriptions", None),
        (["--prompt", "x", "--duration", "5", "--volume", "many"], "volume", None),
        (["--prompt", "x", "--duration", "5", "--bogus"], "arguments", None),
        (["missing.json"], "request", None),
    ],
)
def test_user_mistakes_exit_2_naming_the_field(capsys, argv, field, allowed):
    code, body = run_json(capsys, "plan", *argv)
    assert code == 2
    assert body["error"]["field"] == field
    if allowed:
        assert body["error"]["allowed"] == allowed


def test_a_bad_setting_exits_2_naming_the_variable(capsys, monkeypatch):
    monkeypatch.setenv("REELFLOW_SANDBOX", "sometimes")
    code, body = run_json(capsys, "plan", *COASTAL)
    assert code == 2 and body["error"]["field"] == "REELFLOW_SANDBOX"


def test_a_malformed_catalog_exits_2_naming_the_file(capsys, monkeypatch, tmp_path):
    bad = tmp_path / "catalog.toml"
    bad.write_text("[[model]]\nid = 'x'\n")
    monkeypatch.setenv("REELFLOW_CATALOG", str(bad))
    code, body = run_json(capsys, "plan", *COASTAL)
    assert code == 2 and body["error"]["field"] == "catalog"
    assert str(bad) in body["error"]["message"]


def test_prices_prints_the_seed_table(capsys):
    code, rows = run_json(capsys, "prices")
    assert code == 0
    table = {(r["model"], r["tier"], r["volume"]): r for r in rows}
    assert table[("kling-v3", "standard", 1000)]["seed_metered_usd"] == 140.0
    assert table[("sora-2", "api", 1000)]["seed_metered_usd"] == 355.0


def test_demo_plans_every_example(capsys):
    code, decisions = run_json(capsys, "demo", "--plan-only")
    assert code == 0
    names = {d["example"] for d in decisions}
    assert {"coastal-city.json", "sora-named.json", "long-take.json"} <= names
    by_name = {d["example"]: d["plan"] for d in decisions}
    assert by_name["sora-named.json"]["model"] == "sora-2"


def test_console_script_exits_2_without_a_traceback(tmp_path):
    script = Path(sys.executable).with_name("reelflow")
    result = subprocess.run([str(script), "plan", "--prompt", "x", "--duration", "-1"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "duration" in result.stderr


def test_crop_writes_the_image_and_reports(capsys, tmp_path):
    out = tmp_path / "c.jpg"
    code, body = run_json(capsys, "crop", str(REPO / "examples/harbour-4x3.jpg"), "--aspect",
                          "auto", "-o", str(out))
    assert code == 0 and out.exists() and body["aspect_ratio"] == "16:9"


@pytest.mark.parametrize(("argv", "field"), [
    (["missing.jpg", "-o", "x.jpg"], "image"),
    (["EX", "--aspect", "4:3", "-o", "x.jpg"], "aspect"),
    (["EX", "--model", "veo", "-o", "x.jpg"], "model"),
    (["EX", "--focus", "2,2", "-o", "x.jpg"], "focus"),
    (["EX", "--model", "sora-2", "--aspect", "1:1", "-o", "x.jpg"], "aspect"),
])
def test_crop_mistakes_exit_2(capsys, tmp_path, argv, field):
    argv = [str(REPO / "examples/harbour-4x3.jpg") if a == "EX" else a for a in argv]
    code, body = run_json(capsys, "crop", *argv)
    assert code == 2 and body["error"]["field"] == field


def test_prompt_command_shows_camera_and_policy(capsys):
    code, body = run_json(capsys, "prompt", "A fox, slow push in", "--model", "kling-v3")
    assert code == 0 and body["camera_control"]["config"]["zoom"] == 3
    code, body = run_json(capsys, "prompt", "Napoleon at dawn", "--model", "sora-2")
    assert body["policy_hits"][0]["category"] == "historical_figures"
    code, body = run_json(capsys, "prompt", "x", "--model", "nope")
    assert code == 2 and body["error"]["field"] == "model"


def test_plan_routes_around_a_policy_refusal(capsys):
    code, body = run_json(capsys, "plan", "--prompt", "Napoleon crosses the Alps",
                          "--duration", "8", "--policy", "sora-2")
    assert code == 0 and body["model"] != "sora-2"
    assert "content policy" in body["reasons"][0]


@pytest.mark.parametrize(("scenes", "field"), [
    ([], "request"),
    ([{"prompt": "a lighthouse"}], "scenes.0.duration"),
    ([{"prompt": "a lighthouse", "duration": 4, "zoom": 2}], "scenes.0.zoom"),
])
def test_storyboard_mistakes_exit_2_before_anything_is_paid(capsys, tmp_path, scenes, field):
    board = tmp_path / "board.json"
    board.write_text(json.dumps({"scenes": scenes, "resolution": "720p"}))
    code, body = run_json(capsys, "storyboard", str(board))
    assert code == 2 and body["error"]["field"] == field


def test_plan_with_audio_costs_fal_s_audio_price_and_a_silent_model_refuses_it(capsys):
    """fal prices Kling v3 with sound apart: --audio costs more than the same plan without;
    a model that makes no soundtrack is refused for it, naming the field."""
    asked = ["plan", "--prompt", "A heron lifts off", "--duration", "5", "--resolution",
             "720p", "--policy", "kling-v3-fal"]
    _, silent = run_json(capsys, *asked)
    _, sound = run_json(capsys, *asked, "--audio")
    assert (silent["cost_usd"], sound["cost_usd"]) == (0.42, 0.63)
    assert sound["audio"] and any("soundtrack at $0.126/s" in r for r in sound["reasons"])
    assert silent["clip_id"] != sound["clip_id"]
    code, refused = run_json(capsys, "plan", "--prompt", "A heron", "--duration", "5",
                             "--policy", "kling-v3", "--audio")
    assert code == 2 and refused["error"]["field"] == "audio"


def test_a_command_s_checks_load_neither_prefect_nor_matplotlib(tmp_path):
    """Preflight answers in about a second: importing the CLI and refusing a mistyped policy
    load neither Prefect nor matplotlib (each command loads what its work needs)."""
    script = ("import sys\nfrom cli.main import main\n"
              "loaded = lambda: sorted({'prefect', 'matplotlib'} & set(sys.modules))\n"
              "assert loaded() == [], loaded()\n"
              "code = main(['generate', '--prompt', 'A paper boat drifts', '--duration', '5', "
              "'--policy', 'cheepest'])\n"
              "assert code == 2 and loaded() == [], (code, loaded())\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=tmp_path, timeout=60,
                            env={**os.environ, "REELFLOW_HOME": str(tmp_path / "home")})
    assert result.returncode == 0, result.stderr
    assert len(result.stderr.splitlines()) == 1 and "did you mean cheapest?" in result.stderr


def test_every_failure_a_run_log_calls_a_user_s_is_one_line_in_the_cli():
    """The types whose tracebacks run logs drop as a user's mistake are the CLI's exit-2
    errors."""
    with pytest.raises(ValidationError) as invalid:
        ClipRequest.model_validate({"prompt": "x", "duration": -1})
    examples = [PlanError("policy", "unknown"), ManifestError("row 1: prompt", "empty"),
                InputError("request", "too large"), ImageError("empty"),
                CatalogError("bad row"), invalid.value]
    assert {type(e) for e in examples} == set(USER_ERRORS)
    assert all(isinstance(as_user_error(e), UserError) for e in examples)


def test_every_command_s_help_has_a_whole_sentence_and_examples_that_parse():
    """`reelflow --help` lists each command with a summary that ends where a sentence ends;
    `reelflow COMMAND --help` ends with examples, each of which the parser accepts."""
    import shlex
    import sys

    from cli.main import COMMANDS, build_parser, summary

    parser = build_parser()
    for name, (_, run) in COMMANDS.items():
        module = sys.modules[run.__module__]
        line = summary(module.__doc__ or "")
        assert line.startswith(f"{name}: ") and line.endswith(".") and "\n" not in line, name
        examples = [e.split("  #")[0] for e in module.HELP_EXAMPLES.strip().splitlines()]
        assert examples, name
        for example in examples:
            words = shlex.split(example)
            assert words[:2] == ["reelflow", name], example
            parser.parse_args(words[1:])  # raises UserError on a flag the command lacks


@pytest.mark.parametrize(("wait", "env", "allowed"), [
    ("later", {}, ["poll", "suspend"]),
    ("suspend", {}, ["poll"]),  # no server named
    ("suspend", {"PREFECT_API_URL": "http://127.0.0.1:9/api"}, ["poll"]),  # none answers
])
def test_generate_wait_suspend_names_what_is_missing_before_anything_is_sent(
        capsys, monkeypatch, wait, env, allowed):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, body = run_json(capsys, "generate", "--prompt", "A kite", "--duration", "5",
                          "--wait", wait)
    assert code == 2 and body["error"]["field"] == "wait"
    assert body["error"]["allowed"] == allowed
