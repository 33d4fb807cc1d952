"""A training plan as a file: a shipped name (`mlp`, `logistic`, `gru`: plans/) or a user's
`.py` file, the one plan class it defines, the input it takes, and, in the images, its source
as Fed-BioMed sends it to the nodes and the hash a node approves.

The host reads a plan without running it (its syntax tree): the host has no Fed-BioMed, and a
config check must not execute a researcher's code. The images load it (plan_class), which
runs its module, as Fed-BioMed's researcher does.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedjourney import contract
from fedjourney.errors import FedjourneyError

SHIPPED_FOLDER = Path(__file__).resolve().parent / "plans"  # plans/ at the repository's top
SHIPPED = ("mlp", "logistic", "gru")
DEFAULT = "mlp"
INPUTS = ("vector", "sequence")
# Classes a plan class may derive from (by name: the host cannot import them).
BASES = ("CentrePlan", "TorchTrainingPlan")
MAX_BYTES = 1_000_000


@dataclass(frozen=True)
class PlanFile:
    """A plan the config names: `name` as written (a shipped name or a file name), `path`
    where this process reads it, `class_name` its plan class, `input` what it takes."""

    name: str
    path: Path
    class_name: str
    input: str

    @property
    def shipped(self) -> bool:
        return self.name in SHIPPED

    def in_container(self) -> str:
        """How a role's view names it: the shipped name, or where the file is mounted."""
        return self.name if self.shipped else str(contract.PLANS / self.path.name)


def resolve(ref: Any, base: Path, label: str) -> PlanFile:
    """The plan `ref` names: a shipped name, or a .py file (relative to `base`, the config's
    folder). FedjourneyError, one line naming `label`, when it is neither or is no plan."""
    if not isinstance(ref, str) or not ref.strip():
        raise FedjourneyError(f"{label} must be a shipped plan ({', '.join(SHIPPED)}) or the "
                              f"path of a .py file, got {ref!r}")
    ref = ref.strip()
    if ref in SHIPPED:
        return _read(SHIPPED_FOLDER / f"{ref}.py", ref, label)
    if not ref.endswith(".py"):
        raise FedjourneyError(f"{label}: {ref!r} is neither a shipped plan ({', '.join(SHIPPED)}) "
                              "nor a .py file")
    path = (base / Path(ref).expanduser()).resolve()
    bad = [ch for ch in ":$\n\r\0" if ch in str(path)]
    if bad:
        raise FedjourneyError(f"{label}: the plan file {str(path)!r} holds {bad[0]!r}, which "
                              "breaks its read-only mount; move or rename it")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,60}\.py", path.name):
        raise FedjourneyError(f"{label}: plan file name {path.name!r} must be letters, "
                              "digits, '.', '-' or '_' ending in .py (it is mounted by its "
                              "name); rename it")
    if not path.is_file():
        raise FedjourneyError(f"{label}: plan file {path} not found (a relative path starts "
                              f"at the config's folder, {base})")
    return _read(path, ref, label)


def _read(path: Path, name: str, label: str) -> PlanFile:
    try:
        if path.stat().st_size > MAX_BYTES:
            raise FedjourneyError(f"{label}: plan file {path} is over {MAX_BYTES} bytes; a "
                                  "training plan is code, not data")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FedjourneyError(f"{label}: cannot read plan file {path}: {exc}") from None
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as exc:
        raise FedjourneyError(f"{label}: plan file {path}, line {exc.lineno}: {exc.msg}"
                              ) from None
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef)
               and any(_base_name(b) in BASES for b in node.bases)]
    if len(classes) != 1:
        found = ", ".join(c.name for c in classes) or "none"
        raise FedjourneyError(f"{label}: plan file {path} must define exactly one class "
                              f"deriving from {' or '.join(BASES)} (found: {found})")
    kind = _input(classes[0])
    if kind not in INPUTS:
        raise FedjourneyError(f"{label}: {classes[0].name}.INPUT in {path} must be "
                              f"{' or '.join(repr(k) for k in INPUTS)}, got {kind!r}")
    shown = name if name in SHIPPED else Path(name).name
    return PlanFile(shown, path, classes[0].name, str(kind))


