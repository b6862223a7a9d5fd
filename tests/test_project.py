"""The project's own promises: two README commands, CI calls the test one, prefect.yaml loads."""

import ast
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def test_readme_has_exactly_the_two_setup_commands_and_ci_runs_the_test_one():
    readme = (REPO / "README.md").read_text()
    setup = readme.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^    (\S.*?)(?:\s+#.*)?$", setup, flags=re.M)  # a trailing mark aside
    assert commands == ["make demo", "make test"]
    assert "make test" in (REPO / ".ci/run").read_text()


def test_prefect_yaml_is_valid():
    project = yaml.safe_load((REPO / "prefect.yaml").read_text())
    assert project["name"] == "reelflow"
    assert isinstance(project["deployments"], list)
    assert project["prefect-version"].startswith("3.")


def _deployment_names() -> dict[str, str]:
    """`<flow name>/<deployment name>` of every deployment in prefect.yaml -> its entrypoint."""
    import importlib
    project = yaml.safe_load((REPO / "prefect.yaml").read_text())
    names = {}
    for deployment in project["deployments"]:
        path, function = deployment["entrypoint"].split(":")
        module = path.removesuffix(".py")
        flow = getattr(importlib.import_module(module.replace("/", ".")), function)
        names[f"{flow.name}/{deployment['name']}"] = deployment["entrypoint"]
    return names


def test_deployments_are_named_for_how_they_are_started():
    from models.batch import CHUNK_DEPLOYMENT
    names = _deployment_names()
    assert set(names) == {
        "generate-clip/on-demand", "generate-storyboard/on-demand", "extend-clip/on-demand",
        "run-batch/on-demand", "run-batch/chunk", "run-batch/sora-window", "cost-report/daily",
        "sweep-archive/hourly"}
    assert names[CHUNK_DEPLOYMENT] == "flows/batch.py:run_batch_chunk"
    readme = (REPO / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in names)


def test_plain_libraries_do_not_import_prefect():
    for folder in ("providers", "storage", "analytics", "models", "sandbox"):
        for path in (REPO / folder).rglob("*.py"):
            assert not re.search(r"^\s*(from|import) prefect", path.read_text(), re.M), path


# DESIGN.md §2: what each place may import of ours (arrows point down only; itself always)
MAY_IMPORT = {
    "models": set(),
    "settings": {"models"},
    "providers": {"models"},
    "storage": {"models"},
    "analytics": {"storage", "providers", "models"},
    "tasks": {"providers", "storage", "analytics", "models", "settings"},
    "flows": {"tasks", "models", "settings"},
    "relay": {"storage", "models", "settings"},
    "sandbox": set(),
}
OURS = {*MAY_IMPORT, "cli", "bench", "scripts", "tests"}


def _imports(path: Path) -> set[str]:
    """Top-level names of every module `path` imports (at any depth, lazily too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _sources(place: str) -> list[Path]:
    single = REPO / f"{place}.py"
    return [single] if single.exists() else sorted((REPO / place).rglob("*.py"))


@pytest.mark.parametrize("place", sorted(MAY_IMPORT))
def test_each_place_imports_only_what_the_design_allows(place):
    allowed = MAY_IMPORT[place] | {place}
    wrong = {(path.relative_to(REPO).as_posix(), name) for path in _sources(place)
             for name in _imports(path) & OURS - allowed}
    assert not wrong, wrong


def test_flows_hold_only_flows():
    for path in (REPO / "flows").glob("*.py"):
        text = path.read_text()
        assert "@task" not in text and "= task(" not in text, path
        assert "__main__" not in text, path  # python -m entry points live in cli/
    assert len((REPO / "flows" / "generate.py").read_text().splitlines()) < 120
