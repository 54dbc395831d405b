"""The extension manifest passes Blender's own validator (the one `blender -c extension build` runs)."""

import subprocess
import sys
from pathlib import Path

import bpy

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(bpy.utils.resource_path('LOCAL')) / "scripts"


def _validate(folder: Path) -> subprocess.CompletedProcess:
    builder = SCRIPTS / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    tags = SCRIPTS / "modules" / "_bpy_internal" / "extensions" / "tags.py"
    return subprocess.run([sys.executable, str(builder), "validate", str(folder), "--valid-tags", str(tags)],
                          capture_output=True, text=True)


def test_manifest_is_valid():
    result = _validate(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_validator_rejects_a_broken_manifest(tmp_path):
    (tmp_path / "__init__.py").write_text("")
    text = (ROOT / "blender_manifest.toml").read_text().replace('tags = ["Sequencer"]', 'tags = ["Video"]')
    (tmp_path / "blender_manifest.toml").write_text(text)
    result = _validate(tmp_path)
    assert result.returncode != 0 and "Video" in result.stdout + result.stderr


def test_permissions_are_declared_with_reasons():
    text = (ROOT / "blender_manifest.toml").read_text()
    assert 'network = "' in text and 'files = "' in text
