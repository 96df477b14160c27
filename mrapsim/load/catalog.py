"""Finding scenarios: the built-in ones by name (Python files in scenarios/), a Python scenario
file (its User classes, its shape class), or a TOML file — and the user classes to run for each.

The top of the scenario modules: it imports scenario.py (the data), users.py (the API) and
shapes.py, none of which import it back.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path
from typing import Any

from mrapsim.load.scenario import Scenario, load_toml, parse_size
from mrapsim.load.shapes import LoadShape
from mrapsim.load.users import User, spec_user

SCENARIO_DIR = Path(__file__).parent / "scenarios"
BUILTIN_SCENARIOS: tuple[str, ...] = ("mixed", "handshake", "nosni", "list", "get", "put", "head", "churn")


def python_scenario(path: Path, user_class: str | None = None, name: str | None = None) -> Scenario:
    """A Python scenario file: its user classes' task names and seeded sizes, read once here."""
    classes = user_classes_of(import_file(path), user_class)
    names: list[str] = []
    seeded: set[int] = set()
    uses_s3 = any(getattr(cls, "uses_s3", True) for cls in classes)
    for cls in classes:
        names.extend(n for n, _, _ in cls.task_functions() if n not in names)
        seeded.update(parse_size(s) for s in cls.seed_sizes)
    names.extend(n for n in ("on_start", "on_stop", *_request_names(path)) if n not in names)
    return Scenario(
        name or path.stem, (), str(path.resolve()), user_class, tuple(names), tuple(sorted(seeded)), uses_s3
    )


def _request_names(path: Path) -> list[str]:
    """The `name="…"` literals in a scenario file: request names a threshold may use."""
    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError):
        return []
    return [
        k.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        for k in node.keywords
        if k.arg == "name" and isinstance(k.value, ast.Constant) and isinstance(k.value.value, str)
    ]


def load_scenario(name_or_path: str, user_class: str | None = None) -> Scenario:
    """A built-in scenario by name, a Python file or a TOML file; ValueError says what is wrong."""
    if name_or_path in BUILTIN_SCENARIOS:
        return python_scenario(SCENARIO_DIR / f"{name_or_path}.py", user_class, name_or_path)
    path = Path(name_or_path)
    if not path.is_file():
        raise ValueError(
            f"{name_or_path!r} is neither a built-in scenario ({', '.join(BUILTIN_SCENARIOS)}) "
            "nor a Python or TOML file"
        )
    if path.suffix == ".py":
        return python_scenario(path, user_class)
    return load_toml(path)


def import_file(path: Path) -> Any:
    """Import a scenario file as a module (once per process; `sys.modules` keeps it)."""
    resolved = path.resolve()
    module_name = f"mrapsim_scenario_{abs(hash(str(resolved)))}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise ValueError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise ValueError(f"{path}: {type(exc).__name__}: {exc}") from exc
    return module


def user_classes_of(module: Any, only: str | None = None) -> list[type[User]]:
    found = [
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, User) and not v.abstract and v.task_functions()
    ]
    if only is not None:
        found = [c for c in found if c.__name__ == only]
        if not found:
            raise ValueError(f"no User class named {only!r} with tasks in {module.__file__}")
    if not found:
        raise ValueError(f"{module.__file__}: no User subclass with @task methods")
    return found


def user_classes(scenario: Scenario) -> list[type[User]]:
    """The user classes to run: a Python file's, or one made of the TOML tasks."""
    if scenario.source is None:
        return [spec_user(scenario.tasks, scenario.seeded_sizes)]
    return user_classes_of(import_file(Path(scenario.source)), scenario.user_class)


def shape_class(scenario: Scenario) -> type[LoadShape] | None:
    """A Locust-style shape class in the scenario's file (a LoadShape subclass), or None."""
    if scenario.source is None:
        return None
    for value in vars(import_file(Path(scenario.source))).values():
        if isinstance(value, type) and issubclass(value, LoadShape) and value is not LoadShape:
            return value
    return None
