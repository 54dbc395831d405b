"""Test set-up: the add-on is enabled once in the bpy module, like an installed extension."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Blender's user folders go to a throw-away place, before bpy is imported.
os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="shotline-user-"))

# The checkout's folder may have any name: expose it as the package `shotline`.
_PACKAGE_PARENT = Path(tempfile.mkdtemp(prefix="shotline-pkg-"))
(_PACKAGE_PARENT / "shotline").symlink_to(ROOT, target_is_directory=True)
sys.path.insert(0, str(_PACKAGE_PARENT))
sys.path.insert(0, str(ROOT / "tests"))


def pytest_unconfigure(config):
    # bpy 4.5 may hang or crash at interpreter exit after VSE and render work: leave at once.
    if "bpy" in sys.modules and sys.modules["bpy"].app.version < (5, 0, 0):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(getattr(config, "_shotline_exit", 0))


def pytest_sessionfinish(session, exitstatus):
    session.config._shotline_exit = int(exitstatus)


@pytest.fixture(scope="session")
def addon():
    """The enabled add-on package (registered through Blender's own add-on machinery)."""
    import addon_utils
    import bpy  # noqa: F401  (imported first: addon_utils needs it)

    module = addon_utils.enable("shotline", default_set=True, handle_error=None)
    assert module is not None, "the add-on failed to register"
    yield module
    addon_utils.disable("shotline", default_set=True)


@pytest.fixture
def scene(addon):
    """A fresh scene with a sequence editor, shown by the window (and the sequencer on 5.x)."""
    import bpy

    sc = bpy.data.scenes.new("Shotline Test")
    sc.render.resolution_x, sc.render.resolution_y, sc.render.resolution_percentage = 320, 180, 100
    sc.sequence_editor_create()
    window = bpy.context.window_manager.windows[0]
    previous = window.scene
    window.scene = sc
    if "sequencer_scene" in bpy.types.WorkSpace.bl_rna.properties:
        window.workspace.sequencer_scene = sc
    yield sc
    window.scene = previous
    bpy.data.scenes.remove(sc)
