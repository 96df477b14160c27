"""The store's place in the tree: the configuration knows nothing of stores, stores know the
configuration's dataclasses only (never its error type), and store/ has no import cycle —
counting imports inside functions, which hide cycles rather than remove them."""

from __future__ import annotations

import ast
from pathlib import Path

import mrapsim

PACKAGE = Path(mrapsim.__file__).parent


def imports_of(path: Path) -> set[tuple[str, str]]:
    """(module, name) for every `from module import name` and ("module", "") for `import module`,
    wherever it appears in the file."""
    found: set[tuple[str, str]] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found |= {(node.module, alias.name) for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {(alias.name, "") for alias in node.names}
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_config_imports_nothing_from_the_store() -> None:
    assert not [m for m, _ in imports_of(PACKAGE / "config.py") if m.startswith("mrapsim.store")]


def test_stores_import_only_store_modules_and_config_dataclasses() -> None:
    for path in (PACKAGE / "store").glob("*.py"):
        for module, name in imports_of(path):
            if module.startswith("mrapsim") and not module.startswith("mrapsim.store"):
                assert module == "mrapsim.config" and name[:1].isupper() and not name.endswith("Error"), (
                    path.name,
                    module,
                    name,
                )


def test_store_modules_form_no_cycle() -> None:
    modules = {module_name(path): path for path in (PACKAGE / "store").glob("*.py")}
    edges = {
        name: {m for m, _ in imports_of(path) if m in modules and m != name} - {"mrapsim.store"}
        for name, path in modules.items()
    }
    # The package's __init__ re-exports the modules; a module importing the package would be a cycle.
    for name, path in modules.items():
        if name != "mrapsim.store":
            assert "mrapsim.store" not in {m for m, _ in imports_of(path)}, name
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, " -> ".join((*path, name))
        if name in done:
            return
        for following in edges[name]:
            visit(following, (*path, name))
        done.add(name)

    for name in modules:
        visit(name, ())
