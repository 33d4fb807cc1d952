"""Every FEDJOURNEY_* setting is declared once, documented by generation, passed to the roles
that read it, and read with one-line errors."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from fedjourney import settings
from fedjourney.config import load_federation
from fedjourney.errors import FedjourneyError
from fedjourney.host import compose, kit
from fedjourney.settings import SETTINGS
from tests.conftest import DEFAULT_CONFIG, ROOT

NAME = re.compile(r"FEDJOURNEY_[A-Z][A-Z0-9_]*[A-Z0-9]")
PAGE = ROOT / "docs" / "configuration.md"


def _tracked_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    return [ROOT / name for name in listed
            if (ROOT / name).is_file() and not name.endswith((".tar.xz", ".png", ".lock"))]


def test_every_name_in_the_repository_is_declared() -> None:
    declared = {s.env for s in SETTINGS}
    used: dict[str, str] = {}
    for path in _tracked_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for name in NAME.findall(text):
            used.setdefault(name, str(path.relative_to(ROOT)))
    unknown = {name: where for name, where in used.items() if name not in declared}
    assert unknown == {}, "declare these in src/fedjourney/settings.py: " + ", ".join(
        f"{n} ({w})" for n, w in sorted(unknown.items()))


def test_each_name_is_declared_once() -> None:
    names = [s.env for s in SETTINGS]
    assert len(names) == len(set(names))
    assert all(s.kind in settings.KINDS and s.doc and s.readers for s in SETTINGS)


def test_the_docs_table_is_generated_from_the_declarations() -> None:
    page = PAGE.read_text(encoding="utf-8")
    assert settings.with_table(page) == page, \
        "run python -m fedjourney.settings --write docs/configuration.md"
    for s in SETTINGS:
        assert f"`{s.env}`" in page


def test_the_compose_file_passes_each_role_its_settings() -> None:
    fed = load_federation(DEFAULT_CONFIG)
    services = yaml.safe_load(compose.render(fed))["services"]
    own = {settings.CONFIG.env, settings.CENTRE_ID.env}  # the deployment's own values
    for name, service in services.items():
        role = {"node": settings.NODE, "researcher": settings.RESEARCHER,
                "results": settings.COLLECTOR,
                "notebook": settings.NOTEBOOK}.get(name.split("-")[0])
        env = service.get("environment", {})
        want = {s.env for s in settings.passed_to(role)} if role else set()
        assert set(env) - own == want, name
        for s in settings.passed_to(role) if role else ():
            assert env[s.env] == "${" + s.env + ":-" + s.default + "}"
    site = yaml.safe_load(kit.site(fed, fed.centres[0]))["services"]["node-0"]["environment"]
    for s in SETTINGS:
        if settings.SITE in s.readers:
            assert site[s.env].startswith("${" + s.env + (":?" if s.required else ":-"))


@pytest.mark.parametrize(("setting", "value", "want"), [
    (settings.KEEP, None, False), (settings.KEEP, "1", True), (settings.KEEP, " 0 ", False),
    (settings.NODE_DEADLINE, None, None), (settings.NODE_DEADLINE, "", None),
    (settings.NODE_DEADLINE, "90", 90.0), (settings.COLLECT_DEADLINE, None, 7200.0),
    (settings.RESEARCHER_PORT, None, 50051), (settings.RESEARCHER_PORT, "6000", 6000),
    (settings.RUN_ID, "r1", "r1"),
])
def test_a_setting_reads_as_its_kind(setting: settings.Setting, value: str | None,
                                     want: object) -> None:
    environ = {} if value is None else {setting.env: value}
    assert setting.read(environ) == want


@pytest.mark.parametrize(("setting", "value"), [
    (settings.KEEP, "yes"), (settings.KEEP, "2"), (settings.NODE_DEADLINE, "soon"),
    (settings.NODE_DEADLINE, "-5"), (settings.NODE_DEADLINE, "nan"),
    (settings.NODE_DEADLINE, "inf"), (settings.RESEARCHER_PORT, "0"),
    (settings.RESEARCHER_PORT, "70000"), (settings.RESEARCHER_PORT, "80a"),
])
def test_a_bad_value_is_one_line_naming_the_variable(setting: settings.Setting,
                                                     value: str) -> None:
    with pytest.raises(FedjourneyError, match=f"^{setting.env}: ") as caught:
        setting.read({setting.env: value})
    assert "\n" not in str(caught.value)


def test_the_table_command_checks_and_writes(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(f"# x\n\n{settings.BEGIN}\nold\n{settings.END}\ntail\n")
    assert settings.main(["--check", str(page)]) == 2
    assert settings.main(["--write", str(page)]) == 0
    assert settings.main(["--check", str(page)]) == 0
    assert page.read_text().endswith(f"{settings.END}\ntail\n")
    (tmp_path / "bare.md").write_text("no block\n")
    assert settings.main(["--write", str(tmp_path / "bare.md")]) == 2
    assert (tmp_path / "bare.md").read_text() == "no block\n"  # nothing written


def test_the_researcher_loads_one_settings_object_from_its_view() -> None:
    from fedjourney.researcher.run import ResearcherSettings

    view = str(ROOT / "data" / "roles" / "researcher.yaml")
    s = ResearcherSettings.load({settings.CONFIG.env: view, settings.RUN_ID.env: "r1",
                                 settings.EXPERIMENT.env: "fedprox"})
    assert (s.run_id, s.experiment, s.resume, s.verbose) == ("r1", "fedprox", False, False)
    assert s.node_deadline_s == s.fed.training.node_deadline_s
    fedprox = s.fed.experiment("fedprox")
    assert s.round_deadline_s(fedprox) == fedprox.round_deadline_s  # the experiment's own
    over = ResearcherSettings.load({settings.CONFIG.env: view,
                                    settings.ROUND_DEADLINE.env: "33"})
    assert over.round_deadline_s(fedprox) == 33.0 and over.run_id  # a new id when unset
    for env, value, says in [(settings.RUN_ID.env, "../x", "set FEDJOURNEY_RUN_ID"),
                             (settings.NODE_DEADLINE.env, "soon", "FEDJOURNEY_NODE_DEADLINE"),
                             (settings.RESUME.env, "yes", "FEDJOURNEY_RESUME")]:
        with pytest.raises(FedjourneyError, match=says) as caught:
            ResearcherSettings.load({settings.CONFIG.env: view, env: value})
        assert "\n" not in str(caught.value)


def test_the_exit_table_is_generated_from_the_enum() -> None:
    from fedjourney import exits

    page = (ROOT / "docs" / "running.md").read_text(encoding="utf-8")
    assert exits.with_table(page) == page, "run python -m fedjourney.exits --write " \
        "docs/running.md"
    assert set(exits.MEANING) == set(exits.Exit)
