"""Every command line of the README's command blocks runs as written, against the sandbox.

A line is skipped only when its trailing comment is marked `# long-running` (servers, the
whole suite, a stack) or `# illustrative` (alternatives, placeholders); `CLIP_ID` is replaced by
the short id an earlier `generate` line printed. The lines share one REELFLOW_HOME (so `clips`,
`show` and `extend` see what `generate` made) and one Prefect server (otherwise each CLI call
starts its own temporary one, 5-12 s each).
"""

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import prefect.settings
import pytest
from prefect.testing.utilities import prefect_test_harness

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
MARKS = ("long-running", "illustrative")
CLIP_ID = re.compile(r"^clip ([0-9a-f]{12}): ", re.M)
# files the README's lines write outside the home: removed afterwards unless they were there before
OUTPUTS = (Path("/tmp/cropped.jpg"), Path("/tmp/report.html"))


@dataclass(frozen=True)
class CommandLine:
    number: int
    command: str
    mark: str | None


def split_comment(line: str) -> tuple[str, str]:
    """A shell line and its trailing `# comment` (a `#` outside quotes after a blank)."""
    quote = None
    escaped = False
    for i, char in enumerate(line):
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1:].strip()
    return line.rstrip(), ""


def command_lines(text: str) -> list[CommandLine]:
    """The logical lines of the indented (4-space) blocks: continuations joined, comment-only
    lines (a wrapped comment) dropped, each with its mark."""
    lines = text.splitlines()
    found: list[CommandLine] = []
    after_blank = True  # an indented block starts after a blank line, not inside a paragraph
    in_block = False
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(lines, start=1):
        if not raw.startswith("    ") or not (in_block or after_blank):
            after_blank, in_block = not raw.strip(), False
            continue
        in_block = True
        body = raw[4:]
        if not pending and body.lstrip().startswith("#"):
            continue
        if not pending:
            start = number
        if body.rstrip().endswith("\\"):
            pending.append(body.rstrip()[:-1].strip())
            continue
        command, comment = split_comment(" ".join([*pending, body.strip()]))
        pending = []
        mark = next((m for m in MARKS if comment.startswith(m)), None)
        found.append(CommandLine(start, command, mark))
    return found


def test_the_parser_joins_continuations_and_reads_marks():
    text = ("prose\n\n    a --x \"#1\" \\\n        --y 2   # long-running: a server\n"
            "    b                 # or c\n                      # wrapped comment\n"
            "    c [--d]   # illustrative\n")
    assert command_lines(text) == [CommandLine(3, 'a --x "#1" --y 2', "long-running"),
                                   CommandLine(5, "b", None), CommandLine(7, "c [--d]",
                                                                        "illustrative")]


def test_every_example_a_readme_command_names_is_shipped():
    named = {path for line in README.read_text().splitlines() if line.startswith("    ")
             for path in re.findall(r"examples/[\w./-]+", line)}
    assert named, "the README names no example"
    assert sorted(p for p in named if not (REPO / p).is_file()) == []


@pytest.fixture(scope="module")
def prefect_api_url():
    """One Prefect server for every command line of the module."""
    quiet = {prefect.settings.PREFECT_SERVER_ANALYTICS_ENABLED: False}  # no telemetry calls
    with prefect.settings.temporary_settings(quiet), prefect_test_harness(
            server_startup_timeout=90):
        yield prefect.settings.PREFECT_API_URL.value()


@pytest.mark.slow
def test_every_readme_command_line_exits_0(sandbox, prefect_api_url, tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "REELFLOW_HOME": str(home), "REELFLOW_SANDBOX": sandbox.url,
           "REELFLOW_SANDBOX_TIME_SCALE": "0.001", "PREFECT_API_URL": prefect_api_url,
           "PREFECT_HOME": str(tmp_path / "prefect")}
    existing = {path for path in OUTPUTS if path.exists()}
    lines = [line for line in command_lines(README.read_text()) if line.mark is None]
    assert any("generate" in line.command for line in lines)
    clip_id = None
    failures = []
    try:
        for line in lines:
            command = line.command
            if "CLIP_ID" in command:
                if clip_id is None:
                    failures.append(f"README:{line.number}: {command}\n  no earlier generate "
                                    "line printed a clip id")
                    continue
                command = command.replace("CLIP_ID", clip_id)
            try:
                done = subprocess.run(["bash", "-c", command], cwd=REPO, env=env,
                                      capture_output=True, text=True, timeout=120)
            except subprocess.TimeoutExpired:
                failures.append(f"README:{line.number}: {command}\n  still running after 120 s")
                continue
            if done.returncode != 0:
                tail = "\n  ".join((done.stderr or done.stdout).strip().splitlines()[-8:])
                failures.append(f"README:{line.number}: {command}\n  exit {done.returncode}:"
                                f"\n  {tail}")
            elif " generate " in f" {command} " and (found := CLIP_ID.search(done.stdout)):
                clip_id = clip_id or found[1]
    finally:
        subprocess.run([".venv/bin/reelflow", "sandbox", "stop"], cwd=REPO, env=env,
                       capture_output=True, timeout=60)
        for path in OUTPUTS:
            if path not in existing:
                path.unlink(missing_ok=True)
    assert not failures, "README command lines that failed:\n" + "\n".join(failures)
