"""The one way a deployment file is written: a document (dicts, lists, scalars) dumped by
PyYAML's safe dumper behind a fixed comment header. No YAML is written as text, so a value
from the config can only ever be a quoted value.
"""

from __future__ import annotations

from typing import Any

import yaml

from fedjourney.host.deployment import Text, Var


class Flow(list[Any]):
    """A short list of scalars, written on one line: [a, b]."""


class _Dumper(yaml.SafeDumper):
    """Block style, sequences indented under their key; a value used twice is written
    twice (no anchors: each service reads whole)."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        return True


_Dumper.add_representer(
    Flow, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data,
                                                        flow_style=True))


def text(value: Text) -> str:
    """A value as compose and `docker stack deploy` read it: variables as ${...}, every
    literal '$' doubled so that the tools never interpolate text that came from a config."""
    parts = value if isinstance(value, tuple) else (value,)
    return "".join(_variable(p) if isinstance(p, Var) else p.replace("$", "$$") for p in parts)


def _variable(var: Var) -> str:
    if var.required is not None:
        return "${" + var.name + ":?" + var.required + "}"
    return "${" + var.name + ":-" + var.default + "}"


def dump(header: str, document: dict[str, Any]) -> str:
    """The file: the header (comment lines only), a blank line, the document."""
    if any(line and not line.startswith("#") for line in header.splitlines()):
        raise ValueError("a deployment file's header holds comment lines only")
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=False,
                     default_flow_style=False, width=4096)
    return f"{header}\n{body}"
