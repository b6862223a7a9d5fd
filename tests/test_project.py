"""The project's own promises: two README commands, CI calls the test one, prefect.yaml loads."""

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_readme_has_exactly_the_two_setup_commands_and_ci_runs_the_test_one():
    readme = (REPO / "README.md").read_text()
    setup = readme.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^    (\S.*)$", setup, flags=re.M)
    assert commands == ["make demo", "make test"]
    assert "make test" in (REPO / ".ci/run").read_text()


def test_prefect_yaml_is_valid():
    project = yaml.safe_load((REPO / "prefect.yaml").read_text())
    assert project["name"] == "reelflow"
    assert isinstance(project["deployments"], list)
    assert project["prefect-version"].startswith("3.")


def test_plain_libraries_do_not_import_prefect():
    for folder in ("providers", "storage", "analytics", "models", "sandbox"):
        for path in (REPO / folder).rglob("*.py"):
            assert not re.search(r"^\s*(from|import) prefect", path.read_text(), re.M), path


def test_the_sandbox_imports_nothing_of_reelflow():
    ours = ("models", "settings", "providers", "storage", "analytics", "tasks", "flows", "cli")
    for path in (REPO / "sandbox").rglob("*.py"):
        text = path.read_text()
        for name in ours:
            assert not re.search(rf"^\s*(from|import) {name}\b", text, re.M), (path, name)
