"""The deployment is data, and every file is a serialization of it: config text cannot
become YAML structure in the compose file, the Swarm stack or a hospital kit."""

from __future__ import annotations

import ast
import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from fedjourney.config import Federation, load_federation
from fedjourney.host import compose, kit, swarm
from fedjourney.host.serialize import dump
from tests.conftest import DEFAULT_CONFIG, ROOT

# What a careless or hostile config could hold, if validation ever let it through.
HOSTILE = [
    "plain",
    "with\nnewline: x",
    "cr\rreturn",
    "tab\there",
    "line\u2028separator",
    "para\u2029separator",
    "nel\x85",
    "nul\x00byte",
    "    privileged: true",
    "- /:/host",
    "}]{[",
    "'single' and \"double\"",
    "# comment",
    "&anchor *alias",
    "!!python/object:os.system",
    "--- \n...",
    "$HOME ${FEDJOURNEY_KEEP:-1} $$",
    "$HOME ${USER} $$",  # no ':': a mount it must keep literal, not interpolated
    "back\\slash",
    "é ü 中文 🏥",
    "key: value, other: [1, 2]",
    "",
    " ",
]

Render = Callable[[Federation], str]
RENDERERS: dict[str, Render] = {
    "compose": compose.render,
    "swarm": swarm.render,
    "site": lambda fed: kit.site(fed, fed.centres[1]),
    "researcher kit": kit.researcher,
}


def _with(fed: Federation, **changes: Any) -> Federation:
    """The federation with centre 1 changed, past config validation (as if it had a hole)."""
    centres = list(fed.centres)
    centres[1] = dataclasses.replace(centres[1], **changes)
    return dataclasses.replace(fed, centres=tuple(centres))


def _shape(text: str) -> dict[str, Any]:
    """Services and their keys, networks and volumes: what the text means, not its values."""
    doc = yaml.safe_load(text)
    return {"services": {name: sorted(s) for name, s in doc["services"].items()},
            "networks": sorted(doc.get("networks") or {}),
            "volumes": sorted(doc.get("volumes") or {})}


@pytest.fixture(scope="module")
def fed() -> Federation:
    return load_federation(DEFAULT_CONFIG)


@pytest.mark.parametrize("render", list(RENDERERS.values()), ids=list(RENDERERS))
@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_name_changes_no_structure(fed: Federation, render: Render,
                                             value: str) -> None:
    assert _shape(render(_with(fed, name=value))) == _shape(render(fed))


@pytest.mark.parametrize("render", [RENDERERS["compose"], RENDERERS["swarm"],
                                    RENDERERS["site"]], ids=["compose", "swarm", "site"])
@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_folder_is_one_quoted_mount_or_refused(fed: Federation, render: Render,
                                                         value: str) -> None:
    folder = Path("/srv") / value
    hostile = _with(fed, source_folder=folder)
    if any(ch in str(folder) for ch in ":\n\r\0"):
        with pytest.raises(ValueError, match="mount source"):
            render(hostile)
        return
    text = render(hostile)
    plain = _with(fed, source_folder=Path("/srv/plain"))
    assert _shape(text) == _shape(render(plain))
    services = yaml.safe_load(text)["services"]
    mounts = services["generator-1"]["volumes"]
    # '$' doubled: compose and `docker stack deploy` read it as a literal dollar.
    assert f"{str(folder).replace('$', '$$')}:/source:ro" in mounts
    assert not any("privileged" in s or "/:/host" in str(s) for s in services.values())


def test_variables_stay_variables_and_literal_dollars_are_escaped(fed: Federation) -> None:
    services = yaml.safe_load(kit.site(fed, fed.centres[0]))["services"]
    env = services["node-0"]["environment"]
    assert env["FEDJOURNEY_KEEP"] == "${FEDJOURNEY_KEEP:-0}"
    assert services["tunnel"]["extra_hosts"] == [
        "researcher-gate:${FEDJOURNEY_RESEARCHER_ADDRESS:?" + kit.ADDRESS_MISSING + "}"]


def test_a_header_holds_comments_only() -> None:
    with pytest.raises(ValueError, match="comment lines only"):
        dump("# fine\nservices: {}\n", {})


# ---- no YAML written as text -------------------------------------------------------------
YAML_LINE = re.compile(r"^ {2,}(- )?[A-Za-z_$][\w.${}-]*:( |$)")
SOURCES = [ROOT / "src", ROOT / "node", ROOT / "researcher", ROOT / "scripts"]


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value,
                                                                      ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _literal_text(node: ast.AST) -> str | None:
    """A string literal's text, an f-string's with each placeholder as X."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "X" for v in node.values)
    return None


def _yaml_written_as_text(path: Path) -> list[int]:
    """The lines of string literals (docstrings aside) that hold YAML mapping lines."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree)
    found = set()
    for node in ast.walk(tree):
        literal = None if id(node) in skip else _literal_text(node)
        if literal is None or "\n" not in literal.rstrip("\n"):
            continue
        lines = [x for x in literal.splitlines() if x.strip() and not x.lstrip().startswith("#")]
        if any(YAML_LINE.match(x) for x in lines):
            found.add(getattr(node, "lineno", 0))
    return sorted(found)


def test_no_yaml_is_written_as_text() -> None:
    files = sorted({p.resolve() for base in SOURCES for p in base.rglob("*.py")})
    offenders = [f"{path}:{line}" for path in files for line in _yaml_written_as_text(path)]
    assert offenders == [], "YAML built from text (use host/serialize.dump): " + \
        ", ".join(offenders)


def test_the_check_finds_yaml_written_as_text(tmp_path: Path) -> None:
    """The check above can fail: it sees the f-string renderers this project used to have."""
    sample = tmp_path / "old.py"
    sample.write_text('"""Doc:\n  key: fine in a docstring"""\n'
                      'def f(n):\n    return f"""\\\n  {n}:\n    image: x\n"""\n'
                      'HEADER = """\\\n# comments: fine\n"""\n')
    assert _yaml_written_as_text(sample) == [4]
