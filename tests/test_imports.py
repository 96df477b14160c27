"""The package's modules import each other without a cycle, counting every import statement
wherever it stands: inside functions and `if TYPE_CHECKING:` blocks too. A deferred import that
hides a cycle hides a design problem (docs/design.md: dependencies point one way)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import mrapsim

PACKAGE_DIR = Path(mrapsim.__file__).parent


def module_name(path: Path) -> str:
    parts = ["mrapsim", *path.relative_to(PACKAGE_DIR).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE_DIR.rglob("*.py"))}


def imported_names(tree: ast.AST, module: str, is_package: bool, modules: set[str]) -> Iterator[str]:
    """The modules the import statements in `tree` depend on, relative imports resolved.

    `from package import submodule` depends on the submodule, not on the package's
    `__init__` (which Python runs before any of its submodules anyway)."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield submodule if submodule in modules else base


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        targets = imported_names(tree, name, path.name == "__init__.py", set(modules))
        graph[name] = {target for target in targets if target in modules and target != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a path that starts and ends at the same module, or None."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(node: str) -> list[str] | None:
        path.append(node)
        on_path.add(node)
        for target in sorted(graph[node]):
            if target in on_path:
                return [*path[path.index(target) :], target]
            if target not in done:
                found = visit(target)
                if found:
                    return found
        on_path.discard(path.pop())
        done.add(node)
        return None

    for start in sorted(graph):
        if start not in done:
            found = visit(start)
            if found:
                return found
    return None


def test_no_import_cycle_in_the_package() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_store_imports_no_configuration_error() -> None:
    for name, path in package_modules().items():
        if name.startswith("mrapsim.store"):
            text = path.read_text(encoding="utf-8")
            assert "ConfigError" not in text, f"{name} uses the configuration's error type"


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
