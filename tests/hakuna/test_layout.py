"""The architecture's layering: no module of the stage packages or the shared core imports the application
layer (hakuna/) or the offline package (submission/), not even inside a function."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOWER = ("camtrap", "detector", "classifier", "fusion")
UPPER = ("hakuna", "submission")


def _imported(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            names.add(str(node.args[0].value))
    return names


def test_stage_packages_never_import_the_application_layer():
    bad = []
    for package in LOWER:
        for path in sorted((ROOT / package).rglob("*.py")):
            for name in _imported(ast.parse(path.read_text(), str(path))):
                if name.split(".")[0] in UPPER:
                    bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, bad