def _base_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _input(cls: ast.ClassDef) -> object:
    """The class's literal INPUT, or the base's "vector"."""
    for stmt in cls.body:
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets, value = [stmt.target], stmt.value
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "INPUT" for t in targets):
            return value.value if isinstance(value, ast.Constant) else ast.unparse(value)
    return "vector"


def check_input(plan: PlanFile, aggregation: str, label: str) -> None:
    """A sequence plan needs the per-bin tensor (features.aggregation: sequence); a vector
    plan takes either (the mean over bins of a sequence)."""
    if plan.input == "sequence" and aggregation != "sequence":
        raise FedjourneyError(
            f"{label}: plan {plan.name} takes a per-bin sequence (M bins x K codes) but "
            f"features.aggregation is {aggregation}, one vector per patient; set "
            "features.aggregation: sequence (vector plans then see the mean over bins)")


# ---- in the images (Fed-BioMed installed) ----------------------------------------------

def plan_class(plan: PlanFile) -> Any:
    """The plan's class, its module run as Fed-BioMed's researcher would. FedjourneyError
    naming the import when the image lacks a module it imports."""
    module_name = f"fedjourney_plan_{plan.path.stem}_{_digest(str(plan.path))[:8]}"
    spec = importlib.util.spec_from_file_location(module_name, plan.path)
    if spec is None or spec.loader is None:
        raise FedjourneyError(f"plan {plan.name}: cannot load {plan.path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # inspect.getsource finds the class through it
    try:
        spec.loader.exec_module(module)
    except ImportError as exc:
        sys.modules.pop(module_name, None)
        raise FedjourneyError(_missing(plan, exc)) from None
    return getattr(module, plan.class_name)


def sent_source(plan: PlanFile) -> str:
    """The code Fed-BioMed sends the nodes for this plan (its imports, then the class), run
    once here in a module of its own, as a node would: a module it lacks, or a helper the
    class uses from outside itself, fails here with one line rather than on every node."""
    cls = plan_class(plan)
    try:
        source: str = cls().source()
    except Exception as exc:  # e.g. no init_model: Fed-BioMed's abstract method
        raise FedjourneyError(f"plan {plan.name}: {plan.class_name}() fails "
                              f"({type(exc).__name__}: {exc})") from None
    namespace: dict[str, Any] = {"__name__": f"{plan.class_name}_as_sent"}
    try:
        exec(compile(source, f"<{plan.name} as sent>", "exec"), namespace)
    except ImportError as exc:
        raise FedjourneyError(_missing(plan, exc)) from None
    except Exception as exc:
        raise FedjourneyError(f"plan {plan.name}: its class does not run on its own, as the "
                              f"nodes receive it ({type(exc).__name__}: {exc}); keep what it "
                              "uses inside the class or in init_dependencies") from None
    return source


def _missing(plan: PlanFile, exc: ImportError) -> str:
    what = exc.name or str(exc)
    return (f"plan {plan.name} imports {what!r}, which the fedjourney images lack; use what "
            "they carry (torch, numpy, polars, fedbiomed) or add it to requirements/images.in")


def plan_hash(source: str) -> str:
    """The hash a node files the plan under: SHA-256 of the source minified as Fed-BioMed
    6.4.1's TrainingPlanSecurityManager does (tests/integration/fedbiomed_contract.py checks
    it against the node's own record)."""
    from python_minifier import minify

    mini = minify(source, remove_annotations=False, combine_imports=False, remove_pass=False,
                  hoist_literals=False, remove_object_base=True, rename_locals=False)
    return hashlib.sha256(mini.encode("utf-8")).hexdigest()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
