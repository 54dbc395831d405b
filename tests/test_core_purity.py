"""The pure core under addon/ never imports bpy (only addon/blend/ may)."""

import ast
from pathlib import Path

ADDON = Path(__file__).resolve().parent.parent / "addon"
FORBIDDEN = ("bpy", "aud", "mathutils", "addon_utils")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_pure_core_never_imports_bpy():
    modules = [p for p in ADDON.rglob("*.py") if p.relative_to(ADDON).parts[0] != "blend"]
    assert len(modules) >= 5, "the pure core was not found"
    offenders = {str(p.relative_to(ADDON)): sorted(n for n in _imports(p) if n.split(".")[0] in FORBIDDEN)
                 for p in modules}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_check_sees_a_bpy_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import os\nfrom bpy.props import IntProperty\n")
    assert "bpy.props" in _imports(sample)
