"""The YAML this project reads from users (the federation config, spec files): PyYAML's
safe loader, minus what a hand-written file never needs and an attacker would use."""

from __future__ import annotations

import re
from typing import Any

import yaml


class Refused(yaml.MarkedYAMLError):
    """YAML the config loader refuses though the YAML specification allows it."""


class ConfigLoader(yaml.SafeLoader):
    """The safe loader, without anchors and aliases (an alias bomb of a few lines expands
    to gigabytes; a config never needs them) or repeated keys (YAML keeps the last one
    silently), and reading YAML 1.2 floats such as 1e-3 (YAML 1.1 wants 1.0e-3 and reads
    1e-3 as text)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]  # stub lacks it
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise Refused(problem="anchors and aliases (&name, *name) are not accepted; "
                           "write the value out", problem_mark=event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen = set()
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    raise Refused(problem=f"key {key.value!r} is given twice; keep one",
                                   problem_mark=key.start_mark)
                seen.add(key.value)
        return super().construct_mapping(node, deep=deep)


# YAML 1.2 floats with an exponent (1e-3, 2E5, 1.0e-2): YAML 1.1's resolver reads the others.
EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")
ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:float", EXPONENT_FLOAT,
                                    list("-+0123456789."))
