"""No import circles inside speechcompress: every `import` and `from ... import` of each module
(function-local ones included, which only hide a circle until the function runs) is read with `ast`
and the module graph must have no cycle."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import speechcompress

PACKAGE = Path(speechcompress.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The speechcompress modules `path` imports (a `from M import name` counts M.name where that is
    a module, else M)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in modules}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                found |= {f"{base}.{alias.name}"} & modules or {base} & modules
    return found - {module_name(path)}


def import_graph() -> dict[str, set[str]]:
    files = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: imported_modules(path, set(files)) for name, path in files.items()}


def test_the_import_graph_is_read():
    graph = import_graph()
    assert "speechcompress.export.onnx_files" in graph["speechcompress.export.runtime"]
    assert "speechcompress.data.splits" in graph["speechcompress.data.real"]


def test_no_module_imports_itself_through_others():
    try:
        TopologicalSorter(import_graph()).prepare()
    except CycleError as error:
        raise AssertionError(f"import circle: {' -> '.join(error.args[1])}") from None
