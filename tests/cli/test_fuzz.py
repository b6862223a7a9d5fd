"""Fuzzing at the edge, in-process and without a flow: whatever a user types or hands over,
`plan`, `prices`, `prompt`, `crop`, `clips`, `report` and `batch` exit 0 or 2, print no
traceback, and an exit 2 is one line naming a field; a manifest either reads or is refused with
ManifestError."""

import json
import string
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli.main import main
from tasks.manifest import ManifestError, read_manifest

REPO = Path(__file__).resolve().parents[2]
FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
# what people and attackers type where a number, a word or a path goes
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-10**12, max_value=10**12).map(str),
    st.sampled_from(["", " ", "inf", "-inf", "nan", "NaN", "1e309", "²", "٣", "0x10", "5s",
                     "5,5", "1_000", "-0", "0.0001", "１２"]))
WORDS = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
CHOICES = st.one_of(WORDS, st.sampled_from(["720p", "1080p", "4k", "16:9", "9:16", "auto",
                                            "cheapest", "sora-2", "kling-v3", "storyboard"]))


def exits_0_or_2_in_one_line(capsys, argv: list[str]) -> int:
    code = main(argv)
    out = capsys.readouterr()
    assert code in (0, 2), (argv, code, out)
    assert "Traceback" not in out.out + out.err, argv
    if code == 2:
        lines = out.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("reelflow: "), (argv, lines)
    return code


@FUZZ
@given(duration=NUMBERS, resolution=CHOICES, aspect=CHOICES, policy=CHOICES, take=NUMBERS,
       budget=NUMBERS, volume=NUMBERS, prompt=WORDS, focus=NUMBERS)
def test_plan_flags(capsys, duration, resolution, aspect, policy, take, budget, volume, prompt,
                    focus):
    argv = ["plan", f"--prompt={prompt}", f"--duration={duration}",
            f"--resolution={resolution}", f"--aspect={aspect}", f"--policy={policy}",
            f"--take={take}", f"--budget={budget}", f"--volume={volume}",
            f"--focus={focus},0.5"]
    exits_0_or_2_in_one_line(capsys, argv)


JSON = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | WORDS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(WORDS, inner, max_size=4),
    max_leaves=20)
REQUEST_FIELDS = st.fixed_dictionaries({}, optional={
    "prompt": WORDS | JSON, "duration": JSON | NUMBERS, "resolution": CHOICES | JSON,
    "aspect_ratio": CHOICES, "mode": CHOICES, "policy": CHOICES | JSON, "take": JSON,
    "scenes": JSON, "image": JSON | WORDS, "focus": JSON, "budget_usd": JSON})


@FUZZ
@given(body=st.one_of(REQUEST_FIELDS.map(json.dumps).map(str.encode), JSON.map(json.dumps)
                      .map(str.encode), st.binary(max_size=200)))
def test_request_files(capsys, tmp_path_factory, body):
    path = tmp_path_factory.mktemp("request") / "request.json"
    path.write_bytes(body)
    exits_0_or_2_in_one_line(capsys, ["plan", str(path)])


@FUZZ
@given(seconds=NUMBERS, resolution=CHOICES)
def test_prices(capsys, seconds, resolution):
    exits_0_or_2_in_one_line(capsys, ["prices", f"--seconds={seconds}",
                                      f"--resolution={resolution}"])


@FUZZ
@given(text=WORDS, model=CHOICES)
def test_prompt(capsys, text, model):
    exits_0_or_2_in_one_line(capsys, ["prompt", text or "x", f"--model={model}"])


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(aspect=CHOICES, model=CHOICES, focus=NUMBERS, resolution=CHOICES)
def test_crop(capsys, tmp_path_factory, aspect, model, focus, resolution):
    out = tmp_path_factory.mktemp("crop") / "out.jpg"
    exits_0_or_2_in_one_line(capsys, ["crop", str(REPO / "examples" / "harbour-4x3.jpg"),
                                      f"--aspect={aspect}", f"--model={model}",
                                      f"--focus={focus},0.5", f"--resolution={resolution}",
                                      "-o", str(out)])


@FUZZ
@given(state=CHOICES)
def test_clips(capsys, monkeypatch, tmp_path_factory, state):
    monkeypatch.setenv("REELFLOW_HOME", str(tmp_path_factory.mktemp("home")))
    exits_0_or_2_in_one_line(capsys, ["clips", f"--state={state}"])


PERIODS = st.one_of(WORDS, NUMBERS.map(lambda n: n + "d"),
                    st.sampled_from(["month", "all", "2026-11", "2026-13", "0d", "99999999999d"]))


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(period=PERIODS, budget=NUMBERS, html=st.sampled_from(["", "/", "missing/x.html",
                                                            "out.html", "."]))
def test_report_flags(capsys, monkeypatch, tmp_path_factory, period, budget, html):
    """The report over an empty ledger: in-process, DuckDB, no flow."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("REELFLOW_HOME", str(home))
    monkeypatch.chdir(home)
    exits_0_or_2_in_one_line(capsys, ["report", f"--period={period}", f"--budget={budget}",
                                      *([f"--html={html}"] if html else [])])


@FUZZ
@given(budget=NUMBERS, fan_out=CHOICES, chunk=NUMBERS)
def test_batch_flags(capsys, monkeypatch, tmp_path_factory, budget, fan_out, chunk):
    """Every flag is checked before the manifest is read, and this manifest holds no
    requests: a bad flag is named, a good one reaches the manifest's refusal — no flow."""
    folder = tmp_path_factory.mktemp("batch")
    monkeypatch.setenv("REELFLOW_HOME", str(folder))
    (folder / "empty.csv").write_text("prompt,duration\n", encoding="utf-8")
    argv = ["batch", str(folder / "empty.csv"), f"--budget={budget}", f"--fan-out={fan_out}",
            f"--chunk-size={chunk}"]
    assert exits_0_or_2_in_one_line(capsys, argv) == 2


CELL = st.text(alphabet=string.printable + "é²٣\u00a0", max_size=12)
HEADERS = st.lists(st.sampled_from(["prompt", "duration", "resolution", "image", "scenes",
                                    "focus", "policy", "mode", "bogus", "", " prompt"]),
                   max_size=5)


@FUZZ
@given(header=HEADERS, rows=st.lists(st.lists(CELL, max_size=6), max_size=4))
def test_csv_manifests(tmp_path_factory, header, rows):
    path = tmp_path_factory.mktemp("csv") / "m.csv"
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
    reads_or_is_refused(path)


@FUZZ
@given(lines=st.lists(st.one_of(REQUEST_FIELDS.map(json.dumps), JSON.map(json.dumps), WORDS),
                      max_size=4))
def test_jsonl_manifests(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("jsonl") / "m.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    reads_or_is_refused(path)


def reads_or_is_refused(path: Path) -> None:
    try:
        manifest = read_manifest(path)
    except ManifestError as err:
        assert err.field and err.message
    else:
        assert manifest.rows

